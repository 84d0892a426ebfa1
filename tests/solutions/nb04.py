"""Reference solutions of notebook 04's exercises, and typical wrong answers (the checkers must reject each one
and name its mistake)."""

import torch


# ---- 1. the count ------------------------------------------------------------------------------------------
def bitfit_count(D, L, F, C, pooling):
    # embedding LN β + per layer (q, k, v, o, attention LN β, fc1 (F), fc2, FFN LN β) + pooler (cls only) + head
    return D + L * (4 * D + D + F + D + D) + (D if pooling == "cls" else 0) + D * C + C


def bitfit_count_no_head(D, L, F, C, pooling):
    return bitfit_count(D, L, F, C, pooling) - D * C - C


def bitfit_count_with_gamma(D, L, F, C, pooling):
    return bitfit_count(D, L, F, C, pooling) + (2 * L + 1) * D  # γ of every LayerNorm counted too


def bitfit_count_always_pooler(D, L, F, C, pooling):
    return D + L * (4 * D + D + F + D + D) + D + D * C + C  # a pooler even with mean pooling


# ---- 2. the name filter ------------------------------------------------------------------------------------
def bitfit_trains(name):
    return name.endswith(".bias") or name.startswith("classifier.")


def bitfit_trains_no_head_weight(name):
    return name.endswith(".bias")  # the snippet `"bias" in name`: the new head's weight stays random


def bitfit_trains_with_gamma(name):
    return name.endswith(".bias") or name.startswith("classifier.") or ("norm" in name and name.endswith(".weight"))


# ---- 3. the allocation -------------------------------------------------------------------------------------
def allocate(k, sizes):
    total = sum(sizes)
    exact = [k * s / total for s in sizes]
    shares = [int(e) for e in exact]
    leftover = k - sum(shares)
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - shares[i], reverse=True)  # stable: ties keep order
    for i in order[:leftover]:
        shares[i] += 1
    return shares


def allocate_floor(k, sizes):
    return [int(k * s / sum(sizes)) for s in sizes]


def allocate_rounded(k, sizes):
    return [round(k * s / sum(sizes)) for s in sizes]


# ---- 4. SparseDeltaLinear's forward ------------------------------------------------------------------------
def sparse_delta_linear(x, weight, bias, index, delta):
    delta_w = torch.zeros(weight.numel(), dtype=weight.dtype).index_add(0, index, delta).view_as(weight)
    return x @ (weight + delta_w).T + bias


def sparse_delta_linear_no_bias(x, weight, bias, index, delta):
    delta_w = torch.zeros(weight.numel(), dtype=weight.dtype).index_add(0, index, delta).view_as(weight)
    return x @ (weight + delta_w).T


def sparse_delta_linear_column_major(x, weight, bias, index, delta):
    w = weight.t().contiguous().flatten().index_add(0, index, delta).view(weight.shape[1], weight.shape[0]).t()
    return x @ w.T + bias


# ---- 5. the prediction (either may be right: the checker compares with the measured runs) -------------------
def prediction_head():
    return "head"


def prediction_biases():
    return "biases"
