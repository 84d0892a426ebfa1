"""Reference solutions of notebook 03's exercises, and one wrong answer each (the checkers must reject it)."""

import math


def lr_factor(step, total, warmup):
    if step < warmup:
        return (step + 1) / warmup
    return 1 - min(1.0, (step - warmup) / max(1, total - warmup))


def lr_factor_wrong(step, total, warmup):
    return min(1.0, step / max(1, warmup)) * (1 - step / total)  # warm-up starts at 0; decay over all steps


def adamw_bytes(n_params, n_trainable):
    return 4 * n_params + 4 * n_trainable + 8 * n_trainable


def adamw_bytes_wrong(n_params, n_trainable):
    return 16 * n_params  # as if every parameter trained


def mean_std(values):
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def mean_std_wrong(values):
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))  # population std (n)
