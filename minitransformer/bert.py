"""BERT: a post-LN Transformer encoder (Devlin et al. 2019, arXiv:1810.04805).

    h_0 = LN(E_word[x] + E_pos[p] + E_seg[s])            p = P .. P + T - 1 after a past of length P
    h_l = Block_l(h_{l-1})  (post-LN, see blocks.py)     l = 1 .. L
    pooled = tanh(W_pool h_L[CLS] + b_pool)

Numerically the BERT of Hugging Face `transformers` (parity test: max |diff| <= 1e-5 after
`load_hf_weights`). Module names (the `target_modules` a user writes), for layer i:
`layers.i.attn.{q,k,v,o}`, `layers.i.attn_norm`, `layers.i.ffn.{fc1,fc2}`, `layers.i.ffn_norm`,
`embeddings.{word_embeddings,position_embeddings,token_type_embeddings,norm}`, `pooler.dense`,
and on the heads `classifier` and `mlm_head.{dense,norm}`.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Block, Embeddings, make_activation
from .config import TransformerConfig
from .core import ModelOutput, build_bias, check_inputs, init_weights, lm_loss, mean_pool, run_blocks


class Pooler(nn.Module):
    """tanh(W h_[CLS] + b): BERT's sentence vector, trained by next-sentence prediction."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, D)
        return torch.tanh(self.dense(h[:, 0]))


class BertModel(nn.Module):
    """The encoder: embeddings, L post-LN blocks, pooler."""

    def __init__(self, config: TransformerConfig, add_pooler: bool = True) -> None:
        super().__init__()
        if config.norm_first:
            raise ValueError("BertModel is post-LN: TransformerConfig.norm_first must be False, got True")
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.pooler = Pooler(config) if add_pooler else None
        init_weights(self)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, T) or (B, P + T), 1 = attend
        token_type_ids: torch.Tensor | None = None,  # (B, T) segment ids
        inputs_embeds: torch.Tensor | None = None,  # (B, T, D) instead of input_ids
        past_key_values=None,  # per layer (k, v), each (B, H, P, Dh): a prefix
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> ModelOutput:
        """Extension points: `inputs_embeds`, `attention_mask`, `past_key_values` (see core.py)."""
        B, T, P = check_inputs(self.config, len(self.layers), input_ids, inputs_embeds, attention_mask,
                               token_type_ids, past_key_values)
        x = self.embeddings(input_ids, inputs_embeds, token_type_ids, past_length=P)  # (B, T, D)
        bias, is_causal = build_bias(attention_mask, B, T, P, False, x.dtype, x.device)
        x, presents, maps, states = run_blocks(self.layers, x, bias, is_causal, past_key_values, use_cache,
                                               output_attentions, output_hidden_states)
        pooled = self.pooler(x) if self.pooler is not None else None  # (B, D)
        return ModelOutput(hidden_states=x, pooled_output=pooled, past_key_values=presents,
                           attentions=maps, all_hidden_states=states)


class MLMHead(nn.Module):
    """transform (dense, act, LN), then the decoder tied to the word embeddings, plus its own bias."""

    def __init__(self, config: TransformerConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.act = make_activation(config.activation)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.word_embeddings = [word_embeddings]  # a list, so the tied weight is not registered twice

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., V)
        h = self.norm(self.act(self.dense(h)))
        return h @ self.word_embeddings[0].weight.T + self.bias


class BertForMaskedLM(nn.Module):
    """BERT + MLM head. With `labels` (-100 = not masked), the loss is cross-entropy on masked positions."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooler=False)
        self.mlm_head = MLMHead(config, self.bert.embeddings.word_embeddings)
        init_weights(self.mlm_head)
        nn.init.zeros_(self.mlm_head.bias)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                past_key_values: tuple | None = None, labels: torch.Tensor | None = None, masked_only: bool = False,
                **kw) -> ModelOutput:
        """`masked_only=True` (needs labels) projects onto the vocabulary only at masked positions:
        logits (N_masked, V) instead of (B, T, V), the same loss for a fraction of the cost."""
        out = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds, past_key_values, **kw)
        h = out.hidden_states  # (B, T, D)
        if masked_only:
            if labels is None:
                raise ValueError("masked_only=True needs labels (B, T) with -100 at unmasked positions")
            sel = labels != -100
            out.logits = self.mlm_head(h[sel])  # (N, V)
            out.loss = nn.functional.cross_entropy(out.logits, labels[sel])
            return out
        out.logits = self.mlm_head(h)  # (B, T, V)
        if labels is not None:
            out.loss = lm_loss(out.logits, labels, shift=False)
        return out


class BertForSequenceClassification(nn.Module):
    """BERT + dropout + `classifier` (D -> C) on the pooled [CLS] vector.

    `pooling="cls"` uses the pooler as BERT does; `pooling="mean"` averages the real tokens' last hidden
    states (what sentence-transformers models such as all-MiniLM-L6-v2 were trained with) and builds no
    pooler: a layer that never runs would get no gradient, yet would be counted as trainable.
    """

    def __init__(self, config: TransformerConfig, num_labels: int = 2, pooling: str = "cls") -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.config, self.num_labels, self.pooling = config, num_labels, pooling
        self.bert = BertModel(config, add_pooler=pooling == "cls")
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, num_labels)
        init_weights(self.classifier)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                past_key_values: tuple | None = None, labels: torch.Tensor | None = None, **kw) -> ModelOutput:
        """Logits (B, C). Loss: cross-entropy, or MSE when num_labels == 1 (regression)."""
        out = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds, past_key_values, **kw)
        if self.pooling == "cls":
            pooled = out.pooled_output
        else:
            T = out.hidden_states.size(1)
            mask = None if attention_mask is None else attention_mask[:, -T:]  # (B, T): the real tokens of this call
            pooled = mean_pool(out.hidden_states, mask)
        out.logits = self.classifier(self.dropout(pooled))  # (B, C)
        if labels is not None:
            if self.num_labels == 1:
                out.loss = nn.functional.mse_loss(out.logits.squeeze(-1), labels.float())
            else:
                out.loss = nn.functional.cross_entropy(out.logits, labels)
        return out
