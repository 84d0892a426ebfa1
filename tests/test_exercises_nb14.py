"""Notebook 14's checkers: the reference solutions pass, typical wrong answers fail *with the hint that names their
mistake*, untouched stubs are "not attempted yet"; and the checkers' references agree with the live package."""

from __future__ import annotations

import pytest
import torch
from solutions import nb14
from solutions.contract import checker_tests, stub
from torch import nn

from methods import qlora
from methods.checks import nb14_qlora as checks
from minitransformer.teaching.exercises import mismatch

CHECKS = {1: checks.check_1, 2: checks.check_2, 3: checks.check_3}
SOLUTIONS = {1: nb14.quantize_blocks, 2: nb14.pack_nibbles, 3: nb14.storage_bits}
WRONG = [(k, w, h) for k, pairs in nb14.WRONG.items() for w, h in pairs]
test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, WRONG)


def test_another_correct_rounding_passes_too(capsys):
    """argmin of |x − code| (the solution) and bucketize on the midpoints agree on every case: no entry sits on a
    rounding boundary."""
    assert checks.check_1(nb14.quantize_blocks_by_midpoints) is True
    assert "Exercise 1: correct" in capsys.readouterr().out


def test_tripwires_are_removed_afterwards(capsys):
    checks.check_1(nb14.quantize_blocks_calls_the_package)
    checks.check_2(nb14.pack_nibbles_calls_the_package)
    capsys.readouterr()
    packed, absmax = qlora.quantize_4bit(torch.ones(3), qlora.nf4_code())
    assert qlora.pack_4bit(torch.tensor([1, 2]))[0] == 0x12 and absmax.shape == (1,)


def test_a_name_imported_into_the_students_namespace_is_caught(capsys):
    namespace = {"quantize_4bit": qlora.quantize_4bit, "unpack_4bit": qlora.unpack_4bit}
    exec("def mine(w, code, blocksize):\n    p, a = quantize_4bit(w, code, blocksize)\n"
         "    return unpack_4bit(p, w.numel()), a\n", namespace)
    assert checks.check_1(namespace["mine"]) is False
    assert "your code called methods.qlora.quantize_4bit" in capsys.readouterr().out
    assert namespace["quantize_4bit"] is qlora.quantize_4bit  # restored


@pytest.mark.parametrize("hints, cases, reference", [
    (checks.QUANTIZE_HINTS, checks.quantize_cases(), checks.reference_quantize_blocks),
    (checks.PACK_HINTS, checks.pack_cases(), checks.reference_pack),
    (checks.STORAGE_HINTS, checks.STORAGE_CASES, checks.reference_storage_bits)], ids=["quantize", "pack", "bits"])
def test_every_hint_is_reachable(hints, cases, reference):
    """Each common mistake differs from the right answer on some case (else its hint could never be printed)."""
    def differs(wrong, case):
        got = wrong(*case)
        return all(mismatch(reference(*case), g, 0.0) is not None for g in (got if isinstance(got, list) else [got]))

    for message, wrong in hints:
        assert any(differs(wrong, c) for c in cases), message


def test_quantize_reference_is_what_linear4bit_stores():
    """The indices and constants the checker expects are the ones a `Linear4bit` (no double quantisation) holds."""
    torch.manual_seed(0)
    linear = nn.Linear(50, 37)
    layer = qlora.Linear4bit.from_linear(linear, double_quant=False)
    index, absmax = checks.reference_quantize_blocks(linear.weight, qlora.nf4_code(), 64)
    assert torch.equal(absmax, layer.absmax)
    assert torch.equal(qlora.pack_4bit(index), layer.qweight)
    assert torch.equal(nb14.quantize_blocks(linear.weight.detach(), qlora.nf4_code(), 64)[1], layer.absmax)


def test_quantize_cases_are_away_from_the_boundaries():
    for w, code, blocksize in checks.quantize_cases():
        blocks, n = checks._blocks(w, blocksize)
        scaled = (blocks / blocks.abs().amax(1, keepdim=True).clamp_min(checks.TINY)).flatten()[:n]
        gap = (scaled[:, None] - (code[1:] + code[:-1]) / 2).abs().min()
        assert gap >= checks.MARGIN


@pytest.mark.parametrize("shape, blocksize, dq", [((768, 768), 64, True), ((37, 50), 64, False), ((5, 7), 32, True)])
def test_storage_reference_is_the_bytes_of_the_buffers(shape, blocksize, dq):
    """storage_bits() = 8 × the bytes of every buffer but the shared 16-value code table (what §5 measures)."""
    layer = qlora.Linear4bit.from_linear(nn.Linear(shape[1], shape[0]), blocksize=blocksize, double_quant=dq)
    buffer_bits = 8 * sum(b.numel() * b.element_size() for name, b in layer.named_buffers() if name != "code")
    assert checks.reference_storage_bits(*shape, blocksize, dq) == layer.storage_bits() == buffer_bits
    assert nb14.storage_bits(*shape, blocksize, dq) == buffer_bits


def test_prediction_checker(capsys):
    measured = {"nf4": 0.14, "int4": 0.071, "fp4": 0.167}
    assert checks.check_4(nb14.prediction_int4, measured) is True
    assert "correct" in capsys.readouterr().out
    assert checks.check_4(nb14.prediction_nf4, measured) is False
    assert "not yet — measured" in capsys.readouterr().out
    assert checks.check_4(lambda: "NF4 (4-bit NormalFloat)", measured) is False
    assert "answer one of" in capsys.readouterr().out
    assert checks.check_4(stub, measured) is None
    assert "not attempted yet" in capsys.readouterr().out


def test_the_prediction_holds_on_normal_weights():
    """What the explanation of Exercise 4 says, on normal weights: NF4 has the lowest mean squared error, int4 the
    lowest worst-case error (at most 1/14 of a block's absmax)."""
    w = torch.randn(256, 256, generator=torch.Generator().manual_seed(0)) * 0.05
    mse, worst = {}, {}
    for name in qlora.CODES:
        code = qlora.code_table(name)
        packed, absmax = qlora.quantize_4bit(w, code)
        err = w - qlora.dequantize_4bit(packed, absmax, code, w.shape)
        mse[name], worst[name] = err.pow(2).mean().item(), err.abs().max().item()
    assert min(mse, key=mse.get) == "nf4" and min(worst, key=worst.get) == "int4"
    assert worst["int4"] <= w.abs().max().item() / 14 + 1e-7
