"""Exercise checkers of notebook 01 (the Transformer; Vaswani et al. 2017, arXiv:1706.03762).

    Attention(Q, K, V) = softmax(Q Kᵀ / √Dh + M) V        M = 0 where a key may be seen, -∞ where masked

Each `check_k(student_fn)` runs the student's function and the package's own implementation on fixed,
seeded inputs and compares them with `minitransformer.teaching.exercises.check_fn`:
None = not attempted (the stub raised NotImplementedError), True = correct, False = not yet (with what was
expected and what came). A wrong answer never raises.

1. `attention(q, k, v, mask)`: scaled dot-product attention; q (B, H, T, Dh), k and v (B, H, S, Dh),
   mask None or boolean broadcastable to (B, H, T, S) with True = may attend. Reference: the fused kernel
   `F.scaled_dot_product_attention` that `MultiHeadAttention` calls when `use_sdpa=True`.
2. `causal_mask(T, P)`: boolean (T, P + T), True = query t may see key s. Reference: `causal_bias`.
3. `count_params(config)`: the parameters of `Transformer(config)` in closed form. Reference: the model
   itself, built on the `meta` device (no memory, no init) and counted.
4. `split_heads(x, n_heads)`: (B, T, D) -> (B, H, T, Dh). Reference: `MultiHeadAttention._split`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ...attention import MultiHeadAttention, causal_bias
from ...config import TransformerConfig
from ..exercises import check_fn
from ...seq2seq import Transformer


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- 1. scaled dot-product attention ---------------------------------------------------------------
def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q kᵀ / √Dh, masked) v with the fused kernel; a boolean mask means True = attend."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, Dh)


def _attention_cases() -> list[tuple]:
    B, H, T, S, Dh = 2, 3, 4, 6, 8
    q, k, v = _randn(B, H, T, Dh, seed=1), _randn(B, H, S, Dh, seed=2), _randn(B, H, S, Dh, seed=3)
    qs, ks, vs = _randn(B, H, S, Dh, seed=4), _randn(B, H, S, Dh, seed=5), _randn(B, H, S, Dh, seed=6)
    padding = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)[:, None, None, :]
    causal = torch.ones(S, S, dtype=torch.bool).tril()[None, None]  # (1, 1, S, S)
    return [(q, k, v, None), (q, k, v, padding), (qs, ks, vs, causal), (qs, ks, vs, causal & padding)]


def check_1(attention: Callable) -> bool | None:
    """attention(q, k, v, mask) against the fused kernel, without a mask, with padding, causal and both."""
    return check_fn(1, attention, reference_attention, _attention_cases(), atol=1e-5,
                    describe="softmax(q kᵀ / √Dh + M) v")


# ---- 2. causal mask with a past --------------------------------------------------------------------
def reference_causal_mask(T: int, P: int) -> torch.Tensor:
    """Boolean (T, P + T): the positions where the package's additive causal bias is 0."""
    return causal_bias(T, P + T, torch.device("cpu"), torch.float32)[0, 0] == 0


def check_2(causal_mask: Callable) -> bool | None:
    """causal_mask(T, P) for no past, a past, one new token after a long past (generation), and a square one."""
    return check_fn(2, causal_mask, reference_causal_mask, [(4, 0), (3, 2), (1, 5), (5, 3)],
                    describe="query t sits at position P + t and sees keys 0 .. P + t")


# ---- 3. parameter count in closed form -------------------------------------------------------------
def reference_count_params(config: TransformerConfig) -> int:
    """Build the model on the meta device (shapes only) and count."""
    with torch.device("meta"):
        model = Transformer(config)
    return sum(p.numel() for p in model.parameters())


def check_3(count_params: Callable) -> bool | None:
    """count_params(config) on the notebook's model and on three other geometries."""
    cases = [
        TransformerConfig.mini_seq2seq(),
        TransformerConfig.mini_seq2seq(n_layers=3, n_decoder_layers=1, d_ff=128),
        TransformerConfig.mini_seq2seq(vocab_size=1000, d_model=32, n_heads=2, max_positions=100),
        TransformerConfig.tiny(n_decoder_layers=2, bos_token_id=1),  # with segment embeddings (S = 2)
    ]
    return check_fn(3, count_params, reference_count_params, cases, atol=0, describe="Transformer(config)")


# ---- 4. split heads --------------------------------------------------------------------------------
def reference_split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """What `MultiHeadAttention` does to q, k and v before the attention."""
    D = x.size(-1)
    attn = MultiHeadAttention(TransformerConfig.tiny(d_model=D, n_heads=n_heads))
    return attn._split(x)  # (B, H, T, Dh)


def check_4(split_heads: Callable) -> bool | None:
    """split_heads(x, H) on (B, T, D) inputs with 2, 4 and 1 heads."""
    cases = [(_randn(2, 5, 8, seed=7), 2), (_randn(1, 3, 12, seed=8), 4), (_randn(3, 2, 4, seed=9), 1)]
    return check_fn(4, split_heads, reference_split_heads, cases, describe="(B, T, D) -> (B, H, T, Dh)")
