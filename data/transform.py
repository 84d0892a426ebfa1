"""Pure functions that turn raw rows into clean, de-duplicated, deterministic splits.

Nothing here touches the network or the disk except the ``read_*`` parsers, so every rule
(normalisation, de-duplication, conflicting labels, stratified splitting, leak filtering of the
pretraining corpus) is unit-tested on tiny in-memory inputs in ``tests/test_data.py``.

Why de-duplicate *before* splitting: a text that is in both train and test makes test accuracy
measure memory, not generalisation. Two texts are "the same" when they are equal after
whitespace normalisation and case folding.
"""

from __future__ import annotations

import bz2
import csv
import json
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path


def normalise(text: str) -> str:
    """NFC-normalise, collapse every run of whitespace to one space, strip the ends."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def key(text: str) -> str:
    """The identity used for duplicates and leak checks: normalised and case-folded."""
    return normalise(text).casefold()


def dedup_labelled(rows: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Normalise (text, label) rows, drop empties, exact duplicates and texts with conflicting labels.

    The first spelling of a text is kept, in first-seen order. Returns the rows and counts:
    ``raw``, ``empty``, ``duplicates`` (extra copies removed), ``conflicting_texts`` (distinct
    texts dropped because they carry two labels), ``conflicting_rows`` and ``kept``.
    """
    first: dict[str, str] = {}
    labels: dict[str, set[str]] = defaultdict(set)
    copies: Counter[str] = Counter()
    stats = Counter(raw=0, empty=0)
    for text, label in rows:
        stats["raw"] += 1
        text = normalise(text)
        if not text:
            stats["empty"] += 1
            continue
        k = text.casefold()
        first.setdefault(k, text)
        labels[k].add(label)
        copies[k] += 1
    out: list[tuple[str, str]] = []
    stats.update(duplicates=0, conflicting_texts=0, conflicting_rows=0)
    for k, text in first.items():
        if len(labels[k]) > 1:
            stats["conflicting_texts"] += 1
            stats["conflicting_rows"] += copies[k]
            continue
        stats["duplicates"] += copies[k] - 1
        out.append((text, next(iter(labels[k]))))
    stats["kept"] = len(out)
    return out, dict(stats)


def _cut(items: list, fractions: Sequence[float]) -> list[list]:
    """Cut a list into consecutive parts of the given fractions (rounded; the last takes the rest)."""
    n, parts, start = len(items), [], 0
    for frac in fractions[:-1]:
        end = min(n, start + round(n * frac))
        parts.append(items[start:end])
        start = end
    parts.append(items[start:])
    return parts


def stratified_split(rows: Sequence[tuple[str, str]], fractions: Sequence[float], seed: int
                     ) -> list[list[tuple[str, str]]]:
    """Split (text, label) rows per label with the given fractions, reproducibly for a seed.

    Each label's rows are shuffled and cut separately, so every split keeps the class balance;
    each split is then shuffled so labels are interleaved (plain batching then sees mixed classes).
    """
    rng = random.Random(seed)  # seeded instance: no global state, same result on every platform
    by_label: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    splits: list[list[tuple[str, str]]] = [[] for _ in fractions]
    for label in sorted(by_label):
        items = list(by_label[label])
        rng.shuffle(items)
        for split, part in zip(splits, _cut(items, fractions)):
            split.extend(part)
    for split in splits:
        rng.shuffle(split)
    return splits


def dedup_pairs(pairs: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Normalise (prompt, reply) pairs; drop pairs with an empty side and repeated pairs."""
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    stats = Counter(raw=0, empty=0, duplicates=0)
    for prompt, reply in pairs:
        stats["raw"] += 1
        prompt, reply = normalise(prompt), normalise(reply)
        if not prompt or not reply:
            stats["empty"] += 1
            continue
        k = (prompt.casefold(), reply.casefold())
        if k in seen:
            stats["duplicates"] += 1
            continue
        seen.add(k)
        out.append((prompt, reply))
    stats["kept"] = len(out)
    return out, dict(stats)


def random_split(items: Sequence, fractions: Sequence[float], seed: int) -> list[list]:
    """Shuffle ``items`` with a seeded RNG and cut them by ``fractions``."""
    items = list(items)
    random.Random(seed).shuffle(items)
    return _cut(items, fractions)


def filter_leaks(lines: Iterable[str], forbidden: set[str]) -> tuple[list[str], int]:
    """Drop lines whose ``key`` is in ``forbidden`` (dev/test texts). Returns (kept, dropped)."""
    kept, dropped = [], 0
    for line in lines:
        line = normalise(line)
        if not line:
            continue
        if key(line) in forbidden:
            dropped += 1
        else:
            kept.append(line)
    return kept, dropped


# --- parsers of the raw files (formats inspected by hand; see data/README.md) ---

def read_rt(path: Path) -> tuple[list[tuple[str, str]], int]:
    """Review snippets of the bz2 CSV (category,text,movie_name,...); plot synopses are skipped."""
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    reviews = [(r["text"], r["category"]) for r in rows if r["category"] in ("fresh", "rotten")]
    return reviews, len(rows) - len(reviews)


def read_sms(path: Path) -> list[tuple[str, str]]:
    """The CSV has columns ``,spam,text`` with spam 0/1; map to the names ham/spam."""
    with open(path, encoding="utf-8", newline="") as f:
        return [(r["text"], ("ham", "spam")[int(r["spam"])]) for r in csv.DictReader(f)]


def read_trec(path: Path) -> list[tuple[str, str]]:
    """Lines ``COARSE:fine question ...``; the coarse class is the part before the colon."""
    rows = []
    # split("\n"), not splitlines(): the latter also breaks on rare control characters.
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            label, question = line.split(" ", 1)
            rows.append((question, label.split(":", 1)[0]))
    return rows


def read_dialog(path: Path) -> list[tuple[str, str]]:
    """Lines ``statement<TAB>reply``."""
    lines = path.read_text(encoding="utf-8").split("\n")
    return [(a, b) for a, b in (line.split("\t", 1) for line in lines if "\t" in line)]


def read_kjv(path: Path) -> list[str]:
    """Verse texts of the JSON-lines Bible, in canonical order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]
