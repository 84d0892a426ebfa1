"""Reference solutions of notebook 14's exercises, and typical wrong answers (the checkers must reject each one
and name its mistake).

`WRONG[k]` lists (wrong answer, a piece of the hint its checker must print)."""

import torch
import torch.nn.functional as F


# ---- 1. blockwise absmax quantisation -------------------------------------------------------------------------
def quantize_blocks(w, code, blocksize):
    flat = w.flatten().float()
    n = flat.numel()
    blocks = F.pad(flat, (0, -n % blocksize)).view(-1, blocksize)  # (nb, blocksize), zeros after the end
    absmax = blocks.abs().amax(dim=1)  # one constant per block
    scaled = blocks / absmax.clamp_min(torch.finfo(torch.float32).tiny)[:, None]  # in [-1, 1]; 0 stays 0
    index = (scaled.flatten()[:n, None] - code).abs().argmin(dim=1)  # the nearest code value
    return index, absmax


def quantize_blocks_by_midpoints(w, code, blocksize):
    """Another right answer: the nearest value found by searching the midpoints between neighbouring values."""
    flat = w.flatten().float()
    n = flat.numel()
    blocks = torch.cat([flat, flat.new_zeros(-n % blocksize)]).view(-1, blocksize)
    absmax = blocks.abs().max(dim=1).values
    scaled = blocks / torch.where(absmax > 0, absmax, torch.ones_like(absmax))[:, None]
    return torch.bucketize(scaled.flatten()[:n], (code[1:] + code[:-1]) / 2), absmax


def quantize_blocks_signed_max(w, code, blocksize):
    flat = w.flatten().float()
    n = flat.numel()
    blocks = F.pad(flat, (0, -n % blocksize)).view(-1, blocksize)
    peak = blocks.max(dim=1).values  # the largest value, not the largest magnitude
    scaled = blocks / peak[:, None]
    return torch.bucketize(scaled.flatten()[:n], (code[1:] + code[:-1]) / 2), peak


def quantize_blocks_one_absmax(w, code, blocksize):
    a = w.abs().max()  # one constant for the whole tensor
    index = ((w.flatten() / a)[:, None] - code).abs().argmin(dim=1)
    return index, a


def quantize_blocks_evenly_spaced(w, code, blocksize):
    flat = w.flatten().float()
    n = flat.numel()
    blocks = F.pad(flat, (0, -n % blocksize)).view(-1, blocksize)
    absmax = blocks.abs().amax(dim=1)
    scaled = blocks / absmax.clamp_min(1e-30)[:, None]
    return torch.round((scaled.flatten()[:n] + 1) / 2 * 15).long(), absmax  # as if the 16 values were evenly spaced


def quantize_blocks_bucketize_on_code(w, code, blocksize):
    flat = w.flatten().float()
    n = flat.numel()
    blocks = F.pad(flat, (0, -n % blocksize)).view(-1, blocksize)
    absmax = blocks.abs().amax(dim=1)
    scaled = blocks / absmax.clamp_min(1e-30)[:, None]
    return torch.bucketize(scaled.flatten()[:n], code), absmax  # rounds up to the next code value


def quantize_blocks_no_clamp(w, code, blocksize):
    flat = w.flatten().float()
    n = flat.numel()
    blocks = F.pad(flat, (0, -n % blocksize)).view(-1, blocksize)
    absmax = blocks.abs().amax(dim=1)
    scaled = blocks / absmax[:, None]  # an all-zero block gives 0 / 0 = nan
    return (scaled.flatten()[:n, None] - code).abs().argmin(dim=1), absmax


def quantize_blocks_padded_index(w, code, blocksize):
    index, absmax = quantize_blocks(w, code, blocksize)
    return torch.cat([index, index.new_full((-w.numel() % blocksize,), 7)]), absmax  # the padding kept


def quantize_blocks_calls_the_package(w, code, blocksize):
    from methods.qlora import quantize_4bit, unpack_4bit
    packed, absmax = quantize_4bit(w, code, blocksize)
    return unpack_4bit(packed, w.numel()), absmax


# ---- 2. two 4-bit indices per byte ----------------------------------------------------------------------------
def pack_nibbles(index):
    flat = index.flatten().to(torch.uint8)
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])  # a lone last index: a 0 in the low nibble after it
    return (flat[0::2] << 4) | flat[1::2]


def pack_nibbles_swapped(index):
    flat = index.flatten().to(torch.uint8)
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return (flat[1::2] << 4) | flat[0::2]


def pack_nibbles_precedence(index):
    flat = index.flatten().long()
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return (flat[0::2] << 4 + flat[1::2]).to(torch.uint8)  # shifts by 4 + b


def pack_nibbles_int64(index):
    flat = index.flatten().long()
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return flat[0::2] * 16 + flat[1::2]  # right values, eight bytes each


def pack_nibbles_drops_odd(index):
    flat = index.flatten().to(torch.uint8)
    m = flat.numel() // 2
    return (flat[0 : 2 * m : 2] << 4) | flat[1 : 2 * m : 2]


def pack_nibbles_calls_the_package(index):
    from methods.qlora import pack_4bit
    return pack_4bit(index)


# ---- 3. the bits a 4-bit weight takes -------------------------------------------------------------------------
def storage_bits(n_out, n_in, blocksize, double_quant):
    n = n_out * n_in
    nb = -(-n // blocksize)  # the last block may be partial: it still has a constant
    codes = 8 * -(-n // 2)  # two 4-bit codes per byte
    if not double_quant:
        return codes + 32 * nb  # one fp32 absmax per block
    return codes + 8 * nb + 32 * -(-nb // 256) + 32  # int8 constants, an fp32 c2 per 256 of them, the fp32 mean


def storage_bits_no_c2(n_out, n_in, blocksize, double_quant):
    n = n_out * n_in
    nb = -(-n // blocksize)
    return 8 * -(-n // 2) + (8 * nb + 32 if double_quant else 32 * nb)


def storage_bits_block_256(n_out, n_in, blocksize, double_quant):
    return storage_bits(n_out, n_in, 256, double_quant)


def storage_bits_no_dq_distinction(n_out, n_in, blocksize, double_quant):
    return storage_bits(n_out, n_in, blocksize, False)  # the constants left in fp32 with double quantisation


def storage_bits_per_weight(n_out, n_in, blocksize, double_quant):
    return storage_bits(n_out, n_in, blocksize, double_quant) / (n_out * n_in)


# ---- 4. the prediction (checked against the measured worst-case errors) ----------------------------------------
def prediction_int4():
    return "int4"


def prediction_nf4():
    return "nf4"


WRONG = {
    1: [(quantize_blocks_signed_max, "largest *magnitude*"), (quantize_blocks_one_absmax, "one constant"),
        (quantize_blocks_evenly_spaced, "evenly spaced"), (quantize_blocks_bucketize_on_code, "neighbouring code"),
        (quantize_blocks_no_clamp, "0 / 0 = nan"), (quantize_blocks_padded_index, "padded position"),
        (quantize_blocks_calls_the_package, "your code called methods.qlora.quantize_4bit")],
    2: [(pack_nibbles_swapped, "swapped"), (pack_nibbles_precedence, "binds tighter"),
        (pack_nibbles_int64, "torch.uint8"), (pack_nibbles_drops_odd, "odd count"),
        (pack_nibbles_calls_the_package, "your code called methods.qlora.pack_4bit")],
    3: [(storage_bits_no_c2, "second-level"), (storage_bits_block_256, "used 256 for the first level"),
        (storage_bits_no_dq_distinction, "8 bits each, not 32"), (storage_bits_per_weight, "bits per weight")],
}
