"""Notebook 01's reference solutions agree with the package (the checkers themselves: test_exercise_checkers.py)."""

from __future__ import annotations

import torch
from solutions import nb01

from minitransformer import Transformer, TransformerConfig


def test_solution_count_matches_the_model():
    cfg = TransformerConfig.mini_seq2seq()
    assert nb01.count_params(cfg) == sum(p.numel() for p in Transformer(cfg).parameters())
    assert torch.equal(nb01.causal_mask(2, 1), torch.tensor([[True, True, False], [True, True, True]]))
