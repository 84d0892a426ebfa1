"""Exercise checkers of notebook 02 (BERT, Devlin et al. 2019, arXiv:1810.04805; GPT-2, Radford et al. 2019).

    BERT masking:  each non-special token is chosen with probability 0.15; a chosen token becomes [MASK] (80 %),
                   a random token (10 %) or stays as it is (10 %); the loss is taken at the chosen positions only
    embeddings:    h_0 = LN(E_word[x] + E_pos[p] + E_seg[s])       (GPT-2: E_word[x] + E_pos[p], no LN here)
    perplexity:    PPL = exp(- (1/N) sum_t log p(x_t | context)),  N = the number of predicted tokens

Each `check_k(student_fn)` runs the student's function and a reference on fixed, seeded inputs and compares
them with `minitransformer.teaching.exercises.check_fn`: None = not attempted (the stub raised NotImplementedError),
True = correct, False = not yet (with what was expected and what came). A wrong answer never raises.

1. `bert_mask(input_ids, r, u, random_ids, special_ids, mask_id, prob)` -> (inputs, labels): the package's
   `pretrain.mask_tokens` with its random draws passed in: r (B, T) decides which positions are chosen
   (r < prob, special tokens never), u (B, T) what a chosen position becomes (u < 0.8: [MASK];
   0.8 <= u < 0.9: random_ids; else unchanged); labels = the original id at chosen positions, -100 elsewhere.
   The reference equals `mask_tokens` on the same seeded draws (tested in tests/test_exercises_nb02.py).
2. `embedding_params(config)`: the parameters of `Embeddings(config)` in closed form. Reference: the module
   built on the `meta` device and counted.
3. `top_k_filter(logits, k)`: what `GPTModel.generate(do_sample=True, top_k=k)` does before sampling: every
   logit below the k-th largest of its row becomes -inf (ties with the k-th are kept; k > V keeps all).
4. `perplexity(batch_losses, batch_tokens)`: the corpus perplexity from per-batch mean losses and the number
   of predicted tokens in each batch: exp of the token-weighted mean loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...blocks import Embeddings
from ...config import TransformerConfig
from ..exercises import check_fn


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- 1. BERT masking with given random draws ----------------------------------------------------------
def reference_bert_mask(input_ids: torch.Tensor, r: torch.Tensor, u: torch.Tensor, random_ids: torch.Tensor,
                        special_ids: list[int], mask_id: int, prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """`mask_tokens`'s decisions, the draws given: (inputs, labels), both (B, T)."""
    chosen = (r < prob) & ~torch.isin(input_ids, torch.tensor(special_ids))
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
    return inputs, labels


def _mask_cases() -> list[tuple]:
    cases = []
    for seed, (B, T, prob) in enumerate([(2, 12, 0.15), (3, 20, 0.5), (1, 8, 1.0)]):
        g = _gen(seed)
        ids = torch.randint(5, 50, (B, T), generator=g)
        ids[:, 0], ids[:, -1] = 2, 0  # [CLS] first, one [PAD] last
        ids[0, T // 2] = 3  # a [SEP] in the middle of row 0
        r, u = torch.rand(B, T, generator=g), torch.rand(B, T, generator=g)
        cases.append((ids, r, u, torch.randint(5, 50, (B, T), generator=g), [0, 1, 2, 3, 4], 4, prob))
    return cases


def check_1(bert_mask: Callable) -> bool | None:
    """bert_mask(...) at the usual rate, at 0.5 and at 1.0 (every non-special token chosen)."""
    return check_fn(1, bert_mask, reference_bert_mask, _mask_cases(), atol=0,
                    describe="(inputs, labels): [MASK] if u < 0.8, random if u < 0.9, else kept")


# ---- 2. parameters of the embeddings ------------------------------------------------------------------
def reference_embedding_params(config: TransformerConfig) -> int:
    """Build `Embeddings(config)` on the meta device (shapes only) and count."""
    with torch.device("meta"):
        module = Embeddings(config)
    return sum(p.numel() for p in module.parameters())


def check_2(embedding_params: Callable) -> bool | None:
    """embedding_params(config) for mini-bert, MiniLM, BERT-base, mini-gpt and a BERT without segments."""
    cases = [TransformerConfig.mini_bert(), TransformerConfig.minilm_l6(), TransformerConfig.bert_base(),
             TransformerConfig.mini_gpt(), TransformerConfig.tiny(type_vocab_size=0)]
    return check_fn(2, embedding_params, reference_embedding_params, cases, atol=0,
                    describe="word + position (+ segment) tables (+ LayerNorm in a post-LN model)")


# ---- 3. top-k filtering ----------------------------------------------------------------------------------
def reference_top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The two lines of `GPTModel.generate` that keep the k largest logits of each row (ties included)."""
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def check_3(top_k_filter: Callable) -> bool | None:
    """top_k_filter(logits, k) for k = 3, 1, k > V, and a row with ties at the k-th value."""
    x = torch.randn(2, 10, generator=_gen(5))
    ties = torch.tensor([[1.0, 2.0, 2.0, 0.5, 2.0, -1.0], [0.0, 3.0, 1.0, 1.0, 1.0, 2.0]])
    cases = [(x, 3), (x, 1), (x, 20), (ties, 2), (ties, 3)]
    return check_fn(3, top_k_filter, reference_top_k_filter, cases, describe="logits below the k-th largest -> -inf")


# ---- 4. perplexity from per-batch losses --------------------------------------------------------------
def reference_perplexity(batch_losses: list[float], batch_tokens: list[int]) -> float:
    """exp(sum_b n_b L_b / sum_b n_b): every token counts once, whichever batch it sits in."""
    return math.exp(sum(loss * n for loss, n in zip(batch_losses, batch_tokens)) / sum(batch_tokens))


def check_4(perplexity: Callable) -> bool | None:
    """perplexity(losses, tokens) on equal batches, unequal batches (an MLM's masked counts), and one batch."""
    cases = [([2.0, 3.0], [100, 100]), ([2.0, 4.0], [300, 100]), ([5.25, 4.5, 6.0], [61, 58, 9]), ([3.0], [7])]
    return check_fn(4, perplexity, reference_perplexity, cases, rtol=1e-9,
                    describe="exp of the mean loss per token, not per batch")
