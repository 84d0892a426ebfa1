"""PET (methods/pet.py): the PVP validates itself, the input keeps its pattern and [MASK] under truncation, the
scores are the MLM head's logits of the verbalizer tokens at the mask, one training step moves every parameter of
the MLM, the same seed gives the same run, and the report reads the sweep's JSON."""

from __future__ import annotations

import pytest
import torch

from methods import METHODS, pet
from minitransformer import BertForMaskedLM, TransformerConfig
from minitransformer.bases.tokenizer import train_wordpiece

TEXTS = ["a great movie , truly great fun", "just great", "a terrible , bad film", "it was good", "it was bad and dull",
         "the film is great", "all in all a terrible movie"] * 4


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(TEXTS, vocab_size=120)


@pytest.fixture()
def mlm(tok):
    torch.manual_seed(0)
    return BertForMaskedLM(TransformerConfig.tiny(vocab_size=tok.get_vocab_size())).eval()


def rows(n: int = 12) -> list[dict]:
    return [{"text": TEXTS[i % len(TEXTS)], "label": int("great" in TEXTS[i % len(TEXTS)] or "good" in TEXTS[i % len(TEXTS)])}
            for i in range(n)]


@pytest.mark.parametrize("kwargs, words", [
    ({"pattern": "It was [MASK]."}, ["PVP.pattern", "'It was [MASK].'", "{x}"]),
    ({"pattern": "{x} [MASK] or [MASK]"}, ["PVP.pattern", "exactly once"]),
    ({"pattern": "{x} It was good."}, ["PVP.pattern", "[MASK]"]),
    ({"pattern": "{x} {x} [MASK]"}, ["PVP.pattern"]),
    ({"verbalizer": ("terrible", "greatness")}, ["PVP.verbalizer", "'greatness'", "label 1", "one token"]),
    ({"verbalizer": ("terrible", "zebra")}, ["PVP.verbalizer", "'zebra'", "[UNK]"]),
    ({"verbalizer": ("great", "great")}, ["PVP.verbalizer", "same token"]),
    ({"verbalizer": ("great",)}, ["PVP.verbalizer", "at least 2"]),
    ({"verbalizer": "great"}, ["PVP.verbalizer"]),
    ({"max_length": 4}, ["PVP.max_length", "4"]),
])
def test_bad_pvp_raises_naming_the_field(tok, kwargs, words):
    args = {"pattern": "{x} It was [MASK].", "verbalizer": ("terrible", "great"), **kwargs}
    with pytest.raises(ValueError) as e:
        pet.PVP(tokenizer=tok, **args)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_verbalizer_words_go_through_the_normalizer(tok):
    """The tokenizer lowercases: "Great" is the token "great"."""
    assert pet.PVP("{x} It was [MASK].", ("Terrible", "Great"), tok).label_ids == \
        pet.PVP("{x} It was [MASK].", ("terrible", "great"), tok).label_ids


@pytest.mark.parametrize("pattern, mask_from_end", [("{x} It was [MASK].", 3), ("Just [MASK]! {x}", None)])
def test_truncation_cuts_x_and_keeps_the_mask(tok, pattern, mask_from_end):
    pvp = pet.PVP(pattern, ("terrible", "great"), tok, max_length=16)
    long_text = " ".join(["great fun"] * 40)
    (ids,) = pvp.encode([long_text])
    assert len(ids) == 16 and ids[0] == pvp.cls_id and ids[-1] == pvp.sep_id
    assert ids.count(pvp.mask_id) == 1
    pos = int(pet.mask_positions(torch.tensor([ids]), pvp.mask_id)[0])
    if mask_from_end is not None:  # "... it was [MASK] . [SEP]": the pattern's tail survives whole
        assert pos == 16 - mask_from_end
        assert ids[-5:-3] == tok.encode("it was", add_special_tokens=False).ids
    else:  # "[CLS] just [MASK] ! x": the mask right after "just", x cut at the end
        assert pos == 2 and ids[1] == tok.token_to_id("just")
        x_ids = tok.encode(long_text, add_special_tokens=False).ids
        assert ids[4:-1] == x_ids[:16 - 5]
    (short,) = pvp.encode(["it was good"])  # short inputs are not padded or cut
    assert len(short) == pvp.pattern_length + 3


def test_a_mask_inside_the_input_is_neutralised(tok):
    pvp = pet.PVP("{x} It was [MASK].", ("terrible", "great"), tok)
    (ids,) = pvp.encode(["a [MASK] film"])
    assert ids.count(pvp.mask_id) == 1 and pvp.unk_id in ids


def test_mask_positions_rejects_rows_without_exactly_one_mask():
    with pytest.raises(ValueError, match="row 1 has 0"):
        pet.mask_positions(torch.tensor([[2, 4, 3], [2, 5, 3]]), 4)
    with pytest.raises(ValueError, match="row 0 has 2"):
        pet.mask_positions(torch.tensor([[4, 4, 3]]), 4)


def test_verbalizer_logits_equal_gathering_by_hand(tok, mlm):
    pvp = pet.PVP("{x} It was [MASK].", ("terrible", "great"), tok, max_length=16)
    data = pvp.dataset(TEXTS[:6], [0] * 6)
    batch = data.collate(data.rows)
    with torch.no_grad():
        got = pet.verbalizer_logits(mlm, batch, pvp)  # (B, C)
        full = mlm(batch["input_ids"], batch["attention_mask"]).logits  # (B, T, V)
    assert got.shape == (6, 2)
    assert batch["attention_mask"].sum(1).unique().numel() > 1  # rows of different lengths: masks move
    for b in range(6):
        t = batch["input_ids"][b].tolist().index(pvp.mask_id)
        for c, token in enumerate(pvp.label_ids):
            assert torch.allclose(got[b, c], full[b, t, token], atol=1e-5, rtol=0)
    torch.testing.assert_close(pet.cloze_scores(full, batch["input_ids"], pvp.mask_id, pvp.label_ids), got,
                               rtol=0, atol=1e-5)
    out = pet.PETModel(mlm, pvp)(**batch)
    torch.testing.assert_close(out.logits, got)
    assert torch.isclose(out.loss, torch.nn.functional.cross_entropy(got, batch["labels"]))


def test_pet_trains_every_parameter_and_one_step_moves_them_all(tok, mlm):
    pvp = pet.PVP("{x} It was [MASK].", ("terrible", "great"), tok, max_length=16)
    train_rows = rows()
    model = pet.PETModel(mlm, pvp).train()
    data = pvp.dataset([r["text"] for r in train_rows], [r["label"] for r in train_rows])
    pet.pet_loss(model, data.collate(data.rows[:4])).backward()
    with_grad = {n for n, p in mlm.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    mlm.zero_grad(set_to_none=True)
    tuned, history = pet.fine_tune(mlm, pvp, train_rows, steps=1, lr=1e-2, seed=0, batch_size=4, progress=False)
    before, after = dict(mlm.named_parameters()), dict(tuned.mlm.named_parameters())
    total = sum(p.numel() for p in mlm.parameters())
    assert sum(p.numel() for p in tuned.parameters() if p.requires_grad) == total  # 100 % trains, nothing added
    assert set(after) == set(before)
    assert tuned.mlm.mlm_head.word_embeddings[0] is tuned.mlm.bert.embeddings.word_embeddings  # the copy stays tied
    assert "mlm_head.bias" in with_grad and "bert.embeddings.word_embeddings.weight" in with_grad
    assert len(with_grad) == len(before)  # every tensor of the MLM gets a gradient from the cloze loss
    for name in with_grad:
        assert not torch.equal(before[name], after[name]), name
    assert len(history.train_loss) == 1


def test_same_seed_same_run(tok, mlm):
    pvp = pet.PVP("Just [MASK]! {x}", ("bad", "good"), tok, max_length=16)
    data = pvp.dataset(TEXTS[:6], [0, 0, 1, 0, 1, 0])
    runs = [pet.fine_tune(mlm, pvp, rows(), steps=3, lr=1e-3, seed=1, batch_size=4, progress=False) for _ in range(2)]
    assert runs[0][1].train_loss == runs[1][1].train_loss
    torch.testing.assert_close(pet.scores_of(runs[0][0], data), pet.scores_of(runs[1][0], data), rtol=0, atol=0)
    other = pet.fine_tune(mlm, pvp, rows(), steps=3, lr=1e-3, seed=2, batch_size=4, progress=False)
    assert other[1].train_loss != runs[0][1].train_loss


def test_few_shot_rows_are_balanced_and_seeded():
    data = [{"text": str(i), "label": int(i % 3 == 0)} for i in range(300)]
    a, b, c = pet.few_shot_rows(data, 32, 0), pet.few_shot_rows(data, 32, 0), pet.few_shot_rows(data, 32, 1)
    assert a == b and a != c and len(a) == 32
    assert sum(r["label"] for r in a) == 16
    assert sum(r["label"] for r in pet.few_shot_rows(data, 33, 0)) == 16  # the remainder to label 0
    with pytest.raises(ValueError, match="k="):
        pet.few_shot_rows(data, 1, 0)


def test_ensemble_is_the_weighted_mean_of_logits():
    s = torch.randn(4, 3, 2)
    torch.testing.assert_close(pet.ensemble_logits(s, torch.ones(4)), s.mean(0))
    w = torch.tensor([1.0, 0.0, 0.0, 0.0])
    torch.testing.assert_close(pet.ensemble_logits(s, w), s[0])


def test_rt_patterns_are_valid_for_mini_bert_mlm_style_tokenizers(tok):
    assert len(pet.RT_PATTERNS) >= 5
    assert all(spec["pattern"].count("{x}") == 1 and spec["pattern"].count("[MASK]") == 1 for spec in pet.RT_PATTERNS)
    assert "pet" not in METHODS  # PET fine-tunes the whole model: not a PEFT method, not registered


def test_report_from_a_result():
    result = {"task": "rt", "base": "mini-bert-mlm", "header": "h", "ks": [32], "seeds": [0, 1],
              "majority": {"label": 1, "dev": 0.58, "test": 0.57},
              "patterns": [{"name": "a", "pattern": "{x} A [MASK].", "verbalizer": ["bad", "good"]},
                           {"name": "b", "pattern": "[MASK]: {x}", "verbalizer": ["bad", "good"]}],
              "zero_shot": {n: {"dev": 0.5, "test": 0.5, "test_predicts_label_1": 1.0} for n in "ab"},
              "lr": {"grid": [1e-3], "k": 32, "dev": {"pet": {"0.001": 0.6}, "head": {"0.001": 0.55}},
                     "pet": 1e-3, "head": 1e-3},
              "few_shot": {"a": {"32": [0.6, 0.62]}, "b": {"32": [0.5, 0.54]}},
              "head": {"32": [0.55, 0.57]},
              "ensemble": {"32": {"mean": [0.6, 0.6], "wmean": [0.61, 0.6], "weights": [[0.5, 0.5]] * 2}}}
    s = pet.summary(result)["32"]
    assert s["best_pattern"] == "a" and s["worst_pattern"] == "b"
    assert s["all"]["min"] == 0.5 and s["all"]["max"] == 0.62
    md = pet.table(result)
    assert "| 32 |" in md and "0.610 ± 0.014" in md and "`{x} A [MASK].`" in md
