"""The comparison job's data and base helpers (the training itself is covered by test_train / test_contract)."""

from __future__ import annotations

import pytest
import torch

from methods import compare
from minitransformer.bases.datasets import PROCESSED_DIR

if not (PROCESSED_DIR / "rt.train.jsonl").exists():
    pytest.skip("data/processed is missing: run `make data`", allow_module_level=True)


@pytest.fixture(scope="module")
def tok():
    from minitransformer.bases.tokenizer import minilm_tokenizer
    return minilm_tokenizer()


def test_labels_subset_is_seeded_and_whole_dev_test(tok):
    a = compare.load_task("rt", tok, labels=100, seed=0)
    b = compare.load_task("rt", tok, labels=100, seed=0)
    c = compare.load_task("rt", tok, labels=100, seed=1)
    full = compare.load_task("rt", tok, limit=50)
    assert len(a["train"]) == 100 and len(full["dev"]) == 50 and len(full["train"]) > 8000
    assert len(a["dev"]) == 1275  # dev and test stay whole
    rows = lambda d: [d["train"][i]["input_ids"].tolist() for i in range(len(d["train"]))]  # noqa: E731
    assert rows(a) == rows(b) and rows(a) != rows(c)


def test_bad_labels_and_base_name_the_value(tok):
    with pytest.raises(ValueError, match="labels=0"):
        compare.load_task("rt", tok, labels=0)
    with pytest.raises(ValueError, match="base='bert-large'.*mini-bert, minilm, random"):
        compare.make_classifier("bert-large", 2)


def test_random_base_is_drawn_from_the_seed():
    torch.manual_seed(5)
    a, _ = compare.make_classifier("random", 2)
    torch.manual_seed(5)
    b, _ = compare.make_classifier("random", 2)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
