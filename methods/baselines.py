"""The two baselines every PEFT method is compared with, as methods of the same API.

- Full fine-tuning: every parameter trains. The upper bar (in accuracy and in cost).
- Linear probe: the base stays frozen and only the classification head trains. The lower bar: what the
  frozen base already "knows" linearly (DESIGN.md §3: a base is only as good as its frozen-probe accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from minitransformer import TransformerConfig

from .api.config import PeftConfig, TaskType
from .api.counting import base_params
from .api.registry import register


@register("full")
@dataclass
class FullFineTuningConfig(PeftConfig):
    """Train everything. Trainable = all = the base's parameter count (109,483,778 on BERT-base + 2 labels).

    lr 1e-4: full fine-tuning of a 4-layer mini BERT; the BitFit paper used 1e-5 for BERT-large."""

    default_lr: ClassVar[float] = 1e-4
    # one short run wants more than BERT's usual 2e-5..5e-5: 1e-3 won on dev in 3 of 4 settings of the scan, so to 3e-3
    lr_grid: ClassVar[tuple[float, ...]] = (1e-4, 3e-4, 1e-3, 3e-3)
    can_merge: ClassVar[bool] = True  # nothing to merge: the weights themselves changed
    wraps_head: ClassVar[bool] = False
    # Every weight is the model's own, so disable_adapter() needs a copy of the whole base (one extra model in
    # memory: 19 MB for mini-bert, 438 MB for BERT-base). It is the price of showing "the base" on demand.
    trains_base_weights: ClassVar[bool] = True

    def is_trainable(self, name: str) -> bool:
        return True

    def merge(self, model) -> None:
        """Nothing to fold in: training changed the base weights themselves."""

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        return base_params(model_config, family, num_labels, pooler)


@register("linear_probe")
@dataclass
class LinearProbeConfig(PeftConfig):
    """Train the classification head only (D·C + C parameters on BERT). SEQ_CLS only.

    lr 5e-3: a linear layer on frozen features tolerates a large step."""

    default_lr: ClassVar[float] = 5e-3
    # a linear head on frozen features takes large steps: 3e-2 won on dev in 3 of 4 settings of the scan; on the
    # random base the old top, 1e-1, won, so the grid goes on to 3e-1 (a chosen lr must not sit at the grid's edge)
    lr_grid: ClassVar[tuple[float, ...]] = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    can_merge: ClassVar[bool] = True  # merging = unwrapping the trained head
    task_types: ClassVar[tuple[str, ...]] = (TaskType.SEQ_CLS,)
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"task_type": "CAUSAL_LM"}, "task_type"), ({"modules_to_save": []}, "modules_to_save")]

    def validate(self) -> None:
        super().validate()  # task_type must be in task_types: a probe trains a classification head
        if self.modules_to_save == []:
            raise ValueError("LinearProbeConfig.modules_to_save=[] would train nothing; leave it None (the head)")

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        return 0  # the head alone, added by the caller

    def merge(self, model) -> None:
        """Nothing to fold in: the PeftModel unwraps the trained head."""
