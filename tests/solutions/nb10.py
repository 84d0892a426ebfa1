"""Reference solutions of notebook 10's exercises (AdapterFusion), and typical wrong answers (the checkers must reject
each one and name its mistake)."""

import math

import torch
from torch import nn

from methods.adapter_fusion import FusionLayer


# ---- 1. the fusion ----------------------------------------------------------------------------------------------
def fuse(h, z, W_q, b_q, W_k, W_v, T):
    q = h @ W_q.T + b_q  # (B, T, D): the query, from the FFN's output h
    k = z @ W_k.T  # (B, T, N, D): one key per adapter output (no bias)
    v = z @ W_v.T  # (B, T, N, D)
    s = torch.softmax(torch.einsum("btd,btnd->btn", q, k) / T, dim=-1)  # over the N adapters
    return h + torch.einsum("btn,btnd->btd", s, v)


def fuse_v_after_weighting(h, z, W_q, b_q, W_k, W_v, T):
    """Right too: V is linear, so Σ_n s_n V z_n = V Σ_n s_n z_n (one product with V instead of N)."""
    s = torch.softmax(torch.einsum("btd,btnd->btn", h @ W_q.T + b_q, z @ W_k.T) / T, dim=-1)
    return h + torch.einsum("btn,btnd->btd", s, z) @ W_v.T


def fuse_keys_folded_into_query(h, z, W_q, b_q, W_k, W_v, T):
    """Right too: (Q h)·(K z_n) = (Kᵀ Q h)·z_n, one product with K instead of N."""
    s = torch.softmax(torch.einsum("btd,btnd->btn", (h @ W_q.T + b_q) @ W_k, z) / T, dim=-1)
    return h + torch.einsum("btn,btnd->btd", s, z) @ W_v.T


def _fuse(h, z, W_q, b_q, W_k, W_v, T, dim=-1, residual=True, sqrt_d=False):
    scores = torch.einsum("btd,btnd->btn", h @ W_q.T + b_q, z @ W_k.T) / T
    if sqrt_d:
        scores = scores / math.sqrt(h.shape[-1])
    o = torch.einsum("btn,btnd->btd", torch.softmax(scores, dim=dim), z @ W_v.T)
    return h + o if residual else o


def fuse_softmax_over_tokens(h, z, W_q, b_q, W_k, W_v, T):
    return _fuse(h, z, W_q, b_q, W_k, W_v, T, dim=1)


def fuse_no_residual(h, z, W_q, b_q, W_k, W_v, T):
    return _fuse(h, z, W_q, b_q, W_k, W_v, T, residual=False)


def fuse_no_temperature(h, z, W_q, b_q, W_k, W_v, T):
    return _fuse(h, z, W_q, b_q, W_k, W_v, 1.0)


def fuse_sqrt_d(h, z, W_q, b_q, W_k, W_v, T):
    return _fuse(h, z, W_q, b_q, W_k, W_v, T, sqrt_d=True)


def fuse_no_value(h, z, W_q, b_q, W_k, W_v, T):
    return _fuse(h, z, W_q, b_q, W_k, torch.eye(h.shape[-1]), T)


def fuse_no_query_bias(h, z, W_q, b_q, W_k, W_v, T):
    return _fuse(h, z, W_q, torch.zeros_like(b_q), W_k, W_v, T)


def fuse_keys_from_h(h, z, W_q, b_q, W_k, W_v, T):
    k = (h @ W_k.T)[:, :, None, :].expand_as(z)  # the same key for every adapter
    s = torch.softmax(torch.einsum("btd,btnd->btn", h @ W_q.T + b_q, k) / T, dim=-1)
    return h + torch.einsum("btn,btnd->btd", s, z @ W_v.T)


def fuse_weight_not_transposed(h, z, W_q, b_q, W_k, W_v, T):
    return _fuse(h, z, W_q.T, b_q, W_k.T, W_v.T, T)


def fuse_calls_the_package(h, z, W_q, b_q, W_k, W_v, T):
    from methods.checks.nb10_adapter_fusion import GivenOutputs

    D = h.shape[-1]
    layer = FusionLayer(nn.Linear(D, D))
    layer.update_layer("default", GivenOutputs(z), temperature=T)
    layer.fusion_query["default"].weight.data, layer.fusion_query["default"].bias.data = W_q, b_q
    layer.fusion_key["default"].weight.data, layer.fusion_value["default"].weight.data = W_k, W_v
    return layer.apply_adapter("default", None, h)


# ---- 2. the count -----------------------------------------------------------------------------------------------
def fusion_count(D, L, C, key_bias):
    # per block Q (D² + D), K (D², + D with AdapterHub's bias), V (D², no bias); the head D·C + C
    return L * (3 * D * D + D + (D if key_bias else 0)) + D * C + C


def fusion_count_no_value(D, L, C, key_bias):
    return L * (2 * D * D + D + (D if key_bias else 0)) + D * C + C


def fusion_count_value_bias(D, L, C, key_bias):
    return L * (3 * D * D + 2 * D + (D if key_bias else 0)) + D * C + C


def fusion_count_no_head_bias(D, L, C, key_bias):
    return L * (3 * D * D + D + (D if key_bias else 0)) + D * C


def fusion_count_ignores_key_bias(D, L, C, key_bias):
    return L * (3 * D * D + D) + D * C + C


def fusion_count_one_block(D, L, C, key_bias):
    return 3 * D * D + D + (D if key_bias else 0) + D * C + C


# ---- 3. the prediction (any may be right: the checker compares with the measured weights) -----------------------
def prediction_rt():
    return "rt"


WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, fuse_softmax_over_tokens, "softmax over the tokens"),
    (1, fuse_no_residual, "forgot the residual h"),
    (1, fuse_no_temperature, "forgot the temperature"),
    (1, fuse_sqrt_d, "divided the scores by √D"),
    (1, fuse_no_value, "forgot V"),
    (1, fuse_no_query_bias, "forgot the query's bias"),
    (1, fuse_keys_from_h, "the weights came out uniform"),
    (1, fuse_weight_not_transposed, "stores its weight as (out, in)"),
    (1, fuse_calls_the_package, "your code called FusionLayer.apply_adapter"),
    (2, fusion_count_no_value, "forgot V"),
    (2, fusion_count_value_bias, "one bias of D too many"),
    (2, fusion_count_no_head_bias, "forgot the head's bias"),
    (2, fusion_count_ignores_key_bias, "one bias short"),
    (2, fusion_count_one_block, "counted a single block"),
]
