"""The adapters' own experiments on a small base: the bottleneck-size sweep, Pfeiffer against Houlsby at an equal
budget, AdapterDrop (accuracy against the number of dropped blocks, standard and robust training, and its speed),
AdaMix (averaged experts against each expert and against one adapter of the same inference size, with and without
the consistency loss) and AdapterFusion's two stages on a target with few labels.

    python -m methods.adapter_study [--task rt] [--base mini-bert] [--seeds 3] [--steps 300] [--parts P,...]
                                    [--cache] [--out DIR]

Learning rates (test chooses nothing):
- the size sweep, AdapterDrop and the equal-budget Houlsby row train at the lr the Pfeiffer adapter chose on dev in
  the committed comparison `compare_{task}_{base}` (the Houlsby paper, too, keeps one lr across sizes); the
  equal-budget Houlsby row at the lr `houlsby` chose there;
- the AdaMix rows at the lr `adamix` chose there, with and without its consistency loss; the single GELU adapter
  (AdaMix's placement and non-linearity, one expert: the inference size of the merged AdaMix) at Pfeiffer's;
- AdapterFusion: stage 1 trains one Pfeiffer adapter per task — on `sms_spam` and `trec` with all their labels
  (seed 0, at the lr Pfeiffer chose on `rt`, and on `trec` at the lr it chose there), on the target `rt` with
  1,000 seeded labels (half the steps, 150, its lr chosen on seed-0 dev like the comparison's) — and stage 2 learns the fusion
  on the same 1,000 labels, its lr chosen on seed-0 dev over `AdapterFusionConfig.lr_grid`. Each seed draws its own
  1,000 labels (as `compare --labels 1000`) and fuses its own target adapter with the shared sms_spam and trec ones.

Speed (AdapterDrop): inference tokens/s of one batch of 32 test sentences with 0, L/2 and L blocks dropped, in
one process, alternating; training ms/step with adapters in every block and with none in the lower half
(`skip_layers`: the backward pass stops at the lowest adapter). Times are this machine's, a ratio beside each.

Output in `--out` (default data/results/; `make results` writes results/): `adapter_study_{task}_{base}.json`
and `.md`, and the stage-1 adapters of seed 0 in `fusion_adapters/` (read by notebook 10).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import shutil
import statistics
import time
from pathlib import Path

import torch

from minitransformer.bases import datasets
from minitransformer.training.env import is_quick
from minitransformer.training.train import TrainConfig, evaluate, train

from . import adamix as adamix_module
from . import adapter_fusion as fusion_module
from . import adapters as adapters_module
from . import compare
from .adamix import AdaMixConfig, adamix_layers, merge_experts, set_fixed_expert
from .adapter_fusion import AdapterFusionConfig, fusion_layers, set_recording
from .adapters import HoulsbyConfig, PfeifferConfig, adapter_drop
from .api.peft_model import get_peft_model

SIZES = (2, 4, 8, 16, 32, 64, 128)
PARTS = ("sizes", "budget", "drop", "speed", "adamix", "fusion")
FUSION_SOURCES = ("sms_spam", "trec")
FUSION_LABELS = 1000  # the target task's labels; trained for half the steps (150 at 300), as `compare --labels 1000`
CACHE_DIR = datasets.DATA_DIR / "cache" / "adapter_study"


def fit(config, seed: int, base: str, data: dict, steps: int, batch: int, lr: float, desc: str):
    """Train `config` on a fresh copy of the base (as `compare.run_one`); return (PeftModel, History)."""
    torch.manual_seed(seed)
    model, _ = compare.make_classifier(base, data["num_labels"])
    peft = get_peft_model(model, config)
    history = train(peft, data["train"], data["dev"],
                    TrainConfig(max_steps=steps, batch_size=batch, lr=lr, seed=seed, eval_every=steps), desc=desc)
    return peft, history


def accuracy(peft, data: dict) -> dict:
    return {s: evaluate(peft, data[s], "accuracy")["accuracy"] for s in ("dev", "test")}


def run_plain(config, seed, base, data, steps, batch, lr, desc) -> dict:
    peft, history = fit(config, seed, base, data, steps, batch, lr, desc)
    return {"trainable": peft.get_nb_trainable_parameters()[0], **accuracy(peft, data),
            "ms_per_step": history.ms_per_step}


def run_drop(config, seed, base, data, steps, batch, lr, desc) -> dict:
    """Accuracy with the adapters of the lowest n blocks switched off, n = 0 … L."""
    peft, _ = fit(config, seed, base, data, steps, batch, lr, desc)
    L = peft.base_model.config.n_layers
    out = {}
    for n in range(L + 1):
        with adapter_drop(peft, n):
            out[str(n)] = accuracy(peft, data)
    return {"by_n": out}


def run_adamix(config, seed, base, data, steps, batch, lr, desc) -> dict:
    """The averaged experts, each expert alone, and the merged adapter (which must equal the averaged one)."""
    peft, history = fit(config, seed, base, data, steps, batch, lr, desc)
    out = {"trainable": peft.get_nb_trainable_parameters()[0], "averaged": accuracy(peft, data),
           "ms_per_step": history.ms_per_step, "experts": []}
    for i in range(config.num_experts):
        set_fixed_expert(peft, i)
        out["experts"].append(accuracy(peft, data))
    set_fixed_expert(peft, None)
    out["infer_ms_unmerged"] = compare.inference_ms_per_batch(peft, data["test"], batch, repeats=9)
    merge_experts(peft)
    out["merged"] = accuracy(peft, data)
    out["infer_ms_merged"] = compare.inference_ms_per_batch(peft, data["test"], batch, repeats=9)
    out["trainable_merged"] = sum(p.numel() for _, layer in adamix_layers(peft) for p in layer.parameters()
                                  if p.requires_grad)
    return out


def run_stage1(config, seed, base, data, steps, batch, lr, desc, save_to: Path) -> dict:
    """A single-task Pfeiffer adapter, saved for fusion."""
    peft, history = fit(config, seed, base, data, steps, batch, lr, desc)
    if save_to.exists():
        shutil.rmtree(save_to)
    peft.save_pretrained(save_to)
    return {"trainable": peft.get_nb_trainable_parameters()[0], **accuracy(peft, data)}


def run_fusion(config, seed, base, data, steps, batch, lr, desc) -> dict:
    """Stage 2, and the mean attention over the fused adapters per block on the test sentences (real tokens)."""
    peft, history = fit(config, seed, base, data, steps, batch, lr, desc)
    out = {"trainable": peft.get_nb_trainable_parameters()[0], **accuracy(peft, data),
           "ms_per_step": history.ms_per_step}
    set_recording(peft, True)
    peft.eval()
    sums, count = None, 0
    test = data["test"]
    with torch.no_grad():
        for start in range(0, len(test), 128):
            b = test.collate([test[i] for i in range(start, min(start + 128, len(test)))])
            peft(**{k: v for k, v in b.items() if k != "labels"})
            mask = b["attention_mask"].bool()  # (B, T)
            w = torch.stack([layer.last_weights[mask] for _, layer in fusion_layers(peft)])  # (L, tokens, N)
            sums = w.sum(1) if sums is None else sums + w.sum(1)
            count += int(mask.sum())
    set_recording(peft, False)
    out["weights"] = (sums / count).tolist()  # (L, N)
    out["v_distance"] = [float((layer.fusion_value["default"].weight - torch.eye(layer.weight.shape[0])).norm())
                         for _, layer in fusion_layers(peft)]
    return out


_SOURCES = [inspect.getsource(m) for m in (adapters_module, adamix_module, fusion_module,
                                           inspect.getmodule(train))] + [
    inspect.getsource(f) for f in (fit, accuracy, run_plain, run_drop, run_adamix, run_stage1, run_fusion)]


def cached(fn, config, seed, base, data, steps, batch, lr, desc, cache: Path | None, **kw) -> dict:
    """`fn(...)`, read from `cache` when the same run was done before. The key: the config, the run's settings,
    the data, the torch version and threads, and the source of the adapter modules, the loop and this runner."""
    ident = [fn.__name__, config.to_dict(), seed, base, steps, batch, repr(lr), compare.MAX_LENGTH,
             torch.__version__, torch.get_num_threads(), data.get("ident"), [str(v) for v in kw.values()], *_SOURCES]
    key = hashlib.sha256(json.dumps(ident, default=str).encode()).hexdigest()[:20]
    path = cache / f"{key}.json" if cache is not None else None
    saved = kw.get("save_to")
    if path is not None and path.exists() and (saved is None or Path(saved).exists()):
        return json.loads(path.read_text())
    r = fn(config, seed, base, data, steps, batch, lr, desc, **kw)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r) + "\n")
    return r


def _stats(values: list[float]) -> dict:
    return {**compare._mean_std(values), "per_seed": values}


def speed(base: str, data: dict, batch: int, repeats: int = 15) -> dict:
    """AdapterDrop's speed on this machine: inference tokens/s at n = 0, L/2, L dropped blocks (alternating in one
    process), and training ms/step with adapters in every block vs none in the lower half."""
    torch.manual_seed(0)
    model, _ = compare.make_classifier(base, data["num_labels"])
    peft = get_peft_model(model, PfeifferConfig())
    peft.eval()
    L = model.config.n_layers
    test = data["test"]
    b = test.collate([test[i] for i in range(batch)])
    inputs = {k: v for k, v in b.items() if k != "labels"}
    tokens = int(b["attention_mask"].numel())
    ns = [0, L // 2, L]
    times: dict[int, list[float]] = {n: [] for n in ns}
    base_times = []
    with torch.no_grad():
        for _ in range(3):
            peft(**inputs)  # warm-up
        for _ in range(repeats):
            for n in ns:
                with adapter_drop(peft, n):
                    t = time.perf_counter()
                    peft(**inputs)
                    times[n].append(time.perf_counter() - t)
            with peft.disable_adapter():
                t = time.perf_counter()
                peft(**inputs)
                base_times.append(time.perf_counter() - t)
    infer = {str(n): tokens / statistics.median(v) for n, v in times.items()}
    infer["base"] = tokens / statistics.median(base_times)
    train_ms = {}
    steps = 40
    for skip in (0, L // 2):
        torch.manual_seed(0)
        model, _ = compare.make_classifier(base, data["num_labels"])
        p = get_peft_model(model, PfeifferConfig(skip_layers=skip))
        h = train(p, data["train"], None, TrainConfig(max_steps=steps, batch_size=batch, lr=1e-3, seed=0),
                  desc=f"speed skip_layers={skip}")
        train_ms[str(skip)] = h.ms_per_step
    return {"tokens_per_batch": tokens, "infer_tokens_per_s": infer, "train_ms_per_step": train_ms,
            "train_steps": steps, "L": L}


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
    need = {"sizes": "pfeiffer", "budget": "houlsby", "drop": "pfeiffer", "adamix": "adamix", "fusion": "pfeiffer"}
    for p in parts:
        if p in need and need[p] not in chosen:
            raise ValueError(f"results/{lr_from} has no {need[p]!r} row to take the lr from; run the comparison first")
    lr = {m: chosen[m]["best_lr"] for m in ("pfeiffer", "houlsby", "adamix") if m in chosen}
    _, tokenizer = compare.make_classifier(base, 2)
    limit = 256 if quick else None
    data = compare.load_task(task, tokenizer, limit=limit)
    data["ident"] = [task, limit, None, None]
    where, start = compare.machine(), time.perf_counter()
    seed_list = list(range(seeds))
    result: dict = {"task": task, "base": base, "steps": steps, "batch": batch, "seeds": seed_list, "machine": where,
                    "lr_from": lr_from, "lr": lr}

    def rows(make, fn, lr_, label) -> dict:
        runs = [cached(fn, make(), s, base, data, steps, batch, lr_, f"{label} seed {s}", cache) for s in seed_list]
        return runs

    if "sizes" in parts:
        result["sizes"] = {}
        for m in SIZES:
            runs = rows(lambda m=m: PfeifferConfig(bottleneck_size=m), run_plain, lr["pfeiffer"], f"Pfeiffer m={m}")
            result["sizes"][str(m)] = {"trainable": runs[0]["trainable"], "dev": _stats([r["dev"] for r in runs]),
                                       "test": _stats([r["test"] for r in runs])}
    if "budget" in parts:
        runs = rows(lambda: HoulsbyConfig(bottleneck_size=4, train_layer_norms=False), run_plain, lr["houlsby"],
                    "Houlsby m=4")
        result["budget"] = {"houlsby_m4": {"trainable": runs[0]["trainable"], "dev": _stats([r["dev"] for r in runs]),
                                           "test": _stats([r["test"] for r in runs])}}
    if "drop" in parts:
        result["drop"] = {}
        for kind in ("standard", "robust"):
            runs = rows(lambda kind=kind: PfeifferConfig(robust_drop=kind == "robust"), run_drop, lr["pfeiffer"],
                        f"Pfeiffer {kind}")
            result["drop"][kind] = {n: {s: _stats([r["by_n"][n][s] for r in runs]) for s in ("dev", "test")}
                                    for n in runs[0]["by_n"]}
    if "speed" in parts:
        result["speed"] = speed(base, data, batch)
    if "adamix" in parts:
        result["adamix"] = {}
        for name, lam in (("with KL (λ = 1)", 1.0), ("without KL (λ = 0)", 0.0)):
            runs = rows(lambda lam=lam: AdaMixConfig(consistency_weight=lam), run_adamix, lr["adamix"],
                        f"AdaMix λ={lam:g}")
            M_ = len(runs[0]["experts"])
            result["adamix"][name] = {
                "trainable": runs[0]["trainable"], "trainable_merged": runs[0]["trainable_merged"],
                "averaged": {s: _stats([r["averaged"][s] for r in runs]) for s in ("dev", "test")},
                "merged": {s: _stats([r["merged"][s] for r in runs]) for s in ("dev", "test")},
                "experts": [{s: _stats([r["experts"][i][s] for r in runs]) for s in ("dev", "test")}
                            for i in range(M_)],
                "best_expert": {s: _stats([max(e[s] for e in r["experts"]) for r in runs]) for s in ("dev", "test")},
                "mean_expert": {s: _stats([statistics.fmean(e[s] for e in r["experts"]) for r in runs])
                                for s in ("dev", "test")},
                "ms_per_step": statistics.fmean(r["ms_per_step"] for r in runs),
                "infer_ms_unmerged": statistics.fmean(r["infer_ms_unmerged"] for r in runs),
                "infer_ms_merged": statistics.fmean(r["infer_ms_merged"] for r in runs)}
        runs = rows(lambda: PfeifferConfig(non_linearity="gelu"), run_plain, lr["pfeiffer"], "single GELU adapter")
        result["adamix"]["single adapter"] = {"trainable": runs[0]["trainable"],
                                              "dev": _stats([r["dev"] for r in runs]),
                                              "test": _stats([r["test"] for r in runs])}
    if "fusion" in parts:
        result["fusion"] = fusion_part(task, base, tokenizer, seed_list, steps, batch, lr, cache, out, quick)
    minutes = (time.perf_counter() - start) / 60
    result["header"] = (f"Task `{task}`, base `{base}`, {steps} steps x batch {batch} (fusion: {FUSION_LABELS:,} "
                        f"seeded labels, {max(1, steps // 2)} steps); learning rates from results/{lr_from} as the module "
                        f"docstring says; mean ± std over seeds {seed_list[0]}..{seed_list[-1]}"
                        f"{' (QUICK=1: dev/test cut to 256 sentences)' if quick else ''}; {minutes:.1f} min on "
                        f"{where} (cached runs count no time).")
    return result


def fusion_part(task, base, tokenizer, seed_list, steps, batch, lr, cache, out, quick) -> dict:
    limit = 256 if quick else None
    t_steps = max(1, steps // 2)
    adapters_dir = (cache or CACHE_DIR) / ("fusion_adapters_quick" if quick else "fusion_adapters")
    sources = {}
    for src in FUSION_SOURCES:  # stage 1 on the other tasks: all labels, seed 0
        d = compare.load_task(src, tokenizer, limit=limit)
        d["ident"] = [src, limit, None, None]
        try:  # the lr Pfeiffer chose on that task's own comparison, where one is committed (trec); else the target's
            src_lr = compare.load_comparison(compare.stem_of(src, base))["methods"]["pfeiffer"]["best_lr"]
        except (FileNotFoundError, KeyError):
            src_lr = lr["pfeiffer"]
        path = adapters_dir / src
        r = cached(run_stage1, PfeifferConfig(), 0, base, d, steps, batch, src_lr, f"stage 1 {src}", cache, save_to=path)
        sources[src] = {"path": path, "lr": src_lr, **{k: r[k] for k in ("dev", "test")}}

    def target(seed: int) -> dict:
        d = compare.load_task(task, tokenizer, limit=limit, labels=FUSION_LABELS, seed=seed)
        d["ident"] = [task, limit, FUSION_LABELS, seed]
        return d

    grid = PfeifferConfig.lr_candidates()
    t0 = target(0)
    st_dev = {g: cached(run_stage1, PfeifferConfig(), 0, base, t0, t_steps, batch, g, f"stage 1 {task} lr {g:g}",
                        cache, save_to=adapters_dir / f"{task}_{FUSION_LABELS}_seed0_lr{g:g}")["dev"] for g in grid}
    st_lr = compare.choose_lr({g: [v] for g, v in st_dev.items()})
    single, fused_runs, paths = [], [], {}
    for s in seed_list:
        path = adapters_dir / f"{task}_{FUSION_LABELS}_seed{s}_lr{st_lr:g}"
        single.append(cached(run_stage1, PfeifferConfig(), s, base, target(s), t_steps, batch, st_lr,
                             f"stage 1 {task} seed {s}", cache, save_to=path))
        paths[s] = [str(path)] + [str(sources[src]["path"]) for src in FUSION_SOURCES]

    def fusion(s: int, g: float) -> dict:
        return cached(run_fusion, AdapterFusionConfig(adapter_paths=paths[s]), s, base, target(s), t_steps, batch,
                      g, f"fusion lr {g:g} seed {s}", cache)

    fgrid = AdapterFusionConfig.lr_candidates()
    f_dev = {g: fusion(0, g)["dev"] for g in fgrid}
    f_lr = compare.choose_lr({g: [v] for g, v in f_dev.items()})
    fused_runs = [fusion(s, f_lr) for s in seed_list]
    if out is not None:  # the seed-0 stage-1 adapters, for notebook 10
        dest = Path(out) / "fusion_adapters"
        for name, src in [(task, Path(paths[0][0]))] + [(x, sources[x]["path"]) for x in FUSION_SOURCES]:
            if (dest / name).exists():
                shutil.rmtree(dest / name)
            shutil.copytree(src, dest / name)
    return {"labels": FUSION_LABELS, "steps": t_steps, "sources": {k: {kk: vv for kk, vv in v.items() if kk != "path"}
                                                                       for k, v in sources.items()},
            "single": {"lr": st_lr, "grid": {f"{g:g}": v for g, v in st_dev.items()},
                       "trainable": single[0]["trainable"],
                       "dev": _stats([r["dev"] for r in single]), "test": _stats([r["test"] for r in single])},
            "fusion": {"lr": f_lr, "grid": {f"{g:g}": v for g, v in f_dev.items()},
                       "trainable": fused_runs[0]["trainable"],
                       "dev": _stats([r["dev"] for r in fused_runs]), "test": _stats([r["test"] for r in fused_runs]),
                       "weights": [[statistics.fmean(r["weights"][layer][n] for r in fused_runs)
                                    for n in range(len(fused_runs[0]["weights"][0]))]
                                   for layer in range(len(fused_runs[0]["weights"]))],
                       "adapters": [task] + list(FUSION_SOURCES),
                       "v_distance": [statistics.fmean(r["v_distance"][i] for r in fused_runs)
                                      for i in range(len(fused_runs[0]["v_distance"]))],
                       "ms_per_step": statistics.fmean(r["ms_per_step"] for r in fused_runs)}}


def _ms(d: dict) -> str:
    return f"{d['mean']:.3f} ± {d['std']:.3f}"


def table(result: dict) -> str:
    """The study as Markdown tables."""
    lines = [result["header"], ""]
    if "sizes" in result:
        lines += [f"Bottleneck size m (Pfeiffer, lr {result['lr']['pfeiffer']:g}):", "",
                  "| m | trainable (incl. head) | dev | test |", "|---:|---:|---:|---:|"]
        lines += [f"| {m} | {r['trainable']:,} | {_ms(r['dev'])} | {_ms(r['test'])} |" for m, r in result["sizes"].items()]
        lines.append("")
    if "budget" in result:
        r = result["budget"]["houlsby_m4"]
        lines += [f"Equal budget: Houlsby m = 4 without its LayerNorms (lr {result['lr']['houlsby']:g}): "
                  f"{r['trainable']:,} trainable, dev {_ms(r['dev'])}, test {_ms(r['test'])}", ""]
    if "drop" in result:
        lines += ["AdapterDrop, test accuracy with the adapters of the lowest n blocks removed at inference:", "",
                  "| n | " + " | ".join(result["drop"]) + " |", "|---:|" + "---:|" * len(result["drop"])]
        for n in result["drop"]["standard"]:
            lines.append(f"| {n} | " + " | ".join(_ms(result["drop"][k][n]["test"]) for k in result["drop"]) + " |")
        lines.append("")
    if "speed" in result:
        sp = result["speed"]
        inf, base_tps = sp["infer_tokens_per_s"], sp["infer_tokens_per_s"]["base"]
        lines += ["AdapterDrop speed (one batch, tokens/s; ratio to n = 0): " + ", ".join(
            f"n = {n}: {v:,.0f} ({v / inf['0']:.3f}×)" for n, v in inf.items() if n != "base")
            + f"; the frozen base {base_tps:,.0f} ({base_tps / inf['0']:.3f}×). Training ms/step: "
            + ", ".join(f"skip_layers = {k}: {v:.1f}" for k, v in sp["train_ms_per_step"].items())
            + f" (ratio {sp['train_ms_per_step'][str(sp['L'] // 2)] / sp['train_ms_per_step']['0']:.3f}×).", ""]
    if "adamix" in result:
        lines += ["AdaMix (test; experts evaluated one at a time):", "",
                  "| variant | trainable | averaged | merged | best expert | mean expert | infer ms unmerged / merged |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in result["adamix"].items():
            if name == "single adapter":
                lines.append(f"| single GELU adapter (m = D/16) | {r['trainable']:,} | {_ms(r['test'])} | | | | |")
            else:
                lines.append(f"| AdaMix {name} | {r['trainable']:,} | {_ms(r['averaged']['test'])} | "
                             f"{_ms(r['merged']['test'])} | {_ms(r['best_expert']['test'])} | "
                             f"{_ms(r['mean_expert']['test'])} | {r['infer_ms_unmerged']:.2f} / {r['infer_ms_merged']:.2f} |")
        lines.append("")
    if "fusion" in result:
        f = result["fusion"]
        lines += [f"AdapterFusion on `{result['task']}` with {f['labels']:,} labels ({f['steps']} steps):", "",
                  "| | lr (seed-0 dev) | trainable | dev | test |", "|---|---:|---:|---:|---:|",
                  f"| single-task adapter | {f['single']['lr']:g} | {f['single']['trainable']:,} | "
                  f"{_ms(f['single']['dev'])} | {_ms(f['single']['test'])} |",
                  f"| fusion of {', '.join(f['fusion']['adapters'])} | {f['fusion']['lr']:g} | "
                  f"{f['fusion']['trainable']:,} | {_ms(f['fusion']['dev'])} | {_ms(f['fusion']['test'])} |", "",
                  "Mean fusion weight per block (test tokens): " + "; ".join(
                      f"block {i}: " + ", ".join(f"{a} {w:.2f}" for a, w in zip(f["fusion"]["adapters"], row))
                      for i, row in enumerate(f["fusion"]["weights"])), ""]
    return "\n".join(lines)


def stem_of(task: str, base: str, quick: bool = False) -> str:
    return f"adapter_study_{task}_{base}" + ("_quick" if quick else "")


def load_study(stem: str = "adapter_study_rt_mini-bert") -> dict:
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
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    result = study(a.task, a.base, a.seeds, a.steps, a.batch, a.parts.split(","), quick,
                   CACHE_DIR if a.cache else None, out)
    stem = stem_of(a.task, a.base, quick)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{stem}.md").write_text(table(result) + "\n")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
