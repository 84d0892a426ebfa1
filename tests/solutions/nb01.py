"""Reference solutions of notebook 01's exercises, and one typical wrong answer per exercise.

The tests run every checker of `minitransformer.teaching.checks.nb01_transformer` on both: the solution must pass,
the wrong answer must fail (and the checker must not raise).
"""

from __future__ import annotations

import math

import torch

from minitransformer import TransformerConfig


# ---- 1. scaled dot-product attention ---------------------------------------------------------------
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q kᵀ / √Dh + M) v; mask True = attend, M = -inf where it is False."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v  # (B, H, T, Dh)


def attention_wrong(q, k, v, mask):
    """Forgets the 1/√Dh scale: the softmax gets too peaked."""
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


# ---- 2. causal mask with a past --------------------------------------------------------------------
def causal_mask(T: int, P: int) -> torch.Tensor:
    """(T, P + T), True = query t (absolute position P + t) may see key s, i.e. s <= P + t."""
    return torch.ones(T, P + T, dtype=torch.bool).tril(diagonal=P)


def causal_mask_wrong(T: int, P: int) -> torch.Tensor:
    """Forgets the past: query 0 would not see the cached tokens in front of it."""
    return torch.ones(T, P + T, dtype=torch.bool).tril()


# ---- 3. parameter count in closed form -------------------------------------------------------------
def count_params(c: TransformerConfig) -> int:
    """Shared embeddings (+ LayerNorm), L encoder blocks, L_dec decoder blocks (with cross-attention)."""
    D, F = c.d_model, c.d_ff
    attn = 4 * (D * D + D) + 2 * D  # q, k, v, o with biases, and the LayerNorm after them
    ffn = (D * F + F) + (F * D + D) + 2 * D  # fc1, fc2 and their LayerNorm
    emb = (c.vocab_size + c.max_positions + c.type_vocab_size) * D + 2 * D  # tied output: counted once
    return emb + c.n_layers * (attn + ffn) + c.n_decoder_layers * (2 * attn + ffn)


def count_params_wrong(c: TransformerConfig) -> int:
    """Forgets the decoder's cross-attention."""
    D, F = c.d_model, c.d_ff
    attn = 4 * (D * D + D) + 2 * D
    ffn = (D * F + F) + (F * D + D) + 2 * D
    emb = (c.vocab_size + c.max_positions + c.type_vocab_size) * D + 2 * D
    return emb + (c.n_layers + c.n_decoder_layers) * (attn + ffn)


# ---- 4. split heads --------------------------------------------------------------------------------
def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, Dh): head h owns the features h·Dh .. (h + 1)·Dh - 1 of every token."""
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def split_heads_wrong(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Right shape, wrong values: a plain view mixes tokens into heads."""
    B, T, D = x.shape
    return x.reshape(B, n_heads, T, D // n_heads)
