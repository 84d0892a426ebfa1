"""Exercise checkers of notebook 03 (full fine-tuning, the frozen probe, partial unfreezing, the baselines).

Each `check_k(...)` runs the student's code and the package's own on fixed, seeded inputs:
None = not attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer
never raises. On a wrong answer the checker also computes the usual mistakes (padding averaged in, divided
by T, the head forgotten, the warm-up off by one, ...) and, when the student's result equals one of them,
names that mistake instead of printing a bare expected/got.

While the student's function runs, the package function that would answer the exercise by itself
(`minitransformer.core.mean_pool`, `minitransformer.training.train.lr_factor`) is replaced by a tripwire:
calling it gives "not yet — your code called ...", since the point is to build it.

1. `predicted_share()` -> a number: the share of full fine-tuning's dev-accuracy gain over the head alone
   that head + the top layer recovers, predicted before the run; `check_1(fn, head, top1, full)` compares it
   with the measured accuracies (within `PREDICTION_TOLERANCE`).
2. `mean_pool(h, mask)`: (B, T, D) states and a (B, T) 0/1 mask -> (B, D), the mean over the real tokens;
   must equal `minitransformer.core.mean_pool` to 1e-6 (right and left padding, int and bool masks).
3. `freeze_all_but_top(model, k)`: on a `BertForSequenceClassification` (mean pooling), leave trainable
   only the classifier and the top `k` encoder layers; return the trainable names. Both the returned names
   and the model's `requires_grad` flags must equal the reference (`reference_trainable`).
4. `lr_factor(step, total, warmup)`: linear warm-up then linear decay; must equal the package's `lr_factor`.
5. `adamw_bytes(n_params, n_trainable)`: fp32 weights of every parameter + a gradient and AdamW's two
   moments per trainable one.
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable

import torch

from ... import core as _core
from ...bert import BertForSequenceClassification
from ...config import TransformerConfig
from ..exercises import check_parity, run_student, short

# the module itself: `minitransformer.training` exports a function of the same name, `train`
_train = importlib.import_module("...training.train", __package__)

ATOL = 1e-6  # parity with the package
VARIANT_ATOL = 1e-5  # "equals this common mistake"
PREDICTION_TOLERANCE = 0.2  # a prediction of the share counts as right within +-0.2 of the measured share


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- 1. prediction: what does the top layer buy? ------------------------------------------------------
def measured_share(head: float, top1: float, full: float) -> float | None:
    """(top1 - head) / (full - head): the share of full fine-tuning's gain over the head alone that head +
    the top layer recovers. None when full fine-tuning did not beat the head alone (no gain to share)."""
    for name, v in (("head", head), ("top1", top1), ("full", full)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v <= 1:
            raise ValueError(f"check_1: {name}={v!r} must be an accuracy, a number in [0, 1]")
    return None if full <= head else (top1 - head) / (full - head)


def check_1(predicted_share: Callable, head: float, top1: float, full: float) -> bool | None:
    """Exercise 1: the student's predicted share against the one measured from the three dev accuracies."""
    status, guess = run_student(1, predicted_share, ())
    if status == "stub":
        print("Exercise 1: not attempted yet")
        return None
    share = measured_share(head, top1, full)
    if isinstance(guess, bool) or not isinstance(guess, numbers.Real) or math.isnan(guess):
        print(f"Exercise 1: not yet — answer with a number (a share, e.g. 0.3), got {short(guess)}")
        return False
    if share is None:
        print(f"Exercise 1: not checked — in this run full fine-tuning ({full:.4f}) did not beat the head alone "
              f"({head:.4f}), so there is no gain to share (with QUICK=1 the runs are too short to tell)")
        return None
    if 1.5 < guess <= 100:
        print(f"Exercise 1: not yet — give the share as a fraction (0.4), not a percentage ({guess:g}); "
              f"measured {share:.2f}")
        return False
    said = (f"measured: head {head:.4f}, head + top layer {top1:.4f}, full {full:.4f} -> share "
            f"({top1:.4f} - {head:.4f}) / ({full:.4f} - {head:.4f}) = {share:.2f}; you predicted {guess:.2f}")
    if abs(guess - share) <= PREDICTION_TOLERANCE:
        print(f"Exercise 1: correct ({said})")
        return True
    why = ("the top layer does more than you expected: it is the layer closest to the pooled vector, and "
           "re-shaping its output for the task is most of what the head alone cannot do"
           if guess < share else
           "the top layer does less than you expected: the lower layers and the embeddings, frozen here, "
           "still change a lot under full fine-tuning")
    print(f"Exercise 1: not yet — {said}: {why}")
    return False


# ---- 2. mean pooling over the real tokens ---------------------------------------------------------------
def reference_mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The package's one mean pooling (the classifier's `pooling="mean"`)."""
    return _core.mean_pool(h, mask)


def _first_n(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = mask.long().sum(1)
    return torch.stack([h[i, : int(n[i])].mean(0) for i in range(h.size(0))])


POOL_HINTS = [
    ("averaged the padding too: h.mean(1) counts the [PAD] positions — weight each position by the mask",
     lambda h, m: h.mean(1)),
    ("divided by T, the padded length, instead of each sentence's number of real tokens (mask.sum(1))",
     lambda h, m: (h * m.to(h.dtype)[..., None]).sum(1) / h.size(1)),
    ("summed the real tokens but did not divide by their number", lambda h, m: (h * m.to(h.dtype)[..., None]).sum(1)),
    ("took the first n tokens of each row: the mask, not the position, says which tokens are real (here the "
     "padding is on the left)", _first_n),
    ("divided by the total number of real tokens in the batch, not per sentence: mask.sum(1) keeps one count "
     "per row", lambda h, m: (h * m.to(h.dtype)[..., None]).sum(1) / m.sum()),
]


def _pool_cases() -> list[tuple]:
    right = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    return [(_randn(3, 6, 8, seed=1), right), (_randn(3, 6, 8, seed=2), left),
            (_randn(2, 5, 4, seed=3), torch.ones(2, 5, dtype=torch.long)),
            (_randn(1, 7, 3, seed=4), torch.tensor([[1, 1, 1, 1, 0, 0, 0]]))]


def check_2(mean_pool: Callable) -> bool | None:
    """Exercise 2: mean_pool(h, mask) against `minitransformer.core.mean_pool`."""
    return check_parity(2, mean_pool, reference_mean_pool, _pool_cases(), POOL_HINTS,
                  forbidden=[(_core, "mean_pool", "minitransformer.core.mean_pool")],
                  describe="sum over the real tokens / their number, per sentence")


# ---- 3. freeze all but the head and the top k layers ---------------------------------------------------
def _model(n_layers: int, frozen: bool) -> BertForSequenceClassification:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertForSequenceClassification(TransformerConfig.tiny(n_layers=n_layers), 2, pooling="mean")
    return model.requires_grad_(not frozen)


def _layer_names(model: torch.nn.Module, layers: list[int], head: bool = True, embeddings: bool = False) -> list[str]:
    prefixes = [f"bert.layers.{i}." for i in layers] + (["classifier."] if head else []) \
        + (["bert.embeddings."] if embeddings else [])
    return sorted(n for n, _ in model.named_parameters() if n.startswith(tuple(prefixes)))


def reference_trainable(model: BertForSequenceClassification, k: int) -> list[str]:
    """The parameters of the classifier and of the top k encoder layers (`model.bert.layers[L-k:]`), sorted.
    The same set as `get_peft_model(model, LinearProbeConfig(modules_to_save=["classifier", "layers.<i>", ...]))`
    trains (the test suite checks it)."""
    L = len(model.bert.layers)
    keep = {id(p) for p in model.classifier.parameters()}
    keep |= {id(p) for layer in model.bert.layers[L - k:] if k > 0 for p in layer.parameters()}
    return sorted(n for n, p in model.named_parameters() if id(p) in keep)


def _freeze_outcome(student_fn: Callable) -> Callable:
    """Call `freeze_all_but_top(model, k)` on a fresh model and report (returned names, names left trainable)."""
    def run(n_layers: int, k: int, frozen: bool):
        model = _model(n_layers, frozen)
        names = student_fn(model, k)
        names = sorted(names) if isinstance(names, (list, tuple, set)) else names
        return names, sorted(n for n, p in model.named_parameters() if p.requires_grad)
    return run


def _reference_outcome(n_layers: int, k: int, frozen: bool):
    names = reference_trainable(_model(n_layers, False), k)
    return names, names


def _wrong(layers: Callable, head: bool = True, embeddings: bool = False, flags: str = "same") -> Callable:
    """A common wrong answer: `layers(L, k)` trained, the head or not, the embeddings or not; `flags` says what
    the model's requires_grad then shows ("same" as returned, "untouched" = never changed)."""
    def outcome(n_layers: int, k: int, frozen: bool):
        model = _model(n_layers, False)
        names = _layer_names(model, [i for i in layers(n_layers, k) if 0 <= i < n_layers], head, embeddings)
        if flags == "untouched":
            return names, [] if frozen else sorted(n for n, _ in model.named_parameters())
        if flags == "only_false":  # set False on the others, never True on the kept ones
            return names, [] if frozen else names
        return names, names
    return outcome


def _top(L: int, k: int) -> list[int]:
    return list(range(L - k, L))


FREEZE_HINTS = [
    ("forgot the head: the new classifier starts random and must train (`classifier.weight`, `classifier.bias`)",
     _wrong(_top, head=False)),
    ("one layer too many: the top k layers of L are layers L-k .. L-1", _wrong(lambda L, k: range(L - k - 1, L))),
    ("one layer too few: the top k layers of L are layers L-k .. L-1 (k of them)",
     _wrong(lambda L, k: range(L - k + 1, L))),
    ("trained the bottom k layers: the top ones are the last in model.bert.layers (nearest the head)",
     _wrong(lambda L, k: range(k))),
    ("left the embeddings trainable: everything but the head and the top k layers must be frozen",
     _wrong(_top, embeddings=True)),
    ("only set requires_grad=False on the others: a model can arrive frozen, so set requires_grad=True on the ones "
     "that train", _wrong(_top, flags="only_false")),
    ("returned the right names but did not set requires_grad on the model", _wrong(_top, flags="untouched")),
]

FREEZE_CASES = [(4, 1, False), (4, 2, False), (4, 0, False), (4, 4, False), (3, 1, True), (6, 2, False)]


def check_3(freeze_all_but_top: Callable) -> bool | None:
    """Exercise 3: freeze_all_but_top(model, k) on fresh classifiers of 3, 4 and 6 layers, k = 0 .. L."""
    return check_parity(3, _freeze_outcome(freeze_all_but_top), _reference_outcome, FREEZE_CASES, FREEZE_HINTS,
                  prepare=lambda case: case,
                  describe="(returned names, names with requires_grad) = head + top k layers")


# ---- 4. the learning-rate schedule -----------------------------------------------------------------------
def reference_lr_factor(step: int, total: int, warmup: int) -> float:
    """The package's multiplier of the base lr: linear warm-up (s + 1) / W, then linear decay to 0."""
    return _train.lr_factor(step, total, warmup, "linear")


def _warmup_from_zero(s, N, W):
    return s / W if s < W else 1 - min(1.0, (s - W) / max(1, N - W))


def _decay_over_total(s, N, W):
    return (s + 1) / W if s < W else 1 - min(1.0, s / N)


def _decay_one_early(s, N, W):
    return (s + 1) / W if s < W else 1 - min(1.0, (s - W + 1) / max(1, N - W))


def _no_warmup(s, N, W):
    return 1 - min(1.0, s / N)


def _warmup_only(s, N, W):
    return (s + 1) / W if s < W else 1.0


LR_HINTS = [
    ("off by one in the warm-up: update s = 0 uses (s + 1) / W, so that the last warm-up update (s = W - 1) "
     "already uses the full rate", _warmup_from_zero),
    ("the decay runs over the total - warmup updates after the warm-up: p = (s - W) / (total - W)", _decay_over_total),
    ("off by one in the decay: the first update after the warm-up (s = W) uses the full rate", _decay_one_early),
    ("forgot the warm-up: for s < W the factor is (s + 1) / W", _no_warmup),
    ("forgot the decay: after the warm-up the factor falls linearly to 0", _warmup_only),
]

LR_CASES = [(s, 100, 10) for s in (0, 4, 9, 10, 11, 50, 99)] + [(s, 30, 0) for s in (0, 15, 29)] + [(7, 8, 3)]


def check_4(lr_factor: Callable) -> bool | None:
    """Exercise 4: lr_factor(step, total, warmup) against the package's `lr_factor(..., "linear")`."""
    return check_parity(4, lr_factor, reference_lr_factor, LR_CASES, LR_HINTS, atol=1e-9,
                  forbidden=[(_train, "lr_factor", "minitransformer.training.train.lr_factor")],
                  describe="warm-up (s + 1) / W, then 1 - (s - W) / (total - W)")


# ---- 5. the memory that does not depend on the batch -----------------------------------------------------
def reference_adamw_bytes(n_params: int, n_trainable: int) -> int:
    """fp32 weights of every parameter + a gradient and AdamW's two moments per trainable one."""
    return 4 * n_params + (4 + 8) * n_trainable


MEMORY_HINTS = [
    ("as if every parameter trained: a frozen weight has no gradient and no AdamW moments",
     lambda n, t: 16 * n),
    ("forgot the weights themselves: every parameter, frozen or not, is held in memory (4 bytes each)",
     lambda n, t: 12 * t),
    ("forgot the gradient: each trainable parameter has one, 4 bytes", lambda n, t: 4 * n + 8 * t),
    ("forgot AdamW's two moment estimates (m and v, 4 bytes each per trainable parameter)", lambda n, t: 4 * n + 4 * t),
    ("counted in parameters, not bytes: fp32 is 4 bytes per number", lambda n, t: n + 3 * t),
]

MEMORY_CASES = [(109_483_778, 1_538), (109_483_778, 109_483_778), (4_766_210, 4_766_210), (4_766_210, 258),
                (22_713_986, 104_450)]


def check_5(adamw_bytes: Callable) -> bool | None:
    """Exercise 5: adamw_bytes(n_params, n_trainable) -> bytes of weights + gradients + AdamW moments (fp32)."""
    return check_parity(5, adamw_bytes, reference_adamw_bytes, MEMORY_CASES, MEMORY_HINTS, atol=0.5,
                  describe="4 bytes x (all weights) + 12 bytes x (trainable ones)")
