"""How much does a base know? The L-BFGS probe, small fine-tunes and a Naive Bayes floor on `rt`.

    python -m minitransformer.bases.probe [--seeds 3] [--bases random,mini-bert-mlm,mini-bert,minilm]
                                    [--what probe,finetune,nb]

- probe, the "L-BFGS probe": the base frozen; its last hidden states mean-pooled over the real tokens, once
  (no_grad); then a logistic regression  p(y | x) = softmax(W z(x) + b)  on standardised features z, fitted by L-BFGS with an
  L2 penalty lambda ||W||^2 chosen on dev from {1e-4, 1e-3, 1e-2}. Convex: for a pretrained base the seed
  changes almost nothing (std ~ 0: only the L-BFGS start); for `random` the seed draws the random BERT
  (mini_bert geometry, MiniLM vocabulary). Not to be confused with the "linear probe (AdamW)" of
  `methods.compare` (the `linear_probe` method: the same kind of head on the same frozen base, trained by the
  AdamW loop for a fixed number of steps, without standardisation or L2 choice).
- finetune: every weight trained (BertForSequenceClassification, mean pooling) on 1,000 seeded train labels,
  from `mini-bert` and from random init, with the same hyper-parameters (`train.train`: AdamW, lr 1e-4 — full
  fine-tuning's rate in `methods.baselines` —, 5 epochs of batch 32, 10 % warm-up then linear decay).
- nb: multinomial Naive Bayes on lowercase word counts, Laplace smoothing (alpha = 1):
      log p(c | x) = log p(c) + sum_w n_w(x) log p(w | c) + const,  p(w | c) = (n_wc + 1) / (n_c + |V|)

Prints a Markdown table (mean ± std over seeds) and writes `results/probe_rt.{json,md}` (QUICK: `data/results/`); the probe
figures are also added to each checkpoint's metrics.json. QUICK=1 subsamples (2,000 train, 500 dev/test texts).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from collections import Counter

import torch
from torch import nn

from ..bert import BertModel
from ..core import mean_pool
from ..training.batching import pad_batch
from ..training.env import is_quick
from ..training.train import TrainConfig, encode_classification, evaluate, flush_denormal, train
from .checkpoints import TRAINED, checkpoint_dir
from .datasets import load_split, results_dir
from .pretrain import load_pretrained, load_pretrained_classifier

BASES = ("random", "mini-bert-mlm", "mini-bert", "minilm")
WHAT = ("probe", "finetune", "nb")


def rt_splits(quick: bool) -> dict[str, tuple[list[str], list[int]]]:
    out = {}
    for split, n in (("train", 2000), ("dev", 500), ("test", 500)):
        rows = load_split("rt", split)
        if quick:
            rows = random.Random(0).sample(rows, n)
        out[split] = ([r["text"] for r in rows], [r["label"] for r in rows])
    return out


@torch.no_grad()
def sentence_features(model: BertModel, tokenizer, texts: list[str], batch_size: int = 128,
                      max_length: int = 128) -> torch.Tensor:
    """Mean-pooled last hidden states (N, D) of a frozen BERT, over the real tokens only."""
    model.eval()
    tok = type(tokenizer).from_str(tokenizer.to_str())
    tok.no_padding()
    tok.enable_truncation(max_length)
    ids = [e.ids for e in tok.encode_batch(texts)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together: less padding
    feats = torch.zeros(len(ids), model.config.d_model)
    with flush_denormal():  # MiniLM's forward is several times slower on denormal floats
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            x, m = pad_batch([ids[i] for i in idx])  # (B, T) each
            feats[idx] = mean_pool(model(x, attention_mask=m).hidden_states, m)  # (B, D)
    return feats


def fit_logreg(X: torch.Tensor, y: torch.Tensor, l2: float, seed: int = 0, iters: int = 200) -> nn.Linear:
    """Multinomial logistic regression fitted by full-batch L-BFGS (X already standardised)."""
    torch.manual_seed(seed)
    clf = nn.Linear(X.size(1), int(y.max()) + 1)
    opt = torch.optim.LBFGS(clf.parameters(), lr=1, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(clf(X), y) + l2 * clf.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return clf


def probe_accuracy(feats: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], seed: int = 0) -> dict:
    """Standardise on train, pick the L2 strength on dev; {"dev", "test", "l2"} accuracies."""
    mu, sd = feats["train"].mean(0), feats["train"].std(0) + 1e-6
    z = {k: (v - mu) / sd for k, v in feats.items()}
    best = None
    for l2 in (1e-4, 1e-3, 1e-2):
        clf = fit_logreg(z["train"], labels["train"], l2, seed)
        with torch.no_grad():
            acc = {k: float((clf(z[k]).argmax(-1) == labels[k]).float().mean()) for k in ("dev", "test")}
        if best is None or acc["dev"] > best["dev"]:
            best = {**acc, "l2": l2}
    return best


def naive_bayes(data: dict) -> dict:
    """Multinomial NB on lowercase word counts (alpha = 1); {"dev", "test"} accuracies."""
    words = lambda t: re.findall(r"[a-z0-9']+", t.lower())  # noqa: E731
    texts, y = data["train"]
    vocab = {w: i for i, w in enumerate(sorted({w for t in texts for w in words(t)}))}

    def counts(ts: list[str]) -> torch.Tensor:  # (N, |V|) word counts
        X = torch.zeros(len(ts), len(vocab))
        for n, t in enumerate(ts):
            for w, c in Counter(words(t)).items():
                if w in vocab:
                    X[n, vocab[w]] = c
        return X

    X, y = counts(texts), torch.tensor(y)
    C = int(y.max()) + 1
    n_wc = torch.stack([X[y == c].sum(0) for c in range(C)])  # (C, |V|)
    log_pw = torch.log((n_wc + 1) / (n_wc.sum(1, keepdim=True) + len(vocab)))
    log_prior = torch.log(torch.bincount(y, minlength=C).float() / len(y))
    out = {}
    for split in ("dev", "test"):
        pred = (counts(data[split][0]) @ log_pw.T + log_prior).argmax(-1)
        out[split] = float((pred == torch.tensor(data[split][1])).float().mean())
    return out


def finetune(base: str, data: dict, seed: int, n_labels: int = 1000, quick: bool = False) -> dict:
    """Fine-tune every weight on `n_labels` seeded train examples; {"dev", "test"} accuracies."""
    torch.manual_seed(seed)
    model, tok = load_pretrained_classifier(base, 2, pooling="mean")
    texts, y = data["train"]
    pick = random.Random(seed).sample(range(len(texts)), min(n_labels, len(texts)))
    train_ds = encode_classification(tok, [texts[i] for i in pick], [y[i] for i in pick], 64)
    cfg = TrainConfig(epochs=2 if quick else 5, batch_size=32, lr=1e-4, warmup_ratio=0.1, seed=seed, progress=False)
    train(model, train_ds, None, cfg)
    return {s: evaluate(model, encode_classification(tok, *data[s], 128))["accuracy"] for s in ("dev", "test")}


def _summary(runs: list[dict]) -> dict:
    out = {"runs": runs}
    for split in ("dev", "test"):
        vals = [r[split] for r in runs]
        out[split] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}  # sample std (n - 1), as in every table
    return out


def run(seeds: int = 3, bases: tuple[str, ...] = BASES, what: tuple[str, ...] = WHAT, quick: bool | None = None) -> dict:
    """All requested measurements; returns the results dict (also written to results/probe_rt.json)."""
    quick = is_quick(quick)
    data = rt_splits(quick)
    labels = {k: torch.tensor(v[1]) for k, v in data.items()}
    results: dict = {"quick": quick, "seeds": seeds, "rows": []}

    def add(base: str, kind: str, runs: list[dict], seconds: float) -> None:
        row = {"base": base, "what": kind, **_summary(runs), "seconds": round(seconds, 1)}
        results["rows"].append(row)
        print(f"  {base:14s} {kind:22s} dev {row['dev']['mean']:.4f} test {row['test']['mean']:.4f} ({seconds:.0f} s)",
              flush=True)

    if "nb" in what:
        t = time.perf_counter()
        add("-", "naive Bayes (words)", [naive_bayes(data)], time.perf_counter() - t)
    if "probe" in what:
        for base in bases:
            t, runs, feats = time.perf_counter(), [], None
            for seed in range(seeds):
                if base == "random":  # a new random BERT per seed
                    torch.manual_seed(seed)
                    model, tok = load_pretrained("random")
                    feats = {k: sentence_features(model, tok, v[0]) for k, v in data.items()}
                elif feats is None:
                    model, tok = load_pretrained(base, quick)
                    feats = {k: sentence_features(model, tok, v[0]) for k, v in data.items()}
                runs.append(probe_accuracy(feats, labels, seed))
            add(base, "L-BFGS probe (mean-pooled)", runs, time.perf_counter() - t)
            if base != "random":
                _record(base, quick, results["rows"][-1])
    if "finetune" in what:
        for base in ("random", "mini-bert"):
            t = time.perf_counter()
            runs = [finetune(base, data, seed, quick=quick) for seed in range(seeds)]
            add(base, "fine-tune, 1,000 labels", runs, time.perf_counter() - t)
    return results


def _record(base: str, quick: bool, row: dict) -> None:
    """Add the probe figures to the checkpoint's metrics.json (MiniLM has no checkpoint folder)."""
    if base not in TRAINED:  # MiniLM (and the random base) have no checkpoint folder
        return
    path = checkpoint_dir(base, quick) / "metrics.json"
    if path.exists():
        metrics = json.loads(path.read_text())
        metrics["probe_rt"] = {"dev": row["dev"], "test": row["test"]}
        path.write_text(json.dumps(metrics, indent=2))


def markdown(results: dict) -> str:
    lines = ["| base | measurement | rt dev accuracy | rt test accuracy |", "|---|---|---:|---:|"]
    for r in results["rows"]:
        dev, test = (f"{r[s]['mean']:.4f} ± {r[s]['std']:.4f}" for s in ("dev", "test"))
        lines.append(f"| {r['base']} | {r['what']} | {dev} | {test} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Frozen probes, fine-tunes and Naive Bayes on rt.")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--bases", default=",".join(BASES), help=f"comma-separated, from {', '.join(BASES)}")
    p.add_argument("--what", default=",".join(WHAT), help=f"comma-separated, from {', '.join(WHAT)}")
    args = p.parse_args(argv)
    bases, what = tuple(args.bases.split(",")), tuple(args.what.split(","))
    for name, vals, allowed in (("--bases", bases, BASES), ("--what", what, WHAT)):
        if set(vals) - set(allowed):
            p.error(f"{name}: unknown {sorted(set(vals) - set(allowed))}; allowed: {', '.join(allowed)}")
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    results = run(args.seeds, bases, what)
    print(markdown(results))
    out = results_dir(results["quick"])
    out.mkdir(parents=True, exist_ok=True)
    results["machine"] = f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    (out / "probe_rt.json").write_text(json.dumps(results, indent=2))
    (out / "probe_rt.md").write_text(markdown(results) + "\n")
    print(f"wrote {out / 'probe_rt'}.{{json,md}}")


if __name__ == "__main__":
    main()
