"""Notebook 02's exercise checkers: each passes on its reference solution (tests/solutions/nb02.py), fails on
typical wrong answers with the hint that names the mistake, and says "not attempted yet" on a stub; and the
checkers' references agree with the package code they stand for."""

from __future__ import annotations

import math

import pytest
import torch
from solutions import nb02
from solutions.contract import assert_solution_passes_and_stub_is_not_attempted, assert_wrong_answer_gets_its_hint, stub

from minitransformer import GPTModel, TransformerConfig
from minitransformer.bases.corpus import mask_tokens
from minitransformer.core import lm_loss
from minitransformer.teaching.checks import nb02_bert_gpt as checks

CHECKS = {1: checks.check_1, 2: checks.check_2, 3: checks.check_3, 4: checks.check_4, 6: checks.check_6}
SOLUTIONS = {1: nb02.bert_mask, 2: nb02.sequence_nll, 3: nb02.kv_step, 4: nb02.top_k_filter, 6: nb02.perplexity}
WRONG = [  # (exercise, wrong answer, a phrase of the hint it must get)
    (1, nb02.bert_mask_no_specials, "special tokens"),
    (1, nb02.bert_mask_labels_from_inputs, "ORIGINAL ids"),
    (2, nb02.sequence_nll_no_shift, "forgot the label shift"),
    (2, nb02.sequence_nll_with_padding, "padding was scored"),
    (3, nb02.kv_step_position_zero, "positions not offset by the past length"),
    (3, nb02.kv_step_stale_cache, "cache was returned unchanged"),
    (3, nb02.kv_step_calls_model, "your step calls model.forward"),
    (4, nb02.top_k_filter_strict, "only k - 1 survive"),
    (4, nb02.top_k_filter_zero, "must be -inf"),
    (6, nb02.perplexity_per_batch, "averaged the batch means"),
    (6, nb02.perplexity_no_exp, "its exp"),
]


@pytest.mark.parametrize("k", CHECKS)
def test_solution_passes_and_stub_is_not_attempted(k, capsys):
    assert_solution_passes_and_stub_is_not_attempted(k, CHECKS[k], SOLUTIONS[k], capsys)


@pytest.mark.parametrize("k, wrong, hint", WRONG, ids=[w.__name__ for _, w, _ in WRONG])
def test_wrong_answer_gets_its_hint(k, wrong, hint, capsys):
    assert_wrong_answer_gets_its_hint(k, CHECKS[k], wrong, hint, capsys)


def test_a_crash_in_student_code_propagates(capsys):
    def broken(*args):
        raise KeyError("oops")
    with pytest.raises(KeyError):
        checks.check_2(broken)
    assert "Exercise 2: your code raised KeyError" in capsys.readouterr().out


# ---- 5: the prediction is judged against the measurement, not against a stored answer -------------------
MEASURED = {"repeated": {0.1: 0.8, 1.5: 0.05}, "top_k_1_equals_greedy": True}


def test_prediction_checker(capsys):
    assert checks.check_5(nb02.prediction, MEASURED) is True
    assert "Exercise 5: correct" in capsys.readouterr().out
    assert checks.check_5(nb02.prediction_wrong, MEASURED) is False
    out = capsys.readouterr().out
    assert "T < 1 widens the gaps" in out and "only the argmax keeps" in out
    assert checks.check_5(stub, MEASURED) is None
    assert "not attempted yet" in capsys.readouterr().out
    assert checks.check_5(lambda: {"repeats_more": 1.0, "top_k_1_equals_greedy": True}, MEASURED) is False
    assert "must be one of (0.1, 1.5)" in capsys.readouterr().out
    # had the measurement come out the other way, the same prediction would be marked wrong
    flipped = {"repeated": {0.1: 0.05, 1.5: 0.8}, "top_k_1_equals_greedy": True}
    assert checks.check_5(nb02.prediction, flipped) is False


@pytest.mark.parametrize("bad", [{"repeated": {0.1: 0.5}}, {"repeated": {0.1: 0.5, 2.0: 0.1}, "top_k_1_equals_greedy": True}])
def test_prediction_checker_rejects_a_malformed_measurement(bad):
    with pytest.raises(ValueError, match="measured"):
        checks.check_5(nb02.prediction, bad)


# ---- the references are the package's behaviour --------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_reference_is_mask_tokens(seed):
    """Same seeded draws in the same order (choice, action, random ids): the same (inputs, labels)."""
    V, specials = 60, [0, 1, 2, 3, 4]
    x = torch.randint(5, V, (4, 32), generator=torch.Generator().manual_seed(100 + seed))
    x[:, 0], x[:, -3:] = 2, 0
    got = mask_tokens(x, specials, 4, V, torch.Generator().manual_seed(seed), prob=0.3)
    g = torch.Generator().manual_seed(seed)
    r, u = torch.rand(x.shape, generator=g), torch.rand(x.shape, generator=g)
    rand_ids = torch.randint(max(specials) + 1, V, x.shape, generator=g)
    want = checks.reference_bert_mask(x, r, u, rand_ids, specials, 4, prob=0.3)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def _tiny_gpt(seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(TransformerConfig.tiny(norm_first=True, type_vocab_size=0, dropout=0.0, attn_dropout=0.0)).eval()


def test_sequence_nll_is_the_models_loss():
    """Summed over rows and divided by the number of targets, the per-row NLL is GPTModel's own loss."""
    model = _tiny_gpt()
    x = torch.randint(0, 100, (3, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(x)
    with torch.no_grad():
        out = model(x, labels=x)
    nll = checks.reference_sequence_nll(out.logits, x, mask)
    assert nll.shape == (3,)
    assert torch.allclose(nll.sum() / (3 * 6), out.loss, atol=1e-6)
    assert torch.allclose(nb02.sequence_nll(out.logits, x, mask), nll, atol=1e-5)
    mask[1, 5:] = 0  # padding: the same as -100 labels in lm_loss
    want = lm_loss(out.logits[1:2], x[1:2].masked_fill(mask[1:2] == 0, -100), shift=True) * 4
    assert torch.allclose(checks.reference_sequence_nll(out.logits, x, mask)[1], want, atol=1e-6)


def test_manual_kv_step_is_the_package_and_drives_generate():
    """The checker's written-out step equals the model with past_key_values, and the solution's step, looped,
    reproduces greedy `generate` token for token."""
    model = _tiny_gpt(3)
    prompt = torch.randint(0, 100, (2, 5), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model(prompt, use_cache=True)
    past, tok = out.past_key_values, out.logits[:, -1].argmax(-1)
    ref_logits, ref_past = checks.reference_kv_step(model, past, tok)
    man_logits, man_past = checks.manual_kv_step(model, past, tok)
    assert torch.allclose(ref_logits, man_logits, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for ra, ma in zip(ref_past, man_past) for a, b in zip(ra, ma))
    ids = [tok]
    with torch.no_grad():
        for _ in range(6):
            logits, past = nb02.kv_step(model, past, ids[-1])
            ids.append(logits.argmax(-1))
    assert torch.equal(torch.cat([prompt, torch.stack(ids, 1)], 1), model.generate(prompt, 7, eos_token_id=-1))


def test_student_copy_refuses_the_forwards_but_keeps_the_sublayers():
    model = _tiny_gpt()
    m = checks.student_copy(model)
    x = torch.randint(0, 100, (1, 3))
    for call in (lambda: m(x), lambda: m.layers[0](torch.zeros(1, 3, 16)), lambda: m.embeddings(x),
                 lambda: m.layers[1].attn(torch.zeros(1, 3, 16)), lambda: m.lm_head(torch.zeros(1, 16))):
        with pytest.raises(checks.Forbidden):
            call()
    assert m.layers[0].ffn(torch.zeros(1, 3, 16)).shape == (1, 3, 16)
    assert torch.equal(model(x).logits, model(x).logits)  # the original model is untouched


@pytest.mark.parametrize("k", [1, 5, 50])
def test_top_k_reference_is_what_generate_samples_from(k):
    """One sampled step of generate(top_k=k) equals a multinomial draw from softmax(filtered logits)."""
    torch.manual_seed(0)
    model = GPTModel(TransformerConfig.tiny(norm_first=True, type_vocab_size=0, dropout=0.0, attn_dropout=0.0)).eval()
    x = torch.randint(0, 100, (3, 5))
    got = model.generate(x, 1, do_sample=True, top_k=k, generator=torch.Generator().manual_seed(7))[:, -1]
    with torch.no_grad():
        logits = model(x).logits[:, -1]
    probs = checks.reference_top_k_filter(logits, k).softmax(-1)
    want = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(7))[:, 0]
    assert torch.equal(got, want)
    assert int((probs > 0).sum(-1).max()) <= k  # random logits: no ties, so exactly k candidates


def test_perplexity_of_a_uniform_guess():
    assert nb02.perplexity([math.log(8192)] * 3, [10, 20, 30]) == pytest.approx(8192)
