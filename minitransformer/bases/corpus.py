"""The pretraining corpus and what the pretraining recipes do to it: held-out lines, packed blocks, BERT masking.

Shared by `pretrain.py` (MLM, causal LM) and `distill.py` (the corpus sample of the distillation set), with
`run_steps`, the recipes' settings of the project's one training loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..training.train import TrainConfig, train
from .checkpoints import SEED
from .datasets import pretrain_corpus_path


def heldout_split(lines: list[str], every: int = 50) -> tuple[list[str], list[str]]:
    """(train, held-out): every `every`-th line (index % every == every - 1) is held out."""
    return ([t for i, t in enumerate(lines) if i % every != every - 1],
            [t for i, t in enumerate(lines) if i % every == every - 1])


def corpus_lines() -> list[str]:
    """The non-empty lines of `data/processed/pretrain.txt` (KJV verses and dialogue utterances)."""
    return [t for t in pretrain_corpus_path().read_text(encoding="utf-8").splitlines() if t.strip()]


def pack_blocks(ids_per_text: list[list[int]], block: int, sep: int, bos: int | None = None) -> torch.Tensor:
    """Concatenate texts (each followed by `sep`) and cut into rows of `block` tokens, each row starting with
    `bos` when given (BERT's [CLS]); the ragged tail is dropped. Returns (N, block)."""
    body = block - (bos is not None)
    stream = [t for ids in ids_per_text for t in ids + [sep]]
    n = len(stream) // body
    rows = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
    return rows if bos is None else torch.cat([torch.full((n, 1), bos), rows], 1)


def mask_tokens(input_ids: torch.Tensor, special_ids: list[int], mask_id: int, vocab_size: int,
                generator: torch.Generator, prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking. Returns (inputs, labels), labels = -100 except at the chosen positions. Special tokens
    (padding included) are never chosen; random replacements are drawn from the ids above the largest special
    id. That is "every non-special id" for this project's WordPiece and BPE, which put their specials first; on
    MiniLM's vocab.txt ([PAD] 0, [unused*] 1-99, [UNK] [CLS] [SEP] [MASK] 100-103) it also skips the unused ids."""
    eligible = ~torch.isin(input_ids, torch.tensor(special_ids))
    chosen = (torch.rand(input_ids.shape, generator=generator) < prob) & eligible
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    u = torch.rand(input_ids.shape, generator=generator)
    low = max(special_ids) + 1  # the specials are the first ids of our vocabularies
    rand_tok = torch.randint(low, vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), rand_tok, inputs)
    return inputs, labels


def epoch_batches(n: int, steps: int, batch_size: int, g: torch.Generator) -> torch.Tensor:
    """(steps, batch_size) row indices: shuffled epochs over `n` rows, one after the other."""
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(steps * batch_size // n + 1)])
    return order[: steps * batch_size].view(steps, batch_size)


def run_steps(model: torch.nn.Module, batches: list[dict], loss_fn: Callable, lr: float, desc: str,
              params: list | None = None, progress: bool | None = None) -> dict:
    """Train `model` on `batches` (one dict per step, in order) with `train`: AdamW, weight decay 0.01, 5 %
    warm-up then cosine decay, clipping at 1, seeded with SEED. Returns the loss curve (mean per 1/20 of the
    run), the first/last losses, steps done and seconds."""
    config = TrainConfig(max_steps=len(batches), lr=lr, weight_decay=0.01, warmup_ratio=0.05, schedule="cosine",
                         max_grad_norm=1.0, seed=SEED, progress=progress)
    history = train(model, batches, config=config, params=params, loss_fn=loss_fn, desc=desc)
    losses = history.train_loss
    k = max(1, len(losses) // 20)
    curve = [round(sum(losses[i:i + k]) / len(losses[i:i + k]), 4) for i in range(0, len(losses), k)]
    return {"steps": len(losses), "seconds": round(history.seconds, 1), "loss_first": losses[0],
            "loss_last": sum(losses[-k:]) / len(losses[-k:]), "loss_curve": curve, "losses": losses}
