"""Tests of the data pipeline: split/dedup/normalise rules on toy inputs, then the prepared files.

The first group needs no download. The second group checks the real ``data/processed/`` files
(counts, disjoint splits, no dev/test text in the pretraining corpus) and skips when
``make data`` has not been run.
"""

from __future__ import annotations

import bz2
import io
import json
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "data"))  # data/ is a folder of scripts, not a package

import fetch  # noqa: E402
import prepare  # noqa: E402
import transform as T  # noqa: E402
from sources import Archive, Member  # noqa: E402

from minitransformer.bases import datasets  # noqa: E402

TOY = [(f"review number {i}", "pos" if i % 3 else "neg") for i in range(90)]


# --- rules, on in-memory inputs -------------------------------------------------------------

def test_normalise_collapses_whitespace_and_key_folds_case() -> None:
    assert T.normalise("  a\tb \n\n c  ") == "a b c"
    assert T.key(" Hello  World ") == T.key("hello world") == "hello world"


def test_dedup_removes_empties_and_case_insensitive_duplicates() -> None:
    rows, stats = T.dedup_labelled([("Good  film", "pos"), ("good film", "pos"), ("  ", "neg"), ("bad", "neg")])
    assert rows == [("Good film", "pos"), ("bad", "neg")]  # first spelling kept, order kept
    assert stats == {"raw": 4, "empty": 1, "duplicates": 1, "conflicting_texts": 0,
                     "conflicting_rows": 0, "kept": 2}


def test_dedup_drops_texts_with_conflicting_labels() -> None:
    rows, stats = T.dedup_labelled([("ok", "pos"), ("OK", "neg"), ("ok", "pos"), ("fine", "pos")])
    assert rows == [("fine", "pos")]
    assert (stats["conflicting_texts"], stats["conflicting_rows"], stats["duplicates"]) == (1, 3, 0)


def test_stratified_split_is_deterministic_disjoint_and_balanced() -> None:
    a = T.stratified_split(TOY, (0.8, 0.1, 0.1), seed=7)
    b = T.stratified_split(list(TOY), (0.8, 0.1, 0.1), seed=7)
    assert a == b  # same seed -> identical splits
    assert T.stratified_split(TOY, (0.8, 0.1, 0.1), seed=8) != a
    assert sorted(r for part in a for r in part) == sorted(TOY)  # a partition: nothing lost or doubled
    assert [len(p) for p in a] == [72, 9, 9]
    for part, n in zip(a, (72, 9, 9)):
        assert sum(y == "neg" for _, y in part) == n // 3  # class ratio kept in every split


def test_stratified_split_on_a_tiny_class() -> None:
    rows = TOY + [("rare one", "rare"), ("rare two", "rare")]
    train, dev, test = T.stratified_split(rows, (0.8, 0.1, 0.1), seed=0)
    assert sum(y == "rare" for _, y in train + dev + test) == 2


def test_dialog_pairs_dedup_and_split() -> None:
    pairs, stats = T.dedup_pairs([("Hi.", "hello."), ("hi.", "Hello. "), ("", "x"), ("a", "b")])
    assert pairs == [("Hi.", "hello."), ("a", "b")]
    assert (stats["empty"], stats["duplicates"], stats["kept"]) == (1, 1, 2)
    items = [(str(i), str(i + 1)) for i in range(200)]
    parts = T.random_split(items, (0.9, 0.05, 0.05), seed=3)
    assert parts == T.random_split(items, (0.9, 0.05, 0.05), seed=3)
    assert [len(p) for p in parts] == [180, 10, 10]
    assert len({x for p in parts for x in p}) == 200


def test_filter_leaks_drops_forbidden_lines() -> None:
    kept, dropped = T.filter_leaks(["What?", "  ", "In the beginning", "WHAT?"], {T.key("what?")})
    assert (kept, dropped) == (["In the beginning"], 2)


def test_readers_parse_the_raw_formats(tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("DESC:manner How did it start ?\nNUM:date When ?\n\n")
    assert T.read_trec(tmp_path / "q.txt") == [("How did it start ?", "DESC"), ("When ?", "NUM")]
    (tmp_path / "s.csv").write_text(',spam,text\n0,0,"hi, there"\n1,1,WIN now\n')
    assert T.read_sms(tmp_path / "s.csv") == [("hi, there", "ham"), ("WIN now", "spam")]
    (tmp_path / "d.txt").write_text("how are you?\tfine.\nno tab here\n")
    assert T.read_dialog(tmp_path / "d.txt") == [("how are you?", "fine.")]
    csv = "category,text,movie_name,has_plot_and_reviews\nplot,A plot.,m,True\nfresh,Great.,m,True\n"
    (tmp_path / "r.csv.bz2").write_bytes(bz2.compress(csv.encode()))
    assert T.read_rt(tmp_path / "r.csv.bz2") == ([("Great.", "fresh")], 1)
    (tmp_path / "k.jsonl").write_text('{"citation": "Gen 1:1", "text": "In the beginning"}\n')
    assert T.read_kjv(tmp_path / "k.jsonl") == ["In the beginning"]


def test_resolve_adds_dependencies_of_the_pretraining_corpus() -> None:
    assert prepare.resolve(["kjv"]) == ["rt", "sms_spam", "trec", "dialog", "kjv"]
    assert prepare.resolve(["minilm"]) == ["minilm"]


# --- downloads, checksums, atomic writes (no network: archives are built here) --------------

def test_checksum_mismatch_names_file_expected_got_and_fix() -> None:
    with pytest.raises(fetch.DataError, match=r"x\.whl(.|\n)*expected sha256 aa(.|\n)*got +sha256 bb(.|\n)*delete"):
        fetch.check_digest("x.whl", "aa", "bb", "delete data/raw/x.whl and rerun")


def test_corrupt_cached_archive_is_refused(tmp_path: Path) -> None:
    archive = Archive("pkg", "1.0", "pkg-1.0.whl", "0" * 64, "MIT")
    (tmp_path / archive.filename).write_bytes(b"not the pinned file")
    with pytest.raises(fetch.DataError, match="delete"):
        fetch.fetch_archive(archive, tmp_path)


def test_write_atomic_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old")

    def boom(*args: object) -> None:
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C just before the rename

    monkeypatch.setattr(fetch.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        fetch.write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_extract_verifies_keeps_and_repairs(tmp_path: Path, kind: str) -> None:
    payload = b"label text\n"
    path = tmp_path / ("pkg.whl" if kind == "zip" else "pkg.tar.gz")
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("pkg/data/f.txt", payload)
    else:
        with tarfile.open(path, "w:gz") as t:
            info = tarfile.TarInfo("pkg/data/f.txt")
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    good = Member("pkg/data/f.txt", "task/f.txt", fetch.sha256_bytes(payload))
    raw = tmp_path / "raw"
    assert fetch.extract_members(path, (good,), raw) == (0, 1)
    assert fetch.extract_members(path, (good,), raw) == (1, 0)  # second run keeps the verified file
    (raw / "task/f.txt").write_bytes(b"damaged")
    assert fetch.extract_members(path, (good,), raw) == (0, 1)
    assert (raw / "task/f.txt").read_bytes() == payload
    with pytest.raises(fetch.DataError, match="expected sha256"):
        fetch.extract_members(path, (Member("pkg/data/f.txt", "task/g.txt", "0" * 64),), raw)


def test_readers_say_run_make_data_when_files_are_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "PROCESSED_DIR", tmp_path)
    monkeypatch.setattr(datasets, "RAW_DIR", tmp_path)
    for call in (lambda: datasets.load_split("rt", "train"), datasets.pretrain_corpus_path, datasets.minilm_dir):
        with pytest.raises(FileNotFoundError, match="make data"):
            call()
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_split("rt", "validation")


# --- the real prepared files (skipped until `make data` has run) -----------------------------

# Counts of the pinned sources after processing; a change means the rules or the inputs changed.
EXPECTED_SPLITS = {
    "rt": (10200, 1275, 1276), "sms_spam": (3609, 451, 451),
    "trec": (4304, 538, 538), "dialog": (57370, 3187, 3188),
}


@pytest.fixture(scope="module")
def prepared() -> dict:
    """The manifest of the prepared data; skips the test when ``make data`` has not been run."""
    if not (datasets.PROCESSED_DIR / "manifest.json").exists():
        pytest.skip("data/processed/ not prepared: run `make data`")
    return datasets.manifest()


def _keys(task: str, split: str) -> set[str]:
    fields = ("prompt", "reply") if task == "dialog" else ("text",)
    return {T.key(row[f]) for row in datasets.load_split(task, split) for f in fields}


@pytest.mark.parametrize("task", list(EXPECTED_SPLITS))
def test_split_sizes_match_manifest_and_pins(prepared: dict, task: str) -> None:
    sizes = tuple(len(datasets.load_split(task, s)) for s in datasets.SPLITS)
    assert sizes == EXPECTED_SPLITS[task]
    assert sizes == tuple(prepared["datasets"][task]["splits"][s] for s in datasets.SPLITS)


def test_processed_files_match_their_recorded_checksums(prepared: dict) -> None:
    for name, digest in prepared["files"].items():
        assert fetch.sha256_file(datasets.PROCESSED_DIR / name) == digest, name


@pytest.mark.parametrize("task", datasets.CLASSIFICATION_TASKS)
def test_classification_rows_are_clean_and_splits_disjoint(prepared: dict, task: str) -> None:
    n_labels = len(datasets.label_names(task))
    for split in datasets.SPLITS:
        for row in datasets.load_split(task, split):
            assert set(row) == {"text", "label"} and 0 <= row["label"] < n_labels
            assert row["text"] == T.normalise(row["text"]) != ""
    train, dev, test = (_keys(task, s) for s in datasets.SPLITS)
    assert not (train & dev or train & test or dev & test)


def test_dialog_pairs_are_not_shared_between_splits(prepared: dict) -> None:
    pairs = [{(T.key(r["prompt"]), T.key(r["reply"])) for r in datasets.load_split("dialog", s)}
             for s in datasets.SPLITS]
    assert not (pairs[0] & pairs[1] or pairs[0] & pairs[2] or pairs[1] & pairs[2])


def test_pretraining_corpus_holds_no_dev_or_test_text(prepared: dict) -> None:
    forbidden = set().union(*(_keys(t, s) for t in datasets.TASKS for s in ("dev", "test")))
    lines = datasets.pretrain_corpus_path().read_text(encoding="utf-8").splitlines()
    assert len(lines) == prepared["datasets"]["kjv"]["lines"]
    assert not [line for line in lines if T.key(line) in forbidden]


def test_minilm_files_are_a_plain_bert_checkpoint(prepared: dict) -> None:
    folder = datasets.minilm_dir()
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 6, 30522)
    with open(folder / "model.safetensors", "rb") as f:  # header: 8-byte length, then JSON
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    assert "embeddings.word_embeddings.weight" in header  # no "bert." prefix
    assert json.loads((folder / "1_Pooling/config.json").read_text())["pooling_mode_mean_tokens"]
