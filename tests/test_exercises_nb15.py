"""Notebook 15's checkers ((IA)³): the reference solutions pass, typical wrong answers fail *with the hint that names
their mistake*, untouched stubs are "not attempted yet", the package's layer cannot stand in for the student's code;
and the checkers' references agree with the live package."""

from __future__ import annotations

import pytest
import torch
from solutions import nb15
from solutions.contract import assert_every_hint_is_reachable, checker_tests, stub

from methods import IA3Config, get_peft_model
from methods.api.layers import AdapterLayer
from methods.checks import nb15_ia3 as checks
from methods.ia3 import IA3Linear
from minitransformer import BertForSequenceClassification, TransformerConfig

CHECKS = {1: checks.check_1, 2: checks.check_2, 3: checks.check_3}
SOLUTIONS = {1: nb15.ia3_linear, 2: nb15.fold_ia3, 3: nb15.ia3_count}


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, nb15.WRONG)


def test_unknown_mistake_gets_expected_and_got(capsys):
    assert checks.check_3(lambda D, L, F, C, attn_o: 7) is False
    assert "expected" in capsys.readouterr().out


def test_tripwires_are_removed_afterwards(capsys):
    forward, fold, merge = IA3Linear.forward, IA3Linear.fold, AdapterLayer.merge
    checks.check_1(nb15.ia3_linear_calls_the_package)
    checks.check_2(nb15.fold_ia3_calls_the_package)
    capsys.readouterr()
    assert (IA3Linear.forward, IA3Linear.fold, AdapterLayer.merge) == (forward, fold, merge)


@pytest.mark.parametrize("k, hints, cases, reference", [
    (1, checks.LINEAR_HINTS, checks.ia3_cases(), checks.reference_ia3_linear),
    (2, checks.FOLD_HINTS, checks.fold_cases(), checks.reference_fold_ia3),
    (3, checks.COUNT_HINTS, checks.COUNT_CASES, checks.reference_ia3_count)])
def test_every_hint_is_reachable(k, hints, cases, reference):
    """Each common mistake differs from the right answer on some case (else its hint could never be printed)."""
    assert_every_hint_is_reachable(hints, cases, reference)


def test_the_cases_cover_both_modes_and_a_square_input_layer():
    """The cases scale outputs and inputs, with random non-zero biases and vectors far from 1, and the second is a
    square input-scaled layer (attn.o), where a swap of the modes gives a value rather than a shape error."""
    cases = checks.ia3_cases()
    assert [c[4] for c in cases[:3]] == ["output", "input", "input"]
    assert cases[1][1].shape[0] == cases[1][1].shape[1] and cases[2][1].shape[0] != cases[2][1].shape[1]
    for x, W, b, l, mode in cases:
        assert torch.all(b != 0) and (l - 1).abs().mean() > 0.1
        assert not torch.allclose(checks.reference_ia3_linear(x, W, b, l, mode), x @ W.T + b)


def test_the_references_are_the_models_own_layers_and_merge():
    """Reference 1 is what the wrapped layers of the real model compute; reference 2 is what the model's
    merge_adapter() writes into their weights."""
    peft = checks.ia3_model()
    for (name, _), (x, W, b, l, mode) in zip(checks.CASE_LAYERS, checks.ia3_cases()):
        layer = peft.base_model.get_submodule(name)
        with torch.no_grad():
            torch.testing.assert_close(checks.reference_ia3_linear(x, W, b, l, mode), layer(x), rtol=0, atol=1e-6)
    peft.merge_adapter()
    for (name, _), (_, W, b, l, mode) in zip(checks.CASE_LAYERS, checks.ia3_cases()):
        layer = peft.base_model.get_submodule(name)
        want_w, want_b = checks.reference_fold_ia3(W, b, l, mode)
        torch.testing.assert_close(layer.weight, want_w, rtol=0, atol=1e-6)
        torch.testing.assert_close(layer.bias, want_b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("attn_o", [False, True])
def test_count_reference_is_the_live_model(attn_o):
    cfg = TransformerConfig.tiny()
    config = checks.peft_like_config(task_type="SEQ_CLS") if attn_o else IA3Config(task_type="SEQ_CLS")
    live = get_peft_model(BertForSequenceClassification(cfg, 3, pooling="mean"), config).get_nb_trainable_parameters()[0]
    assert live == checks.reference_ia3_count(cfg.d_model, cfg.n_layers, cfg.d_ff, 3, attn_o)
    assert live == nb15.ia3_count(cfg.d_model, cfg.n_layers, cfg.d_ff, 3, attn_o)


def test_bert_base_counts_of_the_notebook():
    assert checks.reference_ia3_count(768, 12, 3072, 2, False) == 55_296 + 1_538
    assert checks.reference_ia3_count(768, 12, 3072, 2, True) == 64_512 + 1_538


def test_prediction_checker(capsys):
    measured = {"l_k": 0.004, "l_v": 0.012, "l_ff": 0.031}
    assert checks.check_4(nb15.prediction_ff, measured) is True
    out = capsys.readouterr().out
    assert "Exercise 4: correct" in out and "hidden unit" in out
    assert checks.check_4(lambda: "l_k", measured) is False
    assert "Exercise 4: not yet — measured" in capsys.readouterr().out
    assert checks.check_4(lambda: "k", measured) is False
    assert "answer one of" in capsys.readouterr().out
    assert checks.check_4(stub, measured) is None
    assert "not attempted yet" in capsys.readouterr().out

