"""The comparison job: every registered method, the same task, the same base, the same budget.

    python -m methods.compare [--methods full,linear_probe,bitfit] [--seeds 3] [--task rt]
                              [--base mini-bert|minilm|random] [--labels N] [--steps 300] [--batch 32] [--lr LR]
                              [--out DIR]

For each method and seed: a fresh copy of the pretrained base with a classification head (mean pooling,
see `minitransformer.bases.pretrain.load_pretrained_classifier`), `get_peft_model` with the method's default
config, `train` for `--steps` AdamW updates at the method's `default_lr` (documented in its config), then:
dev and test accuracy, training ms/step, modelled peak training memory (`minitransformer.training.train`:
parameters + gradients + AdamW state + activations saved for the backward pass, on the first batch, whose
length depends on the seed), checkpoint bytes (`save_pretrained`), and inference ms per batch of `--batch` test
sentences. Prints a Markdown table (mean ± std over seeds; the parameter counts and checkpoint bytes are the
same for every seed) and
writes it, a JSON file and a plot of accuracy against trainable parameters (log x) to `--out` (default
`results/`, tracked in git: the figures quoted in README and notebooks; QUICK runs go to `data/results/`).

`--base random` is the control without pretraining: the `mini-bert` geometry and tokenizer, weights drawn at
random from the seed. `--labels N` trains on N training examples drawn with the seed (the few-label setting;
dev and test stay whole).

`QUICK=1` (CI) cuts the run to a few steps, one seed and 256 dev/test sentences: the numbers then only
show that the pipeline works.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from minitransformer.bases import datasets
from minitransformer.bases.pretrain import load_pretrained_classifier
from minitransformer.teaching.plots import plot_scatter_logx
from minitransformer.training.env import is_quick
from minitransformer.training.train import TrainConfig, encode_classification, evaluate, train

from .api.config import PeftConfig
from .api.peft_model import WEIGHTS_NAME, get_peft_model
from .api.registry import METHODS, get_method

MAX_LENGTH = 64  # tokens per sentence; rt snippets are shorter than this almost always
BASES = ("mini-bert", "minilm", "random")


def make_classifier(base: str, num_labels: int):
    """(classifier with mean pooling, tokenizer) on `base`; "random" = mini-bert geometry, random weights
    (drawn from the current torch seed), MiniLM's vocabulary as mini-bert has."""
    if base not in BASES:
        raise ValueError(f"base={base!r}; allowed: {', '.join(BASES)}")
    return load_pretrained_classifier(base, num_labels, pooling="mean")


def load_task(task: str, tokenizer, limit: int | None = None, labels: int | None = None, seed: int = 0) -> dict:
    """Encoded train/dev/test splits of a classification task (dev/test cut to `limit` rows if given; train
    cut to `labels` rows drawn with `seed` if given)."""
    out = {}
    for split in ("train", "dev", "test"):
        rows = datasets.load_split(task, split)
        if limit is not None and split != "train":
            rows = rows[:limit]
        if labels is not None and split == "train":
            if not 1 <= labels <= len(rows):
                raise ValueError(f"labels={labels}; allowed: 1..{len(rows)} (the size of {task} train)")
            rows = random.Random(seed).sample(rows, labels)
        out[split] = encode_classification(tokenizer, [r["text"] for r in rows], [r["label"] for r in rows],
                                           MAX_LENGTH)
    out["num_labels"] = len(datasets.label_names(task))
    return out


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


def run_one(method: str | PeftConfig, seed: int, base: str, data: dict, steps: int, batch: int,
            lr: float | None = None, label: str | None = None) -> dict:
    """Train one method (a registry name, or a config for a non-default setting) with one seed on a fresh
    copy of the base; return its measurements (and the `History` under "history")."""
    if isinstance(method, str):
        cls = get_method(method)
        # a method that draws something at set-up (random_subset's positions) draws anew for each seed
        extra = {"seed": seed} if "seed" in {f.name for f in dataclasses.fields(cls)} else {}
        config = cls(task_type="SEQ_CLS", **extra)
    else:
        config = method
    torch.manual_seed(seed)  # the new head's (and the random base's) initialisation depends on the seed alone
    model, _ = make_classifier(base, data["num_labels"])
    peft = get_peft_model(model, config)
    trainable, total = peft.get_nb_trainable_parameters()
    train_config = TrainConfig(max_steps=steps, batch_size=batch, lr=lr or config.default_lr, seed=seed)
    history = train(peft, data["train"], data["dev"], train_config)
    test = evaluate(peft, data["test"], "accuracy")
    with tempfile.TemporaryDirectory() as d:
        peft.save_pretrained(d)
        ckpt = os.path.getsize(Path(d) / WEIGHTS_NAME)
    return {"method": label or config.peft_type, "seed": seed, "base": base, "train_size": len(data["train"]),
            "history": history, "trainable": trainable, "total": total,
            "dev_acc": history.final()["eval_metric"], "test_acc": test["accuracy"],
            "ms_per_step": history.ms_per_step, "peak_mem_mb": history.peak_memory_bytes / 2**20,
            "ckpt_bytes": ckpt, "infer_ms": inference_ms_per_batch(peft, data["test"], batch)}


def _ms(values: list[float], fmt: str = "{:.3f}") -> str:
    mean = statistics.fmean(values)
    return (fmt + " ± " + fmt).format(mean, statistics.stdev(values)) if len(values) > 1 else fmt.format(mean)


def table(results: list[dict], header: str) -> str:
    """Markdown table, one row per method, mean ± std over seeds."""
    lines = [header, "",
             "| method | trainable params | trainable % | dev acc | test acc | train ms/step | modelled peak train memory (MB) "
             "| checkpoint bytes | inference ms/batch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for method in dict.fromkeys(r["method"] for r in results):
        rs = [r for r in results if r["method"] == method]
        r0 = rs[0]
        lines.append(f"| {method} | {r0['trainable']:,} | {100 * r0['trainable'] / r0['total']:.4f} | "
                     f"{_ms([r['dev_acc'] for r in rs])} | {_ms([r['test_acc'] for r in rs])} | "
                     f"{_ms([r['ms_per_step'] for r in rs], '{:.0f}')} | {_ms([r['peak_mem_mb'] for r in rs], '{:.1f}')} | "
                     f"{r0['ckpt_bytes']:,} | {_ms([r['infer_ms'] for r in rs], '{:.1f}')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    quick = is_quick()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(sorted(METHODS)), help="comma-separated registry names")
    p.add_argument("--seeds", type=int, default=1 if quick else 3)
    p.add_argument("--task", default="rt", choices=datasets.CLASSIFICATION_TASKS)
    p.add_argument("--base", default="mini-bert", choices=BASES)
    p.add_argument("--labels", type=int, default=None, help="train on this many seeded training examples")
    p.add_argument("--steps", type=int, default=20 if quick else 300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help="one learning rate for every method (default: each "
                   "method's default_lr); the output files then carry it in their name")
    p.add_argument("--out", type=Path, default=datasets.results_dir(quick))
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m)  # an unknown name fails before any training, listing the registered ones
    if args.seeds < 1 or args.steps < 1:
        p.error(f"--seeds and --steps must be >= 1, got {args.seeds} and {args.steps}")
    if args.lr is not None and not args.lr > 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    _, tokenizer = make_classifier(args.base, 2)
    start, results = time.perf_counter(), []
    for s in range(args.seeds):  # with --labels each seed draws its own training subset
        data = load_task(args.task, tokenizer, limit=256 if quick else None, labels=args.labels, seed=s)
        results += [run_one(m, s, args.base, data, args.steps, args.batch, lr=args.lr) for m in methods]
    minutes = (time.perf_counter() - start) / 60
    train_desc = f"{args.labels:,} seeded training labels" if args.labels else "all training labels"
    lr_desc = f", lr {args.lr:g} for every method" if args.lr else ", each method's default lr"
    header = (f"Task `{args.task}`, base `{args.base}`, {train_desc}, {args.steps} steps x batch {args.batch}{lr_desc}, "
              f"seeds 0..{args.seeds - 1}{' (QUICK=1: dev/test cut to 256 sentences)' if quick else ''}; "
              f"{minutes:.1f} min on {torch.get_num_threads()} threads, torch {torch.__version__}.")
    md = table(results, header)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = (f"compare_{args.task}_{args.base}{f'_{args.labels}' if args.labels else ''}"
            f"{f'_lr{args.lr:g}' if args.lr else ''}{'_quick' if quick else ''}")
    (args.out / f"{stem}.md").write_text(md + "\n")
    (args.out / f"{stem}.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "history"}
                                                       for r in results], indent=2))
    points = [(m, rs[0]["trainable"], statistics.fmean(r["test_acc"] for r in rs),
               statistics.stdev([r["test_acc"] for r in rs]) if len(rs) > 1 else 0.0)
              for m in methods for rs in [[r for r in results if r["method"] == m]]]
    fig = plot_scatter_logx(points, ylabel=f"test accuracy ({args.task})",
                            title=f"accuracy vs trainable parameters, base {args.base}")
    fig.savefig(args.out / f"{stem}.png", dpi=120, bbox_inches="tight")
    print(f"wrote {args.out / stem}.{{md,json,png}}")
    return results


if __name__ == "__main__":
    main()
