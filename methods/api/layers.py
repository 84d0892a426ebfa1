"""The one base of every weight-side wrapper layer: a frozen base layer and one or more named adapters.

Modelled on `peft`'s tuner layer (`BaseTunerLayer`), written out so that every step can be read:

    y = base_layer(x)                                   the frozen layer, untouched
    for each active adapter a, not merged:  y = apply_adapter(a, x, y)      (default: y + adapter_delta(a, x))

- **Named adapters.** A subclass keeps each adapter's tensors in `nn.ParameterDict` / `nn.ModuleDict` attributes
  whose names carry the method's prefix (`random_subset_delta`, later `lora_A`, ...), keyed by the adapter name:
  `layers.0.attn.q.random_subset_delta.default`. `update_layer(name, ...)` adds one; `set_adapter(name)` picks
  which one computes (`active_adapters`).
- **Merging is explicit.** `merge()` adds `delta_weight(a)` of each active adapter into the base weight and
  records it in `merged_adapters`; `unmerge()` subtracts it again. Both are idempotent, and neither ever happens
  as a side effect of `.train()` / `.eval()` (the bug `loralib` shipped: its `train()` unmerged and `eval()`
  merged). A merged adapter is skipped in `forward`, so the output is the same merged or not.
- **Seeing through wrappers.** `base_layer` may itself be an `AdapterLayer` (two methods on one `nn.Linear`, as
  UniPELT and LoRA-on-QLoRA need); `get_base_layer()` follows the chain down to the plain layer, and `weight` /
  `bias` read through it. `methods.api.targets.find_targets` therefore finds `attn.q` whether or not it is wrapped.
- **Off switch.** `adapter_enabled = False` (what `PeftModel.disable_adapter()` sets) computes the base layer alone;
  `PeftModel` unmerges first and merges back afterwards.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class AdapterLayer(nn.Module):
    """Base of the weight-side wrappers. Subclasses implement `update_layer`, `adapter_delta` (or
    `apply_adapter`) and, when the method can merge, `delta_weight`."""

    adapter_attributes: ClassVar[tuple[str, ...]] = ()  # the dict attributes holding per-adapter tensors

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.active_adapters: list[str] = []
        self.merged_adapters: list[str] = []
        self.adapter_enabled = True

    # ---- the wrapped layer ---------------------------------------------------------------------------------
    def get_base_layer(self) -> nn.Module:
        """The plain layer at the bottom of a chain of wrappers."""
        layer = self.base_layer
        while isinstance(layer, AdapterLayer):
            layer = layer.base_layer
        return layer

    @property
    def weight(self) -> torch.Tensor:
        return self.get_base_layer().weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.get_base_layer().bias

    # ---- adapters ---------------------------------------------------------------------------------------------
    @property
    def adapter_names(self) -> list[str]:
        """Every adapter this layer holds (in the order they were added)."""
        if not self.adapter_attributes:
            return []
        return list(getattr(self, self.adapter_attributes[0]).keys())

    def update_layer(self, adapter_name: str, **kwargs) -> None:
        """Create the tensors of adapter `adapter_name` (subclasses). The new adapter is not yet active."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_layer")

    def set_adapter(self, adapter_names: str | list[str]) -> None:
        """Make these adapters the ones that compute (the others stay, inactive)."""
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        unknown = [n for n in names if n not in self.adapter_names]
        if unknown:
            raise ValueError(f"{type(self).__name__}.set_adapter: unknown adapter(s) {unknown}; "
                             f"this layer holds {self.adapter_names}")
        self.active_adapters = names

    def delete_adapter(self, adapter_name: str) -> None:
        if adapter_name in self.merged_adapters:
            raise ValueError(f"adapter {adapter_name!r} is merged; unmerge it before deleting it")
        for attr in self.adapter_attributes:
            store = getattr(self, attr)
            if adapter_name in store:
                del store[adapter_name]
        self.active_adapters = [a for a in self.active_adapters if a != adapter_name]

    # ---- the computation --------------------------------------------------------------------------------------
    def adapter_delta(self, adapter_name: str, x: torch.Tensor) -> torch.Tensor:
        """What adapter `adapter_name` adds to the base output for input `x` (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement adapter_delta or apply_adapter")

    def apply_adapter(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        """Combine one adapter with the output so far: additive by default; (IA)³-style rescaling overrides."""
        return result + self.adapter_delta(adapter_name, x)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if not self.adapter_enabled:
            return result
        for name in self.active_adapters:
            if name not in self.merged_adapters:  # a merged adapter already sits in the base weight
                result = self.apply_adapter(name, x, result)
        return result

    # ---- merging ----------------------------------------------------------------------------------------------
    def delta_weight(self, adapter_name: str) -> torch.Tensor:
        """ΔW of adapter `adapter_name`, shaped like the base weight (subclasses that can merge)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be merged into the base weight")

    @property
    def merged(self) -> bool:
        return bool(self.merged_adapters)

    @torch.no_grad()
    def merge(self, adapter_names: list[str] | None = None) -> None:
        """W += ΔW for each of `adapter_names` (default: the active ones) not merged yet. Idempotent."""
        for name in self.active_adapters if adapter_names is None else adapter_names:
            if name in self.merged_adapters:
                continue
            if name not in self.adapter_names:
                raise ValueError(f"cannot merge unknown adapter {name!r}; this layer holds {self.adapter_names}")
            self.fold(name, inverse=False)
            self.merged_adapters.append(name)

    @torch.no_grad()
    def unmerge(self) -> None:
        """W -= ΔW for every merged adapter, last merged first. Idempotent (nothing merged: nothing to do)."""
        while self.merged_adapters:
            self.fold(self.merged_adapters.pop(), inverse=True)

    @torch.no_grad()
    def fold(self, adapter_name: str, inverse: bool) -> None:
        """Put one adapter into the base weight (W += ΔW) or take it out (W -= ΔW); a multiplicative method
        ((IA)³) overrides this alone."""
        if inverse:
            self.get_base_layer().weight -= self.delta_weight(adapter_name)
        else:
            self.get_base_layer().weight += self.delta_weight(adapter_name)

    def extra_repr(self) -> str:
        return f"adapters={self.adapter_names}, active={self.active_adapters}, merged={self.merged_adapters}"


def wrappers(model: nn.Module) -> list[tuple[str, AdapterLayer]]:
    """Every AdapterLayer in `model`, outermost first within a chain."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AdapterLayer)]


def find_layer(module: nn.Module, cls: type[AdapterLayer]) -> AdapterLayer | None:
    """The wrapper of type `cls` in the chain that starts at `module`, if any."""
    while isinstance(module, AdapterLayer):
        if isinstance(module, cls):
            return module
        module = module.base_layer
    return None


def add_to_layer(model: nn.Module, name: str, cls: type[AdapterLayer], adapter_name: str, **kwargs) -> AdapterLayer:
    """Give module `name` an adapter `adapter_name` of wrapper type `cls`: reuse the `cls` wrapper already in its
    chain (a second named adapter of the same method), or wrap the module (module surgery, visible in
    `print(model)`). Returns the wrapper."""
    from .targets import replace_module  # targets imports this module

    module = model.get_submodule(name)
    layer = find_layer(module, cls)
    if layer is None:
        layer = cls(module)
        replace_module(model, name, layer)
    if adapter_name in layer.adapter_names:
        raise ValueError(f"{name} already has an adapter named {adapter_name!r}")
    layer.update_layer(adapter_name, **kwargs)
    return layer
