"""The original encoder-decoder Transformer (Vaswani et al. 2017, arXiv:1706.03762), post-LN.

    encoder:  z = Enc(x)                           self-attention over the source, padding mask
    decoder:  h = Dec(y_<t, z)                     causal self-attention, then cross-attention to z
    logits  = h E_wordᵀ                            one embedding matrix shared by source, target and output

Two simplifications, stated here: positions are learned (the paper's Table 3, row E, finds them as good as
sinusoids) and the embeddings are normalised by a LayerNorm as in BERT instead of scaled by √D.
Module names: `encoder.layers.i.attn.{q,k,v,o}`, `decoder.layers.i.attn.*`, `decoder.layers.i.cross_attn.*`,
`*.ffn.{fc1,fc2}`, `embeddings.*` — the same names as in BERT and GPT.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Block, Embeddings
from .config import TransformerConfig
from .core import ModelOutput, build_bias, check_inputs, init_weights, lm_loss, run_blocks


class Stack(nn.Module):
    """A list of blocks; the decoder's blocks also cross-attend."""

    def __init__(self, config: TransformerConfig, n_layers: int, cross_attention: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(config, cross_attention) for _ in range(n_layers))


class Transformer(nn.Module):
    """Encoder-decoder with a shared, tied embedding. `generate()` decodes greedily with a KV cache."""

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
        """Source (B, S) -> `hidden_states` (B, S, D). `past_key_values` here is an encoder prefix."""
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
        attention_mask: torch.Tensor | None = None,  # (B, S) source padding, 1 = attend
        decoder_input_ids: torch.Tensor | None = None,  # (B, T) target, starting with bos
        decoder_attention_mask: torch.Tensor | None = None,  # (B, T) or (B, P + T)
        labels: torch.Tensor | None = None,  # (B, T); if given without decoder_input_ids they are shifted
        past_key_values=None,  # decoder self-attention: KV cache or prefix, per layer (k, v)
        use_cache: bool = False,
        encoder_hidden_states: torch.Tensor | None = None,  # reuse an earlier `encode` (generation)
        inputs_embeds: torch.Tensor | None = None,  # (B, S, D) instead of input_ids
        decoder_inputs_embeds: torch.Tensor | None = None,  # (B, T, D) instead of decoder_input_ids
        encoder_past_key_values=None,  # an encoder prefix, per encoder layer (k, v)
        output_attentions: bool = False,
    ) -> ModelOutput:
        """Logits (B, T, V). Extension points as in BERT/GPT, for both the encoder and the decoder."""
        if encoder_hidden_states is None:
            enc = self.encode(input_ids, attention_mask, inputs_embeds, encoder_past_key_values, output_attentions)
            encoder_hidden_states = enc.hidden_states  # (B, S, D)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if labels is None:
                raise ValueError("Transformer.forward needs decoder_input_ids, decoder_inputs_embeds or labels")
            decoder_input_ids = self.shift_right(labels)
        B, T, P = check_inputs(self.config, len(self.decoder.layers), decoder_input_ids, decoder_inputs_embeds,
                               decoder_attention_mask, None, past_key_values)
        y = self.embeddings(decoder_input_ids, decoder_inputs_embeds, past_length=P)  # (B, T, D)
        bias, is_causal = build_bias(decoder_attention_mask, B, T, P, True, y.dtype, y.device)
        S = encoder_hidden_states.size(1)
        enc_bias, _ = build_bias(attention_mask, B, S, 0, False, y.dtype, y.device)  # (B, 1, 1, S)
        y, presents, maps, _ = run_blocks(self.decoder.layers, y, bias, is_causal, past_key_values, use_cache,
                                          output_attentions, False, encoder_hidden_states, enc_bias)
        logits = y @ self.embeddings.word_embeddings.weight.T  # (B, T, V), tied
        loss = lm_loss(logits, labels, shift=False) if labels is not None else None
        return ModelOutput(logits=logits, loss=loss, hidden_states=y, past_key_values=presents, attentions=maps,
                           encoder_hidden_states=encoder_hidden_states)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int = 32, attention_mask=None,
                 use_cache: bool = True, eos_token_id: int | None = None) -> torch.Tensor:
        """Greedy decoding: encode once, then one token per step. Returns (B, N) generated ids (no bos).

        The cache holds the decoder's self-attention keys/values; the cross-attention keys/values are
        recomputed from the (fixed) encoder output each step, which is cheap at this size.
        """
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        enc = self.encode(input_ids, attention_mask).hidden_states
        B = input_ids.size(0)
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        ys = torch.full((B, 1), self.config.bos_token_id, dtype=torch.long, device=input_ids.device)
        done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        cache = None
        for _ in range(max_new_tokens):
            step = ys[:, -1:] if use_cache else ys
            out = self(attention_mask=attention_mask, decoder_input_ids=step, encoder_hidden_states=enc,
                       past_key_values=cache, use_cache=use_cache)
            cache = out.past_key_values if use_cache else None
            nxt = out.logits[:, -1].argmax(-1)  # (B,)
            if eos is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
                done |= nxt == eos
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            if eos is not None and bool(done.all()):
                break
        return ys[:, 1:]
