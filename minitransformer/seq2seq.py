"""The original encoder-decoder Transformer (Vaswani et al. 2017, arXiv:1706.03762), post-LN.

    encoder:  z = Enc(x)                           self-attention over the source, padding mask
    decoder:  h = Dec(y_<t, z)                     causal self-attention, then cross-attention to z
    logits  = h E_wordᵀ                            one embedding matrix shared by source, target and output

Two simplifications, stated here: positions are learned (the paper's Table 3, row E, finds them as good as
sinusoids) and the embeddings are normalised by a LayerNorm as in BERT instead of scaled by √D.
Prefixes (prefix tuning for encoder-decoders, Li & Liang 2021, arXiv:2101.00190: z = [PREFIX; x; PREFIX′; y]),
one per attention sublayer, each per layer a pair (k, v) concatenated in front of that sublayer's keys/values:

    encoder_past_key_values   (B, H, P, Dh)    encoder self-attention; the source takes positions P .. P + S - 1
    past_key_values           (B, H, P, Dh)    decoder self-attention (= the KV cache); the target starts at P
    cross_past_key_values     (B, H, P′, Dh)   cross-attention: P′ + S keys, the P′ always attended

Module names: `encoder.layers.i.attn.{q,k,v,o}`, `decoder.layers.i.attn.*`, `decoder.layers.i.cross_attn.*`,
`*.ffn.{fc1,fc2}`, `embeddings.*` — the same names as in BERT and GPT.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Block, Embeddings
from .config import TransformerConfig
from .core import ModelOutput, build_bias, check_inputs, check_past, init_weights, lm_loss, run_blocks


class Stack(nn.Module):
    """A list of blocks; the decoder's blocks also cross-attend."""

    def __init__(self, config: TransformerConfig, n_layers: int, cross_attention: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(config, cross_attention) for _ in range(n_layers))


class Transformer(nn.Module):
    """Encoder-decoder with a shared, tied embedding. `generate()` decodes greedily with a KV cache.

    Sizes: S source length, T target length, P a self-attention past, P′ the cross-attention prefix."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if config.n_decoder_layers < 1:
            raise ValueError(f"Transformer needs TransformerConfig.n_decoder_layers >= 1, got {config.n_decoder_layers}")
        if config.bos_token_id is None:
            raise ValueError("Transformer needs TransformerConfig.bos_token_id (the decoder's start token)")
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Stack(config, config.n_layers, cross_attention=False)
        self.decoder = Stack(config, config.n_decoder_layers, cross_attention=True)
        init_weights(self)

    def encode(self, input_ids=None, attention_mask=None, inputs_embeds=None, past_key_values=None,
               output_attentions: bool = False) -> ModelOutput:
        """Source (B, S) -> `hidden_states` (B, S, D). `past_key_values` here is an encoder prefix (B, H, P, Dh);
        `attention_mask` is then (B, S) or (B, P + S)."""
        B, S, P = check_inputs(self.config, len(self.encoder.layers), input_ids, inputs_embeds, attention_mask,
                               None, past_key_values)
        x = self.embeddings(input_ids, inputs_embeds, past_length=P)
        bias, _ = build_bias(attention_mask, B, S, P, False, x.dtype, x.device)
        x, _, maps, _ = run_blocks(self.encoder.layers, x, bias, False, past_key_values, False,
                                   output_attentions, False)
        return ModelOutput(hidden_states=x, attentions=maps)

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: decoder input = [bos, y_1, ..., y_{T-1}] (-100 labels become padding)."""
        dec = labels.new_full(labels.shape, self.config.pad_token_id)
        dec[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, self.config.pad_token_id)
        dec[:, 0] = self.config.bos_token_id
        return dec

    def forward(
        self,
        input_ids: torch.Tensor | None = None,  # (B, S) source
        attention_mask: torch.Tensor | None = None,  # (B, S), 1 = attend; (B, P + S) with an encoder prefix
        decoder_input_ids: torch.Tensor | None = None,  # (B, T) target, starting with bos
        decoder_attention_mask: torch.Tensor | None = None,  # (B, T) or (B, P + T)
        labels: torch.Tensor | None = None,  # (B, T); if given without decoder_input_ids they are shifted
        past_key_values=None,  # decoder self-attention: KV cache or prefix, per layer (k, v), each (B, H, P, Dh)
        use_cache: bool = False,
        encoder_hidden_states: torch.Tensor | None = None,  # (B, S, D): reuse an earlier `encode` (generation)
        inputs_embeds: torch.Tensor | None = None,  # (B, S, D) instead of input_ids
        decoder_inputs_embeds: torch.Tensor | None = None,  # (B, T, D) instead of decoder_input_ids
        encoder_past_key_values=None,  # an encoder prefix, per encoder layer (k, v), each (B, H, P, Dh)
        output_attentions: bool = False,
        cross_past_key_values=None,  # a cross-attention prefix, per decoder layer (k, v), each (B, H, P′, Dh)
    ) -> ModelOutput:
        """Logits (B, T, V). Extension points as in BERT/GPT, for the encoder, the decoder and the
        cross-attention. With `output_attentions` the decoder's maps are per layer (self (B, H, T, P + T),
        cross (B, H, T, P′ + S))."""
        if encoder_hidden_states is None:
            enc = self.encode(input_ids, attention_mask, inputs_embeds, encoder_past_key_values, output_attentions)
            encoder_hidden_states = enc.hidden_states  # (B, S, D)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if labels is None:
                raise ValueError("Transformer.forward needs decoder_input_ids, decoder_inputs_embeds or labels")
            decoder_input_ids = self.shift_right(labels)
        B, T, P = check_inputs(self.config, len(self.decoder.layers), decoder_input_ids, decoder_inputs_embeds,
                               decoder_attention_mask, None, past_key_values)
        P_cross = check_past(self.config, len(self.decoder.layers), B, cross_past_key_values,
                             "cross_past_key_values", "P′")
        y = self.embeddings(decoder_input_ids, decoder_inputs_embeds, past_length=P)  # (B, T, D)
        bias, is_causal = build_bias(decoder_attention_mask, B, T, P, True, y.dtype, y.device)
        S = encoder_hidden_states.size(1)
        src_mask = attention_mask
        if src_mask is not None:
            if src_mask.dim() != 2 or src_mask.size(0) != B or src_mask.size(1) < S:
                raise ValueError(f"attention_mask must have shape (B, S) = {(B, S)} or (B, P + S) with an encoder "
                                 f"prefix, got {tuple(src_mask.shape)}")
            src_mask = src_mask[:, -S:]  # (B, S): the encoder prefix has no output to cross-attend to
        # cross-attention keys: [P′ prefix; S source], the prefix always attended
        enc_bias, _ = build_bias(src_mask, B, S, P_cross, False, y.dtype, y.device)  # (B, 1, 1, P′ + S) or None
        y, presents, maps, _ = run_blocks(self.decoder.layers, y, bias, is_causal, past_key_values, use_cache,
                                          output_attentions, False, encoder_hidden_states, enc_bias,
                                          cross_past_key_values)
        logits = y @ self.embeddings.word_embeddings.weight.T  # (B, T, V), tied
        loss = lm_loss(logits, labels, shift=False) if labels is not None else None
        return ModelOutput(logits=logits, loss=loss, hidden_states=y, past_key_values=presents, attentions=maps,
                           encoder_hidden_states=encoder_hidden_states)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,  # (B, S) source
        max_new_tokens: int = 32,
        attention_mask=None,  # (B, S) source padding; (B, P + S) with an encoder prefix
        use_cache: bool = True,
        eos_token_id: int | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,  # (B, S, D) source as embeddings (soft prompts)
        encoder_past_key_values=None,  # encoder prefix, per encoder layer (k, v), each (B, H, P, Dh)
        past_key_values=None,  # decoder self-attention prefix, per decoder layer (k, v), each (B, H, P, Dh)
        cross_past_key_values=None,  # cross-attention prefix, per decoder layer (k, v), each (B, H, P′, Dh)
    ) -> torch.Tensor:
        """Greedy decoding: encode once, then one token per step. Returns (B, N) generated ids (no bos).

        The cache holds the decoder's self-attention keys/values; a decoder prefix `past_key_values` is the
        start of that cache, so the target's tokens take positions P, P + 1, ... as in GPT. Without the cache
        each step reruns the whole target after the same prefix: both give the same tokens (tested). The
        cross-attention keys/values are recomputed from the (fixed) encoder output each step, which is cheap
        at this size; `cross_past_key_values` is put in front of them at every step.
        """
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        enc = self.encode(input_ids, attention_mask, inputs_embeds, encoder_past_key_values).hidden_states
        B, device = enc.size(0), enc.device
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        ys = torch.full((B, 1), self.config.bos_token_id, dtype=torch.long, device=device)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        cache = past_key_values  # the prefix, then (with use_cache) prefix + every token so far
        for _ in range(max_new_tokens):
            step = ys[:, -1:] if use_cache else ys
            out = self(attention_mask=attention_mask, decoder_input_ids=step, encoder_hidden_states=enc,
                       past_key_values=cache, use_cache=use_cache, cross_past_key_values=cross_past_key_values)
            cache = out.past_key_values if use_cache else past_key_values
            nxt = out.logits[:, -1].argmax(-1)  # (B,)
            if eos is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
                done |= nxt == eos
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            if eos is not None and bool(done.all()):
                break
        return ys[:, 1:]
