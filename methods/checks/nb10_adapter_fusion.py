"""Exercise checkers of notebook 10 (AdapterFusion; Pfeiffer et al. 2021, "AdapterFusion: Non-Destructive Task
Composition for Transfer Learning", arXiv:2005.00247, §3).

    z_n = output of frozen adapter n, before its residual          (B, T, N, D)
    s   = softmax_n( (W_q h + b_q) · (W_k z_n) / T )             a distribution over the N adapters, per token
    o   = h + Σ_n s_n · W_v z_n

Each `check_k(...)` runs the student's function and the package's own code on the same inputs: None = not
attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer never raises. On
a wrong answer the checker also computes the usual mistakes (the softmax over the tokens instead of over the
adapters, the residual h forgotten, the temperature forgotten, a Transformer's 1/√D carried over, V or the query's
bias forgotten, V given a bias, the head forgotten, ...) and, when the student's answer equals one of them, names
that mistake. While the student's code runs, the package's `FusionLayer.fusion_weights`, `FusionLayer.apply_adapter`
and `AdapterLayer.forward` are tripwires.

Applying V once to the weighted sum, V (Σ_n s_n z_n), is not a mistake: V is linear (and has no bias), so it
equals Σ_n s_n V z_n — N times fewer products with V. It passes.

1. `fuse(h, z, W_q, b_q, W_k, W_v, T)` -> o (B, T, D): the fusion's output given the adapters' outputs z. Reference:
   `FusionLayer.apply_adapter` of a layer holding these weights, its frozen adapters replaced by ones that output z.
2. `fusion_count(D, L, C, key_bias)`: trainable entries of AdapterFusion on a mean-pooled BERT classifier with a
   C-label head that trains, with the package's key (no bias, key_bias False) or AdapterHub's (a bias of D,
   key_bias True). Reference: `AdapterFusionConfig.expected_trainable_parameters` plus the head, plus L·D for the
   key's bias.
3. A prediction: on trec questions, which fused adapter gets the largest mean weight in the top block of the
   fusion trained on rt? Checked against the notebook's measurement (`check_3(prediction, measured)`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from minitransformer import TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from ..adapter_fusion import AdapterFusionConfig, FusionLayer
from ..api.counting import head_params
from ..api.layers import AdapterLayer

FORBIDDEN = [(FusionLayer, "fusion_weights", "FusionLayer.fusion_weights (the package's attention over adapters)"),
             (FusionLayer, "apply_adapter", "FusionLayer.apply_adapter (the package's fusion)"),
             (AdapterLayer, "forward", "AdapterLayer.forward (the package's wrapped layer)")]


# ---- 1. the fusion ----------------------------------------------------------------------------------------------
class GivenOutputs(nn.Module):
    """Stands in for a layer's frozen adapters (`FusionExperts`): whatever h, it returns the outputs z (B, T, N, D)
    given by the exercise's case."""

    def __init__(self, z: torch.Tensor) -> None:
        super().__init__()
        self.z = z

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.z


def fusion_layer(W_q, b_q, W_k, W_v, T: float, z: torch.Tensor) -> FusionLayer:
    """A `FusionLayer` whose query, key and value hold these weights and whose adapters output `z`."""
    D = W_q.shape[0]
    layer = FusionLayer(nn.Linear(D, D))
    layer.update_layer("default", GivenOutputs(z), temperature=T)
    layer.set_adapter("default")
    with torch.no_grad():
        layer.fusion_query["default"].weight.copy_(W_q)
        layer.fusion_query["default"].bias.copy_(b_q)
        layer.fusion_key["default"].weight.copy_(W_k)
        layer.fusion_value["default"].weight.copy_(W_v)
    return layer


def reference_fuse(h, z, W_q, b_q, W_k, W_v, T):
    """The package's `FusionLayer.apply_adapter` on h, with adapters that output z."""
    return fusion_layer(W_q, b_q, W_k, W_v, T, z).apply_adapter("default", None, h)


# (B, T, N, D, temperature): the first case at T = 1, then T = 2 and T = 0.5 (a forgotten or inverted temperature
# shows), one with B = 1, two adapters in one
CASE_SHAPES = [(2, 5, 3, 16, 1.0), (1, 6, 4, 16, 2.0), (3, 4, 2, 8, 0.5), (2, 3, 3, 12, 1.0)]


def fuse_cases(seed: int = 0) -> list[tuple]:
    """(h, z, W_q, b_q, W_k, W_v, T) at the shapes of CASE_SHAPES. Q and K are drawn large enough that the scores
    are of order 1 (the package's init, N(0, 0.02²), gives scores near 0 and nearly uniform weights, where a
    softmax over the wrong axis or a forgotten temperature would hardly show); V is the identity plus noise
    (trained, not at its init) and b_q is not zero."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for B, T_, N, D, temp in CASE_SHAPES:
        c = 0.7 / math.sqrt(D)
        h = torch.randn(B, T_, D, generator=g)
        z = torch.randn(B, T_, N, D, generator=g)
        W_q = c * torch.randn(D, D, generator=g)
        b_q = 0.5 * torch.randn(D, generator=g)
        W_k = c * torch.randn(D, D, generator=g)
        W_v = torch.eye(D) + 0.3 / math.sqrt(D) * torch.randn(D, D, generator=g)
        cases.append((h, z, W_q, b_q, W_k, W_v, temp))
    return cases


def _scores(h, z, W_q, b_q, W_k):
    return torch.einsum("btd,btnd->btn", h @ W_q.T + b_q, z @ W_k.T)  # (B, T, N)


def _mix(h, z, s, W_v, residual: bool = True):
    o = torch.einsum("btn,btnd->btd", s, z @ W_v.T)
    return h + o if residual else o


def _right(h, z, W_q, b_q, W_k, W_v, T):
    return _mix(h, z, torch.softmax(_scores(h, z, W_q, b_q, W_k) / T, -1), W_v)


FUSE_HINTS = [
    ("softmax over the tokens (or the batch) instead of over the adapters? s is a distribution over the N adapters "
     "at each token: the softmax runs over the last axis of the (B, T, N) scores, so that Σ_n s_n = 1 for every token",
     lambda h, z, Wq, bq, Wk, Wv, T: [_mix(h, z, torch.softmax(_scores(h, z, Wq, bq, Wk) / T, dim), Wv)
                                      for dim in (1, 0)]),
    ("forgot the residual h? Fusion sits where the adapter sat and, like it, adds to the FFN's output: "
     "o = h + Σ_n s_n V z_n",
     lambda h, z, Wq, bq, Wk, Wv, T: _mix(h, z, torch.softmax(_scores(h, z, Wq, bq, Wk) / T, -1), Wv, False)),
    ("forgot the temperature? The scores are divided by T before the softmax, softmax((Q h)·(K z_n) / T): "
     "T > 1 flattens the weights, T < 1 sharpens them",
     lambda h, z, Wq, bq, Wk, Wv, T: _mix(h, z, torch.softmax(_scores(h, z, Wq, bq, Wk), -1), Wv)),
    ("multiplied the scores by T instead of dividing? softmax(scores / T): a higher temperature flattens",
     lambda h, z, Wq, bq, Wk, Wv, T: _mix(h, z, torch.softmax(_scores(h, z, Wq, bq, Wk) * T, -1), Wv)),
    ("divided the scores by √D? That is a Transformer's attention; fusion's score is a plain dot product "
     "(Q h)·(K z_n), divided by the temperature T only (AdapterHub's code and the package)",
     lambda h, z, Wq, bq, Wk, Wv, T: [
         _mix(h, z, torch.softmax(_scores(h, z, Wq, bq, Wk) / (math.sqrt(h.shape[-1]) * t), -1), Wv) for t in (T, 1)]),
    ("forgot V? Each adapter's output is projected before it is added: o = h + Σ_n s_n V z_n (V starts at the "
     "identity, but here it is a trained V, not I)",
     lambda h, z, Wq, bq, Wk, Wv, T: _right(h, z, Wq, bq, Wk, torch.eye(h.shape[-1]), T)),
    ("forgot the query's bias b_q? Q is an nn.Linear(D, D) with a bias: the query is W_q h + b_q (only K and V "
     "have none)", lambda h, z, Wq, bq, Wk, Wv, T: _right(h, z, Wq, torch.zeros_like(bq), Wk, Wv, T)),
    ("forgot the key projection? The query is compared with K z_n, not with z_n itself: "
     "score_n = (W_q h + b_q) · (W_k z_n)",
     lambda h, z, Wq, bq, Wk, Wv, T: _right(h, z, Wq, bq, torch.eye(h.shape[-1]), Wv, T)),
    ("the weights came out uniform (1/N for every adapter): were the keys computed from h instead of from each "
     "adapter's z_n (then every adapter gets the same score), or the scores never used?",
     lambda h, z, Wq, bq, Wk, Wv, T: _mix(h, z, torch.full(z.shape[:3], 1 / z.shape[2]), Wv)),
    ("added every adapter with weight 1? The softmax weights s_n must multiply each V z_n: o = h + Σ_n s_n V z_n",
     lambda h, z, Wq, bq, Wk, Wv, T: _mix(h, z, torch.ones(z.shape[:3]), Wv)),
    ("nn.Linear stores its weight as (out, in): Q h is h @ W_q.T + b_q, and likewise K z_n = z_n @ W_k.T and "
     "V z_n = z_n @ W_v.T (the weights here are square, so the shapes cannot tell)",
     lambda h, z, Wq, bq, Wk, Wv, T: [_right(h, z, *w, T) for w in (
         (Wq.T, bq, Wk, Wv), (Wq, bq, Wk.T, Wv), (Wq, bq, Wk, Wv.T), (Wq.T, bq, Wk.T, Wv), (Wq.T, bq, Wk.T, Wv.T))]),
]


def check_1(fuse: Callable) -> bool | None:
    """fuse(h, z, W_q, b_q, W_k, W_v, T) against the package's FusionLayer on four random cases."""
    return check_parity(1, fuse, reference_fuse, fuse_cases(), FUSE_HINTS, forbidden=FORBIDDEN, no_grad=True,
                        build_from="tensor operations (einsum, softmax)",
                        describe="o = h + Σ_n softmax_n((W_q h + b_q)·(W_k z_n) / T) W_v z_n")


# ---- 2. the count -----------------------------------------------------------------------------------------------
def _bert(D: int, L: int) -> TransformerConfig:
    return TransformerConfig.bert_base(d_model=D, n_layers=L, d_ff=4 * D, n_heads=4 if D % 12 else 12)


def reference_fusion_count(D: int, L: int, C: int, key_bias: bool) -> int:
    """What the package predicts for AdapterFusion on a mean-pooled BERT classifier (no pooler; the head trains):
    the method's closed form from the geometry, plus the head as `expected_trainable_parameters` adds it; with
    AdapterHub's key bias, L·D more (the module docstring's L·[2(D² + D) + D²])."""
    c = _bert(D, L)
    n = AdapterFusionConfig(task_type="SEQ_CLS").expected_trainable_parameters(c, "bert", C, pooler=False)
    return n + head_params(c, "bert", C) + (L * D if key_bias else 0)


COUNT_CASES = [  # (D, L, C, key_bias): mini-bert, BERT-base, MiniLM-L6 with 6 labels, a made-up geometry
    (128, 4, 2, False), (128, 4, 2, True), (768, 12, 2, False), (768, 12, 2, True), (384, 6, 6, False),
    (200, 3, 5, True), (200, 3, 5, False)]


def _head(D: int, C: int) -> int:
    return D * C + C


COUNT_HINTS = [
    ("forgot V? Each block learns three D×D matrices, Q, K and V (V has no bias): L·(3D² + D) without the key's "
     "bias", lambda D, L, C, kb: L * (2 * D * D + D + (D if kb else 0)) + _head(D, C)),
    ("one bias short: with key_bias=True Q and K each carry a bias of D entries (AdapterHub's count, "
     "L·[2(D² + D) + D²])", lambda D, L, C, kb: L * (3 * D * D + D) + _head(D, C) if kb else []),
    ("one bias of D too many per block: with key_bias=False only Q has a bias. K's would shift every adapter's score "
     "alike (the softmax over adapters never sees it), and V = nn.Linear(D, D, bias=False)",
     lambda D, L, C, kb: L * (3 * D * D + 2 * D) + _head(D, C) if not kb else []),
    ("gave V a bias? V = nn.Linear(D, D, bias=False), as in AdapterHub: with weights that sum to 1, a bias there "
     "would only add one fixed vector to every token",
     lambda D, L, C, kb: L * (3 * D * D + 3 * D) + _head(D, C) if kb else []),
    ("forgot the query's bias? Q = nn.Linear(D, D) has one; it is not shared by the adapters' scores "
     "(b_q · K z_n differs from adapter to adapter), so it learns",
     lambda D, L, C, kb: L * 3 * D * D + _head(D, C) if not kb else []),
    ("forgot the head's bias? The new classifier trains its weight D·C and its bias C",
     lambda D, L, C, kb: reference_fusion_count(D, L, C, kb) - C),
    ("forgot the head? The new classifier is wrapped in modules_to_save: its weight and its bias train (D·C + C)",
     lambda D, L, C, kb: reference_fusion_count(D, L, C, kb) - _head(D, C)),
    ("counted a single block? Fusion learns its own Q, K and V in every one of the L blocks: multiply by L",
     lambda D, L, C, kb: 3 * D * D + D + (D if kb else 0) + _head(D, C)),
]


def check_2(fusion_count: Callable) -> bool | None:
    """fusion_count(D, L, C, key_bias) on mini-bert, BERT-base, MiniLM and a made-up geometry, both keys."""
    return check_parity(2, fusion_count, reference_fusion_count, COUNT_CASES, COUNT_HINTS,
                        describe="L·(3D² + D) [+ L·D with the key's bias] + D·C + C")


# ---- 3. the prediction ------------------------------------------------------------------------------------------
ADAPTERS = ("rt", "sms_spam", "trec")
COMMON = ("The fusion never saw a question: Q and K were trained on rt sentences only. On a trec question h changes, "
          "and so does every adapter's output z_n, so the score (Q h)·(K z_n) can change too. ")
PREDICTION_WHY = {
    "rt": COMMON + "Here the rt adapter keeps the largest share even so. Compare the three rows: the weights move "
                   "with the text, but less than the task changes, so what the fusion learned on rt acts more like "
                   "a preference of the block for one adapter than like a router that recognises the kind of text. "
                   "Trained on the target's own labels, the rt adapter writes what the rt head reads.",
    "trec": COMMON + "Here the trec adapter takes the most weight, although the fusion never saw a question. The "
                     "weights depend on the input: on its own kind of text the trec adapter writes an output unlike "
                     "the one it writes for a review, and the learned dot product with the query scores it "
                     "higher. The fusion routes, token by token, rather than fixing one adapter per block.",
    "sms_spam": COMMON + "Here the sms_spam adapter takes the most weight, neither the target's adapter nor the one "
                         "trained on questions. The score is a learned dot product with whatever each adapter "
                         "writes, not a recognition of tasks: an adapter whose output on unfamiliar text lines up "
                         "with the query can win on it.",
}


def check_3(prediction: Callable, measured: dict[str, float]) -> bool | None:
    """prediction() -> "rt", "sms_spam" or "trec": right when it names the adapter with the largest mean weight in
    the top block on trec questions (`measured`: adapter -> mean weight, from the notebook's run)."""
    winner = max(measured, key=measured.get)
    return check_choice(3, prediction, measured, PREDICTION_WHY.get(winner, ""))
