"""Notebook 11's checkers (AdaMix): the reference solutions pass, typical wrong answers fail *with the hint that names
their mistake*, untouched stubs are "not attempted yet", the package's functions cannot stand in for the student's
code; and the checkers' references agree with the live package."""

from __future__ import annotations

import pytest
import torch
from solutions import nb11
from solutions.contract import assert_every_hint_is_reachable, checker_tests, stub

from methods import AdaMixConfig, adamix, get_peft_model
from methods.adamix import AdaMixLayer, adamix_layers, merge_experts, set_fixed_expert
from methods.checks import nb11_adamix as checks
from minitransformer import BertForSequenceClassification, TransformerConfig

CHECKS = {1: checks.check_1, 2: checks.check_2, 3: checks.check_3}
SOLUTIONS = {1: nb11.symmetric_kl, 2: nb11.adamix_delta, 3: nb11.adamix_count}


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, nb11.WRONG)


def test_kl_by_hand_passes_too(capsys):
    assert checks.check_1(nb11.symmetric_kl_by_hand) is True
    assert "Exercise 1: correct" in capsys.readouterr().out


def test_unknown_mistake_gets_expected_and_got(capsys):
    assert checks.check_3(lambda D, L, m, M, share_up: (7, 7)) is False
    assert "expected" in capsys.readouterr().out


def test_tripwires_are_removed_afterwards(capsys):
    saved = (adamix.symmetric_kl, AdaMixLayer.adapter_delta, AdaMixLayer.expert_weights, AdaMixLayer.merge_experts,
             adamix.merge_experts)
    checks.check_1(nb11.symmetric_kl_calls_the_package)
    checks.check_2(nb11.adamix_delta_calls_the_package)
    capsys.readouterr()
    assert (adamix.symmetric_kl, AdaMixLayer.adapter_delta, AdaMixLayer.expert_weights, AdaMixLayer.merge_experts,
            adamix.merge_experts) == saved


def test_a_package_function_imported_under_another_name_is_caught(capsys):
    """The tripwires also replace the package's function where the student's globals hold it (a notebook's
    `from methods.adamix import symmetric_kl as kl`), even through the value-and-gradient wrapper."""
    namespace = {"kl": adamix.symmetric_kl}
    exec("def answer(a, b):\n    return kl(a, b)\n", namespace)
    assert checks.check_1(namespace["answer"]) is False
    assert "your code called methods.adamix.symmetric_kl" in capsys.readouterr().out
    assert namespace["kl"] is adamix.symmetric_kl


@pytest.mark.parametrize("k, hints, cases, reference", [
    (1, checks.KL_HINTS, checks.kl_cases(), checks.reference_symmetric_kl),
    (2, checks.DELTA_HINTS, checks.delta_cases(), checks.reference_delta),
    (3, checks.COUNT_HINTS, checks.COUNT_CASES, checks.reference_count)])
def test_every_hint_is_reachable(k, hints, cases, reference):
    """Each common mistake differs from the right answer on some case (else its hint could never be printed)."""
    assert_every_hint_is_reachable(hints, cases, reference)


def test_the_missing_detach_changes_the_gradient_only():
    """The hint about the detach is the only one whose value equals the right value: it must be told apart by the
    gradient, on every case."""
    for a, b in checks.kl_cases():
        want = checks.reference_symmetric_kl(a, b)
        got = checks.value_and_grads(nb11.symmetric_kl_no_detach, a, b)
        torch.testing.assert_close(got[0], want[0])
        assert not torch.allclose(got[1], want[1], atol=1e-5)


def test_kl_reference_gradient_is_half_the_difference_of_the_distributions():
    """d/da of ½[KL(p_B‖p_A) + KL(p_A‖p_B)] with the targets detached is ½ (p_A − p_B) / rows."""
    a, b = checks.kl_cases()[0]
    _, ga, gb = checks.reference_symmetric_kl(a, b)
    pa, pb = a.softmax(-1), b.softmax(-1)
    torch.testing.assert_close(ga, 0.5 * (pa - pb) / a.shape[0])
    torch.testing.assert_close(gb, 0.5 * (pb - pa) / a.shape[0])


def test_delta_cases_cover_shared_and_separate_up_projections_and_eval():
    cases = checks.delta_cases()
    shapes = {(c[1].shape[0], c[3].shape[0]) for c in cases}
    assert shapes == {(4, 1), (3, 3)}
    routes = [c[5] for c in cases]
    assert None in routes and any(r is not None and r[0] != r[1] for r in routes)
    for _, _, bd, Wu, bu, _ in cases:
        assert torch.all(bd != 0) and torch.all(bu != 0) and torch.all(Wu != 0)


def test_delta_reference_is_the_models_own_layer():
    """Reference 2 is what the wrapped layer of the real model adds: pinned to one expert (shared up projection),
    and in eval (the averaged experts), which merge_experts turns into one adapter computing the same."""
    peft = checks.adamix_model(share_up=True, num_experts=4)
    name, layer = adamix_layers(peft)[0]
    h = torch.randn(3, layer.weight.shape[0])
    Wd, bd, Wu, bu = checks._tensors(layer)
    set_fixed_expert(peft, 2)
    with torch.no_grad():
        torch.testing.assert_close(checks.reference_delta(h, Wd, bd, Wu, bu, (2, 0)), layer.adapter_delta("default", h))
        set_fixed_expert(peft, None)
        peft.eval()
        averaged = layer.adapter_delta("default", h)
        torch.testing.assert_close(checks.reference_delta(h, Wd, bd, Wu, bu, None), averaged)
        merge_experts(peft)
        assert layer.num_experts("default") == (1, 1)
        torch.testing.assert_close(layer.adapter_delta("default", h), averaged)
    torch.testing.assert_close(nb11.adamix_delta(h, Wd, bd, Wu, bu, None), averaged)


def test_delta_reference_rejects_a_route_the_layer_cannot_draw():
    h, Wd, bd, Wu, bu, _ = checks.delta_cases()[0]  # one shared up projection: j is always 0
    with pytest.raises(ValueError, match="route"):
        checks.reference_delta(h, Wd, bd, Wu, bu, (1, 1))


@pytest.mark.parametrize("share_up", [True, False])
def test_count_reference_is_the_live_model(share_up):
    cfg = TransformerConfig.tiny()
    config = AdaMixConfig(task_type="SEQ_CLS", bottleneck_size=4, share_up=share_up)
    peft = get_peft_model(BertForSequenceClassification(cfg, 3, pooling="mean"), config)
    head = cfg.d_model * 3 + 3
    trained, merged = checks.reference_count(cfg.d_model, cfg.n_layers, 4, 4, share_up)
    assert peft.get_nb_trainable_parameters()[0] == trained + head
    merge_experts(peft)
    assert peft.get_nb_trainable_parameters()[0] == merged + head
    assert nb11.adamix_count(cfg.d_model, cfg.n_layers, 4, 4, share_up) == (trained, merged)


def test_bert_base_counts_of_the_notebook():
    assert checks.reference_count(768, 12, 48, 4, True) == (2_223_360, 894_528)
    assert checks.reference_count(1024, 24, 16, 4, True)[1] == 811_392  # RoBERTa-large: the paper's 0.8M


def test_prediction_checker(capsys):
    measured = {"merged weights": 0.781, "ensemble of outputs": 0.790}
    assert checks.check_4(nb11.prediction_ensemble, measured) is True
    out = capsys.readouterr().out
    assert "Exercise 4: correct" in out and "errors partly cancel" in out
    assert checks.check_4(lambda: "merged weights", measured) is False
    assert "Exercise 4: not yet — measured" in capsys.readouterr().out
    assert checks.check_4(lambda: "merged weights", {"merged weights": 0.8, "ensemble of outputs": 0.79}) is True
    assert "model soups" in capsys.readouterr().out
    tie = {"merged weights": 0.58, "ensemble of outputs": 0.58}
    assert checks.check_4(lambda: "merged weights", tie) is True and checks.check_4(nb11.prediction_ensemble, tie)
    assert "barely differ" in capsys.readouterr().out
    assert checks.check_4(lambda: "ensemble", measured) is False
    assert "answer one of" in capsys.readouterr().out
    assert checks.check_4(stub, measured) is None
    assert "not attempted yet" in capsys.readouterr().out
