"""A seq2seq task the project makes itself: date normalisation ("tuesday, 3rd of march 2021" -> "2021-03-03").

Used by notebook 01 to train the original encoder-decoder in about a minute on a CPU. Characters are the
tokens (a 64-entry vocabulary fits `TransformerConfig.mini_seq2seq()`), so attention maps are easy to read:
the decoder writing the month digits should look at the month word. Seeded: the same seed gives the same
pairs. Dates are drawn from 1900-01-01 .. 2099-12-31; the formats are listed in `FORMATS`.
"""

from __future__ import annotations

import datetime as dt
import random

import torch

PAD, BOS, EOS, UNK = 0, 1, 2, 3
CHARS = "0123456789abcdefghijklmnopqrstuvwxyz ,./-'"
VOCAB = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", *CHARS]
STOI = {c: i for i, c in enumerate(VOCAB)}


def _ordinal(d: int) -> str:
    return f"{d}{'th' if 11 <= d % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


FORMATS = {  # name -> how a date is written (all lower case)
    "long": lambda d: f"{d.day} {d.strftime('%B').lower()} {d.year}",
    "us_long": lambda d: f"{d.strftime('%B').lower()} {d.day}, {d.year}",
    "short_month": lambda d: f"{d.day} {d.strftime('%b').lower()} {d.year}",
    "weekday": lambda d: f"{d.strftime('%A').lower()}, {d.day} {d.strftime('%B').lower()} {d.year}",
    "ordinal": lambda d: f"the {_ordinal(d.day)} of {d.strftime('%B').lower()} {d.year}",
    "us_slash": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
    "dotted": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    "apostrophe": lambda d: f"{d.strftime('%b').lower()} {d.day} '{d.year % 100:02d}" if 2000 <= d.year < 2100
    else f"{d.strftime('%b').lower()} {d.day} {d.year}",
}


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (source, target) pairs; target is ISO 8601 (YYYY-MM-DD). The apostrophe format assumes the 2000s."""
    rng = random.Random(seed)
    start, days = dt.date(1900, 1, 1), (dt.date(2099, 12, 31) - dt.date(1900, 1, 1)).days
    names = sorted(FORMATS)
    pairs = []
    for _ in range(n):
        d = start + dt.timedelta(days=rng.randrange(days + 1))
        pairs.append((FORMATS[rng.choice(names)](d), d.isoformat()))
    return pairs


def encode(text: str) -> list[int]:
    return [STOI.get(c, UNK) for c in text]


def decode(ids) -> str:
    """Ids -> text, stopping at the first EOS; special tokens are dropped."""
    out = []
    for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
        if i == EOS:
            break
        if i > UNK:
            out.append(VOCAB[i])
    return "".join(out)


def collate(pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Pad a batch: source ids + mask (B, S); labels = target + EOS, padded with -100 (B, T)."""
    src = [encode(s) for s, _ in pairs]
    tgt = [encode(t) + [EOS] for _, t in pairs]
    S, T = max(map(len, src)), max(map(len, tgt))
    input_ids = torch.tensor([s + [PAD] * (S - len(s)) for s in src])
    attention_mask = torch.tensor([[1] * len(s) + [0] * (S - len(s)) for s in src])
    labels = torch.tensor([t + [-100] * (T - len(t)) for t in tgt])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def exact_match(model, pairs: list[tuple[str, str]], batch_size: int = 256) -> float:
    """Fraction of sources whose greedy decoding equals the ISO target exactly."""
    hits = 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        b = collate(chunk)
        out = model.generate(b["input_ids"], max_new_tokens=11, attention_mask=b["attention_mask"])
        hits += sum(decode(o) == t for o, (_, t) in zip(out, chunk))
    return hits / len(pairs)
