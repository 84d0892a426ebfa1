"""Tokenizers of the three bases, built with the `tokenizers` library (Sennrich et al. 2016, BPE; Wu et al. 2016,
WordPiece).

    WordPiece (mini-bert-mlm):  lowercase, split on whitespace and punctuation, then greedy longest-match
                                sub-words ("playing" -> "play", "##ing"); [CLS] x [SEP] added around a text.
    byte-level BPE (mini-gpt):  text as UTF-8 bytes, then the most frequent adjacent pair merged again and
                                again until the vocabulary is full; any string is encodable, nothing is [UNK].
    MiniLM's WordPiece:         the 30,522-token uncased BERT vocabulary of all-MiniLM-L6-v2, read from its
                                `tokenizer.json` (used by `minilm` and by the distilled `mini-bert`).

Special-token ids (fixed, tested):
    WordPiece:  [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4       (MiniLM's: [PAD]=0, [UNK]=100, [CLS]=101,
                                                                     [SEP]=102, [MASK]=103)
    BPE:        <|endoftext|>=0: end of text, and also the pad id (padding is never attended: attention_mask=0)

Padding and truncation: MiniLM's `tokenizer.json` pads every text to 128 tokens and truncates at 128. We switch
padding off (batches are padded per batch by `batching.make_loader`) and truncate at 512 tokens, the model's
number of positions. The tokenizers trained here have no padding and no truncation either.
Training is deterministic: the same corpus gives the same vocabulary (tested; see `train_wordpiece`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from .datasets import minilm_dir

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
EOT = "<|endoftext|>"
WORDPIECE_SIZE = 8000
BPE_SIZE = 8192  # TransformerConfig.mini_gpt's vocab_size


def _cls_sep(tok: Tokenizer) -> processors.TemplateProcessing:
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    return processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                         special_tokens=[("[CLS]", cls), ("[SEP]", sep)])


def train_wordpiece(texts: Iterable[str], vocab_size: int = WORDPIECE_SIZE) -> Tokenizer:
    """A lowercase BERT-style WordPiece trained on `texts`; special tokens [PAD]=0 .. [MASK]=4.

    Deterministic by construction: the library's WordPieceTrainer breaks ties between equally frequent merges in
    a hash-map order that changes from run to run, so we train a plain BPE (deterministic) on words marked with
    a word-start symbol "▁" and read its vocabulary as WordPiece's: "▁play" -> "play", "ing" -> "##ing".
    Ids: specials, the characters, the same characters as "##" continuations, then the learned pieces in merge
    order. Encoding is WordPiece's greedy longest match ("playing" -> "play", "##ing").
    """
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizer
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(),
                                                 pre_tokenizers.Metaspace(prepend_scheme="always")])
    bpe.train_from_iterator(list(texts), trainer=trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                                                     show_progress=False))
    learned = sorted(bpe.get_vocab().items(), key=lambda kv: kv[1])
    chars = sorted({t.removeprefix("▁") for t, _ in learned if len(t.removeprefix("▁")) == 1})
    pieces = [t[1:] if t.startswith("▁") else "##" + t for t, _ in learned if len(t.removeprefix("▁")) > 1]
    vocab: dict[str, int] = {}
    for t in list(BERT_SPECIALS) + chars + ["##" + c for c in chars] + pieces:
        if len(vocab) < vocab_size:
            vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(list(BERT_SPECIALS))
    tok.post_processor = _cls_sep(tok)
    return tok


def train_byte_bpe(texts: Iterable[str], vocab_size: int = BPE_SIZE) -> Tokenizer:
    """A GPT-2-style byte-level BPE trained on `texts`; <|endoftext|> = 0 (end of text and pad id)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)  # deterministic: the alphabet is given, sorted
    return tok


def minilm_tokenizer(folder: str | Path | None = None) -> Tokenizer:
    """MiniLM's own WordPiece (30,522 tokens) from `tokenizer.json`, without its fixed padding to 128,
    truncated at 512 tokens (the model's positions)."""
    tok = Tokenizer.from_file(str(Path(folder or minilm_dir()) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(512)
    return tok


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizer saved by `Tokenizer.save` (a `tokenizer.json`)."""
    return Tokenizer.from_file(str(path))
