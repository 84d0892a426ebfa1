"""Notebook 01's exercise checkers: True on the reference solution (tests/solutions/nb01.py), False with the
right hint on each typical wrong answer, None ("not attempted yet") on an untouched stub."""

from __future__ import annotations

import pytest
import torch
from solutions import nb01
from solutions.contract import assert_solution_passes_and_stub_is_not_attempted, assert_wrong_answer_gets_its_hint, stub

from minitransformer import MultiHeadAttention, Transformer, TransformerConfig
from minitransformer.attention import causal_bias
from minitransformer.teaching.checks import nb01_transformer as checks

CHECKS = {1: checks.check_1, 2: checks.check_2, 3: checks.check_3}
SOLUTIONS = {1: nb01.multi_head_attention, 2: nb01.causal_mask, 3: nb01.decoder_block}
MEASURED = {"train_loss": (0.01, 0.001), "exact_match": (0.95, 0.02)}  # without the mask: both lower


@pytest.mark.parametrize("k", CHECKS)
def test_solution_passes_and_stub_is_not_attempted(k, capsys):
    assert_solution_passes_and_stub_is_not_attempted(k, CHECKS[k], SOLUTIONS[k], capsys)


@pytest.mark.parametrize("k, wrong, hint", [(k, w, h) for k, pairs in nb01.WRONG.items() for w, h in pairs],
                         ids=lambda v: getattr(v, "__name__", str(v))[:30])
def test_wrong_answer_gets_its_hint(k, wrong, hint, capsys):
    assert_wrong_answer_gets_its_hint(k, CHECKS[k], wrong, hint, capsys)


def test_tripwires_are_removed_afterwards(capsys):
    checks.check_1(nb01.mha_calls_the_module)
    checks.check_2(nb01.causal_mask)
    checks.check_3(nb01.block_calls_the_block)
    capsys.readouterr()
    attn = MultiHeadAttention(TransformerConfig.tiny()).eval()
    assert attn(torch.randn(1, 3, 16))[0].shape == (1, 3, 16)
    assert causal_bias(2, 2, torch.device("cpu"), torch.float32).shape == (1, 1, 2, 2)


def test_a_name_imported_into_the_students_namespace_is_caught(capsys):
    namespace = {"causal_bias": causal_bias, "torch": torch}
    exec("def causal_mask(T, P):\n"
         "    return causal_bias(T, P + T, torch.device('cpu'), torch.float32)[0, 0] == 0\n", namespace)
    assert checks.check_2(namespace["causal_mask"]) is False
    assert "your code called causal_bias" in capsys.readouterr().out
    assert namespace["causal_bias"] is causal_bias  # restored


def test_every_attention_hint_names_a_result_different_from_the_right_one():
    """A hint that equals the right answer on the first case could never be reached (or would mislead)."""
    case = checks._attention_cases()[0]
    want = checks.reference_attention(*case)
    for message, wrong in checks.ATTENTION_HINTS:
        for candidate in wrong(*case):
            assert not torch.allclose(candidate, want, atol=1e-4, equal_nan=True), message
    block_case = checks._block_cases()[0]
    want = checks.reference_decoder_block(*block_case)
    for message, wrong in checks.BLOCK_HINTS:
        assert not torch.allclose(wrong(*block_case), want, atol=1e-4), message


def test_the_defaults_of_the_wrong_variants_are_the_package():
    for case in checks._attention_cases():
        assert torch.allclose(checks._attention_variant(*case), checks.reference_attention(*case), atol=1e-6)
    for case in checks._block_cases():
        assert torch.allclose(checks._block_variant(*case), checks.reference_decoder_block(*case), atol=1e-6)


def test_prediction(capsys):
    assert checks.check_4(nb01.predict, MEASURED) is True
    assert "Exercise 4: correct" in capsys.readouterr().out
    assert checks.check_4(stub, MEASURED) is None
    assert "not attempted yet" in capsys.readouterr().out
    assert checks.check_4(nb01.predict_loss_higher, MEASURED) is False
    assert "train_loss came out lower" in capsys.readouterr().out
    assert checks.check_4(nb01.predict_em_higher, MEASURED) is False
    assert "exact_match came out lower" in capsys.readouterr().out
    assert checks.check_4(nb01.predict_malformed, MEASURED) is False
    assert "answer with a dict" in capsys.readouterr().out
    # the checker follows the measurement, not a stored answer
    assert checks.check_4(nb01.predict_loss_higher, {"train_loss": (0.01, 0.1), "exact_match": (0.9, 0.1)}) is True
    with pytest.raises(ValueError, match="measured must be"):
        checks.check_4(nb01.predict, {"train_loss": (0.1, 0.2)})


def test_solutions_agree_with_the_model():
    assert torch.equal(nb01.causal_mask(2, 1), torch.tensor([[True, True, False], [True, True, True]]))
    model = Transformer(TransformerConfig.mini_seq2seq(dropout=0.0, attn_dropout=0.0)).eval()
    block = model.decoder.layers[0]
    x, enc = torch.randn(2, 3, 64), torch.randn(2, 5, 64)
    with torch.no_grad():
        assert torch.allclose(nb01.decoder_block(block, x, enc, None),
                              block(x, None, True, None, False, False, enc, None)[0], atol=1e-6)
