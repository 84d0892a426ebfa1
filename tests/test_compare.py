"""The comparison job: its data and base helpers, and the protocol (lr chosen on dev, the majority floor, the JSON
schema) on stand-in runs; one QUICK smoke run trains for real. The training itself is covered by test_train."""

from __future__ import annotations

import json

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


# --- the protocol: lr chosen on dev, test read at that lr, the majority floor, the JSON schema ----------------

def fake_runs(table: dict):
    """A stand-in for `compare.run_one`: `table[(method, lr, seed)] = (dev, test)`; records every call."""
    calls = []

    def run_one(method, seed, base, data, steps, batch, lr=None, label=None):
        calls.append((method, lr, seed))
        dev, test = table[(method, lr, seed)]
        return {"method": method, "seed": seed, "base": base, "lr": lr, "train_size": 10, "history": None,
                "trainable": 7 if method != "full" else 100, "total": 100, "dev_acc": dev, "test_acc": test,
                "ms_per_step": 10.0 + seed, "peak_mem_mb": 1.0, "ckpt_bytes": 28, "infer_ms": 2.0}
    return run_one, calls


def test_lr_is_chosen_on_dev_not_test(monkeypatch):
    # lr 0.1 is best on dev, lr 0.3 would be best on test: the protocol must pick 0.1 and report 0.1's test
    table = {("bitfit", 0.1, 0): (0.80, 0.60), ("bitfit", 0.3, 0): (0.70, 0.90),
             ("bitfit", 0.1, 1): (0.82, 0.64), ("bitfit", 0.1, 2): (0.78, 0.62)}
    run_one, calls = fake_runs(table)
    monkeypatch.setattr(compare, "run_one", run_one)
    r = compare.sweep_method("bitfit", [0, 1, 2], "random", lambda s: None, 5, 4, (0.1, 0.3), "seed0")
    assert r["best_lr"] == 0.1
    assert r["test"]["mean"] == pytest.approx(0.62) and r["test"]["std"] == pytest.approx(0.02)
    assert r["dev"]["mean"] == pytest.approx(0.80)
    # seed0 selection: the grid with seed 0 only, the other seeds at the chosen lr only
    assert sorted(calls) == [("bitfit", 0.1, 0), ("bitfit", 0.1, 1), ("bitfit", 0.1, 2), ("bitfit", 0.3, 0)]
    assert r["grid"] == {"0.1": {"dev": [0.80, 0.82, 0.78]}, "0.3": {"dev": [0.70]}}


def test_selection_all_uses_mean_dev_over_seeds(monkeypatch):
    # seed 0 alone prefers 0.3; the mean over both seeds prefers 0.1; test (never read for the choice) prefers 0.3
    table = {("full", 0.1, 0): (0.70, 0.50), ("full", 0.3, 0): (0.75, 0.95),
             ("full", 0.1, 1): (0.90, 0.52), ("full", 0.3, 1): (0.60, 0.97)}
    monkeypatch.setattr(compare, "run_one", fake_runs(table)[0])
    assert compare.sweep_method("full", [0, 1], "random", lambda s: None, 5, 4, (0.1, 0.3), "all")["best_lr"] == 0.1
    assert compare.sweep_method("full", [0, 1], "random", lambda s: None, 5, 4, (0.1, 0.3), "seed0")["best_lr"] == 0.3
    with pytest.raises(ValueError, match="selection='test'.*seed0, all"):
        compare.sweep_method("full", [0], "random", lambda s: None, 5, 4, (0.1,), "test")


def test_choose_lr_tie_goes_to_the_first_in_the_grid():
    assert compare.choose_lr({0.3: [0.5], 0.1: [0.5], 1.0: [0.4]}) == 0.3


def test_majority_floor_uses_the_train_labels():
    y = {"train": [2, 2, 1, 0, 2, 1], "dev": [1, 1, 1, 2], "test": [2, 0, 0, 0, 0]}
    assert compare.majority_floor(y) == {"label": 2, "dev": 0.25, "test": 0.2}  # not dev's majority (1)
    assert compare.majority_floor({"train": [1, 0], "dev": [0], "test": [1]})["label"] == 0  # tie: smallest id


def test_majority_floor_on_rt():
    from minitransformer.bases.datasets import load_split
    y = {s: [r["label"] for r in load_split("rt", s)] for s in ("train", "dev", "test")}
    floor = compare.majority_floor(y)  # 'fresh' (1) is the larger class of rt's train split
    assert floor["label"] == 1 and floor["dev"] == y["dev"].count(1) / len(y["dev"]) and 0.55 < floor["test"] < 0.6


SCHEMA = {"header", "task", "base", "labels", "steps", "batch", "seeds", "selection", "machine", "majority", "methods"}
METHOD_SCHEMA = {"trainable", "total", "grid", "best_lr", "dev", "test", "ms_per_step", "peak_mem_mb", "ckpt_bytes",
                 "infer_ms"}


def test_schema_table_plot_and_load_comparison(monkeypatch, tmp_path):
    lrs = {m: compare.lr_grid(m) for m in ("full", "linear_probe", "bitfit")}
    table = {(m, lr, s): (0.5 + 0.1 * i + 0.01 * s, 0.4 + 0.1 * i) for m, g in lrs.items()
             for i, lr in enumerate(g) for s in range(2)}
    monkeypatch.setattr(compare, "run_one", fake_runs(table)[0])
    monkeypatch.setattr(compare, "make_classifier", lambda base, n: (None, None))
    y = {"train": [0, 1, 1], "dev": [1, 0, 0, 0], "test": [1, 1, 0, 0]}
    monkeypatch.setattr(compare, "load_task", lambda *a, **k: {"y": y, "num_labels": 2})
    r = compare.compare("rt", "random", ["bitfit"], seeds=2, labels=1000, steps=5, batch=4, quick=False)
    assert list(r["methods"]) == ["full", "linear_probe", "bitfit"]  # the reference methods always run, first
    assert r["majority"] == {"dev": 0.25, "test": 0.5}
    md = compare.write(r, tmp_path, compare.stem_of("rt", "random", 1000))
    saved = json.loads((tmp_path / "compare_rt_random_1000.json").read_text())
    assert set(saved) == SCHEMA and saved["labels"] == 1000 and saved["seeds"] == [0, 1]
    for m, entry in saved["methods"].items():
        assert set(entry) == METHOD_SCHEMA
        assert entry["best_lr"] == lrs[m][-1] and set(entry["grid"]) == {f"{lr:g}" for lr in lrs[m]}
        assert set(entry["dev"]) == set(entry["test"]) == {"mean", "std"}
        assert isinstance(entry["ckpt_bytes"], int) and isinstance(entry["trainable"], int)
    for words in ("majority class", "linear probe (AdamW)", "full fine-tuning", "seed-0 dev"):
        assert words in md
    assert (tmp_path / "compare_rt_random_1000.png").stat().st_size > 0
    assert compare.table(saved).splitlines()[4:] == md.splitlines()[4:]  # a loaded file renders the same rows
    monkeypatch.setattr(compare.datasets, "results_dir", lambda quick: tmp_path)
    assert compare.load_comparison("compare_rt_random_1000") == saved


def test_grid_names_and_candidates():
    from methods.api.registry import get_method
    assert compare.lr_grid("bitfit", "default") == (get_method("bitfit").default_lr,)
    for m in ("full", "linear_probe", "bitfit", "random_subset"):
        assert len(compare.lr_grid(m)) >= 3 and compare.lr_grid(m) == tuple(get_method(m).lr_candidates())
    with pytest.raises(ValueError, match="grid='best'.*sweep, default or from:STEM"):
        compare.lr_grid("full", "best")


def test_grid_from_a_committed_comparison_takes_its_dev_choice(monkeypatch):
    monkeypatch.setattr(compare, "load_comparison", lambda stem: {"methods": {"full": {"best_lr": 3e-4}}})
    assert compare.lr_grid("full", "from:compare_rt_mini-bert") == (3e-4,)
    with pytest.raises(ValueError, match="method 'bitfit' is not in it; it has full"):
        compare.lr_grid("bitfit", "from:compare_rt_mini-bert")


def test_quick_smoke_writes_only_under_out(monkeypatch, tmp_path):
    monkeypatch.setenv("QUICK", "1")
    r = compare.main(["--task", "trec", "--base", "random", "--methods", "full", "--steps", "2",
                      "--grid", "default", "--out", str(tmp_path)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"compare_trec_random_quick.{e}" for e in ("json", "md", "png")]  # nothing written elsewhere
    assert set(r["methods"]) == {"full", "linear_probe"} and r["seeds"] == [0]  # the probe runs as a reference
    assert "QUICK=1" in r["header"] and "default lr" in r["header"]
    assert all(0 <= m["test"]["mean"] <= 1 for m in r["methods"].values())


def test_run_cache_reuses_the_same_run_only(monkeypatch, tmp_path):
    run_one, calls = fake_runs({("bitfit", 0.1, 0): (0.8, 0.7), ("bitfit", 0.3, 0): (0.6, 0.5)})
    monkeypatch.setattr(compare, "run_one", run_one)
    data = {"ident": ["rt", None, None, None]}
    first, hit1 = compare.cached_run_one("bitfit", 0, "random", data, 5, 4, 0.1, tmp_path)
    again, hit2 = compare.cached_run_one("bitfit", 0, "random", data, 5, 4, 0.1, tmp_path)
    other, hit3 = compare.cached_run_one("bitfit", 0, "random", data, 5, 4, 0.3, tmp_path)
    assert (hit1, hit2, hit3) == (False, True, False) and len(calls) == 2
    assert again == first and other["dev_acc"] == 0.6 and "history" not in first
    compare.cached_run_one("bitfit", 0, "random", data, 5, 4, 0.1, None)  # no cache: trains again
    assert len(calls) == 3


def test_difference_and_verdict():
    from methods.compare import difference, verdict
    r = {"seeds": [0, 1, 2], "methods": {"a": {"test": {"mean": 0.80, "std": 0.01}},
                                         "b": {"test": {"mean": 0.75, "std": 0.02}}}}
    d, se = difference(r, "a", "b")
    assert d == pytest.approx(0.05) and se == pytest.approx(((0.01**2 + 0.02**2) / 3) ** 0.5)
    assert verdict(d, se) == "yes" and verdict(-d, se) == "no" and verdict(0.01, se) == "within noise"
    assert verdict(d, se, threshold=0.1) == "no" and verdict(0.02, None) == "yes (1 seed)"
    with pytest.raises(ValueError, match="'c' is not in this comparison"):
        difference(r, "a", "c")
