"""Reference solutions of notebook 02's exercises, and one typical wrong answer per exercise.

The tests run every checker of `minitransformer.teaching.checks.nb02_bert_gpt` on both: the solution must pass,
the wrong answer must fail (and the checker must not raise).
"""

from __future__ import annotations

import math

import torch

from minitransformer import TransformerConfig


# ---- 1. BERT masking with given random draws ----------------------------------------------------------
def bert_mask(input_ids, r, u, random_ids, special_ids, mask_id, prob=0.15):
    """Chosen = r < prob on non-special tokens; then [MASK] (u < 0.8), random (u < 0.9) or kept."""
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for s in special_ids:
        special |= input_ids == s
    chosen = (r < prob) & ~special
    labels = input_ids.masked_fill(~chosen, -100)
    inputs = input_ids.clone()
    inputs[chosen & (u < 0.8)] = mask_id
    to_random = chosen & (u >= 0.8) & (u < 0.9)
    inputs[to_random] = random_ids[to_random]
    return inputs, labels


def bert_mask_wrong(input_ids, r, u, random_ids, special_ids, mask_id, prob=0.15):
    """Forgets the special tokens: [CLS], [SEP] and [PAD] can be masked and become targets."""
    chosen = r < prob
    labels = input_ids.masked_fill(~chosen, -100)
    inputs = input_ids.clone()
    inputs[chosen & (u < 0.8)] = mask_id
    to_random = chosen & (u >= 0.8) & (u < 0.9)
    inputs[to_random] = random_ids[to_random]
    return inputs, labels


# ---- 2. parameters of the embeddings ------------------------------------------------------------------
def embedding_params(c: TransformerConfig) -> int:
    """V·D + P·D + S·D, plus the LayerNorm's 2D in a post-LN (BERT) model; GPT-2 normalises inside the blocks."""
    D = c.d_model
    return (c.vocab_size + c.max_positions + c.type_vocab_size) * D + (0 if c.norm_first else 2 * D)


def embedding_params_wrong(c: TransformerConfig) -> int:
    """BERT's formula everywhere: counts a LayerNorm that GPT-2's embeddings do not have."""
    return (c.vocab_size + c.max_positions + c.type_vocab_size) * c.d_model + 2 * c.d_model


# ---- 3. top-k filtering ----------------------------------------------------------------------------------
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep every logit >= the k-th largest of its row; the others become -inf (probability 0)."""
    k = min(k, logits.size(-1))
    kth = logits.sort(dim=-1, descending=True).values[:, k - 1 : k]  # (B, 1)
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))


def top_k_filter_wrong(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Off by one: drops the k-th largest itself, so only k - 1 survive."""
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[:, -1:]
    return logits.masked_fill(logits <= kth, float("-inf"))


# ---- 4. perplexity from per-batch losses --------------------------------------------------------------
def perplexity(batch_losses: list[float], batch_tokens: list[int]) -> float:
    """A batch's mean loss times its token count is its summed loss; divide the total by all tokens."""
    total = sum(loss * n for loss, n in zip(batch_losses, batch_tokens))
    return math.exp(total / sum(batch_tokens))


def perplexity_wrong(batch_losses: list[float], batch_tokens: list[int]) -> float:
    """Averages the batch means: a batch of 9 tokens weighs as much as one of 61."""
    return math.exp(sum(batch_losses) / len(batch_losses))
