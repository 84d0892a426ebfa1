"""(IA)³: Infused Adapter by Inhibiting and Amplifying Inner Activations (Liu et al. 2022, "Few-Shot
Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning", arXiv:2205.05638, §3.3).

Three learned vectors per block rescale, element-wise, the keys, the values and the FFN's hidden activation:

    softmax(Q (l_k ⊙ K)ᵀ / √Dh) (l_v ⊙ V)            l_k, l_v ∈ R^D
    (l_ff ⊙ γ(W_1 x)) W_2                            l_ff ∈ R^F,   γ the FFN's activation

- Init: every l = 1, so the wrapped model computes exactly what the base computed.
- Rescaling, not adding: in the survey's map (Lialin et al. 2023, arXiv:2303.15647, §8) (IA)³ is *additive* — it
  adds new parameters — although they multiply.
- Merging folds each vector into a weight: l_k ⊙ (W_k x + b_k) = (diag(l_k) W_k) x + l_k ⊙ b_k (rows of W_k and
  b_k scaled), and W_2 (l_ff ⊙ h) = (W_2 diag(l_ff)) h (columns of W_2 scaled). Unmerging divides again, exact
  as long as no entry of l is 0.

Plugs in at: `attn.k` and `attn.v` (`target_modules`; their *outputs* are scaled) and `ffn.fc2`
(`feedforward_modules`: its *input*, the activation γ(W_1 x), is scaled); each is replaced by an `IA3Linear`
(`methods/api/layers.py`'s `AdapterLayer`) holding `ia3_l`, one vector per named adapter.

Count: L·(D + D + F) = 55,296 on BERT-base (D = 768, F = 3072, L = 12) (+ 1,538 for a 2-label head). `peft`'s
default for BERT targets `key`, `value` and every `output.dense` as feed-forward modules, which also scales the
*input* of the attention output projection: L·(D + D + D + F) = 64,512.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from minitransformer import TransformerConfig

from .api.config import PeftConfig
from .api.counting import linear_table
from .api.layers import AdapterLayer, add_to_layer
from .api.registry import register
from .api.targets import find_targets, select_targets, selects


class IA3Linear(AdapterLayer):
    """A frozen `nn.Linear` whose output (or, for a feed-forward module, whose input) is rescaled element-wise
    by a learned vector per named adapter."""

    adapter_attributes = ("ia3_l",)

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.is_feedforward = False  # True: scale the input (in_features), else the output (out_features)
        self.ia3_l = nn.ParameterDict()  # adapter name -> l, (in,) or (out,)

    def update_layer(self, adapter_name: str, is_feedforward: bool = False) -> None:
        """A vector of ones (an exact no-op) of the size of what it scales."""
        if self.adapter_names and is_feedforward != self.is_feedforward:
            raise ValueError(f"IA3Linear: adapter {adapter_name!r} scales the {'input' if is_feedforward else 'output'}"
                             f" of a layer whose other adapters scale its {'input' if self.is_feedforward else 'output'}")
        self.is_feedforward = is_feedforward
        out_features, in_features = self.weight.shape
        size = in_features if is_feedforward else out_features
        self.ia3_l[adapter_name] = nn.Parameter(torch.ones(size, device=self.weight.device, dtype=self.weight.dtype))

    def _live(self) -> list[str]:
        if not self.adapter_enabled:
            return []
        return [a for a in self.active_adapters if a not in self.merged_adapters]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        live = self._live()
        if self.is_feedforward:
            for a in live:
                x = x * self.ia3_l[a]  # l_ff ⊙ γ(W_1 x), before W_2
            return self.base_layer(x)
        y = self.base_layer(x)
        for a in live:
            y = y * self.ia3_l[a]  # l ⊙ (W x + b)
        return y

    @torch.no_grad()
    def fold(self, adapter_name: str, inverse: bool) -> None:
        """Multiply the vector into the base weight (divide it out with `inverse`), unlike the additive default."""
        l = self.ia3_l[adapter_name]
        f = 1 / l if inverse else l
        layer = self.get_base_layer()
        if self.is_feedforward:
            layer.weight.mul_(f[None, :])  # W diag(l): the columns
        else:
            layer.weight.mul_(f[:, None])  # diag(l) W: the rows, and the bias with them
            if layer.bias is not None:
                layer.bias.mul_(f)

    def extra_repr(self) -> str:
        return f"scales={'input' if self.is_feedforward else 'output'}, " + super().extra_repr()


@register("ia3")
@dataclass
class IA3Config(PeftConfig):
    """target_modules: the `nn.Linear` layers rescaled (name suffixes or one regex); feedforward_modules: those
    of them whose *input* is rescaled (the FFN's second layer: the vector then scales the activation γ(W_1 x)).
    Default: the paper's keys, values and FFN activation.

    lr 3e-3: the T-Few recipe (the paper's §3.3, Adafactor); the vectors start at 1 and move little."""

    target_modules: list[str] | str = field(default_factory=lambda: ["attn.k", "attn.v", "ffn.fc2"])
    feedforward_modules: list[str] | str = field(default_factory=lambda: ["ffn.fc2"])

    default_lr: ClassVar[float] = 3e-3
    lr_grid: ClassVar[tuple[float, ...]] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    can_merge: ClassVar[bool] = True
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"target_modules": []}, "target_modules"), ({"feedforward_modules": ["attn.q"]}, "feedforward_modules"),
        ({"feedforward_modules": 3}, "feedforward_modules")]

    def validate(self) -> None:
        super().validate()
        for name in ("target_modules", "feedforward_modules"):
            t = getattr(self, name)
            if isinstance(t, str):
                continue
            if not isinstance(t, (list, tuple)) or not all(isinstance(x, str) for x in t) or \
                    (name == "target_modules" and not t):
                raise ValueError(f"IA3Config.{name} must be a regex string or a list of module names"
                                 f"{' (non-empty)' if name == 'target_modules' else ''}, got {t!r}")
            setattr(self, name, list(t))
        if isinstance(self.target_modules, list) and isinstance(self.feedforward_modules, list):
            extra = [m for m in self.feedforward_modules if m not in self.target_modules]
            if extra:
                raise ValueError(f"IA3Config.feedforward_modules={self.feedforward_modules!r} names {extra}, which "
                                 f"target_modules={self.target_modules!r} does not; allowed: a subset of target_modules")

    def _targets(self, names: list[str]) -> list[tuple[str, bool]]:
        """(name, is_feedforward) of every rescaled module, minus the modules trained in full (the head)."""
        chosen = select_targets(names, self.target_modules, self.resolved_modules_to_save())
        return [(n, selects(n, self.feedforward_modules)) for n in chosen]

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> None:
        for name, ff in self._targets(find_targets(model, self.target_modules)):
            add_to_layer(model, name, IA3Linear, adapter_name, is_feedforward=ff)

    def is_trainable(self, name: str) -> bool:
        return "ia3_l" in name.split(".")

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        rows = {name: (fan_in, fan_out) for name, fan_in, fan_out in linear_table(model_config, family, num_labels, pooler)}
        return sum(rows[n][0] if ff else rows[n][1] for n, ff in self._targets(list(rows)))
