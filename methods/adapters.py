"""Bottleneck adapters in their three placements — Houlsby, Pfeiffer, parallel — and AdapterDrop.

A bottleneck adapter is a small two-layer network with an inner residual (Houlsby et al. 2019, arXiv:1902.00751,
§2.1 and Fig. 2):

    A(h) = h + s · (W_up · f(W_down · h + b_down) + b_up)      W_down ∈ R^{m×D}, W_up ∈ R^{D×m}, m = D / reduction

Three placements, each registered on its own so that the comparison treats them as separate methods:

- `houlsby` (Houlsby et al., arXiv:1902.00751): two adapters per block, one on the output of the attention output
  projection and one on the output of the FFN's second linear, each *before* the residual add and LayerNorm, as in
  the official code (`attn_out = adapter(dropout(dense(attn))); LN(attn_out + x)`; here the wrapper sits on the
  linear layer, so the block's dropout comes after the adapter — the same function in eval); the decoder of the
  encoder-decoder also gets one on its cross-attention output. The paper retrains every LayerNorm of the blocks too (its Fig. 2
  caption): here they are `modules_to_save` (a trainable copy per adapter), so `disable_adapter()` still gives the
  base. Non-linearity GELU (the official code).
- `pfeiffer` (Pfeiffer et al., "AdapterFusion", arXiv:2005.00247, App. A.2): one adapter per block, on the FFN's
  output only; no LayerNorm retrained. ReLU (their search's winner). AdapterHub's exact dataflow feeds the adapter
  LN(h + x) — the pretrained LayerNorm applied twice — and adds the adapter to h; here the adapter reads h itself,
  the placement of Houlsby's second adapter and of AdaMix's code. Same parameters, one LayerNorm call fewer.
- `parallel_adapter` (He et al., "Towards a Unified View of Parameter-Efficient Transfer Learning",
  arXiv:2110.04366, §3 and Table 4): the adapter reads the FFN's *input* x and its scaled output is added beside
  the FFN: FFN(x) + s · (W_up f(W_down x + b_down) + b_up), s = 4 (their "scaled parallel adapter"). ReLU.

Init (`init_weights`): "zero" (default) leaves W_down as `nn.Linear` draws it and sets W_up = 0 and both biases
to 0, so the wrapped model computes exactly what the base computed; "houlsby" draws both weights from a normal
with std `init_std` truncated at two standard deviations, biases zero — the paper's near-identity init with std
1e-2 (its official TF code defaults to 1e-3: pass `init_std=1e-3`).

AdapterDrop (Rücklé et al., arXiv:2010.11918): `skip_layers = n` builds no adapter in the lowest n blocks (the
paper's "specialised" AdapterDrop: counted, saved and trained without them); `adapter_drop(model, n)` switches the
adapters of the lowest n blocks off at inference (the frozen blocks then compute the base's function, and autograd
stops below the lowest adapter that still runs); `robust_drop=True` samples n uniformly from {0, …, L−1} for every
training batch through the loss hook (the paper samples from [0, 11] on 12 layers; AdapterHub's recipe 0…10), so
that one adapter serves any n at inference. Limitation: Houlsby's retrained LayerNorms are not dropped with the
adapters (their trained copies still run in a dropped block, and `skip_layers` still trains them there), so for
Houlsby n = L is not the frozen base and the backward pass still reaches the lowest block; Pfeiffer and the
parallel adapter have no such tensors.

Dropout: the block applies its dropout after the wrapped module, so in training the adapter's output is dropped
out with the sublayer's; Houlsby's code applies dropout before its adapter and He et al. add the parallel adapter
after the FFN's dropout. The same function in eval.

Plugs in at: `attn.o`, `cross_attn.o` and `ffn.fc2` (`nn.Linear`s, wrapped by a `SequentialAdapter`) or `ffn`
(the `FeedForward` module, wrapped by a `ParallelAdapter`) — module surgery visible in `print(model)`.

Count (adapters only), per adapter 2·D·m + m + D; BERT-base (D = 768, L = 12), reduction 16 (m = 48):
Pfeiffer L·(2Dm + m + D) = 894,528, Houlsby 2·L·(2Dm + m + D) = 1,789,056 (the `adapters` library's figures),
parallel the same as Pfeiffer. Houlsby adds its LayerNorms, 2·2D per block (36,864 on BERT-base), and a
classifier its head.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from minitransformer import TransformerConfig
from minitransformer.blocks import FeedForward

from .api.config import PeftConfig, TaskType, check_choice, check_positive
from .api.counting import linear_table
from .api.layers import AdapterLayer, add_to_layer
from .api.registry import register
from .api.targets import find_targets, model_family, select_targets

NON_LINEARITIES = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}
INITS = ("zero", "houlsby")


def bottleneck_size(d_model: int, reduction_factor: float) -> int:
    """m = D / reduction_factor, rounded down (at least 1): 768 / 16 = 48, 128 / 16 = 8."""
    return max(1, int(d_model // reduction_factor))


def init_bottleneck(down: nn.Linear, up: nn.Linear, init_weights: str, init_std: float) -> None:
    """"zero": W_up = 0 (an exact no-op; W_down keeps nn.Linear's draw so that it learns once W_up moves);
    "houlsby": both weights N(0, std²) truncated at ±2 std (the paper's §3.6). Biases 0 in both."""
    with torch.no_grad():
        if init_weights == "zero":
            up.weight.zero_()
        else:
            nn.init.trunc_normal_(down.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
            nn.init.trunc_normal_(up.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
        down.bias.zero_()
        up.bias.zero_()


def layer_index(name: str) -> int | None:
    """The block a module belongs to: `bert.layers.3.ffn.fc2` -> 3 (encoder and decoder blocks count from 0 each)."""
    m = re.search(r"(?:^|\.)layers\.(\d+)\.", name)
    return int(m.group(1)) if m else None


class BottleneckLayer(AdapterLayer):
    """The shared part of both wrappers: per named adapter a down and an up projection, a non-linearity and a
    scale s. `dropped = True` (AdapterDrop) makes the layer compute its base alone."""

    adapter_attributes = ("adapter_down", "adapter_up", "adapter_act")

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.adapter_down = nn.ModuleDict()  # adapter name -> Linear(D, m): weight (m, D), bias (m,)
        self.adapter_up = nn.ModuleDict()  # adapter name -> Linear(m, D): weight (D, m), bias (D,)
        self.adapter_act = nn.ModuleDict()  # adapter name -> the non-linearity f
        self.scaling: dict[str, float] = {}
        self.dropped = False  # AdapterDrop: this block's adapters are switched off

    @property
    def features(self) -> int:
        """D, the width the adapter reads and writes."""
        raise NotImplementedError

    def update_layer(self, adapter_name: str, bottleneck_size: int, non_linearity: str = "relu",
                     scaling: float = 1.0, init_weights: str = "zero", init_std: float = 1e-2) -> None:
        D, ref = self.features, self.get_base_layer()
        device, dtype = next(ref.parameters()).device, next(ref.parameters()).dtype
        down = nn.Linear(D, bottleneck_size, device=device, dtype=dtype)
        up = nn.Linear(bottleneck_size, D, device=device, dtype=dtype)
        init_bottleneck(down, up, init_weights, init_std)
        self.adapter_down[adapter_name], self.adapter_up[adapter_name] = down, up
        self.adapter_act[adapter_name] = NON_LINEARITIES[non_linearity]()
        self.scaling[adapter_name] = scaling

    def delete_adapter(self, adapter_name: str) -> None:
        super().delete_adapter(adapter_name)
        self.scaling.pop(adapter_name, None)

    def adapter_delta(self, adapter_name: str, h: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        down, up, f = self.adapter_down[adapter_name], self.adapter_up[adapter_name], self.adapter_act[adapter_name]
        return self.scaling[adapter_name] * up(f(down(h)))  # through the bottleneck m: (..., m) in between

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.dropped:
            return self.base_layer(x, *args, **kwargs)
        return super().forward(x, *args, **kwargs)

    def extra_repr(self) -> str:
        sizes = {a: self.adapter_down[a].out_features for a in self.adapter_names}
        return f"m={sizes}, scaling={self.scaling}, dropped={self.dropped}, " + super().extra_repr()


class SequentialAdapter(BottleneckLayer):
    """A frozen `nn.Linear` followed by the adapter: h = W x + b, then A(h) = h + s·(W_up f(W_down h + b_down) + b_up)
    (Houlsby, Pfeiffer)."""

    @property
    def features(self) -> int:
        return self.get_base_layer().out_features

    def apply_adapter(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        return result + self.adapter_delta(adapter_name, result)  # the adapter reads the layer's output h


class ParallelAdapter(BottleneckLayer):
    """A frozen `FeedForward` with the adapter beside it: FFN(x) + s·A(x) (He et al.)."""

    @property
    def features(self) -> int:
        return self.get_base_layer().fc1.in_features

    # apply_adapter: the default, result + adapter_delta(x) — the adapter reads the FFN's input x


def bottleneck_layers(model: nn.Module) -> list[tuple[str, BottleneckLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BottleneckLayer)]


def set_adapter_drop(model: nn.Module, n: int) -> None:
    """AdapterDrop at inference: switch off the adapters of blocks 0 … n−1 (n = 0: every adapter runs)."""
    layers = bottleneck_layers(model)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"adapter_drop n={n!r} must be an integer >= 0 (how many of the lowest blocks lose "
                         f"their adapters)")
    for name, layer in layers:
        i = layer_index(name)
        layer.dropped = i is not None and i < n


@contextlib.contextmanager
def adapter_drop(model: nn.Module, n: int):
    """`with adapter_drop(model, n): ...` — the lowest n blocks run without their adapters inside the block."""
    set_adapter_drop(model, n)
    try:
        yield model
    finally:
        set_adapter_drop(model, 0)


def num_adapted_blocks(model: nn.Module) -> int:
    """1 + the highest block index that holds an adapter (the L of robust AdapterDrop's range)."""
    idx = [layer_index(n) for n, _ in bottleneck_layers(model)]
    return 1 + max(i for i in idx if i is not None)


@dataclass
class BottleneckConfig(PeftConfig):
    """The fields every placement shares (registered through its three subclasses, one per placement).

    reduction_factor: m = D / reduction_factor (16: m = 48 on BERT-base, 8 on mini-bert); bottleneck_size sets m
    directly (then reduction_factor is not used). non_linearity: f, one of relu, gelu, swish, tanh. scaling: s.
    init_weights: "zero" (W_up = 0, an exact no-op) or "houlsby" (truncated normal, std `init_std`).
    skip_layers: no adapter in the lowest n blocks (specialised AdapterDrop). robust_drop: sample the number of
    dropped blocks per training batch (robust AdapterDrop).

    lr 1e-3: a new module that starts at zero; the comparison sweeps 3e-4 … 1e-1 on dev (1e-1 added when the
    Pfeiffer adapter chose the old top, 3e-2, on rt; the Houlsby paper swept 3e-5 … 3e-3 over up to 20 epochs,
    here 300 steps)."""

    reduction_factor: float = 16
    bottleneck_size: int | None = None
    non_linearity: str = "relu"
    scaling: float = 1.0
    init_weights: str = "zero"
    init_std: float = 1e-2
    skip_layers: int = 0
    robust_drop: bool = False

    placement: ClassVar[str] = ""
    default_lr: ClassVar[float] = 1e-3
    lr_grid: ClassVar[tuple[float, ...]] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"reduction_factor": 0}, "reduction_factor"), ({"bottleneck_size": 0}, "bottleneck_size"),
        ({"non_linearity": "softmax"}, "non_linearity"), ({"scaling": "big"}, "scaling"),
        ({"init_weights": "xavier"}, "init_weights"), ({"init_std": 0}, "init_std"),
        ({"skip_layers": -1}, "skip_layers"), ({"robust_drop": 1}, "robust_drop")]

    @classmethod
    def example(cls, task_type: str) -> BottleneckConfig:
        # the tiny test models are 16 wide: D / 16 would leave a single ReLU unit, dead on some batches
        return cls(task_type=task_type, bottleneck_size=4)

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        check_positive(self, "reduction_factor", minimum=1)
        if self.bottleneck_size is not None and (isinstance(self.bottleneck_size, bool)
                                                 or not isinstance(self.bottleneck_size, int) or self.bottleneck_size < 1):
            raise ValueError(f"{name}.bottleneck_size must be an integer >= 1 or None (then D / reduction_factor), "
                             f"got {self.bottleneck_size!r}")
        check_choice(self, "non_linearity", tuple(NON_LINEARITIES))
        if isinstance(self.scaling, bool) or not isinstance(self.scaling, (int, float)):
            raise ValueError(f"{name}.scaling must be a number (s, the adapter's output scale), got {self.scaling!r}")
        check_choice(self, "init_weights", INITS)
        check_positive(self, "init_std", minimum=1e-12)
        if isinstance(self.skip_layers, bool) or not isinstance(self.skip_layers, int) or self.skip_layers < 0:
            raise ValueError(f"{name}.skip_layers must be an integer >= 0 (blocks without adapters, from the "
                             f"bottom), got {self.skip_layers!r}")
        if not isinstance(self.robust_drop, bool):
            raise ValueError(f"{name}.robust_drop must be True or False, got {self.robust_drop!r}")

    # ---- where the adapters go -------------------------------------------------------------------------------
    def m(self, d_model: int) -> int:
        return self.bottleneck_size or bottleneck_size(d_model, self.reduction_factor)

    def target_suffixes(self, family: str) -> list[str]:
        """The modules wrapped, by name suffix (subclasses)."""
        raise NotImplementedError

    wrapper: ClassVar[type[BottleneckLayer]] = SequentialAdapter
    kinds: ClassVar[tuple[type, ...]] = (nn.Linear,)

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> None:
        family = model_family(model)
        names = find_targets(model, self.target_suffixes(family), kinds=self.kinds)
        kept = [n for n in select_targets(names, self.target_suffixes(family), self.resolved_modules_to_save())
                if (layer_index(n) or 0) >= self.skip_layers]
        if not kept:
            raise ValueError(f"{type(self).__name__}.skip_layers={self.skip_layers} leaves no block with an adapter; "
                             f"allowed: fewer than the model's {model.config.n_layers} layers")
        for name in kept:
            add_to_layer(model, name, self.wrapper, adapter_name, bottleneck_size=self.m(model.config.d_model),
                         non_linearity=self.non_linearity, scaling=self.scaling, init_weights=self.init_weights,
                         init_std=self.init_std)

    def is_trainable(self, name: str) -> bool:
        parts = name.split(".")
        return "adapter_down" in parts or "adapter_up" in parts

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        """(2·D·m + m + D) per adapter, one adapter per wrapped module (the LayerNorms Houlsby trains are
        `modules_to_save`, counted by the caller from the modules)."""
        D = model_config.d_model
        m = self.m(D)
        names = [n for n, _, _ in linear_table(model_config, family, num_labels, pooler)]
        if self.kinds == (FeedForward,):
            names = [n[: -len(".fc2")] for n in names if n.endswith("ffn.fc2")]  # one FFN module per block
        kept = [n for n in select_targets(names, self.target_suffixes(family), self.resolved_modules_to_save())
                if (layer_index(n) or 0) >= self.skip_layers]
        return len(kept) * (2 * D * m + m + D)

    # ---- robust AdapterDrop: the loss hook ------------------------------------------------------------------
    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if not (self.robust_drop and model.training):
            return model(**batch).loss
        n = int(torch.randint(0, num_adapted_blocks(model), ()))  # the training seed makes the draws repeat
        with adapter_drop(model, n):
            return model(**batch).loss  # the graph is built: backward after the block uses these adapters


@register("houlsby")
@dataclass
class HoulsbyConfig(BottleneckConfig):
    """Two adapters per block (after the attention output and after the FFN), GELU, the blocks' LayerNorms
    retrained (`train_layer_norms`, the paper's Fig. 2)."""

    non_linearity: str = "gelu"
    train_layer_norms: bool = True

    placement: ClassVar[str] = "houlsby"
    invalid_examples: ClassVar[list[tuple[dict, str]]] = BottleneckConfig.invalid_examples + [
        ({"train_layer_norms": "yes"}, "train_layer_norms")]

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.train_layer_norms, bool):
            raise ValueError(f"HoulsbyConfig.train_layer_norms must be True or False, got {self.train_layer_norms!r}")

    def target_suffixes(self, family: str) -> list[str]:
        return ["attn.o", "ffn.fc2"] + (["cross_attn.o"] if family == "seq2seq" else [])

    def resolved_modules_to_save(self) -> list[str]:
        base = super().resolved_modules_to_save()
        if not self.train_layer_norms or self.modules_to_save is not None:
            return base
        norms = ["attn_norm", "ffn_norm"] + (["cross_norm"] if self.task_type == TaskType.SEQ_2_SEQ_LM else [])
        return base + norms


@register("pfeiffer")
@dataclass
class PfeifferConfig(BottleneckConfig):
    """One adapter per block, after the FFN (ReLU); no LayerNorm retrained."""

    placement: ClassVar[str] = "pfeiffer"

    def target_suffixes(self, family: str) -> list[str]:
        return ["ffn.fc2"]


@register("parallel_adapter")
@dataclass
class ParallelAdapterConfig(BottleneckConfig):
    """One adapter per block beside the FFN, reading its input, scaled by s = 4 (ReLU)."""

    scaling: float = 4.0

    placement: ClassVar[str] = "parallel"
    wrapper: ClassVar[type[BottleneckLayer]] = ParallelAdapter
    kinds: ClassVar[tuple[type, ...]] = (FeedForward,)

    def target_suffixes(self, family: str) -> list[str]:
        return ["ffn"]
