"""AdaLoRA: adaptive budget allocation for low-rank updates (Zhang et al. 2023, arXiv:2303.10512).

LoRA (`methods/lora.py`) gives every target the same rank. AdaLoRA writes each update in an SVD-like form and
prunes the least important singular values during training, so the rank budget flows to the matrices that need it:

    ΔW = P Λ Q · (α / r_init)        P ∈ R^{out × r} (`lora_B`), Λ = diag(λ), λ ∈ R^r (`lora_E`),
                                     Q ∈ R^{r × in} (`lora_A`)                                  (paper eq. 3)

- Init: λ = 0 (an exact no-op), P and Q ~ N(0, 0.02²) (as `peft`). Scaling α / r_init, fixed (`peft` divides by
  r_init + 1e-5).
- Orthogonality (eq. 4), through the loss hook: R(P, Q) = ‖PᵀP − I‖ + ‖QQᵀ − I‖ per target, averaged over the
  matrices, times `orth_reg_weight`. The norm is the *non-squared* Frobenius norm, as in the official code and
  `peft`; the paper writes it squared.
- Importance (eq. 5–7), from each entry's sensitivity I = |w · ∂L/∂w|, smoothed Ī ← β1 Ī + (1−β1) I and its
  uncertainty Ū ← β2 Ū + (1−β2)|I − Ī| (β1 = β2 = 0.85), s = Ī · Ū. A triplet (P column i, λ_i, Q row i) scores
  s(λ_i) + mean s(P[:, i]) + mean s(Q[i, :]) (eq. 8).
- Budget (eq. 9, cubic): b(t) = b_init for t ≤ t_init; b_T = target_r · (number of targets) for t > T − t_final;
  in between b_target + (b_init − b_target)(1 − (t − t_init)/(T − t_final − t_init))³, truncated to an integer,
  with b_init = init_r · (number of targets). Every ΔT steps in between, and once at t = T − t_final, the λ of
  every triplet whose score is at or below the (b_init − b(t))-th smallest is set to 0; after that the pattern
  is frozen (re-applied each step) and the importance is no longer updated.

Plugs in at: each target `nn.Linear` becomes an `AdaLoraLinear` (an `AdapterLayer`); the **step hook** calls the
allocator after every optimizer step (the gradients still there), so no training loop can forget it — the most
common AdaLoRA bug reported against `peft`, whose users must call `update_and_allocate` themselves. `t` is the
number of optimizer steps taken (1 after the first); `total_step` defaults to the training loop's total.
Pruning masks λ; nothing is removed from memory, so the trainable count stays init_r-sized.

Count: Σ over targets r_init·(in + 1 + out); BERT-base, q and v, init_r = 12: 24 · 12 · 1,537 = 442,656 (+ 1,538
for a 2-label head = 444,194, `peft`'s figure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from minitransformer import TransformerConfig

from .api.config import PeftConfig, check_positive
from .api.counting import linear_table
from .api.layers import AdapterLayer, add_to_layer, wrappers
from .api.registry import register
from .api.targets import find_targets, select_targets

if TYPE_CHECKING:
    from .api.peft_model import PeftModel


class AdaLoraLinear(AdapterLayer):
    """A frozen `nn.Linear` plus, per named adapter, ΔW = P diag(λ) Q · α / r_init, and the importance state
    of its entries (smoothed sensitivity and uncertainty; not saved)."""

    adapter_attributes = ("lora_A", "lora_E", "lora_B")

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.lora_A = nn.ParameterDict()  # Q, (r, in)
        self.lora_E = nn.ParameterDict()  # λ, (r, 1)
        self.lora_B = nn.ParameterDict()  # P, (out, r)
        self.scaling: dict[str, float] = {}
        self.importance: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}  # adapter -> A/E/B -> (Ī, Ū)

    def update_layer(self, adapter_name: str, init_r: int, lora_alpha: float) -> None:
        out_features, in_features = self.weight.shape
        kw = dict(device=self.weight.device, dtype=self.weight.dtype)
        self.lora_A[adapter_name] = nn.Parameter(torch.randn(init_r, in_features, **kw) * 0.02)
        self.lora_E[adapter_name] = nn.Parameter(torch.zeros(init_r, 1, **kw))  # λ = 0: an exact no-op
        self.lora_B[adapter_name] = nn.Parameter(torch.randn(out_features, init_r, **kw) * 0.02)
        self.scaling[adapter_name] = lora_alpha / init_r

    def delete_adapter(self, adapter_name: str) -> None:
        super().delete_adapter(adapter_name)
        self.scaling.pop(adapter_name, None)
        self.importance.pop(adapter_name, None)

    def delta_weight(self, adapter_name: str) -> torch.Tensor:  # (out, r) @ ((r, in) ⊙ (r, 1)) -> (out, in)
        return self.lora_B[adapter_name] @ (self.lora_A[adapter_name] * self.lora_E[adapter_name]) \
            * self.scaling[adapter_name]

    def adapter_delta(self, adapter_name: str, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        A, E, B = self.lora_A[adapter_name], self.lora_E[adapter_name], self.lora_B[adapter_name]
        return (x @ (A * E).T) @ B.T * self.scaling[adapter_name]

    def orthogonality(self, adapter_name: str) -> torch.Tensor:
        """‖PᵀP − I‖_F + ‖QQᵀ − I‖_F (non-squared, as the official code)."""
        P, Q = self.lora_B[adapter_name], self.lora_A[adapter_name]
        eye = torch.eye(Q.shape[0], device=Q.device, dtype=Q.dtype)
        return torch.linalg.norm(P.T @ P - eye) + torch.linalg.norm(Q @ Q.T - eye)

    @torch.no_grad()
    def update_importance(self, adapter_name: str, beta1: float, beta2: float) -> None:
        """Ī ← β1 Ī + (1−β1)|w·g|, Ū ← β2 Ū + (1−β2)|I − Ī|, for P, λ and Q (needs the gradients)."""
        state = self.importance.setdefault(adapter_name, {})
        for key, store in (("A", self.lora_A), ("E", self.lora_E), ("B", self.lora_B)):
            p = store[adapter_name]
            if p.grad is None:
                continue
            sensitivity = (p * p.grad).abs()
            ipt, unc = state.get(key, (torch.zeros_like(p), torch.zeros_like(p)))
            ipt = beta1 * ipt + (1 - beta1) * sensitivity
            unc = beta2 * unc + (1 - beta2) * (sensitivity - ipt).abs()
            state[key] = (ipt, unc)

    def triplet_scores(self, adapter_name: str) -> torch.Tensor:
        """(r,): s(λ_i) + mean s(Q[i, :]) + mean s(P[:, i]), with s = Ī · Ū (zeros before any update)."""
        state = self.importance.get(adapter_name, {})
        r = self.lora_E[adapter_name].shape[0]
        if not state:
            return torch.zeros(r, device=self.lora_E[adapter_name].device)
        s = {k: (ipt * unc) for k, (ipt, unc) in state.items()}
        return s["E"].view(-1) + s["A"].mean(dim=1) + s["B"].mean(dim=0)

    def extra_repr(self) -> str:
        ranks = {a: int((self.lora_E[a] != 0).sum()) for a in self.adapter_names}
        return f"nonzero λ={ranks}, " + super().extra_repr()


def budget_schedule(step: int, init_budget: int, target_budget: int, tinit: int, tfinal: int, total_step: int,
                    deltaT: int) -> tuple[int, bool]:
    """(budget b(t), whether to mask at step t): the cubic schedule of the paper's eq. 9, as `peft` computes it."""
    if step <= tinit:
        return init_budget, False
    if step > total_step - tfinal:
        return target_budget, True
    progress = 1 - (step - tinit) / (total_step - tfinal - tinit)
    return int((init_budget - target_budget) * progress**3 + target_budget), step % deltaT == 0


@register("adalora")
@dataclass
class AdaLoraConfig(PeftConfig):
    """init_r: every target's starting rank; target_r: the average rank left at the end (the budget is
    target_r · number of targets). tinit / tfinal: steps without pruning at the start / with the pattern frozen at
    the end; deltaT: steps between two maskings; total_step: T (None = the training loop's total); beta1, beta2:
    the importance smoothing; orth_reg_weight: the orthogonality penalty's weight; rank_pattern: the kept
    triplets per target, written by the allocator (saved with the config).

    lr 1e-3, as LoRA; the paper uses 5e-4 to 1e-3 on DeBERTa-v3-base."""

    init_r: int = 12
    target_r: int = 8
    lora_alpha: float = 8.0
    target_modules: list[str] | str = field(default_factory=lambda: ["attn.q", "attn.v"])
    tinit: int = 0
    tfinal: int = 0
    deltaT: int = 1
    total_step: int | None = None
    beta1: float = 0.85
    beta2: float = 0.85
    orth_reg_weight: float = 0.5
    rank_pattern: dict[str, list[bool]] = field(default_factory=dict)

    default_lr: ClassVar[float] = 1e-3
    lr_grid: ClassVar[tuple[float, ...]] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    can_merge: ClassVar[bool] = True
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"init_r": 0}, "init_r"), ({"target_r": 13}, "target_r"), ({"tinit": 50, "tfinal": 50, "total_step": 100},
                                                                      "tinit"),
        ({"total_step": 0}, "total_step"), ({"beta1": 1.0}, "beta1"), ({"deltaT": 0}, "deltaT"),
        ({"orth_reg_weight": -1}, "orth_reg_weight"), ({"target_modules": []}, "target_modules")]

    def validate(self) -> None:
        super().validate()
        for name in ("init_r", "target_r", "deltaT"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"AdaLoraConfig.{name} must be an integer >= 1, got {v!r}")
        if self.target_r > self.init_r:
            raise ValueError(f"AdaLoraConfig.target_r={self.target_r} exceeds init_r={self.init_r}; allowed: "
                             f"target_r <= init_r (pruning only removes ranks)")
        for name in ("tinit", "tfinal"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"AdaLoraConfig.{name} must be an integer >= 0, got {v!r}")
        if self.total_step is not None:
            check_positive(self, "total_step")
            self.check_steps(self.total_step)
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ValueError(f"AdaLoraConfig.{name} must lie in [0, 1), got {v!r}")
        check_positive(self, "lora_alpha", minimum=1e-12)
        check_positive(self, "orth_reg_weight", minimum=0)
        t = self.target_modules
        if not isinstance(t, str):
            if not t or not all(isinstance(x, str) for x in t):
                raise ValueError(f"AdaLoraConfig.target_modules must be a regex string or a non-empty list of "
                                 f"module names, got {t!r}")
            self.target_modules = list(t)

    def check_steps(self, total: int) -> None:
        if not self.tinit < total - self.tfinal:
            raise ValueError(f"AdaLoraConfig.tinit={self.tinit} must be < total_step - tfinal = {total} - "
                             f"{self.tfinal} = {total - self.tfinal}: the budget needs steps to fall in")

    @classmethod
    def example(cls, task_type: str) -> AdaLoraConfig:
        return cls(task_type=task_type, init_r=4, target_r=2)

    # ---- surgery, counting ---------------------------------------------------------------------------------
    def _targets(self, names: list[str]) -> list[str]:
        return select_targets(names, self.target_modules, self.resolved_modules_to_save())

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> None:
        for name in self._targets(find_targets(model, self.target_modules)):
            add_to_layer(model, name, AdaLoraLinear, adapter_name, init_r=self.init_r, lora_alpha=self.lora_alpha)

    def is_trainable(self, name: str) -> bool:
        parts = name.split(".")
        return "lora_A" in parts or "lora_B" in parts or "lora_E" in parts

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        rows = linear_table(model_config, family, num_labels, pooler)
        chosen = set(self._targets([name for name, _, _ in rows]))
        return sum(self.init_r * (fan_in + 1 + fan_out) for name, fan_in, fan_out in rows if name in chosen)

    # ---- the loss hook: the orthogonality penalty ------------------------------------------------------------
    @staticmethod
    def _layers(model: nn.Module, adapter_name: str) -> list[tuple[str, AdaLoraLinear]]:
        return [(n, m) for n, m in wrappers(model) if isinstance(m, AdaLoraLinear) and adapter_name in m.adapter_names]

    def loss(self, model: PeftModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = model(**batch).loss
        layers = self._layers(model, model.active_adapter)
        if not layers or self.orth_reg_weight == 0:
            return loss
        penalty = sum(layer.orthogonality(model.active_adapter) for _, layer in layers) / (2 * len(layers))
        return loss + self.orth_reg_weight * penalty

    # ---- the step hook: the budget allocator -----------------------------------------------------------------
    def on_step(self, model: PeftModel, step: int, total_steps: int) -> None:
        total = self.total_step or total_steps
        if self.total_step is not None and self.total_step != total_steps:
            raise ValueError(f"AdaLoraConfig.total_step={self.total_step}, but the training loop runs "
                             f"{total_steps} steps; set total_step=None to take the loop's")
        self.check_steps(total)
        adapter = model.active_adapter
        layers = self._layers(model, adapter)
        final = total - self.tfinal
        if step > final:  # the pattern is frozen: re-apply it (the optimizer step may have moved a pruned λ)
            self._apply_pattern(layers, adapter)
            return
        if step < final:  # at t = T − t_final the last masking uses the importance as it stands (as `peft`)
            for _, layer in layers:
                layer.update_importance(adapter, self.beta1, self.beta2)
        budget, mask = budget_schedule(step, self.init_r * len(layers), self.target_r * len(layers), self.tinit,
                                       self.tfinal, total, self.deltaT)
        if mask or step == final:
            self._mask_to_budget(layers, adapter, budget)
            if step == final:
                for _, layer in layers:
                    layer.importance.pop(adapter, None)

    @torch.no_grad()
    def _mask_to_budget(self, layers: list[tuple[str, AdaLoraLinear]], adapter: str, budget: int) -> None:
        """Zero the λ of every triplet scoring at or below the (b_init − budget)-th smallest score."""
        scores = {name: layer.triplet_scores(adapter) for name, layer in layers}
        n_prune = self.init_r * len(layers) - budget
        if n_prune <= 0:
            return
        threshold = torch.cat(list(scores.values())).kthvalue(n_prune).values
        for name, layer in layers:
            keep = scores[name] > threshold
            layer.lora_E[adapter].masked_fill_(~keep[:, None], 0.0)
            self.rank_pattern[name] = keep.tolist()

    @torch.no_grad()
    def _apply_pattern(self, layers: list[tuple[str, AdaLoraLinear]], adapter: str) -> None:
        for name, layer in layers:
            if name in self.rank_pattern:
                keep = torch.tensor(self.rank_pattern[name], device=layer.lora_E[adapter].device)  # GPU models
                layer.lora_E[adapter].masked_fill_(~keep[:, None], 0.0)

    def final_ranks(self) -> dict[str, int]:
        """The rank kept per target (from `rank_pattern`; empty before the first masking)."""
        return {name: sum(keep) for name, keep in self.rank_pattern.items()}
