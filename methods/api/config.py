"""The base of every method's configuration: task types, validation, JSON round trip, the method hooks.

A method is a `PeftConfig` subclass registered under a name (`methods/registry.py`). It answers four
questions, and the `PeftModel` does the rest the same way for every method:

    prepare(model)                   what to change in the frozen base (module surgery) -> None,
                                     or, for input-side methods, a prompt module the PeftModel owns
    is_trainable(name)               which of the base's parameters train (and are saved): the name filter
    expected_trainable_parameters()  the closed-form count, checked against the live count by the contract test
    merge(model)                     fold the method into the base weights, where the method allows it

Names follow Hugging Face `peft` where a name exists (`task_type`, `target_modules`, `modules_to_save`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from minitransformer import TransformerConfig

TASK_TYPES = ("SEQ_CLS", "CAUSAL_LM", "SEQ_2_SEQ_LM")


class TaskType:
    """The task types of `peft` this project supports (strings, so configs stay plain JSON)."""

    SEQ_CLS = "SEQ_CLS"
    CAUSAL_LM = "CAUSAL_LM"
    SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM"


@dataclass
class PeftConfig:
    """Fields every method shares.

    task_type:       "SEQ_CLS" (the classification head trains too, as in `peft`), "CAUSAL_LM", "SEQ_2_SEQ_LM".
    modules_to_save: modules trained in full and saved, beside the method's own parameters. None = the
                     task's default: ["classifier"] for SEQ_CLS, [] otherwise.
    """

    task_type: str = TaskType.SEQ_CLS
    modules_to_save: list[str] | None = None

    peft_type: ClassVar[str] = ""  # the registry name, set by @register
    default_lr: ClassVar[float] = 1e-3  # the learning rate the comparison job uses (documented per method)
    can_merge: ClassVar[bool] = False
    wraps_head: ClassVar[bool] = True  # False for full fine-tuning: the head is simply part of the model
    task_types: ClassVar[tuple[str, ...]] = TASK_TYPES  # the task types the method supports
    noop_at_init: ClassVar[bool] = True  # the wrapped model computes exactly the base's outputs at init
    # For the contract test: (constructor kwargs, the field its ValueError must name). Subclasses add theirs.
    invalid_examples: ClassVar[list[tuple[dict, str]]] = [
        ({"task_type": "TOKEN_CLS"}, "task_type"),
        ({"modules_to_save": "classifier"}, "modules_to_save"),
    ]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field, the value and what is allowed. Subclasses extend this."""
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"{type(self).__name__}.task_type={self.task_type!r} is unknown; allowed: {TASK_TYPES}")
        if self.modules_to_save is not None:
            if isinstance(self.modules_to_save, str) or not all(isinstance(m, str) for m in self.modules_to_save):
                raise ValueError(f"{type(self).__name__}.modules_to_save must be a list of module names or None, "
                                 f"got {self.modules_to_save!r}")
            self.modules_to_save = list(self.modules_to_save)

    # ---- the method hooks ------------------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> nn.Module | None:
        """Change the frozen base in place (weight-side) or return a prompt module (input-side)."""
        return None

    def is_trainable(self, name: str) -> bool:
        """Whether the base parameter `name` trains (after `prepare`). The head is handled by the PeftModel."""
        return False

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        """Closed-form count of the method's own trainable parameters; the wrapped head is added by the caller.
        `family` is "bert", "gpt" or "seq2seq"; `num_labels` is set for a classification model; `pooler` is
        False for a BERT built without its pooler (mean pooling)."""
        raise NotImplementedError(f"{type(self).__name__} must give its closed-form count")

    def merge(self, model: nn.Module) -> None:
        """Fold the method into the base weights in place (only where `can_merge`)."""
        raise ValueError(f"{self.peft_type} cannot be merged into the base weights")

    # ---- shared helpers ----------------------------------------------------------------------------------
    @classmethod
    def example(cls, task_type: str) -> PeftConfig:
        """A small valid config for the contract test on tiny models (override when defaults don't fit)."""
        return cls(task_type=task_type)

    def resolved_modules_to_save(self) -> list[str]:
        if self.modules_to_save is not None:
            return self.modules_to_save
        return ["classifier"] if self.task_type == TaskType.SEQ_CLS and self.wraps_head else []

    def to_dict(self) -> dict[str, Any]:
        return {"peft_type": self.peft_type, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PeftConfig:
        d = dict(d)
        d.pop("peft_type", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{cls.__name__} got unknown fields {unknown}; known fields: {sorted(known)}")
        return cls(**d)


def check_choice(obj: object, field: str, allowed: tuple) -> None:
    value = getattr(obj, field)
    if value not in allowed:
        raise ValueError(f"{type(obj).__name__}.{field}={value!r} is not allowed; allowed: {allowed}")


def check_positive(obj: object, field: str, minimum: float = 1) -> None:
    value = getattr(obj, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"{type(obj).__name__}.{field} must be a number >= {minimum}, got {value!r}")
