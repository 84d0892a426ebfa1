"""LoRA: low-rank adaptation of the weight update (Hu et al. 2021, arXiv:2106.09685).

A frozen weight W0 (out × in) gets a trainable update of rank r, ΔW = B·A (paper eq. 3, its §4.1):

    h = W0·x + (α / r) · B·A·dropout(x)          A ∈ R^{r × in},  B ∈ R^{out × r},  r ≪ min(in, out)

- Init: A ~ kaiming-uniform(a = √5) (what `nn.Linear` draws), B = 0, so ΔW = 0 and the wrapped model computes
  exactly what the base computed (the paper: "random Gaussian for A and zero for B"; `peft` and the official
  `loralib` use kaiming-uniform for A, as here).
- Scaling α / r, so that changing r does not change the size of the update a given lr produces (the paper: "we
  simply set α to the first r we try and do not tune it"); `use_rslora=True` gives α / √r (Kalajdzievski 2023,
  arXiv:2312.03732: with α / r the update of a large r shrinks and learns slowly).
- Default α = 8 with r = 8 (scaling 1): `peft`'s default `lora_alpha=8`, and the paper's rule α = the first r.
  Many recipes use α = 2r = 16; with AdamW that equals α = r at twice the lr, so the lr sweep of the comparison
  covers it.
- Targets: q and v of every attention block by default (the paper's choice for GPT-3, its Table 5); any
  `nn.Linear` by name suffix or regex (`target_modules`).

Plugs in at: each target `nn.Linear` is replaced (module surgery, visible in `print(model)`) by a `LoraLinear`
(an `AdapterLayer`, `methods/api/layers.py`) that holds the frozen layer and, per named adapter, `lora_A` and
`lora_B`. Merging is explicit: `merge()` adds (α/r)·B·A into W0, `unmerge()` takes it out, both idempotent and
never a side effect of `.train()` / `.eval()` (`loralib`'s `train()` unmerged and `eval()` merged, so a model
saved after `eval()` held merged weights). `PeftModel.merge_and_unload()` returns the plain base model.

Count: Σ over targets r·(in + out). BERT-base (D = 768, L = 12), q and v, r = 8: 2·L·r·2D = 294,912 (+ 1,538 for
a 2-label head = 296,450, `peft`'s figure); GPT-2 small, q and v: the same 294,912 (`peft` on GPT-2's fused
c_attn: L·r·(D + 3D), equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from minitransformer import TransformerConfig

from .api.config import PeftConfig, check_positive
from .api.counting import linear_table
from .api.layers import AdapterLayer, add_to_layer
from .api.registry import register
from .api.targets import find_targets, select_targets


class LoraLinear(AdapterLayer):
    """A frozen `nn.Linear` plus, per named adapter, a rank-r update (α/r)·B·A."""

    adapter_attributes = ("lora_A", "lora_B", "lora_dropout")

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.lora_A = nn.ModuleDict()  # adapter name -> Linear(in, r, bias=False), weight (r, in)
        self.lora_B = nn.ModuleDict()  # adapter name -> Linear(r, out, bias=False), weight (out, r)
        self.lora_dropout = nn.ModuleDict()  # adapter name -> Dropout (or Identity)
        self.scaling: dict[str, float] = {}  # adapter name -> α / r (or α / √r)

    def update_layer(self, adapter_name: str, r: int, lora_alpha: float, lora_dropout: float = 0.0,
                     use_rslora: bool = False) -> None:
        """Create adapter `adapter_name`: A kaiming-uniform, B zero (ΔW = 0, an exact no-op)."""
        out_features, in_features = self.weight.shape
        device, dtype = self.weight.device, self.weight.dtype
        A = nn.Linear(in_features, r, bias=False, device=device, dtype=dtype)
        B = nn.Linear(r, out_features, bias=False, device=device, dtype=dtype)
        nn.init.kaiming_uniform_(A.weight, a=math.sqrt(5))
        nn.init.zeros_(B.weight)
        self.lora_A[adapter_name], self.lora_B[adapter_name] = A, B
        self.lora_dropout[adapter_name] = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.scaling[adapter_name] = lora_alpha / (math.sqrt(r) if use_rslora else r)

    def delete_adapter(self, adapter_name: str) -> None:
        super().delete_adapter(adapter_name)
        self.scaling.pop(adapter_name, None)

    def delta_weight(self, adapter_name: str) -> torch.Tensor:  # (out, r) @ (r, in) -> (out, in)
        return self.lora_B[adapter_name].weight @ self.lora_A[adapter_name].weight * self.scaling[adapter_name]

    def adapter_delta(self, adapter_name: str, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        # two thin matmuls through the rank-r bottleneck, never the (out, in) matrix ΔW itself
        A, B = self.lora_A[adapter_name], self.lora_B[adapter_name]
        return B(A(self.lora_dropout[adapter_name](x))) * self.scaling[adapter_name]

    def extra_repr(self) -> str:
        ranks = {a: self.lora_A[a].out_features for a in self.adapter_names}
        return f"r={ranks}, scaling={self.scaling}, " + super().extra_repr()


@register("lora")
@dataclass
class LoraConfig(PeftConfig):
    """r: the rank of ΔW. lora_alpha: α, the update is scaled by α / r (α / √r with use_rslora). lora_dropout:
    dropout on the adapter's input only. target_modules: `nn.Linear` name suffixes, or one regex matched against
    the full module name (default: q and v of every attention layer).

    lr 1e-3 with α = r: the adapter is tiny and starts at zero, so it takes larger steps than full fine-tuning."""

    r: int = 8
    lora_alpha: float = 8.0
    lora_dropout: float = 0.0
    target_modules: list[str] | str = field(default_factory=lambda: ["attn.q", "attn.v"])
    use_rslora: bool = False

    default_lr: ClassVar[float] = 1e-3
    lr_grid: ClassVar[tuple[float, ...]] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    can_merge: ClassVar[bool] = True
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"r": 0}, "r"), ({"lora_alpha": 0}, "lora_alpha"), ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"target_modules": []}, "target_modules"), ({"use_rslora": "yes"}, "use_rslora")]

    def validate(self) -> None:
        super().validate()
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"LoraConfig.r must be an integer >= 1 (the rank of the update), got {self.r!r}")
        check_positive(self, "lora_alpha", minimum=1e-12)
        d = self.lora_dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
            raise ValueError(f"LoraConfig.lora_dropout must be a probability in [0, 1), got {d!r}")
        if not isinstance(self.use_rslora, bool):
            raise ValueError(f"LoraConfig.use_rslora must be True or False, got {self.use_rslora!r}")
        t = self.target_modules
        if not isinstance(t, str):
            if not t or not all(isinstance(x, str) for x in t):
                raise ValueError(f"LoraConfig.target_modules must be a regex string or a non-empty list of module "
                                 f"names, got {t!r}")
            self.target_modules = list(t)

    @classmethod
    def example(cls, task_type: str) -> LoraConfig:
        return cls(task_type=task_type, r=2)

    def _targets(self, names: list[str]) -> list[str]:
        """The selected names, minus the modules trained in full (a head in modules_to_save is not also LoRA'd)."""
        return select_targets(names, self.target_modules, self.resolved_modules_to_save())

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> None:
        for name in self._targets(find_targets(model, self.target_modules)):
            add_to_layer(model, name, LoraLinear, adapter_name, r=self.r, lora_alpha=self.lora_alpha,
                         lora_dropout=self.lora_dropout, use_rslora=self.use_rslora)

    def is_trainable(self, name: str) -> bool:
        parts = name.split(".")
        return "lora_A" in parts or "lora_B" in parts

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        rows = linear_table(model_config, family, num_labels, pooler)
        chosen = set(self._targets([name for name, _, _ in rows]))
        return sum(self.r * (fan_in + fan_out) for name, fan_in, fan_out in rows if name in chosen)
