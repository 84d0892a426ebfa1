"""Notebook 06's checkers (prompt tuning): the reference solutions pass, typical wrong answers fail *with the hint that
names their mistake*, untouched stubs are "not attempted yet", the package's functions cannot answer for the student;
and the checkers' references agree with the live package."""

from __future__ import annotations

import torch
from solutions import nb06
from solutions.contract import assert_every_hint_is_reachable, checker_tests, stub

from methods import PromptTuningConfig, get_peft_model
from methods.checks import nb06_prompt_tuning as nb06_checks
from methods.prompt_tuning import ensemble_predict
from minitransformer import BertForSequenceClassification, TransformerConfig

CHECKS = {1: nb06_checks.check_1, 2: nb06_checks.check_2, 3: nb06_checks.check_3}
SOLUTIONS = {1: nb06.prepend_prompt, 2: nb06.text_init, 3: nb06.majority_vote}
WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, nb06.prepend_prompt_after, "after the input"),
    (1, nb06.prepend_prompt_mask_not_grown, "did not grow the mask"),
    (1, nb06.prepend_prompt_mask_zeros, "with zeros"),
    (1, nb06.prepend_prompt_rows_mixed, "mixed up the prompt's rows"),
    (1, nb06.prepend_prompt_mask_for_none, "mask None"),
    (2, nb06.text_init_not_repeated, "repeated cyclically"),
    (2, nb06.text_init_spread, "spread each id"),
    (2, nb06.text_init_zero_padded, "padded with zeros"),
    (2, nb06.text_init_not_truncated, "truncate"),
    (3, nb06.majority_vote_ties_to_largest, "largest class"),
    (3, nb06.majority_vote_counter, "order of the votes"),
    (3, nb06.majority_vote_mean, "averaged the class ids"),
]


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, WRONG)


def test_every_hint_is_reachable():
    assert_every_hint_is_reachable(nb06_checks.PREPEND_HINTS, nb06_checks._prepend_cases(),
                                   nb06_checks.reference_prepend)
    assert_every_hint_is_reachable(nb06_checks.TEXT_HINTS, nb06_checks._text_cases(),
                                   nb06_checks.reference_text_init)
    assert_every_hint_is_reachable(nb06_checks.VOTE_HINTS, nb06_checks._vote_cases(), nb06_checks.reference_vote)


def test_calling_the_package_is_refused(capsys):
    def cheat_1(prompt, embeds, mask):
        from methods.prompt_tuning import grow_mask
        return torch.cat([prompt.expand(embeds.size(0), -1, -1), embeds], 1), grow_mask(mask, embeds.size(0),
                                                                                         prompt.size(0), None)
    assert nb06_checks.check_1(cheat_1) is False
    assert "grow_mask" in capsys.readouterr().out

    def cheat_3(votes, num_classes):
        return ensemble_predict(None, ["a"], {"input_ids": votes})
    assert nb06_checks.check_3(cheat_3) is False
    assert "ensemble_predict" in capsys.readouterr().out


def test_prepend_reference_is_what_the_peft_model_feeds_the_base():
    torch.manual_seed(0)
    model = BertForSequenceClassification(TransformerConfig.tiny(), 2).eval()
    peft = get_peft_model(model, PromptTuningConfig(num_virtual_tokens=3))
    x, mask = torch.randint(5, 100, (2, 6)), torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    kw = peft.adapter_modules["default"](model, input_ids=x, attention_mask=mask)
    prompt = peft.adapter_modules["default"].prompts().detach()
    want, grown = nb06_checks.reference_prepend(prompt, model.bert.embeddings.word_embeddings(x).detach(), mask)
    assert torch.equal(kw["inputs_embeds"], want) and torch.equal(kw["attention_mask"], grown)
    assert nb06.prepend_prompt(prompt, model.bert.embeddings.word_embeddings(x).detach(), mask)[1].shape == (2, 9)


def test_vote_reference_is_a_majority_with_ties_to_the_smallest_class():
    votes = torch.tensor([[2, 1], [1, 2, ], [0, 0], [2, 2]])
    assert nb06_checks.reference_vote(votes, 3).tolist() == [1, 1, 0, 2]


def test_prediction_checker(capsys):
    measured = {"prompt": 0.52, "head": 0.71}
    assert nb06_checks.check_4(lambda: "head", measured) is True
    assert "correct" in capsys.readouterr().out
    assert nb06_checks.check_4(lambda: "prompt", measured) is False
    assert "not yet" in capsys.readouterr().out
    assert nb06_checks.check_4(stub, measured) is None
