"""Notebook 13's checkers (AdaLoRA): the reference solutions pass, typical wrong answers fail *with the hint that
names their mistake*, untouched stubs are "not attempted yet"; and the checkers' references agree with the live
package."""

from __future__ import annotations

import torch
from solutions import nb13
from solutions.contract import checker_tests, stub

from methods import AdaLoraConfig, get_peft_model
from methods import adalora as adalora_module
from methods.adalora import AdaLoraLinear, budget_schedule
from methods.checks import nb13_adalora
from minitransformer import BertForSequenceClassification, TransformerConfig

CHECKS = {1: nb13_adalora.check_1, 2: nb13_adalora.check_2, 3: nb13_adalora.check_3, 4: nb13_adalora.check_4,
          5: nb13_adalora.check_5}
SOLUTIONS = {1: nb13.budget, 2: nb13.orthogonality, 3: nb13.update_importance, 4: nb13.triplet_scores,
             5: nb13.adalora_count}
WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, nb13.budget_linear, "linear instead of cubic"),
    (1, nb13.budget_not_frozen, "forgot to freeze at the end"),
    (1, nb13.budget_float, "truncate it with int()"),
    (1, nb13.budget_off_by_one, "off by one step"),
    (1, nb13.budget_with_mask, "not the (budget, mask) pair"),
    (1, nb13.budget_calls_the_package, "your code called methods.adalora.budget_schedule"),
    (2, nb13.orthogonality_squared, "squared norms"),
    (2, nb13.orthogonality_no_identity, "forgot the identity"),
    (2, nb13.orthogonality_outer_grams, "the r × r ones"),
    (3, nb13.update_importance_old_mean, "*new* average"),
    (3, nb13.update_importance_gradient_only, "not the gradient alone"),
    (3, nb13.update_importance_swapped_weights, "β weighs the past"),
    (4, nb13.triplet_scores_sensitivity_only, "forgot the uncertainty"),
    (4, nb13.triplet_scores_summed, "summed the entries"),
    (4, nb13.triplet_scores_broadcast, "flatten it"),
    (4, nb13.triplet_scores_wrong_axis, "wrong axis"),
    (5, nb13.adalora_count_target_r, "counted the pruned ranks as gone"),
    (5, nb13.adalora_count_no_lambda, "forgot λ"),
    (5, nb13.adalora_count_square_ffn, "not D × D"),
    (5, nb13.adalora_count_one_layer, "counted one layer only"),
]


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, WRONG)


def test_unknown_mistake_gets_expected_and_got(capsys):
    assert nb13_adalora.check_5(lambda D, L, F, init_r, target_r, targets: 7) is False
    assert "expected" in capsys.readouterr().out


def test_tripwire_is_removed_and_catches_an_imported_name(capsys):
    namespace = {"budget_schedule": budget_schedule}
    exec("def mine(step, b0, bT, ti, tf, T):\n    return budget_schedule(step, b0, bT, ti, tf, T, 1)[0]\n", namespace)
    assert nb13_adalora.check_1(namespace["mine"]) is False
    assert "your code called methods.adalora.budget_schedule" in capsys.readouterr().out
    assert namespace["budget_schedule"] is budget_schedule and adalora_module.budget_schedule is budget_schedule


def test_prediction_checker(capsys):
    drops = {"attention": 1.5, "ffn": 4.0}
    assert nb13_adalora.check_6(nb13.prediction_ffn, drops) is True
    assert "Exercise 6: correct" in capsys.readouterr().out
    assert nb13_adalora.check_6(nb13.prediction_attention, drops) is False
    assert "not yet — measured" in capsys.readouterr().out
    assert nb13_adalora.check_6(lambda: "both", drops) is False
    assert "answer one of" in capsys.readouterr().out
    assert nb13_adalora.check_6(stub, drops) is None
    assert "not attempted yet" in capsys.readouterr().out
    assert nb13_adalora.check_6(nb13.prediction_attention, {"attention": 0.0, "ffn": 0.0}) is True  # a tie
    assert "cost the same" in capsys.readouterr().out


def test_budget_reference_is_the_package_and_the_solution():
    for schedule in nb13_adalora.SCHEDULES:
        b0, bT, ti, tf, T = schedule
        want = [budget_schedule(t, b0, bT, ti, tf, T, 5)[0] for t in range(T + 1)]  # ΔT does not change b(t)
        assert nb13_adalora.reference_budget_trace(*schedule) == want
        assert [nb13.budget(t, *schedule) for t in range(T + 1)] == want
        assert want[0] == b0 and want[-1] == bT and len(set(want)) > 2  # the trace falls: a constant cannot pass


def test_count_reference_is_the_live_model():
    """The checker's reference count equals the trainable count of a real wrapped model, head left out."""
    cfg = TransformerConfig.tiny()
    for targets in (["attn.q", "attn.v"], nb13_adalora.KINDS, ["ffn.fc1"]):
        config = AdaLoraConfig(task_type="SEQ_CLS", init_r=4, target_r=2, target_modules=targets)
        peft = get_peft_model(BertForSequenceClassification(cfg, 3, pooling="mean"), config)
        adapter = sum(p.numel() for n, p in peft.named_parameters() if p.requires_grad and "classifier" not in n)
        assert adapter == nb13_adalora.reference_adalora_count(cfg.d_model, cfg.n_layers, cfg.d_ff, 4, 2, targets)
        assert adapter == nb13.adalora_count(cfg.d_model, cfg.n_layers, cfg.d_ff, 4, 2, targets)
    assert nb13_adalora.reference_adalora_count(768, 12, 3072, 12, 8, ["attn.q", "attn.v"]) == 442_656


def test_tensor_references_are_the_layer_methods():
    """The references read the package's own layer methods: a layer built here gives the same numbers."""
    P, Q = nb13_adalora.orthogonality_cases()[1]
    layer = AdaLoraLinear(torch.nn.Linear(Q.shape[1], P.shape[0], dtype=torch.float64))
    layer.update_layer("default", init_r=P.shape[1], lora_alpha=8.0)
    with torch.no_grad():
        layer.lora_B["default"].copy_(P)
        layer.lora_A["default"].copy_(Q)
    assert nb13_adalora.reference_orthogonality(P, Q) == float(layer.orthogonality("default").detach()) > 0
    case = nb13_adalora.score_cases()[2]
    assert nb13_adalora.reference_triplet_scores(*case).shape == (12,)
    assert torch.allclose(nb13_adalora.reference_triplet_scores(*case), nb13.triplet_scores(*case))
    ipt, unc = nb13_adalora.reference_update_importance(*nb13_adalora.importance_cases()[0])
    assert torch.all(ipt > 0) and torch.all(unc > 0)  # the first update moves both averages off zero


def test_checkers_leave_the_global_rng_alone():
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    nb13_adalora.reference_orthogonality(*nb13_adalora.orthogonality_cases()[0])
    assert torch.equal(torch.rand(3), want)
