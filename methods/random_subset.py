"""Random-subset fine-tuning: train k randomly chosen entries of the weight matrices (a control for BitFit).

The BitFit paper (Ben Zaken et al. 2022, arXiv:2106.10199, §4) asks whether biases are special or whether any
k parameters would do, and finds that the same number of randomly chosen parameters does much worse. This
method is that control:

    W' = W + scatter(δ, I)          I: k fixed random positions among the entries of the target matrices,
                                    δ ∈ R^k trainable, initialised to 0 (an exact no-op at init)

Plugs in at: each target `nn.Linear` is replaced (module surgery) by a `SparseDeltaLinear` that holds the frozen
layer and its share of (I, δ). Merging adds δ into W. The k positions are spread over the targets in
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

from .bitfit import bias_table
from .api.config import PeftConfig, check_positive
from .api.registry import register
from .api.targets import find_targets, has_pooler, model_family, replace_module

BLOCK_LINEARS = ["attn.q", "attn.k", "attn.v", "attn.o", "ffn.fc1", "ffn.fc2"]


class SparseDeltaLinear(nn.Module):
    """A frozen `nn.Linear` plus trainable values δ at fixed flat positions of its weight."""

    def __init__(self, base: nn.Linear, index: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("random_subset_index", index)  # (k_i,) flat positions in base.weight
        self.random_subset_delta = nn.Parameter(torch.zeros(len(index), device=base.weight.device))
        self.adapter_enabled = True

    def delta_weight(self) -> torch.Tensor:  # (out, in), zero except at the chosen positions
        flat = torch.zeros(self.base.weight.numel(), device=self.base.weight.device, dtype=self.base.weight.dtype)
        return flat.index_add(0, self.random_subset_index, self.random_subset_delta).view_as(self.base.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        if not self.adapter_enabled:
            return self.base(x)
        return F.linear(x, self.base.weight + self.delta_weight(), self.base.bias)


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

    def prepare(self, model: nn.Module) -> None:
        names = find_targets(model, self.target_modules)
        sizes = [model.get_submodule(n).weight.numel() for n in names]
        shares = _allocate(self._k(model.config, model_family(model), has_pooler(model)), sizes)
        g = torch.Generator().manual_seed(self.seed)
        for name, size, k in zip(names, sizes, shares):
            index = torch.randperm(size, generator=g)[:k].sort().values
            replace_module(model, name, SparseDeltaLinear(model.get_submodule(name), index))

    def is_trainable(self, name: str) -> bool:
        return name.endswith("random_subset_delta")

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        return self._k(model_config, family, pooler)

    def merge(self, model: nn.Module) -> None:
        """W += δ at the chosen positions; each SparseDeltaLinear becomes its plain Linear again."""
        for name, m in list(model.named_modules()):
            if isinstance(m, SparseDeltaLinear):
                with torch.no_grad():
                    m.base.weight += m.delta_weight()
                replace_module(model, name, m.base)

