"""The base of every method's configuration: task types, validation, JSON round trip, and the method hooks.

A method is a `PeftConfig` subclass registered under a name (`methods/api/registry.py`). It answers these
questions, and the `PeftModel` does the rest the same way for every method (DESIGN.md §5):

    prepare(model, adapter_name)     what to change in the frozen base: module surgery (weight-side methods wrap
                                     layers in `methods.api.layers.AdapterLayer`s) -> None, or, for input-side
                                     methods, a module the PeftModel owns (prompts, prefixes, any per-method state)
    is_trainable(name)               which parameters of the base train (and are saved): the name filter
    expected_trainable_parameters()  the closed-form count, checked against the live count by the contract test
    loss(model, batch)               the training loss (hook; default: the model's own loss)
    on_step(model, step, total)      after each optimizer step (hook; default: nothing)
    merge(model)                     fold an in-place method into the base weights, where it allows it

A config may hold other configs as fields (a composed method such as MAM or UniPELT): `to_dict` writes them with
their `peft_type`, and `from_dict` rebuilds them through the registry.

Names follow Hugging Face `peft` where a name exists (`task_type`, `target_modules`, `modules_to_save`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from minitransformer import TransformerConfig

if TYPE_CHECKING:
    from .peft_model import PeftModel

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
    default_lr: ClassVar[float] = 1e-3  # the method's documented default learning rate
    # The learning rates the comparison protocol tries (chosen on dev). Empty = default_lr x (1/3, 1, 3).
    lr_grid: ClassVar[tuple[float, ...]] = ()
    can_merge: ClassVar[bool] = False
    wraps_head: ClassVar[bool] = True  # False for full fine-tuning: the head is simply part of the model
    # True when the method trains the base's own tensors in place (BitFit, full fine-tuning): such a method is
    # the only adapter of its PeftModel, and disable_adapter() restores a copy of those tensors.
    trains_base_weights: ClassVar[bool] = False
    task_types: ClassVar[tuple[str, ...]] = TASK_TYPES  # the task types the method supports
    noop_at_init: ClassVar[bool] = True  # the wrapped model computes exactly the base's outputs at init
    # True when prepare() changes the frozen base itself (QLoRA stores it in 4 bits): disable_adapter() then gives
    # that changed base, not the original one
    alters_base: ClassVar[bool] = False
    # False for a method the comparison's default list leaves out: AdapterFusion needs its stage-1 adapters first
    in_comparison: ClassVar[bool] = True
    # For the contract test: (constructor kwargs, the field its ValueError must name). Subclasses add theirs.
    invalid_examples: ClassVar[list[tuple[dict, str]]] = [
        ({"task_type": "TOKEN_CLS"}, "task_type"),
        ({"modules_to_save": "classifier"}, "modules_to_save"),
    ]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field, the value and what is allowed. Subclasses extend this."""
        check_choice(self, "task_type", type(self).task_types)
        if self.modules_to_save is not None:
            if isinstance(self.modules_to_save, str) or not all(isinstance(m, str) for m in self.modules_to_save):
                raise ValueError(f"{type(self).__name__}.modules_to_save must be a list of module names or None, "
                                 f"got {self.modules_to_save!r}")
            self.modules_to_save = list(self.modules_to_save)
        for f in dataclasses.fields(self):  # composed methods: every sub-config fits this config's task
            sub = getattr(self, f.name)
            if isinstance(sub, PeftConfig) and sub.task_type != self.task_type:
                raise ValueError(f"{type(self).__name__}.{f.name}.task_type={sub.task_type!r} differs from "
                                 f"{type(self).__name__}.task_type={self.task_type!r}; allowed: the same task type")

    # ---- the method hooks ------------------------------------------------------------------------------
    def prepare(self, model: nn.Module, adapter_name: str = "default") -> nn.Module | None:
        """Change the frozen base in place (weight-side) or return a module the PeftModel owns (input-side)."""
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

    def loss(self, model: PeftModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch; the training loop calls it through `PeftModel.training_loss`.
        Override for two forward passes and a consistency term (AdaMix), a regulariser (AdaLoRA), a sampled
        depth (robust AdapterDrop)."""
        return model(**batch).loss

    def on_step(self, model: PeftModel, step: int, total_steps: int) -> None:
        """Called by the training loop after optimizer step `step` (1-based) of `total_steps`, before the
        gradients are cleared (AdaLoRA's budget allocator reads them)."""

    def extra_positions(self) -> int:
        """Positions the method adds to a causal LM's logits (prompt tuning and P-tuning put n virtual tokens in
        front, as `peft`: the logits cover n + T positions); 0 for every other method."""
        return 0

    def merge(self, model: nn.Module) -> None:
        """Fold an in-place method into the base weights (only where `can_merge`). Wrapper layers are merged by
        the PeftModel itself (`AdapterLayer.merge`)."""

    # ---- shared helpers ----------------------------------------------------------------------------------
    @classmethod
    def example(cls, task_type: str) -> PeftConfig:
        """A small valid config for the contract test on tiny models (override when defaults don't fit)."""
        return cls(task_type=task_type)

    @classmethod
    def lr_candidates(cls) -> tuple[float, ...]:
        """The learning-rate grid of the comparison protocol: `lr_grid`, or the default and x3 either side."""
        return cls.lr_grid or (cls.default_lr / 3, cls.default_lr, cls.default_lr * 3)

    def resolved_modules_to_save(self) -> list[str]:
        if self.modules_to_save is not None:
            return self.modules_to_save
        return ["classifier"] if self.task_type == TaskType.SEQ_CLS and self.wraps_head else []

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict with `peft_type`; sub-configs are written the same way, recursively."""
        def plain(v: Any) -> Any:
            if isinstance(v, PeftConfig):
                return v.to_dict()
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v
        return {"peft_type": self.peft_type, **{f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PeftConfig:
        """Rebuild a config; a nested dict carrying a `peft_type` becomes that method's config (registry)."""
        from .registry import get_method  # the registry imports this module

        def build(v: Any) -> Any:
            if isinstance(v, dict) and "peft_type" in v:
                return get_method(v["peft_type"]).from_dict(v)
            if isinstance(v, list):
                return [build(x) for x in v]
            return v

        d = dict(d)
        kind = d.pop("peft_type", None)
        if kind not in (None, cls.peft_type):
            raise ValueError(f"{cls.__name__}.from_dict got peft_type={kind!r}; allowed: {cls.peft_type!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{cls.__name__} got unknown fields {unknown}; known fields: {sorted(known)}")
        return cls(**{k: build(v) for k, v in d.items()})


def check_choice(obj: object, field: str, allowed: tuple) -> None:
    value = getattr(obj, field)
    if value not in allowed:
        raise ValueError(f"{type(obj).__name__}.{field}={value!r} is not allowed; allowed: {allowed}")


def check_positive(obj: object, field: str, minimum: float = 1) -> None:
    value = getattr(obj, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"{type(obj).__name__}.{field} must be a number >= {minimum}, got {value!r}")
