"""The comparison job: every registered method, the same task, the same base, the same budget, each method at the
learning rate it does best with on dev.

    python -m methods.compare [--methods full,linear_probe,bitfit,random_subset] [--seeds 3] [--task rt|sms_spam|trec]
                              [--base mini-bert|minilm|random] [--labels N] [--steps 300] [--batch 32]
                              [--grid sweep|default|from:STEM] [--selection seed0|all] [--cache] [--out DIR]
    python -m methods.compare --scan [--base mini-bert] [--cache] [--out DIR]    (which setting has the widest gap?)

The protocol (as in the papers: a small learning-rate sweep per method, chosen on dev, test reported once):

1. For each method, its grid: `--grid sweep` = the method's `lr_candidates()` (its `lr_grid`, documented in its
   config), `--grid default` = its `default_lr` alone (no choice is made; the demo), `--grid from:STEM` = the lr
   each method chose on dev in the committed comparison `results/STEM.json` (no sweep here: for a base too slow to
   sweep on a CPU, MiniLM).
2. `--selection seed0` (the default, to fit a CPU budget): every lr of the grid is trained with seed 0; the lr
   with the best seed-0 **dev** accuracy is chosen (a tie goes to the first in the grid); seeds 1..S-1 are then
   trained at the chosen lr only. `--selection all`: every lr with every seed, the best mean dev accuracy wins.
3. Test accuracy is read at the chosen lr only and reported as mean ± std (sample std, n - 1) over the seeds.
   Test is never used for any choice.

One run = a fresh copy of the base with a classification head (mean pooling, see
`minitransformer.bases.pretrain.load_pretrained_classifier`), `get_peft_model` with the method's default
config, `--steps` AdamW updates of `--batch` sentences through `minitransformer.training.train.train` (the one
training loop, which calls the method's own loss and step hooks; 6 % warm-up then linear decay, clipping at 1),
then dev accuracy (at the end), test accuracy, training ms/step, modelled peak training memory (parameters +
gradients + AdamW state + activations saved for the backward pass, on the first batch), checkpoint bytes
(`save_pretrained`) and inference ms per batch of `--batch` test sentences.

Reference lines, in every table and every plot:
- the majority-class floor: the most frequent label of the training set used, predicted for every dev/test row;
- the linear probe (AdamW): the `linear_probe` method at its dev-best lr — the head alone, trained by the same
  AdamW loop. (`make probe`, `minitransformer.bases.probe`, fits another frozen probe, the "L-BFGS probe":
  logistic regression by L-BFGS on standardised features. The two are different fits of the same idea.)
- full fine-tuning at its dev-best lr.
`full` and `linear_probe` therefore always run, whatever `--methods` lists.

`--base random` is the control without pretraining: the `mini-bert` geometry and tokenizer, weights drawn at
random from the seed. `--labels N` trains on N training examples drawn with the seed (each seed its own draw;
dev and test stay whole).

Output: a Markdown table, a JSON file (schema below) and a plot of test accuracy against trainable parameters
(log x, error bars = std over seeds, the reference lines drawn across), all named
`compare_{task}_{base}[_{labels}]` (QUICK: `_quick` appended), in `--out` (default `data/results/`, which git
ignores, so a student's run never changes the repository; the committed figures are written by `make results`
with `--out results`). Read a committed one with `load_comparison(stem)`.

    {"header", "task", "base", "labels": int|null, "steps", "batch", "seeds": [int], "selection", "machine",
     "majority": {"dev", "test"},
     "methods": {name: {"trainable", "total", "grid": {"<lr>": {"dev": [per-seed]}}, "best_lr",
                        "dev": {"mean", "std"}, "test": {"mean", "std"},
                        "ms_per_step", "peak_mem_mb", "ckpt_bytes", "infer_ms"}}}

`--scan` measures which setting leaves the widest gap between the linear probe (AdamW) and full fine-tuning:
for each task in SCAN_TASKS with all labels and with SCAN_LABELS labels, `full` and `linear_probe` over their
grids with seed 0 only; the gap is read on **dev** (each at its dev-best lr). Writes `scan_{base}.{md,json}`.

`--cache` keeps every finished run (its measurements, not its weights) in `data/cache/compare/`, under a hash of
what the run depends on (`run_key`), and reuses it: `make results` trains the scan's seed-0 grids once for all its
commands. The same seed gives the same accuracies, so a reused run changes no accuracy; its times are those of the
command that trained it (the header counts the reused runs). Delete the folder after editing a method or the model.

`QUICK=1` (CI) cuts the run to a few steps, one seed and 256 dev/test sentences: the numbers then only show that
the pipeline works.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from minitransformer.bases import datasets
from minitransformer.bases.checkpoints import checkpoint_dir
from minitransformer.bases.pretrain import load_pretrained_classifier
from minitransformer.teaching.plots import plot_scatter_logx
from minitransformer.training.env import is_quick
from minitransformer.training.train import TrainConfig, encode_classification, evaluate, train

from .api.config import PeftConfig
from .api.peft_model import WEIGHTS_NAME, get_peft_model
from .api.registry import METHODS, get_method

MAX_LENGTH = 64  # tokens per sentence; rt snippets are shorter than this almost always
BASES = ("mini-bert", "minilm", "random")
GRIDS = ("sweep", "default")
GRID_WORDS = {"sweep": "each method swept over its lr grid", "default": "each method at its default lr (no sweep)"}
SELECTIONS = ("seed0", "all")
REFERENCES = ("full", "linear_probe")  # always run: the reference lines of every table and plot
DISPLAY = {"full": "full fine-tuning", "linear_probe": "linear probe (AdamW)", "bitfit": "BitFit",
           "random_subset": "random subset", "lora": "LoRA", "adalora": "AdaLoRA", "qlora": "QLoRA", "ia3": "(IA)³",
           "houlsby": "Houlsby adapter", "pfeiffer": "Pfeiffer adapter", "parallel_adapter": "parallel adapter",
           "adamix": "AdaMix", "adapter_fusion": "AdapterFusion", "prompt_tuning": "prompt tuning",
           "p_tuning": "P-tuning", "prefix_tuning": "prefix tuning", "p_tuning_v2": "P-tuning v2"}
SCAN_TASKS = ("rt", "trec")  # sms_spam is left out: its majority floor is 0.876 and the gap has little room
SCAN_LABELS = 1000
LABELS_STEPS = 150  # steps with --labels 1000 in `make results`: about 5 epochs of the subset


def comparable_methods() -> list[str]:
    """Every registered method the comparison runs by default (not AdapterFusion, which fuses adapters trained
    on other tasks first: `methods.adapter_study`)."""
    return [m for m in sorted(METHODS) if METHODS[m].in_comparison]


def display(method: str) -> str:
    return DISPLAY.get(method, method)


def make_classifier(base: str, num_labels: int):
    """(classifier with mean pooling, tokenizer) on `base`; "random" = mini-bert geometry, random weights
    (drawn from the current torch seed), MiniLM's vocabulary as mini-bert has."""
    if base not in BASES:
        raise ValueError(f"base={base!r}; allowed: {', '.join(BASES)}")
    return load_pretrained_classifier(base, num_labels, pooling="mean")


def load_task(task: str, tokenizer, limit: int | None = None, labels: int | None = None, seed: int = 0) -> dict:
    """Encoded train/dev/test splits of a classification task (dev/test cut to `limit` rows if given; train
    cut to `labels` rows drawn with `seed` if given). "y" holds the raw label lists of the three splits."""
    out, ys = {}, {}
    for split in ("train", "dev", "test"):
        rows = datasets.load_split(task, split)
        if limit is not None and split != "train":
            rows = rows[:limit]
        if labels is not None and split == "train":
            if not 1 <= labels <= len(rows):
                raise ValueError(f"labels={labels}; allowed: 1..{len(rows)} (the size of {task} train)")
            rows = random.Random(seed).sample(rows, labels)
        ys[split] = [r["label"] for r in rows]
        out[split] = encode_classification(tokenizer, [r["text"] for r in rows], ys[split], MAX_LENGTH)
    out["y"] = ys
    out["num_labels"] = len(datasets.label_names(task))
    return out


def majority_floor(y: dict[str, list[int]]) -> dict:
    """The majority-class floor: the most frequent *train* label (ties: the smallest label id) predicted for every
    dev and test row. {"label", "dev", "test"}."""
    if not y["train"]:
        raise ValueError("majority_floor: the training split is empty")
    counts = Counter(y["train"])
    label = min(counts, key=lambda c: (-counts[c], c))
    return {"label": label, **{s: sum(v == label for v in y[s]) / len(y[s]) for s in ("dev", "test")}}


@torch.no_grad()
def inference_ms_per_batch(model, data, batch_size: int, repeats: int = 5) -> float:
    """Median wall time of a forward pass over one padded batch of `batch_size` test sentences."""
    model.eval()
    batch = data.collate([data[i] for i in range(min(batch_size, len(data)))])
    batch.pop("labels")
    model(**batch)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model(**batch)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def method_config(method: str, seed: int) -> PeftConfig:
    """The method's default config for a classification task; a method that draws something at set-up
    (random_subset's positions) draws anew for each seed."""
    cls = get_method(method)
    extra = {"seed": seed} if "seed" in {f.name for f in dataclasses.fields(cls)} else {}
    return cls(task_type="SEQ_CLS", **extra)


def run_one(method: str | PeftConfig, seed: int, base: str, data: dict, steps: int, batch: int,
            lr: float | None = None, label: str | None = None) -> dict:
    """Train one method (a registry name, or a config for a non-default setting) with one seed and one lr
    (default: the method's `default_lr`) on a fresh copy of the base; return its measurements (and the
    `History` under "history")."""
    config = method_config(method, seed) if isinstance(method, str) else method
    torch.manual_seed(seed)  # the new head's (and the random base's) initialisation depends on the seed alone
    model, _ = make_classifier(base, data["num_labels"])
    peft = get_peft_model(model, config)
    trainable, total = peft.get_nb_trainable_parameters()
    train_config = TrainConfig(max_steps=steps, batch_size=batch, lr=lr or config.default_lr, seed=seed,
                               eval_every=steps)  # one dev evaluation, at the end
    history = train(peft, data["train"], data["dev"], train_config,
                    desc=f"{label or config.peft_type} lr {train_config.lr:g} seed {seed}")
    test = evaluate(peft, data["test"], "accuracy")
    with tempfile.TemporaryDirectory() as d:
        peft.save_pretrained(d)
        ckpt = os.path.getsize(Path(d) / WEIGHTS_NAME)
    return {"method": label or config.peft_type, "seed": seed, "base": base, "lr": train_config.lr,
            "train_size": len(data["train"]), "history": history, "trainable": trainable, "total": total,
            "dev_acc": history.final()["eval_metric"], "test_acc": test["accuracy"],
            "ms_per_step": history.ms_per_step, "peak_mem_mb": history.peak_memory_bytes / 2**20,
            "ckpt_bytes": ckpt, "infer_ms": inference_ms_per_batch(peft, data["test"], batch)}


CACHE_DIR = datasets.DATA_DIR / "cache" / "compare"
# read once, when this module is imported: a file edited while a run is going on must not change its keys
_SOURCES = [inspect.getsource(run_one), inspect.getsource(inspect.getmodule(train))]


def _source_without_grid(cls) -> str:
    """The config class's source minus its `lr_grid` lines (the grid does not change what one run does)."""
    return "\n".join(line for line in inspect.getsource(cls).splitlines() if "lr_grid" not in line)


def run_key(method: str, seed: int, base: str, data: dict, steps: int, batch: int, lr: float) -> str:
    """What a run depends on, hashed: the settings, the data rows, the base's weights files (size and time), the
    method's config source (its `lr_grid` lines left out), `run_one`'s and the training loop's source. Edits
    elsewhere (the PeftModel wrapper, a model class) are not seen: delete data/cache/compare/ after such a change."""
    folder = None if base == "random" else datasets.RAW_DIR / "minilm" if base == "minilm" else checkpoint_dir(base)
    weights = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.safetensors"))
               ] if folder is not None else None
    ident = [method, seed, base, steps, batch, repr(lr), MAX_LENGTH, torch.__version__, torch.get_num_threads(),
             data.get("ident"), weights, _source_without_grid(get_method(method)), *_SOURCES]
    return hashlib.sha256(json.dumps(ident, default=str).encode()).hexdigest()[:20]


def cached_run_one(method: str, seed: int, base: str, data: dict, steps: int, batch: int, lr: float,
                   cache: Path | None) -> tuple[dict, bool]:
    """`run_one` without its history, read from `cache` when the same run was done before (then True)."""
    path = cache / f"{run_key(method, seed, base, data, steps, batch, lr)}.json" if cache is not None else None
    if path is not None and path.exists():
        return json.loads(path.read_text()), True
    r = {k: v for k, v in run_one(method, seed, base, data, steps, batch, lr=lr).items() if k != "history"}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r) + "\n")
    return r, False


def check_grid(grid: str) -> None:
    if grid not in GRIDS and not (grid.startswith("from:") and len(grid) > 5):
        raise ValueError(f"grid={grid!r}; allowed: {', '.join(GRIDS)} or from:STEM (a committed comparison)")


def lr_grid(method: str, grid: str = "sweep") -> tuple[float, ...]:
    """The learning rates tried for `method`: its `lr_candidates()` ("sweep"), its `default_lr` ("default"), or
    the lr it chose on dev in the committed comparison STEM ("from:STEM")."""
    check_grid(grid)
    cls = get_method(method)
    if grid.startswith("from:"):
        chosen = load_comparison(grid[5:])["methods"]
        if method not in chosen:
            raise ValueError(f"grid={grid!r}: method {method!r} is not in it; it has {', '.join(chosen)}")
        return (chosen[method]["best_lr"],)
    return tuple(cls.lr_candidates()) if grid == "sweep" else (cls.default_lr,)


def choose_lr(dev_by_lr: dict[float, list[float]]) -> float:
    """The lr with the best mean *dev* accuracy (a tie goes to the first lr in the grid's order)."""
    if not dev_by_lr:
        raise ValueError("choose_lr: empty grid")
    return max(dev_by_lr, key=lambda lr: (statistics.fmean(dev_by_lr[lr]), -list(dev_by_lr).index(lr)))


def _mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def sweep_method(method: str, seeds: list[int], base: str, data_for, steps: int, batch: int,
                 lrs: tuple[float, ...], selection: str = "seed0", cache: Path | None = None) -> dict:
    """The protocol for one method: train over the grid, choose the lr on dev, report test at that lr.

    `data_for(seed)` gives the encoded task for a seed. Returns the JSON entry of the method (see the module
    docstring) plus "runs" (every run's measurements, the histories dropped) and "cached" (how many of them
    were read from `cache` instead of trained; None = no cache)."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection={selection!r}; allowed: {', '.join(SELECTIONS)}")
    runs: dict[tuple[float, int], dict] = {}
    cached = 0

    def run(lr: float, seed: int) -> dict:
        nonlocal cached
        if (lr, seed) not in runs:
            runs[(lr, seed)], hit = cached_run_one(method, seed, base, data_for(seed), steps, batch, lr, cache)
            cached += hit
        return runs[(lr, seed)]

    choice_seeds = seeds[:1] if selection == "seed0" else seeds
    dev_by_lr = {lr: [run(lr, s)["dev_acc"] for s in choice_seeds] for lr in lrs}
    best = choose_lr(dev_by_lr)
    at_best = [run(best, s) for s in seeds]
    grid = {f"{lr:g}": {"dev": [runs[(lr, s)]["dev_acc"] for s in seeds if (lr, s) in runs]} for lr in lrs}
    r0 = at_best[0]
    return {"trainable": r0["trainable"], "total": r0["total"], "grid": grid, "best_lr": best,
            "dev": _mean_std([r["dev_acc"] for r in at_best]), "test": _mean_std([r["test_acc"] for r in at_best]),
            "ms_per_step": statistics.fmean(r["ms_per_step"] for r in at_best),
            "peak_mem_mb": statistics.fmean(r["peak_mem_mb"] for r in at_best),
            "ckpt_bytes": r0["ckpt_bytes"], "infer_ms": statistics.fmean(r["infer_ms"] for r in at_best),
            "runs": list(runs.values()), "cached": cached}


def machine() -> str:
    """The machine in words: cores, threads, torch, and the load when the run started (a shared machine's
    timings are slower than an idle one's)."""
    cores, load = os.cpu_count() or 1, os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    shared = f", shared with other jobs (load average {load:.1f} at start)" if load > 0.5 else ""
    return f"{cores}-core CPU, {torch.get_num_threads()} threads, torch {torch.__version__}{shared}"


def selection_text(selection: str, grid: str, seeds: list[int]) -> str:
    if grid == "default":
        return "no lr choice: each method at its default_lr only"
    if grid.startswith("from:"):
        return (f"no sweep here: each method at the lr it chose on dev in results/{grid[5:]}.json; "
                f"test read at that lr only")
    if selection == "all" or len(seeds) == 1:
        return "lr chosen on mean dev accuracy over all seeds; test read at that lr only"
    return (f"lr chosen on seed-0 dev accuracy over each method's grid; seeds {seeds[1]}..{seeds[-1]} then run at "
            f"the chosen lr only; test read at that lr only")


def compare(task: str = "rt", base: str = "mini-bert", methods: list[str] | None = None, seeds: int = 3,
            labels: int | None = None, steps: int = 300, batch: int = 32, grid: str = "sweep",
            selection: str = "seed0", quick: bool | None = None, cache: Path | None = None) -> dict:
    """Run the protocol for every method (plus the reference methods) and return the JSON-ready results.
    `cache`: a folder of finished runs to reuse (see `run_key`); None = train every run."""
    quick = is_quick(quick)
    methods = list(dict.fromkeys([*REFERENCES, *(methods or comparable_methods())]))
    for m in methods:
        get_method(m)  # an unknown name fails before any training, listing the registered ones
    for name, value in (("seeds", seeds), ("steps", steps), ("batch", batch)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}; allowed: an int >= 1")
    check_grid(grid)
    if selection not in SELECTIONS:
        raise ValueError(f"selection={selection!r}; allowed: {', '.join(SELECTIONS)}")
    if base not in BASES:
        raise ValueError(f"base={base!r}; allowed: {', '.join(BASES)}")
    where = machine()
    _, tokenizer = make_classifier(base, 2)
    encoded: dict[int, dict] = {}

    def data_for(seed: int) -> dict:  # with --labels each seed draws its own training subset
        if seed not in encoded:
            limit = 256 if quick else None
            encoded[seed] = load_task(task, tokenizer, limit=limit, labels=labels, seed=seed)
            encoded[seed]["ident"] = [task, limit, labels, seed if labels else None]
        return encoded[seed]

    seed_list = list(range(seeds))
    start = time.perf_counter()
    floors = [majority_floor(data_for(s)["y"]) for s in seed_list]
    results = {m: sweep_method(m, seed_list, base, data_for, steps, batch, lr_grid(m, grid), selection, cache)
               for m in methods}
    minutes = (time.perf_counter() - start) / 60
    n_runs, n_cached = (sum(len(r[k]) if k == "runs" else r[k] for r in results.values()) for k in ("runs", "cached"))
    reused = (f" ({n_cached} of the {n_runs} runs read from the run cache, trained by an earlier command: their "
              f"times are that command's)" if n_cached else "")
    train_desc = f"{labels:,} seeded training labels" if labels else "all training labels"
    how = selection_text(selection, grid, seed_list)
    header = (f"Task `{task}`, base `{base}`, {train_desc}, {steps} steps x batch {batch}; "
              f"{GRID_WORDS.get(grid, 'each method at an lr chosen on dev elsewhere')}"
              f" ({how}); mean ± std over seeds {seed_list[0]}..{seed_list[-1]}"
              f"{' (QUICK=1: dev/test cut to 256 sentences)' if quick else ''}; {minutes:.1f} min on {where}"
              f"{reused}.")
    return {"header": header, "task": task, "base": base, "labels": labels, "steps": steps, "batch": batch,
            "seeds": seed_list, "selection": how, "machine": where,
            "majority": {s: statistics.fmean(f[s] for f in floors) for s in ("dev", "test")},
            "majority_label": datasets.label_names(task)[floors[0]["label"]],
            "methods": results}


def _fmt(ms: dict, f: str = "{:.3f}") -> str:
    return (f + " ± " + f).format(ms["mean"], ms["std"])


def reference_line(result: dict) -> str:
    """The three reference lines in words (majority floor, linear probe (AdamW), full fine-tuning)."""
    ms, maj = result["methods"], result["majority"]
    label = f" (always '{result['majority_label']}')" if "majority_label" in result else ""
    parts = [f"majority-class floor{label}: dev {maj['dev']:.3f} / test {maj['test']:.3f}"]
    for m in REFERENCES:
        if m in ms:
            r = ms[m]
            parts.append(f"{display(m)} at lr {r['best_lr']:g}: dev {_fmt(r['dev'])} / test {_fmt(r['test'])}")
    return ("Reference lines — " + "; ".join(parts) + ". The linear probe (AdamW) is the head alone, trained by the "
            "same AdamW loop; the L-BFGS probe of `make probe` (results/probe_rt.md) is a different fit.")


def table(result: dict) -> str:
    """Markdown: the header, the reference lines, then one row per method (the majority floor first)."""
    ms = result["methods"]
    full_ms = ms["full"]["ms_per_step"] if "full" in ms else None
    lines = [result["header"], "", reference_line(result), "",
             "| method | trainable params | trainable % | seed-0 dev acc per lr (* = chosen) | lr | dev acc | test acc "
             "| train ms/step (× full) | modelled peak train memory (MB) | checkpoint bytes | inference ms/batch |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| majority class | 0 | 0 | — | — | {result['majority']['dev']:.3f} | "
             f"{result['majority']['test']:.3f} | — | — | — | — |"]
    for name, r in ms.items():
        grid = ", ".join(f"{lr}: {v['dev'][0]:.3f}{'*' if float(lr) == r['best_lr'] else ''}"
                         for lr, v in r["grid"].items())
        ratio = f" ({r['ms_per_step'] / full_ms:.2f}×)" if full_ms else ""
        lines.append(f"| {display(name)} | {r['trainable']:,} | {100 * r['trainable'] / r['total']:.4f} | {grid} | "
                     f"{r['best_lr']:g} | {_fmt(r['dev'])} | {_fmt(r['test'])} | {r['ms_per_step']:.0f}{ratio} | "
                     f"{r['peak_mem_mb']:.1f} | {r['ckpt_bytes']:,} | {r['infer_ms']:.1f} |")
    return "\n".join(lines)


def plot(result: dict):
    """Test accuracy vs trainable parameters (log x, error bars = std over seeds) with the reference lines drawn
    across: majority-class floor, linear probe (AdamW), full fine-tuning."""
    ms = result["methods"]
    points = [("", r["trainable"], r["test"]["mean"], r["test"]["std"]) for r in ms.values()]  # labelled below
    n_labels = f"{result['labels']:,} labels" if result["labels"] else "all labels"
    n_seeds = len(result["seeds"])
    fig = plot_scatter_logx(points, ylabel=f"test accuracy ({result['task']})",
                            title=f"{result['task']}, base {result['base']}, {n_labels}, "
                                  f"{n_seeds} seed{'s' if n_seeds > 1 else ''}\n"
                                  "test accuracy at each method's dev-chosen lr, error bars = std over seeds")
    ax = fig.axes[0]
    by_x = sorted(ms, key=lambda m: ms[m]["trainable"])
    for i, m in enumerate(by_x):  # labels above and below in turn, so that neighbours do not overlap
        r = ms[m]
        ax.annotate(f"{display(m)}\nlr {r['best_lr']:g}", (r["trainable"], r["test"]["mean"]), fontsize=8,
                    textcoords="offset points", xytext=(6, 6 if i % 2 == 0 else -22))
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo, hi * 6)  # room for the labels of the rightmost point
    ax.axhline(result["majority"]["test"], color="grey", linestyle=":", label="majority-class floor")
    styles = {"linear_probe": ("tab:orange", "--"), "full": ("tab:blue", "-")}
    for m, (color, style) in styles.items():
        if m in ms:
            ax.axhline(ms[m]["test"]["mean"], color=color, linestyle=style, alpha=0.6, label=display(m))
    ax.legend(fontsize=8, loc="lower right", title="reference lines", title_fontsize=8)
    return fig


def difference(result: dict, a: str, b: str) -> tuple[float, float | None]:
    """Test mean of method `a` minus that of `b` in a comparison, and its standard error over the seeds,
    se = sqrt((s_a² + s_b²) / n) (None with a single seed, where no error can be given)."""
    for m in (a, b):
        if m not in result["methods"]:
            raise ValueError(f"difference: method {m!r} is not in this comparison; it has {', '.join(result['methods'])}")
    va, vb, n = result["methods"][a]["test"], result["methods"][b]["test"], len(result["seeds"])
    se = ((va["std"] ** 2 + vb["std"] ** 2) / n) ** 0.5 if n > 1 else None
    return va["mean"] - vb["mean"], se


def verdict(d: float, se: float | None, threshold: float = 0.0) -> str:
    """Is the difference `d` above `threshold` beyond the noise? "yes" when d − 2·se > threshold, "no" when
    d + 2·se < threshold, else "within noise" (with one seed, se = 0 and the verdict says "(1 seed)")."""
    s = 0.0 if se is None else se
    word = "yes" if d - 2 * s > threshold else "no" if d + 2 * s < threshold else "within noise"
    return word + (" (1 seed)" if se is None else "")


def stem_of(task: str, base: str, labels: int | None = None, quick: bool = False) -> str:
    return f"compare_{task}_{base}{f'_{labels}' if labels else ''}{'_quick' if quick else ''}"


def write(result: dict, out: Path, stem: str) -> str:
    """Write `stem`.md / .json / .png to `out`; return the Markdown table."""
    md = table(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(md + "\n")
    lean = {**result, "methods": {m: {k: v for k, v in r.items() if k not in ("runs", "cached")}
                                  for m, r in result["methods"].items()}}
    lean.pop("majority_label", None)  # in the table's words only: the JSON keeps the documented schema
    (out / f"{stem}.json").write_text(json.dumps(lean, indent=2) + "\n")
    plot(result).savefig(out / f"{stem}.png", dpi=120, bbox_inches="tight")
    return md


def load_comparison(stem: str) -> dict:
    """A committed comparison, `results/<stem>.json` (e.g. "compare_rt_mini-bert"), as written by `make results`."""
    return datasets.read_results(stem if stem.endswith(".json") else f"{stem}.json")


def scan(base: str = "mini-bert", tasks: tuple[str, ...] = SCAN_TASKS, n_labels: int = SCAN_LABELS,
         steps: int = 300, labels_steps: int = LABELS_STEPS, batch: int = 32, quick: bool | None = None,
         cache: Path | None = None) -> dict:
    """Seed 0, full and linear_probe over their grids, on each task with all labels and with `n_labels` labels:
    the dev gap (full minus linear probe (AdamW), each at its dev-best lr) of every setting, widest first."""
    quick = is_quick(quick)
    start, rows, n_runs, n_cached = time.perf_counter(), [], 0, 0
    for task in tasks:
        for labels in (None, n_labels):
            r = compare(task, base, list(REFERENCES), seeds=1, labels=labels,
                        steps=labels_steps if labels else steps, batch=batch, quick=quick, cache=cache)
            full, probe = r["methods"]["full"], r["methods"]["linear_probe"]
            n_runs += len(full["runs"]) + len(probe["runs"])
            n_cached += full["cached"] + probe["cached"]
            rows.append({"task": task, "labels": labels, "steps": r["steps"], "majority_dev": r["majority"]["dev"],
                         "full": {"best_lr": full["best_lr"], "grid": full["grid"], "dev": full["dev"]["mean"]},
                         "linear_probe": {"best_lr": probe["best_lr"], "grid": probe["grid"],
                                          "dev": probe["dev"]["mean"]},
                         "gap_dev": full["dev"]["mean"] - probe["dev"]["mean"]})
            print(f"  {task:9s} {labels or 'all'!s:5s} full {rows[-1]['full']['dev']:.3f}  "
                  f"linear probe (AdamW) {rows[-1]['linear_probe']['dev']:.3f}  gap {rows[-1]['gap_dev']:+.3f}",
                  flush=True)
    rows.sort(key=lambda r: -r["gap_dev"])
    reused = (f" ({n_cached} of the {n_runs} runs read from the run cache: trained by an earlier command)"
              if n_cached else "")
    minutes = (time.perf_counter() - start) / 60
    header = (f"Which setting leaves the widest gap between full fine-tuning and the linear probe (AdamW) on base "
              f"`{base}`? Seed 0 only, each method at its dev-best lr of its grid, **dev** accuracy (test is not "
              f"read for this choice); {steps} steps x batch {batch} with all labels, {labels_steps} with "
              f"{n_labels:,}{' (QUICK=1: dev cut to 256 sentences)' if quick else ''}; {minutes:.1f} min on {machine()}"
              f"{reused}.")
    return {"header": header, "base": base, "rows": rows}


def scan_table(result: dict) -> str:
    lines = [result["header"], "",
             "| task | labels | steps | majority dev | full fine-tuning dev (lr) | linear probe (AdamW) dev (lr) "
             "| gap (dev) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        n_labels = f"{r['labels']:,}" if r["labels"] else "all"
        lines.append(f"| {r['task']} | {n_labels} | {r['steps']} | "
                     f"{r['majority_dev']:.3f} | {r['full']['dev']:.3f} ({r['full']['best_lr']:g}) | "
                     f"{r['linear_probe']['dev']:.3f} ({r['linear_probe']['best_lr']:g}) | {r['gap_dev']:+.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    quick = is_quick()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(comparable_methods()),
                   help="comma-separated registry names (full and linear_probe always run: the reference lines); "
                        "default: every registered method but those that need a stage of their own first "
                        "(adapter_fusion: methods.adapter_study)")
    p.add_argument("--seeds", type=int, default=1 if quick else 3)
    p.add_argument("--task", default="rt", choices=datasets.CLASSIFICATION_TASKS)
    p.add_argument("--base", default="mini-bert", choices=BASES)
    p.add_argument("--labels", type=int, default=None, help="train on this many seeded training examples")
    p.add_argument("--steps", type=int, default=20 if quick else 300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--grid", default="sweep",
                   help="sweep: each method's lr grid (lr_candidates); default: each method's default_lr only; "
                        "from:STEM: the lr each method chose on dev in results/STEM.json")
    p.add_argument("--selection", default="seed0", choices=SELECTIONS,
                   help="seed0: choose the lr on seed 0's dev accuracy, then run the other seeds at it; "
                        "all: every lr with every seed")
    p.add_argument("--scan", action="store_true",
                   help="measure the full-vs-probe dev gap on every task, all labels and 1,000 (seed 0)")
    p.add_argument("--cache", action="store_true",
                   help="reuse finished runs from data/cache/compare/ (and store new ones there): `make results` "
                        "uses it so that the scan's runs are not trained twice; delete the folder after editing code")
    p.add_argument("--out", type=Path, default=datasets.results_dir(True),
                   help="where to write (default data/results/, ignored by git; `make results` uses results/)")
    args = p.parse_args(argv)
    cache = CACHE_DIR if args.cache else None
    if args.seeds < 1 or args.steps < 1 or args.batch < 1:
        p.error(f"--seeds, --steps and --batch must be >= 1, got {args.seeds}, {args.steps} and {args.batch}")
    if args.scan:
        result = scan(args.base, steps=args.steps, labels_steps=min(args.steps, LABELS_STEPS), batch=args.batch,
                      quick=quick, cache=cache)
        md, stem = scan_table(result), f"scan_{args.base}{'_quick' if quick else ''}"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.md").write_text(md + "\n")
        (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(md)
        print(f"wrote {args.out / stem}.{{md,json}}")
        return result
    try:
        check_grid(args.grid)
    except ValueError as e:
        p.error(str(e))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m)  # an unknown name fails before any training, listing the registered ones
    result = compare(args.task, args.base, methods, args.seeds, args.labels, args.steps, args.batch, args.grid,
                     args.selection, quick, cache)
    stem = stem_of(args.task, args.base, args.labels, quick)
    print(write(result, args.out, stem))
    print(f"wrote {args.out / stem}.{{md,json,png}}")
    return result


if __name__ == "__main__":
    main()
