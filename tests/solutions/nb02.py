"""Reference solutions of notebook 02's exercises, and typical wrong answers (each should get its hint).

The tests (tests/test_exercises_nb02.py) run every checker of `minitransformer.teaching.checks.nb02_bert_gpt` on
these: the solution must pass, each wrong answer must fail with the hint that names its mistake.
"""

from __future__ import annotations

import math

import torch


# ---- 1. BERT masking with given random draws ----------------------------------------------------------
def bert_mask(input_ids, r, u, random_ids, special_ids, mask_id, prob=0.15):
    """Chosen = r < prob on non-special tokens; then [MASK] (u < 0.8), random (u < 0.9) or kept."""
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for s in special_ids:
        special |= input_ids == s
    chosen = (r < prob) & ~special
    labels = input_ids.masked_fill(~chosen, -100)
    inputs = input_ids.clone()
    inputs[chosen & (u < 0.8)] = mask_id
    to_random = chosen & (u >= 0.8) & (u < 0.9)
    inputs[to_random] = random_ids[to_random]
    return inputs, labels


def bert_mask_no_specials(input_ids, r, u, random_ids, special_ids, mask_id, prob=0.15):
    """Forgets the special tokens: [CLS], [SEP] and [PAD] can be masked and become targets."""
    chosen = r < prob
    labels = input_ids.masked_fill(~chosen, -100)
    inputs = input_ids.clone()
    inputs[chosen & (u < 0.8)] = mask_id
    to_random = chosen & (u >= 0.8) & (u < 0.9)
    inputs[to_random] = random_ids[to_random]
    return inputs, labels


def bert_mask_labels_from_inputs(input_ids, r, u, random_ids, special_ids, mask_id, prob=0.15):
    """Takes the labels from the corrupted input: the target of a [MASK] becomes [MASK]."""
    inputs, _ = bert_mask(input_ids, r, u, random_ids, special_ids, mask_id, prob)
    chosen = (r < prob) & ~torch.isin(input_ids, torch.tensor(special_ids))
    return inputs, inputs.masked_fill(~chosen, -100)


# ---- 2. the shifted causal-LM loss, per sequence ------------------------------------------------------
def sequence_nll(logits, input_ids, attention_mask):
    """Logits at t score token t + 1: drop the last logits and the first tokens; count real targets only."""
    logp = logits[:, :-1].log_softmax(-1)  # (B, T-1, V)
    target = input_ids[:, 1:]  # (B, T-1)
    nll = -logp.gather(-1, target[..., None])[..., 0]  # (B, T-1)
    return (nll * attention_mask[:, 1:]).sum(-1)  # (B,)


def sequence_nll_no_shift(logits, input_ids, attention_mask):
    """Forgets the shift: scores each token with the logits at its own position (which have seen it)."""
    nll = -logits.log_softmax(-1).gather(-1, input_ids[..., None])[..., 0]
    return (nll * attention_mask).sum(-1)


def sequence_nll_with_padding(logits, input_ids, attention_mask):
    """Shifts correctly but scores the padding too."""
    nll = -logits[:, :-1].log_softmax(-1).gather(-1, input_ids[:, 1:, None])[..., 0]
    return nll.sum(-1)


# ---- 3. one KV-cache decoding step ---------------------------------------------------------------------
def kv_step(model, past_key_values, token, *, position=None):
    """Embed the new token at position P, run each pre-LN block with its cache, then final LN and tied head.
    `position` is not part of the exercise: the wrong answer below passes 0 to get "positions not offset"."""
    E, H = model.embeddings, model.config.n_heads
    P = past_key_values[0][0].size(2)
    x = E.word_embeddings(token)[:, None] + E.position_embeddings.weight[P if position is None else position]
    B, _, D = x.shape
    Dh = D // H
    new_past = []
    for block, (past_k, past_v) in zip(model.layers, past_key_values):
        attn = block.attn
        h = block.attn_norm(x)
        q, k, v = (lin(h).view(B, 1, H, Dh).transpose(1, 2) for lin in (attn.q, attn.k, attn.v))  # (B, H, 1, Dh)
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)  # (B, H, P + 1, Dh)
        new_past.append((k, v))
        w = (q @ k.transpose(-2, -1) / math.sqrt(Dh)).softmax(-1)  # (B, H, 1, P + 1): no mask, it sees all
        x = x + attn.o((w @ v).transpose(1, 2).reshape(B, 1, D))
        x = x + block.ffn(block.ffn_norm(x))
    logits = model.final_norm(x)[:, 0] @ E.word_embeddings.weight.T  # (B, V): the tied head
    return logits, tuple(new_past)


def kv_step_position_zero(model, past_key_values, token):
    """Forgets the past length: the new token gets position 0."""
    return kv_step(model, past_key_values, token, position=0)


def kv_step_stale_cache(model, past_key_values, token):
    """Right logits, but hands the old cache back: the next step would lose this token."""
    logits, _ = kv_step(model, past_key_values, token)
    return logits, past_key_values


def kv_step_calls_model(model, past_key_values, token):
    """Calls the forward it should write: the checker's copy refuses."""
    out = model(token[:, None], past_key_values=past_key_values, use_cache=True)
    return out.logits[:, -1], out.past_key_values


# ---- 4. top-k filtering ----------------------------------------------------------------------------------
def top_k_filter(logits, k):
    """Keep every logit >= the k-th largest of its row; the others become -inf (probability 0)."""
    k = min(k, logits.size(-1))
    kth = logits.sort(dim=-1, descending=True).values[:, k - 1 : k]  # (B, 1)
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))


def top_k_filter_strict(logits, k):
    """Off by one: drops the k-th largest itself, so only k - 1 survive."""
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[:, -1:]
    return logits.masked_fill(logits <= kth, float("-inf"))


def top_k_filter_zero(logits, k):
    """Sets the dropped logits to 0 instead of -inf: they keep a probability."""
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, 0.0)


# ---- 5. prediction -----------------------------------------------------------------------------------
def prediction():
    """T = 0.1 is nearly greedy, and greedy loops; top_k = 1 leaves only the argmax, at any temperature."""
    return {"repeats_more": 0.1, "top_k_1_equals_greedy": True}


def prediction_wrong():
    """Expects the hot samples to repeat, and thinks a high temperature can escape top_k = 1."""
    return {"repeats_more": 1.5, "top_k_1_equals_greedy": False}


# ---- 6. perplexity from per-batch losses --------------------------------------------------------------
def perplexity(batch_losses, batch_tokens):
    """A batch's mean loss times its token count is its summed loss; divide the total by all tokens."""
    total = sum(loss * n for loss, n in zip(batch_losses, batch_tokens))
    return math.exp(total / sum(batch_tokens))


def perplexity_per_batch(batch_losses, batch_tokens):
    """Averages the batch means: a batch of 9 tokens weighs as much as one of 61."""
    return math.exp(sum(batch_losses) / len(batch_losses))


def perplexity_no_exp(batch_losses, batch_tokens):
    """Returns the mean loss per token: right average, but not a perplexity."""
    return sum(loss * n for loss, n in zip(batch_losses, batch_tokens)) / sum(batch_tokens)
