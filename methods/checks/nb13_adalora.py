"""Exercise checkers of notebook 13 (AdaLoRA; Zhang et al., ICLR 2023, arXiv:2303.10512).

Each `check_k(student_fn)` runs the student's function and the package's own (`methods/adalora.py`) on the same
inputs: None = not attempted (the stub raised NotImplementedError), True = correct, False = not yet. On a wrong
answer the checker also computes the usual wrong variants (a linear fall instead of the cubic one, the paper's
squared norm, the uncertainty measured against the old average, the pruned ranks counted as gone, ...) and, when
the student's answer equals one of them, names that mistake instead of printing a bare expected/got
(`minitransformer.teaching.exercises.check_parity`). A wrong answer never raises.

1. `budget(step, init_budget, target_budget, tinit, tfinal, total_step)`: the cubic budget schedule b(t), checked
   over every step of five schedules (the whole trace is one answer, so a hint is judged on all of it).
   Reference: the budget of `methods.adalora.budget_schedule`, which is a tripwire while the student's code runs.
2. `orthogonality(P, Q)`: ‖PᵀP − I‖_F + ‖QQᵀ − I‖_F. Reference: `AdaLoraLinear.orthogonality` on a layer
   holding P and Q.
3. `update_importance(ipt, unc, w, grad, beta1, beta2)` -> (Ī, Ū), one step of the smoothed sensitivity and its
   uncertainty. Reference: `AdaLoraLinear.update_importance` on a layer holding w, its gradient and (Ī, Ū).
4. `triplet_scores(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q)` -> (r,) scores S_i. Reference:
   `AdaLoraLinear.triplet_scores` on a layer holding that importance state.
5. `adalora_count(D, L, F, init_r, target_r, targets)`: the entries AdaLoRA trains on a BERT trunk (no head).
   Reference: `AdaLoraConfig.expected_trainable_parameters` for that geometry.
6. A prediction: switching off which half of the trained update, attention's or the FFN's, costs more dev
   accuracy? `teaching.exercises.check_choice` against the drops the notebook measures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from minitransformer import TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from .. import adalora as _adalora
from ..adalora import AdaLoraConfig, AdaLoraLinear

ATOL = 1e-6  # parity with the package (the tensor cases are float64)
KINDS = ["attn.q", "attn.k", "attn.v", "attn.o", "ffn.fc1", "ffn.fc2"]  # the linear layers of a block


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _layer(out_features: int, in_features: int, r: int) -> AdaLoraLinear:
    """A float64 AdaLoRA layer of the package (its random init drawn without touching the notebook's RNG)."""
    with torch.random.fork_rng(devices=[]):
        layer = AdaLoraLinear(nn.Linear(in_features, out_features, dtype=torch.float64))
        layer.update_layer("default", init_r=r, lora_alpha=8.0)
    layer.set_adapter("default")
    return layer


# ---- 1. the budget schedule ----------------------------------------------------------------------------------
# (init_budget, target_budget, tinit, tfinal, total_step): the trace of tests/test_adalora.py, this notebook's run
# (24 targets, 12 -> 8, 200 steps) and its QUICK version, the comparison's defaults (8 targets, no warm-up, no
# final phase, 300 steps), and an odd one
SCHEDULES = [(96, 64, 10, 20, 100), (288, 192, 20, 40, 200), (288, 192, 2, 4, 20), (96, 64, 0, 0, 300),
             (30, 10, 5, 3, 37)]


def reference_budget_trace(init_budget: int, target_budget: int, tinit: int, tfinal: int, total_step: int) -> list:
    """b(t) for t = 0 .. total_step, from the package's `budget_schedule` (its budget; the masking flag aside)."""
    return [_adalora.budget_schedule(t, init_budget, target_budget, tinit, tfinal, total_step, 1)[0]
            for t in range(total_step + 1)]


class _Trace:
    """The student's `budget(step, ...)` over every step of a schedule. It carries the student's globals, so a
    `budget_schedule` imported into the notebook is caught by the tripwire too."""

    def __init__(self, budget: Callable) -> None:
        self.budget = budget
        self.__globals__ = getattr(budget, "__globals__", {})

    def __call__(self, init_budget: int, target_budget: int, tinit: int, tfinal: int, total_step: int) -> list:
        return [self.budget(t, init_budget, target_budget, tinit, tfinal, total_step) for t in range(total_step + 1)]


def _variant(rule: Callable) -> Callable:
    """A wrong schedule as a trace: `rule(t, init, target, tinit, tfinal, total)` per step."""
    return lambda b0, bT, ti, tf, T: [rule(t, b0, bT, ti, tf, T) for t in range(T + 1)]


def _cubic(t, b0, bT, ti, tf, T, *, power=3, cast=int, end=None, shift=0, rising=False, warmup=True, freeze=True):
    end = T - tf if end is None else end
    if warmup and t <= ti:
        return b0
    if freeze and t > T - tf:
        return bT
    p = (t - shift - ti) / (end - ti)
    return cast((b0 - bT) * (p if rising else 1 - p) ** power + bT)


BUDGET_HINTS = [
    ("linear instead of cubic: b(t) = b_T + (b_0 − b_T)(1 − progress)³ — the cube makes the budget fall fast "
     "at first and slowly near the target", _variant(lambda *a: _cubic(*a, power=1))),
    ("the budget is a number of triplets: truncate it with int() (towards zero), as the package and `peft` do",
     _variant(lambda *a: _cubic(*a, cast=float))),
    ("rounded instead of truncated: int() drops the fraction (round() goes to the nearest integer)",
     _variant(lambda *a: _cubic(*a, cast=round))),
    ("forgot to freeze at the end: for t > T − t_final the budget stays at b_T (the cubic would go on falling "
     "below the target)", _variant(lambda *a: _cubic(*a, freeze=False))),
    ("forgot the warm-up: for t ≤ t_init the budget is b_0 (before it, the cubic would give more than b_0)",
     _variant(lambda *a: _cubic(*a, warmup=False))),
    ("the fall ends at T − t_final, not at T: progress = (t − t_init) / (T − t_final − t_init)",
     _variant(lambda t, b0, bT, ti, tf, T: _cubic(t, b0, bT, ti, tf, T, end=T))),
    ("the budget falls from b_0 to b_T: use 1 − (t − t_init)/(T − t_final − t_init) inside the cube, not the "
     "progress itself", _variant(lambda *a: _cubic(*a, rising=True))),
    ("off by one step: t is the number of optimizer steps taken (1 after the first), use it as it is",
     _variant(lambda *a: _cubic(*a, shift=1))),
]


def _budget_shape_hint(case, want, got) -> str | None:
    if isinstance(got, list) and any(isinstance(b, (tuple, list)) for b in got):
        return "return the budget alone (an int), not the (budget, mask) pair that budget_schedule returns"
    return None


def check_1(budget: Callable) -> bool | None:
    """budget(step, init_budget, target_budget, tinit, tfinal, total_step) at every step of five schedules."""
    return check_parity(1, _Trace(budget), reference_budget_trace, SCHEDULES, BUDGET_HINTS, atol=ATOL,
                        forbidden=[(_adalora, "budget_schedule", "methods.adalora.budget_schedule")],
                        shape_hint=_budget_shape_hint, build_from="the equation",
                        describe="b_0 until t_init, int(b_T + (b_0 − b_T)(1 − progress)³), then b_T")


# ---- 2. the orthogonality penalty ----------------------------------------------------------------------------
def orthogonality_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(P, Q): at the package's init scale (far from orthonormal), near-orthonormal, and plain random; the shapes of
    a small layer, of mini-bert's q (128 × 128) and fc1 (512 out, 128 in), r = 4 or 12."""
    near_P, _ = torch.linalg.qr(_randn(128, 12, seed=3))
    near_Q, _ = torch.linalg.qr(_randn(128, 12, seed=4))
    return [(_randn(6, 4, seed=1), _randn(4, 10, seed=2)),
            (0.02 * _randn(128, 12, seed=5), 0.02 * _randn(12, 128, seed=6)),
            (near_P + 0.05 * _randn(128, 12, seed=7), near_Q.T + 0.05 * _randn(12, 128, seed=8)),
            (0.3 * _randn(512, 12, seed=9), 0.3 * _randn(12, 128, seed=10))]


def reference_orthogonality(P: torch.Tensor, Q: torch.Tensor) -> float:
    layer = _layer(P.shape[0], Q.shape[1], P.shape[1])
    with torch.no_grad():
        layer.lora_B["default"].copy_(P)  # P is lora_B (out, r), Q is lora_A (r, in)
        layer.lora_A["default"].copy_(Q)
        return float(layer.orthogonality("default"))


def _gram(P, Q, p_side="PtP", q_side="QQt"):
    Pg = P.T @ P if p_side == "PtP" else P @ P.T
    Qg = Q @ Q.T if q_side == "QQt" else Q.T @ Q
    return Pg - torch.eye(Pg.shape[0], dtype=P.dtype), Qg - torch.eye(Qg.shape[0], dtype=Q.dtype)


def _fro(M: torch.Tensor) -> float:
    return float(torch.linalg.norm(M))


ORTHOGONALITY_HINTS = [
    ("squared norms: the paper's eq. 4 writes ‖·‖²_F, but the official code, `peft` and this package add the plain "
     "Frobenius norms ‖PᵀP − I‖_F + ‖QQᵀ − I‖_F", lambda P, Q: sum(_fro(M) ** 2 for M in _gram(P, Q))),
    ("forgot the identity: the penalty measures how far PᵀP and QQᵀ are from I (orthonormal singular vectors), "
     "not how large they are", lambda P, Q: _fro(P.T @ P) + _fro(Q @ Q.T)),
    ("the Gram matrices are the r × r ones: PᵀP for P (out × r) and QQᵀ for Q (r × in); PPᵀ and QᵀQ are out × out "
     "and in × in and can never equal I when r < out, in", lambda P, Q: sum(_fro(M) for M in _gram(P, Q, "PPt", "QtQ"))),
    ("PPᵀ instead of PᵀP: P is (out × r), its r columns are the left singular vectors, so PᵀP (r × r) should be I",
     lambda P, Q: sum(_fro(M) for M in _gram(P, Q, "PPt"))),
    ("QᵀQ instead of QQᵀ: Q is (r × in), its r rows are the right singular vectors, so QQᵀ (r × r) should be I",
     lambda P, Q: sum(_fro(M) for M in _gram(P, Q, q_side="QtQ"))),
    ("only P's term: add ‖QQᵀ − I‖_F for Q", lambda P, Q: _fro(_gram(P, Q)[0])),
    ("only Q's term: add ‖PᵀP − I‖_F for P", lambda P, Q: _fro(_gram(P, Q)[1])),
    ("averaged the two terms: a layer's penalty is their sum (the loss hook then averages over the 2n matrices "
     "and multiplies by orth_reg_weight)", lambda P, Q: sum(_fro(M) for M in _gram(P, Q)) / 2),
]


def _one_number_hint(case, want, got) -> str | None:
    if isinstance(got, torch.Tensor) and got.dim() > 0 and got.numel() > 1:
        return f"return one number (the sum of two norms), not a tensor of shape {tuple(got.shape)}"
    return None


def check_2(orthogonality: Callable) -> bool | None:
    """orthogonality(P, Q) on four (P, Q) pairs of the shapes of real layers."""
    return check_parity(2, orthogonality, reference_orthogonality, orthogonality_cases(), ORTHOGONALITY_HINTS,
                        atol=ATOL, shape_hint=_one_number_hint, describe="‖PᵀP − I‖_F + ‖QQᵀ − I‖_F")


# ---- 3. one step of the importance EMAs ----------------------------------------------------------------------
def importance_cases() -> list[tuple]:
    """(ipt, unc, w, grad, beta1, beta2): the first update (Ī = Ū = 0), then state carried over, with β1 = β2
    (the default 0.85) and with β1 ≠ β2; the shapes of Q on a small layer and on mini-bert's q (12 × 128)."""
    cases = []
    for i, (shape, beta1, beta2, first) in enumerate([((4, 10), 0.85, 0.85, True), ((4, 10), 0.85, 0.85, False),
                                                      ((12, 128), 0.5, 0.9, False), ((12, 128), 0.9, 0.6, False)]):
        ipt = torch.zeros(shape, dtype=torch.float64) if first else _randn(*shape, seed=20 + i).abs()
        unc = torch.zeros(shape, dtype=torch.float64) if first else _randn(*shape, seed=30 + i).abs()
        cases.append((ipt, unc, _randn(*shape, seed=40 + i), _randn(*shape, seed=50 + i), beta1, beta2))
    return cases


def reference_update_importance(ipt, unc, w, grad, beta1, beta2) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's update on a layer whose Q (`lora_A`) is `w` with gradient `grad` and importance (Ī, Ū)."""
    layer = _layer(3, w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.lora_A["default"].copy_(w)
    layer.lora_A["default"].grad = grad.clone()  # P and λ get no gradient: the update skips them
    layer.importance["default"] = {"A": (ipt.clone(), unc.clone())}
    layer.update_importance("default", beta1, beta2)
    return layer.importance["default"]["A"]


def _importance(ipt, unc, w, grad, beta1, beta2, *, sensitivity="|wg|", old_mean=False, swap=False, betas_swapped=False,
                signed_unc=False):
    I = {"|wg|": (w * grad).abs(), "wg": w * grad, "|g|": grad.abs()}[sensitivity]
    b1, b2 = (beta2, beta1) if betas_swapped else (beta1, beta2)
    new_ipt = (1 - b1) * ipt + b1 * I if swap else b1 * ipt + (1 - b1) * I
    gap = I - (ipt if old_mean else new_ipt)
    gap = gap if signed_unc else gap.abs()
    new_unc = (1 - b2) * unc + b2 * gap if swap else b2 * unc + (1 - b2) * gap
    return new_ipt, new_unc


IMPORTANCE_HINTS = [
    ("the uncertainty compares I with the *new* average: Ū ← β2 Ū + (1 − β2)|I − Ī| with the Ī just updated "
     "(as the official code and `peft` do)", lambda *a: _importance(*a, old_mean=True)),
    ("the sensitivity is |w · ∂L/∂w|: forgot the absolute value", lambda *a: _importance(*a, sensitivity="wg")),
    ("the sensitivity multiplies the weight by its gradient, |w · ∂L/∂w| (it estimates the loss change if w were "
     "set to zero), not the gradient alone", lambda *a: _importance(*a, sensitivity="|g|")),
    ("β weighs the past: Ī ← β1 Ī + (1 − β1) I (with β = 0.85 the new step counts 15 %); you swapped β and 1 − β",
     lambda *a: _importance(*a, swap=True)),
    ("β1 smooths the sensitivity Ī and β2 the uncertainty Ū: you swapped them",
     lambda *a: _importance(*a, betas_swapped=True)),
    ("the uncertainty averages the *absolute* gap |I − Ī|", lambda *a: _importance(*a, signed_unc=True)),
    ("return (Ī, Ū) in that order", lambda *a: _importance(*a)[::-1]),
]


def check_3(update_importance: Callable) -> bool | None:
    """update_importance(ipt, unc, w, grad, beta1, beta2) -> (Ī, Ū) on four states, first update included."""
    return check_parity(3, update_importance, reference_update_importance, importance_cases(), IMPORTANCE_HINTS,
                        atol=ATOL, no_grad=True,
                        describe="I = |w·g|, Ī ← β1 Ī + (1 − β1) I, Ū ← β2 Ū + (1 − β2)|I − Ī|")


# ---- 4. the triplet scores -----------------------------------------------------------------------------------
def score_cases() -> list[tuple[torch.Tensor, ...]]:
    """(Ī_P, Ū_P, Ī_λ, Ū_λ, Ī_Q, Ū_Q) with P (out, r), λ (r, 1), Q (r, in): a small layer, mini-bert's q
    (128 × 128, r = 12) and its fc1 (512 out, 128 in) — on fc1, P's columns are four times longer than Q's rows."""
    cases = []
    for i, (out, r, inp) in enumerate([(6, 4, 10), (128, 12, 128), (512, 12, 128)]):
        shapes = [(out, r), (out, r), (r, 1), (r, 1), (r, inp), (r, inp)]
        cases.append(tuple(_randn(*s, seed=60 + 10 * i + j).abs() for j, s in enumerate(shapes)))
    return cases


def reference_triplet_scores(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q) -> torch.Tensor:
    layer = _layer(ipt_P.shape[0], ipt_Q.shape[1], ipt_lam.shape[0])
    layer.importance["default"] = {"A": (ipt_Q, unc_Q), "E": (ipt_lam, unc_lam), "B": (ipt_P, unc_P)}
    return layer.triplet_scores("default")


def _scores(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q, *, s=lambda i, u: i * u, reduce="mean", lam=True, vectors=True):
    red = torch.mean if reduce == "mean" else torch.sum
    out = torch.zeros(ipt_lam.shape[0], dtype=ipt_lam.dtype)
    if lam:
        out = out + s(ipt_lam, unc_lam).view(-1)
    if vectors:
        out = out + red(s(ipt_P, unc_P), dim=0) + red(s(ipt_Q, unc_Q), dim=1)
    return out


SCORE_HINTS = [
    ("forgot the uncertainty: s = Ī · Ū (eq. 11); Ī alone is the 'sensitivity only' variant of the paper's "
     "ablation (§4.4)", lambda *a: _scores(*a, s=lambda i, u: i)),
    ("s is the product Ī · Ū, not the sum", lambda *a: _scores(*a, s=lambda i, u: i + u)),
    ("summed the entries: eq. 7 *averages* s over P's column and over Q's row, so that a triplet's score does not "
     "grow with the size of its matrix (fc1's P columns are four times longer than q's)",
     lambda *a: _scores(*a, reduce="sum")),
    ("only λ's term: S_i also adds the mean score of P's column i and of Q's row i (the singular vectors)",
     lambda *a: _scores(*a, vectors=False)),
    ("forgot λ's own term s(λ_i)", lambda *a: _scores(*a, lam=False)),
]


def _score_shape_hint(case, want, got) -> str | None:
    if not isinstance(got, torch.Tensor) or got.shape == want.shape:
        return None
    r, out, inp = want.shape[0], case[0].shape[0], case[4].shape[1]
    if got.shape == (r, r):
        return ("λ's state has shape (r, 1): flatten it (`.view(-1)`) before adding the two (r,) means, or "
                "broadcasting makes an (r, r) matrix")
    if got.shape == (r, 1):
        return "return one score per triplet as a vector of shape (r,), not (r, 1)"
    if got.dim() == 1 and got.shape[0] in (out, inp):
        return ("averaged along the wrong axis: P is (out, r), average each column (dim 0); Q is (r, in), average "
                "each row (dim 1) — one number per triplet")
    return None


def check_4(triplet_scores: Callable) -> bool | None:
    """triplet_scores(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q) -> (r,) on three layers' shapes."""
    return check_parity(4, triplet_scores, reference_triplet_scores, score_cases(), SCORE_HINTS, atol=ATOL,
                        no_grad=True, shape_hint=_score_shape_hint,
                        describe="S_i = s(λ_i) + mean_j s(P_ji) + mean_j s(Q_ij), s = Ī · Ū")


# ---- 5. the count --------------------------------------------------------------------------------------------
def _bert(D: int, L: int, F: int) -> TransformerConfig:
    return TransformerConfig.bert_base(d_model=D, n_layers=L, d_ff=F, n_heads=4 if D % 12 else 12)


def reference_adalora_count(D: int, L: int, F: int, init_r: int, target_r: int, targets: list[str]) -> int:
    """What the package predicts for AdaLoRA on a BERT trunk of this geometry (no classification head)."""
    config = AdaLoraConfig(init_r=init_r, target_r=target_r, target_modules=list(targets))
    return config.expected_trainable_parameters(_bert(D, L, F), "bert")


COUNT_CASES = [  # (D, L, F, init_r, target_r, targets)
    (128, 4, 512, 12, 8, ["attn.q", "attn.v"]),  # mini-bert, the comparison's setting
    (128, 4, 512, 12, 8, KINDS),  # mini-bert, every linear layer of the blocks (this notebook's run)
    (768, 12, 3072, 12, 8, ["attn.q", "attn.v"]),  # BERT-base: 442,656, peft's figure without the head
    (384, 6, 1536, 8, 4, ["attn.k", "attn.o", "ffn.fc2"]),  # MiniLM's geometry
    (200, 3, 700, 5, 2, ["ffn.fc1"]),  # a made-up one
]


def _shape(kind: str, D: int, F: int) -> tuple[int, int]:
    """(in, out) of a block's linear layer."""
    return {"ffn.fc1": (D, F), "ffn.fc2": (F, D)}.get(kind, (D, D))


def _count(per_target: Callable[[int, int], int]) -> Callable:
    return lambda D, L, F, r0, rT, targets: L * sum(per_target(*_shape(k, D, F), r0, rT) for k in targets)


COUNT_HINTS = [
    ("counted the pruned ranks as gone: pruning sets λ_i to zero (a mask), it does not shrink P, λ or Q — every "
     "target keeps init_r triplets, so the count uses init_r, not target_r",
     _count(lambda i, o, r0, rT: rT * (i + 1 + o))),
    ("forgot λ: each target trains P (out × r), Q (r × in) *and* the r singular values λ",
     _count(lambda i, o, r0, rT: r0 * (i + o))),
    ("λ is a vector of r singular values (Λ is diagonal, stored as r numbers), not an r × r matrix",
     _count(lambda i, o, r0, rT: r0 * (i + o) + r0 * r0)),
    ("counted the pruned ranks as gone *and* forgot λ: the count is init_r · (in + 1 + out) per target",
     _count(lambda i, o, r0, rT: rT * (i + o))),
    ("the FFN's layers are not D × D: fc1 maps D to F and fc2 maps F to D, so each has in + out = D + F",
     lambda D, L, F, r0, rT, t: L * sum(r0 * (2 * D + 1) for _ in t)),
    ("AdaLoRA trains the factors P, λ and Q of ΔW, not ΔW itself (in × out entries per target)",
     _count(lambda i, o, r0, rT: i * o)),
]


def _per_layer_hint(case, want, got) -> str | None:
    D, L, F, r0, rT, targets = case
    if isinstance(got, (int, float)) and not isinstance(got, bool) and L > 1 and got * L == want:
        return f"counted one layer only: every one of the L = {L} blocks has its own targets"
    return None


def check_5(adalora_count: Callable) -> bool | None:
    """adalora_count(D, L, F, init_r, target_r, targets) on mini-bert (two target sets), BERT-base, MiniLM and a
    made-up geometry."""
    return check_parity(5, adalora_count, reference_adalora_count, COUNT_CASES, COUNT_HINTS, atol=0.5,
                        shape_hint=_per_layer_hint, describe="Σ over targets init_r · (in + 1 + out)")


# ---- 6. the prediction ---------------------------------------------------------------------------------------
PREDICTION_WHY = {
    "ffn": "switching off the FFN's half cost more here. fc1 and fc2 are the widest matrices (D·F entries each, four "
           "times an attention matrix here) and rewrite each token's vector directly; the paper's Figure 1 finds "
           "the same on DeBERTaV3 (LoRA on the FFN alone beats LoRA on attention alone at the same budget). "
           "Compare with the heatmap: did the allocator give the FFN more rank too?",
    "attention": "switching off the attention half cost more here. q, k, v and o decide which tokens each position "
                 "reads, and a mean-pooled sentence vector is made of those mixtures; the paper's Figure 1 finds the "
                 "FFN more important on DeBERTaV3, with far more data and steps. Compare with the heatmap: did the "
                 "rank the allocator gave each half follow what switching it off costs?",
    "tie": "both halves cost the same dev accuracy in this run; a short run moves the model little, so read the "
           "drops of a full run.",
}


def check_6(prediction: Callable[[], Any], dev_drop: dict[str, float]) -> bool | None:
    """prediction() -> "attention" or "ffn": right when it names the half whose switching-off cost the most dev
    accuracy (`dev_drop`, in points, measured by the cell that calls this)."""
    values = list(dev_drop.values())
    winner = "tie" if len(set(values)) == 1 else max(dev_drop, key=dev_drop.get)
    return check_choice(6, prediction, dev_drop, PREDICTION_WHY.get(winner, ""), unit=" points")
