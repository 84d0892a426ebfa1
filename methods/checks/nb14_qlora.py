"""Exercise checkers of notebook 14 (QLoRA; Dettmers, Pagnoni, Holtzman, Zettlemoyer 2023, arXiv:2305.14314).

Each `check_k(student_fn)` runs the student's function and the package's own (`methods/qlora.py`) on the same
fixed, seeded inputs (`minitransformer.teaching.exercises.check_parity`): None = not attempted (the stub raised
NotImplementedError), True = correct, False = not yet. On a wrong answer the checker computes the usual wrong
variants (the signed max instead of the absmax, one constant for the whole tensor, the code treated as evenly
spaced, the nibbles swapped, the second-level constants forgotten, ...) and, when the student's answer equals one
of them, names that mistake instead of printing a bare expected/got. A wrong answer never raises.

While the student's function runs, the package function that would answer the exercise by itself
(`methods.qlora.quantize_4bit`, `methods.qlora.pack_4bit`) is replaced by a tripwire: calling it gives "not yet —
your code called ...", since the point is to build it.

1. `quantize_blocks(w, code, blocksize)` -> (index (n,) int, absmax (⌈n/blocksize⌉,)): blockwise absmax
   quantisation of the flattened weight to the nearest value of a 4-bit code. Reference: `quantize_4bit`, its
   packed indices unpacked. The inputs keep every entry at least 1e-4 (in units of its block's absmax) away from a
   rounding boundary, so every correct way of finding the nearest code value agrees with the package exactly.
2. `pack_nibbles(index)` -> (⌈n/2⌉,) uint8: two 4-bit indices per byte, the first in the high nibble.
   Reference: `pack_4bit`.
3. `storage_bits(n_out, n_in, blocksize, double_quant)` -> the bits a `Linear4bit` stores for an (n_out, n_in)
   weight: the packed codes and the block constants (double-quantised or not). Reference:
   `Linear4bit.storage_bits()`.
4. A prediction: which 4-bit code (NF4, int4, FP4) has the smallest *worst-case* rounding error on the pretrained
   weights? Checked with `check_choice` against the errors the notebook measures in the cell that calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from minitransformer.teaching.exercises import check_choice, check_parity

from .. import qlora
from ..qlora import Linear4bit, code_table

TINY = torch.finfo(torch.float32).tiny
MARGIN = 1e-4  # every test entry lies at least this far (in units of its block's absmax) from a rounding boundary


# ---- 1. blockwise absmax quantisation -------------------------------------------------------------------------
def reference_quantize_blocks(w: torch.Tensor, code: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's quantisation, with its packed indices unpacked: (index (n,) int64, absmax (nb,) float32)."""
    packed, absmax = qlora.quantize_4bit(w, code, blocksize)
    return qlora.unpack_4bit(packed, w.numel()), absmax


def _blocks(w: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, int]:
    flat = w.detach().flatten().float()
    return F.pad(flat, (0, -flat.numel() % blocksize)).view(-1, blocksize), flat.numel()


def _nearest(scaled: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    return torch.bucketize(scaled, (code[1:] + code[:-1]) / 2)


def _away_from_boundaries(w: torch.Tensor, code: torch.Tensor, blocksize: int) -> torch.Tensor:
    """`w` with every entry that lies within MARGIN of a midpoint between two code values (after scaling by its
    block's absmax) moved 3·MARGIN up: then bucketize on the midpoints, argmin of |x − code| and other correct
    ways of rounding to the nearest value cannot disagree by a float rounding step."""
    midpoints = (code[1:] + code[:-1]) / 2
    for _ in range(10):
        blocks, n = _blocks(w, blocksize)
        absmax = blocks.abs().amax(dim=1, keepdim=True).clamp_min(TINY)
        scaled = (blocks / absmax).flatten()[:n]
        near = (scaled[:, None] - midpoints).abs().min(dim=1).values < MARGIN
        if not near.any():
            return w
        shift = (3 * MARGIN * absmax.expand_as(blocks)).flatten()[:n]
        w = (w.flatten() + shift * near).view(w.shape)  # midpoints are < 0.87: the absmax entry never moves
    raise RuntimeError("could not move the test entries away from the rounding boundaries")


def quantize_cases() -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """(w, code, blocksize): whole blocks, a partial last block, a single partial block, an all-zero block,
    heavy tails and another block size, over the three codes."""
    g = torch.Generator().manual_seed(14)
    zero_block = torch.randn(16, 24, generator=g)
    zero_block[4:6] = 0  # flattened entries 96..143: block 3 (entries 96..127) of blocks of 32 is all zero
    raw = [(torch.randn(40, 96, generator=g) * 0.05, "nf4", 64),
           (torch.randn(37, 50, generator=g) * 0.02, "nf4", 64),  # 1,850 entries: the last block holds 58
           (torch.randn(5, 7, generator=g), "int4", 64),  # 35 entries: one partial block
           (zero_block, "fp4", 32),
           (torch.randn(64, 40, generator=g) ** 3 * 0.01, "nf4", 128)]  # heavy tails
    return [(_away_from_boundaries(w, code_table(c), b), code_table(c), b) for w, c, b in raw]


def _signed_max(w, code, blocksize):
    blocks, n = _blocks(w, blocksize)
    peak = blocks.amax(dim=1)
    return _nearest((blocks / peak[:, None]).flatten()[:n], code), peak


def _one_absmax(w, code, blocksize):
    blocks, n = _blocks(w, blocksize)
    a = w.detach().abs().max().float()
    index = _nearest((blocks / a).flatten()[:n], code)
    return [(index, a), (index, a.view(1)), (index, a.repeat(blocks.shape[0]))]


def _evenly_spaced(w, code, blocksize):
    blocks, n = _blocks(w, blocksize)
    absmax = blocks.abs().amax(dim=1)
    scaled = (blocks / absmax.clamp_min(TINY)[:, None]).flatten()[:n]
    return torch.round((scaled + 1) / 2 * (len(code) - 1)).long(), absmax


def _neighbour(w, code, blocksize):
    blocks, n = _blocks(w, blocksize)
    absmax = blocks.abs().amax(dim=1)
    scaled = (blocks / absmax.clamp_min(TINY)[:, None]).flatten()[:n].contiguous()
    up = torch.bucketize(scaled, code)  # the first code value >= x
    down = (torch.searchsorted(code, scaled, right=True) - 1).clamp_min(0)  # the last code value <= x
    return [(up, absmax), (down, absmax)]


def _transposed(w, code, blocksize):
    return reference_quantize_blocks(w.t().contiguous(), code, blocksize)


def _per_row(w, code, blocksize):
    rows = [reference_quantize_blocks(row, code, blocksize) for row in w.view(w.shape[0], -1)]
    return torch.cat([i for i, _ in rows]), torch.cat([a for _, a in rows])


def _no_clamp(w, code, blocksize):
    blocks, n = _blocks(w, blocksize)
    absmax = blocks.abs().amax(dim=1)
    scaled = (blocks / absmax[:, None]).flatten()[:n]  # 0 / 0 = nan in an all-zero block
    by_argmin = (scaled[:, None] - code).abs().argmin(dim=1)
    return [(_nearest(scaled, code), absmax), (by_argmin, absmax)]


QUANTIZE_HINTS = [
    ("divided by the block's largest value, not its largest *magnitude*: the absmax is max |w| (a block whose "
     "extreme entry is negative would otherwise be scaled by a smaller or negative number)", _signed_max),
    ("one constant for the whole tensor: each block of `blocksize` consecutive entries has its own absmax (that is "
     "what keeps one outlier from flattening every other block)", _one_absmax),
    ("rounded to the nearest *index* as if the code values were evenly spaced (round((x + 1)/2 · 15)): NF4's values "
     "are not evenly spaced — pick the index of the nearest code *value* (e.g. argmin of |x − code|)", _evenly_spaced),
    ("rounded to a neighbouring code value, not the nearest: torch.bucketize(x, code) gives the first value >= x. "
     "Search against the midpoints between neighbouring values instead (or take the argmin of |x − code|)",
     _neighbour),
    ("the blocks are consecutive entries of w.flatten() (row-major): did you cut them from w.T?", _transposed),
    ("the blocks are cut from the flattened weight, so a block may span two rows: pad only the end of the "
     "flattened weight, not every row", _per_row),
    ("an all-zero block has absmax 0 and 0 / 0 = nan: divide by max(absmax, a tiny positive number) as the "
     "package does, so that its entries land on the code's exact 0", _no_clamp),
]


def _quantize_shape_hint(case: tuple, want: Any, got: Any) -> str | None:
    w, _, blocksize = case
    n, nb = w.numel(), -(-w.numel() // blocksize)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a pair (index, absmax): the code index of every entry and one constant per block"
    index, absmax = got
    if isinstance(index, torch.Tensor) and index.dim() > 1 and index.numel() == n:
        return f"return the indices flattened, shape ({n},), in the order of w.flatten()"
    if isinstance(index, torch.Tensor) and index.numel() == nb * blocksize != n:
        return f"index has an entry for every padded position: keep the {n} real entries (shape ({n},))"
    if isinstance(absmax, torch.Tensor) and tuple(absmax.shape) == (nb, 1):
        return f"absmax: one number per block, shape ({nb},), not ({nb}, 1)"
    return None


def check_1(quantize_blocks: Callable) -> bool | None:
    """quantize_blocks(w, code, blocksize) -> (index, absmax) against `methods.qlora.quantize_4bit`, exactly."""
    return check_parity(1, quantize_blocks, reference_quantize_blocks, quantize_cases(), QUANTIZE_HINTS,
                        forbidden=[(qlora, "quantize_4bit", "methods.qlora.quantize_4bit")], atol=0.0,
                        variant_atol=0.0, shape_hint=_quantize_shape_hint, no_grad=True,
                        build_from="tensor operations (pad, view into blocks, amax, nearest code value)",
                        describe="absmax per block of the flattened weight, then the index of the nearest code value")


# ---- 2. two 4-bit indices per byte ----------------------------------------------------------------------------
class _WithDtype:
    """The student's function, returning (tensor, its dtype) so that the checker also sees the dtype; keeps the
    student's globals visible to the tripwires."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.__globals__ = fn, getattr(fn, "__globals__", {})

    def __call__(self, index: torch.Tensor) -> tuple[Any, Any]:
        out = self.fn(index)
        return out, getattr(out, "dtype", type(out).__name__)


def reference_pack(index: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    packed = qlora.pack_4bit(index)
    return packed, packed.dtype


def pack_cases() -> list[tuple[torch.Tensor]]:
    g = torch.Generator().manual_seed(4)
    return [(torch.tensor([1, 2]),)] + [(torch.randint(0, 16, (n,), generator=g),) for n in (2, 7, 64, 129)]


def _pairs(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = index.flatten().long()
    flat = torch.cat([flat, flat.new_zeros(flat.numel() % 2)])
    return flat[0::2], flat[1::2]


def _as_bytes(values: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    return values.to(torch.uint8), torch.uint8


def _swapped(index):
    hi, lo = _pairs(index)
    return _as_bytes((lo << 4) | hi)


def _precedence(index):
    hi, lo = _pairs(index)
    wide = hi << (4 + lo)  # `hi << 4 + lo`: + binds tighter than <<
    narrow = hi.to(torch.uint8) << (4 + lo).to(torch.uint8)
    return [_as_bytes(wide), (wide, wide.dtype), (narrow, torch.uint8)]


def _halves(index):
    flat = index.flatten().long()
    m = -(-flat.numel() // 2)
    hi, lo = flat[:m], torch.cat([flat[m:], flat.new_zeros(2 * m - flat.numel())])
    return _as_bytes((hi << 4) | lo)


def _last_in_low_nibble(index):
    packed, dtype = reference_pack(index)
    if index.numel() % 2:
        packed = packed.clone()
        packed[-1] = index.flatten()[-1]
    return packed, dtype


PACK_HINTS = [
    ("the nibbles are swapped: the first index of each pair goes in the high nibble (bits 7..4), as bitsandbytes "
     "stores them: byte = (i0 << 4) | i1", _swapped),
    ("`a << 4 + b` shifts a by 4 + b (in Python + binds tighter than <<): write (a << 4) | b", _precedence),
    ("the pairs are neighbours (entries 2i and 2i + 1), not entry i with entry i + n/2", _halves),
    ("an odd count: the last index goes in the *high* nibble of a last byte whose low nibble is a padding 0",
     _last_in_low_nibble),
]


def _pack_shape_hint(case: tuple, want: Any, got: Any) -> str | None:
    (index,) = case
    n = index.numel()
    packed, dtype = got
    if not isinstance(packed, torch.Tensor):
        return f"return a tensor of bytes, got {type(packed).__name__}"
    if packed.numel() == n and n > 1:
        return f"two indices per byte: {n} indices fill {-(-n // 2)} bytes"
    if n % 2 and packed.numel() == n // 2:
        return f"an odd count ({n}) needs {n // 2 + 1} bytes: pad the last index with a 0 in the low nibble"
    if packed.shape == want[0].shape and dtype != torch.uint8 and torch.equal(packed.long(), want[0].long()):
        return f"the values are right; return bytes: .to(torch.uint8) (got {dtype}, which takes more memory)"
    return None


def check_2(pack_nibbles: Callable) -> bool | None:
    """pack_nibbles(index) -> (⌈n/2⌉,) uint8 against `methods.qlora.pack_4bit`."""
    return check_parity(2, _WithDtype(pack_nibbles), reference_pack, pack_cases(), PACK_HINTS,
                        forbidden=[(qlora, "pack_4bit", "methods.qlora.pack_4bit")], atol=0.0, variant_atol=0.0,
                        shape_hint=_pack_shape_hint, no_grad=True, build_from="shifts and bitwise or",
                        describe="byte = (index[2i] << 4) | index[2i + 1], an odd count padded with 0")


# ---- 3. the bits a 4-bit weight takes -------------------------------------------------------------------------
def reference_storage_bits(n_out: int, n_in: int, blocksize: int, double_quant: bool) -> int:
    """What the package's `Linear4bit` stores for an (n_out, n_in) weight, in bits (codes + constants)."""
    return Linear4bit(n_in, n_out, bias=False, blocksize=blocksize, double_quant=double_quant).storage_bits()


STORAGE_CASES = [(768, 768, 64, True), (768, 768, 64, False), (3072, 768, 64, True), (128, 512, 64, True),
                 (5, 7, 64, True), (40, 96, 64, False), (100, 300, 128, True), (4096, 4096, 64, True),
                 (1, 1, 2, True)]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _bits(n: int, blocksize: int, dq: bool, *, second_block: int = 256, codes: bool = True, c2: bool = True,
          mean: bool = True, floor: bool = False, dq_bits: int = 8, plain_bits: int = 32) -> int:
    nb = n // blocksize if floor else _cdiv(n, blocksize)
    bits = 8 * _cdiv(n, 2) if codes else 4 * n
    if not dq:
        return bits + plain_bits * nb
    return bits + dq_bits * nb + (32 * _cdiv(nb, second_block) if c2 else 0) + (32 if mean else 0)


STORAGE_HINTS = [
    ("forgot the second-level constants: with double quantisation each block of 256 first-level constants keeps "
     "one fp32 absmax c2 (32 bits)", lambda o, i, b, dq: _bits(o * i, b, dq, c2=False) if dq else -1),
    ("forgot the mean: the constants are centred before their 8-bit quantisation, and the mean is stored as one "
     "fp32 (32 bits per matrix)", lambda o, i, b, dq: _bits(o * i, b, dq, mean=False) if dq else -1),
    ("forgot both second-level terms (the fp32 c2 per 256 constants and the fp32 mean)",
     lambda o, i, b, dq: _bits(o * i, b, dq, c2=False, mean=False) if dq else -1),
    ("used 256 for the first level: the weights are cut in blocks of `blocksize` (64); 256 is the block of the "
     "second level, over the constants", lambda o, i, b, dq: _bits(o * i, 256, dq)),
    ("the first-level constants are int8 (8 bits) only with double quantisation; without it each is an fp32 "
     "(32 bits)", lambda o, i, b, dq: _bits(o * i, b, dq, plain_bits=8) if not dq else -1),
    ("with double quantisation the first-level constants are stored in 8 bits each, not 32 (only their c2 and "
     "their mean stay fp32)", lambda o, i, b, dq: [_bits(o * i, b, dq, dq_bits=32), _bits(o * i, b, False)] if dq
     else -1),
    ("a partial last block still needs its constant: the number of blocks rounds up, ⌈n / blocksize⌉",
     lambda o, i, b, dq: _bits(o * i, b, dq, floor=True)),
    ("4 bits per weight, but the codes are packed in whole bytes: an odd n takes ⌈n/2⌉ bytes, 8·⌈n/2⌉ bits",
     lambda o, i, b, dq: _bits(o * i, b, dq, codes=False)),
    ("that is bits per weight: the exercise asks for the total bits of the matrix (divide by n afterwards)",
     lambda o, i, b, dq: reference_storage_bits(o, i, b, dq) / (o * i)),
    ("counted bytes, not bits (8 bits per byte)", lambda o, i, b, dq: reference_storage_bits(o, i, b, dq) / 8),
]


def check_3(storage_bits: Callable) -> bool | None:
    """storage_bits(n_out, n_in, blocksize, double_quant) -> int, against `Linear4bit.storage_bits()`."""
    ok = check_parity(3, storage_bits, reference_storage_bits, STORAGE_CASES, STORAGE_HINTS, atol=0.0,
                      variant_atol=1e-9, describe="8·⌈n/2⌉ + 32·nb, or 8·nb + 32·⌈nb/256⌉ + 32 with double "
                                                  "quantisation (nb = ⌈n / blocksize⌉)")
    if ok:
        for dq in (False, True):
            print(f"  768 x 768 weight, double_quant={dq}: {storage_bits(768, 768, 64, dq) / 768**2:.4f} bits per "
                  f"weight")
    return ok


# ---- 4. the prediction ----------------------------------------------------------------------------------------
PREDICTION_WHY = (
    "the worst case is set by the widest gap between neighbouring code values: an entry there is rounded by half "
    "the gap (times its block's absmax). int4's 15 values are evenly spaced, 1/7 apart, so no entry moves by more "
    "than 1/14 of its block's absmax. NF4 puts its values where a normal distribution puts its mass, close together "
    "near 0, and leaves wide gaps near ±1 (1 − 0.7230 on the positive side, 1 − 0.6962 on the negative); FP4's "
    "gaps also widen with the exponent (2/3 to 1). So NF4 wins on the *average* squared error (§6) and loses on the "
    "*worst case*: the few large weights of a block are the ones it rounds most coarsely.")


def check_4(prediction: Callable[[], Any], worst_error: dict[str, float]) -> bool | None:
    """prediction() -> "nf4", "int4" or "fp4": right when it names the code with the smallest worst-case rounding
    error (`worst_error`, measured in the cell that calls this)."""
    return check_choice(4, prediction, worst_error, PREDICTION_WHY, higher_wins=False)
