"""Reference solutions of notebook 05's exercises (PET), and typical wrong answers (the checkers must reject each
one and name its mistake)."""

import torch

from methods import pet


# ---- 1. the scores at the mask ----------------------------------------------------------------------------------
def cloze_scores(mlm_logits, input_ids, mask_id, label_ids):
    pos = (input_ids == mask_id).int().argmax(1)  # (B,): each row's one [MASK]
    at_mask = mlm_logits[torch.arange(len(pos)), pos]  # (B, V)
    return at_mask[:, list(label_ids)]  # (B, C): column l = the logit of v(l)


def cloze_scores_cls(mlm_logits, input_ids, mask_id, label_ids):
    return mlm_logits[:, 0][:, list(label_ids)]


def cloze_scores_first_row_position(mlm_logits, input_ids, mask_id, label_ids):
    pos = int((input_ids[0] == mask_id).nonzero()[0])
    return mlm_logits[:, pos][:, list(label_ids)]


def cloze_scores_softmax_vocab(mlm_logits, input_ids, mask_id, label_ids):
    return cloze_scores(mlm_logits.softmax(-1), input_ids, mask_id, label_ids)


def cloze_scores_log_softmax_vocab(mlm_logits, input_ids, mask_id, label_ids):
    return cloze_scores(mlm_logits.log_softmax(-1), input_ids, mask_id, label_ids)


def cloze_scores_q(mlm_logits, input_ids, mask_id, label_ids):
    return cloze_scores(mlm_logits, input_ids, mask_id, label_ids).softmax(-1)


def cloze_scores_sorted(mlm_logits, input_ids, mask_id, label_ids):
    return cloze_scores(mlm_logits, input_ids, mask_id, sorted(label_ids))


def cloze_scores_shifted(mlm_logits, input_ids, mask_id, label_ids):
    pos = (input_ids == mask_id).int().argmax(1) + 1  # "skip the [CLS]"
    return mlm_logits[torch.arange(len(pos)), pos][:, list(label_ids)]


def cloze_scores_whole_vocab(mlm_logits, input_ids, mask_id, label_ids):
    pos = (input_ids == mask_id).int().argmax(1)
    return mlm_logits[torch.arange(len(pos)), pos]


def cloze_scores_calls_the_package(mlm_logits, input_ids, mask_id, label_ids):
    pos = pet.mask_positions(input_ids, mask_id)
    return mlm_logits[torch.arange(len(pos)), pos][:, list(label_ids)]


# ---- 2. the ensemble --------------------------------------------------------------------------------------------
def ensemble(scores, weights):
    return (weights[:, None, None] * scores).sum(0) / weights.sum()  # (P, B, C) -> (B, C)


def ensemble_unnormalised(scores, weights):
    return (weights[:, None, None] * scores).sum(0)


def ensemble_mean(scores, weights):
    return scores.mean(0)


def ensemble_probabilities(scores, weights):
    return (weights[:, None, None] * scores.softmax(-1)).sum(0) / weights.sum()


def ensemble_divided_by_P(scores, weights):
    return (weights[:, None, None] * scores).sum(0) / len(weights)


def ensemble_calls_the_package(scores, weights):
    return pet.ensemble_logits(scores, weights)


# ---- 3. the count -----------------------------------------------------------------------------------------------
def pet_trainable(V, N, S, D, L, F):
    embeddings = (V + N + S) * D + 2 * D  # word, position, segment tables and their LayerNorm
    block = 4 * (D * D + D) + 2 * D + (D * F + F) + (F * D + D) + 2 * D  # q k v o, LN, FFN, LN
    head = (D * D + D) + 2 * D + V  # the MLM head's transform and its bias; the decoder is the tied embedding
    return embeddings + L * block + head


def pet_trainable_untied(V, N, S, D, L, F):
    return pet_trainable(V, N, S, D, L, F) + V * D


def pet_trainable_no_bias(V, N, S, D, L, F):
    return pet_trainable(V, N, S, D, L, F) - V


def pet_trainable_with_pooler(V, N, S, D, L, F):
    return pet_trainable(V, N, S, D, L, F) + D * D + D


def pet_trainable_with_classifier(V, N, S, D, L, F):
    return pet_trainable(V, N, S, D, L, F) + 2 * D + 2


def pet_trainable_no_transform(V, N, S, D, L, F):
    return pet_trainable(V, N, S, D, L, F) - (D * D + D) - 2 * D


# ---- 4. the prediction (either may be right: the checker compares with the measured runs) -----------------------
def prediction_pet():
    return "pet"


WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, cloze_scores_cls, "read position 0"),
    (1, cloze_scores_first_row_position, "mask position of the first row"),
    (1, cloze_scores_shifted, "off by one"),
    (1, cloze_scores_softmax_vocab, "softmax over the vocabulary"),
    (1, cloze_scores_log_softmax_vocab, "log-probabilities"),
    (1, cloze_scores_q, "returned q_p"),
    (1, cloze_scores_sorted, "wrong order"),
    (1, cloze_scores_whole_vocab, "logits at the mask"),
    (1, cloze_scores_calls_the_package, "your code called methods.pet.mask_positions"),
    (2, ensemble_unnormalised, "forgot to divide by Z"),
    (2, ensemble_mean, "ignored the weights"),
    (2, ensemble_probabilities, "averaged probabilities"),
    (2, ensemble_divided_by_P, "number of patterns P"),
    (2, ensemble_calls_the_package, "your code called methods.pet.ensemble_logits"),
    (3, pet_trainable_untied, "tied"),
    (3, pet_trainable_no_bias, "forgot the MLM head's bias"),
    (3, pet_trainable_with_pooler, "counted a pooler"),
    (3, pet_trainable_with_classifier, "classification head"),
    (3, pet_trainable_no_transform, "transform"),
]
