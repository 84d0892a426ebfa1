"""`get_peft_model` and `PeftModel`: one wrapper for every method, used as in Hugging Face `peft`.

    model = get_peft_model(base, BitFitConfig())      # freeze, apply the method, unfreeze its parameters
    model.print_trainable_parameters()                # trainable params: 104,450 || all params: ... || trainable%: ...
    model.save_pretrained("out/")                     # adapter_config.json + adapter_model.safetensors
    model = PeftModel.from_pretrained(base, "out/")   # the same outputs, frozen (is_trainable=True to resume)
    with model.disable_adapter(): ...                 # the base model's own outputs
    merged = model.merge_and_unload()                 # a plain base model, where the method can merge

What gets trained, and what gets saved, is one list (`adapter_keys`): the method's own parameters (its name
filter after `prepare`), the trainable copies of `modules_to_save`, and an input-side method's prompt module.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import PeftConfig, TaskType
from .counting import head_params
from .registry import get_method
from .targets import ModulesToSave, find_targets, has_pooler, model_family, replace_module, wrap_modules_to_save

CONFIG_NAME, WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"


def _check_task(model: nn.Module, config: PeftConfig) -> None:
    family = model_family(model)
    ok = {TaskType.SEQ_CLS: hasattr(model, "classifier"),
          TaskType.CAUSAL_LM: family == "gpt" and not hasattr(model, "classifier"),
          TaskType.SEQ_2_SEQ_LM: family == "seq2seq"}[config.task_type]
    if not ok:
        raise ValueError(f"task_type={config.task_type!r} does not fit a {type(model).__name__}: SEQ_CLS needs "
                         f"a model with a `classifier` (BertForSequenceClassification, GPTForSequenceClassification), "
                         f"CAUSAL_LM a GPTModel, SEQ_2_SEQ_LM a Transformer")


class PeftModel(nn.Module):
    """A frozen base model plus one method. Its forward mirrors the base model's forward."""

    def __init__(self, model: nn.Module, config: PeftConfig) -> None:
        super().__init__()
        _check_task(model, config)
        self.peft_config, self.family = config, model_family(model)
        self.base_model = model
        original = {n for n, _ in model.named_parameters()}
        model.requires_grad_(False)
        self.prompt_encoder = config.prepare(model)  # surgery on `model`, or a prompt module (input-side)
        for name, p in model.named_parameters():
            p.requires_grad_(config.is_trainable(name))
        self.saved_modules = wrap_modules_to_save(model, config.resolved_modules_to_save())
        if self.prompt_encoder is not None:
            self.prompt_encoder.requires_grad_(True)
        self.adapter_keys = [n for n, p in self.named_parameters() if p.requires_grad]
        # Methods that train existing weights in place (BitFit, full fine-tuning) keep the original values,
        # so that disable_adapter() can show the base model. Costs a copy of exactly those weights.
        self._originals = {n: p.detach().clone() for n, p in model.named_parameters()
                           if p.requires_grad and n in original}
        self._disabled = False

    # ---- forward ---------------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor | None = None, **kwargs):
        """The base model's forward; input-side methods first rewrite the inputs (`inputs_embeds`,
        `past_key_values`, `attention_mask`) in their prompt module."""
        if input_ids is not None:
            kwargs["input_ids"] = input_ids
        if self.prompt_encoder is not None and not self._disabled:
            kwargs = self.prompt_encoder(self.base_model, **kwargs)
        return self.base_model(**kwargs)

    def generate(self, *args, **kwargs):
        """The base model's `generate` (GPT and encoder-decoder bases)."""
        if self.prompt_encoder is not None and not self._disabled:
            if not hasattr(self.prompt_encoder, "generate"):
                raise ValueError(f"{self.peft_config.peft_type}: its prompt module has no `generate`, so this "
                                 f"method cannot generate")
            return self.prompt_encoder.generate(self.base_model, *args, **kwargs)
        return self.base_model.generate(*args, **kwargs)

    # ---- counting -----------------------------------------------------------------------------------------
    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """(trainable, all), over `named_parameters()` (shared tensors counted once, as in `peft`)."""
        trainable = sum(p.numel() for _, p in self.named_parameters() if p.requires_grad)
        return trainable, sum(p.numel() for _, p in self.named_parameters())

    def print_trainable_parameters(self) -> None:
        t, a = self.get_nb_trainable_parameters()
        print(f"trainable params: {t:,d} || all params: {a:,d} || trainable%: {100 * t / a:.4f}")

    # ---- adapters on and off, merging ------------------------------------------------------------------------
    @contextlib.contextmanager
    def disable_adapter(self):
        """Inside the block the model computes what the base model computed before `get_peft_model`."""
        toggles = [m for m in self.modules() if hasattr(m, "adapter_enabled")]
        params = dict(self.base_model.named_parameters())
        saved = {n: params[n].detach().clone() for n in self._originals}
        try:
            self._disabled = True
            for m in toggles:
                m.adapter_enabled = False
            with torch.no_grad():
                for n, v in self._originals.items():
                    params[n].copy_(v)
            yield self
        finally:
            self._disabled = False
            for m in toggles:
                m.adapter_enabled = True
            with torch.no_grad():
                for n, v in saved.items():
                    params[n].copy_(v)

    def merge_and_unload(self) -> nn.Module:
        """Fold the method into the base weights and return the plain base model (heads unwrapped)."""
        if not self.peft_config.can_merge:
            raise ValueError(f"{self.peft_config.peft_type} cannot be merged into the base weights: its parameters "
                             f"add computation (modules or inputs) rather than change existing weights")
        self.peft_config.merge(self.base_model)
        for name in self.saved_modules:
            wrapper = self.base_model.get_submodule(name)
            replace_module(self.base_model, name, wrapper.modules_to_save)
        return self.base_model

    # ---- saving and loading ------------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        params = dict(self.named_parameters())
        return {n: params[n].detach().clone().contiguous() for n in self.adapter_keys}

    def save_pretrained(self, save_directory: str | Path) -> None:
        """Write `adapter_config.json` and `adapter_model.safetensors` (no pickle)."""
        d = Path(save_directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {**self.peft_config.to_dict(), "base_model_class": type(self.base_model).__name__}
        (d / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True))
        save_file(self.adapter_state_dict(), str(d / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, model: nn.Module, save_directory: str | Path, is_trainable: bool = False) -> PeftModel:
        """Apply the saved method to `model` and load its weights. Frozen and in eval mode unless
        `is_trainable=True`, which resumes training (prompt encoders included, unlike `peft`)."""
        d = Path(save_directory)
        meta = json.loads((d / CONFIG_NAME).read_text())
        meta.pop("base_model_class", None)
        config = get_method(meta["peft_type"]).from_dict(meta)
        peft = cls(model, config)
        tensors = load_file(str(d / WEIGHTS_NAME))
        params = dict(peft.named_parameters())
        want = set(peft.adapter_keys)
        missing, unexpected = sorted(want - set(tensors)), sorted(set(tensors) - want)
        mismatched = sorted(f"{k}: model {tuple(params[k].shape)} vs saved {tuple(v.shape)}"
                            for k, v in tensors.items() if k in want and params[k].shape != v.shape)
        if missing or unexpected or mismatched:
            raise ValueError(f"{d / WEIGHTS_NAME} does not fit this {type(model).__name__}:\n"
                             f"  missing keys ({len(missing)}): {missing}\n"
                             f"  unexpected keys ({len(unexpected)}): {unexpected}\n"
                             f"  shape mismatches ({len(mismatched)}): {mismatched}")
        with torch.no_grad():
            for k, v in tensors.items():
                params[k].copy_(v)
        if not is_trainable:
            peft.requires_grad_(False)
            peft.eval()
        return peft


def get_peft_model(model: nn.Module, config: PeftConfig) -> PeftModel:
    """Freeze `model`, apply the method of `config` to it (in place) and wrap it in a `PeftModel`."""
    return PeftModel(model, config)


def expected_trainable_parameters(model: nn.Module, config: PeftConfig) -> int:
    """Closed-form trainable count of `config` on `model`: the method's formula plus the head.

    The head is D·C + C on BERT and D·C on GPT; other `modules_to_save` are counted from the modules."""
    family = model_family(model)
    num_labels = getattr(model, "num_labels", None)
    total = config.expected_trainable_parameters(model.config, family, num_labels, has_pooler(model))
    for name in config.resolved_modules_to_save():
        if name == "classifier":
            total += head_params(model.config, family, model.num_labels)
        else:
            for full in find_targets(model, [name], kinds=(nn.Module,), field="modules_to_save"):
                m = model.get_submodule(full)
                m = m.modules_to_save if isinstance(m, ModulesToSave) else m
                total += sum(p.numel() for p in m.parameters())
    return total
