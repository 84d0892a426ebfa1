"""Random-subset fine-tuning: train k randomly chosen entries of the weight matrices (a control for BitFit).

The BitFit paper (Ben Zaken et al. 2022, arXiv:2106.10199, §4) asks whether biases are special or whether any
k parameters would do, and finds that the same number of randomly chosen parameters does much worse. This
method is that control:

    W' = W + scatter(δ, I)          I: k fixed random positions among the entries of the target matrices,
                                    δ ∈ R^k trainable, initialised to 0 (an exact no-op at init)

Plugs in at: each target `nn.Linear` is replaced (module surgery) by a `SparseDeltaLinear` (an `AdapterLayer`,
`methods/api/layers.py`) that holds the frozen layer and, per named adapter, its share of (I, δ). Merging adds δ into W. The k positions are spread over the targets in
proportion to their sizes (largest remainder), then drawn uniformly inside each matrix with `seed`.
Why a separate δ rather than masking gradients of W: AdamW's weight decay would still move "frozen" entries.
Only δ is saved; the positions I are drawn again from `seed` when loading (torch's seeded `randperm`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer import TransformerConfig

from .api.config import PeftConfig, check_positive
from .api.layers import AdapterLayer, add_to_layer
from .api.registry import register
from .api.targets import find_targets, has_pooler, model_family
from .bitfit import bias_table

BLOCK_LINEARS = ["attn.q", "attn.k", "attn.v", "attn.o", "ffn.fc1", "ffn.fc2"]


class SparseDeltaLinear(AdapterLayer):
    """A frozen `nn.Linear` plus, per adapter, trainable values δ at fixed flat positions of its weight."""

    adapter_attributes = ("random_subset_delta",)

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.random_subset_delta = nn.ParameterDict()  # adapter name -> δ (k_i,)

    def update_layer(self, adapter_name: str, index: torch.Tensor) -> None:
        """Positions `index` (k_i,) of the flat weight, and their δ initialised to 0 (an exact no-op)."""
        # not saved: the positions are drawn again from the config's seed when loading
        self.register_buffer(f"random_subset_index_{adapter_name}", index, persistent=False)
        self.random_subset_delta[adapter_name] = nn.Parameter(torch.zeros(len(index), device=self.weight.device))

    def delete_adapter(self, adapter_name: str) -> None:
        super().delete_adapter(adapter_name)
        self._buffers.pop(f"random_subset_index_{adapter_name}", None)

    def delta_weight(self, adapter_name: str) -> torch.Tensor:  # (out, in), zero except at the chosen positions
        W = self.weight
        index = getattr(self, f"random_subset_index_{adapter_name}")
        flat = torch.zeros(W.numel(), device=W.device, dtype=W.dtype)
        return flat.index_add(0, index, self.random_subset_delta[adapter_name]).view_as(W)

    def adapter_delta(self, adapter_name: str, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return F.linear(x, self.delta_weight(adapter_name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        live = [a for a in self.active_adapters if a not in self.merged_adapters] if self.adapter_enabled else []
        if not live or isinstance(self.base_layer, AdapterLayer):
            return super().forward(x)
        # one matmul with W + ΔW instead of two (W x and ΔW x): the same result, half the cost
        return F.linear(x, self.weight + sum(self.delta_weight(a) for a in live), self.bias)


def _allocate(k: int, sizes: list[int]) -> list[int]:
    """Split k over matrices in proportion to their sizes (largest remainder), each share <= its size."""
    total = sum(sizes)
    if k > total:
        raise ValueError(f"RandomSubsetConfig.n_params={k} exceeds the {total} entries of the target matrices")
    exact = [k * s / total for s in sizes]
    shares = [int(e) for e in exact]
    for i in sorted(range(len(sizes)), key=lambda i: exact[i] - shares[i], reverse=True)[: k - sum(shares)]:
        shares[i] += 1
    return shares


@register("random_subset")
@dataclass
class RandomSubsetConfig(PeftConfig):
    """n_params: how many entries train; None = as many as BitFit trains on this model (its biases, head
    excluded). target_modules: the Linear layers to draw from (default: q, k, v, o, fc1, fc2 of every block).

    lr 1e-3, as BitFit, so the two compare at the same step size."""

    n_params: int | None = None
    target_modules: list[str] | str = field(default_factory=lambda: list(BLOCK_LINEARS))
    seed: int = 0

    default_lr: ClassVar[float] = 1e-3
    # BitFit's grid: the control must get the same chance as the method it controls
    lr_grid: ClassVar[tuple[float, ...]] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    can_merge: ClassVar[bool] = True
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"n_params": 0}, "n_params"), ({"target_modules": []}, "target_modules")]

    def validate(self) -> None:
        super().validate()
        if self.n_params is not None:
            check_positive(self, "n_params")
        if not self.target_modules:
            raise ValueError(f"RandomSubsetConfig.target_modules must name at least one Linear, got {self.target_modules!r}")

    def _k(self, model_config: TransformerConfig, family: str, pooler: bool) -> int:
        if self.n_params is not None:
            return self.n_params
        return sum(s for name, s in bias_table(model_config, family, None, pooler))

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> None:
        names = find_targets(model, self.target_modules)
        sizes = [model.get_submodule(n).weight.numel() for n in names]
        shares = _allocate(self._k(model.config, model_family(model), has_pooler(model)), sizes)
        g = torch.Generator().manual_seed(self.seed)
        for name, size, k in zip(names, sizes, shares):
            index = torch.randperm(size, generator=g)[:k].sort().values
            add_to_layer(model, name, SparseDeltaLinear, adapter_name, index=index)

    def is_trainable(self, name: str) -> bool:
        return "random_subset_delta" in name.split(".")

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        return self._k(model_config, family, pooler)
