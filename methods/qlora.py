"""QLoRA's frozen 4-bit base (Dettmers et al. 2023, arXiv:2305.14314, §3), in pure PyTorch on the CPU.

QLoRA trains LoRA adapters (`methods/lora.py`) on a base whose weights are stored in 4 bits and dequantised on
the fly in each forward pass (the paper's eq. 5–6):

    Y = X · doubleDequant(c1, c2, W_NF4) + X · L1 · L2
    doubleDequant(c1, c2, W) = dequant(dequant(c1, c2), W)

- **NF4** (4-bit NormalFloat, §3 and eq. 4): 16 code values, each the midpoint of two neighbouring quantiles of
  N(0, 1), 8 for the positive half and 7 for the negative half plus an exact 0, scaled into [-1, 1]
  (`nf4_code`). Pretrained weights are roughly normal, so equal-probability bins waste fewer codes than the
  evenly spaced ones of int4 or the exponent-spaced ones of FP4.
- **Blockwise absmax**: the weight is flattened into blocks of 64; each block is divided by its largest |w|
  (the constant c1, one float per block) and every entry is replaced by the index of the nearest code value.
  Two 4-bit indices are packed into one uint8 (the first in the high nibble, as in `bitsandbytes`).
- **Double quantisation**: the c1 constants (32 bits per 64 weights = 0.5 bit per weight) are quantised again,
  after subtracting their mean, to 8 bits in blocks of 256, each block with its own float absmax c2:
  8/64 + 32/(64·256) = 0.127 bit per weight, so ≈ 4.127 bits per weight in all. Here the 8-bit code is linear
  (symmetric int8, 255 levels); the paper says "8-bit Floats" and `bitsandbytes` uses its dynamic 8-bit map.
  The bits are the same; the rounding of the constants differs slightly.

Plugs in at: every frozen `nn.Linear` of the blocks is replaced by a `Linear4bit` that holds the packed codes
and the constants (buffers, no parameters) and dequantises its weight in `forward`, and again in the backward
pass (so that no float copy of the weight is kept alive between the two); LoRA then wraps it.
Paged optimizers (optimizer state in CUDA unified memory, paged to CPU RAM on a memory spike) need a GPU: they
are not reproduced here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .api.layers import AdapterLayer, add_to_layer
from .api.registry import register
from .api.targets import find_targets, replace_module
from .lora import LoraConfig, LoraLinear

NF4_OFFSET = 0.9677083  # δ ≈ 1 - ½(1/32 + 1/30): the outermost quantile used, so that the codes end at ±1
CODES = ("nf4", "fp4", "int4")


def nf4_code(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 16 NF4 values (16,), sorted, in [-1, 1] (computed in float64, returned in `dtype`), built as `bitsandbytes`' `create_normal_map` builds them:
    Φ⁻¹ of 8 (positive half) and 7 (negative half) evenly spaced probabilities from δ to ½ (the ½ dropped), an
    exact 0, then divided by the largest. The probabilities are spaced in float32 as there, which reproduces the
    paper's table to 7 decimals (spacing them in float64 moves some values by 1e-7)."""
    pos = torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, 9)[:-1].double())
    neg = -torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, 8)[:-1].double())
    values = torch.cat([pos, torch.zeros(1, dtype=torch.float64), neg])
    return (values / values.max()).sort().values.to(dtype)


def fp4_code() -> torch.Tensor:
    """FP4 E2M1 (1 sign, 2 exponent, 1 mantissa bit): ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, scaled to [-1, 1]; 15
    distinct values (+0 and -0 are one)."""
    magnitudes = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]) / 6.0
    return torch.cat([-magnitudes.flip(0), magnitudes[1:]])


def int4_code() -> torch.Tensor:
    """Symmetric int4 with absmax scaling: the integers -7 .. 7 divided by 7 (15 evenly spaced values)."""
    return torch.arange(-7, 8, dtype=torch.float32) / 7.0


def code_table(name: str) -> torch.Tensor:
    if name not in CODES:
        raise ValueError(f"code={name!r} is not a 4-bit code here; allowed: {CODES}")
    return {"nf4": nf4_code, "fp4": fp4_code, "int4": int4_code}[name]()


# ---- 4-bit indices, two per byte --------------------------------------------------------------------------------
def pack_4bit(index: torch.Tensor) -> torch.Tensor:
    """(n,) integers in 0..15 -> (⌈n/2⌉,) uint8, element 2i in the high nibble, 2i+1 in the low one."""
    if index.numel() and (index.min() < 0 or index.max() > 15):
        raise ValueError("pack_4bit: every index must lie in 0..15")
    flat = index.flatten().to(torch.uint8)
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return (flat[0::2] << 4) | flat[1::2]


def unpack_4bit(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of `pack_4bit`: (⌈n/2⌉,) uint8 -> (n,) int64 indices."""
    return torch.stack([packed >> 4, packed & 0x0F], dim=1).flatten()[:n].long()


# ---- blockwise absmax quantisation to a 4-bit code ------------------------------------------------------------
def quantize_4bit(w: torch.Tensor, code: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """w (any shape) -> (packed uint8 (⌈n/2⌉,), absmax float32 (number of blocks,)). Each block of `blocksize`
    consecutive entries of the flattened w is divided by its absmax and rounded to the nearest code value."""
    flat = w.detach().flatten().float()
    n = flat.numel()
    blocks = F.pad(flat, (0, -n % blocksize)).view(-1, blocksize)  # (nb, blocksize), zero-padded at the end
    absmax = blocks.abs().amax(dim=1)  # c1, (nb,)
    scaled = blocks / absmax.clamp_min(torch.finfo(torch.float32).tiny)[:, None]  # in [-1, 1]
    midpoints = (code[1:] + code[:-1]) / 2  # the nearest code value = the bucket between midpoints
    index = torch.bucketize(scaled.flatten(), midpoints)[:n]
    return pack_4bit(index), absmax


def dequantize_4bit(packed: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, shape: tuple[int, ...],
                    blocksize: int = 64) -> torch.Tensor:
    """code[index] · absmax of its block, reshaped to `shape` (float32)."""
    n = math.prod(shape)
    values = code[unpack_4bit(packed, n)]  # (n,)
    scale = absmax.repeat_interleave(blocksize)[:n]
    return (values * scale).view(shape)


# ---- double quantisation of the absmax constants ------------------------------------------------------------
def quantize_constants(absmax: torch.Tensor, blocksize: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """c1 (nb,) -> (int8 codes (nb,), c2 float32 (⌈nb/256⌉,), mean float32 ()): c1 minus its mean, in blocks
    of `blocksize`, each divided by its absmax c2 and rounded to one of the 255 levels -127 .. 127."""
    mean = absmax.mean()
    centred = absmax - mean
    n = centred.numel()
    blocks = F.pad(centred, (0, -n % blocksize)).view(-1, blocksize)
    c2 = blocks.abs().amax(dim=1)  # (⌈nb/256⌉,)
    q = torch.round(blocks / c2.clamp_min(torch.finfo(torch.float32).tiny)[:, None] * 127).to(torch.int8)
    return q.flatten()[:n], c2, mean


def dequantize_constants(q: torch.Tensor, c2: torch.Tensor, mean: torch.Tensor, blocksize: int = 256) -> torch.Tensor:
    """Inverse of `quantize_constants` (up to rounding): q / 127 · c2 of its block + mean."""
    scale = c2.repeat_interleave(blocksize)[: q.numel()]
    return q.float() / 127 * scale + mean


# ---- a frozen linear layer stored in 4 bits -------------------------------------------------------------------
class _DequantLinear(torch.autograd.Function):
    """y = x·Wᵀ + b with W dequantised from the layer's 4-bit codes in the forward *and again* in the backward.

    `F.linear(x, layer.weight)` would save the dequantised float W for the backward (grad_x = grad_y·W), so every
    quantised layer would hold a full float copy of its weight from the forward to the backward: the memory the 4
    bits saved would come back during training. Here only a reference to the layer is kept, and W is rebuilt when
    the gradient needs it (as `bitsandbytes`' MatMul4Bit does). W is frozen: it gets no gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: torch.Tensor | None, layer: Linear4bit) -> torch.Tensor:
        ctx.layer = layer
        return F.linear(x, layer.weight.to(x.dtype), None if bias is None else bias.to(x.dtype))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_x = grad_out @ ctx.layer.weight.to(grad_out.dtype) if ctx.needs_input_grad[0] else None
        # the bias is frozen in QLoRA; should a caller unfreeze it, it gets its gradient all the same
        grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0) if ctx.needs_input_grad[1] else None
        return grad_x, grad_b, None


class Linear4bit(nn.Module):
    """A frozen `nn.Linear` whose weight is kept as 4-bit codes plus (double-quantised) block constants, and
    dequantised in every forward pass. Built with `Linear4bit.from_linear(linear)`. `weight` returns the
    dequantised (out, in) float32 weight; the bias stays in float32 (frozen)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, code: str = "nf4",
                 blocksize: int = 64, double_quant: bool = True) -> None:
        super().__init__()
        if blocksize < 2 or blocksize % 2:
            raise ValueError(f"Linear4bit.blocksize must be an even number >= 2, got {blocksize!r}")
        self.in_features, self.out_features = in_features, out_features
        self.code_name, self.blocksize, self.double_quant = code, blocksize, double_quant
        n = in_features * out_features
        nb = -(-n // blocksize)
        self.register_buffer("code", code_table(code))
        self.register_buffer("qweight", torch.zeros((n + 1) // 2, dtype=torch.uint8))
        if double_quant:
            self.register_buffer("qabsmax", torch.zeros(nb, dtype=torch.int8))
            self.register_buffer("absmax_c2", torch.zeros(-(-nb // 256)))
            self.register_buffer("absmax_mean", torch.zeros(()))
        else:
            self.register_buffer("absmax", torch.zeros(nb))
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, code: str = "nf4", blocksize: int = 64,
                    double_quant: bool = True) -> Linear4bit:
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, code, blocksize, double_quant)
        layer.quantize_(linear.weight)
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach().float())
        return layer.to(linear.weight.device)

    @torch.no_grad()
    def quantize_(self, weight: torch.Tensor) -> None:
        """Store `weight` (out, in) in 4 bits (replacing what was stored)."""
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"Linear4bit.quantize_: weight of shape {tuple(weight.shape)}, this layer is "
                             f"{(self.out_features, self.in_features)}")
        packed, absmax = quantize_4bit(weight, self.code, self.blocksize)
        self.qweight.copy_(packed)
        if self.double_quant:
            q, c2, mean = quantize_constants(absmax)
            self.qabsmax.copy_(q)
            self.absmax_c2.copy_(c2)
            self.absmax_mean.copy_(mean)
        else:
            self.absmax.copy_(absmax)

    def block_absmax(self) -> torch.Tensor:
        """c1, one per block of 64: stored, or dequantised from the 8-bit codes."""
        if self.double_quant:
            return dequantize_constants(self.qabsmax, self.absmax_c2, self.absmax_mean)
        return self.absmax

    @property
    def weight(self) -> torch.Tensor:  # (out, in), float32, dequantised
        return dequantize_4bit(self.qweight, self.block_absmax(), self.code, (self.out_features, self.in_features),
                               self.blocksize)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return _DequantLinear.apply(x, self.bias, self)

    def storage_bits(self) -> int:
        """Bits of the frozen weight as stored: the codes and the constants (the code table and the bias aside)."""
        bits = self.qweight.numel() * 8
        if self.double_quant:
            return bits + self.qabsmax.numel() * 8 + self.absmax_c2.numel() * 32 + 32
        return bits + self.absmax.numel() * 32

    def dequantized(self) -> nn.Linear:
        """A plain float32 `nn.Linear` holding the dequantised weight (and the bias)."""
        linear = nn.Linear(self.in_features, self.out_features, self.bias is not None, device=self.qweight.device)
        with torch.no_grad():
            linear.weight.copy_(self.weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear.requires_grad_(False)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, code={self.code_name}, "
                f"blocksize={self.blocksize}, double_quant={self.double_quant}")


@torch.no_grad()
def quantize_linears_(model: nn.Module, names: list[str], code: str = "nf4", blocksize: int = 64,
                      double_quant: bool = True) -> dict[str, float]:
    """Replace each named `nn.Linear` of `model` by a `Linear4bit` (in place; a name that is already 4-bit is
    left alone). Returns the largest absolute rounding error of each replaced weight — e.g. to report what
    re-quantising a merged model costs."""
    errors = {}
    for name in names:
        module = model.get_submodule(name)
        if isinstance(module, nn.Linear):
            q = Linear4bit.from_linear(module, code, blocksize, double_quant)
            errors[name] = (q.weight - module.weight).abs().max().item()
            replace_module(model, name, q)
    return errors


# ---- QLoRA: LoRA on the 4-bit base ------------------------------------------------------------------------------
class QLoraLinear(LoraLinear):
    """LoRA on a `Linear4bit`. Merging cannot add ΔW into 4-bit codes without rounding it away, so `merge()`
    first dequantises the layer for good (a float `nn.Linear` replaces the `Linear4bit` under the wrapper), then
    adds ΔW exactly; `merge_and_unload()` therefore returns a float model, and `quantize_linears_` re-quantises
    it when asked (reporting the rounding error). `bitsandbytes` instead re-quantises inside merge, with a
    warning that generations may change."""

    @torch.no_grad()
    def merge(self, adapter_names: list[str] | None = None) -> None:
        holder: AdapterLayer = self
        while isinstance(holder.base_layer, AdapterLayer):
            holder = holder.base_layer
        if isinstance(holder.base_layer, Linear4bit):
            holder.base_layer = holder.base_layer.dequantized()
        super().merge(adapter_names)


BLOCK_LINEARS_REGEX = r".*\.(attn|cross_attn)\.[qkvo]|.*\.ffn\.fc[12]"


@register("qlora")
@dataclass
class QLoraConfig(LoraConfig):
    """LoRA (every field of `LoraConfig`) on a base whose target layers are first stored in 4 bits.
    target_modules: default every linear layer of the blocks (the paper's recommendation: LoRA on q and v alone
    does not match 16-bit fine-tuning); code: "nf4" (the paper), "fp4" or "int4"; blocksize: weights per absmax
    constant (64); double_quant: quantise the constants too (0.127 instead of 0.5 bit per weight).

    lr 1e-3, as LoRA; the paper's recipe (r = 64, α = 16, lr 2e-4, constant schedule) is for 7B-65B models."""

    target_modules: list[str] | str = BLOCK_LINEARS_REGEX
    code: str = "nf4"
    blocksize: int = 64
    double_quant: bool = True

    noop_at_init: ClassVar[bool] = False  # the base itself is quantised: outputs differ from the float base
    alters_base: ClassVar[bool] = True
    invalid_examples: ClassVar[list[tuple[dict, str]]] = LoraConfig.invalid_examples + [
        ({"code": "nf3"}, "code"), ({"blocksize": 63}, "blocksize"), ({"double_quant": 1}, "double_quant")]

    def validate(self) -> None:
        super().validate()
        if self.code not in CODES:
            raise ValueError(f"QLoraConfig.code={self.code!r} is not allowed; allowed: {CODES}")
        if isinstance(self.blocksize, bool) or not isinstance(self.blocksize, int) or self.blocksize < 2 \
                or self.blocksize % 2:
            raise ValueError(f"QLoraConfig.blocksize must be an even integer >= 2, got {self.blocksize!r}")
        if not isinstance(self.double_quant, bool):
            raise ValueError(f"QLoraConfig.double_quant must be True or False, got {self.double_quant!r}")

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> None:
        names = self._targets(find_targets(model, self.target_modules, kinds=(nn.Linear, Linear4bit)))
        quantize_linears_(model, names, self.code, self.blocksize, self.double_quant)
        for name in names:
            add_to_layer(model, name, QLoraLinear, adapter_name, r=self.r, lora_alpha=self.lora_alpha,
                         lora_dropout=self.lora_dropout, use_rslora=self.use_rslora)
