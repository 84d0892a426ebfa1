"""Every notebook's exercise checkers: True on the reference solution (tests/solutions/), False on a typical wrong
answer, None ("not attempted yet") on an untouched stub. Notebook-specific checks live in test_exercises_nbNN.py."""

from __future__ import annotations

import pytest
from solutions import nb01, nb02, nb03, nb04

from methods.checks import nb04_bitfit
from minitransformer.teaching.checks import nb01_transformer, nb02_bert_gpt, nb03_finetuning

CASES = {
    "nb01-1": (nb01_transformer.check_1, nb01.attention, nb01.attention_wrong),
    "nb01-2": (nb01_transformer.check_2, nb01.causal_mask, nb01.causal_mask_wrong),
    "nb01-3": (nb01_transformer.check_3, nb01.count_params, nb01.count_params_wrong),
    "nb01-4": (nb01_transformer.check_4, nb01.split_heads, nb01.split_heads_wrong),
    "nb02-1": (nb02_bert_gpt.check_1, nb02.bert_mask, nb02.bert_mask_wrong),
    "nb02-2": (nb02_bert_gpt.check_2, nb02.embedding_params, nb02.embedding_params_wrong),
    "nb02-3": (nb02_bert_gpt.check_3, nb02.top_k_filter, nb02.top_k_filter_wrong),
    "nb02-4": (nb02_bert_gpt.check_4, nb02.perplexity, nb02.perplexity_wrong),
    "nb03-1": (nb03_finetuning.check_1, nb03.lr_factor, nb03.lr_factor_wrong),
    "nb03-2": (nb03_finetuning.check_2, nb03.adamw_bytes, nb03.adamw_bytes_wrong),
    "nb03-3": (nb03_finetuning.check_3, nb03.mean_std, nb03.mean_std_wrong),
    "nb04-1": (nb04_bitfit.check_1, nb04.bitfit_count, nb04.bitfit_count_wrong),
    "nb04-2": (nb04_bitfit.check_2, nb04.select, nb04.select_wrong),
    "nb04-3": (nb04_bitfit.check_3, nb04.bitfit_percent, nb04.bitfit_percent_wrong),
}


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise")


@pytest.mark.parametrize("check, solution, wrong", CASES.values(), ids=CASES.keys())
def test_checker(check, solution, wrong, capsys):
    assert check(solution) is True
    assert "correct" in capsys.readouterr().out
    assert check(wrong) is False
    assert "not yet" in capsys.readouterr().out
    assert check(stub) is None
    assert "not attempted yet" in capsys.readouterr().out
