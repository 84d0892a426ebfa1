"""Reference solutions of notebook 07's exercises (P-tuning), and typical wrong answers the checkers must name."""

from __future__ import annotations

import torch


def mlp_prompts(E, W1, b1, W2, b2, W3, b3):
    return torch.relu(torch.relu(E @ W1.T + b1) @ W2.T + b2) @ W3.T + b3


def mlp_prompts_one_relu(E, W1, b1, W2, b2, W3, b3):
    return (torch.relu(E @ W1.T + b1) @ W2.T + b2) @ W3.T + b3


def mlp_prompts_not_transposed(E, W1, b1, W2, b2, W3, b3):
    return torch.relu(torch.relu(E @ W1 + b1) @ W2 + b2) @ W3 + b3


def mlp_prompts_no_last_bias(E, W1, b1, W2, b2, W3, b3):
    return torch.relu(torch.relu(E @ W1.T + b1) @ W2.T + b2) @ W3.T


def lstm_count(n, D, h, layers):
    lstm = sum(2 * (4 * h * ((D if i == 0 else 2 * h) + h) + 8 * h) for i in range(layers))
    return n * D + lstm + (2 * h * 2 * h + 2 * h) + (2 * h * D + D)


def lstm_count_one_bias(n, D, h, layers):
    lstm = sum(2 * (4 * h * ((D if i == 0 else 2 * h) + h) + 4 * h) for i in range(layers))
    return n * D + lstm + (2 * h * 2 * h + 2 * h) + (2 * h * D + D)


def lstm_count_one_direction(n, D, h, layers):
    lstm = sum(4 * h * ((D if i == 0 else h) + h) + 8 * h for i in range(layers))
    return n * D + lstm + (2 * h * 2 * h + 2 * h) + (2 * h * D + D)


def lstm_count_second_layer_reads_D(n, D, h, layers):
    lstm = sum(2 * (4 * h * (D + h) + 8 * h) for _ in range(layers))
    return n * D + lstm + (2 * h * 2 * h + 2 * h) + (2 * h * D + D)


def fill_slots(x, input_ids, attention_mask, p, pseudo_token_id):
    slots = (input_ids == pseudo_token_id) & attention_mask.bool()  # (B, T)
    out = x.clone()
    out[slots] = p.reshape(-1, p.size(-1))  # row-major: row b's slots, left to right, get p[b, 0 .. n-1]
    return out


def fill_slots_ignoring_mask(x, input_ids, attention_mask, p, pseudo_token_id):
    out = x.clone()
    for b in range(x.size(0)):
        pos = (input_ids[b] == pseudo_token_id).nonzero().flatten()[: p.size(1)]
        out[b, pos] = p[b]
    return out


def fill_slots_first_row(x, input_ids, attention_mask, p, pseudo_token_id):
    slots = (input_ids == pseudo_token_id) & attention_mask.bool()
    out = x.clone()
    out[slots] = p[:1].expand_as(p).reshape(-1, p.size(-1))
    return out


def fill_slots_added(x, input_ids, attention_mask, p, pseudo_token_id):
    slots = (input_ids == pseudo_token_id) & attention_mask.bool()
    out = x.clone()
    out[slots] = out[slots] + p.reshape(-1, p.size(-1))
    return out
