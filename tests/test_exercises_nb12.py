"""Notebook 12's checkers (LoRA): the reference solutions pass, typical wrong answers fail *with the hint that names
their mistake*, untouched stubs are "not attempted yet", the package's layer cannot answer for the student; and the
checkers' references agree with the live package."""

from __future__ import annotations

import pytest
import torch
from solutions import nb12
from solutions.contract import checker_tests, stub

from methods import LoraConfig, get_peft_model
from methods.checks import nb12_lora
from minitransformer import BertForSequenceClassification, TransformerConfig

CHECKS = {1: nb12_lora.check_1, 2: nb12_lora.check_2, 3: nb12_lora.check_3, 4: nb12_lora.check_4}
SOLUTIONS = {1: nb12.lora_forward, 2: nb12.lora_count, 3: nb12.merge_weight, 4: nb12.subspace_similarity}
WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, nb12.lora_forward_no_scaling, "forgot the scaling"),
    (1, nb12.lora_forward_no_bias, "bias"),
    (2, nb12.lora_count_full_matrices, "counted full matrices"),
    (2, nb12.lora_count_square_ffn, "not square"),
    (3, nb12.merge_weight_transposed, "transposed"),
    (3, nb12.merge_weight_unscaled, "forgot the scaling"),
    (4, nb12.subspace_similarity_unnormalised, "divide by min"),
    (4, nb12.subspace_similarity_not_squared, "square the norm"),
]


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, WRONG)


def test_calling_the_package_layer_is_refused(capsys):
    def cheat(x, weight, bias, A, B, alpha, r):
        from methods.lora import LoraLinear
        layer = LoraLinear(torch.nn.Linear(weight.shape[1], weight.shape[0]))
        layer.update_layer("default", r=r, lora_alpha=alpha)
        return layer(x)
    assert nb12_lora.check_1(cheat) is False
    assert "LoraLinear.forward" in capsys.readouterr().out


def test_count_reference_is_the_live_model():
    c = TransformerConfig.tiny()
    model = BertForSequenceClassification(c, 2, pooling="mean")
    peft = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=3, target_modules=["attn.q", "ffn.fc1"]))
    head = c.d_model * 2 + 2
    assert peft.get_nb_trainable_parameters()[0] == nb12_lora.reference_lora_count(
        c.d_model, c.n_layers, c.d_ff, 3, ("q", "fc1")) + head


def test_similarity_is_one_inside_and_zero_across():
    from methods.lora_study import subspace_similarity
    A = torch.randn(4, 16)
    assert subspace_similarity(A, torch.cat([A, torch.randn(8, 16)]), 4, 12) == pytest.approx(1.0)
    e = torch.eye(16)
    assert subspace_similarity(e[:3], e[3:9], 3, 6) == pytest.approx(0.0, abs=1e-12)


def test_prediction_checker(capsys):
    measured = {"delta_directions": 0.32, "W_directions": 21.67, "random_directions": 0.02}  # the paper's Table 7
    assert nb12_lora.check_5(lambda: "random directions", measured) is True
    assert "correct" in capsys.readouterr().out
    assert nb12_lora.check_5(lambda: "W's top directions", measured) is False
    assert "not yet" in capsys.readouterr().out
    assert nb12_lora.check_5(stub, measured) is None
