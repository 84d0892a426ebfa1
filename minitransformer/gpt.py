"""GPT-2: a pre-LN causal Transformer decoder with a tied LM head (Radford et al. 2019).

    h_0 = E_word[x] + E_pos[p]                            p = P .. P + T - 1 after a past (KV cache / prefix)
    h_l = Block_l(h_{l-1})  (pre-LN, causal mask)         l = 1 .. L
    logits = LN_f(h_L) E_wordᵀ                           the LM head is the word-embedding matrix (tied)

Numerically GPT-2 of Hugging Face `transformers` (parity test after `load_hf_weights`, which splits GPT-2's
fused `c_attn` into q/k/v). Module names for layer i: `layers.i.attn.{q,k,v,o}`, `layers.i.attn_norm`,
`layers.i.ffn.{fc1,fc2}`, `layers.i.ffn_norm`, `final_norm`, `embeddings.{word_embeddings,position_embeddings}`,
and `classifier` on `GPTForSequenceClassification`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import Block, Embeddings
from .config import TransformerConfig
from .core import ModelOutput, build_bias, check_inputs, init_weights, lm_loss, run_blocks


class GPTModel(nn.Module):
    """GPT-2 language model: embeddings, L pre-LN causal blocks, final LayerNorm, tied LM head."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if not config.norm_first:
            raise ValueError("GPTModel is pre-LN: TransformerConfig.norm_first must be True, got False")
        if config.type_vocab_size:
            raise ValueError(f"GPTModel has no segment embeddings: TransformerConfig.type_vocab_size must be 0, "
                             f"got {config.type_vocab_size}")
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        init_weights(self)
        # GPT-2 scales the init of the projections that write into the residual stream by 1/sqrt(2L),
        # so that the stream's variance does not grow with depth.
        for block in self.layers:
            for lin in (block.attn.o, block.ffn.fc2):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    def lm_head(self, h: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., V), tied to the embeddings
        return h @ self.embeddings.word_embeddings.weight.T

    def body(self, input_ids=None, attention_mask=None, inputs_embeds=None, past_key_values=None,
             use_cache: bool = False, output_attentions: bool = False,
             output_hidden_states: bool = False) -> ModelOutput:
        """The decoder without the LM head: `hidden_states` (B, T, D) after the final LayerNorm."""
        B, T, P = check_inputs(self.config, len(self.layers), input_ids, inputs_embeds, attention_mask, None,
                               past_key_values)
        x = self.embeddings(input_ids, inputs_embeds, past_length=P)  # (B, T, D)
        bias, is_causal = build_bias(attention_mask, B, T, P, True, x.dtype, x.device)
        x, presents, maps, states = run_blocks(self.layers, x, bias, is_causal, past_key_values, use_cache,
                                               output_attentions, output_hidden_states)
        return ModelOutput(hidden_states=self.final_norm(x), past_key_values=presents, attentions=maps,
                           all_hidden_states=states)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, T) or (B, P + T), 1 = attend
        inputs_embeds: torch.Tensor | None = None,  # (B, T, D) instead of input_ids
        past_key_values=None,  # per layer (k, v), each (B, H, P, Dh): KV cache or prefix
        labels: torch.Tensor | None = None,  # (B, T); -100 = ignore. Shifted inside: t predicts t+1
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        token_type_ids=None,  # accepted for a uniform signature; GPT-2 has no segments
    ) -> ModelOutput:
        """Logits (B, T, V). Extension points: `inputs_embeds`, `attention_mask`, `past_key_values`."""
        if token_type_ids is not None:
            raise ValueError("GPTModel has no segment embeddings: token_type_ids must be None")
        out = self.body(input_ids, attention_mask, inputs_embeds, past_key_values, use_cache,
                        output_attentions, output_hidden_states)
        out.logits = self.lm_head(out.hidden_states)  # (B, T, V)
        if labels is not None:
            out.loss = lm_loss(out.logits, labels, shift=True)
        return out

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,  # (B, T) prompt; equal lengths (no left padding)
        max_new_tokens: int = 20,
        *,
        inputs_embeds: torch.Tensor | None = None,  # (B, T, D) prompt given as embeddings (soft prompts)
        attention_mask: torch.Tensor | None = None,  # (B, P + T) when a past with padding is given
        past_key_values=None,  # a prefix (prefix tuning): per layer (k, v), each (B, H, P, Dh)
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_token_id: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Greedy (default) or sampled continuation. Returns the prompt ids followed by the new ids
        (B, T + N), or only the new ids (B, N) when the prompt came as `inputs_embeds`.

        With `use_cache` each step feeds only the newest token and reuses the keys/values of all earlier
        ones; without it each step recomputes the whole sequence. Both give the same tokens (tested).
        """
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if do_sample and temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        embed = self.embeddings.word_embeddings
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("generate: pass exactly one of input_ids or inputs_embeds")
        prompt = embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, D)
        B = prompt.size(0)
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        new_ids, done = [], torch.zeros(B, dtype=torch.bool, device=prompt.device)
        P = 0 if past_key_values is None else past_key_values[0][0].size(2)
        if attention_mask is not None and P and attention_mask.size(1) == prompt.size(1):  # (B, T): the past attended
            attention_mask = torch.cat([attention_mask.new_ones(B, P), attention_mask], dim=1)  # (B, P + T)
        step_in, seen, cache, mask = prompt, prompt, past_key_values, attention_mask
        for _ in range(max_new_tokens):
            if use_cache:
                out = self(inputs_embeds=step_in, attention_mask=mask, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
            else:
                out = self(inputs_embeds=seen, attention_mask=mask, past_key_values=past_key_values)
            logits = out.logits[:, -1]  # (B, V)
            if do_sample:
                logits = logits / temperature
                if top_k is not None:
                    kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            else:
                nxt = logits.argmax(-1)  # (B,)
            if eos is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos), nxt)  # finished rows keep emitting eos
                done |= nxt == eos
            new_ids.append(nxt)
            step_in = embed(nxt)[:, None]  # (B, 1, D)
            seen = torch.cat([seen, step_in], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)
            if eos is not None and bool(done.all()):
                break
        new = torch.stack(new_ids, 1) if new_ids else prompt.new_zeros(B, 0, dtype=torch.long)
        return new if input_ids is None else torch.cat([input_ids, new], dim=1)


class GPTForSequenceClassification(nn.Module):
    """GPT + `classifier` (D -> C, no bias as in GPT-2) on the last real token.

    The last real token of a row is found from `attention_mask` (right padding), because GPT-2 usually
    pads with its end-of-text token, so the token id alone cannot tell padding from text.
    """

    def __init__(self, config: TransformerConfig, num_labels: int = 2) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        self.config, self.num_labels = config, num_labels
        self.gpt = GPTModel(config)
        self.classifier = nn.Linear(config.d_model, num_labels, bias=False)
        init_weights(self.classifier)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, past_key_values: tuple | None = None,
                labels: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None, **kw) -> ModelOutput:
        if token_type_ids is not None:
            raise ValueError("GPTForSequenceClassification has no segment embeddings: token_type_ids must be None")
        out = self.gpt.body(input_ids, attention_mask, inputs_embeds, past_key_values, **kw)
        h = out.hidden_states  # (B, T, D)
        B, T = h.shape[:2]
        if attention_mask is None:
            last = torch.full((B,), T - 1, device=h.device)
        else:
            last = attention_mask[:, -T:].sum(-1).long().clamp(min=1) - 1  # right padding assumed
        out.logits = self.classifier(h[torch.arange(B, device=h.device), last])  # (B, C)
        if labels is not None:
            out.loss = (nn.functional.mse_loss(out.logits.squeeze(-1), labels.float()) if self.num_labels == 1
                        else nn.functional.cross_entropy(out.logits, labels))
        return out
