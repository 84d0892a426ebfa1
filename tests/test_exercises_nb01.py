"""Notebook 01's checkers: True on the reference solution, False on a typical wrong answer, None on a stub."""

from __future__ import annotations

import pytest
import torch
from solutions import nb01

from minitransformer import Transformer, TransformerConfig
from minitransformer.checks import nb01_transformer as checks

CASES = [
    (checks.check_1, nb01.attention, nb01.attention_wrong),
    (checks.check_2, nb01.causal_mask, nb01.causal_mask_wrong),
    (checks.check_3, nb01.count_params, nb01.count_params_wrong),
    (checks.check_4, nb01.split_heads, nb01.split_heads_wrong),
]


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise")


@pytest.mark.parametrize("check, solution, wrong", CASES, ids=["1", "2", "3", "4"])
def test_checker(check, solution, wrong, capsys):
    assert check(solution) is True
    assert "correct" in capsys.readouterr().out
    assert check(wrong) is False
    assert "not yet" in capsys.readouterr().out
    assert check(stub) is None
    assert "not attempted yet" in capsys.readouterr().out


def test_solution_count_matches_the_model():
    cfg = TransformerConfig.mini_seq2seq()
    assert nb01.count_params(cfg) == sum(p.numel() for p in Transformer(cfg).parameters())
    assert torch.equal(nb01.causal_mask(2, 1), torch.tensor([[True, True, False], [True, True, True]]))
