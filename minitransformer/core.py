"""What every model's forward shares: the output dataclass, input checks, masks, and the loop over blocks.

The three extension points of every model (documented again in each forward):

- `inputs_embeds` (B, T, D) instead of `input_ids` (B, T): prompt tuning and P-tuning build these.
- `attention_mask` (B, T) or (B, P + T), 1 = attend, 0 = padding. A (B, T) mask with a past of length P
  means "attend to the whole past"; a (B, P + T) mask also says which past positions count.
- `past_key_values`: per layer a pair (k, v), each (B, H, P, Dh). A KV cache during generation, a learned
  prefix in prefix tuning: the same thing. The T real tokens take positions P .. P + T - 1.

The encoder-decoder has one such past per attention sublayer (prefix tuning for encoder-decoders, Li & Liang
2021, arXiv:2101.00190): `encoder_past_key_values` (encoder self-attention), `past_key_values` (decoder
self-attention) and `cross_past_key_values` (cross-attention: P′ keys/values in front of the S source
positions; they take no position, and are always attended).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import KV, causal_bias
from .config import TransformerConfig


@dataclass
class ModelOutput:
    """What every forward returns. `hidden_states` is the last layer's output (B, T, D)."""

    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None
    past_key_values: tuple[KV, ...] | None = None
    pooled_output: torch.Tensor | None = None  # BERT: tanh(W h_[CLS] + b)
    all_hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + every layer, if asked
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, P + T), if asked
    encoder_hidden_states: torch.Tensor | None = None  # encoder-decoder only


def _shape(t) -> str:
    return "None" if t is None else str(tuple(t.shape))


def check_past(config: TransformerConfig, n_layers: int, B: int, past, name: str = "past_key_values",
               length: str = "P") -> int:
    """Validate a past (KV cache or prefix): `n_layers` pairs (k, v), each (B, H, P, Dh) with one P for every
    layer. Returns P (0 when `past` is None). `name` and `length` are the argument and its length in errors."""
    if past is None:
        return 0
    if len(past) != n_layers:
        raise ValueError(f"{name} must hold one (k, v) pair per layer: wanted {n_layers}, got {len(past)}")
    first = past[0][0] if len(past[0]) == 2 else None
    P = first.size(2) if first is not None and first.dim() == 4 else 0
    want = (B, config.n_heads, P, config.head_dim)  # every layer's past has the same length P
    for i, kv in enumerate(past):
        if len(kv) != 2:
            raise ValueError(f"{name}[{i}] must be a pair (k, v), got {len(kv)} items")
        for k_or_v, t in zip("kv", kv):
            if tuple(t.shape) != want:
                raise ValueError(f"{name}[{i}].{k_or_v} must have shape (B, H, {length}, Dh) = {want}, "
                                 f"got {_shape(t)}")
    return P


def check_inputs(
    config: TransformerConfig,
    n_layers: int,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    past_key_values,
) -> tuple[int, int, int]:
    """Validate the forward's arguments; return (B, T, P). Every error names the argument and both shapes."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError(
            "pass exactly one of input_ids (B, T) or inputs_embeds (B, T, D); got "
            f"input_ids={_shape(input_ids)}, inputs_embeds={_shape(inputs_embeds)}"
        )
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (B, T), got {_shape(input_ids)}")
        B, T = input_ids.shape
    else:
        if inputs_embeds.dim() != 3 or inputs_embeds.size(-1) != config.d_model:
            raise ValueError(f"inputs_embeds must have shape (B, T, D={config.d_model}), got {_shape(inputs_embeds)}")
        B, T = inputs_embeds.shape[:2]
    P = check_past(config, n_layers, B, past_key_values)
    if P + T > config.max_positions:
        raise ValueError(f"sequence too long: past length {P} + input length {T} = {P + T} > "
                         f"max_positions={config.max_positions}")
    if attention_mask is not None and tuple(attention_mask.shape) not in {(B, T), (B, P + T)}:
        raise ValueError(f"attention_mask must have shape (B, T) = {(B, T)} or (B, P + T) = {(B, P + T)}, "
                         f"got {_shape(attention_mask)}")
    if token_type_ids is not None and tuple(token_type_ids.shape) != (B, T):
        raise ValueError(f"token_type_ids must have shape (B, T) = {(B, T)}, got {_shape(token_type_ids)}")
    if input_ids is not None and input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
        raise ValueError(f"input_ids must be in [0, vocab_size={config.vocab_size}), got values "
                         f"{int(input_ids.min())} .. {int(input_ids.max())}")
    return B, T, P


def padding_bias(attention_mask: torch.Tensor | None, B: int, T: int, P: int, dtype: torch.dtype):
    """Boolean key mask (B, 1, 1, P + T), True = attend; None when every key may be attended."""
    if attention_mask is None:
        return None
    m = attention_mask.bool()
    if m.size(1) == T and P > 0:  # a (B, T) mask with a past: the whole past is attended
        m = torch.cat([m.new_ones(B, P), m], dim=1)
    return m[:, None, None, :]


def build_bias(attention_mask, B: int, T: int, P: int, causal: bool, dtype: torch.dtype, device):
    """Combine padding and causal masks into one additive bias, or (None, is_causal) when none is needed.

    The masks are combined as booleans first and turned into -finfo.max once, so a position masked twice
    never overflows to -inf (a fully masked row would then give NaN instead of a harmless uniform row).
    """
    keep = padding_bias(attention_mask, B, T, P, dtype)
    if keep is None:
        if not causal:
            return None, False
        if P == 0:
            return None, True  # fused kernels have a fast path for a plain causal mask
        return causal_bias(T, P + T, device, dtype), False
    if causal:
        keep = keep & (causal_bias(T, P + T, device, dtype) == 0)
    bias = torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill(~keep, torch.finfo(dtype).min)
    return bias, False


def run_blocks(
    layers: nn.ModuleList,
    x: torch.Tensor,
    attn_bias,
    is_causal: bool,
    past_key_values,
    use_cache: bool,
    output_attentions: bool,
    output_hidden_states: bool,
    encoder_hidden_states: torch.Tensor | None = None,
    encoder_bias: torch.Tensor | None = None,
    cross_past_key_values=None,
) -> tuple[torch.Tensor, tuple | None, tuple | None, tuple | None]:
    """The explicit loop over blocks. Returns (x, presents, attentions, all hidden states).

    `encoder_hidden_states` (B, S, D), `encoder_bias` (B, 1, 1, P′ + S) and `cross_past_key_values` (per layer
    (k, v), each (B, H, P′, Dh), a cross-attention prefix) are for the decoder of the encoder-decoder only."""
    presents, maps, states = [], [], [x]
    for i, block in enumerate(layers):
        past = None if past_key_values is None else past_key_values[i]
        cross = None if cross_past_key_values is None else cross_past_key_values[i]
        x, present, w = block(x, attn_bias, is_causal, past, use_cache, output_attentions,
                              encoder_hidden_states, encoder_bias, cross)
        presents.append(present)
        maps.append(w if len(w) > 1 else w[0])
        states.append(x)
    return (x, tuple(presents) if use_cache else None, tuple(maps) if output_attentions else None,
            tuple(states) if output_hidden_states else None)


def mean_pool(h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of the real tokens' states: (B, T, D), mask (B, T) with 1 = real -> (B, D). The one mean pooling
    of the project (the classifier's `pooling="mean"`, the frozen probe, distillation)."""
    if attention_mask is None:
        return h.mean(1)
    m = attention_mask.to(h.dtype)[..., None]  # (B, T, 1)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, shift: bool) -> torch.Tensor:
    """Cross-entropy over the vocabulary; -100 labels are ignored. `shift`: predict token t+1 from t."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT/GPT-2 init: N(0, 0.02) for linear and embedding weights, zero biases, LayerNorm = identity."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
