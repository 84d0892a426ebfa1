"""Checkers for the exercises of notebook 03 (full fine-tuning and the baselines)."""

from __future__ import annotations

import statistics

from ..exercises import check_fn
from ...training.train import lr_factor

LR_CASES = [(s, 100, 10) for s in (0, 4, 9, 10, 11, 50, 99)] + [(s, 30, 0) for s in (0, 15, 29)] + [(7, 8, 3)]


def check_1(student_fn) -> bool | None:
    """Exercise 1: lr_factor(step, total, warmup) -> linear warm-up to 1, then linear decay to 0."""
    return check_fn(1, student_fn, lambda s, t, w: lr_factor(s, t, w, "linear"), LR_CASES, atol=1e-9)


def _adamw_bytes(n_params: int, n_trainable: int) -> int:
    """fp32 weights of every parameter + a gradient and AdamW's two moments per trainable one."""
    return 4 * n_params + (4 + 8) * n_trainable


MEMORY_CASES = [(109_483_778, 109_483_778), (109_483_778, 1_538), (4_170_498, 4_170_498), (4_170_498, 258),
                (22_713_986, 104_450)]


def check_2(student_fn) -> bool | None:
    """Exercise 2: adamw_bytes(n_params, n_trainable) -> bytes of weights + gradients + AdamW moments (fp32)."""
    return check_fn(2, student_fn, _adamw_bytes, MEMORY_CASES)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values)


STAT_CASES = [([0.70, 0.72, 0.74],), ([0.5, 0.5],), ([0.7661, 0.7529, 0.7780, 0.7600],), ([1.0, 0.0, 0.5],)]


def check_3(student_fn) -> bool | None:
    """Exercise 3: mean_std(values) -> (mean, sample standard deviation), as in the tables (n - 1)."""
    return check_fn(3, student_fn, _mean_std, STAT_CASES, atol=1e-9)
