"""Notebook 10's checkers (AdapterFusion): the reference solutions pass, typical wrong answers fail *with the hint that
names their mistake*, untouched stubs are "not attempted yet", the package's fusion layer cannot stand in for the
student's code, the mathematically equal rewrites (V or K applied once) pass; and the checkers' references agree with
the live package."""

from __future__ import annotations

import pytest
import torch
from solutions import nb10
from solutions.contract import checker_tests, stub

from methods import AdapterFusionConfig, get_peft_model
from methods.adapter_fusion import FusionLayer, fusion_layers
from methods.api.layers import AdapterLayer
from methods.checks import nb10_adapter_fusion as checks
from minitransformer import BertForSequenceClassification, TransformerConfig
from minitransformer.teaching.exercises import mismatch

CHECKS = {1: checks.check_1, 2: checks.check_2}
SOLUTIONS = {1: nb10.fuse, 2: nb10.fusion_count}


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, nb10.WRONG)


@pytest.mark.parametrize("rewrite", [nb10.fuse_v_after_weighting, nb10.fuse_keys_folded_into_query])
def test_equal_rewrites_pass(rewrite, capsys):
    """V (Σ s_n z_n) and (Kᵀ Q h)·z_n are the same numbers, N times cheaper: not a mistake."""
    assert checks.check_1(rewrite) is True
    assert "Exercise 1: correct" in capsys.readouterr().out


def test_unknown_mistake_gets_expected_and_got(capsys):
    assert checks.check_2(lambda D, L, C, key_bias: 7) is False
    assert "expected" in capsys.readouterr().out
    assert checks.check_1(lambda h, z, *rest: 2 * h) is False
    assert "expected" in capsys.readouterr().out


def test_tripwires_are_removed_afterwards(capsys):
    saved = FusionLayer.fusion_weights, FusionLayer.apply_adapter, AdapterLayer.forward
    checks.check_1(nb10.fuse_calls_the_package)
    capsys.readouterr()
    assert (FusionLayer.fusion_weights, FusionLayer.apply_adapter, AdapterLayer.forward) == saved


@pytest.mark.parametrize("k, hints, cases, reference", [
    (1, checks.FUSE_HINTS, checks.fuse_cases(), checks.reference_fuse),
    (2, checks.COUNT_HINTS, checks.COUNT_CASES, checks.reference_fusion_count)])
def test_every_hint_is_reachable(k, hints, cases, reference):
    """Each common mistake differs from the right answer on some case (else its hint could never be printed)."""
    for message, wrong in hints:
        differs = False
        for c in cases:
            with torch.no_grad():
                want, candidates = reference(*c), wrong(*c)
            candidates = candidates if isinstance(candidates, list) else [candidates]
            differs |= any(mismatch(want, w, 1e-5) is not None for w in candidates)
        assert differs, message


def test_every_hint_is_named_before_a_later_one():
    """No wrong answer of the solutions' list is caught by an earlier hint than its own (the hints are distinct on
    the case where the answer first fails)."""
    for message, wrong in checks.FUSE_HINTS:
        for c in checks.fuse_cases():
            with torch.no_grad():
                want = checks.reference_fuse(*c)
                got = wrong(*c)
            got = got if isinstance(got, list) else [got]
            if all(mismatch(want, g, 1e-5) is None for g in got):
                continue
            # on the first case where this mistake shows, no earlier hint produces the same answer
            for earlier, other in checks.FUSE_HINTS[:checks.FUSE_HINTS.index((message, wrong))]:
                with torch.no_grad():
                    others = other(*c)
                others = others if isinstance(others, list) else [others]
                assert not any(mismatch(o, g, 1e-5) is None for o in others for g in got), (message, earlier)
            break


def test_the_cases_are_far_from_uniform_weights():
    """Q and K are drawn so that the weights differ across adapters (at the package's init they are nearly 1/N),
    the temperature varies, V is not I and b_q is not 0."""
    cases = checks.fuse_cases()
    assert {c[-1] for c in cases} == {0.5, 1.0, 2.0}
    for h, z, W_q, b_q, W_k, W_v, T in cases:
        s = torch.softmax(torch.einsum("btd,btnd->btn", h @ W_q.T + b_q, z @ W_k.T) / T, -1)
        assert (s.max(-1).values - s.min(-1).values).mean() > 0.2
        assert not torch.allclose(W_v, torch.eye(W_v.shape[0])) and torch.all(b_q != 0)


def test_the_reference_is_the_models_own_layer():
    """Reference 1 is what a fusion layer of a real wrapped model computes: its FFN output h, its frozen adapters'
    outputs z, then the fusion (with trained-looking Q, K, V)."""
    torch.manual_seed(0)
    peft = get_peft_model(BertForSequenceClassification(TransformerConfig.tiny(), 2, pooling="mean"),
                          AdapterFusionConfig(num_adapters=3, bottleneck_size=4, temperature=2.0)).eval()
    g = torch.Generator().manual_seed(1)
    for _, layer in fusion_layers(peft):
        with torch.no_grad():
            for p in (layer.fusion_query["default"].weight, layer.fusion_key["default"].weight,
                      layer.fusion_value["default"].weight, layer.fusion_query["default"].bias):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            E = layer.fusion_adapters["default"]
            E.down_weight.mul_(25)  # adapters that write outputs of a visible size (drawn with std 0.02)
            E.up_weight.mul_(25)
    for _, layer in fusion_layers(peft):
        x = torch.randn(2, 5, layer.base_layer.in_features, generator=g)
        with torch.no_grad():
            h = layer.base_layer(x)
            z = layer.fusion_adapters["default"](h)
            want = layer(x)
            got = checks.reference_fuse(h, z, layer.fusion_query["default"].weight, layer.fusion_query["default"].bias,
                                        layer.fusion_key["default"].weight, layer.fusion_value["default"].weight, 2.0)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        assert z.norm(dim=-1).mean() > 0.1  # the adapters write something (a token may find every ReLU dead)


@pytest.mark.parametrize("C", [2, 3])
def test_count_reference_is_the_live_model(C):
    cfg = TransformerConfig.tiny()
    live = get_peft_model(BertForSequenceClassification(cfg, C, pooling="mean"),
                          AdapterFusionConfig(task_type="SEQ_CLS")).get_nb_trainable_parameters()[0]
    assert live == checks.reference_fusion_count(cfg.d_model, cfg.n_layers, C, False)
    assert live == nb10.fusion_count(cfg.d_model, cfg.n_layers, C, False)


def test_counts_of_the_notebook():
    """BERT-base: the module docstring's 21,242,880 (+ the head), and AdapterHub's with the key's bias; mini-bert:
    197,120 (+ the head)."""
    assert checks.reference_fusion_count(768, 12, 2, False) == 21_242_880 + 1_538
    assert checks.reference_fusion_count(768, 12, 2, True) == 12 * (2 * (768 ** 2 + 768) + 768 ** 2) + 1_538
    assert checks.reference_fusion_count(128, 4, 2, False) == 197_120 + 258


def test_prediction_checker(capsys):
    measured = {"rt": 0.61, "sms_spam": 0.14, "trec": 0.25}
    assert checks.check_3(nb10.prediction_rt, measured) is True
    out = capsys.readouterr().out
    assert "Exercise 3: correct" in out and "preference" in out
    assert checks.check_3(lambda: "trec", measured) is False
    assert "Exercise 3: not yet — measured" in capsys.readouterr().out
    assert checks.check_3(lambda: "spam", measured) is False
    assert "answer one of" in capsys.readouterr().out
    assert checks.check_3(stub, measured) is None
    assert "not attempted yet" in capsys.readouterr().out
    assert checks.check_3(lambda: "trec", {"rt": 0.2, "sms_spam": 0.3, "trec": 0.5}) is True
    assert "routes" in capsys.readouterr().out
