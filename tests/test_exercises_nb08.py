"""Notebook 08's checkers (prefix tuning): the reference solutions pass, typical wrong answers fail *with the hint
that names their mistake*, untouched stubs are "not attempted yet", the package's own functions cannot answer for
the student; and the checkers' references agree with the live package."""

from __future__ import annotations

import torch
from solutions import nb08
from solutions.contract import assert_every_hint_is_reachable, checker_tests, stub

from methods import PrefixTuningConfig, get_peft_model
from methods.checks import nb08_prefix_tuning as nb08_checks
from minitransformer import GPTModel, TransformerConfig

CHECKS = {1: nb08_checks.check_1, 2: nb08_checks.check_2, 3: nb08_checks.check_3}
SOLUTIONS = {1: nb08.split_prefix, 2: nb08.prefix_count, 3: nb08.generation_mask}
WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, nb08.split_prefix_kv_swapped, "swapped k and v"),
    (1, nb08.split_prefix_positions_first, "heads and positions swapped"),
    (1, nb08.split_prefix_layers_inner, "wrong axis"),
    (1, nb08.split_prefix_no_heads, "forgot the head split"),
    (2, nb08.prefix_count_no_biases, "forgot the biases"),
    (2, nb08.prefix_count_LD, "L·D"),
    (2, nb08.prefix_count_no_embedding, "forgot P′"),
    (3, nb08.generation_mask_at_the_end, "after the tokens"),
    (3, nb08.generation_mask_zeros, "masked the prefix out"),
    (3, nb08.generation_mask_unchanged, "forgot the prefix"),
]

test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, WRONG)


def test_every_hint_is_reachable():
    assert_every_hint_is_reachable(nb08_checks.SPLIT_HINTS, nb08_checks._split_cases(), nb08_checks.reference_split)
    assert_every_hint_is_reachable(nb08_checks.COUNT_HINTS, nb08_checks.COUNT_CASES,
                                   nb08_checks.reference_prefix_count)
    assert_every_hint_is_reachable(nb08_checks.MASK_HINTS, nb08_checks._mask_cases(),
                                   nb08_checks.reference_generation_mask)


def test_calling_the_package_is_refused(capsys):
    def cheat_split(table, n_layers, n_heads):
        return nb08_checks.reference_split(table, n_layers, n_heads)

    def cheat_count(P, D, h, L):
        return nb08_checks.reference_prefix_count(P, D, h, L)

    def cheat_mask(attention_mask, P):
        from methods.prompt_tuning import grow_mask
        return grow_mask(attention_mask, attention_mask.size(0), P, attention_mask.device)

    assert nb08_checks.check_1(cheat_split) is False
    assert "Prefix.split" in capsys.readouterr().out
    assert nb08_checks.check_2(cheat_count) is False
    assert "expected_trainable_parameters" in capsys.readouterr().out
    assert nb08_checks.check_3(cheat_mask) is False
    assert "grow_mask" in capsys.readouterr().out


def test_references_are_the_live_package():
    c = TransformerConfig.tiny(norm_first=True, type_vocab_size=0)
    peft = get_peft_model(GPTModel(c), PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3,
                                                          encoder_hidden_size=8))
    assert peft.get_nb_trainable_parameters()[0] == nb08_checks.reference_prefix_count(3, c.d_model, 8, c.n_layers)
    assert nb08_checks.reference_prefix_count(20, 768, 512, 12) == 9_864_704  # BERT-base, the module docstring's
    module = peft.adapter_modules["default"]
    table = module.table().detach().unsqueeze(0).expand(2, -1, -1)
    for (k, v), (k2, v2) in zip(module.split(table), nb08.split_prefix(table, c.n_layers, c.n_heads)):
        assert torch.equal(k, k2) and torch.equal(v, v2)


def test_prediction_checker(capsys):
    measured = {"ISO": 0.98, "dotted": 0.0, "garbage": 0.02}
    assert nb08_checks.check_4(lambda: "ISO", measured) is True
    assert "correct" in capsys.readouterr().out
    assert nb08_checks.check_4(lambda: "dotted", measured) is False
    assert "not yet" in capsys.readouterr().out
    assert nb08_checks.check_4(stub, measured) is None
    assert nb08_checks.check_4(lambda: "iso", measured) is False
    assert "answer one of" in capsys.readouterr().out
