"""Notebook 02's checker references agree with the package code they stand for (the checkers themselves:
test_exercise_checkers.py)."""

from __future__ import annotations

import math

import pytest
import torch
from solutions import nb02

from minitransformer import BertModel, GPTModel, TransformerConfig
from minitransformer.teaching.checks import nb02_bert_gpt as checks
from minitransformer.bases.corpus import mask_tokens


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_reference_is_mask_tokens(seed):
    """Same seeded draws in the same order (choice, action, random ids): the same (inputs, labels)."""
    V, specials = 60, [0, 1, 2, 3, 4]
    x = torch.randint(5, V, (4, 32), generator=torch.Generator().manual_seed(100 + seed))
    x[:, 0], x[:, -3:] = 2, 0
    got = mask_tokens(x, specials, 4, V, torch.Generator().manual_seed(seed), prob=0.3)
    g = torch.Generator().manual_seed(seed)
    r, u = torch.rand(x.shape, generator=g), torch.rand(x.shape, generator=g)
    rand_ids = torch.randint(max(specials) + 1, V, x.shape, generator=g)
    want = checks.reference_bert_mask(x, r, u, rand_ids, specials, 4, prob=0.3)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_embedding_formula_on_real_models():
    for cfg, cls in ((TransformerConfig.mini_bert(), BertModel), (TransformerConfig.mini_gpt(), GPTModel)):
        with torch.device("meta"):
            model = cls(cfg)
        assert nb02.embedding_params(cfg) == sum(p.numel() for p in model.embeddings.parameters())


@pytest.mark.parametrize("k", [1, 5, 50])
def test_top_k_reference_is_what_generate_samples_from(k):
    """One sampled step of generate(top_k=k) equals a multinomial draw from softmax(filtered logits)."""
    torch.manual_seed(0)
    model = GPTModel(TransformerConfig.tiny(norm_first=True, type_vocab_size=0, dropout=0.0, attn_dropout=0.0)).eval()
    x = torch.randint(0, 100, (3, 5))
    got = model.generate(x, 1, do_sample=True, top_k=k, generator=torch.Generator().manual_seed(7))[:, -1]
    with torch.no_grad():
        logits = model(x).logits[:, -1]
    probs = checks.reference_top_k_filter(logits, k).softmax(-1)
    want = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(7))[:, 0]
    assert torch.equal(got, want)
    assert int((probs > 0).sum(-1).max()) <= k  # random logits: no ties, so exactly k candidates


def test_perplexity_of_a_uniform_guess():
    assert nb02.perplexity([math.log(8192)] * 3, [10, 20, 30]) == pytest.approx(8192)
