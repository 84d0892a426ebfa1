"""Exercise checkers of notebook 05 (PET; Schick & Schütze 2021, "Exploiting Cloze Questions for Few Shot Text
Classification and Natural Language Inference", arXiv:2001.07676).

    s_p(l | x) = M(v(l) | P(x))    the MLM's logit of the verbalizer word v(l) at the [MASK] of P(x)
    s(l | x)   = (1/Z) sum_p w(p) s_p(l | x),   Z = sum_p w(p)      (PET's ensemble of patterns)

Each `check_k(...)` runs the student's function and the package's own code on the same inputs: None = not
attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer never raises. On
a wrong answer the checker also computes the usual mistakes (the [CLS] or the last position read instead of the
mask, one row's mask position used for every row, probabilities instead of raw logits, the tied decoder counted
twice, ...) and, when the student's answer equals one of them, names that mistake. While the student's code runs,
the package's `cloze_scores`, `verbalizer_logits`, `mask_positions` and `ensemble_logits` are tripwires.

1. `cloze_scores(mlm_logits, input_ids, mask_id, label_ids)`: (B, T, V) -> (B, C), the verbalizer tokens' logits
   at each row's [MASK]. Reference: `methods.pet.cloze_scores` (the tests check that it equals
   `verbalizer_logits` on a live model); the cases are the logits of a small random BertForMaskedLM on padded
   rows whose masks sit at different positions.
2. `ensemble(scores, weights)`: (P, B, C) and (P,) -> (B, C), PET's weighted mean of the patterns' logits.
   Reference: `methods.pet.ensemble_logits`.
3. `pet_trainable(V, N, S, D, L, F)`: the parameters PET trains on a BERT MLM (vocabulary V, N positions, S
   segment types, width D, L layers, FFN width F) — all of them. Reference: a BertForMaskedLM of that geometry
   built on the `meta` device, counted.
4. A prediction: with the same K labelled reviews and the same steps, does PET (pattern + the MLM head) or a new
   classification head on the same trunk reach the higher dev accuracy? `check_4(prediction, measured)`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from minitransformer import BertForMaskedLM, TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from .. import pet

FORBIDDEN = [(pet, "cloze_scores", "methods.pet.cloze_scores (the package's answer)"),
             (pet, "verbalizer_logits", "methods.pet.verbalizer_logits (the package's answer)"),
             (pet, "mask_positions", "methods.pet.mask_positions (the package's mask finder)"),
             (pet, "ensemble_logits", "methods.pet.ensemble_logits (the package's ensemble)")]
CLS, SEP, PAD, MASK = 2, 3, 0, 4  # the WordPiece special ids of mini-bert-mlm (minitransformer.bases.tokenizer)


# ---- 1. the scores at the mask -----------------------------------------------------------------------------------
def _rows(lengths: list[int], mask_at: list[int], V: int, g: torch.Generator) -> torch.Tensor:
    """(B, T) padded rows [CLS] tokens.. [SEP] with one [MASK] at `mask_at[i]` (1 <= mask_at < length - 1)."""
    T = max(lengths)
    ids = torch.full((len(lengths), T), PAD, dtype=torch.long)
    for i, (n, m) in enumerate(zip(lengths, mask_at)):
        ids[i, :n] = torch.randint(5, V, (n,), generator=g)
        ids[i, 0], ids[i, n - 1], ids[i, m] = CLS, SEP, MASK
    return ids


def cloze_cases(seed: int = 0) -> list[tuple]:
    """(mlm_logits (B, T, V), input_ids (B, T), mask_id, label_ids) from a small random BertForMaskedLM: rows of
    different lengths (so padding follows the shorter ones), the mask at a different position in each row (as
    after "{x} It was [MASK]."), the mask right before [SEP] in one row, verbalizer ids not in increasing order,
    2 and 3 labels."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = TransformerConfig.tiny(vocab_size=60)
        model = BertForMaskedLM(config).eval()
    g = torch.Generator().manual_seed(seed + 1)
    layouts = [([9, 6, 12, 7], [6, 2, 10, 5], (41, 17)),  # mask in row 0 not where the others have it
               ([5, 11, 8], [3, 4, 6], (23, 8, 50)),  # 3 labels; row 0: the mask right before [SEP]
               ([10, 10], [8, 1], (33, 12))]  # equal lengths: no padding, masks far apart
    cases = []
    for lengths, mask_at, label_ids in layouts:
        ids = _rows(lengths, mask_at, config.vocab_size, g)
        with torch.no_grad():
            logits = model(ids, (ids != PAD).long()).logits  # (B, T, V)
        cases.append((logits, ids, MASK, label_ids))
    return cases


def reference_cloze_scores(mlm_logits, input_ids, mask_id, label_ids):
    """The package's s_p (methods.pet.cloze_scores)."""
    return pet.cloze_scores(mlm_logits, input_ids, mask_id, label_ids)


def _pos(ids, mask_id):
    return (ids == mask_id).int().argmax(1)


def _at(logits, pos):
    return logits[torch.arange(len(pos)), pos.clamp(0, logits.shape[1] - 1)]


def _labels(x, label_ids):
    return x[:, list(label_ids)]


CLOZE_HINTS = [
    ("read position 0? That is the [CLS] token; PET reads the logits at each row's [MASK], the position where "
     "input_ids == mask_id", lambda lg, ids, m, lab: _labels(lg[:, 0], lab)),
    ("read the last position? Rows are padded to the longest one, so position T-1 is padding (or [SEP]); read the "
     "position where input_ids == mask_id, row by row", lambda lg, ids, m, lab: _labels(lg[:, -1], lab)),
    ("used the mask position of the first row for every row? The input x comes before the mask in "
     "'{x} It was [MASK].', so each row's mask sits at its own position: find it per row",
     lambda lg, ids, m, lab: _labels(lg[:, int(_pos(ids, m)[0])], lab)),
    ("off by one? input_ids already contains [CLS], so the index where input_ids == mask_id is the mask's index "
     "in the logits too: no shift", lambda lg, ids, m, lab: [_labels(_at(lg, _pos(ids, m) + 1), lab),
                                                            _labels(_at(lg, _pos(ids, m) - 1), lab)]),
    ("took a softmax over the vocabulary first? s_p is the raw logit M(v(l) | P(x)); the softmax comes after, over "
     "the C labels only (q_p)", lambda lg, ids, m, lab: _labels(_at(lg, _pos(ids, m)).softmax(-1), lab)),
    ("returned log-probabilities over the vocabulary? s_p is the raw logit. (The two give the same q_p: a "
     "log-softmax over V subtracts one number per row, which a softmax over the C labels ignores.)",
     lambda lg, ids, m, lab: _labels(_at(lg, _pos(ids, m)).log_softmax(-1), lab)),
    ("returned q_p, the softmax over the labels? The exercise asks for the scores s_p, the raw logits; "
     "the softmax belongs to the loss", lambda lg, ids, m, lab: _labels(_at(lg, _pos(ids, m)), lab).softmax(-1)),
    ("the columns are in the wrong order? Column l must hold the logit of label l's word, the id label_ids[l] "
     "(here the ids are not in increasing order)",
     lambda lg, ids, m, lab: [_labels(_at(lg, _pos(ids, m)), sorted(lab)), _labels(_at(lg, _pos(ids, m)), lab[::-1])]),
]


def cloze_shape_hint(case, want, got) -> str | None:
    logits, ids, _, label_ids = case
    if not isinstance(got, torch.Tensor) or got.shape == want.shape:
        return None
    B, T, V = logits.shape
    if tuple(got.shape) == (B, V):
        return f"you returned all {V} logits at the mask (shape {tuple(got.shape)}): keep the columns of the C verbalizer tokens"
    if tuple(got.shape) == (B, T, len(label_ids)):
        return f"you kept every position (shape {tuple(got.shape)}): keep only each row's [MASK] position"
    if got.dim() == 1:
        return f"got shape {tuple(got.shape)}: one row of C scores per example is wanted, (B, C) = {tuple(want.shape)}"
    return None


def check_1(cloze_scores: Callable) -> bool | None:
    """cloze_scores(mlm_logits, input_ids, mask_id, label_ids) against the package on three batches."""
    return check_parity(1, cloze_scores, reference_cloze_scores, cloze_cases(), CLOZE_HINTS, forbidden=FORBIDDEN,
                        no_grad=True, shape_hint=cloze_shape_hint, build_from="tensor indexing",
                        describe="s_p(l|x): the logit of v(l) at each row's [MASK], (B, T, V) -> (B, C)")


# ---- 2. the ensemble ---------------------------------------------------------------------------------------------
def ensemble_cases(seed: int = 0) -> list[tuple]:
    """(scores (P, B, C), weights (P,)): five patterns and 2 labels, weights like training accuracies; three
    patterns and 3 labels (P == C, where weights on the wrong axis give a value, not a shape error)."""
    g = torch.Generator().manual_seed(seed)
    return [(3 * torch.randn(5, 4, 2, generator=g), torch.tensor([0.55, 0.5, 0.8, 0.6, 0.9])),
            (3 * torch.randn(3, 6, 3, generator=g), torch.tensor([0.4, 0.7, 0.65])),
            (3 * torch.randn(2, 3, 2, generator=g), torch.tensor([0.5, 0.75]))]


def reference_ensemble(scores, weights):
    return pet.ensemble_logits(scores, weights)


ENSEMBLE_HINTS = [
    ("forgot to divide by Z = Σ_p w(p)? The argmax is the same, but the ensemble's logits are then not on the "
     "scale of one pattern's (and a softmax of them is sharper than it should be)",
     lambda s, w: (w[:, None, None] * s).sum(0)),
    ("divided by the number of patterns P instead of Z = Σ_p w(p)?", lambda s, w: (w[:, None, None] * s).sum(0) / len(w)),
    ("ignored the weights? That is PET's 'mean' ensemble; 'wmean' weights pattern p by w(p), its accuracy on the "
     "training set before training", lambda s, w: s.mean(0)),
    ("averaged probabilities? PET averages the raw logits s_p, then takes a softmax of the result",
     lambda s, w: (w[:, None, None] * s.softmax(-1)).sum(0) / w.sum()),
    ("multiplied the weights along the classes? w(p) belongs to pattern p: scores[p] * w[p], on the first axis",
     lambda s, w: (s * w[None, None, :]).sum(0) / w.sum() if s.shape[0] == s.shape[2] else []),
]


def check_2(ensemble: Callable) -> bool | None:
    """ensemble(scores, weights) against methods.pet.ensemble_logits on three sets of patterns."""
    return check_parity(2, ensemble, reference_ensemble, ensemble_cases(), ENSEMBLE_HINTS, forbidden=FORBIDDEN,
                        no_grad=True, build_from="tensor operations",
                        describe="(1/Z) Σ_p w(p) s_p, Z = Σ_p w(p)")


# ---- 3. the count ------------------------------------------------------------------------------------------------
def _mlm_config(V: int, N: int, S: int, D: int, L: int, F: int) -> TransformerConfig:
    return TransformerConfig.bert_base(vocab_size=V, max_positions=N, type_vocab_size=S, d_model=D, n_layers=L,
                                       d_ff=F, n_heads=4 if D % 12 else 12)


def reference_pet_trainable(V: int, N: int, S: int, D: int, L: int, F: int) -> int:
    """Every parameter of a BertForMaskedLM of this geometry (built on `meta`: shapes only): PET trains them all."""
    with torch.device("meta"):
        model = BertForMaskedLM(_mlm_config(V, N, S, D, L, F))
    return sum(p.numel() for p in model.parameters())


COUNT_CASES = [(8000, 512, 2, 128, 4, 512),  # mini-bert-mlm
               (30522, 512, 2, 768, 12, 3072),  # BERT-base
               (50265, 514, 1, 1024, 24, 4096),  # RoBERTa-large's geometry (the paper's model), one segment type
               (1000, 64, 0, 200, 3, 700)]  # made up, no segment embeddings


def _block(D: int, F: int) -> int:
    return 4 * (D * D + D) + 2 * D + (D * F + F) + (F * D + D) + 2 * D


COUNT_HINTS = [
    ("counted the decoder's V·D again? The MLM head's output layer is *tied* to the word embeddings: the same "
     "matrix, counted once (only its bias of V entries is the head's own)",
     lambda V, N, S, D, L, F: reference_pet_trainable(V, N, S, D, L, F) + V * D),
    ("forgot the MLM head's bias? Beside the tied matrix, the head has its own bias of V entries",
     lambda V, N, S, D, L, F: reference_pet_trainable(V, N, S, D, L, F) - V),
    ("forgot the MLM head's transform? Before the tied decoder, BERT's MLM head runs a dense layer (D·D + D), the "
     "activation and a LayerNorm (2D)", lambda V, N, S, D, L, F: reference_pet_trainable(V, N, S, D, L, F) - D * D - 3 * D),
    ("counted a pooler? A masked LM has none (D·D + D): the pooler serves [CLS] classification",
     lambda V, N, S, D, L, F: reference_pet_trainable(V, N, S, D, L, F) + D * D + D),
    ("added a classification head? PET has none: the verbalizer reads the MLM head's logits, so nothing is new",
     lambda V, N, S, D, L, F: [reference_pet_trainable(V, N, S, D, L, F) + D * C + C for C in (2, 3)]),
    ("forgot the embeddings' LayerNorm (2D)?", lambda V, N, S, D, L, F: reference_pet_trainable(V, N, S, D, L, F) - 2 * D),
    ("forgot the position or segment embeddings? Word (V·D), position (N·D) and segment (S·D) tables all train",
     lambda V, N, S, D, L, F: [reference_pet_trainable(V, N, S, D, L, F) - N * D,
                               reference_pet_trainable(V, N, S, D, L, F) - S * D]),
]


def check_3(pet_trainable: Callable) -> bool | None:
    """pet_trainable(V, N, S, D, L, F) on mini-bert-mlm, BERT-base, RoBERTa-large's geometry and a made-up one."""
    return check_parity(3, pet_trainable, reference_pet_trainable, COUNT_CASES, COUNT_HINTS,
                        describe="every parameter of the masked LM: (V + N + S)·D + 2D + L·block + D² + 3D + V")


# ---- 4. the prediction -------------------------------------------------------------------------------------------
PREDICTION_WHY = {
    "pet": "PET starts from a head that is not random: the MLM head already maps the mask's hidden state onto "
           "the words 'terrible' and 'great', so the K examples only have to bend an existing read-out, while a "
           "new head must first learn which of the D directions matter from K examples.",
    "head": "the pattern only helps if the MLM connects the review to the verbalizer words, and this 4-layer MLM, "
            "pretrained for minutes on the Bible and dialog lines, gives the same answer at the mask whatever the "
            "review says (its zero-shot rows); the mean-pooled head reads every token, not one position, and "
            "fits K examples at least as easily.",
}


def check_4(prediction: Callable, measured: dict[str, float]) -> bool | None:
    """prediction() -> "pet" or "head": right when it names the one with the higher dev accuracy in `measured`
    (the notebook's two runs on the same K examples, steps and seed)."""
    winner = max(measured, key=measured.get)
    return check_choice(4, prediction, measured, PREDICTION_WHY.get(winner, ""))
