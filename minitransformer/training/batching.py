"""Text to training batches: tokenize once, pad per batch (dynamic padding), shuffle deterministically.

    encode_classification(tok, texts, labels, max_length)  rows of unequal length, one label each
    encode_lm(tok, texts, block_size)                      text + EOS, concatenated, cut into equal blocks
    make_loader(dataset, batch_size, shuffle, seed)        a DataLoader whose collate pads each batch

Dynamic padding: a row is stored without padding; `collate` pads a batch to its own longest row, not to
`max_length`, so a batch of short sentences costs short-sentence compute. Padding never counts:
`attention_mask` is 0 there, and token-level `labels` are -100 there (ignored by the loss).

Pad id: the tokenizer's padding configuration (`tokenizer.padding["pad_id"]`) if it has one, else the id
of the token "[PAD]", else 0. EOS id (`encode_lm`): `eos_token` if given, else the first of
"<|endoftext|>", "[SEP]", "</s>" in the vocabulary.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


def pad_id_of(tokenizer) -> int:
    """The id used for padding (see the module docstring for the order of choices)."""
    if tokenizer.padding is not None:
        return int(tokenizer.padding["pad_id"])
    pad = tokenizer.token_to_id("[PAD]")
    return 0 if pad is None else int(pad)


def pad_batch(rows: list, pad_id: int = 0, value: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad rows of token ids (lists or 1-d tensors of unequal length) into one batch.

    Returns (ids, attention_mask), both (B, T) with T the longest row; ids hold `pad_id` (or `value`, e.g. -100
    for token labels) past each row's end, and the mask is 1 on real tokens, 0 on padding. The only padding
    function of the project: the loader's `collate`, the frozen-probe features and distillation use it."""
    lengths = torch.tensor([len(r) for r in rows])
    T = int(lengths.max())
    ids = torch.full((len(rows), T), pad_id if value is None else value, dtype=torch.long)  # (B, T)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # (B, T)
    return ids, mask


class EncodedDataset(Dataset):
    """Rows of unpadded tensors: each row a dict with `input_ids` (T_i,) and `labels` (() or (T_i,)),
    optionally `token_type_ids` (T_i,). `collate` turns a list of rows into one padded batch."""

    def __init__(self, rows: list[dict[str, torch.Tensor]], pad_id: int = 0) -> None:
        self.rows, self.pad_id = rows, pad_id

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.rows[i]

    def collate(self, rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Pad to the longest row of this batch: input_ids, attention_mask (B, T); labels (B,) or (B, T)."""
        input_ids, attention_mask = pad_batch([r["input_ids"] for r in rows], self.pad_id)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in rows[0]:
            batch["token_type_ids"] = pad_batch([r["token_type_ids"] for r in rows], 0)[0]
        if "labels" in rows[0]:
            token_level = rows[0]["labels"].dim() == 1
            batch["labels"] = (pad_batch([r["labels"] for r in rows], value=-100)[0] if token_level
                               else torch.stack([r["labels"] for r in rows]))
        return batch


def encode_classification(tokenizer, texts: list[str], labels: list[int] | None, max_length: int = 128) -> EncodedDataset:
    """Tokenize `texts` (with the tokenizer's special tokens, e.g. [CLS] ... [SEP]), truncated to
    `max_length` tokens; one integer label per text (or `labels=None`, for prediction only)."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if labels is not None and len(labels) != len(texts):
        raise ValueError(f"texts and labels must have the same length, got {len(texts)} and {len(labels)}")
    tok = type(tokenizer).from_str(tokenizer.to_str())  # a copy: the caller's tokenizer keeps its settings
    tok.no_padding()
    tok.enable_truncation(max_length)  # truncation done by the tokenizer keeps the final [SEP]
    rows = [{"input_ids": torch.tensor(e.ids, dtype=torch.long)} for e in tok.encode_batch(list(texts))]
    if labels is not None:
        for row, y in zip(rows, labels):
            row["labels"] = torch.tensor(int(y), dtype=torch.long)
    return EncodedDataset(rows, pad_id_of(tokenizer))


def encode_lm(tokenizer, texts: list[str], block_size: int, eos_token: str | None = None) -> EncodedDataset:
    """Causal-LM blocks: every text followed by EOS, all concatenated, cut into rows of `block_size`
    tokens (the ragged tail is dropped); labels = input_ids (the model shifts them inside)."""
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}")
    names = [eos_token] if eos_token is not None else ["<|endoftext|>", "[SEP]", "</s>"]
    eos = next((tokenizer.token_to_id(n) for n in names if tokenizer.token_to_id(n) is not None), None)
    if eos is None:
        raise ValueError(f"encode_lm: no EOS token in the vocabulary; tried {names}")
    tok = type(tokenizer).from_str(tokenizer.to_str())
    tok.no_padding()
    tok.no_truncation()
    stream: list[int] = []
    for e in tok.encode_batch(list(texts), add_special_tokens=False):
        stream += e.ids + [eos]
    n = len(stream) // block_size
    ids = torch.tensor(stream[: n * block_size], dtype=torch.long).view(n, block_size)  # (N, T)
    return EncodedDataset([{"input_ids": x, "labels": x} for x in ids], pad_id_of(tokenizer))


def make_loader(dataset, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """A DataLoader with its own seeded generator: the same seed gives the same order, epoch after epoch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    collate = getattr(dataset, "collate", None)  # EncodedDataset pads; a TensorDataset needs none
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate)
