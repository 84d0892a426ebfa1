"""Exercise checkers of notebook 11 (AdaMix; Wang et al. 2022, "AdaMix: Mixture-of-Adaptations for
Parameter-efficient Model Tuning", arXiv:2205.12410).

    consistency:   L = CE(z_A, y) + λ · ½ [KL(p_B ‖ p_A) + KL(p_A ‖ p_B)]     each KL's target side detached
    one route:     Δ(h) = W_up^(j) f(W_down^(i) h + b_down^(i)) + b_up^(j)     down first (D → m), then up (m → D)
    merged:        W = (1/M) Σ_i W^(i) for each of the four tensors, then the same Δ(h) with the averaged weights

Each `check_k(...)` runs the student's function and the package's own code on the same inputs: None = not
attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer never raises. On a
wrong answer the checker also computes the usual mistakes (one KL direction only, the ½ forgotten, the target side
not detached, a sum over rows instead of the mean, the outputs of the experts averaged instead of their weights,
the up projection applied before the down one, ReLU for GELU, the shared up projection counted M times, ...) and,
when the student's answer equals one of them, names that mistake. While the student's code runs, the package's
`symmetric_kl`, `AdaMixLayer.adapter_delta`, `AdaMixLayer.expert_weights` and the merges are tripwires.

1. `symmetric_kl(logits_a, logits_b)`: the consistency term, one number. Checked for its value *and* its gradient
   with respect to both inputs (a missing detach leaves the value right and the gradient wrong). Reference:
   `methods.adamix.symmetric_kl`.
2. `adamix_delta(h, down_w, down_b, up_w, up_b, route)`: what an AdaMix layer adds to h, for one route (i, j) (a
   training forward) or route None (eval: the experts averaged into one adapter). Reference: an `AdaMixLayer` of a
   real AdaMix model holding these tensors — its own random draw (re-seeded until it takes the route) or, for
   None, its eval forward.
3. `adamix_count(D, L, m, M, share_up)` -> (trained entries, entries after `merge_experts`), adapters only.
   Reference: `AdaMixConfig.expected_trainable_parameters` from the geometry, and a live model (on the meta
   device) after `merge_experts`.
4. A prediction: on the trained model, which scores the higher dev accuracy — the merged weights (one adapter) or
   the ensemble of the experts' outputs (their class probabilities averaged, M adapters)? Checked against the
   notebook's measurement (`check_4(prediction, dev_accuracy)`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from minitransformer import BertForSequenceClassification, TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from .. import adamix
from ..adamix import AdaMixConfig, AdaMixLayer, adamix_layers
from ..api.peft_model import get_peft_model

FORBIDDEN_KL = [(adamix, "symmetric_kl", "methods.adamix.symmetric_kl (the package's own)")]
FORBIDDEN_DELTA = [(AdaMixLayer, "adapter_delta", "AdaMixLayer.adapter_delta (the package's layer)"),
                   (AdaMixLayer, "expert_weights", "AdaMixLayer.expert_weights (the package's routing and average)"),
                   (AdaMixLayer, "merge_experts", "AdaMixLayer.merge_experts (the package's merge)"),
                   (adamix, "merge_experts", "methods.adamix.merge_experts (the package's merge)")]


# ---- 1. the symmetric KL, value and gradient ----------------------------------------------------------------
NO_GRAD = "no gradient"


def value_and_grads(fn: Callable, a: torch.Tensor, b: torch.Tensor) -> tuple:
    """(value, ∂value/∂a, ∂value/∂b) of `fn` on fresh leaf copies of the logits; the gradients are NO_GRAD when
    the value is not one number that autograd can differentiate."""
    a = a.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    value = fn(a, b)
    if not isinstance(value, torch.Tensor):
        return value, NO_GRAD, NO_GRAD
    if value.numel() != 1 or not value.requires_grad:
        return value.detach(), NO_GRAD, NO_GRAD
    ga, gb = torch.autograd.grad(value.reshape(()), (a, b), allow_unused=True)
    zeros = torch.zeros_like
    return value.detach(), zeros(a) if ga is None else ga, zeros(b) if gb is None else gb


class WithGradients:
    """The student's function, called through `value_and_grads`. It carries the function's globals, so that the
    tripwires also catch the package's function imported into the notebook under another name."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.__globals__ = getattr(fn, "__globals__", {})

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> tuple:
        return value_and_grads(self.fn, a, b)


def reference_symmetric_kl(a: torch.Tensor, b: torch.Tensor) -> tuple:
    """The package's `symmetric_kl`: its value and its gradient with respect to both logits."""
    return value_and_grads(adamix.symmetric_kl, a, b)


def kl_cases(seed: int = 0) -> list[tuple]:
    """Pairs of logits: two passes of a 2-label classifier, 5 labels with larger logits, and a (B, T, C) pair as a
    language model's (every position is one distribution)."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)),
            (3 * torch.randn(4, 5, generator=g), 3 * torch.randn(4, 5, generator=g)),
            (2 * torch.randn(2, 3, 4, generator=g), 2 * torch.randn(2, 3, 4, generator=g))]


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.size(-1))


def _kl(logits_q: torch.Tensor, logits_p: torch.Tensor, detach_target: bool = True, detach_log: bool = False,
        reduction: str = "batchmean", flatten: bool = True) -> torch.Tensor:
    """KL(p ‖ q) with p = softmax(logits_p) (the target) and q = softmax(logits_q), as F.kl_div computes it."""
    q, p = (_rows(logits_q), _rows(logits_p)) if flatten else (logits_q, logits_p)
    log_q, target = F.log_softmax(q, -1), F.softmax(p.detach() if detach_target else p, -1)
    log_q = log_q.detach() if detach_log else log_q
    total = F.kl_div(log_q, target, reduction="sum")
    if reduction == "sum":
        return total
    if reduction == "mean":  # over every entry: rows × classes
        return total / q.numel()
    return total / q.size(0)  # batchmean: over the first dimension (the rows, once flattened)


def _kl_hint(fn: Callable) -> Callable:
    """A wrong variant `fn(a, b)` of the value, seen through the same value-and-gradient lens as the answer."""
    return lambda a, b: value_and_grads(fn, a, b)


def _kl_hints(fns: list[Callable]) -> Callable:
    return lambda a, b: [value_and_grads(fn, a, b) for fn in fns]


KL_HINTS = [
    ("one direction only? The consistency term is symmetric: ½ [KL(p_B ‖ p_A) + KL(p_A ‖ p_B)] — each pass is pulled "
     "towards the other",
     _kl_hints([lambda a, b: _kl(a, b), lambda a, b: _kl(b, a), lambda a, b: 0.5 * _kl(a, b),
                lambda a, b: 0.5 * _kl(b, a)])),
    ("forgot the ½? The term is the mean of the two directions, ½ [KL(p_B ‖ p_A) + KL(p_A ‖ p_B)]",
     _kl_hint(lambda a, b: _kl(a, b) + _kl(b, a))),
    ("the value is right but the gradient is not: forgot to detach the target side? In each KL the other pass's "
     "distribution is a fixed target, softmax(other).detach() (the official symmetric_KL_loss): the gradient flows "
     "through the log-probabilities only. Without the detach it also flows through the target, and differs",
     _kl_hint(lambda a, b: 0.5 * (_kl(a, b, detach_target=False) + _kl(b, a, detach_target=False)))),
    ("detached the wrong side? The log-probabilities log_softmax(x) carry the gradient; the target softmax(other) "
     "is the one to detach",
     _kl_hint(lambda a, b: 0.5 * (_kl(a, b, detach_target=False, detach_log=True)
                                  + _kl(b, a, detach_target=False, detach_log=True)))),
    ("summed over the rows instead of averaging? F.kl_div(..., reduction='batchmean') divides the sum by the number "
     "of rows (sentences, or labelled positions)",
     _kl_hint(lambda a, b: 0.5 * (_kl(a, b, reduction="sum") + _kl(b, a, reduction="sum")))),
    ("averaged over every entry (F.kl_div's reduction='mean', rows × classes) instead of over the rows? A KL is a sum "
     "over the classes of one distribution; 'batchmean' averages those sums over the rows",
     _kl_hint(lambda a, b: 0.5 * (_kl(a, b, reduction="mean") + _kl(b, a, reduction="mean")))),
    ("for logits of shape (B, T, C) every one of the B·T rows is one distribution: flatten to (B·T, C) before "
     "'batchmean', which divides by the first dimension only",
     _kl_hint(lambda a, b: 0.5 * (_kl(a, b, flatten=False) + _kl(b, a, flatten=False)))),
]


def _kl_shape_hint(case, want, got) -> str | None:
    if not isinstance(got, tuple) or len(got) != 3:
        return None
    value = got[0]
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        return (f"return one number, not a tensor of shape {tuple(value.shape)}: the mean over the rows of the "
                "per-row KLs ('batchmean')")
    if isinstance(value, float):
        return "return a tensor that autograd can differentiate, not a Python float (no .item())"
    if isinstance(got[1], str) and got[1] == NO_GRAD:
        return ("your value carries no gradient: computed under torch.no_grad(), or both sides of each KL detached? "
                "Detach only the target side, softmax(other).detach()")
    return None


def check_1(symmetric_kl: Callable) -> bool | None:
    """symmetric_kl(logits_a, logits_b): value and gradients against `methods.adamix.symmetric_kl`."""
    return check_parity(1, WithGradients(symmetric_kl), reference_symmetric_kl, kl_cases(), KL_HINTS,
                        forbidden=FORBIDDEN_KL, shape_hint=_kl_shape_hint, atol=1e-6,
                        build_from="F.log_softmax, F.softmax and F.kl_div (or the sums themselves)",
                        describe="value and gradients: ½[KL(p_B‖p_A) + KL(p_A‖p_B)], targets detached, batchmean")


# ---- 2. one AdaMix layer's contribution ---------------------------------------------------------------------
def adamix_model(share_up: bool, num_experts: int, seed: int = 0):
    """A tiny BERT classifier (D = 16) with AdaMix (m = 4) whose every expert tensor is drawn at random: non-zero
    up projections and biases, pre-activations large enough that GELU is far from linear."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(TransformerConfig.tiny(), 2, pooling="mean")
        peft = get_peft_model(model, AdaMixConfig(task_type="SEQ_CLS", bottleneck_size=4, share_up=share_up,
                                                  num_experts=num_experts))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in adamix_layers(peft):
            for store in (layer.adamix_down_weight, layer.adamix_down_bias, layer.adamix_up_weight,
                          layer.adamix_up_bias):
                store["default"].copy_(0.4 * torch.randn(store["default"].shape, generator=g))
    return peft


def _tensors(layer: AdaMixLayer) -> tuple[torch.Tensor, ...]:
    return tuple(s["default"].detach().clone() for s in (layer.adamix_down_weight, layer.adamix_down_bias,
                                                         layer.adamix_up_weight, layer.adamix_up_bias))


def delta_cases(seed: int = 0) -> list[tuple]:
    """(h, down_w (M, m, D), down_b (M, m), up_w (M_up, D, m), up_b (M_up, D), route) from two real AdaMix models:
    4 down experts with one shared up projection (the released scripts), and 3 experts with 3 up projections."""
    g = torch.Generator().manual_seed(seed + 1)
    shared = adamix_layers(adamix_model(share_up=True, num_experts=4, seed=seed))
    separate = adamix_layers(adamix_model(share_up=False, num_experts=3, seed=seed + 2))
    plan = [(shared[0][1], (2, 5), (2, 0)), (shared[1][1], (7,), None), (separate[0][1], (3, 4), (1, 2)),
            (separate[1][1], (2, 3), None), (shared[0][1], (4,), (0, 0)), (separate[0][1], (5,), (2, 2))]
    cases = []
    for layer, lead, route in plan:
        D = layer.weight.shape[0]
        cases.append((2 * torch.randn(*lead, D, generator=g), *_tensors(layer), route))
    return cases


def layer_holding(down_w, down_b, up_w, up_b) -> AdaMixLayer:
    """An AdaMixLayer (around a D → D linear) whose one adapter holds these four tensors."""
    M, m, D = down_w.shape
    layer = AdaMixLayer(torch.nn.Linear(D, D))
    layer.update_layer("default", m, M, share_up=up_w.shape[0] == 1)
    layer.set_adapter("default")
    with torch.no_grad():
        for store, t in zip((layer.adamix_down_weight, layer.adamix_down_bias, layer.adamix_up_weight,
                             layer.adamix_up_bias), (down_w, down_b, up_w, up_b)):
            store["default"].copy_(t)
    return layer


def reference_delta(h, down_w, down_b, up_w, up_b, route):
    """The package's `AdaMixLayer.adapter_delta`: route None in eval (the averaged experts); a route (i, j) as the
    layer's own random draw in training, re-seeded until it draws (i, j)."""
    layer = layer_holding(down_w, down_b, up_w, up_b)
    if route is None:
        layer.eval()
        return layer.adapter_delta("default", h)
    layer.train()
    with torch.random.fork_rng(devices=[]):
        for seed in range(10_000):
            torch.manual_seed(seed)
            out = layer.adapter_delta("default", h)
            if layer.last_route == tuple(route):
                return out
    raise ValueError(f"route {route} is not one the layer can draw ({down_w.shape[0]} down, {up_w.shape[0]} up)")


def _pick(down_w, down_b, up_w, up_b, route):
    if route is None:
        return down_w.mean(0), down_b.mean(0), up_w.mean(0), up_b.mean(0)
    i, j = route
    return down_w[i], down_b[i], up_w[j], up_b[j]


def _bottleneck(h, Wd, bd, Wu, bu, f=F.gelu):
    return F.linear(f(F.linear(h, Wd, bd)), Wu, bu)


def _routed(fn: Callable, routes: str = "any") -> Callable:
    """A wrong variant fn(h, Wd, bd, Wu, bu) of the routed weights; `routes`: "any", "averaged" (route None only)
    or "one" (a route (i, j) only)."""
    def variant(h, down_w, down_b, up_w, up_b, route):
        if (routes == "averaged" and route is not None) or (routes == "one" and route is None):
            return []
        return fn(h, *_pick(down_w, down_b, up_w, up_b, route))
    return variant


def _averaged_outputs(h, down_w, down_b, up_w, up_b, route):
    if route is not None:
        return []
    M, M_up = down_w.shape[0], up_w.shape[0]
    pairs = [(i, 0 if M_up == 1 else i) for i in range(M)]  # expert i with its own (or the shared) up projection
    every = [(i, j) for i in range(M) for j in range(M_up)]  # every route the training draws
    return [torch.stack([_bottleneck(h, down_w[i], down_b[i], up_w[j], up_b[j]) for i, j in routes]).mean(0)
            for routes in (pairs, every)]


def _same_index(h, down_w, down_b, up_w, up_b, route):
    if route is None or up_w.shape[0] == 1 or route[0] == route[1]:
        return []
    i, j = route
    return [_bottleneck(h, down_w[i], down_b[i], up_w[i], up_b[i]),
            _bottleneck(h, down_w[j], down_b[j], up_w[j], up_b[j])]


def _up_not_averaged(h, down_w, down_b, up_w, up_b, route):
    if route is not None or up_w.shape[0] == 1:
        return []
    return _bottleneck(h, down_w.mean(0), down_b.mean(0), up_w[0], up_b[0])


DELTA_HINTS = [
    ("averaged the outputs instead of the weights? Merging averages the four tensors, W = (1/M) Σ_i W^(i), and runs "
     "one adapter with them; for a non-linear adapter f(mean W h) ≠ mean f(W h): the mean of the experts' outputs "
     "is an ensemble that costs M adapters, not the merged one", _averaged_outputs),
    ("projected up before down? AdaMix (the paper's Fig. 2 and the official code) projects *down* first, D → m, "
     "then up, m → D: W_up f(W_down h + b_down) + b_up (some notes write the up projection first)",
     _routed(lambda h, Wd, bd, Wu, bu: F.gelu(h @ Wu + bd) @ Wd + bu)),
    ("returned h + Δ(h)? The layer adds the adapter's contribution to h itself (apply_adapter); return Δ(h) only",
     _routed(lambda h, Wd, bd, Wu, bu: h + _bottleneck(h, Wd, bd, Wu, bu))),
    ("forgot the non-linearity? Between the two projections the adapter applies f = GELU",
     _routed(lambda h, Wd, bd, Wu, bu: _bottleneck(h, Wd, bd, Wu, bu, f=lambda x: x))),
    ("ReLU instead of GELU? AdaMix's experts use GELU (the official ExpertSoup(..., 'gelu')); the Pfeiffer adapter "
     "uses ReLU", _routed(lambda h, Wd, bd, Wu, bu: _bottleneck(h, Wd, bd, Wu, bu, f=F.relu))),
    ("used GELU's tanh approximation? The package's f is nn.GELU(), the exact (erf) form: F.gelu(x)",
     _routed(lambda h, Wd, bd, Wu, bu: _bottleneck(h, Wd, bd, Wu, bu, f=lambda x: F.gelu(x, approximate="tanh")))),
    ("forgot a bias? Both projections have one: W_down h + b_down (m,), and W_up (…) + b_up (D,)",
     _routed(lambda h, Wd, bd, Wu, bu: [_bottleneck(h, Wd, 0 * bd, Wu, bu), _bottleneck(h, Wd, bd, Wu, 0 * bu),
                                        _bottleneck(h, Wd, 0 * bd, Wu, 0 * bu)])),
    ("used one index for both projections? The route (i, j) draws the down expert i and the up expert j "
     "independently: down_w[i], down_b[i], up_w[j], up_b[j]", _same_index),
    ("averaged the down experts only? With several up projections (share_up=False) merging averages them too",
     _up_not_averaged),
    ("ignored the route? In training one route (i, j) serves the whole batch — down expert i, up expert j; the "
     "average of the experts is what eval computes (route None)",
     lambda h, down_w, down_b, up_w, up_b, route: [] if route is None else
     _bottleneck(h, down_w.mean(0), down_b.mean(0), up_w.mean(0), up_b.mean(0))),
    ("summed the experts instead of averaging them? Merging takes the mean, (1/M) Σ_i W^(i), so that the merged "
     "adapter has the scale of one expert",
     lambda h, down_w, down_b, up_w, up_b, route: [] if route is not None else
     _bottleneck(h, down_w.sum(0), down_b.sum(0), up_w.sum(0), up_b.sum(0))),
]


def _delta_shape_hint(case, want, got) -> str | None:
    if isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor) and got.shape != want.shape:
        return (f"expected the shape of h, {tuple(want.shape)}, got {tuple(got.shape)}: down_w[i] is (m, D) and "
                f"up_w[j] is (D, m), as nn.Linear stores (out, in) — F.linear(x, W, b) computes x @ W.T + b")
    return None


def check_2(adamix_delta: Callable) -> bool | None:
    """adamix_delta(h, down_w, down_b, up_w, up_b, route) against the AdaMixLayers of two real AdaMix models."""
    return check_parity(2, adamix_delta, reference_delta, delta_cases(), DELTA_HINTS, forbidden=FORBIDDEN_DELTA,
                        no_grad=True, shape_hint=_delta_shape_hint, atol=1e-5,
                        build_from="F.linear (or @) and F.gelu",
                        describe="route (i, j): W_up^j f(W_down^i h + b_down^i) + b_up^j; None: the averaged weights")


# ---- 3. the count, trained and merged -----------------------------------------------------------------------
def _geometry(D: int, L: int) -> TransformerConfig:
    return TransformerConfig.bert_base(d_model=D, n_layers=L, d_ff=4 * D, n_heads=4 if D % 12 else 12)


def reference_count(D: int, L: int, m: int, M: int, share_up: bool) -> tuple[int, int]:
    """(the entries AdaMix trains, the entries left after `merge_experts`), adapters only: the first from
    `AdaMixConfig.expected_trainable_parameters` (the geometry alone), the second from a live model built on the
    meta device (shapes only) and merged."""
    config = AdaMixConfig(task_type="SEQ_CLS", bottleneck_size=m, num_experts=M, share_up=share_up)
    c = _geometry(D, L)
    trained = config.expected_trainable_parameters(c, "bert", None)
    with torch.device("meta"):
        peft = get_peft_model(BertForSequenceClassification(c, 2, pooling="mean"), config)
        adamix.merge_experts(peft)
    merged = sum(p.numel() for _, layer in adamix_layers(peft) for p in layer.parameters() if p.requires_grad)
    return trained, merged


COUNT_CASES = [  # (D, L, m, M, share_up): mini-bert, BERT-base and RoBERTa-large as released, then other settings
    (128, 4, 8, 4, True), (768, 12, 48, 4, True), (1024, 24, 16, 4, True), (768, 12, 48, 4, False),
    (200, 3, 7, 3, False), (96, 2, 5, 2, True),
]


def _count(down: Callable, up: Callable, merged_like_training: bool = False) -> Callable:
    """A wrong count from per-expert `down(D, m)` and `up(D, m)` entries."""
    def count(D, L, m, M, share_up):
        M_up = 1 if share_up else M
        trained = L * (M * down(D, m) + M_up * up(D, m))
        return trained, trained if merged_like_training else L * (down(D, m) + up(D, m))
    return count


def _closed(D, L, m, M, share_up):
    """The right count in closed form (the hints scale it)."""
    return L * (M * (D * m + m) + (1 if share_up else M) * (m * D + D)), L * (D * m + m + m * D + D)


def _right(D, m):
    return D * m + m


def _right_up(D, m):
    return m * D + D


COUNT_HINTS = [
    ("forgot the biases? Each down expert is an nn.Linear D → m (D·m + m), each up projection m → D (m·D + D)",
     _count(lambda D, m: D * m, lambda D, m: m * D)),
    ("swapped the biases? The down projection's bias has m entries (its outputs), the up projection's D",
     _count(lambda D, m: D * m + D, lambda D, m: m * D + m)),
    ("the experts are still there after merging? merge_experts averages the M experts of each projection into "
     "one: inference costs exactly one adapter, D·m + m + m·D + D per block",
     _count(_right, _right_up, merged_like_training=True)),
    ("counted M up projections although they are shared? With share_up=True (the released GLUE scripts) the "
     "experts differ in their down projection only; one up projection serves them all",
     lambda D, L, m, M, share_up: (L * M * (_right(D, m) + _right_up(D, m)), L * (_right(D, m) + _right_up(D, m)))
     if share_up else []),
    ("one up projection although share_up=False? Then each expert has its own up projection: M of them",
     lambda D, L, m, M, share_up: [] if share_up else
     (L * (M * _right(D, m) + _right_up(D, m)), L * (_right(D, m) + _right_up(D, m)))),
    ("forgot the layers? Every one of the L blocks has its own AdaMix adapter (after ffn.fc2)",
     lambda D, L, m, M, share_up: _closed(D, 1, m, M, share_up)),
    ("counted two adapters per block? AdaMix has one per block, after the FFN (Houlsby has two)",
     lambda D, L, m, M, share_up: _closed(D, 2 * L, m, M, share_up)),
]


def _count_shape_hint(case, want, got) -> str | None:
    if not isinstance(got, tuple) or len(got) != 2:
        return "return a pair: (the entries AdaMix trains, the entries left after merge_experts)"
    return None


def check_3(adamix_count: Callable) -> bool | None:
    """adamix_count(D, L, m, M, share_up) -> (trained, merged) on mini-bert, BERT-base, RoBERTa-large and others."""
    return check_parity(3, adamix_count, reference_count, COUNT_CASES, COUNT_HINTS, atol=0, prepare=lambda c: c,
                        shape_hint=_count_shape_hint,
                        describe="L·[M(D·m + m) + M_up(m·D + D)] trained, L·(D·m + m + m·D + D) merged")


# ---- 4. the prediction ----------------------------------------------------------------------------------------
OPTIONS = ("merged weights", "ensemble of outputs")
PREDICTION_WHY = {
    "ensemble of outputs": "Averaging the outputs keeps each expert's own function and averages their votes: an "
                           "ensemble, whose errors partly cancel. Averaging the weights first gives one function "
                           "that matches the ensemble only where the adapter is close to linear in its weights "
                           "(GELU(mean W h) ≠ mean GELU(W h)). The ensemble's price is M adapters at inference "
                           "against one: the merged model is AdaMix's bet that it loses little for that saving.",
    "merged weights": "The merged adapter beat the ensemble of its own experts' outputs: averaging the weights is "
                      "not just a cheap copy of the ensemble. The down experts started from independent random "
                      "draws; their mean keeps what training moved in common and shrinks the independent parts "
                      "(the mean of M independent draws has 1/√M of their spread), and the shared up projection "
                      "was trained to read every expert. Averaged weights can land in a better point than any of "
                      "the functions they came from — the idea behind model soups, which AdaMix cites.",
    "tie": "Both scored the same dev accuracy in this run: after few updates the experts barely differ, so their "
           "average and their ensemble are the same classifier. Read the numbers of a full run.",
}


def check_4(prediction: Callable, dev_accuracy: dict[str, float]) -> bool | None:
    """prediction() -> "merged weights" or "ensemble of outputs": right when it names the one with the higher dev
    accuracy in the notebook's run (`dev_accuracy`: option -> accuracy; a tie makes both right)."""
    values = list(dev_accuracy.values())
    winner = "tie" if len(set(values)) == 1 else max(dev_accuracy, key=dev_accuracy.get)
    return check_choice(4, prediction, dev_accuracy, PREDICTION_WHY.get(winner, ""))
