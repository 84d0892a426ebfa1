"""P-tuning (Liu et al. 2021, "GPT Understands, Too", arXiv:2103.10385): virtual tokens produced by a prompt encoder.

A template mixes pseudo tokens [P_i] with the input x and discrete anchor tokens ("It was [MASK] ."); the
embeddings at the pseudo positions are replaced by h_0 .. h_{n-1}, computed from a small trainable table by a
reparameterisation encoder, so that the virtual tokens depend on each other (the paper's "association"):

    h = MLP([LSTM→(E) ; LSTM←(E)])     E = Embedding(n, D)(0 .. n-1)      (LSTM encoder)
    h = MLP(E)                                                           (MLP encoder)
    T = {[P_0:i], x, [P_i+1:j], y, [P_j+1:n]}  ->  {h_0..h_i, e(x), h_i+1..h_j, e(y), h_j+1..h_n}

- Encoders, in `peft`'s shapes: "MLP" = Linear(D, h)–ReLU–Linear(h, h)–ReLU–Linear(h, D); "LSTM" = a bidirectional
  `encoder_num_layers`-layer LSTM(D -> h) then Linear(2h, 2h)–ReLU–Linear(2h, D). h = `encoder_hidden_size`
  (default D, as `peft`). The paper's LAMA code uses LSTM(D -> D/2) and an MLP D -> D -> D (notebook 07 shows it).
- Where the virtual tokens go: with `template=None` they are put in front (as `peft`, which has no templates);
  with a template ("[P][P][P] {x} [P][P] It was [MASK] .") the data carry `pseudo_token_id` at the virtual
  positions (`fill_template` builds such ids) and the module replaces their embeddings — input layer only.
- A GPT classifies through a verbalizer ("GPT understands, too"): the next-token logits of the label words at
  the last real position (`verbalizer_scores`, `verbalizer_loss`).
- After training only the n output vectors matter: `bake()` replaces the encoder by its output table (identical
  outputs). The checkpoint keeps the encoder, so training resumes (`peft` saves only the output and cannot).

Plugs in at: the input embeddings, as prompt tuning (`methods/prompt_tuning.py`'s `SoftPrompt`).

Count (BERT-base geometry D = 768, n = 20, h = 128): MLP n·D + (Dh + h) + (h² + h) + (hD + D) = 229,376;
LSTM (2 layers) n·D + 2·[4h(D + h) + 8h] + 2·[4h(2h + h) + 8h] + (4h² + 2h) + (2hD + D) = 1,593,344 (+ the head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from minitransformer import TransformerConfig

from .api.config import check_choice, check_positive
from .api.registry import register
from .prompt_tuning import PromptTuningConfig, SoftPrompt, token_ids

ENCODERS = ("MLP", "LSTM")
SLOT, INPUT = "[P]", "{x}"


class PromptEncoder(SoftPrompt):
    """P-tuning's module: `prompt_embeddings` (n, D) -> the encoder -> the n virtual tokens (n, D)."""

    def __init__(self, config: PromptEncoderConfig, model: nn.Module) -> None:
        super().__init__(config, model)
        D, h = self.dim, config.encoder_hidden_size or self.dim
        self.prompt_embeddings = nn.Embedding(self.n, D)  # E: default init N(0, 1), as the paper's code and peft
        if config.encoder_reparameterization_type == "MLP":
            self.mlp_head = nn.Sequential(nn.Linear(D, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, D))
        else:
            self.lstm_head = nn.LSTM(D, h, num_layers=config.encoder_num_layers, dropout=config.encoder_dropout,
                                     bidirectional=True, batch_first=True)
            self.mlp_head = nn.Sequential(nn.Linear(2 * h, 2 * h), nn.ReLU(), nn.Linear(2 * h, D))

    def prompts(self) -> torch.Tensor:  # (n, D)
        if self.baked:
            return self.prompt_table
        e = self.prompt_embeddings.weight  # (n, D)
        if hasattr(self, "lstm_head"):
            e = self.lstm_head(e.unsqueeze(0))[0][0]  # (1, n, D) -> (1, n, 2h) -> (n, 2h): both directions
        return self.mlp_head(e)  # (n, D)


@register("p_tuning")
@dataclass
class PromptEncoderConfig(PromptTuningConfig):
    """P-tuning: virtual tokens from an MLP or LSTM prompt encoder, in front of the input or in a template.

    encoder_reparameterization_type: "MLP" (default, as `peft`) or "LSTM".
    encoder_hidden_size:  h (None = D, as `peft`; the counts in the module docstring use 128).
    encoder_num_layers:   the LSTM's layers (2; ignored by the MLP).
    encoder_dropout:      dropout between the LSTM's layers.
    template:             None (virtual tokens in front) or a string with `[P]` per virtual token and `{x}` once
                          for the input, e.g. "[P][P][P] {x} [P][P] It was [MASK] ." (`fill_template`).
    pseudo_token_id:      the id that marks a virtual position in the ids `fill_template` builds (needed with a
                          template; pick one the texts never contain, e.g. MiniLM's "[unused0]" = 1).
    The prompt-tuning init fields do not apply (the encoder's table starts at N(0, 1)).
    """

    encoder_reparameterization_type: str = "MLP"
    encoder_hidden_size: int | None = None
    encoder_num_layers: int = 2
    encoder_dropout: float = 0.0
    template: str | None = None
    pseudo_token_id: int | None = None

    default_lr: ClassVar[float] = 3e-3
    # lr_grid: 0.1, 0.3, then 1.0 added when rt, rt and trec chose the grid's top (a grid must bracket what it finds)
    lr_grid: ClassVar[tuple[float, ...]] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PromptTuningConfig.invalid_examples[:2] + [
        ({"num_virtual_tokens": 0}, "num_virtual_tokens"),
        ({"encoder_reparameterization_type": "GRU"}, "encoder_reparameterization_type"),
        ({"encoder_hidden_size": 0}, "encoder_hidden_size"),
        ({"encoder_num_layers": 0}, "encoder_num_layers"),
        ({"encoder_dropout": 1.5}, "encoder_dropout"),
        ({"template": "[P][P] It was [MASK] .", "num_virtual_tokens": 2, "pseudo_token_id": 1}, "template"),
        ({"template": "[P] {x} [P]", "num_virtual_tokens": 3, "pseudo_token_id": 1}, "template"),
        ({"template": "[P] {x} [P]", "num_virtual_tokens": 2}, "pseudo_token_id"),
        ({"prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "x", "tokenizer_name": "minilm"},
         "prompt_tuning_init"),
    ]

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        if self.prompt_tuning_init != "RANDOM":
            raise ValueError(f"{name}.prompt_tuning_init={self.prompt_tuning_init!r}: P-tuning's encoder starts from "
                             f"its own random table; allowed: 'RANDOM'")
        check_choice(self, "encoder_reparameterization_type", ENCODERS)
        if self.encoder_hidden_size is not None:
            check_positive(self, "encoder_hidden_size")
        check_positive(self, "encoder_num_layers")
        if not isinstance(self.encoder_dropout, (int, float)) or not 0 <= self.encoder_dropout < 1:
            raise ValueError(f"{name}.encoder_dropout must be in [0, 1), got {self.encoder_dropout!r}")
        if self.template is not None:
            if not isinstance(self.template, str) or self.template.count(INPUT) != 1:
                raise ValueError(f"{name}.template={self.template!r} must hold the input slot {INPUT!r} exactly once")
            if self.template.count(SLOT) != self.num_virtual_tokens:
                raise ValueError(f"{name}.template={self.template!r} holds {self.template.count(SLOT)} virtual tokens "
                                 f"{SLOT!r} but num_virtual_tokens={self.num_virtual_tokens}; allowed: the same number")
            if isinstance(self.pseudo_token_id, bool) or not isinstance(self.pseudo_token_id, int) \
                    or self.pseudo_token_id < 0:
                raise ValueError(f"{name}.pseudo_token_id={self.pseudo_token_id!r}: a template needs the id that marks "
                                 f"the virtual positions (an int >= 0)")

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> nn.Module:
        return PromptEncoder(self, model)

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        n, D = self.num_virtual_tokens, model_config.d_model
        h = self.encoder_hidden_size or D
        if self.encoder_reparameterization_type == "MLP":
            return n * D + (D * h + h) + (h * h + h) + (h * D + D)
        lstm = sum(2 * (4 * h * ((D if i == 0 else 2 * h) + h) + 8 * h) for i in range(self.encoder_num_layers))
        return n * D + lstm + (2 * h * 2 * h + 2 * h) + (2 * h * D + D)


# ---- templates and verbalizers -------------------------------------------------------------------------------
def fill_template(tokenizer, template: str, texts: list[str], pseudo_token_id: int, max_length: int = 64,
                  special_tokens: bool = True) -> list[list[int]]:
    """Ids of `template` around each text: `[P]` -> `pseudo_token_id`, `{x}` -> the text's tokens (truncated so the
    whole fits in `max_length`; the anchors and virtual tokens are never cut), anchors tokenized as words;
    [CLS] ... [SEP] around it when the tokenizer has them and `special_tokens`."""
    if template.count(INPUT) != 1:
        raise ValueError(f"template={template!r} must hold the input slot {INPUT!r} exactly once")
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    wrap = special_tokens and cls is not None and sep is not None

    def piece(text: str) -> list[int]:
        out = []
        for i, anchor in enumerate(text.split(SLOT)):
            if i:
                out.append(pseudo_token_id)
            if anchor.strip():
                out += token_ids(tokenizer, anchor.strip())
        return out

    before, after = (piece(t) for t in template.split(INPUT))
    budget = max_length - len(before) - len(after) - (2 if wrap else 0)
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room for the input after the template's "
                         f"{len(before) + len(after)} tokens")
    rows = []
    for text in texts:
        ids = before + token_ids(tokenizer, text)[:budget] + after
        rows.append([cls] + ids + [sep] if wrap else ids)
    return rows


def verbalizer_scores(model, batch: dict, label_token_ids: list[int]) -> torch.Tensor:
    """A causal LM as a classifier: the next-token logits of each label word (one token each) at the last real
    position of each row. (B, C). Works for the base and for a PeftModel whose prompt sits in front."""
    out = model(**{k: v for k, v in batch.items() if k != "labels"})
    logits = out.logits  # (B, n_added + T, V)
    mask = batch.get("attention_mask")
    B, T = batch["input_ids"].shape
    extra = logits.size(1) - T  # virtual tokens in front (0 for the base or a template)
    last = (mask.sum(1).long() - 1 if mask is not None else torch.full((B,), T - 1)) + extra  # right padding
    return logits[torch.arange(B), last][:, torch.as_tensor(label_token_ids)]  # (B, C)


def verbalizer_loss(label_token_ids: list[int]):
    """A `loss_fn` for the training loop: cross-entropy over the label words' next-token logits."""

    def loss(model, batch):
        return nn.functional.cross_entropy(verbalizer_scores(model, batch, label_token_ids), batch["labels"])

    return loss

