"""Notebook 04's checkers: the reference solutions pass, typical wrong answers fail *with the hint that names their
mistake*, untouched stubs are "not attempted yet"; and the checkers' references agree with the live package."""

from __future__ import annotations

import torch
from solutions import nb04
from solutions.contract import checker_tests, stub

from methods import BitFitConfig, get_peft_model
from methods.checks import nb04_bitfit
from minitransformer import BertForSequenceClassification, TransformerConfig

CHECKS = {1: nb04_bitfit.check_1, 2: nb04_bitfit.check_2, 3: nb04_bitfit.check_3, 4: nb04_bitfit.check_4}
SOLUTIONS = {1: nb04.bitfit_count, 2: nb04.bitfit_trains, 3: nb04.allocate, 4: nb04.sparse_delta_linear}
WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, nb04.bitfit_count_no_head, "forgot the head"),
    (1, nb04.bitfit_count_with_gamma, "LayerNorm weights γ"),
    (1, nb04.bitfit_count_always_pooler, "builds no pooler"),
    (2, nb04.bitfit_trains_no_head_weight, "forgot the head's weight"),
    (2, nb04.bitfit_trains_with_gamma, "LayerNorm weights γ"),
    (3, nb04.allocate_floor, "leftover entries"),
    (3, nb04.allocate_rounded, "rounding each share"),
    (4, nb04.sparse_delta_linear_no_bias, "off by the bias"),
    (4, nb04.sparse_delta_linear_column_major, "row-major"),
]


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, WRONG)


def test_unknown_mistake_gets_expected_and_got(capsys):
    assert nb04_bitfit.check_1(lambda D, L, F, C, pooling: 7) is False
    assert "expected" in capsys.readouterr().out


def test_prediction_checker(capsys):
    measured = {"biases": 0.61, "head": 0.70}
    assert nb04_bitfit.check_5(lambda: "head", measured) is True
    assert "correct" in capsys.readouterr().out
    assert nb04_bitfit.check_5(lambda: "biases", measured) is False
    assert "not yet — measured" in capsys.readouterr().out
    assert nb04_bitfit.check_5(lambda: "both", measured) is False
    assert "answer one of" in capsys.readouterr().out
    assert nb04_bitfit.check_5(stub, measured) is None
    assert "not attempted yet" in capsys.readouterr().out


def test_count_reference_is_the_live_model():
    """The checker's reference count equals the trainable count of a real wrapped model."""
    cfg = TransformerConfig.tiny()
    for pooling in ("mean", "cls"):
        peft = get_peft_model(BertForSequenceClassification(cfg, 3, pooling=pooling), BitFitConfig(task_type="SEQ_CLS"))
        live = peft.get_nb_trainable_parameters()[0]
        assert live == nb04_bitfit.reference_bitfit_count(cfg.d_model, cfg.n_layers, cfg.d_ff, 3, pooling)
        assert live == nb04.bitfit_count(cfg.d_model, cfg.n_layers, cfg.d_ff, 3, pooling)


def test_filter_reference_is_what_the_wrapped_model_trains():
    """The names the filter checker expects add up to exactly the live trainable count of the wrapped model."""
    for model in (BertForSequenceClassification(TransformerConfig.tiny(), 2, pooling="mean"),
                  BertForSequenceClassification(TransformerConfig.tiny(), 3, pooling="cls")):
        sizes = {n: p.numel() for n, p in model.named_parameters()}
        expected = nb04_bitfit.reference_trained_names(list(sizes))
        live = get_peft_model(model, BitFitConfig(task_type="SEQ_CLS")).get_nb_trainable_parameters()[0]
        assert sum(sizes[n] for n in expected) == live
        assert "classifier.weight" in expected and not any(n.endswith("norm.weight") for n in expected)


def test_sparse_delta_cases_are_nontrivial():
    """Every case moves W at its positions (δ ≠ 0) and uses the layer's bias: a lazy answer cannot pass."""
    for x, weight, bias, index, delta, out in nb04_bitfit.sparse_delta_cases():
        assert len(index) > 0 and torch.all(delta != 0) and torch.all(bias != 0)
        assert not torch.allclose(out, x @ weight.T + bias)
        assert torch.allclose(out, nb04.sparse_delta_linear(x, weight, bias, index, delta), atol=1e-5)
