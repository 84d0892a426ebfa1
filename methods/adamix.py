"""AdaMix: a mixture of adaptations (Wang et al. 2022, "AdaMix: Mixture-of-Adaptations for Parameter-efficient
Model Tuning", arXiv:2205.12410, §2 and Algorithm 1; official code `microsoft/AdaMix`, `expert_soup.py`).

A bottleneck adapter whose projections are replaced by M experts each (default M = 4):

    h ← h + W_up^(j) · f(W_down^(i) · h + b_down^(i)) + b_up^(j)        first *down* (D → m), then *up* (m → D)

- **Stochastic routing in training** (no router, no load-balancing loss): on every forward pass each layer draws
  i and j uniformly and independently from {0, …, M−1}; one draw serves the whole batch (the official
  `MixtureSoup`). With `share_up=True` (the released GLUE scripts: 4 down experts, 1 shared up) j is always 0.
  (Notes in circulation write the up projection before the down one; the official code and the paper's Fig. 2
  project down first, as here.)
- **Consistency regularisation** (the loss hook): two forward passes of the same batch take different routes;
  CE(z_A, y) + λ · ½[KL(p_B ‖ p_A) + KL(p_A ‖ p_B)], with the target side of each KL detached, as the RoBERTa
  code's `symmetric_KL_loss` (λ = 1 there, 100 in its GPT-2 code); token-level on a language model (the positions
  with a label).
- **Merging the experts at inference** ("adaptation merging"): W = (1/M) Σ_i W^(i) for each of the four tensors.
  In `eval()` the layer computes with the averaged weights (deterministic); `merge_experts(model)` replaces the
  M experts by their average for good, so inference costs exactly one adapter. `fixed_expert` pins one route, to
  evaluate a single expert.

Init (`init_weights`): "zero" (default) sets every up expert to 0 — an exact no-op at init, the down experts
keep `nn.Linear`'s independent draws so that they differ; "bert" draws every weight from N(0, 0.02²) with zero
biases (what the official code ends with, through the model's `_init_weights`).

Plugs in at: `ffn.fc2` (after the FFN's output projection, before dropout, residual and LayerNorm — the official
RoBERTa code's `RobertaOutput`), wrapped by an `AdaMixLayer` (an `AdapterLayer`).

Count (training): per block M·(D·m + m) + M_up·(m·D + D) with M_up = 1 if `share_up` else M; BERT-base, m = 48,
M = 4, shared up: 12 · (4 · 36,912 + 37,632) = 2,223,360; after `merge_experts` one adapter, 894,528.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer import TransformerConfig

from .adapters import NON_LINEARITIES, bottleneck_size
from .api.config import PeftConfig, check_choice, check_positive
from .api.counting import linear_table
from .api.layers import AdapterLayer, add_to_layer, wrappers
from .api.registry import register
from .api.targets import find_targets, select_targets


class AdaMixLayer(AdapterLayer):
    """A frozen `nn.Linear` followed by a mixture-of-experts bottleneck adapter (per named adapter)."""

    adapter_attributes = ("adamix_down_weight", "adamix_down_bias", "adamix_up_weight", "adamix_up_bias", "adamix_act")

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.adamix_down_weight = nn.ParameterDict()  # name -> (M, m, D)
        self.adamix_down_bias = nn.ParameterDict()  # name -> (M, m)
        self.adamix_up_weight = nn.ParameterDict()  # name -> (M_up, D, m)
        self.adamix_up_bias = nn.ParameterDict()  # name -> (M_up, D)
        self.adamix_act = nn.ModuleDict()
        self.fixed_expert: int | None = None  # evaluate one expert (down i, up i or the shared 0)
        self.last_route: tuple[int, int] | None = None  # (i, j) of the last training forward; None = averaged

    def update_layer(self, adapter_name: str, bottleneck_size: int, num_experts: int, share_up: bool,
                     non_linearity: str = "gelu", init_weights: str = "zero") -> None:
        D, m, M = self.weight.shape[0], bottleneck_size, num_experts
        device, dtype = self.weight.device, self.weight.dtype
        downs = [nn.Linear(D, m, device=device, dtype=dtype) for _ in range(M)]  # independent draws per expert
        ups = [nn.Linear(m, D, device=device, dtype=dtype) for _ in range(1 if share_up else M)]
        with torch.no_grad():
            for lin in downs + ups:
                if init_weights == "bert":
                    nn.init.normal_(lin.weight, std=0.02)
                lin.bias.zero_()
            if init_weights == "zero":
                for lin in ups:
                    lin.weight.zero_()
        self.adamix_down_weight[adapter_name] = nn.Parameter(torch.stack([lin.weight for lin in downs]).detach())
        self.adamix_down_bias[adapter_name] = nn.Parameter(torch.stack([lin.bias for lin in downs]).detach())
        self.adamix_up_weight[adapter_name] = nn.Parameter(torch.stack([lin.weight for lin in ups]).detach())
        self.adamix_up_bias[adapter_name] = nn.Parameter(torch.stack([lin.bias for lin in ups]).detach())
        self.adamix_act[adapter_name] = NON_LINEARITIES[non_linearity]()

    def num_experts(self, adapter_name: str) -> tuple[int, int]:
        """(M down experts, M_up up experts) of the adapter now (1, 1 after `merge_experts`)."""
        return self.adamix_down_weight[adapter_name].shape[0], self.adamix_up_weight[adapter_name].shape[0]

    def expert_weights(self, adapter_name: str) -> tuple[torch.Tensor, ...]:
        """(W_down (m, D), b_down (m,), W_up (D, m), b_up (D,)) for this forward pass: a random route in
        training, the pinned expert if `fixed_expert` is set, else the average of the experts."""
        Wd, bd = self.adamix_down_weight[adapter_name], self.adamix_down_bias[adapter_name]
        Wu, bu = self.adamix_up_weight[adapter_name], self.adamix_up_bias[adapter_name]
        M, M_up = Wd.shape[0], Wu.shape[0]
        if self.fixed_expert is not None:
            i = self.fixed_expert
            j = i if M_up > 1 else 0
        elif self.training:
            i = int(torch.randint(0, M, ()))  # down and up drawn independently; one draw per forward
            j = int(torch.randint(0, M_up, ()))
            self.last_route = (i, j)
        else:
            return Wd.mean(0), bd.mean(0), Wu.mean(0), bu.mean(0)  # the expert soup, deterministic
        return Wd[i], bd[i], Wu[j], bu[j]

    def adapter_delta(self, adapter_name: str, h: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        Wd, bd, Wu, bu = self.expert_weights(adapter_name)
        return F.linear(self.adamix_act[adapter_name](F.linear(h, Wd, bd)), Wu, bu)  # down (.., m), then up

    def apply_adapter(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        return result + self.adapter_delta(adapter_name, result)  # reads the FFN's output h, as the official code

    @torch.no_grad()
    def merge_experts(self, adapter_name: str) -> None:
        """Replace the M experts of each projection by their average: one adapter remains (M = 1)."""
        for store in (self.adamix_down_weight, self.adamix_down_bias, self.adamix_up_weight, self.adamix_up_bias):
            p = store[adapter_name]
            store[adapter_name] = nn.Parameter(p.mean(0, keepdim=True), requires_grad=p.requires_grad)

    def extra_repr(self) -> str:
        experts = {a: self.num_experts(a) for a in self.adapter_names}
        return f"experts(down, up)={experts}, " + super().extra_repr()


def adamix_layers(model: nn.Module) -> list[tuple[str, AdaMixLayer]]:
    return [(n, m) for n, m in wrappers(model) if isinstance(m, AdaMixLayer)]


def merge_experts(model: nn.Module, adapter_name: str | None = None) -> None:
    """Average every AdaMix layer's experts into one adapter (adaptation merging, the paper's §2.3). Build the
    optimizer afterwards if training continues: the parameters are new tensors."""
    for _, layer in adamix_layers(model):
        for name in [adapter_name] if adapter_name else layer.adapter_names:
            layer.merge_experts(name)


def set_fixed_expert(model: nn.Module, expert: int | None) -> None:
    """Route every AdaMix layer through expert `expert` (None: back to random in training, averaged in eval)."""
    layers = adamix_layers(model)
    M = min((layer.num_experts(a)[0] for _, layer in layers for a in layer.adapter_names), default=0)
    if expert is not None and (isinstance(expert, bool) or not isinstance(expert, int) or not 0 <= expert < M):
        raise ValueError(f"set_fixed_expert: expert={expert!r}; allowed: None or an integer in 0..{M - 1} "
                         f"(the model's AdaMix layers hold {M} experts)")
    for _, layer in layers:
        layer.fixed_expert = expert


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """½[KL(p_B ‖ p_A) + KL(p_A ‖ p_B)] over rows (..., C), averaged over rows; each target side detached (the
    official `symmetric_KL_loss`: `kl_div(log_softmax(p), softmax(q).detach(), 'batchmean')`)."""
    a, b = logits_a.reshape(-1, logits_a.size(-1)), logits_b.reshape(-1, logits_b.size(-1))
    kl_ba = F.kl_div(F.log_softmax(a, -1), F.softmax(b.detach(), -1), reduction="batchmean")  # KL(p_B ‖ p_A)
    kl_ab = F.kl_div(F.log_softmax(b, -1), F.softmax(a.detach(), -1), reduction="batchmean")  # KL(p_A ‖ p_B)
    return 0.5 * (kl_ba + kl_ab)


@register("adamix")
@dataclass
class AdaMixConfig(PeftConfig):
    """num_experts: M. share_up: one up projection shared by the experts (the released GLUE scripts).
    reduction_factor / bottleneck_size: m, as for the bottleneck adapters. consistency_weight: λ (0 turns the
    second pass off). non_linearity: f (GELU, the official `ExpertSoup(..., 'gelu')`). init_weights: "zero" or
    "bert".

    lr 1e-3, the bottleneck adapters' default (the official BERT-base script uses 4e-4 over 40 epochs)."""

    num_experts: int = 4
    share_up: bool = True
    reduction_factor: float = 16
    bottleneck_size: int | None = None
    consistency_weight: float = 1.0
    non_linearity: str = "gelu"
    init_weights: str = "zero"
    target_modules: list[str] | str = field(default_factory=lambda: ["ffn.fc2"])  # the official placement

    default_lr: ClassVar[float] = 1e-3
    lr_grid: ClassVar[tuple[float, ...]] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"num_experts": 0}, "num_experts"), ({"share_up": "yes"}, "share_up"),
        ({"reduction_factor": 0.5}, "reduction_factor"), ({"bottleneck_size": -2}, "bottleneck_size"),
        ({"consistency_weight": -1.0}, "consistency_weight"), ({"non_linearity": "softmax"}, "non_linearity"),
        ({"init_weights": "houlsby"}, "init_weights"), ({"target_modules": []}, "target_modules")]

    @classmethod
    def example(cls, task_type: str) -> AdaMixConfig:
        # the tiny test models are 16 wide: D / 16 would leave a single ReLU unit, dead on some batches
        return cls(task_type=task_type, bottleneck_size=4)

    def validate(self) -> None:
        super().validate()
        if isinstance(self.num_experts, bool) or not isinstance(self.num_experts, int) or self.num_experts < 1:
            raise ValueError(f"AdaMixConfig.num_experts must be an integer >= 1 (M), got {self.num_experts!r}")
        if not isinstance(self.share_up, bool):
            raise ValueError(f"AdaMixConfig.share_up must be True or False, got {self.share_up!r}")
        check_positive(self, "reduction_factor", minimum=1)
        if self.bottleneck_size is not None and (isinstance(self.bottleneck_size, bool)
                                                 or not isinstance(self.bottleneck_size, int) or self.bottleneck_size < 1):
            raise ValueError(f"AdaMixConfig.bottleneck_size must be an integer >= 1 or None, got {self.bottleneck_size!r}")
        check_positive(self, "consistency_weight", minimum=0)
        check_choice(self, "non_linearity", tuple(NON_LINEARITIES))
        check_choice(self, "init_weights", ("zero", "bert"))
        t = self.target_modules
        if not isinstance(t, str) and (not isinstance(t, (list, tuple)) or not t or not all(isinstance(x, str) for x in t)):
            raise ValueError(f"AdaMixConfig.target_modules must be a regex string or a non-empty list of names, got {t!r}")
        if not isinstance(t, str):
            self.target_modules = list(t)

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> None:
        suffixes = self.target_modules
        D = model.config.d_model
        for name in select_targets(find_targets(model, suffixes), suffixes, self.resolved_modules_to_save()):
            add_to_layer(model, name, AdaMixLayer, adapter_name,
                         bottleneck_size=self.bottleneck_size or bottleneck_size(D, self.reduction_factor),
                         num_experts=self.num_experts, share_up=self.share_up, non_linearity=self.non_linearity,
                         init_weights=self.init_weights)

    def is_trainable(self, name: str) -> bool:
        return any(p.startswith("adamix_") for p in name.split("."))

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        D = model_config.d_model
        m = self.bottleneck_size or bottleneck_size(D, self.reduction_factor)
        M, M_up = self.num_experts, 1 if self.share_up else self.num_experts
        rows = linear_table(model_config, family, num_labels, pooler)
        suffixes = self.target_modules
        n = len(select_targets([r[0] for r in rows], suffixes, self.resolved_modules_to_save()))
        return n * (M * (D * m + m) + M_up * (m * D + D))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """CE(z_A, y) + λ · symmetric KL(z_A, z_B): two passes, two random routes (only in training)."""
        out_a = model(**batch)
        if not model.training or self.consistency_weight == 0:
            return out_a.loss
        out_b = model(**batch)
        la, lb = out_a.logits, out_b.logits
        labels = batch.get("labels")
        if la.dim() == 3 and labels is not None:  # a language model: the positions that carry a label
            if labels.shape == la.shape[:2] and self.task_type == "SEQ_2_SEQ_LM":
                keep = labels != -100
            else:  # causal LM: logits at t predict labels at t + 1 (the model shifts them)
                keep = torch.zeros(la.shape[:2], dtype=torch.bool, device=la.device)
                keep[:, :-1] = labels[:, 1:] != -100
            la, lb = la[keep], lb[keep]
        return out_a.loss + self.consistency_weight * symmetric_kl(la, lb)

