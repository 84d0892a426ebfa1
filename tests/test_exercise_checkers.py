"""Every notebook's exercise checkers: True on the reference solution (tests/solutions/), False on a typical wrong
answer, None ("not attempted yet") on an untouched stub. Notebook-specific checks live in test_exercises_nbNN.py (notebook 02's checkers are tested there only)."""

from __future__ import annotations

import pytest
from solutions import nb01, nb03, nb04

from methods.checks import nb04_bitfit
from minitransformer.teaching.checks import nb01_transformer, nb03_finetuning

CASES = {
    "nb01-1": (nb01_transformer.check_1, nb01.multi_head_attention, nb01.mha_no_scale),
    "nb01-2": (nb01_transformer.check_2, nb01.causal_mask, nb01.causal_mask_no_past),
    "nb01-3": (nb01_transformer.check_3, nb01.decoder_block, nb01.block_no_cross),
    "nb03-2": (nb03_finetuning.check_2, nb03.mean_pool, nb03.mean_pool_with_padding),
    "nb03-3": (nb03_finetuning.check_3, nb03.freeze_all_but_top, nb03.freeze_forgot_head),
    "nb03-4": (nb03_finetuning.check_4, nb03.lr_factor, nb03.lr_factor_warmup_from_zero),
    "nb03-5": (nb03_finetuning.check_5, nb03.adamw_bytes, nb03.adamw_bytes_all_train),
    "nb04-1": (nb04_bitfit.check_1, nb04.bitfit_count, nb04.bitfit_count_no_head),
    "nb04-2": (nb04_bitfit.check_2, nb04.bitfit_trains, nb04.bitfit_trains_no_head_weight),
    "nb04-3": (nb04_bitfit.check_3, nb04.allocate, nb04.allocate_floor),
    "nb04-4": (nb04_bitfit.check_4, nb04.sparse_delta_linear, nb04.sparse_delta_linear_no_bias),
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
