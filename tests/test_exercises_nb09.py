"""Notebook 09's checkers (bottleneck adapters): the reference solutions pass, typical wrong answers fail *with the
hint that names their mistake*, untouched stubs are "not attempted yet", the package's layers cannot stand in for the
student's code; and the checkers' references agree with the live package."""

from __future__ import annotations

import pytest
import torch
from solutions import nb09
from solutions.contract import checker_tests, stub

from methods import HoulsbyConfig, ParallelAdapterConfig, PfeifferConfig, get_peft_model
from methods.adapters import BottleneckLayer, SequentialAdapter
from methods.api.layers import AdapterLayer
from methods.checks import nb09_adapters as checks
from minitransformer import BertForSequenceClassification, TransformerConfig
from minitransformer.teaching.exercises import mismatch

CHECKS = {1: checks.check_1, 2: checks.check_2, 3: checks.check_3}
SOLUTIONS = {1: nb09.bottleneck_adapter, 2: nb09.parallel_ffn, 3: nb09.adapter_count}


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, nb09.WRONG)


def test_unknown_mistake_gets_expected_and_got(capsys):
    assert checks.check_3(lambda D, L, m, placement, layer_norms, C: 7) is False
    assert "expected" in capsys.readouterr().out


def test_tripwires_are_removed_afterwards(capsys):
    saved = (BottleneckLayer.forward, BottleneckLayer.adapter_delta, SequentialAdapter.apply_adapter,
             AdapterLayer.forward, AdapterLayer.apply_adapter)
    assert checks.check_1(nb09.bottleneck_adapter_calls_the_package) is False
    assert checks.check_2(nb09.parallel_ffn_calls_the_package) is False
    capsys.readouterr()
    assert (BottleneckLayer.forward, BottleneckLayer.adapter_delta, SequentialAdapter.apply_adapter,
            AdapterLayer.forward, AdapterLayer.apply_adapter) == saved
    assert "forward" not in vars(checks.ParallelAdapter) and "apply_adapter" not in vars(checks.ParallelAdapter)


@pytest.mark.parametrize("k, hints, cases, reference", [
    (1, checks.SEQUENTIAL_HINTS, checks.sequential_cases(), checks.reference_bottleneck_adapter),
    (2, checks.PARALLEL_HINTS, checks.parallel_cases(), checks.reference_parallel_ffn),
    (3, checks.COUNT_HINTS, checks.COUNT_CASES, checks.reference_adapter_count)])
def test_every_hint_is_reachable(k, hints, cases, reference):
    """Each common mistake differs from the right answer on some case (else its hint could never be printed)."""
    for message, wrong in hints:
        differs = False
        for c in cases:
            with torch.no_grad():
                candidates = wrong(*c)
                want = reference(*c)
            candidates = candidates if isinstance(candidates, list) else [candidates]
            differs |= any(mismatch(want, w, 1e-5) is not None for w in candidates)
        assert differs, message


def test_the_cases_are_real_random_and_cover_the_mistakes():
    """Sequential: m = D first (an untransposed weight runs there), s ≠ 1 first and last, GELU and ReLU, every bias
    non-zero; parallel: m = D first, s = 4 (He et al.) and another s; the adapters change the output."""
    cases = checks.sequential_cases()
    assert checks._square(cases[0][1]) and not checks._square(cases[1][1])
    assert cases[0][5] != 1 and cases[-1][5] != 1 and any(c[5] == 1 for c in cases)
    assert {type(c[6]).__name__ for c in cases} == {"ReLU", "GELU"}
    for h, Wd, bd, Wu, bu, s, f in cases:
        assert torch.all(bd != 0) and torch.all(bu != 0) and Wu.abs().min() > 0
        assert not torch.allclose(checks.reference_bottleneck_adapter(h, Wd, bd, Wu, bu, s, f), h)
    cases = checks.parallel_cases()
    assert checks._square(cases[0][2]) and [c[6] for c in cases] == [4.0, 4.0, 2.0]
    for x, ffn, *adapter in cases:
        with torch.no_grad():
            assert not torch.allclose(checks.reference_parallel_ffn(x, ffn, *adapter), ffn(x))


def test_the_references_are_the_models_own_layers():
    """Reference 1 applied to the frozen layer's output is what the wrapped layer of the real model computes from its
    input; reference 2 is what the model's ParallelAdapter computes."""
    g = torch.Generator().manual_seed(5)
    for i, (make, name, _) in enumerate(checks.SEQUENTIAL_CASES):
        layer = checks.adapter_model(make(), i).base_model.get_submodule(name)
        x = torch.randn(2, 3, layer.get_base_layer().in_features, generator=g)
        with torch.no_grad():
            h = layer.base_layer(x)
            want = checks.reference_bottleneck_adapter(h, *checks._tensors(layer), layer.adapter_act["default"])
            torch.testing.assert_close(want, layer(x), rtol=0, atol=1e-6)
            torch.testing.assert_close(nb09.bottleneck_adapter(h, *checks._tensors(layer), layer.adapter_act["default"]),
                                       layer(x), rtol=0, atol=1e-5)
    for i, (make, name, _) in enumerate(checks.PARALLEL_CASES):
        layer = checks.adapter_model(make(), 10 + i).base_model.get_submodule(name)
        x = torch.randn(2, 3, layer.features, generator=g)
        with torch.no_grad():
            torch.testing.assert_close(checks.reference_parallel_ffn(x, layer.base_layer, *checks._tensors(layer)),
                                       layer(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("placement, layer_norms", [("houlsby", True), ("houlsby", False), ("pfeiffer", False),
                                                     ("parallel", False)])
def test_count_reference_is_the_live_model(placement, layer_norms):
    cfg = TransformerConfig.tiny(n_layers=3)
    config = checks.placement_config(placement, 5, layer_norms)
    live = get_peft_model(BertForSequenceClassification(cfg, 3, pooling="mean"), config).get_nb_trainable_parameters()[0]
    assert live == checks.reference_adapter_count(cfg.d_model, cfg.n_layers, 5, placement, layer_norms, 3)
    assert live == nb09.adapter_count(cfg.d_model, cfg.n_layers, 5, placement, layer_norms, 3)


def test_bert_base_counts_are_the_adapters_library_figures():
    head = 768 * 2 + 2
    assert checks.reference_adapter_count(768, 12, 48, "pfeiffer", False, 2) == 894_528 + head
    assert checks.reference_adapter_count(768, 12, 48, "parallel", False, 2) == 894_528 + head
    assert checks.reference_adapter_count(768, 12, 48, "houlsby", False, 2) == 1_789_056 + head
    assert checks.reference_adapter_count(768, 12, 48, "houlsby", True, 2) == 1_789_056 + 36_864 + head
    assert checks.reference_adapter_count(128, 4, 8, "pfeiffer", False, 2) == 8_994  # mini-bert, notebook §4


def test_placement_config_rejects_layer_norms_outside_houlsby():
    assert isinstance(checks.placement_config("pfeiffer", 8), PfeifferConfig)
    assert isinstance(checks.placement_config("parallel", 8), ParallelAdapterConfig)
    assert isinstance(checks.placement_config("houlsby", 8, True), HoulsbyConfig)
    with pytest.raises(ValueError, match="Houlsby's alone"):
        checks.placement_config("pfeiffer", 8, True)
    with pytest.raises(ValueError, match="placement must be one of"):
        checks.placement_config("top", 8)


def test_prediction_checker(capsys):
    measured = {0: 0.002, 1: 0.004, 2: 0.011, 3: 0.025}
    assert checks.check_4(nb09.prediction_top, measured) is True
    out = capsys.readouterr().out
    assert "Exercise 4: correct" in out and "Fig. 6" in out
    assert checks.check_4(lambda: 0, measured) is False
    assert "Exercise 4: not yet — measured" in capsys.readouterr().out
    assert checks.check_4(lambda: "3", measured) is False
    assert "answer one of" in capsys.readouterr().out
    assert checks.check_4(stub, measured) is None
    assert "not attempted yet" in capsys.readouterr().out
    for winner in checks.BLOCKS:  # every outcome has its reason
        assert checks.PREDICTION_WHY[winner].startswith(checks.COMMON)
