"""Notebook 03's exercise checkers: True on the reference solution (tests/solutions/nb03.py), False with the
right hint on each typical wrong answer, None ("not attempted yet") on an untouched stub."""

from __future__ import annotations

import pytest
import torch
from solutions import nb03
from solutions.contract import assert_solution_passes_and_stub_is_not_attempted, assert_wrong_answer_gets_its_hint, stub

from methods import LinearProbeConfig, get_peft_model
from minitransformer import BertForSequenceClassification, TransformerConfig, core
from minitransformer.teaching.checks import nb03_finetuning as checks
from minitransformer.teaching.exercises import mismatch
from minitransformer.training.train import lr_factor

CHECKS = {2: checks.check_2, 3: checks.check_3, 4: checks.check_4, 5: checks.check_5}
SOLUTIONS = {2: nb03.mean_pool, 3: nb03.freeze_all_but_top, 4: nb03.lr_factor, 5: nb03.adamw_bytes}


@pytest.mark.parametrize("k", CHECKS)
def test_solution_passes_and_stub_is_not_attempted(k, capsys):
    assert_solution_passes_and_stub_is_not_attempted(k, CHECKS[k], SOLUTIONS[k], capsys)


@pytest.mark.parametrize("k, wrong, hint", [(k, w, h) for k, pairs in nb03.WRONG.items() for w, h in pairs],
                         ids=lambda v: getattr(v, "__name__", str(v))[:30])
def test_wrong_answer_gets_its_hint(k, wrong, hint, capsys):
    assert_wrong_answer_gets_its_hint(k, CHECKS[k], wrong, hint, capsys)


def test_a_crash_in_the_students_code_propagates_labelled(capsys):
    def broken(h, mask):
        return h @ mask  # shapes do not fit
    with pytest.raises(RuntimeError):
        checks.check_2(broken)
    assert "Exercise 2: your code raised RuntimeError" in capsys.readouterr().out


def test_tripwires_are_removed_afterwards(capsys):
    checks.check_2(nb03.mean_pool_calls_the_package)
    checks.check_4(nb03.lr_factor_calls_the_package)
    capsys.readouterr()
    h, m = torch.randn(2, 3, 4), torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert core.mean_pool(h, m).shape == (2, 4)
    assert lr_factor(0, 10, 2) == 0.5


def test_a_name_imported_into_the_students_namespace_is_caught(capsys):
    namespace = {"mean_pool": core.mean_pool}
    exec("def my_pool(h, mask):\n    return mean_pool(h, mask)\n", namespace)
    assert checks.check_2(namespace["my_pool"]) is False
    assert "your code called minitransformer.core.mean_pool" in capsys.readouterr().out
    assert namespace["mean_pool"] is core.mean_pool  # restored


def _cases_for(k):
    return {2: checks._pool_cases(), 3: checks.FREEZE_CASES, 4: checks.LR_CASES, 5: checks.MEMORY_CASES}[k]


@pytest.mark.parametrize("k, hints", [(2, checks.POOL_HINTS), (3, checks.FREEZE_HINTS), (4, checks.LR_HINTS),
                                      (5, checks.MEMORY_HINTS)])
def test_every_hint_is_reachable(k, hints):
    """Each common mistake differs from the right answer on some case (else its hint could never be printed)."""
    reference = {2: checks.reference_mean_pool, 3: checks._reference_outcome, 4: checks.reference_lr_factor,
                 5: checks.reference_adamw_bytes}[k]
    for message, wrong in hints:
        assert any(mismatch(reference(*c), wrong(*c), 1e-5) is not None for c in _cases_for(k)), message


@pytest.mark.parametrize("n_layers, k", [(4, 0), (4, 1), (4, 2), (4, 4), (2, 1)])
def test_the_freeze_reference_is_what_the_peft_api_trains(n_layers, k):
    """The exercise's rule = the notebook's runs: LinearProbeConfig with the top k layers in modules_to_save."""
    config = TransformerConfig.tiny(n_layers=n_layers)
    model = BertForSequenceClassification(config, 2, pooling="mean")
    names = checks.reference_trainable(model, k)
    expected = sum(p.numel() for n, p in model.named_parameters() if n in names)
    modules = ["classifier"] + [f"layers.{i}" for i in range(n_layers - k, n_layers)]
    peft = get_peft_model(model, LinearProbeConfig(task_type="SEQ_CLS", modules_to_save=modules))
    assert peft.get_nb_trainable_parameters()[0] == expected
    layer = sum(p.numel() for p in BertForSequenceClassification(config, 2, pooling="mean").bert.layers[0].parameters())
    assert expected == k * layer + config.d_model * 2 + 2


def test_prediction(capsys):
    head, full = 0.70, 0.75
    assert checks.check_1(nb03.predicted_share, head, 0.73, full) is True  # measured share 0.6
    assert "Exercise 1: correct" in capsys.readouterr().out
    assert checks.check_1(stub, head, 0.73, full) is None
    assert "Exercise 1: not attempted yet" in capsys.readouterr().out
    assert checks.check_1(nb03.predicted_share, head, 0.705, full) is False  # measured 0.1
    assert "does less than you expected" in capsys.readouterr().out
    assert checks.check_1(lambda: 0.1, head, 0.745, full) is False  # measured 0.9
    assert "does more than you expected" in capsys.readouterr().out
    assert checks.check_1(nb03.predicted_share_percent, head, 0.73, full) is False
    assert "not a percentage" in capsys.readouterr().out
    assert checks.check_1(nb03.predicted_share_text, head, 0.73, full) is False
    assert "answer with a number" in capsys.readouterr().out
    assert checks.check_1(nb03.predicted_share, 0.75, 0.74, 0.74) is None  # no gain to share: not checked
    assert "not checked" in capsys.readouterr().out
    with pytest.raises(ValueError, match="full=75"):
        checks.check_1(nb03.predicted_share, head, 0.73, 75)


def test_measured_share():
    assert checks.measured_share(0.70, 0.73, 0.75) == pytest.approx(0.6)
    assert checks.measured_share(0.70, 0.69, 0.75) == pytest.approx(-0.2)  # worse than the head alone
    assert checks.measured_share(0.70, 0.73, 0.70) is None
