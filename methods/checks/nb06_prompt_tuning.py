"""Exercise checkers of notebook 06 (prompt tuning; Lester, Al-Rfou & Constant 2021, "The Power of Scale for
Parameter-Efficient Prompt Tuning", arXiv:2104.08691).

    [P_e ; X_e] ∈ R^{(n+T)×D}: n learned vectors in front of the input's word embeddings, the model frozen

Each `check_k(...)` runs the student's function and the package's own code on the same inputs: None = not
attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer never raises. On
a wrong answer the checker also computes the usual mistakes (the prompt put after the input, the mask not grown or
grown with zeros, the rows of the prompt mixed up when it is copied per row, the text's ids spread instead of
repeated cyclically, ties broken the wrong way, ...) and, when the student's answer equals one of them, names that
mistake. While the student's code runs, the package's functions that would answer the exercise are tripwires.

1. `prepend_prompt(prompt, embeds, mask)` -> (embeds (B, n+T, D), mask (B, n+T) or None): prompt tuning's input.
   Reference: `SoftPrompt.embed_inputs` of a `PromptEmbedding` holding `prompt`, on a tiny BERT.
2. `text_init(ids, n, table)` -> (n, D): the "TEXT" init, the text's ids repeated cyclically up to n and truncated.
   Reference: `initial_prompt` with `prompt_tuning_init="TEXT"` (the ids are the text's MiniLM tokens).
3. `majority_vote(votes, num_classes)` -> (B,): prompt ensembling's vote, ties to the smallest class id.
   Reference: `ensemble_predict` itself, on a stand-in model whose prompts vote as `votes` says.
4. A prediction: after the notebook's training run, which carries more of the dev accuracy — the trained prompt
   with the head put back to its initial values, or the trained head with the prompt put back? Checked against the
   notebook's measurement (`check_4(prediction, measured)`).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace

import torch
from torch import nn

from minitransformer import BertModel, TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from .. import prompt_tuning
from ..prompt_tuning import PromptEmbedding, PromptTuningConfig, SoftPrompt, initial_prompt

FORBIDDEN = [(SoftPrompt, "embed_inputs", "SoftPrompt.embed_inputs"), (SoftPrompt, "forward", "SoftPrompt.forward"),
             (SoftPrompt, "_row_prompts", "SoftPrompt._row_prompts"), (prompt_tuning, "grow_mask", "grow_mask"),
             (prompt_tuning, "initial_prompt", "initial_prompt"),
             (prompt_tuning, "ensemble_predict", "ensemble_predict")]


# ---- 1. [P ; X] and the grown mask ----------------------------------------------------------------------------
def _prepend_cases() -> list[tuple]:
    """(prompt (n, D), embeds (B, T, D), mask (B, T) or None): padded rows, one row, no mask, a long prompt."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for n, B, T, D, pad in ((5, 3, 7, 16, True), (1, 1, 4, 8, False), (4, 2, 6, 16, None), (20, 4, 3, 8, True)):
        mask = None
        if pad is not None:
            mask = torch.ones(B, T, dtype=torch.long)
            if pad:
                for b in range(B):
                    mask[b, T - b % T:] = 0  # row b ends with b padding positions (row 0 none)
        cases.append((torch.randn(n, D, generator=g), torch.randn(B, T, D, generator=g), mask))
    return cases


def reference_prepend(prompt: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor | None):
    """`SoftPrompt.embed_inputs` of a `PromptEmbedding` holding `prompt`, on a tiny BERT of the same width."""
    n, D = prompt.shape
    base = BertModel(TransformerConfig.tiny(d_model=D, n_heads=2, max_positions=64))
    module = PromptEmbedding(PromptTuningConfig(num_virtual_tokens=n), base)
    with torch.no_grad():
        module.prompt_embeddings.weight.copy_(prompt)
        out, grown = module.embed_inputs(base, None, embeds, mask)
    return out.detach(), grown


def _ones(mask, n):
    return mask.new_ones(mask.size(0), n)


def _front(p, x):  # (B, n + T, D), the right layout
    return torch.cat([p.unsqueeze(0).expand(x.size(0), -1, -1), x], 1)


def _grown(mask, n):
    return None if mask is None else torch.cat([_ones(mask, n), mask], 1)


PREPEND_HINTS = [
    ("put the prompt after the input? [P ; X] puts the n virtual tokens in front: positions 0 .. n-1 are the "
     "prompt, the words follow.",
     lambda p, x, m: [(torch.cat([x, p.unsqueeze(0).expand(x.size(0), -1, -1)], 1), g) for g in
                      (_grown(m, p.size(0)), None if m is None else torch.cat([m, _ones(m, p.size(0))], 1))]),
    ("did not grow the mask? The model now reads n + T positions, so the mask needs n more entries (1 = attend) "
     "in front.", lambda p, x, m: (_front(p, x), m)),
    ("grew the mask with zeros? 0 means 'padding, do not attend': the virtual tokens must be attended, so the n "
     "new entries are ones.",
     lambda p, x, m: (_front(p, x), None if m is None else torch.cat([torch.zeros_like(_ones(m, p.size(0))), m], 1))),
    ("grew the mask at the wrong end? The prompt is in front, so its n ones go in front of the mask too.",
     lambda p, x, m: (_front(p, x), None if m is None else torch.cat([m, _ones(m, p.size(0))], 1))),
    ("mixed up the prompt's rows when copying it for each of the B rows? Every row must hold the whole prompt "
     "P_0 .. P_{n-1} in order: prompt.unsqueeze(0).expand(B, -1, -1) (or prompt.repeat(B, 1, 1)); repeat(1, B) or "
     "repeat_interleave followed by a view interleaves the rows.",
     lambda p, x, m: [(torch.cat([w, x], 1), _grown(m, p.size(0))) for w in
                      (p.repeat(1, x.size(0)).view(x.size(0), *p.shape),
                       p.repeat_interleave(x.size(0), 0).view(x.size(0), *p.shape))]),
    ("mask None means every position is attended, and stays None (the package's grow_mask keeps it so): return "
     "None for the mask then.",
     lambda p, x, m: (_front(p, x), torch.ones(x.size(0), p.size(0) + x.size(1), dtype=torch.long)
                      if m is None else _grown(m, p.size(0)))),
]


def check_1(prepend_prompt: Callable) -> bool | None:
    """prepend_prompt(prompt, embeds, mask) on padded batches, one row, no mask and a prompt longer than the input."""
    return check_parity(1, prepend_prompt, reference_prepend, _prepend_cases(), PREPEND_HINTS, forbidden=FORBIDDEN,
                        describe="[P ; X] and the mask grown by n ones in front", atol=0,
                        build_from="torch.cat and expand", no_grad=True)


# ---- 2. the TEXT init -----------------------------------------------------------------------------------------
TEXT_CASES = [  # (text, n): shorter than n (repeated), longer (truncated), exactly n, one word, a word in pieces
    ("classify the sentiment of this movie review", 20), ("classify the sentiment of this movie review", 3),
    ("a good film", 3), ("great", 4), ("unwatchable mess", 7)]


@functools.lru_cache(maxsize=1)
def _text_ids() -> dict[tuple[int, ...], str]:
    tok = prompt_tuning.load_base_tokenizer("minilm")
    return {tuple(prompt_tuning.token_ids(tok, text)): text for text, _ in TEXT_CASES}


@functools.lru_cache(maxsize=1)
def _table() -> torch.Tensor:
    vocab = prompt_tuning.load_base_tokenizer("minilm").get_vocab_size()
    return torch.randn(vocab, 8, generator=torch.Generator().manual_seed(2))  # (V, D): MiniLM's vocabulary, D = 8


def _text_cases() -> list[tuple]:
    by_text = {text: list(ids) for ids, text in _text_ids().items()}
    return [(by_text[text], n, _table()) for text, n in TEXT_CASES]


def reference_text_init(ids: list[int], n: int, table: torch.Tensor) -> torch.Tensor:
    """`initial_prompt` with the "TEXT" init of the text whose MiniLM tokens are `ids`."""
    config = PromptTuningConfig(num_virtual_tokens=n, prompt_tuning_init="TEXT",
                                prompt_tuning_init_text=_text_ids()[tuple(ids)], tokenizer_name="minilm")
    return initial_prompt(config, table)


def _text_shape_hint(case, want, got):
    ids, n, _ = case
    if not isinstance(got, torch.Tensor) or got.dim() != 2 or got.size(0) == n:
        return None
    if got.size(0) == len(ids) < n:
        return (f"only {got.size(0)} rows, one per id: the text is shorter than n = {n}, so its ids are repeated "
                f"cyclically (a b c a b c …) until there are n.")
    if got.size(0) > n:
        return f"{got.size(0)} rows: after repeating, truncate to the first n = {n}."
    return None


TEXT_HINTS = [
    ("spread each id over several rows (a a b b c c …)? The whole text repeats, in order: a b c a b c …, then is "
     "cut at n (repeat_interleave repeats each element in place).",
     lambda ids, n, t: t[torch.tensor(ids).repeat_interleave(n // len(ids) + 1)[:n]]),
    ("padded with zeros after the text? The text is repeated cyclically until there are n rows.",
     lambda ids, n, t: torch.cat([t[ids[:n]], t.new_zeros(max(0, n - len(ids)), t.size(1))])),
    ("padded with the last token's row? The text is repeated cyclically (a b c a b c …), not its last token.",
     lambda ids, n, t: t[(ids + [ids[-1]] * n)[:n]]),
    ("kept the end of the text rather than its start? Truncation keeps the first n ids (peft does the same).",
     lambda ids, n, t: t[(ids * (n // len(ids) + 1))[-n:]]),
]


def check_2(text_init: Callable) -> bool | None:
    """text_init(ids, n, table) for texts shorter than, longer than and exactly n tokens."""
    return check_parity(2, text_init, reference_text_init, _text_cases(), TEXT_HINTS, forbidden=FORBIDDEN,
                        describe="the ids repeated cyclically up to n, then the table's rows", atol=0,
                        shape_hint=_text_shape_hint, build_from="list operations and indexing into the table",
                        no_grad=True)


# ---- 3. the majority vote -------------------------------------------------------------------------------------
class _Voters(nn.Module):
    """A stand-in for a PeftModel whose k prompts predict `votes` (B, k): row b·k + j of the batch `ensemble_predict`
    builds holds example b (its input id) and prompt "p{j}", and gets a one-hot logit for votes[b, j]."""

    def __init__(self, votes: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.votes, self.num_classes = votes, num_classes

    def forward(self, input_ids=None, adapter_names=None, **kw):
        b = input_ids[:, 0]
        j = torch.tensor([int(a[1:]) for a in adapter_names])
        return SimpleNamespace(logits=nn.functional.one_hot(self.votes[b, j], self.num_classes).float())


def reference_vote(votes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """`ensemble_predict` on a stand-in model whose k prompts vote `votes` (B, k)."""
    B, k = votes.shape
    batch = {"input_ids": torch.arange(B)[:, None]}
    return prompt_tuning.ensemble_predict(_Voters(votes, num_classes), [f"p{j}" for j in range(k)], batch)


def _vote_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(3)
    cases = [(torch.tensor([[0, 1], [1, 0], [1, 1], [0, 0]]), 2),  # k = 2: every split vote is a tie
             (torch.tensor([[2, 0, 1], [1, 2, 0], [2, 2, 0], [0, 1, 1], [2, 1, 2]]), 3),  # three-way ties
             (torch.tensor([[5, 3, 3, 5], [4, 4, 1, 1], [0, 2, 2, 2], [3, 1, 3, 1]]), 6)]  # ties between non-zero ids
    cases.append((torch.randint(0, 6, (32, 5), generator=g), 6))
    cases.append((torch.randint(0, 2, (16, 3), generator=g), 2))
    return cases


def _first_seen(votes, C):
    return torch.tensor([Counter(row.tolist()).most_common(1)[0][0] for row in votes])


def _counts(votes, C):
    return torch.stack([torch.bincount(row, minlength=C) for row in votes])


VOTE_HINTS = [
    ("ties went to the largest class? The rule is the smallest class id among the most-voted (argmax returns the "
     "first maximum, so argmax over the per-class counts does it).",
     lambda v, C: C - 1 - _counts(v, C).flip(1).argmax(1)),
    ("broke ties by the order of the votes (collections.Counter.most_common keeps the class seen first)? The rule is "
     "the smallest class id among the most-voted.", _first_seen),
    ("averaged the class ids? A class id is a name, not a number: count the votes per class and take the most "
     "voted.", lambda v, C: v.float().mean(1).round().long()),
    ("returned which prompt holds the largest class id (argmax over the k votes)? Count the votes per class "
     "(bincount with minlength=num_classes) and take the class with most votes.", lambda v, C: v.argmax(1)),
]


def check_3(majority_vote: Callable) -> bool | None:
    """majority_vote(votes (B, k), num_classes) with two, three, four and five prompts, many ties."""
    return check_parity(3, majority_vote, reference_vote, _vote_cases(), VOTE_HINTS, forbidden=FORBIDDEN,
                        describe="the most-voted class, ties to the smallest id", atol=0,
                        build_from="torch.bincount or a scatter_add of ones, then argmax", no_grad=True)


# ---- 4. prediction --------------------------------------------------------------------------------------------
WHY_4 = ("Here a classification head trains beside the prompt (as in peft's SEQ_CLS); the paper's T5 has none — it "
         "writes the label word, so everything it learns is in the prompt. The head alone, on the frozen features, is "
         "a linear probe, and the two were trained together: each was fitted to the other, so neither need work with "
         "the other's initial values. What the prompt adds over a head alone is the gap between prompt tuning and "
         "the linear probe (§6).")


def check_4(prediction: Callable[[], str], measured: dict[str, float]) -> bool | None:
    """prediction() -> "prompt" or "head": which, trained, keeps more dev accuracy when the other is put back to its
    initial values? `measured` = {"prompt": dev accuracy, "head": dev accuracy} from the notebook."""
    return check_choice(4, prediction, measured, WHY_4, unit=" dev accuracy")
