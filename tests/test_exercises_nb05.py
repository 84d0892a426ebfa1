"""Notebook 05's checkers (PET): the reference solutions pass, typical wrong answers fail *with the hint that names
their mistake*, untouched stubs are "not attempted yet", the package's functions cannot stand in for the student's
code; and the checkers' references agree with the live package."""

from __future__ import annotations

import pytest
import torch
from solutions import nb05
from solutions.contract import assert_every_hint_is_reachable, checker_tests, stub

from methods import pet
from methods.checks import nb05_pet as checks
from minitransformer import BertForMaskedLM, TransformerConfig
from minitransformer.bases.tokenizer import train_wordpiece

CHECKS = {1: checks.check_1, 2: checks.check_2, 3: checks.check_3}
SOLUTIONS = {1: nb05.cloze_scores, 2: nb05.ensemble, 3: nb05.pet_trainable}


test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, nb05.WRONG)


def test_unknown_mistake_gets_expected_and_got(capsys):
    assert checks.check_3(lambda V, N, S, D, L, F: 7) is False
    assert "expected" in capsys.readouterr().out


def test_tripwires_are_removed_afterwards(capsys):
    saved = (pet.cloze_scores, pet.verbalizer_logits, pet.mask_positions, pet.ensemble_logits)
    checks.check_1(nb05.cloze_scores_calls_the_package)
    checks.check_2(nb05.ensemble_calls_the_package)
    capsys.readouterr()
    assert (pet.cloze_scores, pet.verbalizer_logits, pet.mask_positions, pet.ensemble_logits) == saved


@pytest.mark.parametrize("k, hints, cases, reference", [
    (1, checks.CLOZE_HINTS, checks.cloze_cases(), checks.reference_cloze_scores),
    (2, checks.ENSEMBLE_HINTS, checks.ensemble_cases(), checks.reference_ensemble),
    (3, checks.COUNT_HINTS, checks.COUNT_CASES, checks.reference_pet_trainable)])
def test_every_hint_is_reachable(k, hints, cases, reference):
    """Each common mistake differs from the right answer on some case (else its hint could never be printed)."""
    assert_every_hint_is_reachable(hints, cases, reference)


def test_shape_hints(capsys):
    assert checks.check_1(nb05.cloze_scores_whole_vocab) is False
    assert "all 60 logits at the mask" in capsys.readouterr().out
    assert checks.check_1(lambda lg, ids, m, lab: lg[:, :, list(lab)]) is False
    assert "kept every position" in capsys.readouterr().out


def test_the_cases_put_masks_at_different_positions_with_padding():
    for logits, ids, mask_id, label_ids in checks.cloze_cases():
        pos = (ids == mask_id).int().argmax(1)
        assert len(set(pos.tolist())) == len(pos)  # a different mask position in every row
        assert list(label_ids) != sorted(label_ids)
        assert logits.shape[:2] == ids.shape
    assert (checks.cloze_cases()[0][1] == checks.PAD).any()


def test_cloze_reference_is_the_models_verbalizer_logits():
    """Reference 1 (cloze_scores on the full logits) is what `verbalizer_logits` computes from the live model, for
    a real PVP on real text, so the student's answer is compared with the package's mechanism."""
    texts = ["a great movie , truly great", "a bad , bad film", "it was fine", "great fun and a good story"] * 3
    tok = train_wordpiece(texts, vocab_size=80)
    torch.manual_seed(0)
    model = BertForMaskedLM(TransformerConfig.tiny(vocab_size=tok.get_vocab_size())).eval()
    pvp = pet.PVP("{x} It was [MASK].", ("bad", "great"), tok, max_length=12)
    data = pvp.dataset(texts[:4], [1, 0, 0, 1])
    batch = data.collate(data.rows)
    with torch.no_grad():
        full = model(batch["input_ids"], batch["attention_mask"]).logits
        want = pet.verbalizer_logits(model, batch, pvp)
        got = checks.reference_cloze_scores(full, batch["input_ids"], pvp.mask_id, pvp.label_ids)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(nb05.cloze_scores(full, batch["input_ids"], pvp.mask_id, pvp.label_ids), want,
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", checks.COUNT_CASES[:2])
def test_count_reference_is_the_live_model(case):
    V, N, S, D, L, F = case
    assert checks.reference_pet_trainable(*case) == nb05.pet_trainable(*case)


def test_mini_bert_mlm_count():
    """The count the notebook asserts for mini-bert-mlm (V = 8,000, 512 positions, D = 128, L = 4, F = 512)."""
    assert checks.reference_pet_trainable(8000, 512, 2, 128, 4, 512) == 1_907_904


def test_prediction_checker(capsys):
    measured = {"pet": 0.61, "head": 0.57}
    assert checks.check_4(nb05.prediction_pet, measured) is True
    out = capsys.readouterr().out
    assert "Exercise 4: correct" in out and "not random" in out
    assert checks.check_4(lambda: "head", measured) is False
    assert "Exercise 4: not yet — measured" in capsys.readouterr().out
    assert checks.check_4(lambda: "PET", measured) is False
    assert "answer one of" in capsys.readouterr().out
    assert checks.check_4(stub, measured) is None
    assert "not attempted yet" in capsys.readouterr().out
