"""The soft prompts' own experiments on a small base (notebooks 06-08): prompt tuning's inits and lengths, deep
against embedding-only prompts at an equal number of virtual tokens, prefix tuning's MLP reparameterisation
against the direct table, P-tuning's encoders against a plain prompt, and a generation lesson.

    python -m methods.prompt_study [--task rt] [--base mini-bert] [--seeds 3] [--steps 300] [--parts P,...]
                                   [--cache] [--out DIR]

Learning rates (test chooses nothing): every classification run trains at the lr its method chose on dev in the
committed comparison `compare_{task}_{base}` — prompt tuning's inits and lengths at `prompt_tuning`'s, P-tuning v2
at P = 5 at `p_tuning_v2`'s, the LSTM encoder at `p_tuning`'s (the MLP encoder's), the direct prefix table at
`p_tuning_v2`'s (the same table; only v2's dropout differs) and the MLP prefix at `prefix_tuning`'s.
Each run records its training-loss curve (means over windows of 10 steps) beside dev and test accuracy.

Prompt ensembling (`ensemble`): the default prompt of each seed (n = 20, random init, its own head) is saved in
`prompt_study/prompts_{task}/seed{s}/`; the k = seeds prompts are loaded as named adapters of ONE frozen model and
their majority vote is computed in one batch of B·k rows (Lester et al. §7, Table 3, with five prompts).

The generation lesson (`dates`): the encoder-decoder of notebook 01, trained the same way (600 steps of 64 pairs,
lr 2e-3) to write dates as ISO "2021-03-03", is frozen and asked to write them as "03.03.2021" instead (the
`dotted` format). Exact match on 500 held-out dates, before and after 300 steps of prefix tuning (P = 10, the
direct table) and, for contrast, of prompt tuning (n = 10, input layer only), each at the lr of 3e-3 … 1 with
the best validation token accuracy (256 validation dates; test chooses nothing). The trained base is written beside the results (`dates_base.safetensors`) so that
notebook 08 can prefix-tune it live.

Output in `--out` (default data/results/; `make results` writes results/): `prompt_study_{task}_{base}.json` and
`.md`, and under `prompt_study/` the saved prompts and the dates base (read by notebooks 06 and 08).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from minitransformer import Transformer, TransformerConfig
from minitransformer.bases import datasets
from minitransformer.teaching import dates
from minitransformer.training.env import is_quick
from minitransformer.training.train import TrainConfig, evaluate, train

from . import compare
from . import p_tuning as p_tuning_module
from . import prefix_tuning as prefix_module
from . import prompt_tuning as prompt_module
from .api.peft_model import PeftModel, get_peft_model
from .p_tuning import PromptEncoderConfig
from .p_tuning_v2 import PTuningV2Config
from .prefix_tuning import PrefixTuningConfig
from .prompt_tuning import PromptTuningConfig, ensemble_predict

PARTS = ("init", "length", "depth", "reparam", "encoder", "ensemble", "dates")
LENGTHS = (1, 5, 20, 50)
LABEL_WORDS = {"rt": ["terrible", "great"], "trec": ["description", "entity", "abbreviation", "person", "number",
                                                      "location"], "sms_spam": ["ham", "spam"]}
INIT_TEXT = "classify the sentiment of this movie review"
CACHE_DIR = datasets.DATA_DIR / "cache" / "prompt_study"
# what a run depends on, read once at import; `lr_grid` lines are left out (a grid does not change one run)
_SOURCES = ["\n".join(line for line in inspect.getsource(m).splitlines() if "lr_grid" not in line)
            for m in (prompt_module, p_tuning_module, prefix_module)] + [inspect.getsource(inspect.getmodule(train))]


def curve(losses: list[float], window: int = 10) -> list[float]:
    return [sum(losses[i:i + window]) / len(losses[i:i + window]) for i in range(0, len(losses), window)]


def run(config, seed: int, base: str, data: dict, steps: int, batch: int, lr: float, label: str,
        save_to: Path | None = None) -> dict:
    """One training run as the comparison's (`compare.run_one`'s recipe); `save_to`: keep the trained adapter."""
    torch.manual_seed(seed)
    model, _ = compare.make_classifier(base, data["num_labels"])
    peft = get_peft_model(model, config)
    history = train(peft, data["train"], data["dev"], TrainConfig(max_steps=steps, batch_size=batch, lr=lr, seed=seed,
                                                                   eval_every=steps), desc=f"{label} lr {lr:g}")
    if save_to is not None:
        peft.save_pretrained(save_to)
    return {"trainable": peft.get_nb_trainable_parameters()[0], "dev": history.final()["eval_metric"],
            "test": evaluate(peft, data["test"], "accuracy")["accuracy"], "ms_per_step": history.ms_per_step,
            "curve": curve(history.train_loss)}


def cached(config, seed, base, data, steps, batch, lr, label, cache: Path | None, save_to: Path | None = None) -> dict:
    """`run(...)`, read from `cache` when the same run was done before (key: config, settings, data, sources) and
    its saved adapter, if one is wanted, is still there."""
    ident = [config.to_dict(), seed, base, steps, batch, repr(lr), compare.MAX_LENGTH, torch.__version__,
             torch.get_num_threads(), data.get("ident"), str(save_to), *_SOURCES]
    path = cache / f"{hashlib.sha256(json.dumps(ident, default=str).encode()).hexdigest()[:20]}.json" if cache else None
    if path is not None and path.exists() and (save_to is None or save_to.exists()):
        return json.loads(path.read_text())
    r = run(config, seed, base, data, steps, batch, lr, label, save_to)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r) + "\n")
    return r


def _stats(values: list[float]) -> dict:
    return {**compare._mean_std(values), "per_seed": values}


def summary(runs: list[dict]) -> dict:
    return {"trainable": runs[0]["trainable"], "dev": _stats([r["dev"] for r in runs]),
            "test": _stats([r["test"] for r in runs]), "curves": [r["curve"] for r in runs],
            "ms_per_step": sum(r["ms_per_step"] for r in runs) / len(runs)}


# ---- the generation lesson ---------------------------------------------------------------------------------------
def date_pairs(fmt: str, n: int, seed: int) -> list[tuple[str, str]]:
    """(source, target) pairs whose target is written in format `fmt` of `dates.FORMATS` (ISO: the original)."""
    pairs = dates.make_pairs(n, seed)
    if fmt == "iso":
        return pairs
    import datetime as dt
    return [(s, dates.FORMATS[fmt](dt.date.fromisoformat(t))) for s, t in pairs]


def exact(model, pairs: list[tuple[str, str]]) -> float:
    b = dates.collate(pairs)
    out = model.generate(b["input_ids"], max_new_tokens=12, attention_mask=b["attention_mask"])
    return sum(dates.decode(o) == t for o, (_, t) in zip(out, pairs)) / len(pairs)


def samples(model, pairs: list[tuple[str, str]], k: int = 6) -> list[list[str]]:
    b = dates.collate(pairs[:k])
    out = model.generate(b["input_ids"], max_new_tokens=12, attention_mask=b["attention_mask"])
    return [[s, t, dates.decode(o)] for o, (s, t) in zip(out, pairs[:k])]


def train_dates_base(steps: int = 600, batch: int = 64) -> Transformer:
    """Notebook 01's encoder-decoder, trained as there (ISO targets)."""
    torch.manual_seed(0)
    model = Transformer(TransformerConfig.mini_seq2seq(use_sdpa=True, dropout=0.0, attn_dropout=0.0))
    pairs = dates.make_pairs(steps * batch, seed=0)
    train(model, [dates.collate(pairs[i:i + batch]) for i in range(0, len(pairs), batch)], None,
          TrainConfig(max_steps=steps, batch_size=batch, lr=2e-3, seed=0), desc="dates base (ISO)")
    return model.eval()


def dates_targets(n_test: int = 500) -> dict:
    return {"train": date_pairs("dotted", 300 * 64, seed=10), "val": date_pairs("dotted", 256, seed=11),
            "test": date_pairs("dotted", n_test, seed=12), "iso_test": date_pairs("iso", n_test, seed=12)}


def tune_dates(base: Transformer, config, lr: float, steps: int, batch: int = 64, seed: int = 0,
               targets: dict | None = None):
    """Train a soft prompt or prefix on the frozen dates base to write the dotted format; (PeftModel, History).
    `targets`: `dates_targets()` (built here when None); its training pairs are reused in order once exhausted."""
    import copy
    torch.manual_seed(seed)
    peft = get_peft_model(copy.deepcopy(base), config)
    d = targets or dates_targets()
    n = len(d["train"]) // batch
    batches = [dates.collate(d["train"][(i % n) * batch:(i % n + 1) * batch]) for i in range(steps)]
    history = train(peft, batches, [dates.collate(d["val"])], TrainConfig(max_steps=steps, batch_size=batch, lr=lr,
                    seed=seed, eval_every=max(1, steps // 6)), desc=f"{config.peft_type} dates lr {lr:g}")
    return peft.eval(), history


DATES_CONFIGS = {  # name -> config; each trained at every lr of DATES_LRS, the one with the best validation wins
    "prefix": lambda: PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=10, prefix_projection=False),
    "prompt": lambda: PromptTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=10),
}
DATES_LRS = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)  # 0.3 and 1 added when the prefix chose 0.1, the top


def dates_part(steps: int, out: Path | None, quick: bool) -> dict:
    base = train_dates_base(60 if quick else 600)
    d = dates_targets(100 if quick else 500)
    total = sum(p.numel() for p in base.parameters())
    result = {"base_params": total, "iso_exact_match": exact(base, d["iso_test"]),
              "before": {"exact_match": exact(base, d["test"]), "samples": samples(base, d["test"])}}
    for name, make in DATES_CONFIGS.items():
        tried = {lr: tune_dates(base, make(), lr, steps, targets=d) for lr in DATES_LRS}
        val = {lr: h.final()["eval_metric"] for lr, (_, h) in tried.items()}
        lr = max(DATES_LRS, key=lambda g: (val[g], -DATES_LRS.index(g)))  # validation token accuracy; tie: first
        peft, history = tried[lr]
        with peft.disable_adapter():
            still_iso = exact(peft, d["iso_test"])
        result[name] = {"lr": lr, "val_token_acc_by_lr": {f"{g:g}": v for g, v in val.items()},
                        "trainable": peft.get_nb_trainable_parameters()[0],
                        "exact_match": exact(peft, d["test"]), "samples": samples(peft, d["test"]),
                        "curve": curve(history.train_loss), "base_still_iso": still_iso}
    if out is not None:
        (out / "prompt_study").mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in base.state_dict().items()},
                  str(out / "prompt_study" / ("dates_base_quick.safetensors" if quick else "dates_base.safetensors")))
    return result


# ---- prompt ensembling ----------------------------------------------------------------------------------------
@torch.no_grad()
def ensemble_part(base: str, data: dict, prompts_dir: Path, seed_list: list[int], batch: int) -> dict:
    """The seeds' prompts (default config, each with its own head) on ONE frozen model: each alone, and their
    majority vote computed in one batch of B·k rows (`ensemble_predict`; Lester et al. Table 3)."""
    torch.manual_seed(seed_list[0])  # the "random" base draws its weights from the seed: seed 0's base, as trained
    model, _ = compare.make_classifier(base, data["num_labels"])
    names = [f"seed{s}" for s in seed_list]
    peft = PeftModel.from_pretrained(model, prompts_dir / names[0], adapter_name=names[0])
    for n in names[1:]:
        peft.load_adapter(prompts_dir / n, adapter_name=n)
    peft.eval()
    out: dict = {"prompts": names, "single": {n: {} for n in names}, "ensemble": {}}
    for split in ("dev", "test"):
        ds = data[split]
        hits = {n: 0 for n in names} | {"ensemble": 0}
        for i in range(0, len(ds), batch):
            b = ds.collate([ds[j] for j in range(i, min(i + batch, len(ds)))])
            y = b.pop("labels")
            for n in names:
                peft.set_adapter(n)
                hits[n] += int((peft(**b).logits.argmax(-1) == y).sum())
            hits["ensemble"] += int((ensemble_predict(peft, names, b) == y).sum())
        for n in names:
            out["single"][n][split] = hits[n] / len(ds)
        out["ensemble"][split] = hits["ensemble"] / len(ds)
    return out


# ---- the study ---------------------------------------------------------------------------------------------------
def study(task: str = "rt", base: str = "mini-bert", seeds: int = 3, steps: int = 300, batch: int = 32,
          parts: list[str] | None = None, quick: bool | None = None, cache: Path | None = None,
          out: Path | None = None) -> dict:
    quick = is_quick(quick)
    parts = list(parts or PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"parts={unknown}; allowed: {', '.join(PARTS)}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds={seeds!r}; allowed: an int >= 1")
    lr_from = compare.stem_of(task, base)
    chosen = compare.load_comparison(lr_from)["methods"]
    needed = ("prompt_tuning", "p_tuning", "prefix_tuning", "p_tuning_v2")
    missing = [m for m in needed if m not in chosen]
    if missing and any(p != "dates" for p in parts):
        raise ValueError(f"results/{lr_from} has no rows for {missing} to take the lr from; run the comparison first")
    lr = {m: chosen[m]["best_lr"] for m in needed if m in chosen}
    where, start = compare.machine(), time.perf_counter()
    seed_list = list(range(seeds))
    result: dict = {"task": task, "base": base, "steps": steps, "batch": batch, "seeds": seed_list, "machine": where,
                    "lr_from": lr_from, "lr": lr}
    if any(p != "dates" for p in parts):
        _, tokenizer = compare.make_classifier(base, 2)
        limit = 256 if quick else None
        data = compare.load_task(task, tokenizer, limit=limit)
        data["ident"] = [task, limit, None, None]
        tok_name = "minilm" if base in ("mini-bert", "minilm", "random") else base

    prompts_dir = (out or datasets.results_dir(True)) / "prompt_study" / f"prompts_{task}{'_quick' if quick else ''}"

    def rows(make, lr_, label) -> dict:
        config = make()
        keep = config.to_dict() == PromptTuningConfig().to_dict()  # the default prompt: kept for the ensemble
        return summary([cached(make(), s, base, data, steps, batch, lr_, f"{label} seed {s}", cache,
                               prompts_dir / f"seed{s}" if keep else None) for s in seed_list])

    def prompt(**kw):
        return lambda: PromptTuningConfig(tokenizer_name=tok_name if kw.get("prompt_tuning_init") else None, **kw)

    if "init" in parts:
        inits = {"RANDOM": {}, "SAMPLE_VOCAB": {}, "TEXT": {"prompt_tuning_init_text": INIT_TEXT},
                 "CLASS_LABELS": {"class_labels": LABEL_WORDS[task]}}
        result["init"] = {}
        for name, extra in inits.items():
            kw = {} if name == "RANDOM" else {"prompt_tuning_init": name, **extra}
            result["init"][name] = rows(prompt(**kw), lr["prompt_tuning"], f"prompt init {name}")
    if "length" in parts:
        result["length"] = {str(n): rows(prompt(num_virtual_tokens=n), lr["prompt_tuning"], f"prompt n={n}")
                            for n in LENGTHS}
    if "depth" in parts:
        result["depth"] = {
            "input layer (prompt tuning), n = 5": rows(prompt(num_virtual_tokens=5), lr["prompt_tuning"], "prompt n=5"),
            "every layer (P-tuning v2), P = 5": rows(lambda: PTuningV2Config(num_virtual_tokens=5), lr["p_tuning_v2"],
                                                     "v2 P=5"),
            "input layer (prompt tuning), n = 20": rows(prompt(num_virtual_tokens=20), lr["prompt_tuning"],
                                                        "prompt n=20")}  # v2 at P = 20: the comparison's row
    if "reparam" in parts:
        result["reparam"] = {
            "MLP (prefix tuning)": rows(lambda: PrefixTuningConfig(), lr["prefix_tuning"], "prefix MLP"),
            "direct table": rows(lambda: PrefixTuningConfig(prefix_projection=False), lr["p_tuning_v2"],
                                 "prefix direct")}
    if "encoder" in parts:
        result["encoder"] = {
            "plain prompt (prompt tuning)": rows(prompt(num_virtual_tokens=20), lr["prompt_tuning"], "prompt n=20"),
            "MLP encoder (P-tuning)": rows(lambda: PromptEncoderConfig(), lr["p_tuning"], "p-tuning MLP"),
            "LSTM encoder (P-tuning)": rows(lambda: PromptEncoderConfig(encoder_reparameterization_type="LSTM"),
                                            lr["p_tuning"], "p-tuning LSTM")}
    if "ensemble" in parts:
        trained = rows(prompt(), lr["prompt_tuning"], "prompt n=20")  # trains (or finds) one saved prompt per seed
        result["ensemble"] = {**ensemble_part(base, data, prompts_dir, seed_list, batch), "trained": trained}
    if "dates" in parts:
        result["dates"] = dates_part(30 if quick else 300, out, quick)
    minutes = (time.perf_counter() - start) / 60
    result["header"] = (f"Task `{task}`, base `{base}`, {steps} steps x batch {batch}; learning rates from "
                        f"results/{lr_from} as the module docstring says; mean ± std over seeds "
                        f"{seed_list[0]}..{seed_list[-1]}{' (QUICK=1: dev/test cut to 256 sentences)' if quick else ''}; "
                        f"{minutes:.1f} min on {where} (cached runs count no time).")
    return result


def _ms(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f}" if s.get("std") is not None else f"{s['mean']:.3f}"


def table(result: dict) -> str:
    lines = [f"# Soft prompts: the study ({result['task']}, {result['base']})", "", result["header"], ""]
    heads = {"init": "Prompt tuning's init (n = 20)", "length": "Prompt tuning's length n (random init)",
             "depth": "Deep against input-layer prompts", "reparam": "Prefix tuning: MLP against the direct table (P = 20)",
             "encoder": "P-tuning's encoders against a plain prompt (n = 20)"}
    for part, head in heads.items():
        if part not in result:
            continue
        lines += [f"{head}:", "", "| setting | trainable | dev | test | loss at step 50 / 150 / 300 | ms/step |",
                  "|---|---:|---:|---:|---|---:|"]
        for name, r in result[part].items():
            c = [sum(cv[i] for cv in r["curves"]) / len(r["curves"]) for i in range(len(r["curves"][0]))]
            at = " / ".join(f"{c[min(len(c) - 1, k // 10 - 1)]:.3f}" for k in (50, 150, 300))
            lines.append(f"| {name} | {r['trainable']:,} | {_ms(r['dev'])} | {_ms(r['test'])} | {at} | "
                         f"{r['ms_per_step']:.0f} |")
        lines.append("")
    if "ensemble" in result:
        e = result["ensemble"]
        lines += ["Prompt ensembling: the seeds' prompts on one frozen model, majority vote in one batch:", "",
                  "| | dev | test |", "|---|---:|---:|"]
        lines += [f"| prompt {n} alone | {v['dev']:.3f} | {v['test']:.3f} |" for n, v in e["single"].items()]
        lines += [f"| ensemble of {len(e['prompts'])} | {e['ensemble']['dev']:.3f} | {e['ensemble']['test']:.3f} |", ""]
    if "dates" in result:
        d = result["dates"]
        lines += ["Generation: the frozen dates model (ISO) asked to write `dd.mm.yyyy` (500 held-out dates):", "",
                  f"The base ({d['base_params']:,} parameters) writes ISO dates with exact match {d['iso_exact_match']:.3f}"
                  f" and the dotted format with {d['before']['exact_match']:.3f}.", "",
                  "| method | trainable (% of the base) | lr | exact match, dotted | base without it, ISO |",
                  "|---|---:|---:|---:|---:|"]
        for name in DATES_CONFIGS:
            r = d[name]
            lines.append(f"| {name} | {r['trainable']:,} ({100 * r['trainable'] / d['base_params']:.2f} %) | "
                         f"{r['lr']:g} | {r['exact_match']:.3f} | {r['base_still_iso']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def stem_of(task: str, base: str, quick: bool = False) -> str:
    return f"prompt_study_{task}_{base}" + ("_quick" if quick else "")


def load_study(stem: str = "prompt_study_rt_mini-bert") -> dict:
    """The committed study (results/), as `study` returned it."""
    return json.loads((datasets.results_dir(False) / f"{stem}.json").read_text())


def main(argv: list[str] | None = None) -> dict:
    quick = is_quick()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="rt", choices=datasets.CLASSIFICATION_TASKS)
    p.add_argument("--base", default="mini-bert", choices=compare.BASES)
    p.add_argument("--seeds", type=int, default=1 if quick else 3)
    p.add_argument("--steps", type=int, default=20 if quick else 300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    p.add_argument("--cache", action="store_true", help=f"reuse finished runs from {CACHE_DIR}")
    p.add_argument("--out", type=Path, default=datasets.results_dir(True))
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    result = study(a.task, a.base, a.seeds, a.steps, a.batch, a.parts.split(","), quick,
                   CACHE_DIR if a.cache else None, a.out)
    stem = stem_of(a.task, a.base, quick)
    (a.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (a.out / f"{stem}.md").write_text(table(result) + "\n")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
