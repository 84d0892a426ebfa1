"""PET, Pattern-Exploiting Training (Schick & Schütze, "Exploiting Cloze Questions for Few Shot Text
Classification and Natural Language Inference", EACL 2021, arXiv:2001.07676): classification as a cloze question.

A pattern-verbalizer pair (PVP) p = (P, v): the pattern P turns an input x into a text with one [MASK]
("{x} It was [MASK]."), the verbalizer v maps each label l to one word of the vocabulary (rotten -> "terrible",
fresh -> "great"). With M the pretrained masked language model,

    s_p(l | x) = M(v(l) | P(x))                 the MLM's raw logit of the word v(l) at the [MASK] of P(x)
    q_p(l | x) = softmax_l s_p(l | x)           over the C labels only
    L_CE       = - log q_p(y | x)               cross-entropy on the K labelled examples

Plugs in at: the MLM head's logits at the [MASK] position. No new parameter is added: the "classifier" is the
MLM head the model was pretrained with, read at C rows of the (tied) word-embedding matrix, so even an untrained
model can answer (zero-shot), and a fine-tuned one starts from a head that is not random.

**PET is not a PEFT method.** It fine-tunes the whole MLM — 100 % of its parameters, one full copy per pattern —
so it is not registered in `methods.METHODS`, and nothing here goes through `get_peft_model`. It is in this
project as the origin of hard prompts: hand-written patterns and verbalizers whose wording changes the accuracy,
which is what soft prompts (prompt tuning, P-tuning: notebooks 06-08) replace with trained vectors.

The paper's full recipe (not all reproduced here):
1. one MLM fine-tuned per PVP (3 repetitions each) on the K labelled examples, with L = (1 - α) L_CE + α L_MLM,
   α = 1e-4, the auxiliary MLM loss on unlabelled data. **Here: L_CE alone.** With α = 1e-4 the auxiliary term is
   a guard against forgetting over a large unlabelled set; we train 40 steps on K <= 256 examples and have no
   in-domain unlabelled set in the budget, so it is left out (the same in every run);
2. the PVPs' models ensembled, s(l|x) = (1/Z) sum_p w(p) s_p(l|x), Z = sum_p w(p), with w(p) the accuracy of
   pattern p on the training set *before* training ("wmean") or w = 1 ("mean"): `ensemble_logits`, measured;
3. a plain classifier distilled from the ensemble's soft labels on unlabelled data, and iPET's generations:
   not reproduced.

Which MLM: `minitransformer.bases.pretrain.load_masked_lm("mini-bert-mlm")`, the only base with an MLM head
(MiniLM ships without its head; `mini-bert` is distilled from MiniLM's sentence vectors and has none). Its corpus
is the King James Bible and dialog lines, a few minutes of CPU pretraining: the lesson of its zero-shot row is
what a pattern can draw on when the MLM knows little about movie reviews.

Few-shot sets: K labelled rt train sentences drawn with a seed, **class-balanced** (K / C per label; PET's code
samples without balancing), to take the label mix out of the seed-to-seed variance that the patterns are compared
against. Inputs: each text piece of the pattern and x are tokenized separately (as PET's `PVP.encode`), and only
x is truncated, so the pattern and its [MASK] always survive.

    python -m methods.pet [--quick] [--steps 40] [--batch 16] [--seeds 3] [--ks 32,64,128,256] [--out DIR]

The sweep: zero-shot accuracy of every pattern on rt dev and test; then, for K in {32, 64, 128, 256} x patterns
x 3 seeds, PET fine-tuning (`--steps` AdamW updates of `--batch`, through the project's one loop
`minitransformer.training.train` with `loss_fn=pet_loss`), test accuracy; beside it the supervised baseline (a
new classification head on the same pretrained trunk, same K, steps and seeds) and the pattern ensembles. The
learning rate of each of the two is chosen once, on **dev**, over `LR_GRID` (K = 64, seed 0, the first pattern);
test chooses nothing. (A true few-shot learner would have no 1,275-sentence dev set: Perez et al. 2021,
arXiv:2105.11447; the paper used fixed hyper-parameters from earlier work.) Output: `pet_rt_mini-bert-mlm.{json,md}`
in `results/pet/`, or under QUICK=1 / `--quick` (the `-quick` checkpoint, K in {32, 64}, 1 seed, 4 steps, one lr,
128 dev/test sentences: the numbers only show the pipeline works) in the git-ignored `data/results/pet/`.

Budget: 78 runs (6 for the lr, 72 measured) of 40 steps, each ~6 s of training and ~3 s of test evaluation on one
busy CPU thread (142 ms/step measured for a batch of 16): about 12 min on one thread, less with both cores of an
idle 2-core machine. 40 steps of 16 sentences: 640 examples seen, near PET's 250 steps of 4.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from minitransformer import BertForMaskedLM
from minitransformer.bases import datasets
from minitransformer.bases.pretrain import load_masked_lm, load_pretrained_classifier
from minitransformer.core import ModelOutput
from minitransformer.training.batching import EncodedDataset, pad_id_of
from minitransformer.training.env import is_quick
from minitransformer.training.train import History, TrainConfig, evaluate, train

BASE = "mini-bert-mlm"
MAX_LENGTH = 64  # tokens of P(x), [CLS] and [SEP] included
X, MASK = "{x}", "[MASK]"
LR_GRID = (3e-4, 1e-3, 3e-3)  # full fine-tuning of mini-bert chose 1e-3 (results/compare_rt_mini-bert.json)
KS = (32, 64, 128, 256)
LR_K = 64  # the few-shot size at which the learning rate is chosen on dev

# PET's Yelp polarity patterns (paper §4 and `pet/pvp.py`: YelpPolarityPVP), with "restaurant" -> "movie", and the
# verbalizer words of its Yelp-full scale (terrible / bad / good / great) plus two more pairs. Label 0 = rotten,
# 1 = fresh (data/processed/rt.labels.json).
RT_PATTERNS: list[dict] = [
    {"name": "it-was", "pattern": "{x} It was [MASK].", "verbalizer": ("terrible", "great")},
    {"name": "just", "pattern": "Just [MASK]! {x}", "verbalizer": ("bad", "good")},
    {"name": "all-in-all", "pattern": "{x} All in all, it was [MASK].", "verbalizer": ("terrible", "great")},
    {"name": "in-summary", "pattern": "{x} In summary, the movie is [MASK].", "verbalizer": ("bad", "good")},
    {"name": "the-film-is", "pattern": "{x} The film is [MASK].", "verbalizer": ("awful", "wonderful")},
]


@dataclass
class PVP:
    """A pattern-verbalizer pair for one tokenizer. `pattern`: the cloze text, with "{x}" (the input) once and
    "[MASK]" once; `verbalizer`: label index -> one word (a single token of `tokenizer`'s vocabulary, after its
    normalizer: "Great" is "great" for a lowercasing WordPiece). Validated on construction (ValueError naming the
    field, the value and what is allowed). `label_ids` (C,) and `mask_id` are read from the tokenizer."""

    pattern: str
    verbalizer: tuple[str, ...]
    tokenizer: object = field(repr=False, compare=False)
    name: str = ""
    max_length: int = MAX_LENGTH
    label_ids: tuple[int, ...] = field(init=False)
    mask_id: int = field(init=False)

    def __post_init__(self) -> None:
        p = self.pattern
        if not isinstance(p, str) or p.count(X) != 1 or p.count(MASK) != 1:
            raise ValueError(f"PVP.pattern={p!r} is invalid; allowed: a string with '{X}' (the input) exactly once "
                             f"and '{MASK}' exactly once, e.g. '{{x}} It was [MASK].'")
        if isinstance(self.verbalizer, str) or not isinstance(self.verbalizer, (tuple, list)) or \
                len(self.verbalizer) < 2 or not all(isinstance(w, str) and w.strip() for w in self.verbalizer):
            raise ValueError(f"PVP.verbalizer={self.verbalizer!r} is invalid; allowed: a tuple of at least 2 words, "
                             f"word i for label i, e.g. ('terrible', 'great')")
        self.verbalizer = tuple(self.verbalizer)
        tok = self.tokenizer
        specials = {t: tok.token_to_id(t) for t in ("[CLS]", "[SEP]", MASK, "[UNK]")}
        if any(v is None for v in specials.values()):
            raise ValueError(f"PVP.tokenizer has no {[t for t, v in specials.items() if v is None]}; allowed: a "
                             f"BERT-style WordPiece tokenizer (mini-bert-mlm's)")
        self.cls_id, self.sep_id, self.mask_id, self.unk_id = specials.values()
        self.pad_id = pad_id_of(tok)
        ids = []
        for label, word in enumerate(self.verbalizer):
            enc = tok.encode(word, add_special_tokens=False)
            if len(enc.ids) != 1 or enc.ids[0] == self.unk_id:
                raise ValueError(f"PVP.verbalizer: {word!r} (label {label}) is {enc.tokens} for this tokenizer; "
                                 f"allowed: a word that is one token of its vocabulary (not [UNK])")
            ids.append(enc.ids[0])
        if len(set(ids)) != len(ids):
            raise ValueError(f"PVP.verbalizer={self.verbalizer!r}: two labels map to the same token; allowed: "
                             f"distinct words")
        self.label_ids = tuple(ids)
        # the pattern's text pieces, tokenized once: [(kind, ids)] with kind "text", "x" or "mask"
        self._pieces = []
        for i, chunk in enumerate(p.split(X)):
            if i:
                self._pieces.append(("x", []))
            for j, text in enumerate(chunk.split(MASK)):
                if j:
                    self._pieces.append(("mask", [self.mask_id]))
                if text.strip():
                    self._pieces.append(("text", tok.encode(text, add_special_tokens=False).ids))
        self.pattern_length = 2 + sum(len(ids) for _, ids in self._pieces)  # [CLS] ... [SEP], without x
        if not isinstance(self.max_length, int) or self.max_length < self.pattern_length + 1:
            raise ValueError(f"PVP.max_length={self.max_length!r} is invalid; allowed: an int >= "
                             f"{self.pattern_length + 1} (the pattern's {self.pattern_length} tokens and one of x)")

    def fill(self, x: str) -> str:
        """P(x) as text."""
        return self.pattern.replace(X, x)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of [CLS] P(x) [SEP] for each x: x truncated (never the pattern) to max_length in all; a
        "[MASK]" written inside x becomes [UNK], so each row has exactly one mask, the pattern's."""
        tok = type(self.tokenizer).from_str(self.tokenizer.to_str())  # a copy without padding or truncation
        tok.no_padding()
        tok.no_truncation()
        budget = self.max_length - self.pattern_length
        rows = []
        for enc in tok.encode_batch(list(texts), add_special_tokens=False):
            x_ids = [self.unk_id if t == self.mask_id else t for t in enc.ids[:budget]]
            ids = [self.cls_id]
            for kind, piece in self._pieces:
                ids += x_ids if kind == "x" else piece
            rows.append(ids + [self.sep_id])
        return rows

    def dataset(self, texts: list[str], labels: list[int] | None = None) -> EncodedDataset:
        """An EncodedDataset of P(x) (labels: the class index, as for a classifier)."""
        rows = [{"input_ids": torch.tensor(ids, dtype=torch.long)} for ids in self.encode(texts)]
        for row, y in zip(rows, labels if labels is not None else []):
            row["labels"] = torch.tensor(int(y), dtype=torch.long)
        return EncodedDataset(rows, self.pad_id)


def rt_pvps(tokenizer, max_length: int = MAX_LENGTH) -> list[PVP]:
    """The five rt patterns of `RT_PATTERNS`, for `tokenizer`."""
    return [PVP(tokenizer=tokenizer, max_length=max_length, **spec) for spec in RT_PATTERNS]


# ---- the mechanism --------------------------------------------------------------------------------------------
def mask_positions(input_ids: torch.Tensor, mask_id: int) -> torch.Tensor:
    """(B, T) -> (B,): the index of the one [MASK] of each row; a ValueError if a row has none or several."""
    is_mask = input_ids == mask_id  # (B, T)
    counts = is_mask.sum(1)
    if (counts != 1).any():
        row = int((counts != 1).nonzero()[0])
        raise ValueError(f"row {row} has {int(counts[row])} [MASK] tokens (id {mask_id}); a PVP input has exactly one")
    return is_mask.int().argmax(1)


def cloze_scores(mlm_logits: torch.Tensor, input_ids: torch.Tensor, mask_id: int,
                 label_ids) -> torch.Tensor:
    """s_p(l | x) from the MLM's logits over every position: (B, T, V) -> (B, C), the logits of the verbalizer
    tokens `label_ids` (C,) at each row's [MASK]. Raw logits: the softmax over the C labels comes after."""
    pos = mask_positions(input_ids, mask_id)  # (B,)
    at_mask = mlm_logits[torch.arange(len(pos), device=pos.device), pos]  # (B, V)
    return at_mask[:, torch.as_tensor(label_ids, device=at_mask.device)]  # (B, C)


def verbalizer_logits(model: BertForMaskedLM, batch: dict, pvp: PVP) -> torch.Tensor:
    """s_p(l | x) = M(v(l) | P(x)) for a batch of PVP inputs: (B, C). The same numbers as `cloze_scores` on the
    full (B, T, V) logits, but the MLM head runs at the mask positions only (B x V, not B x T x V)."""
    input_ids = batch["input_ids"]  # (B, T)
    pos = mask_positions(input_ids, pvp.mask_id)  # (B,)
    h = model.bert(input_ids, batch.get("attention_mask")).hidden_states  # (B, T, D)
    h_mask = h[torch.arange(len(pos), device=pos.device), pos]  # (B, D)
    logits = model.mlm_head(h_mask)  # (B, V)
    return logits[:, torch.as_tensor(pvp.label_ids, device=logits.device)]  # (B, C)


def pet_loss(model: PETModel, batch: dict) -> torch.Tensor:
    """L_CE = - log softmax_l s_p(l | x)[y]: the `loss_fn` hook of `training.train`. (No auxiliary MLM term: see
    the module docstring.)"""
    return nn.functional.cross_entropy(verbalizer_logits(model.mlm, batch, model.pvp), batch["labels"])


def ensemble_logits(scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """PET's ensemble of the PVPs' models: (P, B, C) scores s_p and (P,) weights w(p) -> (B, C),
    s(l|x) = (1/Z) sum_p w(p) s_p(l|x), Z = sum_p w(p). Raw logits are averaged, not probabilities."""
    w = weights.to(scores.dtype)
    return (w[:, None, None] * scores).sum(0) / w.sum()


class PETModel(nn.Module):
    """A BertForMaskedLM read through one PVP: forward -> logits (B, C) = s_p and the CE loss, so that
    `training.evaluate` reports accuracy. Every parameter is the MLM's: nothing is added."""

    def __init__(self, mlm: BertForMaskedLM, pvp: PVP) -> None:
        super().__init__()
        self.mlm, self.pvp = mlm, pvp

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kw) -> ModelOutput:
        scores = verbalizer_logits(self.mlm, {"input_ids": input_ids, "attention_mask": attention_mask}, self.pvp)
        loss = nn.functional.cross_entropy(scores, labels) if labels is not None else None
        return ModelOutput(logits=scores, loss=loss)


# ---- data, training, evaluation --------------------------------------------------------------------------------
def few_shot_rows(rows: list[dict], k: int, seed: int, num_labels: int = 2) -> list[dict]:
    """K rows drawn with `seed`, class-balanced: K // C per label (the remainder to the first labels), in a
    seeded random order."""
    if not isinstance(k, int) or k < num_labels:
        raise ValueError(f"k={k!r}; allowed: an int >= the number of labels ({num_labels})")
    rng = random.Random(seed)
    chosen = []
    for label in range(num_labels):
        pool = [r for r in rows if r["label"] == label]
        n = k // num_labels + (1 if label < k % num_labels else 0)
        if n > len(pool):
            raise ValueError(f"k={k}: label {label} has only {len(pool)} rows")
        chosen += rng.sample(pool, n)
    rng.shuffle(chosen)
    return chosen


def accuracy(model: nn.Module, data: EncodedDataset) -> float:
    return evaluate(model, data, "accuracy")["accuracy"]


@torch.no_grad()
def scores_of(model: PETModel, data: EncodedDataset, batch_size: int = 128) -> torch.Tensor:
    """s_p for every row of `data`, in order: (N, C)."""
    model.eval()
    out = [model(**{k: v for k, v in data.collate(data.rows[i:i + batch_size]).items() if k != "labels"}).logits
           for i in range(0, len(data), batch_size)]
    return torch.cat(out)


def fine_tune(mlm: BertForMaskedLM, pvp: PVP, train_rows: list[dict], steps: int, lr: float, seed: int,
              batch_size: int = 16, eval_data: EncodedDataset | None = None, progress: bool | None = None,
              desc: str = "PET") -> tuple[PETModel, History]:
    """PET on one PVP: a fresh copy of `mlm`, every parameter trained (100 %), `steps` AdamW updates with
    `pet_loss` through the project's one loop. Returns (PETModel, History)."""
    torch.manual_seed(seed)
    model = PETModel(copy.deepcopy(mlm), pvp)
    for p in model.parameters():
        p.requires_grad_(True)
    data = pvp.dataset([r["text"] for r in train_rows], [r["label"] for r in train_rows])
    config = TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                         eval_every=steps if eval_data is not None else None)
    history = train(model, data, eval_data, config, loss_fn=pet_loss, desc=desc)
    return model.eval(), history


def fine_tune_head(base: str, tokenizer, train_rows: list[dict], steps: int, lr: float, seed: int,
                   batch_size: int = 16, eval_data=None, progress: bool | None = None, max_length: int = MAX_LENGTH,
                   quick: bool | None = None, desc: str = "head"):
    """The supervised baseline: the same pretrained trunk with a new, seeded classification head (mean pooling),
    every parameter trained on the same K rows, the same loop and budget. Returns (classifier, History)."""
    from minitransformer.training.batching import encode_classification

    torch.manual_seed(seed)  # the new head's initialisation
    model, _ = load_pretrained_classifier(base, 2, pooling="mean", quick=quick)
    data = encode_classification(tokenizer, [r["text"] for r in train_rows], [r["label"] for r in train_rows],
                                 max_length)
    config = TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                         eval_every=steps if eval_data is not None else None)
    history = train(model, data, eval_data, config, desc=desc)
    return model.eval(), history


# ---- the sweep -------------------------------------------------------------------------------------------------
def _machine() -> str:
    from .compare import machine

    return machine()


def _by_length(rows: list[dict]) -> list[dict]:
    """Rows sorted by text length: evaluation batches then pad little (the order changes no accuracy)."""
    return sorted(rows, key=lambda r: len(r["text"]))


def sweep(task: str = "rt", ks: tuple[int, ...] = KS, seeds: int = 3, steps: int = 40, batch: int = 16,
          patterns: int | None = None, lr_grid: tuple[float, ...] = LR_GRID, limit: int | None = None,
          quick: bool | None = None, log=print) -> dict:
    """Zero-shot accuracy of every pattern (dev, test), PET fine-tuning for every K x pattern x seed (test), the
    supervised head baseline and the pattern ensembles. `limit` cuts dev and test; `patterns` keeps the first
    ones. The lr of PET and of the head: chosen on dev over `lr_grid` (K = LR_K or the smallest K, seed 0, the
    first pattern). Returns the JSON-ready results (no file written)."""
    if task != "rt":
        raise ValueError(f"task={task!r}; allowed: 'rt' (the patterns are written for movie reviews)")
    quick = is_quick(quick)
    start = time.perf_counter()
    mlm, tok = load_masked_lm(BASE, quick=quick)
    pvps = rt_pvps(tok)[:patterns]
    train_rows = datasets.load_split(task, "train")
    split_rows = {s: _by_length(datasets.load_split(task, s)[:limit]) for s in ("dev", "test")}
    y = {s: torch.tensor([r["label"] for r in rows]) for s, rows in split_rows.items()}
    encoded = {p.name: {s: p.dataset([r["text"] for r in rows], y[s].tolist()) for s, rows in split_rows.items()}
               for p in pvps}
    from minitransformer.training.batching import encode_classification

    plain = {s: encode_classification(tok, [r["text"] for r in rows], y[s].tolist(), MAX_LENGTH)
             for s, rows in split_rows.items()}
    majority = max((0, 1), key=lambda c: sum(r["label"] == c for r in train_rows))
    result = {"task": task, "base": BASE, "quick": quick, "steps": steps, "batch": batch, "ks": list(ks),
              "seeds": list(range(seeds)), "max_length": MAX_LENGTH,
              "patterns": [{"name": p.name, "pattern": p.pattern, "verbalizer": list(p.verbalizer)} for p in pvps],
              "sizes": {s: len(rows) for s, rows in split_rows.items()},
              "majority": {"label": majority, **{s: float((y[s] == majority).float().mean()) for s in y}}}

    log("zero-shot ...")
    zero = {}
    for p in pvps:
        model = PETModel(mlm, p)
        zero[p.name] = {s: accuracy(model, encoded[p.name][s]) for s in ("dev", "test")}
        pred = scores_of(model, encoded[p.name]["test"]).argmax(-1)
        zero[p.name]["test_predicts_label_1"] = float((pred == 1).float().mean())
    result["zero_shot"] = zero

    lr_k = LR_K if LR_K in ks else min(ks)
    lr_rows = few_shot_rows(train_rows, lr_k, 0)
    grid = {"pet": {}, "head": {}}
    for lr in lr_grid:
        m, _ = fine_tune(mlm, pvps[0], lr_rows, steps, lr, 0, batch, progress=False)
        grid["pet"][f"{lr:g}"] = accuracy(m, encoded[pvps[0].name]["dev"])
        m, _ = fine_tune_head(BASE, tok, lr_rows, steps, lr, 0, batch, progress=False, quick=quick)
        grid["head"][f"{lr:g}"] = accuracy(m, plain["dev"])
        log(f"lr {lr:g}: dev PET {grid['pet'][f'{lr:g}']:.4f}  head {grid['head'][f'{lr:g}']:.4f}")
    chosen = {kind: float(max(g, key=lambda k: g[k])) for kind, g in grid.items()}  # ties: the first in the grid
    result["lr"] = {"grid": list(lr_grid), "k": lr_k, "dev": grid, **chosen}

    few, head, ens, ms = {}, {}, {}, []
    for k in ks:
        for seed in range(seeds):
            rows = few_shot_rows(train_rows, k, seed)
            test_scores, weights = [], []
            for p in pvps:
                k_data = p.dataset([r["text"] for r in rows], [r["label"] for r in rows])
                weights.append(accuracy(PETModel(mlm, p), k_data))  # wmean: train accuracy before training
                m, h = fine_tune(mlm, p, rows, steps, chosen["pet"], seed, batch, progress=False)
                ms.append(h.ms_per_step)
                s = scores_of(m, encoded[p.name]["test"])
                test_scores.append(s)
                few.setdefault(p.name, {}).setdefault(str(k), []).append(float((s.argmax(-1) == y["test"]).float().mean()))
            m, h = fine_tune_head(BASE, tok, rows, steps, chosen["head"], seed, batch, progress=False, quick=quick)
            head.setdefault(str(k), []).append(accuracy(m, plain["test"]))
            stacked = torch.stack(test_scores)  # (P, N, C)
            e = ens.setdefault(str(k), {"mean": [], "wmean": [], "weights": []})
            for kind, w in (("mean", torch.ones(len(pvps))), ("wmean", torch.tensor(weights))):
                e[kind].append(float((ensemble_logits(stacked, w).argmax(-1) == y["test"]).float().mean()))
            e["weights"].append(weights)
            log(f"K={k} seed {seed}: PET test " + ", ".join(f"{p.name} {few[p.name][str(k)][-1]:.3f}" for p in pvps)
                + f"; head {head[str(k)][-1]:.3f}; ensemble {e['mean'][-1]:.3f}  ({time.perf_counter() - start:.0f} s)")
    result.update(few_shot=few, head=head, ensemble=ens, ms_per_step=statistics.fmean(ms) if ms else 0.0,
                  seconds=round(time.perf_counter() - start, 1))
    return result


def summary(result: dict) -> dict:
    """Per K: mean and std over seeds of each pattern, the spread over patterns (min, max of the seed means) and
    over all pattern x seed runs, the head baseline and the ensembles."""
    out = {}
    for k in map(str, result["ks"]):
        runs = {name: v[k] for name, v in result["few_shot"].items()}
        means = {name: statistics.fmean(v) for name, v in runs.items()}
        every = [a for v in runs.values() for a in v]
        out[k] = {"patterns": {n: {"mean": means[n], "std": _std(runs[n])} for n in runs},
                  "all": {"mean": statistics.fmean(every), "std": _std(every), "min": min(every), "max": max(every)},
                  "best_pattern": max(means, key=means.get), "worst_pattern": min(means, key=means.get),
                  "head": {"mean": statistics.fmean(result["head"][k]), "std": _std(result["head"][k])},
                  **{f"ensemble_{kind}": {"mean": statistics.fmean(result["ensemble"][k][kind]),
                                          "std": _std(result["ensemble"][k][kind])} for kind in ("mean", "wmean")}}
    return out


def _std(v: list[float]) -> float:
    return statistics.stdev(v) if len(v) > 1 else 0.0


def table(result: dict) -> str:
    """The Markdown report."""
    s = summary(result)
    lines = [f"# PET on {result['task']} · {result['base']}", "", result["header"], "",
             f"Majority-class floor (always label {result['majority']['label']}): dev {result['majority']['dev']:.3f}, "
             f"test {result['majority']['test']:.3f}.", "", "## Zero-shot (no training)", "",
             "| pattern | verbalizer (rotten / fresh) | dev | test | test predicted 'fresh' |", "|---|---|---|---|---|"]
    for p in result["patterns"]:
        z = result["zero_shot"][p["name"]]
        lines.append(f"| `{p['pattern']}` | {' / '.join(p['verbalizer'])} | {z['dev']:.3f} | {z['test']:.3f} | "
                     f"{100 * z['test_predicts_label_1']:.0f} % |")
    lr = result["lr"]
    lines += ["", f"## Learning rate (chosen on dev: K = {lr['k']}, seed 0, pattern `{result['patterns'][0]['name']}`)",
              "", "| | " + " | ".join(f"{g:g}" for g in lr["grid"]) + " | chosen |",
              "|---|" + "---|" * (len(lr["grid"]) + 1)]
    for kind in ("pet", "head"):
        lines.append(f"| {'PET' if kind == 'pet' else 'head'} | " +
                     " | ".join(f"{lr['dev'][kind][f'{g:g}']:.3f}" for g in lr["grid"]) + f" | {lr[kind]:g} |")
    names = [p["name"] for p in result["patterns"]]
    lines += ["", "## Few-shot test accuracy (mean ± std over seeds)", "",
              "| K | " + " | ".join(f"`{n}`" for n in names) + " | all patterns × seeds (min–max) | ensemble (mean) | "
              "ensemble (wmean) | new head (supervised) |", "|---|" + "---|" * (len(names) + 4)]
    for k, v in s.items():
        cells = [f"{v['patterns'][n]['mean']:.3f} ± {v['patterns'][n]['std']:.3f}" for n in names]
        a = v["all"]
        lines.append(f"| {k} | " + " | ".join(cells) + f" | {a['mean']:.3f} ({a['min']:.3f}–{a['max']:.3f}) | "
                     f"{v['ensemble_mean']['mean']:.3f} ± {v['ensemble_mean']['std']:.3f} | "
                     f"{v['ensemble_wmean']['mean']:.3f} ± {v['ensemble_wmean']['std']:.3f} | "
                     f"{v['head']['mean']:.3f} ± {v['head']['std']:.3f} |")
    return "\n".join(lines)


def stem(quick: bool) -> str:
    return f"pet_rt_{BASE}" + ("_quick" if quick else "")


def load_results(quick: bool = False) -> dict:
    """The sweep's JSON: the committed `results/pet/` file, or (quick) the one in `data/results/pet/`."""
    path = datasets.results_dir(quick) / "pet" / f"{stem(quick)}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; it is written by `python -m methods.pet`"
                                + (" with QUICK=1" if quick else " (a full run)"))
    return json.loads(path.read_text(encoding="utf-8"))


QUICK_SETTINGS = {"ks": (32, 64), "seeds": 1, "steps": 4, "batch": 16, "limit": 128, "lr_grid": (3e-4,)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="as QUICK=1: the -quick checkpoint, a few steps, 1 seed")
    p.add_argument("--ks", default=None, help="comma-separated few-shot sizes (default 32,64,128,256)")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--patterns", type=int, default=None, help="keep the first N patterns")
    p.add_argument("--out", type=Path, default=None, help="default results/pet/ (quick: data/results/pet/)")
    a = p.parse_args(argv)
    quick = a.quick or is_quick()
    settings = dict(QUICK_SETTINGS) if quick else {"ks": KS, "seeds": 3, "steps": 40, "batch": 16, "limit": None,
                                                   "lr_grid": LR_GRID}
    for name in ("seeds", "steps", "batch"):
        if getattr(a, name) is not None:
            settings[name] = getattr(a, name)
    if a.ks:
        settings["ks"] = tuple(int(k) for k in a.ks.split(","))
    out = a.out or datasets.results_dir(quick) / "pet"
    out.mkdir(parents=True, exist_ok=True)
    where = _machine()
    result = sweep(quick=quick, patterns=a.patterns, **settings)
    command = "python -m methods.pet " + " ".join(argv if argv is not None else sys.argv[1:])
    result["machine"] = where
    result["command"] = ("QUICK=1 " if quick and not a.quick else "") + command.strip()
    result["header"] = (f"`{result['command']}`: PET on {result['task']} from {BASE}, {len(result['patterns'])} "
                        f"patterns, K in {result['ks']} class-balanced, {len(result['seeds'])} seed(s), "
                        f"{result['steps']} AdamW steps of {result['batch']} (every parameter trained), lr chosen on "
                        f"dev ({result['lr']['pet']:g} PET, {result['lr']['head']:g} head); test {result['sizes']['test']} "
                        f"sentences; {result['seconds'] / 60:.1f} min on {where}"
                        + ("; QUICK: the -quick checkpoint, numbers only show the pipeline works" if quick else ""))
    s = stem(quick)
    (out / f"{s}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / f"{s}.md").write_text(table(result) + "\n", encoding="utf-8")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
