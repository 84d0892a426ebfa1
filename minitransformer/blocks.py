"""The building blocks shared by BERT, GPT and the encoder-decoder: embeddings, FFN, one Transformer block.

One `Block` class serves all three models; `config.norm_first` picks where the LayerNorms sit:

    post-LN (BERT, original Transformer):  x = LN(x + Drop(Attn(x)))      x = LN(x + Drop(FFN(x)))
    pre-LN  (GPT-2):                       x = x + Drop(Attn(LN(x)))      x = x + Drop(FFN(LN(x)))

FFN(x) = fc2(act(fc1(x))), fc1: D -> F, fc2: F -> D (Vaswani et al. 2017, eq. 2).
A decoder block of the encoder-decoder adds cross-attention between the two.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import KV, MultiHeadAttention
from .config import TransformerConfig


def make_activation(name: str) -> nn.Module:
    # "gelu_tanh" is GPT-2's `gelu_new`: the tanh approximation of GELU; BERT uses the exact erf form.
    return {"gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh"), "relu": nn.ReLU()}[name]


class FeedForward(nn.Module):
    """Position-wise FFN: fc2(act(fc1(x)))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_ff)
        self.act = make_activation(config.activation)
        self.fc2 = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return self.fc2(self.act(self.fc1(x)))


class Embeddings(nn.Module):
    """word + position (+ segment) embeddings; post-LN models also normalise them (as BERT does).

    Positions of the T real tokens are `past_length .. past_length + T - 1`: after a KV cache or a prefix,
    exactly as in generation.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        D = config.d_model
        self.word_embeddings = nn.Embedding(config.vocab_size, D)
        self.position_embeddings = nn.Embedding(config.max_positions, D)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, D) if config.type_vocab_size else None
        self.norm = None if config.norm_first else nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,  # (B, T)
        inputs_embeds: torch.Tensor | None = None,  # (B, T, D): replaces the word-embedding lookup only
        token_type_ids: torch.Tensor | None = None,  # (B, T)
        past_length: int = 0,
    ) -> torch.Tensor:
        x = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, D)
        T = x.size(1)
        positions = torch.arange(past_length, past_length + T, device=x.device)
        x = x + self.position_embeddings(positions)[None]
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
            x = x + self.token_type_embeddings(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)


class Block(nn.Module):
    """One Transformer layer: self-attention, optional cross-attention, FFN, each with residual + LayerNorm."""

    def __init__(self, config: TransformerConfig, cross_attention: bool = False) -> None:
        super().__init__()
        D, eps = config.d_model, config.layer_norm_eps
        self.norm_first = config.norm_first
        self.attn = MultiHeadAttention(config)
        self.attn_norm = nn.LayerNorm(D, eps=eps)
        self.cross_attn = MultiHeadAttention(config) if cross_attention else None
        self.cross_norm = nn.LayerNorm(D, eps=eps) if cross_attention else None
        self.ffn = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(D, eps=eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D)
        attn_bias: torch.Tensor | None = None,  # (B|1, 1, T, P + T) additive
        is_causal: bool = False,
        past_key_value: KV | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        encoder_hidden_states: torch.Tensor | None = None,  # (B, S, D) for cross-attention
        encoder_bias: torch.Tensor | None = None,  # (B, 1, 1, P′ + S) additive padding mask of the source
        cross_past_key_value: KV | None = None,  # (k, v), each (B, H, P′, Dh): a cross-attention prefix
    ) -> tuple[torch.Tensor, KV | None, tuple]:
        """Returns (x (B, T, D), present (k, v) of the self-attention or None, attention maps)."""
        maps = []
        h = self.attn_norm(x) if self.norm_first else x
        a, present, w = self.attn(h, attn_bias, is_causal, None, past_key_value, use_cache, output_attentions)
        x = x + self.dropout(a) if self.norm_first else self.attn_norm(x + self.dropout(a))
        maps.append(w)
        if self.cross_attn is not None:
            h = self.cross_norm(x) if self.norm_first else x
            c, _, w = self.cross_attn(h, encoder_bias, False, encoder_hidden_states, cross_past_key_value, False,
                                      output_attentions)
            x = x + self.dropout(c) if self.norm_first else self.cross_norm(x + self.dropout(c))
            maps.append(w)
        h = self.ffn_norm(x) if self.norm_first else x
        f = self.ffn(h)
        x = x + self.dropout(f) if self.norm_first else self.ffn_norm(x + self.dropout(f))
        return x, present, tuple(maps)
