"""Exercise checkers of notebook 09 (bottleneck adapters: Houlsby et al. 2019, arXiv:1902.00751; Pfeiffer et al.,
arXiv:2005.00247, App. A.2; He et al., arXiv:2110.04366; AdapterDrop, Rücklé et al., arXiv:2010.11918).

    sequential (Houlsby, Pfeiffer):  A(h) = h + s · (W_up f(W_down h + b_down) + b_up)      h: the wrapped layer's output
    parallel (He et al.):            FFN(x) + s · (W_up ReLU(W_down x + b_down) + b_up)     x: the FFN's input

    W_down (m, D) and W_up (D, m) as `nn.Linear` stores them: (out, in).

Each `check_k(...)` runs the student's function and the package's own code on the same inputs: None = not
attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer never raises. On
a wrong answer the checker also computes the usual mistakes (the inner residual forgotten, the non-linearity after
the up-projection, the residual scaled too, the weights used untransposed, b_up added after the scaling, the
adapter reading the FFN's output, one adapter counted per Houlsby block, the LayerNorms or the head forgotten, ...)
and, when the student's answer equals one of them, names that mistake. While the student's code runs, the
package's `BottleneckLayer.forward` / `adapter_delta`, `SequentialAdapter.apply_adapter` and
`AdapterLayer.forward` / `apply_adapter` are tripwires.

1. `bottleneck_adapter(h, W_down, b_down, W_up, b_up, s, f)`: the sequential adapter on the wrapped layer's output
   h (..., D), f the non-linearity (an `nn.Module`). Reference: a `SequentialAdapter` holding these tensors (what its
   forward does after the frozen layer); the cases come from the wrapped layers of real Pfeiffer and Houlsby
   models, adapters set at random (the first one with m = D, where an untransposed weight still has the right
   shape).
2. `parallel_ffn(x, ffn, W_down, b_down, W_up, b_up, s)`: the FFN sublayer with a parallel adapter beside it
   (ReLU). Reference: a `ParallelAdapter` around `ffn` holding these tensors; cases from real parallel-adapter
   models.
3. `adapter_count(D, L, m, placement, layer_norms, C)`: the trainable entries of a mean-pooled BERT classifier
   (a C-label head that trains) with adapters of bottleneck m in placement "houlsby", "pfeiffer" or "parallel";
   `layer_norms` (Houlsby only): the blocks' LayerNorms are retrained. Reference: the package's
   `expected_trainable_parameters` on the geometry (built on the `meta` device).
4. A prediction: after training, which one block's adapter, switched off alone (the other three kept), costs the
   most dev accuracy? Checked against the notebook's measurement (`check_4(prediction, measured)`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from minitransformer import BertForSequenceClassification, TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from ..adapters import (
    BottleneckLayer,
    HoulsbyConfig,
    ParallelAdapter,
    ParallelAdapterConfig,
    PfeifferConfig,
    SequentialAdapter,
)
from ..api.layers import AdapterLayer
from ..api.peft_model import expected_trainable_parameters, get_peft_model

FORBIDDEN = [(BottleneckLayer, "forward", "BottleneckLayer.forward (the package's adapter layer)"),
             (BottleneckLayer, "adapter_delta", "BottleneckLayer.adapter_delta (the package's bottleneck)"),
             (SequentialAdapter, "apply_adapter", "SequentialAdapter.apply_adapter (the package's inner residual)"),
             (AdapterLayer, "forward", "AdapterLayer.forward (the package's wrapper)"),
             (AdapterLayer, "apply_adapter", "AdapterLayer.apply_adapter (the package's parallel sum)")]
PLACEMENTS = {"houlsby": HoulsbyConfig, "pfeiffer": PfeifferConfig, "parallel": ParallelAdapterConfig}


def _randomise(peft: nn.Module, g: torch.Generator) -> None:
    """Every adapter tensor at random, biases included (zero-init would hide a missing bias or a wrong W_up)."""
    with torch.no_grad():
        for _, layer in peft.named_modules():
            if isinstance(layer, BottleneckLayer):
                for lin in (*layer.adapter_down.values(), *layer.adapter_up.values()):
                    lin.weight.copy_(0.3 * torch.randn(lin.weight.shape, generator=g))
                    lin.bias.copy_(0.3 * torch.randn(lin.bias.shape, generator=g))


def adapter_model(config, seed: int = 0):
    """A tiny BERT classifier (D = 16, F = 64, 2 blocks) wrapped with `config`, its adapters drawn at random."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(TransformerConfig.tiny(), 2, pooling="mean")
        peft = get_peft_model(model, config)
    _randomise(peft, torch.Generator().manual_seed(seed))
    return peft.eval()


def _tensors(layer: BottleneckLayer) -> tuple:
    down, up = layer.adapter_down["default"], layer.adapter_up["default"]
    return (down.weight.detach().clone(), down.bias.detach().clone(), up.weight.detach().clone(),
            up.bias.detach().clone(), layer.scaling["default"])


# ---- 1. the sequential adapter ------------------------------------------------------------------------------------
# (config, wrapped module, leading shape of h): m = D first (an untransposed weight then runs, and gives a value
# whose mistake can be named), s ≠ 1 in the first and the last (a scale in the wrong place shows), GELU and ReLU
SEQUENTIAL_CASES = [
    (lambda: PfeifferConfig(bottleneck_size=16, scaling=0.5), "bert.layers.0.ffn.fc2", (2, 5)),
    (lambda: HoulsbyConfig(bottleneck_size=4), "bert.layers.0.attn.o", (3, 4)),
    (lambda: HoulsbyConfig(bottleneck_size=4), "bert.layers.1.ffn.fc2", (6,)),
    (lambda: PfeifferConfig(bottleneck_size=4, scaling=4.0), "bert.layers.1.ffn.fc2", (1, 7)),
]


def sequential_cases(seed: int = 0) -> list[tuple]:
    """(h, W_down, b_down, W_up, b_up, s, f) for wrapped layers of real Pfeiffer and Houlsby models; h is the
    frozen layer's output for a random input (what the adapter reads)."""
    g = torch.Generator().manual_seed(seed + 1)
    cases = []
    for i, (make, name, lead) in enumerate(SEQUENTIAL_CASES):
        layer = adapter_model(make(), seed + i).base_model.get_submodule(name)
        x = torch.randn(*lead, layer.get_base_layer().in_features, generator=g)
        with torch.no_grad():
            h = layer.base_layer(x)
        cases.append((h, *_tensors(layer), layer.adapter_act["default"]))
    return cases


def _sequential(W_down, b_down, W_up, b_up, s, f) -> SequentialAdapter:
    """A SequentialAdapter (around a D→D linear: the adapter never reads it) holding these tensors."""
    m, D = W_down.shape
    layer = SequentialAdapter(nn.Linear(D, D))
    layer.update_layer("default", bottleneck_size=m, scaling=s)
    layer.set_adapter("default")
    with torch.no_grad():
        layer.adapter_down["default"].weight.copy_(W_down)
        layer.adapter_down["default"].bias.copy_(b_down)
        layer.adapter_up["default"].weight.copy_(W_up)
        layer.adapter_up["default"].bias.copy_(b_up)
    layer.adapter_act["default"] = f
    return layer


def reference_bottleneck_adapter(h, W_down, b_down, W_up, b_up, s, f):
    """What `SequentialAdapter.forward` does with the frozen layer's output h: `apply_adapter` (h + s·bottleneck)."""
    return _sequential(W_down, b_down, W_up, b_up, s, f).apply_adapter("default", h, h)


def _square(W: torch.Tensor) -> bool:
    return W.shape[0] == W.shape[1]


SEQUENTIAL_HINTS = [
    ("forgot the inner residual? The adapter returns h + s·(W_up f(W_down h + b_down) + b_up): with W_up = 0 it is "
     "the identity, and the frozen layer's output h passes through it unchanged",
     lambda h, Wd, bd, Wu, bu, s, f: s * (f(h @ Wd.T + bd) @ Wu.T + bu)),
    ("applied the non-linearity after the up-projection? f sits in the bottleneck, between the two projections: "
     "W_up f(W_down h + b_down) + b_up",
     lambda h, Wd, bd, Wu, bu, s, f: [h + s * f((h @ Wd.T + bd) @ Wu.T + bu), h + s * f(f(h @ Wd.T + bd) @ Wu.T + bu)]),
    ("scaled the residual too? s multiplies the bottleneck's output only: h + s·(…), not s·(h + …)",
     lambda h, Wd, bd, Wu, bu, s, f: s * (h + f(h @ Wd.T + bd) @ Wu.T + bu)),
    ("added b_up after the scaling? s scales the whole up-projection, its bias included: s·(W_up z + b_up)",
     lambda h, Wd, bd, Wu, bu, s, f: h + s * (f(h @ Wd.T + bd) @ Wu.T) + bu),
    ("forgot the scale s? The output of the bottleneck is multiplied by s (here not 1)",
     lambda h, Wd, bd, Wu, bu, s, f: h + f(h @ Wd.T + bd) @ Wu.T + bu),
    ("forgot the biases? W_down h + b_down and W_up z + b_up: both projections are nn.Linear layers with a bias",
     lambda h, Wd, bd, Wu, bu, s, f: [h + s * (f(h @ Wd.T) @ Wu.T), h + s * (f(h @ Wd.T + bd) @ Wu.T),
                                      h + s * (f(h @ Wd.T) @ Wu.T + bu)]),
    ("used W_down (or W_up) untransposed? nn.Linear stores its weight as (out, in): W_down is (m, D), so the "
     "down-projection is h @ W_down.T + b_down",
     lambda h, Wd, bd, Wu, bu, s, f: [] if not _square(Wd) else
     [h + s * (f(h @ Wd + bd) @ Wu + bu), h + s * (f(h @ Wd + bd) @ Wu.T + bu), h + s * (f(h @ Wd.T + bd) @ Wu + bu)]),
]


def check_1(bottleneck_adapter: Callable) -> bool | None:
    """bottleneck_adapter(h, W_down, b_down, W_up, b_up, s, f) against four wrapped layers of real adapter models."""
    return check_parity(1, bottleneck_adapter, reference_bottleneck_adapter, sequential_cases(), SEQUENTIAL_HINTS,
                        forbidden=FORBIDDEN, no_grad=True, build_from="tensor operations and f",
                        describe="h + s·(W_up f(W_down h + b_down) + b_up)")


# ---- 2. the parallel adapter --------------------------------------------------------------------------------------
PARALLEL_CASES = [  # m = D first; He et al.'s s = 4; another s; one block each
    (lambda: ParallelAdapterConfig(bottleneck_size=16), "bert.layers.0.ffn", (2, 5)),
    (lambda: ParallelAdapterConfig(bottleneck_size=4), "bert.layers.1.ffn", (3, 4)),
    (lambda: ParallelAdapterConfig(bottleneck_size=4, scaling=2.0), "bert.layers.0.ffn", (6,)),
]


def parallel_cases(seed: int = 0) -> list[tuple]:
    """(x, ffn, W_down, b_down, W_up, b_up, s): the FFN's input, the frozen FeedForward itself, the adapter."""
    g = torch.Generator().manual_seed(seed + 2)
    cases = []
    for i, (make, name, lead) in enumerate(PARALLEL_CASES):
        layer = adapter_model(make(), seed + 10 + i).base_model.get_submodule(name)
        x = torch.randn(*lead, layer.features, generator=g)
        cases.append((x, layer.base_layer, *_tensors(layer)))
    return cases


def reference_parallel_ffn(x, ffn, W_down, b_down, W_up, b_up, s):
    """The package's ParallelAdapter around `ffn` holding these tensors (ReLU), on x."""
    m = W_down.shape[0]
    layer = ParallelAdapter(ffn)
    layer.update_layer("default", bottleneck_size=m, non_linearity="relu", scaling=s)
    layer.set_adapter("default")
    with torch.no_grad():
        layer.adapter_down["default"].weight.copy_(W_down)
        layer.adapter_down["default"].bias.copy_(b_down)
        layer.adapter_up["default"].weight.copy_(W_up)
        layer.adapter_up["default"].bias.copy_(b_up)
    return layer(x)


def _bottleneck(z, Wd, bd, Wu, bu, f=torch.relu):
    return f(z @ Wd.T + bd) @ Wu.T + bu


PARALLEL_HINTS = [
    ("the adapter reads the FFN's output? That is the sequential placement (Pfeiffer); the parallel adapter reads "
     "the FFN's *input* x, beside the FFN: FFN(x) + s·A(x)",
     lambda x, ffn, Wd, bd, Wu, bu, s: [ffn(x) + s * _bottleneck(ffn(x), Wd, bd, Wu, bu),
                                        s * _bottleneck(ffn(x), Wd, bd, Wu, bu)]),
    ("returned the adapter's contribution alone? The frozen FFN still runs: the adapter adds beside it, "
     "FFN(x) + s·(…)", lambda x, ffn, Wd, bd, Wu, bu, s: [s * _bottleneck(x, Wd, bd, Wu, bu),
                                                         x + s * _bottleneck(x, Wd, bd, Wu, bu)]),
    ("added an inner residual x? The parallel adapter has none of its own: the block's residual adds x afterwards, "
     "x = LN(x + Drop(FFN(x) + s·A(x)))",
     lambda x, ffn, Wd, bd, Wu, bu, s: ffn(x) + x + s * _bottleneck(x, Wd, bd, Wu, bu)),
    ("forgot the scale s? He et al.'s scaled parallel adapter multiplies the bottleneck's output by s (4 by default)",
     lambda x, ffn, Wd, bd, Wu, bu, s: ffn(x) + _bottleneck(x, Wd, bd, Wu, bu)),
    ("scaled the FFN too? s multiplies the adapter's output only: FFN(x) + s·(…), not s·(FFN(x) + …)",
     lambda x, ffn, Wd, bd, Wu, bu, s: s * (ffn(x) + _bottleneck(x, Wd, bd, Wu, bu))),
    ("added b_up after the scaling? s scales the whole up-projection, its bias included: s·(W_up z + b_up)",
     lambda x, ffn, Wd, bd, Wu, bu, s: ffn(x) + s * (torch.relu(x @ Wd.T + bd) @ Wu.T) + bu),
    ("used GELU (the FFN's own activation)? The parallel adapter's bottleneck uses ReLU, as He et al.'s",
     lambda x, ffn, Wd, bd, Wu, bu, s: ffn(x) + s * _bottleneck(x, Wd, bd, Wu, bu, nn.functional.gelu)),
    ("used W_down (or W_up) untransposed? nn.Linear stores its weight as (out, in): W_down is (m, D), so the "
     "down-projection is x @ W_down.T + b_down",
     lambda x, ffn, Wd, bd, Wu, bu, s: [] if not _square(Wd) else
     [ffn(x) + s * (torch.relu(x @ Wd + bd) @ Wu + bu), ffn(x) + s * (torch.relu(x @ Wd + bd) @ Wu.T + bu),
      ffn(x) + s * (torch.relu(x @ Wd.T + bd) @ Wu + bu)]),
]


def check_2(parallel_ffn: Callable) -> bool | None:
    """parallel_ffn(x, ffn, W_down, b_down, W_up, b_up, s) against three ParallelAdapter layers of real models."""
    return check_parity(2, parallel_ffn, reference_parallel_ffn, parallel_cases(), PARALLEL_HINTS,
                        forbidden=FORBIDDEN, no_grad=True, build_from="ffn, tensor operations and torch.relu",
                        describe="FFN(x) + s·(W_up ReLU(W_down x + b_down) + b_up)")


# ---- 3. the count -------------------------------------------------------------------------------------------------
def _bert(D: int, L: int) -> TransformerConfig:
    return TransformerConfig.bert_base(d_model=D, n_layers=L, d_ff=4 * D, n_heads=4 if D % 12 else 12)


def placement_config(placement: str, m: int, layer_norms: bool = False):
    """The package's config for `placement` ("houlsby", "pfeiffer", "parallel") at bottleneck m."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if placement == "houlsby":
        return HoulsbyConfig(task_type="SEQ_CLS", bottleneck_size=m, train_layer_norms=layer_norms)
    if layer_norms:
        raise ValueError(f"layer_norms=True is Houlsby's alone; {placement} retrains no LayerNorm")
    return PLACEMENTS[placement](task_type="SEQ_CLS", bottleneck_size=m)


def reference_adapter_count(D: int, L: int, m: int, placement: str, layer_norms: bool, C: int) -> int:
    """What the package predicts for a mean-pooled BERT classifier of this geometry (the head trains): the
    method's closed form, the LayerNorms Houlsby retrains and the head, from `expected_trainable_parameters` on a
    model built on the `meta` device (shapes only; the tests check it against live models)."""
    with torch.device("meta"):
        model = BertForSequenceClassification(_bert(D, L), C, pooling="mean")
    return expected_trainable_parameters(model, placement_config(placement, m, layer_norms))


COUNT_CASES = [  # (D, L, m, placement, layer_norms, C): mini-bert, BERT-base (the adapters library's m = 48), made up
    (128, 4, 8, "pfeiffer", False, 2), (128, 4, 8, "houlsby", True, 2), (128, 4, 8, "parallel", False, 2),
    (768, 12, 48, "pfeiffer", False, 2), (768, 12, 48, "houlsby", True, 2), (768, 12, 48, "houlsby", False, 2),
    (200, 3, 7, "houlsby", True, 5), (200, 3, 7, "parallel", False, 5), (384, 6, 64, "houlsby", False, 6),
]


def _per(D: int, m: int) -> int:
    return 2 * D * m + m + D


def _adapters(L: int, p: str) -> int:
    return 2 * L if p == "houlsby" else L


def _norms(D: int, L: int, p: str, ln: bool) -> int:
    return L * 2 * 2 * D if p == "houlsby" and ln else 0


def _head(D: int, C: int) -> int:
    return D * C + C


COUNT_HINTS = [
    ("counted one adapter per Houlsby block? Houlsby puts two in each block, after the attention output projection "
     "and after the FFN", lambda D, L, m, p, ln, C: L * _per(D, m) + _norms(D, L, p, ln) + _head(D, C)
     if p == "houlsby" else []),
    ("counted two adapters per block for Pfeiffer or the parallel adapter? Both have one per block, at the FFN",
     lambda D, L, m, p, ln, C: 2 * L * _per(D, m) + _head(D, C) if p != "houlsby" else []),
    ("forgot the LayerNorms? With layer_norms=True Houlsby retrains both LayerNorms of every block, γ and β of D "
     "entries each: 2·2D per block", lambda D, L, m, p, ln, C: _adapters(L, p) * _per(D, m) + _head(D, C)
     if p == "houlsby" and ln else []),
    ("counted each LayerNorm as D entries? A LayerNorm has a scale γ and a shift β, D each: 2D per LayerNorm, 2·2D "
     "per block", lambda D, L, m, p, ln, C: _adapters(L, p) * _per(D, m) + L * 2 * D + _head(D, C)
     if p == "houlsby" and ln else []),
    ("counted the embeddings' LayerNorm too? Houlsby's retrained LayerNorms here are the two of each block "
     "(attn_norm, ffn_norm); the embeddings' LayerNorm stays frozen",
     lambda D, L, m, p, ln, C: _adapters(L, p) * _per(D, m) + _norms(D, L, p, ln) + 2 * D + _head(D, C)
     if p == "houlsby" and ln else []),
    ("counted LayerNorms although layer_norms=False? Then only the adapters and the head train",
     lambda D, L, m, p, ln, C: _adapters(L, p) * _per(D, m) + L * 2 * 2 * D + _head(D, C)
     if p == "houlsby" and not ln else []),
    ("forgot the adapters' biases? Each adapter has b_down (m entries) and b_up (D entries): 2·D·m + m + D",
     lambda D, L, m, p, ln, C: _adapters(L, p) * 2 * D * m + _norms(D, L, p, ln) + _head(D, C)),
    ("gave b_up m entries? The up-projection writes back into the model width: b_up has D entries, b_down has m",
     lambda D, L, m, p, ln, C: _adapters(L, p) * (2 * D * m + 2 * m) + _norms(D, L, p, ln) + _head(D, C)),
    ("forgot the head? The new classifier trains, weight and bias: D·C + C",
     lambda D, L, m, p, ln, C: reference_adapter_count(D, L, m, p, ln, C) - _head(D, C)),
    ("forgot the head's bias? BERT's classifier is an nn.Linear with a bias of C entries: D·C + C",
     lambda D, L, m, p, ln, C: reference_adapter_count(D, L, m, p, ln, C) - C),
]


def check_3(adapter_count: Callable) -> bool | None:
    """adapter_count(D, L, m, placement, layer_norms, C) on mini-bert, BERT-base and made-up geometries."""
    return check_parity(3, adapter_count, reference_adapter_count, COUNT_CASES, COUNT_HINTS,
                        describe="(adapters per block)·L·(2·D·m + m + D) [+ L·2·2D Houlsby's LayerNorms] + D·C + C")


# ---- 4. the prediction --------------------------------------------------------------------------------------------
BLOCKS = (0, 1, 2, 3)
COMMON = ("The four adapters were trained together, so switching one off also breaks what the blocks above learned "
          "to expect from it; what the measurement ranks is how much of the trained behaviour each block's adapter "
          "carries. ")
PREDICTION_WHY = {
    3: COMMON + "The top block's adapter writes last, straight into the token vectors that are mean-pooled for the "
                "head, with no block above to carry its change further or to make up for its loss. Houlsby et al. "
                "(their Fig. 6) found the same ordering: adapters in the higher layers matter most, those in the "
                "lowest layers can be removed at little cost — the observation AdapterDrop builds on.",
    2: COMMON + "Block 2's adapter is high enough to shape task-specific features, and its change still passes "
                "through one more block (and its LayerNorms) that spreads it over the token vectors the head reads: "
                "here it carried more than the top one, against Houlsby et al.'s ordering (their Fig. 6: higher "
                "adapters matter most).",
    1: COMMON + "A lower adapter's change is carried, and amplified, by every frozen block above it; here block 1's "
                "adapter carried the most. Houlsby et al. found the opposite ordering on BERT-base (their Fig. 6: "
                "the lowest adapters can be removed at little cost), on 12 layers rather than 4.",
    0: COMMON + "The lowest adapter changes the token vectors early, and every block above reads and carries its "
                "change; here it carried the most. Houlsby et al. found the opposite ordering on "
                "BERT-base (their Fig. 6: the lowest adapters can be removed at little cost), on 12 layers rather "
                "than 4.",
}


def check_4(prediction: Callable, measured: dict[int, float]) -> bool | None:
    """prediction() -> 0, 1, 2 or 3: right when it names the block whose adapter, switched off alone, cost the most
    dev accuracy (`measured`: block -> accuracy lost, from the notebook's run)."""
    winner = max(measured, key=measured.get)
    return check_choice(4, prediction, measured, PREDICTION_WHY.get(winner, COMMON))
