"""Reference solutions of notebook 01's exercises, and the typical wrong answers the checkers must name.

`WRONG[k]` lists (wrong answer, a piece of the hint the checker must print for it). The tests run every checker
of `minitransformer.teaching.checks.nb01_transformer` on all of them (tests/test_exercises_nb01.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from minitransformer import MultiHeadAttention, TransformerConfig


# ---- 1. masked multi-head attention from the weights -------------------------------------------------
def multi_head_attention(x, params, n_heads, attention_mask):
    """x (B, T, D), the q/k/v/o weights of an nn.Linear each (W is (out, in)), mask (B, T) 1 = real or None."""
    B, T, D = x.shape
    Dh = D // n_heads

    def heads(name):  # project, then (B, T, D) -> (B, H, T, Dh): head h owns features h·Dh .. (h+1)·Dh - 1
        y = x @ params[f"{name}.weight"].T + params[f"{name}.bias"]
        return y.view(B, T, n_heads, Dh).transpose(1, 2)

    q, k, v = heads("q"), heads("k"), heads("v")
    scores = q @ k.transpose(-2, -1) / math.sqrt(Dh)  # (B, H, T, S)
    if attention_mask is not None:
        scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, float("-inf"))  # padding keys
    out = scores.softmax(dim=-1) @ v  # (B, H, T, Dh)
    out = out.transpose(1, 2).reshape(B, T, D)  # heads merged back: (B, T, H·Dh)
    return out @ params["o.weight"].T + params["o.bias"]


def _mha(x, params, n_heads, attention_mask, *, scale=True, axis=-1, fill=float("-inf"), merge=True, mask=True):
    B, T, D = x.shape
    Dh = D // n_heads

    def heads(name):
        return (x @ params[f"{name}.weight"].T + params[f"{name}.bias"]).view(B, T, n_heads, Dh).transpose(1, 2)

    q, k, v = heads("q"), heads("k"), heads("v")
    scores = q @ k.transpose(-2, -1) / (math.sqrt(Dh) if scale else 1.0)
    if attention_mask is not None and mask:
        scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, fill)
    out = scores.softmax(dim=axis) @ v
    out = out.transpose(1, 2).reshape(B, T, D) if merge else out.reshape(B, T, D)
    return out @ params["o.weight"].T + params["o.bias"]


def mha_no_scale(x, params, n_heads, attention_mask):
    return _mha(x, params, n_heads, attention_mask, scale=False)


def mha_wrong_axis(x, params, n_heads, attention_mask):
    return _mha(x, params, n_heads, attention_mask, axis=-2)


def mha_no_mask(x, params, n_heads, attention_mask):
    return _mha(x, params, n_heads, attention_mask, mask=False)


def mha_zero_fill(x, params, n_heads, attention_mask):
    return _mha(x, params, n_heads, attention_mask, fill=0.0)


def mha_not_merged(x, params, n_heads, attention_mask):
    return _mha(x, params, n_heads, attention_mask, merge=False)


def mha_calls_the_module(x, params, n_heads, attention_mask):
    """Right numbers, but built from the package's own module: the checker must refuse it."""
    attn = MultiHeadAttention(TransformerConfig.tiny(d_model=x.size(-1), n_heads=n_heads))
    attn.load_state_dict(params)
    bias = None if attention_mask is None else (attention_mask[:, None, None, :] == 0) * torch.finfo(x.dtype).min
    return attn.eval()(x, bias)[0]


def mha_calls_sdpa(x, params, n_heads, attention_mask):
    B, T, D = x.shape
    Dh = D // n_heads

    def heads(name):
        return (x @ params[f"{name}.weight"].T + params[f"{name}.bias"]).view(B, T, n_heads, Dh).transpose(1, 2)

    keep = None if attention_mask is None else attention_mask[:, None, None, :].bool()
    out = F.scaled_dot_product_attention(heads("q"), heads("k"), heads("v"), attn_mask=keep)
    return out.transpose(1, 2).reshape(B, T, D) @ params["o.weight"].T + params["o.bias"]


# ---- 2. causal mask with a past ----------------------------------------------------------------------
def causal_mask(T: int, P: int) -> torch.Tensor:
    """(T, P + T), True = query t (absolute position P + t) may see key s, i.e. s <= P + t."""
    return torch.ones(T, P + T, dtype=torch.bool).tril(diagonal=P)


def causal_mask_no_past(T: int, P: int) -> torch.Tensor:
    """Forgets the past: query 0 would not see the cached tokens in front of it."""
    return torch.ones(T, P + T, dtype=torch.bool).tril()


def causal_mask_inverted(T: int, P: int) -> torch.Tensor:
    return torch.ones(T, P + T, dtype=torch.bool).triu(diagonal=P + 1)


def causal_mask_square(T: int, P: int) -> torch.Tensor:
    return torch.ones(T, T, dtype=torch.bool).tril()


def causal_mask_additive(T: int, P: int) -> torch.Tensor:
    return torch.zeros(T, P + T).masked_fill(~causal_mask(T, P), float("-inf"))


# ---- 3. one decoder block from its parts -------------------------------------------------------------
def decoder_block(block, x, enc, enc_bias):
    """Post-LN: x = LN(x + SelfAttn(x, causal)); x = LN(x + CrossAttn(x, enc)); x = LN(x + FFN(x))."""
    x = block.attn_norm(x + block.attn(x, is_causal=True)[0])
    x = block.cross_norm(x + block.cross_attn(x, enc_bias, key_value_states=enc)[0])
    return block.ffn_norm(x + block.ffn(x))


def block_no_cross(block, x, enc, enc_bias):
    x = block.attn_norm(x + block.attn(x, is_causal=True)[0])
    return block.ffn_norm(x + block.ffn(x))


def block_pre_ln(block, x, enc, enc_bias):
    x = x + block.attn(block.attn_norm(x), is_causal=True)[0]
    x = x + block.cross_attn(block.cross_norm(x), enc_bias, key_value_states=enc)[0]
    return x + block.ffn(block.ffn_norm(x))


def block_not_causal(block, x, enc, enc_bias):
    x = block.attn_norm(x + block.attn(x)[0])
    x = block.cross_norm(x + block.cross_attn(x, enc_bias, key_value_states=enc)[0])
    return block.ffn_norm(x + block.ffn(x))


def block_calls_the_block(block, x, enc, enc_bias):
    return block(x, is_causal=True, encoder_hidden_states=enc, encoder_bias=enc_bias)[0]


# ---- 4. prediction: the decoder without its causal mask ----------------------------------------------
def predict():
    """Without the mask the decoder copies the next input: lower training loss, and generation fails."""
    return {"train_loss": "lower", "exact_match": "lower"}


def predict_loss_higher():
    return {"train_loss": "higher", "exact_match": "lower"}


def predict_em_higher():
    return {"train_loss": "lower", "exact_match": "higher"}


def predict_malformed():
    return {"train_loss": "down", "exact_match": "lower"}


WRONG = {
    1: [(mha_no_scale, "forgot the scale 1/√Dh"), (mha_wrong_axis, "softmax over the wrong axis"),
        (mha_no_mask, "forgot the padding mask"), (mha_zero_fill, "masked with 0 instead of -inf"),
        (mha_not_merged, "heads not merged back"), (mha_calls_the_module, "your code called MultiHeadAttention"),
        (mha_calls_sdpa, "your code called F.scaled_dot_product_attention")],
    2: [(causal_mask_no_past, "forgot the past"), (causal_mask_inverted, "inverted"),
        (causal_mask_square, "shape (T, P + T)"), (causal_mask_additive, "return a boolean tensor")],
    3: [(block_no_cross, "forgot the cross-attention"), (block_pre_ln, "this block is post-LN"),
        (block_not_causal, "forgot the causal mask"), (block_calls_the_block, "your code called Block.forward")],
}
