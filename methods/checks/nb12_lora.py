"""Exercise checkers of notebook 12 (LoRA; Hu et al. 2021, arXiv:2106.09685).

Each `check_k(student_fn)` runs the student's function and the package's own implementation on the same inputs:
None = not attempted (the stub raised NotImplementedError), True = correct, False = not yet. On a wrong answer
the checker computes the usual wrong variants and, when the student's answer equals one of them, names that
mistake instead of printing a bare expected/got. A wrong answer never raises.

1. `lora_forward(x, weight, bias, A, B, alpha, r)`: the forward of a `LoraLinear`, W·x + b + (α/r)·B·A·x.
   Reference: real `LoraLinear` layers with random A and B (the package's layer is switched off while the
   student's code runs).
2. `lora_count(D, L, F, r, targets)`: LoRA's trainable entries (no head) from the geometry. Reference:
   `LoraConfig.expected_trainable_parameters` on the geometry alone.
3. `merge_weight(weight, A, B, alpha, r)`: the merged weight W + (α/r)·B·A. Reference: `LoraLinear.merge`.
4. `subspace_similarity(A1, A2, i, j)`: the paper's §7.2 φ. Reference: `methods.lora_study.subspace_similarity`.
5. A prediction (§7.3): is the projection of W onto ΔW's top directions closer to W's own top directions or to
   random ones? Checked against the notebook's measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from minitransformer import TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from .. import lora_study
from ..lora import LoraConfig, LoraLinear

FORBIDDEN = [(LoraLinear, "forward", "LoraLinear.forward"), (LoraLinear, "adapter_delta", "LoraLinear.adapter_delta"),
             (LoraLinear, "delta_weight", "LoraLinear.delta_weight"), (LoraLinear, "merge", "LoraLinear.merge"),
             (lora_study, "subspace_similarity", "lora_study.subspace_similarity"),
             (lora_study, "right_singular", "lora_study.right_singular")]


def _layer(fan_in: int, fan_out: int, r: int, alpha: float, seed: int) -> LoraLinear:
    """A `LoraLinear` around a random `nn.Linear`, its B made non-zero (at init B = 0 would hide every mistake)."""
    g = torch.Generator().manual_seed(seed)
    base = nn.Linear(fan_in, fan_out)
    with torch.no_grad():
        base.weight.copy_(torch.randn(fan_out, fan_in, generator=g) / math.sqrt(fan_in))
        base.bias.copy_(torch.randn(fan_out, generator=g))
    layer = LoraLinear(base)
    layer.update_layer("default", r=r, lora_alpha=alpha)
    layer.set_adapter("default")
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(torch.randn(r, fan_in, generator=g) / math.sqrt(fan_in))
        layer.lora_B["default"].weight.copy_(torch.randn(fan_out, r, generator=g))
    return layer


LAYER_CASES = [(16, 16, 4, 8.0, 0), (32, 24, 8, 16.0, 1), (24, 40, 1, 8.0, 2), (128, 128, 8, 8.0, 3)]


def _forward_cases() -> list[tuple]:
    cases = []
    for fan_in, fan_out, r, alpha, seed in LAYER_CASES:
        layer = _layer(fan_in, fan_out, r, alpha, seed)
        x = torch.randn(2, 5, fan_in, generator=torch.Generator().manual_seed(seed + 10))
        cases.append((x, layer.weight.detach().clone(), layer.bias.detach().clone(),
                      layer.lora_A["default"].weight.detach().clone(), layer.lora_B["default"].weight.detach().clone(),
                      alpha, r))
    return cases


def _reference_forward(x, weight, bias, A, B, alpha, r):
    layer = LoraLinear(nn.Linear(weight.shape[1], weight.shape[0]))
    layer.update_layer("default", r=r, lora_alpha=alpha)
    layer.set_adapter("default")
    with torch.no_grad():
        layer.get_base_layer().weight.copy_(weight)
        layer.get_base_layer().bias.copy_(bias)
        layer.lora_A["default"].weight.copy_(A)
        layer.lora_B["default"].weight.copy_(B)
        return layer(x)


def _delta(x, A, B):  # B·A·x for x (..., in): (..., in) @ (in, r) @ (r, out)
    return x @ A.T @ B.T


FORWARD_HINTS = [
    ("forgot the scaling α/r? The update is (α/r)·B·A·x; with α ≠ r it is not B·A·x.",
     lambda x, W, b, A, B, alpha, r: x @ W.T + b + _delta(x, A, B)),
    ("scaled by α/√r: that is rsLoRA (use_rslora=True); plain LoRA scales by α/r.",
     lambda x, W, b, A, B, alpha, r: x @ W.T + b + alpha / math.sqrt(r) * _delta(x, A, B)),
    ("scaled by r/α: the scaling is α divided by r.",
     lambda x, W, b, A, B, alpha, r: x @ W.T + b + r / alpha * _delta(x, A, B)),
    ("forgot the frozen layer's bias b? The base output is W·x + b.",
     lambda x, W, b, A, B, alpha, r: x @ W.T + alpha / r * _delta(x, A, B)),
    ("scaled the base output too? Only the update is scaled: W·x + b + (α/r)·B·A·x.",
     lambda x, W, b, A, B, alpha, r: alpha / r * (x @ W.T + b + _delta(x, A, B))),
    ("returned only the update? LoRA adds (α/r)·B·A·x to the frozen layer's output W·x + b.",
     lambda x, W, b, A, B, alpha, r: alpha / r * _delta(x, A, B)),
]


def check_1(lora_forward: Callable) -> bool | None:
    """lora_forward(x, weight, bias, A, B, alpha, r) on square and rectangular layers, r from 1 to 8."""
    return check_parity(1, lora_forward, _reference_forward, _forward_cases(), FORWARD_HINTS, forbidden=FORBIDDEN,
                        describe="W·x + b + (α/r)·B·A·x, two thin matmuls", atol=1e-5,
                        build_from="two matrix products and the scaling")


# ---- 2. the count ------------------------------------------------------------------------------------------
NAMES = {"q": "attn.q", "k": "attn.k", "v": "attn.v", "o": "attn.o", "fc1": "ffn.fc1", "fc2": "ffn.fc2"}
COUNT_CASES = [  # (D, L, F, r, targets): mini-bert, BERT-base (the paper's q, v), all linear, made-up ones
    (128, 4, 512, 8, ("q", "v")), (768, 12, 3072, 8, ("q", "v")), (128, 4, 512, 2, tuple(NAMES)),
    (384, 6, 1536, 4, ("q", "k", "v", "o")), (200, 3, 700, 3, ("fc1",)), (96, 2, 300, 5, ("v", "fc2")),
]


def reference_lora_count(D: int, L: int, F: int, r: int, targets: tuple[str, ...]) -> int:
    c = TransformerConfig.bert_base(d_model=D, n_layers=L, d_ff=F, n_heads=4 if D % 12 else 12)
    config = LoraConfig(task_type="SEQ_CLS", r=r, target_modules=[NAMES[t] for t in targets])
    return config.expected_trainable_parameters(c, "bert", None)


def _fans(D: int, F: int, t: str) -> tuple[int, int]:
    return (D, F) if t == "fc1" else (F, D) if t == "fc2" else (D, D)


def _count(fn: Callable[[int, int, int], int]) -> Callable:
    return lambda D, L, F, r, targets: L * sum(fn(*_fans(D, F, t), r) for t in targets)


COUNT_HINTS = [
    ("counted full matrices? LoRA trains A (r × in) and B (out × r): r·(in + out) per target, not in·out.",
     _count(lambda i, o, r: i * o)),
    ("counted only A? B (out × r) trains too: r·(in + out) per target.", _count(lambda i, o, r: r * i)),
    ("counted only B? A (r × in) trains too: r·(in + out) per target.", _count(lambda i, o, r: r * o)),
    ("the FFN's layers are not square: fc1 maps D → F and fc2 maps F → D, so each has r·(D + F).",
     _count(lambda i, o, r: 2 * r * min(i, o))),
    ("forgot the layers? Every one of the L blocks gets its own A and B.",
     lambda D, L, F, r, targets: sum(r * sum(_fans(D, F, t)) for t in targets)),
    ("counted r² too? A and B have r·in and out·r entries; there is no r × r matrix in LoRA (AdaLoRA's Λ is "
     "a vector).", _count(lambda i, o, r: r * (i + o) + r * r)),
]


def check_2(lora_count: Callable) -> bool | None:
    """lora_count(D, L, F, r, targets) on mini-bert, BERT-base, MiniLM and made-up geometries."""
    return check_parity(2, lora_count, reference_lora_count, COUNT_CASES, COUNT_HINTS,
                        describe="L · Σ over targets r·(in + out)", atol=0, prepare=lambda c: c)


# ---- 3. the merge ------------------------------------------------------------------------------------------
def _merge_cases() -> list[tuple]:
    cases = []
    for fan_in, fan_out, r, alpha, seed in LAYER_CASES:
        layer = _layer(fan_in, fan_out, r, alpha, seed)
        cases.append((layer.weight.detach().clone(), layer.lora_A["default"].weight.detach().clone(),
                      layer.lora_B["default"].weight.detach().clone(), alpha, r))
    return cases


def _reference_merge(weight, A, B, alpha, r):
    layer = LoraLinear(nn.Linear(weight.shape[1], weight.shape[0]))
    layer.update_layer("default", r=r, lora_alpha=alpha)
    layer.set_adapter("default")
    with torch.no_grad():
        layer.get_base_layer().weight.copy_(weight)
        layer.lora_A["default"].weight.copy_(A)
        layer.lora_B["default"].weight.copy_(B)
    layer.merge()
    return layer.get_base_layer().weight.detach().clone()


MERGE_HINTS = [
    ("forgot the scaling α/r? The merged weight is W + (α/r)·B·A.", lambda W, A, B, alpha, r: W + B @ A),
    ("transposed ΔW? W is (out, in) and so is B·A (B is out × r, A is r × in); (B·A)ᵀ only fits a square W, "
     "and is wrong there.", lambda W, A, B, alpha, r: W + alpha / r * (B @ A).T if W.shape[0] == W.shape[1] else -W),
    ("subtracted ΔW? Merging adds it (unmerge subtracts).", lambda W, A, B, alpha, r: W - alpha / r * B @ A),
    ("scaled by α/√r: that is rsLoRA; plain LoRA merges (α/r)·B·A.",
     lambda W, A, B, alpha, r: W + alpha / math.sqrt(r) * B @ A),
]


def check_3(merge_weight: Callable) -> bool | None:
    """merge_weight(weight, A, B, alpha, r) on the layers of exercise 1."""
    return check_parity(3, merge_weight, _reference_merge, _merge_cases(), MERGE_HINTS, forbidden=FORBIDDEN,
                        describe="W + (α/r)·B·A", atol=1e-5, build_from="one matrix product and the scaling")


# ---- 4. the subspace similarity ----------------------------------------------------------------------------
def _similarity_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(4)
    shared = torch.randn(4, 32, generator=g)  # A2's rows start with A1's strongest directions: φ well above 0
    A1 = shared * torch.tensor([[4.0], [3.0], [2.0], [1.0]])
    A2 = torch.cat([shared * 2, torch.randn(12, 32, generator=g)])
    cases = [(A1, A2, i, j) for i, j in ((1, 1), (2, 8), (4, 16), (3, 5))]
    cases.append((torch.randn(8, 64, generator=g), torch.randn(64, 64, generator=g), 8, 20))
    return cases


def _reference_similarity(A1, A2, i, j):
    return lora_study.subspace_similarity(A1, A2, i, j)


def _wrong_similarity(variant: str) -> Callable:
    def phi(A1, A2, i, j):
        V1 = torch.linalg.svd(A1.double(), full_matrices=False).Vh.T[:, :i]
        V2 = torch.linalg.svd(A2.double(), full_matrices=False).Vh.T[:, :j]
        norm = torch.linalg.matrix_norm(V1.T @ V2)
        if variant == "not squared":
            return float(norm / min(i, j))
        if variant == "no normalisation":
            return float(norm**2)
        if variant == "max":
            return float(norm**2 / max(i, j))
        if variant == "rows of A":  # the raw rows of A, not its singular vectors
            return float((A1.double()[:i] @ A2.double()[:j].T).pow(2).sum() / min(i, j))
        raise AssertionError(variant)
    return phi


SIMILARITY_HINTS = [
    ("forgot to square the norm? φ = ‖U1ᵀU2‖²_F / min(i, j); the squared norm counts the shared dimensions.",
     _wrong_similarity("not squared")),
    ("forgot to divide by min(i, j)? Without it φ is not in [0, 1].", _wrong_similarity("no normalisation")),
    ("divided by max(i, j)? The paper normalises by min(i, j): a small subspace inside a large one gives 1.",
     _wrong_similarity("max")),
    ("used the rows of A? The directions are A's right-singular vectors (svd(A).Vh), orthonormal and sorted by "
     "strength; A's rows are neither.", _wrong_similarity("rows of A")),
]


def check_4(subspace_similarity: Callable) -> bool | None:
    """subspace_similarity(A1, A2, i, j) on adapters with shared and with unrelated directions."""
    return check_parity(4, subspace_similarity, _reference_similarity, _similarity_cases(), SIMILARITY_HINTS,
                        forbidden=FORBIDDEN, describe="‖U1[:, :i]ᵀ U2[:, :j]‖²_F / min(i, j)", atol=1e-6,
                        build_from="torch.linalg.svd")


# ---- 5. prediction -----------------------------------------------------------------------------------------
WHY_5 = ("ΔW is not a copy of what W already does: its top directions carry far less of W than W's own top "
         "directions do, and only somewhat more than random ones — LoRA amplifies directions W has but does not "
         "emphasise (the paper's §7.3, its Table 7).")


def check_5(prediction: Callable[[], str], measured: dict[str, float]) -> bool | None:
    """prediction() -> "W's top directions" or "random directions": which does ‖UᵀWV‖ on ΔW's top directions sit
    closer to, on a log scale? `measured` = amplification(...) of the notebook's trained adapter."""
    on_delta = math.log(measured["delta_directions"])
    distance = {"W's top directions": abs(math.log(measured["W_directions"]) - on_delta),
                "random directions": abs(math.log(measured["random_directions"]) - on_delta)}
    return check_choice(5, prediction, distance, WHY_5, higher_wins=False, unit=" (log distance)")
