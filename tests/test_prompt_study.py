"""The soft prompts' study (methods/prompt_study.py): bad parts fail early, the dates targets really are the other
format, and one QUICK run on the random base writes the table and the JSON, keeps the seeds' prompts, ensembles
them in one batch, and reuses its cached runs."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from methods import prompt_study
from minitransformer.bases.datasets import PROCESSED_DIR
from minitransformer.teaching import dates


def test_unknown_part_and_bad_seeds_name_what_is_allowed():
    with pytest.raises(ValueError, match="parts=\\['nope'\\]; allowed: init"):
        prompt_study.study(parts=["nope"])
    with pytest.raises(ValueError, match="seeds=0"):
        prompt_study.study(seeds=0, parts=["dates"])


def test_dates_targets_are_the_dotted_format_of_the_same_dates():
    iso, dotted = prompt_study.date_pairs("iso", 20, 3), prompt_study.date_pairs("dotted", 20, 3)
    assert [s for s, _ in iso] == [s for s, _ in dotted]
    for (_, a), (_, b) in zip(iso, dotted):
        d = dt.date.fromisoformat(a)
        assert b == f"{d.day:02d}.{d.month:02d}.{d.year}" == dates.FORMATS["dotted"](d)


def test_curve_is_the_mean_of_windows():
    assert prompt_study.curve([1, 3, 5, 7, 9], window=2) == [2, 6, 9]


@pytest.mark.skipif(not (PROCESSED_DIR / "rt.train.jsonl").exists(), reason="data/processed is missing: make data")
def test_quick_run_writes_table_json_prompts_and_ensemble(monkeypatch, tmp_path):
    monkeypatch.setenv("QUICK", "1")
    monkeypatch.setattr(prompt_study.compare, "load_comparison", lambda stem: {"methods": {
        m: {"best_lr": 1e-2} for m in ("prompt_tuning", "p_tuning", "prefix_tuning", "p_tuning_v2")}})
    monkeypatch.setattr(prompt_study, "CACHE_DIR", tmp_path / "cache")
    load_task = prompt_study.compare.load_task  # 64 sentences per split: tokenizing and evaluating all of rt is the slow part
    monkeypatch.setattr(prompt_study.compare, "load_task", lambda task, tok, limit=None: load_task(task, tok, 64, 64))
    args = ["--base", "random", "--seeds", "2", "--steps", "2", "--parts", "ensemble", "--out", str(tmp_path),
            "--cache"]
    r = prompt_study.main(args)
    assert sorted(p.name for p in tmp_path.glob("prompt_study_*")) == [
        f"prompt_study_rt_random_quick.{e}" for e in ("json", "md")]
    saved = tmp_path / "prompt_study" / "prompts_rt_quick"
    assert sorted(p.name for p in saved.iterdir()) == ["seed0", "seed1"]
    e = r["ensemble"]
    assert e["prompts"] == ["seed0", "seed1"] and set(e["ensemble"]) == {"dev", "test"}
    # the prompts the ensemble reads are the ones its rows trained (seed 0: the random base is drawn from the seed,
    # so only seed 0's prompt sits on the base it was trained with)
    assert e["single"]["seed0"]["test"] == pytest.approx(e["trained"]["test"]["per_seed"][0])
    assert json.loads((tmp_path / "prompt_study_rt_random_quick.json").read_text())["ensemble"] == e
    again = prompt_study.main(args)  # every run now comes from the cache: the same numbers
    assert again["ensemble"] == e
