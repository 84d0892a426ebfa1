"""Checkers for the exercises of notebook 04 (BitFit)."""

from __future__ import annotations

from minitransformer import BertForSequenceClassification, TransformerConfig
from minitransformer.teaching.exercises import check_fn

from ..bitfit import BitFitConfig
from ..api.counting import base_params

GEOMETRIES = [  # (D, L, F, C): BERT-base, BERT-large, MiniLM-L6, mini-bert, a made-up one
    (768, 12, 3072, 2), (1024, 24, 4096, 2), (384, 6, 1536, 3), (128, 4, 512, 6), (200, 3, 700, 5),
]


def _bert(D: int, L: int, F: int) -> TransformerConfig:
    return TransformerConfig.bert_base(d_model=D, n_layers=L, d_ff=F, n_heads=4 if D % 12 else 12)


def _bitfit_count(D: int, L: int, F: int, C: int) -> int:
    """Every bias of a BERT classifier, the head's bias included (the head's weight not trained)."""
    return BitFitConfig(modules_to_save=[]).expected_trainable_parameters(_bert(D, L, F), "bert", C)


def check_1(student_fn) -> bool | None:
    """Exercise 1: bitfit_count(D, L, F, C) -> the number of bias entries of a BERT classifier."""
    return check_fn(1, student_fn, _bitfit_count, GEOMETRIES)


def _names() -> list[str]:
    return [n for n, _ in BertForSequenceClassification(TransformerConfig.tiny(), num_labels=2).named_parameters()]


def check_2(student_fn) -> bool | None:
    """Exercise 2: partial BitFit, select(name) -> True only for the biases of attn.q and ffn.fc1 (b_q, b_m2)."""
    ref = BitFitConfig(target_modules=["attn.q", "ffn.fc1"], modules_to_save=[])
    return check_fn(2, lambda names: [n for n in names if student_fn(n)],
                    lambda names: [n for n in names if ref.is_trainable(n)], [(_names(),)])


def _percent(D: int, L: int, F: int) -> float:
    cfg = _bert(D, L, F)
    return round(100 * BitFitConfig().expected_trainable_parameters(cfg, "bert") / base_params(cfg, "bert"), 4)


def check_3(student_fn) -> bool | None:
    """Exercise 3: bitfit_percent(D, L, F) -> % of a BERT (no head) that BitFit trains, rounded to 4 decimals."""
    return check_fn(3, student_fn, _percent, [g[:3] for g in GEOMETRIES], atol=1e-4)
