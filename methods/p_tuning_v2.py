"""P-tuning v2 (Liu et al. 2022, "P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning Universally Across
Scales and Tasks", arXiv:2110.07602): deep prompt tuning for understanding tasks.

The mechanism is prefix tuning's (`methods/prefix_tuning.py`): P key and value vectors in front of every layer's
attention, `past_key_values`. What v2 changes is the recipe, following its official code
(`THUDM/P-tuning-v2`, `model/prefix_encoder.py`, `model/sequence_classification.py`):

    pkv = Embedding(P, L·2·D)(0 .. P-1)                   no reparameterisation (the default)
    pkv = dropout(pkv) -> per layer (k, v), (B, H, P, Dh)  dropout 0.1 (the scripts' hidden_dropout_prob)
    logits = classifier(pool(h_L))                        a linear head on [CLS] or the mean, no verbalizer

- The head is a plain randomly initialised classifier (the PeftModel trains it as `modules_to_save`), not an LM
  head with label words: the paper finds the verbalizer unnecessary with full data.
- Prompt length is per task (short, < 20, for simple classification; ~100 for sequence labelling): 20 here.
- Learning rates are large: the official scripts use 5e-3 to 1e-2 for the prefix (RoBERTa-large RTE: 5e-3),
  two to three orders above full fine-tuning, because only P·L·2·D free vectors move, each a key or value whose
  useful scale is that of the frozen model's own keys (of order 1), and nothing downstream amplifies an update
  as a weight matrix would. Our grid (1e-3 … 1) brackets it; on mini-bert the comparison chose 0.1 on rt dev and
  0.3 on trec dev (results/compare_*_mini-bert.md), above even the scripts' rates.

Plugs in at: `past_key_values`, as prefix tuning. Count: P·L·2·D = 368,640 on BERT-base for P = 20 (+ the head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .api.config import TaskType
from .api.registry import register
from .prefix_tuning import PrefixTuningConfig


@register("p_tuning_v2")
@dataclass
class PTuningV2Config(PrefixTuningConfig):
    """P-tuning v2: `PrefixTuningConfig` with v2's defaults — no projection, prefix dropout 0.1, classification
    tasks (a linear head; no verbalizer)."""

    prefix_projection: bool = False
    prefix_dropout: float = 0.1

    default_lr: ClassVar[float] = 1e-2
    # lr_grid: 0.1, 0.3, then 1.0 added when the top was chosen (trec; rt and trec; trec): a grid must bracket
    lr_grid: ClassVar[tuple[float, ...]] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    task_types: ClassVar[tuple[str, ...]] = (TaskType.SEQ_CLS,)  # v2 is for understanding tasks (a head)
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PrefixTuningConfig.invalid_examples[:2] + [
        ({"task_type": "CAUSAL_LM"}, "task_type"),
        ({"num_virtual_tokens": -1}, "num_virtual_tokens"),
    ] + PrefixTuningConfig.invalid_examples[4:]

