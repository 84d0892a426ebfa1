"""`get_peft_model` and `PeftModel`: one wrapper for every method, used as in Hugging Face `peft`.

    model = get_peft_model(base, BitFitConfig())      # freeze, apply the method, unfreeze its parameters
    model.print_trainable_parameters()                # trainable params: 104,450 || all params: ... || trainable%: ...
    model.save_pretrained("out/")                     # adapter_config.json + adapter_model.safetensors
    model = PeftModel.from_pretrained(base, "out/")   # the same outputs, frozen (is_trainable=True to resume)
    with model.disable_adapter(): ...                 # the base model's own outputs
    merged = model.merge_and_unload()                 # a plain base model, where the method can merge

Named adapters (as in `peft`): `add_adapter("b", config)` applies a second adapter of a method that adds its own
tensors (wrapper layers, prompt modules, heads); `set_adapter("b")` makes it the one that computes and trains;
`merge_adapter()` / `unmerge_adapter()` fold the active adapter into the base weights and back, explicitly.
A method that trains the base's own tensors in place (BitFit, full fine-tuning: `trains_base_weights`) is the
only adapter of its PeftModel.

What trains, and what is saved, is one list per adapter (`adapter_keys(name)`): the method's own parameters
(its name filter after `prepare`, restricted to that adapter's entries), the adapter's trainable copy of each
`modules_to_save` module, and the adapter's module in `adapter_modules` (input-side methods: prompts, prefixes,
or any per-method module or state). Saved keys drop the adapter name, as in `peft`, so an adapter saved as
"default" loads under any name.

The training loop (`minitransformer.training.train`) calls the active method's hooks through this class:
`training_loss(batch)` (the loss hook) and `on_step(step, total_steps)` (the step hook).
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
from .layers import AdapterLayer, wrappers
from .registry import get_method
from .targets import ModulesToSave, find_targets, has_pooler, model_family, replace_module, wrap_modules_to_save

CONFIG_NAME, WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"
DEFAULT = "default"


def _check_task(model: nn.Module, config: PeftConfig) -> None:
    family = model_family(model)
    ok = {TaskType.SEQ_CLS: hasattr(model, "classifier"),
          TaskType.CAUSAL_LM: family == "gpt" and not hasattr(model, "classifier"),
          TaskType.SEQ_2_SEQ_LM: family == "seq2seq"}[config.task_type]
    if not ok:
        raise ValueError(f"task_type={config.task_type!r} does not fit a {type(model).__name__}: SEQ_CLS needs "
                         f"a model with a `classifier` (BertForSequenceClassification, GPTForSequenceClassification), "
                         f"CAUSAL_LM a GPTModel, SEQ_2_SEQ_LM a Transformer")


def _strip(key: str, adapter_name: str) -> str:
    """A parameter name without its adapter-name component (the saved form)."""
    return ".".join(p for p in key.split(".") if p != adapter_name)


class PeftModel(nn.Module):
    """A frozen base model plus one or more named adapters of a method. Its forward mirrors the base model's."""

    def __init__(self, model: nn.Module, config: PeftConfig, adapter_name: str = DEFAULT) -> None:
        super().__init__()
        self.family = model_family(model)
        self.base_model = model
        self.peft_config: dict[str, PeftConfig] = {}
        # input-side methods' modules (prompts, prefixes, encoders) and any per-method state, one per adapter
        self.adapter_modules = nn.ModuleDict()
        self.active_adapter = adapter_name
        self._base_names = {n for n, _ in model.named_parameters()}  # the base's own tensors, before any surgery
        self._originals: dict[str, torch.Tensor] = {}
        self._disabled = False
        model.requires_grad_(False)
        self.add_adapter(adapter_name, config)
        self.set_adapter(adapter_name)

    # ---- named adapters ---------------------------------------------------------------------------------------
    @property
    def active_peft_config(self) -> PeftConfig:
        return self.peft_config[self.active_adapter]

    def _check_adapter_name(self, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"adapter_name={name!r} must be a Python identifier (letters, digits, _)")
        if name in self.peft_config:
            raise ValueError(f"adapter_name={name!r} exists already; adapters: {sorted(self.peft_config)}")
        taken = {part for n, _ in self.base_model.named_modules() for part in n.split(".")}
        if name in taken:  # the name is a path component of saved keys: it must not be a module's name
            raise ValueError(f"adapter_name={name!r} is also the name of a module in the base model; choose another")

    def add_adapter(self, adapter_name: str, config: PeftConfig) -> None:
        """Apply `config` to the base as adapter `adapter_name` (inactive until `set_adapter`)."""
        self._check_adapter_name(adapter_name)
        _check_task(self.base_model, config)
        if self.peft_config:
            first = next(iter(self.peft_config.values()))
            if config.task_type != first.task_type:
                raise ValueError(f"add_adapter: task_type={config.task_type!r} differs from the PeftModel's "
                                 f"{first.task_type!r}; allowed: the same task type")
            if config.trains_base_weights or first.trains_base_weights:
                one = config if config.trains_base_weights else first
                raise ValueError(f"add_adapter: {one.peft_type} trains the base model's own parameters in place, so "
                                 f"it must be the only adapter of a PeftModel; wrap a fresh base model instead")
        module = config.prepare(self.base_model, adapter_name)  # surgery on the base, or an owned module
        if module is not None:
            self.adapter_modules[adapter_name] = module
        wrap_modules_to_save(self.base_model, config.resolved_modules_to_save(), adapter_name)
        self.peft_config[adapter_name] = config
        if config.trains_base_weights:  # keep the original values, so that disable_adapter() can show the base
            params = dict(self.base_model.named_parameters())
            self._originals = {n: p.detach().clone() for n, p in params.items()
                               if n in self._base_names and config.is_trainable(n)}

    def adapter_keys(self, adapter_name: str | None = None) -> list[str]:
        """Names (in `self.named_parameters()`) of the parameters adapter `adapter_name` trains and saves."""
        name = adapter_name or self.active_adapter
        if name not in self.peft_config:
            raise ValueError(f"unknown adapter {name!r}; adapters: {sorted(self.peft_config)}")
        config, keys = self.peft_config[name], []
        for n, _ in self.named_parameters():
            if n.startswith("adapter_modules."):
                owned = n.split(".")[1] == name
            elif n.startswith("base_model."):
                inner, parts = n[len("base_model."):], n.split(".")
                if ".modules_to_save." in n:
                    owned = parts[parts.index("modules_to_save") + 1] == name
                elif ".original_module." in n:
                    owned = False
                elif config.trains_base_weights:
                    owned = inner in self._base_names and config.is_trainable(inner)
                else:
                    owned = name in parts and config.is_trainable(inner)
            else:
                owned = False
            if owned:
                keys.append(n)
        return keys

    def set_adapter(self, adapter_name: str) -> None:
        """Make `adapter_name` the adapter that computes and trains; every other adapter is frozen."""
        if adapter_name not in self.peft_config:
            raise ValueError(f"set_adapter: unknown adapter {adapter_name!r}; adapters: {sorted(self.peft_config)}")
        for _, layer in wrappers(self.base_model):
            if adapter_name in layer.adapter_names:
                layer.set_adapter(adapter_name)
            else:
                layer.active_adapters = []
        for m in self.base_model.modules():
            if isinstance(m, ModulesToSave):
                m.set_adapter(adapter_name)
        self.active_adapter = adapter_name
        self.requires_grad_(False)
        params = dict(self.named_parameters())
        for n in self.adapter_keys(adapter_name):
            params[n].requires_grad_(True)

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an inactive adapter (its tensors, its head copy, its module)."""
        if adapter_name == self.active_adapter:
            raise ValueError(f"delete_adapter: {adapter_name!r} is active; set_adapter() another one first")
        if adapter_name not in self.peft_config:
            raise ValueError(f"delete_adapter: unknown adapter {adapter_name!r}; adapters: {sorted(self.peft_config)}")
        for _, layer in wrappers(self.base_model):
            layer.delete_adapter(adapter_name)
        for m in self.base_model.modules():
            if isinstance(m, ModulesToSave) and adapter_name in m.modules_to_save:
                del m.modules_to_save[adapter_name]
        if adapter_name in self.adapter_modules:
            del self.adapter_modules[adapter_name]
        del self.peft_config[adapter_name]

    # ---- forward and the training hooks -----------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor | None = None, adapter_names: list[str] | None = None, **kwargs):
        """The base model's forward; an input-side method first rewrites the inputs (`inputs_embeds`,
        `past_key_values`, `attention_mask`) in its module. `adapter_names` (one name per row): a mixed-task batch,
        row b computed with adapter `adapter_names[b]` — input-side methods only, the serving argument of prompt
        tuning (one frozen model, one batch, many tasks)."""
        if input_ids is not None:
            kwargs["input_ids"] = input_ids
        if adapter_names is not None:
            with self._rows(adapter_names) as (module, per_row):
                return self.base_model(**module(self.base_model, **per_row, **kwargs))
        module = self.adapter_modules[self.active_adapter] if self.active_adapter in self.adapter_modules else None
        if module is not None and not self._disabled:
            kwargs = module(self.base_model, **kwargs)
        return self.base_model(**kwargs)

    @contextlib.contextmanager
    def _rows(self, adapter_names: list[str]):
        """(the active module, its per-row arguments) for a mixed-task batch; the heads route rows meanwhile."""
        unknown = sorted({a for a in adapter_names if a not in self.peft_config})
        if unknown:
            raise ValueError(f"adapter_names: unknown adapters {unknown}; adapters: {sorted(self.peft_config)}")
        if self._disabled:
            raise ValueError("adapter_names: adapters are disabled inside disable_adapter()")
        modules = [self.adapter_modules[a] if a in self.adapter_modules else None for a in adapter_names]
        first = modules[0]
        if any(m is None or not hasattr(m, "per_row") or type(m) is not type(first) for m in modules):
            raise ValueError("adapter_names: mixed-task batches need adapters of one input-side method (prompts or "
                             "prefixes), which give each row its own inputs; weight-side adapters change shared weights")
        heads = [m for m in self.base_model.modules() if isinstance(m, ModulesToSave)]
        try:
            for m in heads:
                m.row_adapters = list(adapter_names)
            yield first, first.per_row(modules)
        finally:
            for m in heads:
                m.row_adapters = None

    def generate(self, *args, adapter_names: list[str] | None = None, **kwargs):
        """The base model's `generate` (GPT and encoder-decoder bases); `adapter_names`: one prompt or prefix
        adapter per row, as in `forward`."""
        if adapter_names is not None:
            with self._rows(adapter_names) as (module, per_row):
                return module.generate(self.base_model, *args, **per_row, **kwargs)
        module = self.adapter_modules[self.active_adapter] if self.active_adapter in self.adapter_modules else None
        if module is not None and not self._disabled:
            if not hasattr(module, "generate"):
                raise ValueError(f"{self.active_peft_config.peft_type}: its module has no `generate`, so this "
                                 f"method cannot generate")
            return module.generate(self.base_model, *args, **kwargs)
        return self.base_model.generate(*args, **kwargs)

    def bake(self) -> None:
        """Input-side methods with an encoder (P-tuning, prefix tuning with its MLP): replace the active adapter's
        encoder by the table it outputs, for inference — identical outputs, fewer parameters, no longer trainable."""
        module = self.adapter_modules[self.active_adapter] if self.active_adapter in self.adapter_modules else None
        if module is None or not hasattr(module, "bake"):
            raise ValueError(f"bake: {self.active_peft_config.peft_type} has no prompt encoder to bake; allowed: "
                             f"prompt_tuning, p_tuning, prefix_tuning, p_tuning_v2")
        module.bake()

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss hook of the active method (default: the model's own loss)."""
        return self.active_peft_config.loss(self, batch)

    def on_step(self, step: int, total_steps: int) -> None:
        """The step hook of the active method, called by the training loop after each optimizer step."""
        self.active_peft_config.on_step(self, step, total_steps)

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
        """Inside the block the model computes what the base model computed before `get_peft_model`: wrapper
        layers are unmerged (and merged back afterwards) and switched off, heads use their originals, input-side
        modules are skipped, and in-place methods' tensors are swapped for the saved originals."""
        toggles = [m for m in self.modules() if hasattr(m, "adapter_enabled")]
        merged = {layer: list(layer.merged_adapters) for _, layer in wrappers(self.base_model) if layer.merged}
        params = dict(self.base_model.named_parameters())
        saved = {n: params[n].detach().clone() for n in self._originals}
        try:
            for layer in merged:
                layer.unmerge()
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
            for layer, names in merged.items():
                layer.merge(names)

    def _check_mergeable(self) -> None:
        config = self.active_peft_config
        if not config.can_merge:
            raise ValueError(f"{config.peft_type} cannot be merged into the base weights: its parameters "
                             f"add computation (modules or inputs) rather than change existing weights")

    def merge_adapter(self) -> None:
        """Fold the active adapter into the base weights of every wrapper layer (explicit; idempotent)."""
        self._check_mergeable()
        for _, layer in wrappers(self.base_model):
            layer.merge()

    def unmerge_adapter(self) -> None:
        """Take every merged adapter out of the base weights again (idempotent)."""
        for _, layer in wrappers(self.base_model):
            layer.unmerge()

    def merge_and_unload(self) -> nn.Module:
        """Fold the active adapter into the base weights and return the plain base model: every wrapper layer
        replaced by its (merged) base layer, every head by the active adapter's trained copy."""
        self._check_mergeable()
        self.merge_adapter()
        self.active_peft_config.merge(self.base_model)
        for name, layer in reversed(wrappers(self.base_model)):  # innermost first, so outer names stay valid
            if isinstance(self.base_model.get_submodule(name), AdapterLayer):
                replace_module(self.base_model, name, layer.get_base_layer())
        for name, m in list(self.base_model.named_modules()):
            if isinstance(m, ModulesToSave):
                replace_module(self.base_model, name, m.modules_to_save[m.active_adapter] if m.active_adapter
                               else m.original_module)
        return self.base_model

    # ---- saving and loading ------------------------------------------------------------------------------------
    def adapter_state_dict(self, adapter_name: str | None = None) -> dict[str, torch.Tensor]:
        """The tensors of one adapter, keyed without the adapter name (the saved form)."""
        name = adapter_name or self.active_adapter
        params = dict(self.named_parameters())
        return {_strip(n, name): params[n].detach().clone().contiguous() for n in self.adapter_keys(name)}

    def save_pretrained(self, save_directory: str | Path, adapter_name: str | None = None) -> None:
        """Write one adapter (default: the active one) as `adapter_config.json` and `adapter_model.safetensors`
        (no pickle)."""
        name = adapter_name or self.active_adapter
        if name not in self.peft_config:
            raise ValueError(f"save_pretrained: unknown adapter {name!r}; adapters: {sorted(self.peft_config)}")
        if getattr(self.adapter_modules[name] if name in self.adapter_modules else None, "baked", False):
            raise ValueError(f"save_pretrained: adapter {name!r} was baked (its encoder replaced by the output "
                             f"table, for inference); save before bake(), so that the checkpoint keeps the encoder "
                             f"and training can resume")
        d = Path(save_directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {**self.peft_config[name].to_dict(), "base_model_class": type(self.base_model).__name__}
        (d / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True))
        save_file(self.adapter_state_dict(name), str(d / WEIGHTS_NAME), metadata={"format": "pt"})

    def load_adapter(self, save_directory: str | Path, adapter_name: str = DEFAULT, is_trainable: bool = False) -> None:
        """Add the adapter saved in `save_directory` under `adapter_name` and load its tensors (it becomes
        active; frozen unless `is_trainable`)."""
        d = Path(save_directory)
        meta = json.loads((d / CONFIG_NAME).read_text())
        meta.pop("base_model_class", None)
        config = get_method(meta["peft_type"]).from_dict(meta)
        if adapter_name not in self.peft_config:
            self.add_adapter(adapter_name, config)
        self.set_adapter(adapter_name)
        tensors = load_file(str(d / WEIGHTS_NAME))
        params = dict(self.named_parameters())
        want = {_strip(k, adapter_name): k for k in self.adapter_keys(adapter_name)}
        missing, unexpected = sorted(set(want) - set(tensors)), sorted(set(tensors) - set(want))
        mismatched = sorted(f"{k}: model {tuple(params[want[k]].shape)} vs saved {tuple(v.shape)}"
                            for k, v in tensors.items() if k in want and params[want[k]].shape != v.shape)
        if missing or unexpected or mismatched:
            raise ValueError(f"{d / WEIGHTS_NAME} does not fit this {type(self.base_model).__name__}:\n"
                             f"  missing keys ({len(missing)}): {missing}\n"
                             f"  unexpected keys ({len(unexpected)}): {unexpected}\n"
                             f"  shape mismatches ({len(mismatched)}): {mismatched}")
        with torch.no_grad():
            for k, v in tensors.items():
                params[want[k]].copy_(v)
        if not is_trainable:
            for k in want.values():
                params[k].requires_grad_(False)

    @classmethod
    def from_pretrained(cls, model: nn.Module, save_directory: str | Path, adapter_name: str = DEFAULT,
                        is_trainable: bool = False) -> PeftModel:
        """Apply the saved method to `model` and load its weights. Frozen and in eval mode unless
        `is_trainable=True`, which resumes training (input-side modules included, unlike `peft`)."""
        d = Path(save_directory)
        meta = json.loads((d / CONFIG_NAME).read_text())
        meta.pop("base_model_class", None)
        peft = cls(model, get_method(meta["peft_type"]).from_dict(meta), adapter_name)
        peft.load_adapter(d, adapter_name, is_trainable)
        if not is_trainable:
            peft.eval()
        return peft


def get_peft_model(model: nn.Module, config: PeftConfig, adapter_name: str = DEFAULT) -> PeftModel:
    """Freeze `model`, apply the method of `config` to it (in place) and wrap it in a `PeftModel`."""
    return PeftModel(model, config, adapter_name)


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
                m = m.original_module if isinstance(m, ModulesToSave) else m
                total += sum(p.numel() for p in m.parameters())
    return total
