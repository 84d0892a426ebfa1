"""The LoRA study (methods/lora_study.py): its equal-budget variants really have the budgets its docstring states,
bad names fail early, and one QUICK run on the random base writes the table, the JSON and the saved adapters (and
reuses its cached runs)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from methods import lora_study
from minitransformer import TransformerConfig
from minitransformer.bases.datasets import PROCESSED_DIR


def per_layer(name: str, c: TransformerConfig) -> int:
    return lora_study.variant_config(name).expected_trainable_parameters(c, "bert", None) // c.n_layers


@pytest.mark.parametrize("c", [TransformerConfig.mini_bert(), TransformerConfig.bert_base()], ids=["mini", "base"])
def test_equal_budget_variants(c):
    D = c.d_model
    assert c.d_ff == 4 * D  # the docstring's arithmetic assumes F = 4D
    for name in ("r=8", "q r=16", "q,k,v,o r=4"):
        assert per_layer(name, c) == 32 * D, name
    assert per_layer("all linear r=2", c) == 36 * D  # the nearest integer rank: 12.5 % over
    assert per_layer("r=1", c) * 8 == per_layer("r=8", c)


def test_unknown_variant_names_the_allowed_ones():
    with pytest.raises(ValueError, match="variant='r=3'; allowed: r=1, r=2"):
        lora_study.variant_config("r=3")


@pytest.mark.skipif(not (PROCESSED_DIR / "rt.train.jsonl").exists(), reason="data/processed is missing: make data")
def test_quick_run_writes_table_json_and_adapters(monkeypatch, tmp_path):
    monkeypatch.setenv("QUICK", "1")
    monkeypatch.setattr(lora_study.compare, "load_comparison",
                        lambda stem: {"methods": {"lora": {"best_lr": 1e-3}, "qlora": {"best_lr": 3e-3}}})
    monkeypatch.setattr(lora_study, "CACHE_DIR", tmp_path / "cache")
    load_task = lora_study.compare.load_task  # 64 training sentences: tokenizing all of rt is the slow part
    monkeypatch.setattr(lora_study.compare, "load_task", lambda task, tok, limit=None: load_task(task, tok, limit, 64))
    args = ["--base", "random", "--seeds", "1", "--steps", "2", "--variants", "r=64,all linear r=8",
            "--out", str(tmp_path), "--cache"]
    r = lora_study.main(args)
    assert sorted(p.name for p in tmp_path.glob("lora_study_*")) == [
        f"lora_study_rt_random_quick.{e}" for e in ("json", "md", "safetensors")]
    assert r["variants"]["r=64"]["lr"] == 1e-3 and r["variants"]["all linear r=8"]["lr"] == 3e-3
    assert json.loads((tmp_path / "lora_study_rt_random_quick.json").read_text())["variants"].keys() == {
        "r=64", "all linear r=8"}
    saved = load_file(str(tmp_path / "lora_study_rt_random_quick.safetensors"))
    assert saved["r=64/seed0/bert.layers.0.attn.q.lora_A"].shape == (64, 128)
    assert saved["r=64/seed0/bert.layers.3.attn.v.lora_B"].shape == (128, 64)
    assert not any(k.startswith("all linear") for k in saved)  # only the adapters §7 needs are kept
    again = lora_study.main(args)  # every run now comes from the cache: the same numbers, the same adapters
    assert again["variants"] == r["variants"]
    assert torch.equal(load_file(str(tmp_path / "lora_study_rt_random_quick.safetensors"))[
        "r=64/seed0/bert.layers.0.attn.q.lora_A"], saved["r=64/seed0/bert.layers.0.attn.q.lora_A"])


def test_swept_variants_choose_their_lr_on_seed0_dev(monkeypatch):
    calls = []

    def fake(name, seed, base, data, steps, batch, lr, cache):
        calls.append((name, seed, lr))
        dev = {1e-3: 0.70, 3e-3: 0.74, 1e-2: 0.72, 3e-2: 0.60}[lr]
        return {"trainable": 1, "dev_acc": dev + 0.001 * seed, "test_acc": 0.5 + lr, "ms_per_step": 1.0}, {}

    monkeypatch.setattr(lora_study, "cached_train_variant", fake)
    monkeypatch.setattr(lora_study.compare, "load_comparison", lambda stem: {"methods": {"lora": {"best_lr": 1e-2}}})
    monkeypatch.setattr(lora_study.compare, "make_classifier", lambda base, n: (None, None))
    monkeypatch.setattr(lora_study.compare, "load_task", lambda *a, **k: {})
    r, _ = lora_study.study(seeds=2, variants=["q r=16", "r=4"], quick=False)
    swept, fixed = r["variants"]["q r=16"], r["variants"]["r=4"]
    assert swept["lr"] == 3e-3 and swept["grid"] == {"0.001": 0.70, "0.003": 0.74, "0.01": 0.72, "0.03": 0.60}
    assert swept["test"]["per_seed"] == [0.503, 0.503]  # both seeds at the chosen lr; test chose nothing
    assert ("q r=16", 1, 3e-3) in calls and not any(s == 1 and lr != 3e-3 for n, s, lr in calls if n == "q r=16")
    assert fixed["lr"] == 1e-2 and fixed["grid"] == {} and "lora in results/" in fixed["lr_from"]
    assert "3e-3" not in lora_study.table(r) and "0.003: 0.740*" in lora_study.table(r)
