"""Multi-head attention, written out for reading (Vaswani et al. 2017, arXiv:1706.03762, §3.2).

    Attention(Q, K, V) = softmax(Q Kᵀ / √Dh + M) V            (eq. 1; M = 0 where allowed, -∞ where masked)
    MultiHead(X)       = Concat(head_1, ..., head_H) W_O,      head_h = Attention(X W_Q^h, X W_K^h, X W_V^h)

The four projections are separate `nn.Linear` layers named `q`, `k`, `v`, `o` (never one fused QKV matrix),
so a PEFT method can target `q` and `v` alone, as LoRA does.

Extension point `past_key_value`: a pair `(k, v)`, each (B, H, P, Dh), is concatenated in front of this call's
keys and values. During generation this is the KV cache; in prefix tuning it is a learned prefix. Either
way the queries attend to P + T keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import TransformerConfig

KV = tuple[torch.Tensor, torch.Tensor]


def causal_bias(T: int, S: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask (1, 1, T, S): query t (absolute position S - T + t) may see keys 0 .. S - T + t."""
    allowed = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)
    return torch.zeros(T, S, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)[None, None]


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention with separate q/k/v/o projections (each D -> D, with bias)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        D = config.d_model
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.q = nn.Linear(D, D)
        self.k = nn.Linear(D, D)
        self.v = nn.Linear(D, D)
        self.o = nn.Linear(D, D)
        self.attn_dropout = config.attn_dropout
        self.use_sdpa = config.use_sdpa

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D) queries (and keys/values for self-attention)
        attn_bias: torch.Tensor | None = None,  # additive, broadcastable to (B, H, T, S); S = P + T
        is_causal: bool = False,  # causal mask without a bias tensor (no padding, no past)
        key_value_states: torch.Tensor | None = None,  # (B, S, D) encoder output for cross-attention
        past_key_value: KV | None = None,  # (k, v), each (B, H, P, Dh)
        use_cache: bool = False,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, KV | None, torch.Tensor | None]:
        """Returns (output (B, T, D), present (k, v) or None, attention probabilities (B, H, T, S) or None)."""
        B, T, D = x.shape
        q = self._split(self.q(x))  # (B, H, T, Dh)
        src = x if key_value_states is None else key_value_states
        k = self._split(self.k(src))  # (B, H, S, Dh)
        v = self._split(self.v(src))  # (B, H, S, Dh)
        if past_key_value is not None:
            k = torch.cat([past_key_value[0], k], dim=2)  # (B, H, P + T, Dh)
            v = torch.cat([past_key_value[1], v], dim=2)
        present = (k, v) if use_cache else None
        p_drop = self.attn_dropout if self.training else 0.0

        if self.use_sdpa and not output_attentions:
            # The fused kernel computes exactly eq. 1; it cannot return the probabilities.
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_bias, dropout_p=p_drop, is_causal=is_causal and attn_bias is None
            )  # (B, H, T, Dh)
            probs = None
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T, S)
            if is_causal and attn_bias is None:
                attn_bias = causal_bias(T, k.size(2), x.device, scores.dtype)
            if attn_bias is not None:
                scores = scores + attn_bias  # masked keys get the most negative float: weight 0 after softmax
            probs = scores.softmax(dim=-1)
            out = F.dropout(probs, p_drop, self.training) @ v  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, D): heads concatenated
        return self.o(out), present, (probs if output_attentions else None)
