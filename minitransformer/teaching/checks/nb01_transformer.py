"""Exercise checkers of notebook 01 (the Transformer; Vaswani et al. 2017, arXiv:1706.03762).

    Attention(Q, K, V) = softmax(Q Kᵀ / √Dh + M) V        M = 0 where a key may be seen, -∞ where masked

Each `check_k(...)` runs the student's function and the package's own code on fixed, seeded inputs:
None = not attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer
never raises. On a wrong answer the checker also computes the usual mistakes (no 1/√Dh, softmax over the
wrong axis, mask forgotten or filled with 0, heads not merged back, ...) and, when the student's result equals
one of them, names that mistake instead of printing a bare expected/got.

While the student's function runs, the package functions that would answer the exercise by themselves
(`MultiHeadAttention.forward`, `F.scaled_dot_product_attention`, `causal_bias`, `Block.forward`, ...) are
replaced by tripwires: calling one gives "not yet — your code called ...", since the point is to build it.

1. `multi_head_attention(x, params, n_heads, attention_mask)`: masked multi-head self-attention from the
   weights alone; must equal `MultiHeadAttention(x, padding bias)` to 1e-6.
2. `causal_mask(T, P)`: boolean (T, P + T), True = query t may see key s; must equal `causal_bias(...) == 0`.
3. `decoder_block(block, x, enc, enc_bias)`: one post-LN decoder block from its sub-modules; must equal
   `Block.forward` to 1e-6.
4. `predict()` -> {"train_loss": ..., "exact_match": ...}: a prediction, each "lower" or "higher", of what
   removing the decoder's causal mask does; checked against the measured run (`check_4(predict, measured)`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ... import attention as _attention
from ... import core as _core
from ...attention import MultiHeadAttention
from ...blocks import Block
from ...config import TransformerConfig
from ...seq2seq import Transformer
from ..exercises import check_parity, run_student

ATOL = 1e-6  # parity with the package
VARIANT_ATOL = 1e-5  # "equals this common mistake" (a different order of float operations is allowed)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- 1. masked multi-head attention from the weights -------------------------------------------------
def _attention_module(D: int, H: int, seed: int) -> MultiHeadAttention:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MultiHeadAttention(TransformerConfig.tiny(d_model=D, n_heads=H, dropout=0.0, attn_dropout=0.0)).eval()


def reference_attention(x: torch.Tensor, params: dict, n_heads: int, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """`MultiHeadAttention` with these weights, on x (B, T, D) with a (B, T) padding mask (1 = real)."""
    B, T, D = x.shape
    attn = MultiHeadAttention(TransformerConfig.tiny(d_model=D, n_heads=n_heads, dropout=0.0, attn_dropout=0.0)).eval()
    attn.load_state_dict(params)
    bias, _ = _core.build_bias(attention_mask, B, T, 0, False, x.dtype, x.device)  # (B, 1, 1, T) or None
    return attn(x, bias)[0]  # (B, T, D)


def _attention_variant(x, params, n_heads, attention_mask, *, scale="sqrt_dh", softmax_dim=-1, mask="min",
                       split="transpose", merge="transpose", out_proj=True, transpose_w=True, bias=True):
    """Multi-head attention with one thing done a common wrong way (the defaults are the right way)."""
    B, T, D = x.shape
    H, Dh = n_heads, D // n_heads

    def linear(name, inp):
        W, b = params[f"{name}.weight"], params[f"{name}.bias"]
        return inp @ (W.T if transpose_w else W) + (b if bias else 0)

    def cut(t):  # (B, T, D) -> (B, H, T, Dh)
        return t.view(B, T, H, Dh).transpose(1, 2) if split == "transpose" else t.reshape(B, H, T, Dh)

    q, k, v = cut(linear("q", x)), cut(linear("k", x)), cut(linear("v", x))
    scores = q @ k.transpose(-2, -1)
    scores = scores / {"sqrt_dh": math.sqrt(Dh), "dh": Dh, "sqrt_d": math.sqrt(D), "none": 1.0}[scale]
    keep = None if attention_mask is None else attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
    if keep is not None and mask in ("min", "-inf"):
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min if mask == "min" else float("-inf"))
    elif keep is not None and mask == "zero":
        scores = scores.masked_fill(~keep, 0.0)
    elif keep is not None and mask == "queries":
        scores = scores.masked_fill(~attention_mask.bool()[:, None, :, None], torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=softmax_dim)
    if keep is not None and mask == "after":
        probs = probs * keep
    out = probs @ v  # (B, H, T, Dh)
    out = out.transpose(1, 2).reshape(B, T, D) if merge == "transpose" else out.reshape(B, T, D)
    return linear("o", out) if out_proj else out


def _attention_hint(**wrong) -> Callable:
    """The mistake, computed with the mask filled with the most negative float and with -inf: the two agree
    except where a whole softmax slice is masked (then -inf gives NaN), which a wrong axis can cause."""
    fills = ["min", "-inf"] if "mask" not in wrong else [wrong.pop("mask")]
    return lambda x, params, n_heads, m: [_attention_variant(x, params, n_heads, m, mask=f, **wrong) for f in fills]


ATTENTION_HINTS = [
    ("forgot the scale 1/√Dh? The scores are q·k / √Dh, Dh = D / H (one head's width)", _attention_hint(scale="none")),
    ("divided by Dh instead of √Dh?", _attention_hint(scale="dh")),
    ("scaled by 1/√D (the full width) instead of 1/√Dh (one head's width)?", _attention_hint(scale="sqrt_d")),
    ("softmax over the wrong axis: each query's weights over the keys (the last axis) must sum to 1",
     _attention_hint(softmax_dim=-2)),
    ("forgot the padding mask? Padding keys must get weight exactly 0", _attention_hint(mask="none")),
    ("masked with 0 instead of -inf (or the most negative float): a score of 0 still gets weight e^0 after the "
     "softmax", _attention_hint(mask="zero")),
    ("zeroed the masked weights after the softmax: the others then no longer sum to 1 — mask the scores "
     "before the softmax", _attention_hint(mask="after")),
    ("masked the padding queries (rows) instead of the padding keys (columns)?", _attention_hint(mask="queries")),
    ("heads not merged back: transpose (B, H, T, Dh) to (B, T, H, Dh) before reshaping to (B, T, D)",
     _attention_hint(merge="reshape")),
    ("heads cut with a plain reshape to (B, H, T, Dh): head h must get the features h·Dh .. (h+1)·Dh − 1 of "
     "every token — view as (B, T, H, Dh), then transpose", _attention_hint(split="reshape")),
    ("heads cut with a plain reshape and merged back with one: head h must get the features h·Dh .. "
     "(h+1)·Dh − 1 of every token — view as (B, T, H, Dh), then transpose", _attention_hint(split="reshape",
                                                                                        merge="reshape")),
    ("forgot the output projection W_O (params['o.weight'], params['o.bias'])?", _attention_hint(out_proj=False)),
    ("nn.Linear stores its weight as (out, in): a projection is x @ W.T + b, not x @ W", _attention_hint(transpose_w=False)),
    ("forgot the biases of the projections (params['q.bias'], ...)?", _attention_hint(bias=False)),
]


def _attention_cases() -> list[tuple]:
    cases = []
    for (B, T, D, H, seed, mask) in [
        (2, 5, 16, 2, 11, torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])),
        (3, 6, 24, 4, 12, torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]])),
        (2, 4, 16, 2, 13, None),
        (1, 7, 12, 1, 14, torch.tensor([[1, 1, 1, 1, 1, 0, 0]])),
    ]:
        params = {k: v.detach().clone() for k, v in _attention_module(D, H, seed).state_dict().items()}
        cases.append((_randn(B, T, D, seed=seed), params, H, mask))
    return cases


def attention_inputs() -> tuple:
    """The first case of exercise 1 (x, params, n_heads, attention_mask), to try the student's code on."""
    return _attention_cases()[0]


def check_1(multi_head_attention: Callable) -> bool | None:
    """multi_head_attention(x, params, n_heads, attention_mask) against `MultiHeadAttention` (atol 1e-6)."""
    forbidden = [(MultiHeadAttention, "forward", "MultiHeadAttention"),
                 (MultiHeadAttention, "_split", "MultiHeadAttention._split"),
                 (F, "scaled_dot_product_attention", "F.scaled_dot_product_attention"),
                 (F, "multi_head_attention_forward", "F.multi_head_attention_forward"),
                 (nn.MultiheadAttention, "forward", "nn.MultiheadAttention"),
                 (Block, "forward", "Block"),
                 (sys.modules[__name__], "_attention_variant", "the checker's own code")]
    return check_parity(1, multi_head_attention, reference_attention, _attention_cases(), ATTENTION_HINTS,
                        forbidden=forbidden, no_grad=True, build_from="tensor operations",
                        describe="equals MultiHeadAttention to 1e-6, with and without padding, 1 to 4 heads")


# ---- 2. causal mask with a past ---------------------------------------------------------------------
def reference_causal_mask(T: int, P: int) -> torch.Tensor:
    """Boolean (T, P + T): the positions where the package's additive causal bias is 0."""
    return _attention.causal_bias(T, P + T, torch.device("cpu"), torch.float32)[0, 0] == 0


CAUSAL_HINTS = [
    ("forgot the past: query t sits at absolute position P + t, so it sees keys 0 .. P + t "
     "(a lower triangle shifted right by P)", lambda T, P: torch.ones(T, P + T, dtype=torch.bool).tril()),
    ("off by one: query t must also see its own key s = P + t",
     lambda T, P: torch.ones(T, P + T, dtype=torch.bool).tril(diagonal=P - 1)),
    ("inverted: True must mean 'may attend' (as in attention_mask, where 1 = attend)",
     lambda T, P: ~reference_causal_mask(T, P)),
    ("that is the future (the upper triangle): query t may see keys s <= P + t, not s >= P + t",
     lambda T, P: torch.ones(T, P + T, dtype=torch.bool).triu(diagonal=P)),
]


def _causal_shape_hint(case, want, got) -> str | None:
    T, P = case
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (T, T) and P > 0:
        return f"the keys are the P = {P} cached tokens and the T = {T} new ones: shape (T, P + T) = {(T, P + T)}"
    if isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype != torch.bool:
        return (f"return a boolean tensor (True = may attend), not {got.dtype}: an additive bias is what the "
                f"package builds from it")
    return None


def check_2(causal_mask: Callable) -> bool | None:
    """causal_mask(T, P) with a past, without one, one new token after a long past (generation), T > P."""
    forbidden = [(_attention, "causal_bias", "causal_bias"), (_core, "build_bias", "build_bias")]
    return check_parity(2, causal_mask, reference_causal_mask, [(3, 2), (4, 0), (1, 5), (5, 3)], CAUSAL_HINTS,
                        forbidden=forbidden, no_grad=True, build_from="tensor operations",
                        describe="query t sits at position P + t and sees keys 0 .. P + t",
                        shape_hint=_causal_shape_hint)


# ---- 3. one decoder block from its parts -------------------------------------------------------------
def _decoder_block(seed: int) -> Block:
    """A post-LN decoder block (self-attention, cross-attention, FFN) with random weights, LayerNorms included."""
    cfg = TransformerConfig.tiny(d_model=16, n_heads=2, d_ff=64, dropout=0.0, attn_dropout=0.0, layer_norm_eps=1e-5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = Block(cfg, cross_attention=True)
        for norm in (block.attn_norm, block.cross_norm, block.ffn_norm):  # not the identity, so order matters
            nn.init.normal_(norm.weight, 1.0, 0.3)
            nn.init.normal_(norm.bias, 0.0, 0.3)
    return block.eval()


def reference_decoder_block(block: Block, x: torch.Tensor, enc: torch.Tensor, enc_bias: torch.Tensor) -> torch.Tensor:
    """What `Block.forward` returns for a decoder block in training (no cache): (B, T, D)."""
    return block(x, None, True, None, False, False, enc, enc_bias)[0]


def _block_variant(block, x, enc, enc_bias, *, cross=True, causal=True, residual=True, pre_ln=False,
                   cross_first=False, source_mask=True, ffn=True):
    """A decoder block with one thing done a common wrong way (the defaults are the right way)."""
    def sub(norm, f, h):
        if pre_ln:
            return h + f(norm(h))
        return norm(h + f(h)) if residual else norm(f(h))

    def self_attn(h):
        return block.attn(h, None, causal)[0]

    def cross_attn(h):
        return block.cross_attn(h, enc_bias if source_mask else None, False, enc)[0]

    steps = [(block.attn_norm, self_attn), (block.cross_norm, cross_attn)]
    if cross_first:
        steps = steps[::-1]
    if not cross:
        steps = steps[:1]
    for norm, f in steps:
        x = sub(norm, f, x)
    return sub(block.ffn_norm, block.ffn, x) if ffn else x


def _block_hint(**wrong) -> Callable:
    return lambda block, x, enc, enc_bias: _block_variant(block, x, enc, enc_bias, **wrong)


BLOCK_HINTS = [
    ("forgot the cross-attention (block.cross_attn: queries from x, keys and values from enc)?",
     _block_hint(cross=False)),
    ("forgot the causal mask in the self-attention (is_causal=True)? The decoder must not read ahead",
     _block_hint(causal=False)),
    ("forgot the source padding mask (enc_bias) in the cross-attention?", _block_hint(source_mask=False)),
    ("LayerNorm before the sub-layer is pre-LN (GPT-2); this block is post-LN: x = LN(x + sublayer(x))",
     _block_hint(pre_ln=True)),
    ("forgot the residual: each sub-layer gives LN(x + sublayer(x)), not LN(sublayer(x))",
     _block_hint(residual=False)),
    ("cross-attention comes after the causal self-attention, not before", _block_hint(cross_first=True)),
    ("forgot the FFN sub-layer (block.ffn, then block.ffn_norm)?", _block_hint(ffn=False)),
]


def _block_cases() -> list[tuple]:
    cases = []
    for (B, T, S, seed, keep) in [(2, 4, 6, 21, [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
                                  (1, 5, 3, 22, [[1, 1, 0]])]:
        mask = torch.tensor(keep)
        enc_bias, _ = _core.build_bias(mask, B, S, 0, False, torch.float32, torch.device("cpu"))  # (B, 1, 1, S)
        cases.append((_decoder_block(seed), _randn(B, T, 16, seed=seed), _randn(B, S, 16, seed=seed + 100), enc_bias))
    return cases


def block_inputs() -> tuple:
    """The first case of exercise 3 (block, x, enc, enc_bias), to try the student's code on."""
    return _block_cases()[0]


def check_3(decoder_block: Callable) -> bool | None:
    """decoder_block(block, x, enc, enc_bias) against `Block.forward` (atol 1e-6)."""
    forbidden = [(Block, "forward", "Block.forward (the block itself)"),
                 (_core, "run_blocks", "run_blocks"),
                 (Transformer, "forward", "Transformer"),
                 (sys.modules[__name__], "_block_variant", "the checker's own code")]
    return check_parity(3, decoder_block, reference_decoder_block, _block_cases(), BLOCK_HINTS, forbidden=forbidden,
                        no_grad=True,
                        describe="equals Block.forward to 1e-6: self-attention, cross-attention, FFN, each "
                                 "LN(x + sublayer(x))",
                        build_from="the block's sub-modules (block.attn, block.cross_attn, block.ffn, the LayerNorms)")


# ---- 4. prediction: the decoder without its causal mask ----------------------------------------------
PREDICTION_KEYS = ("train_loss", "exact_match")
WHY = {
    "train_loss": ("with teacher forcing the decoder's input at position t + 1 is the very character position t "
                   "must predict; without the mask position t can read it and copy it, which is far easier than "
                   "reading the source, so the training loss falls lower"),
    "exact_match": ("at generation the next character does not exist yet — the model writes one character at a "
                    "time and each step sees only what is already written; a model that learned to copy the "
                    "next input has nothing to copy, so free generation fails"),
}


def check_4(predict: Callable, measured: dict) -> bool | None:
    """predict() -> {"train_loss": "lower"|"higher", "exact_match": "lower"|"higher"}: the model trained
    WITHOUT the decoder's causal mask, compared with the one trained with it. `measured` holds the run's
    numbers: {"train_loss": (with_mask, without_mask), "exact_match": (with_mask, without_mask)}."""
    if set(measured) != set(PREDICTION_KEYS) or any(len(measured[key]) != 2 for key in PREDICTION_KEYS):
        raise ValueError(f"check_4: measured must be {{'train_loss': (with, without), 'exact_match': (with, "
                         f"without)}}, got {measured!r}")
    status, answer = run_student(4, predict, ())
    if status == "stub":
        print("Exercise 4: not attempted yet")
        return None
    allowed = {"lower", "higher"}
    if not isinstance(answer, dict) or set(answer) != set(PREDICTION_KEYS) or not set(answer.values()) <= allowed:
        print(f"Exercise 4: not yet — answer with a dict {{'train_loss': 'lower' or 'higher', 'exact_match': "
              f"'lower' or 'higher'}} (the model without the mask, compared with the one with it), got {answer!r}")
        return False
    wrong = []
    for key in PREDICTION_KEYS:
        with_mask, without_mask = measured[key]
        if without_mask == with_mask:
            print(f"Exercise 4: the run was too short to tell for {key} (both {with_mask:.4g})")
            continue
        actual = "lower" if without_mask < with_mask else "higher"
        if answer[key] != actual:
            wrong.append(f"{key} came out {actual} ({with_mask:.4g} with the mask, {without_mask:.4g} without): "
                         f"{WHY[key]}")
    if wrong:
        print("Exercise 4: not yet — " + "; ".join(wrong))
        return False
    print(f"Exercise 4: correct (without the causal mask: train loss {measured['train_loss'][1]:.4g} vs "
          f"{measured['train_loss'][0]:.4g}, exact match {measured['exact_match'][1]:.4g} vs "
          f"{measured['exact_match'][0]:.4g}) — {WHY['train_loss']}; {WHY['exact_match']}")
    return True
