"""Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation", arXiv:2101.00190).

P trainable key vectors and P value vectors in front of every attention layer's own keys and values; the real
tokens attend to them, the frozen model is untouched (He et al.'s unified form, per head i):

    head_i = Attn(x W_q^(i), [P_k^(i) ; C W_k^(i)], [P_v^(i) ; C W_v^(i)])        P_k, P_v ∈ R^{P×Dh} per layer
    z = [PREFIX; x; y] (decoder-only)      z = [PREFIX; x; PREFIX′; y] (encoder-decoder)

- A prefix *is* a KV cache (`past_key_values`, per layer (k, v), each (B, H, P, Dh)): the real tokens' positions
  start after it (P .. P + T - 1), as after P generated tokens.
- Reparameterisation (`prefix_projection=True`, the paper's): P_θ = MLP(P′_θ) with P′ = Embedding(P, D) and
  MLP = Linear(D, h)–Tanh–Linear(h, L·2·D), h = 512 ("directly updating P_θ leads to unstable optimization");
  after training only P_θ is kept (`bake()`). `prefix_projection=False` is the direct table Embedding(P, L·2·D),
  P-tuning v2's (`methods/p_tuning_v2.py`).
- Init: "RANDOM" (nn.Embedding's N(0, 1), as the official code and `peft`) or "WORDS": the keys and values the
  frozen model itself computes for a real text, repeated cyclically up to P (the paper's best low-data init,
  §7.4; direct table only, since the MLP's output cannot be set).
- Encoder-decoder: three prefixes, on the encoder's self-attention, the decoder's self-attention and its
  cross-attention (the official BART code's three), one row of width 2·D·(L_enc + 2·L_dec) per prefix position.

Plugs in at: `past_key_values` (`encoder_past_key_values`, `past_key_values`, `cross_past_key_values` on the
encoder-decoder), through the module `prepare` returns; the attention mask of the real tokens needs no change
(a (B, T) mask attends to the whole past).

Count (BERT-base geometry D = 768, L = 12, P = 20): direct P·L·2·D = 368,640; with projection h = 512:
P·D + (D·h + h) + (h·2LD + 2LD) = 9,864,704 (+ the head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from minitransformer import TransformerConfig

from .api.config import PeftConfig, check_choice, check_positive
from .api.registry import register
from .api.targets import model_family
from .prompt_tuning import TOKENIZERS, grow_mask, load_base_tokenizer, token_ids

INITS = ("RANDOM", "WORDS")


def attention_layers(model_config: TransformerConfig, family: str) -> tuple[int, int, int]:
    """(encoder or only stack's self-attention layers, decoder self-attention layers, cross-attention layers)."""
    if family == "seq2seq":
        return model_config.n_layers, model_config.n_decoder_layers, model_config.n_decoder_layers
    return model_config.n_layers, 0, 0


class Prefix(nn.Module):
    """Prefix tuning's module: a table of P rows of width 2·D·(layers), directly or through the MLP, reshaped into
    per-layer (k, v) pairs; `forward(base, **kwargs)` returns the base's arguments with the prefixes added."""

    def __init__(self, config: PrefixTuningConfig, model: nn.Module) -> None:
        super().__init__()
        self.config, self.family = config, model_family(model)
        c = model.config
        self.P, self.H, self.Dh, self.D = config.num_virtual_tokens, c.n_heads, c.head_dim, c.d_model
        if self.P >= c.max_positions:
            raise ValueError(f"{type(config).__name__}.num_virtual_tokens={self.P} leaves no position for the input: "
                             f"the model has max_positions={c.max_positions}; allowed: 1 .. {c.max_positions - 1}")
        self.max_positions = c.max_positions
        self.layers = attention_layers(c, self.family)
        width = 2 * self.D * sum(self.layers)  # W = 2·D·L: one key and one value vector per layer
        if config.prefix_projection:
            self.prefix_embeddings = nn.Embedding(self.P, self.D)  # P′
            h = config.encoder_hidden_size
            self.prefix_mlp = nn.Sequential(nn.Linear(self.D, h), nn.Tanh(), nn.Linear(h, width))
        else:
            self.prefix_embeddings = nn.Embedding(self.P, width)  # P_θ itself
            if config.prefix_init == "WORDS":
                with torch.no_grad():
                    self.prefix_embeddings.weight.copy_(word_activations(config, model, self.P))
        self.dropout = nn.Dropout(config.prefix_dropout)
        self.baked = False

    def table(self) -> torch.Tensor:  # (P, W)
        if self.baked:
            return self.prefix_table
        if self.config.prefix_projection:
            return self.prefix_mlp(self.prefix_embeddings.weight)
        return self.prefix_embeddings.weight

    def split(self, table: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(B, P, W) -> per layer (k, v), each (B, H, P, Dh), in the order encoder, decoder self, cross."""
        B = table.size(0)
        kv = table.view(B, self.P, sum(self.layers), 2, self.H, self.Dh).permute(2, 3, 0, 4, 1, 5)  # (L, 2, B, H, P, Dh)
        return [(layer[0], layer[1]) for layer in kv]

    def past_key_values(self, B: int, prefix: torch.Tensor | None = None) -> list:
        """Per layer (k, v) for a batch of B rows; `prefix` (B, P, W) gives each row its own table."""
        rows = self.table().unsqueeze(0).expand(B, -1, -1) if prefix is None else prefix
        return self.split(self.dropout(rows))

    def per_row(self, modules: list[Prefix]) -> dict:
        """Keyword arguments of `forward` that give row b the prefix of `modules[b]` (mixed-task batches)."""
        if any(m.P != self.P for m in modules):
            raise ValueError(f"adapter_names: mixed-task batches need prefixes of one length; got "
                             f"num_virtual_tokens {sorted({m.P for m in modules})}")
        cache = {id(m): m.table() for m in modules}
        return {"prefix": torch.stack([cache[id(m)] for m in modules])}  # (B, P, W)

    def _batch_size(self, kw: dict) -> tuple[int, int]:
        x = kw.get("input_ids") if kw.get("input_ids") is not None else kw.get("inputs_embeds")
        if x is None:
            raise ValueError("prefix tuning needs input_ids or inputs_embeds to know the batch size")
        return x.size(0), x.size(1)

    def _arguments(self, kw: dict, B: int, prefix) -> dict:
        for key in ("past_key_values", "encoder_past_key_values", "cross_past_key_values"):
            if kw.get(key) is not None:
                raise ValueError(f"{key}: prefix tuning sets the past itself; generate() handles the KV cache")
        pkv = self.past_key_values(B, prefix)
        if self.family != "seq2seq":
            kw["past_key_values"] = tuple(pkv)
            return kw
        n_enc, n_dec, _ = self.layers
        kw["encoder_past_key_values"] = tuple(pkv[:n_enc])
        kw["past_key_values"] = tuple(pkv[n_enc:n_enc + n_dec])
        kw["cross_past_key_values"] = tuple(pkv[n_enc + n_dec:])
        return kw

    def forward(self, base: nn.Module, prefix: torch.Tensor | None = None, **kw) -> dict:
        B, T = self._batch_size(kw)
        if self.family != "seq2seq" and self.P + T > self.max_positions:
            raise ValueError(f"num_virtual_tokens={self.P} + input length T={T} = {self.P + T} exceeds the model's "
                             f"max_positions={self.max_positions}; truncate the input or use a shorter prefix")
        return self._arguments(kw, B, prefix)

    @torch.no_grad()
    def generate(self, base: nn.Module, input_ids: torch.Tensor, max_new_tokens: int = 20, *,
                 attention_mask: torch.Tensor | None = None, prefix: torch.Tensor | None = None, **kw):
        """The base's `generate` with the prefix as the start of the KV cache (GPT) or as the three prefixes of
        the encoder-decoder. Returns what the base returns."""
        B = input_ids.size(0)
        args = self._arguments(dict(kw), B, prefix)
        if self.family == "seq2seq":
            return base.generate(input_ids, max_new_tokens, attention_mask=attention_mask, **args)
        # the cache grows past the prefix, so the mask must cover it: (B, P + T), then one 1 per new token
        mask = grow_mask(attention_mask if attention_mask is not None else input_ids.new_ones(input_ids.shape),
                         B, self.P, input_ids.device)
        return base.generate(input_ids, max_new_tokens, attention_mask=mask, **args)

    def bake(self) -> None:
        """Keep only P_θ (the MLP's output): identical outputs, the reparameterisation dropped (inference)."""
        table = self.table().detach().clone()
        for name in ("prefix_embeddings", "prefix_mlp"):
            if hasattr(self, name):
                delattr(self, name)
        self.prefix_table = nn.Parameter(table, requires_grad=False)
        self.baked = True


@torch.no_grad()
def word_activations(config: PrefixTuningConfig, model: nn.Module, P: int) -> torch.Tensor:
    """The frozen model's own keys and values of `prefix_init_text`'s tokens, repeated cyclically up to P:
    (P, L·2·D), laid out as the table (per position: layer, then k/v, then heads)."""
    family = model_family(model)
    if family == "seq2seq":
        raise ValueError("prefix_init='WORDS' reads one stack's keys and values; the encoder-decoder has three "
                         "kinds of prefix; allowed on the encoder-decoder: 'RANDOM'")
    trunk = getattr(model, "bert", None) or getattr(model, "gpt", None) or model
    tok = load_base_tokenizer(config.tokenizer_name)
    ids = token_ids(tok, config.prefix_init_text)
    if max(ids) >= model.config.vocab_size:
        raise ValueError(f"tokenizer_name={config.tokenizer_name!r} gives ids beyond the model's vocabulary "
                         f"({model.config.vocab_size}); allowed: the tokenizer of this model's base")
    ids = (ids * (P // len(ids) + 1))[:P]
    was = trunk.training
    trunk.eval()
    if family == "gpt":
        presents = trunk.body(torch.tensor([ids]), use_cache=True).past_key_values
    else:
        presents = trunk(torch.tensor([ids]), use_cache=True).past_key_values
    trunk.train(was)
    kv = torch.stack([torch.stack(pair) for pair in presents])  # (L, 2, 1, H, P, Dh)
    return kv[:, :, 0].permute(3, 0, 1, 2, 4).reshape(P, -1).clone()  # (P, L·2·H·Dh)


@register("prefix_tuning")
@dataclass
class PrefixTuningConfig(PeftConfig):
    """Prefix tuning: per-layer key/value prefixes, through an MLP while training (Li & Liang's setting).

    num_virtual_tokens:   P, the prefix length (10 in the paper's default; 20 here).
    prefix_projection:    True: P′ = Embedding(P, D) -> Linear(D, h) -> Tanh -> Linear(h, L·2·D) (the paper's
                          reparameterisation); False: the table Embedding(P, L·2·D) directly (P-tuning v2).
    encoder_hidden_size:  h of the MLP (512, the paper's; `peft` defaults to D).
    prefix_dropout:       dropout on the prefix rows while training (0 in the paper; P-tuning v2 uses 0.1).
    prefix_init:          "RANDOM" or "WORDS" (the frozen model's keys and values of `prefix_init_text`;
                          direct table only, BERT and GPT).
    prefix_init_text, tokenizer_name: for "WORDS" (tokenizer: "mini-bert", "mini-bert-mlm", "mini-gpt", "minilm").
    """

    num_virtual_tokens: int = 20
    prefix_projection: bool = True
    encoder_hidden_size: int = 512
    prefix_dropout: float = 0.0
    prefix_init: str = "RANDOM"
    prefix_init_text: str | None = None
    tokenizer_name: str | None = None

    default_lr: ClassVar[float] = 1e-3
    lr_grid: ClassVar[tuple[float, ...]] = (3e-4, 1e-3, 3e-3, 1e-2)
    noop_at_init: ClassVar[bool] = False  # the real tokens attend to the prefix from the start
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"num_virtual_tokens": 0}, "num_virtual_tokens"),
        ({"encoder_hidden_size": 0}, "encoder_hidden_size"),
        ({"prefix_dropout": 1.0}, "prefix_dropout"),
        ({"prefix_init": "ZEROS"}, "prefix_init"),
        ({"prefix_init": "WORDS", "prefix_projection": False, "tokenizer_name": "minilm"}, "prefix_init_text"),
        ({"prefix_init": "WORDS", "prefix_projection": False, "prefix_init_text": "great"}, "tokenizer_name"),
        ({"prefix_init": "WORDS", "prefix_projection": True, "prefix_init_text": "great", "tokenizer_name": "minilm"},
         "prefix_projection"),
        ({"prefix_projection": "yes"}, "prefix_projection"),
    ]

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        check_positive(self, "num_virtual_tokens")
        check_positive(self, "encoder_hidden_size")
        if not isinstance(self.prefix_projection, bool):
            raise ValueError(f"{name}.prefix_projection must be True or False, got {self.prefix_projection!r}")
        if not isinstance(self.prefix_dropout, (int, float)) or not 0 <= self.prefix_dropout < 1:
            raise ValueError(f"{name}.prefix_dropout must be in [0, 1), got {self.prefix_dropout!r}")
        check_choice(self, "prefix_init", INITS)
        if self.prefix_init == "WORDS":
            if not (isinstance(self.prefix_init_text, str) and self.prefix_init_text.strip()):
                raise ValueError(f"{name}.prefix_init_text={self.prefix_init_text!r}: prefix_init='WORDS' needs a "
                                 f"non-empty text")
            if self.tokenizer_name not in TOKENIZERS:
                raise ValueError(f"{name}.tokenizer_name={self.tokenizer_name!r}: prefix_init='WORDS' reads words; "
                                 f"allowed: {TOKENIZERS}")
            if self.prefix_projection:
                raise ValueError(f"{name}.prefix_projection=True: prefix_init='WORDS' sets the prefix table itself, "
                                 f"which the MLP's output cannot be set to; allowed with 'WORDS': False")

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> nn.Module:
        return Prefix(self, model)

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        P, D, h = self.num_virtual_tokens, model_config.d_model, self.encoder_hidden_size
        W = 2 * D * sum(attention_layers(model_config, family))  # L·2·D
        if self.prefix_projection:
            return P * D + (D * h + h) + (h * W + W)
        return P * W
