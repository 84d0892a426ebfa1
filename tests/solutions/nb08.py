"""Reference solutions of notebook 08's exercises (prefix tuning), and typical wrong answers the checkers must name."""

from __future__ import annotations

import torch


def split_prefix(table, n_layers, n_heads):
    B, P, W = table.shape
    D = W // (2 * n_layers)
    kv = table.view(B, P, n_layers, 2, n_heads, D // n_heads).permute(2, 3, 0, 4, 1, 5)  # (L, 2, B, H, P, Dh)
    return [(layer[0], layer[1]) for layer in kv]


def split_prefix_kv_swapped(table, n_layers, n_heads):
    return [(v, k) for k, v in split_prefix(table, n_layers, n_heads)]


def split_prefix_positions_first(table, n_layers, n_heads):
    return [(k.transpose(1, 2), v.transpose(1, 2)) for k, v in split_prefix(table, n_layers, n_heads)]


def split_prefix_layers_inner(table, n_layers, n_heads):
    B, P, W = table.shape
    D = W // (2 * n_layers)
    kv = table.view(B, P, 2, n_layers, n_heads, D // n_heads).permute(3, 2, 0, 4, 1, 5)
    return [(layer[0], layer[1]) for layer in kv]


def split_prefix_no_heads(table, n_layers, n_heads):
    B, P, W = table.shape
    kv = table.view(B, P, n_layers, 2, W // (2 * n_layers)).permute(2, 3, 0, 1, 4)  # (L, 2, B, P, D)
    return [(layer[0], layer[1]) for layer in kv]


def prefix_count(P, D, h, L):
    W = L * 2 * D
    return P * D + (D * h + h) + (h * W + W)


def prefix_count_no_biases(P, D, h, L):
    return P * D + D * h + h * L * 2 * D


def prefix_count_LD(P, D, h, L):
    W = L * D
    return P * D + (D * h + h) + (h * W + W)


def prefix_count_no_embedding(P, D, h, L):
    W = L * 2 * D
    return (D * h + h) + (h * W + W)


def generation_mask(attention_mask, P):
    return torch.cat([attention_mask.new_ones(attention_mask.size(0), P), attention_mask], dim=1)


def generation_mask_at_the_end(attention_mask, P):
    return torch.cat([attention_mask, attention_mask.new_ones(attention_mask.size(0), P)], dim=1)


def generation_mask_zeros(attention_mask, P):
    return torch.cat([attention_mask.new_zeros(attention_mask.size(0), P), attention_mask], dim=1)


def generation_mask_unchanged(attention_mask, P):
    return attention_mask
