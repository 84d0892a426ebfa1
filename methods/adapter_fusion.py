"""AdapterFusion: attention over frozen single-task adapters (Pfeiffer et al. 2021, "AdapterFusion: Non-Destructive
Task Composition for Transfer Learning", arXiv:2005.00247, §3; AdapterHub's `BertFusion`).

Two stages:
1. *Knowledge extraction*: train one Pfeiffer adapter per task, independently (`PfeifferConfig`, saved with
   `save_pretrained`).
2. *Knowledge composition*: freeze the base **and** the N adapters; learn, per block l, a query Q_l, a key K_l
   (D×D and a bias each) and a value V_l (D×D, no bias) that mix the adapters' outputs, token by token, on the
   target task (its §3.2):

    z_n = W_up,n f(W_down,n h + b_down,n) + b_up,n           output of adapter n, before its residual   (B, T, N, D)
    s   = softmax_n( (Q h) · (K z_n) / T )                    a distribution over the N adapters          (B, T, N)
    o   = h + Σ_n s_n · V z_n                                 h: the FFN's output, where the adapters sit

  V starts at the identity and a regulariser λ Σ_l ‖I − V_l‖²_F (λ = 0.01, AdapterHub's) pulls it back, so that
  fusion mixes the adapters rather than adding capacity (the paper: "to avoid introducing additional capacity").
  Q and K start at N(0, 0.02²), Q's bias at zero (the code). AdapterHub adds 1e-6 off the diagonal of V; here V
  is exactly I. T = `temperature` (1: the default "dynamic" fusion).

  K has no bias here. AdapterHub's K carries one, but it adds the same (Q h) · b_K to the score of every adapter,
  and a softmax over the adapters does not see a shift shared by all of them: that bias never receives a gradient
  (the contract test finds it), so counting it as trainable would be a lie.

Not parameter-cheap: L·[(D² + D) + D² + D²] = L·(3D² + D) — 21.2 M on BERT-base (AdapterHub's 21.3 M with
the key's bias, L·[2(D² + D) + D²]), a fifth of the model; 197,120 on mini-bert, against 8,736 for one Pfeiffer
adapter at reduction 16. The adapters themselves are frozen buffers here.

The stage-1 adapters are read from `adapter_paths` (directories written by `save_pretrained` of a `pfeiffer`
adapter on the same base) and kept as buffers of the `FusionLayer`, not as parameters: the fusion checkpoint holds
Q, K, V and the head, and `from_pretrained` reads the adapters from the same paths again (AdapterHub likewise saves
a fusion apart from its adapters). Without paths (tests, `example`), `num_adapters` adapters are drawn from a
generator seeded by `seed` (N(0, 0.02²) weights), the same on every build.

Not in the comparison's default list (`in_comparison = False`): it needs stage 1 first. `methods.adapter_study`
runs both stages (notebook 10).

Plugs in at: `ffn.fc2`, wrapped by a `FusionLayer` (an `AdapterLayer`) — the place of the Pfeiffer adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from minitransformer import TransformerConfig

from .adapters import NON_LINEARITIES, bottleneck_size
from .api.config import PeftConfig, check_positive
from .api.counting import linear_table
from .api.layers import AdapterLayer, add_to_layer, wrappers
from .api.registry import register
from .api.targets import find_targets, select_targets

TARGET = "ffn.fc2"


class FusionExperts(nn.Module):
    """The N frozen stage-1 adapters of one block, stacked, as buffers (never trained, never in the fusion's
    checkpoint)."""

    def __init__(self, down_w: torch.Tensor, down_b: torch.Tensor, up_w: torch.Tensor, up_b: torch.Tensor,
                 non_linearity: str, scaling: float) -> None:
        super().__init__()
        self.register_buffer("down_weight", down_w)  # (N, m, D)
        self.register_buffer("down_bias", down_b)  # (N, m)
        self.register_buffer("up_weight", up_w)  # (N, D, m)
        self.register_buffer("up_bias", up_b)  # (N, D)
        self.act = NON_LINEARITIES[non_linearity]()
        self.scaling = scaling

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, N, D)
        a = torch.einsum("btd,nmd->btnm", h, self.down_weight) + self.down_bias  # (B, T, N, m)
        return self.scaling * (torch.einsum("btnm,ndm->btnd", self.act(a), self.up_weight) + self.up_bias)


class FusionLayer(AdapterLayer):
    """A frozen `nn.Linear` (the FFN's output projection) whose output h is followed by the fusion of N frozen
    adapters: h + Σ_n softmax_n(Q h · K z_n / T) V z_n."""

    adapter_attributes = ("fusion_query", "fusion_key", "fusion_value", "fusion_adapters")

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.fusion_query = nn.ModuleDict()  # name -> Linear(D, D)
        self.fusion_key = nn.ModuleDict()  # name -> Linear(D, D, bias=False)
        self.fusion_value = nn.ModuleDict()  # name -> Linear(D, D, bias=False), starts at I
        self.fusion_adapters = nn.ModuleDict()  # name -> FusionExperts (buffers)
        self.temperature: dict[str, float] = {}
        self.record = False  # keep the last attention over adapters (for the heatmap)
        self.last_weights: torch.Tensor | None = None  # (B, T, N)

    def update_layer(self, adapter_name: str, experts: FusionExperts, temperature: float = 1.0) -> None:
        D = self.weight.shape[0]
        device, dtype = self.weight.device, self.weight.dtype
        q = nn.Linear(D, D, device=device, dtype=dtype)
        k = nn.Linear(D, D, bias=False, device=device, dtype=dtype)  # a key bias shifts every score alike
        v = nn.Linear(D, D, bias=False, device=device, dtype=dtype)
        with torch.no_grad():
            nn.init.normal_(q.weight, std=0.02)
            nn.init.normal_(k.weight, std=0.02)
            q.bias.zero_()
            v.weight.copy_(torch.eye(D, device=device, dtype=dtype))
        self.fusion_query[adapter_name], self.fusion_key[adapter_name], self.fusion_value[adapter_name] = q, k, v
        self.fusion_adapters[adapter_name] = experts.to(device=device, dtype=dtype)
        self.temperature[adapter_name] = temperature

    def delete_adapter(self, adapter_name: str) -> None:
        super().delete_adapter(adapter_name)
        self.temperature.pop(adapter_name, None)

    def fusion_weights(self, adapter_name: str, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """s (B, T, N): softmax over the adapters of (Q h) · (K z_n) / T — a dot product, no 1/√D (the code)."""
        q = self.fusion_query[adapter_name](h)  # (B, T, D)
        k = self.fusion_key[adapter_name](z)  # (B, T, N, D)
        scores = torch.einsum("btd,btnd->btn", q, k)  # (B, T, N)
        return F.softmax(scores / self.temperature[adapter_name], dim=-1)

    def apply_adapter(self, adapter_name: str, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z = self.fusion_adapters[adapter_name](h)  # (B, T, N, D): each adapter's output before its residual
        s = self.fusion_weights(adapter_name, h, z)  # (B, T, N)
        if self.record:
            self.last_weights = s.detach()
        v = self.fusion_value[adapter_name](z)  # (B, T, N, D)
        return h + torch.einsum("btn,btnd->btd", s, v)

    def extra_repr(self) -> str:
        n = {a: self.fusion_adapters[a].down_weight.shape[0] for a in self.adapter_names}
        return f"fused adapters={n}, " + super().extra_repr()


def fusion_layers(model: nn.Module) -> list[tuple[str, FusionLayer]]:
    return [(n, m) for n, m in wrappers(model) if isinstance(m, FusionLayer)]


def value_regularizer(model: nn.Module, adapter_name: str) -> torch.Tensor:
    """Σ_l ‖I − V_l‖²_F over the fusion layers of `adapter_name`."""
    total = None
    for _, layer in fusion_layers(model):
        if adapter_name in layer.adapter_names:
            V = layer.fusion_value[adapter_name].weight
            term = (torch.eye(V.shape[0], device=V.device, dtype=V.dtype) - V).pow(2).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError(f"no fusion layer holds an adapter named {adapter_name!r}")
    return total


def read_adapter(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config dict, tensors) of a saved stage-1 adapter; it must be a `pfeiffer` adapter (after `ffn.fc2`)."""
    d = Path(path)
    if not (d / "adapter_config.json").is_file():
        raise ValueError(f"AdapterFusionConfig.adapter_paths: {str(d)!r} holds no adapter_config.json; allowed: "
                         f"directories written by save_pretrained of a 'pfeiffer' adapter")
    meta = json.loads((d / "adapter_config.json").read_text())
    if meta.get("peft_type") != "pfeiffer":
        raise ValueError(f"AdapterFusionConfig.adapter_paths: {str(d)!r} holds a {meta.get('peft_type')!r} adapter; "
                         f"allowed: 'pfeiffer' (an adapter after ffn.fc2, where fusion sits)")
    return meta, load_file(str(d / "adapter_model.safetensors"))


@register("adapter_fusion")
@dataclass
class AdapterFusionConfig(PeftConfig):
    """adapter_paths: the stage-1 `pfeiffer` adapters to fuse (directories of `save_pretrained`), in order.
    Without them: `num_adapters` seeded random adapters of size `bottleneck_size` (default D/16), for tests.
    temperature: T of the softmax over adapters. value_regularization: λ of λ Σ_l ‖I − V_l‖²_F (0: none).

    lr 1e-3 over 300 steps (the paper: 5e-5 over up to 10 epochs); the study sweeps it on dev."""

    adapter_paths: list[str] | None = None
    num_adapters: int = 3
    bottleneck_size: int | None = None
    temperature: float = 1.0
    value_regularization: float = 0.01
    seed: int = 0

    default_lr: ClassVar[float] = 1e-3
    lr_grid: ClassVar[tuple[float, ...]] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    noop_at_init: ClassVar[bool] = False  # the fused adapters act from the start (V = I: their weighted mean)
    in_comparison: ClassVar[bool] = False
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"adapter_paths": []}, "adapter_paths"), ({"adapter_paths": "a/b"}, "adapter_paths"),
        ({"num_adapters": 0}, "num_adapters"), ({"bottleneck_size": 0}, "bottleneck_size"),
        ({"temperature": 0}, "temperature"), ({"value_regularization": -1}, "value_regularization")]

    def validate(self) -> None:
        super().validate()
        p = self.adapter_paths
        if p is not None:
            if isinstance(p, str) or not isinstance(p, (list, tuple)) or not p or not all(isinstance(x, str) for x in p):
                raise ValueError(f"AdapterFusionConfig.adapter_paths must be a non-empty list of directories or None, "
                                 f"got {p!r}")
            self.adapter_paths = list(p)
        if isinstance(self.num_adapters, bool) or not isinstance(self.num_adapters, int) or self.num_adapters < 1:
            raise ValueError(f"AdapterFusionConfig.num_adapters must be an integer >= 1, got {self.num_adapters!r}")
        if self.bottleneck_size is not None and (isinstance(self.bottleneck_size, bool)
                                                 or not isinstance(self.bottleneck_size, int) or self.bottleneck_size < 1):
            raise ValueError(f"AdapterFusionConfig.bottleneck_size must be an integer >= 1 or None, "
                             f"got {self.bottleneck_size!r}")
        check_positive(self, "temperature", minimum=1e-6)
        check_positive(self, "value_regularization", minimum=0)

    @classmethod
    def example(cls, task_type: str) -> AdapterFusionConfig:
        return cls(task_type=task_type, num_adapters=2)

    def _experts(self, names: list[str], D: int) -> dict[str, FusionExperts]:
        """The frozen adapters of every fusion layer: read from `adapter_paths`, or drawn from a seeded generator."""
        if self.adapter_paths is None:
            g = torch.Generator().manual_seed(self.seed)
            m, N = self.bottleneck_size or bottleneck_size(D, 16), self.num_adapters
            return {n: FusionExperts(0.02 * torch.randn(N, m, D, generator=g), torch.zeros(N, m),
                                     0.02 * torch.randn(N, D, m, generator=g), torch.zeros(N, D), "relu", 1.0)
                    for n in names}
        loaded = [read_adapter(p) for p in self.adapter_paths]
        kinds = {(meta.get("non_linearity"), float(meta.get("scaling", 1.0))) for meta, _ in loaded}
        if len(kinds) > 1:
            raise ValueError(f"AdapterFusionConfig.adapter_paths: the adapters differ in non-linearity or scaling "
                             f"{sorted(kinds)}; allowed: adapters of one kind")
        f, s = kinds.pop()
        out = {}
        for n in names:
            parts = []
            for path, (_, t) in zip(self.adapter_paths, loaded):
                keys = [f"base_model.{n}.adapter_{p}" for p in ("down.weight", "down.bias", "up.weight", "up.bias")]
                missing = [k for k in keys if k not in t]
                if missing:
                    raise ValueError(f"AdapterFusionConfig.adapter_paths: {path!r} has no adapter at {n} (missing "
                                     f"{missing}); allowed: adapters trained on this base, one in every block")
                parts.append([t[k] for k in keys])
            shapes = {tuple(p[0].shape) for p in parts}
            if len(shapes) > 1:
                raise ValueError(f"AdapterFusionConfig.adapter_paths: bottleneck sizes differ at {n}: {sorted(shapes)}")
            out[n] = FusionExperts(*[torch.stack([p[i] for p in parts]) for i in range(4)], f, s)
        return out

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> None:
        names = select_targets(find_targets(model, [TARGET]), [TARGET], self.resolved_modules_to_save())
        for name, experts in self._experts(names, model.config.d_model).items():
            add_to_layer(model, name, FusionLayer, adapter_name, experts=experts, temperature=self.temperature)

    def is_trainable(self, name: str) -> bool:
        parts = name.split(".")
        return any(p in parts for p in ("fusion_query", "fusion_key", "fusion_value"))

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        """L·(3D² + D): Q with its bias, K and V without."""
        D = model_config.d_model
        rows = linear_table(model_config, family, num_labels, pooler)
        n = len(select_targets([r[0] for r in rows], [TARGET], self.resolved_modules_to_save()))
        return n * (3 * D * D + D)

    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task loss + λ Σ_l ‖I − V_l‖²_F (AdapterHub adds it to the loss in the same way)."""
        loss = model(**batch).loss
        if self.value_regularization > 0:
            loss = loss + self.value_regularization * value_regularizer(model.base_model, model.active_adapter)
        return loss


def set_recording(model: nn.Module, on: bool) -> None:
    """Keep (on) or stop keeping each fusion layer's last attention over adapters (`last_weights`)."""
    for _, layer in fusion_layers(model):
        layer.record = on
        layer.last_weights = None
