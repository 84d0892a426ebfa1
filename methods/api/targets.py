"""Finding modules by name, and the visible module surgery every weight-side method uses.

`target_modules`, as in Hugging Face `peft`:
- a list of names, each matched as a suffix of the full module name on a dot boundary
  (`"q"` matches `bert.layers.3.attn.q`; `"attn.q"` too; `"layers.3.attn.q"` only that layer);
- or one string, a regular expression that must match the full module name (`r".*layers\\.[01]\\.attn\\.(q|v)"`).
A name that matches nothing raises `ValueError` listing the module names that exist.
"""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

from minitransformer import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    GPTForSequenceClassification,
    GPTModel,
    Transformer,
)

from .layers import AdapterLayer


def model_family(model: nn.Module) -> str:
    """"bert", "gpt" or "seq2seq": which closed-form parameter formulas apply."""
    if isinstance(model, (BertModel, BertForSequenceClassification, BertForMaskedLM)):
        return "bert"
    if isinstance(model, (GPTModel, GPTForSequenceClassification)):
        return "gpt"
    if isinstance(model, Transformer):
        return "seq2seq"
    raise ValueError(f"unsupported base model {type(model).__name__}; expected one of the minitransformer models")


def has_pooler(model: nn.Module) -> bool:
    """False for a BERT built without its pooler (a classifier with mean pooling); True otherwise."""
    trunk = getattr(model, "bert", model)
    return not isinstance(trunk, BertModel) or trunk.pooler is not None


def _pattern(name: str) -> str:
    return re.sub(r"\.\d+\.", ".*.", name)  # bert.layers.3.attn.q -> bert.layers.*.attn.q


def existing_names(model: nn.Module, kinds: tuple[type, ...] = (nn.Linear,)) -> list[str]:
    """Distinct module names of the given kinds, with layer indices shown as `*` (for error messages)."""
    return sorted({_pattern(n) for n, m in model.named_modules() if is_kind(m, kinds) and "base_layer" not in n.split(".")})


def matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def selects(name: str, target_modules: list[str] | str) -> bool:
    """Whether `target_modules` (a list of name suffixes, or one regex matched against the full name) selects
    the module called `name`: the rule of `find_targets`, for counting from the geometry alone."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(matches(name, t) for t in target_modules)


def select_targets(names: list[str], target_modules: list[str] | str, modules_to_save: list[str]) -> list[str]:
    """The names `target_modules` selects, minus the modules trained in full (a head in `modules_to_save` is not
    also wrapped by the method)."""
    return [n for n in names if selects(n, target_modules) and not any(selects(n, [m]) for m in modules_to_save)]


def is_kind(module: nn.Module, kinds: tuple[type, ...]) -> bool:
    """`module` is one of `kinds`, or a wrapper (AdapterLayer) whose base layer is: a wrapped `attn.q` is still
    the Linear `attn.q` for the next method."""
    return isinstance(module, kinds) or (isinstance(module, AdapterLayer) and isinstance(module.get_base_layer(), kinds))


def find_targets(model: nn.Module, target_modules: list[str] | str, kinds: tuple[type, ...] = (nn.Linear,),
                 field: str = "target_modules") -> list[str]:
    """Full names of the modules of `kinds` selected by `target_modules` (in model order). A wrapped layer is
    found under its own name (the outermost wrapper), never under `...base_layer`."""
    candidates = [n for n, m in model.named_modules() if is_kind(m, kinds) and "base_layer" not in n.split(".")]
    kind_names = "/".join(k.__name__ for k in kinds)
    if isinstance(target_modules, str):
        found = [n for n in candidates if re.fullmatch(target_modules, n)]
        if not found:
            raise ValueError(f"{field}={target_modules!r} (a regular expression) matches no {kind_names} module; "
                             f"the {kind_names} modules are: {existing_names(model, kinds)}")
        return found
    unknown = [t for t in target_modules if not any(matches(n, t) for n in candidates)]
    if unknown:
        raise ValueError(f"{field} names {unknown} match no {kind_names} module; "
                         f"the {kind_names} modules are: {existing_names(model, kinds)}")
    return [n for n in candidates if any(matches(n, t) for t in target_modules)]


def get_parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """(parent module, attribute name) of the module called `name`."""
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Module surgery, visible in `print(model)`: `setattr` on the parent."""
    parent, attr = get_parent(model, name)
    setattr(parent, attr, new)


class ModulesToSave(nn.Module):
    """A module trained in full: a frozen `original_module` and one trainable copy per adapter in
    `modules_to_save` (keyed by adapter name: `classifier.modules_to_save.default.weight`, as in `peft`).

    As in `peft` (its `ModulesToSaveWrapper`): `disable_adapter()` switches back to the original, an adapter that
    has no copy of this module uses the original too, and "all params" counts the head twice, which is why `peft`
    prints 109,780,228 for LoRA on BERT-base.
    """

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self.original_module = original.requires_grad_(False)
        self.modules_to_save = nn.ModuleDict()
        self.active_adapter: str | None = None
        self.adapter_enabled = True  # PeftModel.disable_adapter() switches every `adapter_enabled` off
        self.row_adapters: list[str] | None = None  # a mixed-task batch: the adapter of each row (PeftModel sets it)

    def update(self, adapter_name: str) -> None:
        """A fresh trainable copy of the original for adapter `adapter_name`."""
        self.modules_to_save[adapter_name] = copy.deepcopy(self.original_module).requires_grad_(True)

    def set_adapter(self, adapter_name: str) -> None:
        self.active_adapter = adapter_name if adapter_name in self.modules_to_save else None

    def forward(self, *args, **kwargs) -> torch.Tensor:
        if self.row_adapters is not None and self.adapter_enabled:
            return self._per_row(*args, **kwargs)
        if not self.adapter_enabled or self.active_adapter is None:
            return self.original_module(*args, **kwargs)
        return self.modules_to_save[self.active_adapter](*args, **kwargs)

    def _per_row(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Row b through the copy of adapter `row_adapters[b]` (the original where it has none): one head per task
        in a mixed-task batch. The heads must give outputs of one shape."""
        names = self.row_adapters
        if len(names) != x.size(0):
            raise ValueError(f"adapter_names has {len(names)} entries for a batch of {x.size(0)} rows")
        out = None
        for name in dict.fromkeys(names):
            rows = torch.tensor([i for i, a in enumerate(names) if a == name], device=x.device)
            module = self.modules_to_save[name] if name in self.modules_to_save else self.original_module
            y = module(x[rows], *args, **kwargs)
            if out is None:
                out = y.new_zeros((x.size(0),) + y.shape[1:])
            elif y.shape[1:] != out.shape[1:]:
                raise ValueError(f"adapter_names: the heads of a mixed-task batch must have one output shape; "
                                 f"{name!r} gives {tuple(y.shape[1:])}, another {tuple(out.shape[1:])}")
            out[rows] = y
        return out


def wrap_modules_to_save(model: nn.Module, names: list[str], adapter_name: str = "default") -> list[str]:
    """Give every module whose name matches one of `names` a trainable copy for `adapter_name` (wrapping it in a
    `ModulesToSave` the first time); return the wrapped full names."""
    if not names:
        return []
    wrapped = find_targets(model, names, kinds=(nn.Module,), field="modules_to_save")
    wrapped = [n for n in wrapped if not any(n.startswith(w + ".") for w in wrapped)]  # outermost only
    for n in wrapped:
        module = model.get_submodule(n)
        if not isinstance(module, ModulesToSave):
            module = ModulesToSave(module)
            replace_module(model, n, module)
        module.update(adapter_name)
    return wrapped
