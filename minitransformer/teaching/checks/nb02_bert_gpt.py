"""Exercise checkers of notebook 02 (BERT, Devlin et al. 2019, arXiv:1810.04805; GPT-2, Radford et al. 2019).

    BERT masking:  each non-special token is chosen with probability 0.15; a chosen token becomes [MASK] (80 %),
                   a random token (10 %) or stays as it is (10 %); the loss is taken at the chosen positions only
    causal LM:     NLL(x) = - sum_{t=1}^{T-1} log p(x_t | x_<t)      (logits at t score the token at t + 1)
    KV cache:      the new token at position P attends to the P cached keys/values and its own
    top-k:         logits below the k-th largest of their row -> -inf, then softmax and sample
    perplexity:    PPL = exp(- (1/N) sum_t log p(x_t | context)),  N = the number of predicted tokens

Each `check_k(...)` runs the student's answer against the package on fixed, seeded inputs: None = not attempted
(the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer never raises; it is
compared with the usual mistakes, computed here, and the message names the one it matches ("forgot the label
shift?") rather than printing two tensors.

1. `bert_mask(input_ids, r, u, random_ids, special_ids, mask_id, prob)` -> (inputs, labels): the package's
   `corpus.mask_tokens` with its random draws passed in (r decides which positions are chosen, u what a chosen
   position becomes). Reference = `mask_tokens`'s own lines on the given draws (tests/test_exercises_nb02.py
   shows it equals `mask_tokens` on the same seeded generator).
2. `sequence_nll(logits, input_ids, attention_mask)` -> (B,): each row's summed next-token negative
   log-likelihood over its real tokens. Reference: the package's `core.lm_loss(..., shift=True)`, row by row,
   times the row's number of predicted tokens.
3. `kv_step(model, past_key_values, token)` -> (logits (B, V), the cache with one more position): one
   generation step of a GPTModel written from its sub-layers. Reference: `model(token[:, None],
   past_key_values=..., use_cache=True)`. The student's copy of the model refuses `model(...)`, `block(...)`,
   `block.attn(...)`, `model.embeddings(...)` and `model.lm_head(...)`: the point is to write them.
4. `top_k_filter(logits, k)`: what `GPTModel.generate(do_sample=True, top_k=k)` does before sampling.
5. A prediction, measured by the notebook's next cell: which temperature, 0.1 or 1.5, makes the samples
   repeat themselves more, and does sampling with top_k=1 ever differ from greedy decoding?
6. `perplexity(batch_losses, batch_tokens)`: the corpus perplexity from per-batch mean losses and counts.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from ...config import TransformerConfig
from ...core import lm_loss
from ...gpt import GPTModel
from ..exercises import mismatch, short


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _attempt(k: int, fn: Callable, *args) -> tuple[bool, Any]:
    """(attempted, value): a stub gives (False, None); any other exception propagates, labelled."""
    try:
        return True, fn(*args)
    except NotImplementedError:
        return False, None
    except Forbidden:
        raise
    except Exception as e:
        print(f"Exercise {k}: your code raised {type(e).__name__}: {e}")
        if hasattr(e, "add_note"):
            e.add_note(f"(raised inside the code of Exercise {k})")
        raise


def _check_with_hints(k: int, student: Callable, reference: Callable, cases: list[tuple],
                      wrong: list[tuple[Callable, str]], *, atol: float = 1e-6, rtol: float = 0.0,
                      describe: str = "") -> bool | None:
    """Run `student` and `reference` on every case. On the first difference, the known wrong variants are run
    on that case; the first one that the student's answer matches gives the hint. Else: expected vs got."""
    for i, case in enumerate(cases):
        attempted, got = _attempt(k, student, *copy.deepcopy(case))
        if not attempted:
            print(f"Exercise {k}: not attempted yet")
            return None
        want = reference(*copy.deepcopy(case))
        diff = mismatch(want, got, atol, rtol)
        if diff is None:
            continue
        for variant, hint in wrong:
            try:
                matches = mismatch(variant(*copy.deepcopy(case)), got, atol, rtol) is None
            except (ArithmeticError, RuntimeError, ValueError):  # a variant may overflow where the answer does not
                matches = False
            if matches:
                print(f"Exercise {k}: not yet — {hint}")
                return False
        shown = ", ".join(short(a) for a in case)
        print(f"Exercise {k}: not yet — on case {i} ({shown}): {diff}" + (f" ({describe})" if describe else ""))
        return False
    print(f"Exercise {k}: correct" + (f" ({describe})" if describe else ""))
    return True


# ---- 1. BERT masking with given random draws ----------------------------------------------------------
def reference_bert_mask(input_ids: torch.Tensor, r: torch.Tensor, u: torch.Tensor, random_ids: torch.Tensor,
                        special_ids: list[int], mask_id: int, prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """`mask_tokens`'s decisions, the draws given: (inputs, labels), both (B, T)."""
    chosen = (r < prob) & ~torch.isin(input_ids, torch.tensor(special_ids))
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
    return inputs, labels


def _mask_variant(*, specials: bool = True, split: tuple[float, float] = (0.8, 0.9), labels_from_inputs: bool = False,
                  labels_everywhere: bool = False, all_mask: bool = False) -> Callable:
    def fn(input_ids, r, u, random_ids, special_ids, mask_id, prob=0.15):
        chosen = r < prob
        if specials:
            chosen = chosen & ~torch.isin(input_ids, torch.tensor(special_ids))
        lo, hi = split
        if all_mask:
            inputs = torch.where(chosen, torch.full_like(input_ids, mask_id), input_ids)
        else:
            inputs = torch.where(chosen & (u < lo), torch.full_like(input_ids, mask_id), input_ids)
            inputs = torch.where(chosen & (u >= lo) & (u < hi), random_ids, inputs)
        source = inputs if labels_from_inputs else input_ids
        labels = source.clone() if labels_everywhere else torch.where(chosen, source, torch.full_like(source, -100))
        return inputs, labels
    return fn


def _mask_cases() -> list[tuple]:
    cases = []
    for seed, (B, T, prob) in enumerate([(2, 12, 0.15), (3, 20, 0.5), (1, 8, 1.0), (4, 40, 0.3)]):
        g = _gen(seed)
        ids = torch.randint(5, 50, (B, T), generator=g)
        ids[:, 0], ids[:, -1] = 2, 0  # [CLS] first, one [PAD] last
        ids[0, T // 2] = 3  # a [SEP] in the middle of row 0
        r, u = torch.rand(B, T, generator=g), torch.rand(B, T, generator=g)
        cases.append((ids, r, u, torch.randint(5, 50, (B, T), generator=g), [0, 1, 2, 3, 4], 4, prob))
    return cases


def check_1(bert_mask: Callable) -> bool | None:
    """bert_mask(...) at the usual rate, at 0.5, at 1.0 (every non-special token chosen) and at 0.3."""
    wrong = [
        (_mask_variant(specials=False), "special tokens ([CLS], [SEP], [PAD]) were chosen: they are never masked "
                                        "and never targets (`special_ids`)"),
        (_mask_variant(labels_from_inputs=True), "the labels must be the ORIGINAL ids at the chosen positions, not "
                                                 "the model's input there ([MASK] or the random token)"),
        (_mask_variant(labels_everywhere=True), "labels must be -100 at the positions that were not chosen: the loss "
                                                "is taken at the chosen positions only"),
        (_mask_variant(all_mask=True), "every chosen token became [MASK]: only u < 0.8 does; 0.8 <= u < 0.9 takes "
                                       "`random_ids`, the rest stay unchanged"),
        (_mask_variant(split=(0.1, 0.2)), "the 80/10/10 split is reversed: u < 0.8 -> [MASK], 0.8 <= u < 0.9 -> random"),
        (_mask_variant(split=(0.8, 1.0)), "the last 10 % must stay unchanged: only 0.8 <= u < 0.9 takes a random id"),
    ]
    return _check_with_hints(1, bert_mask, reference_bert_mask, _mask_cases(), wrong, atol=0,
                             describe="(inputs, labels): [MASK] if u < 0.8, random if u < 0.9, else kept")


# ---- 2. the shifted causal-LM loss, per sequence ------------------------------------------------------
def reference_sequence_nll(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Row b: lm_loss(shift=True) on that row (padding as -100) times its number of predicted tokens."""
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    out = []
    for b in range(len(input_ids)):
        n = int((labels[b, 1:] != -100).sum())
        out.append(lm_loss(logits[b:b + 1], labels[b:b + 1], shift=True) * n if n else logits.new_zeros(()))
    return torch.stack(out)  # (B,)


def _nll_variant(*, shift: int = 1, use_mask: bool = True, mean: bool = False) -> Callable:
    def fn(logits, input_ids, attention_mask):
        logp = logits.log_softmax(-1)  # (B, T, V)
        if shift == 1:  # logits at t score token t + 1
            lp, tgt, m = logp[:, :-1], input_ids[:, 1:], attention_mask[:, 1:]
        elif shift == -1:  # shifted the wrong way: logits at t + 1 score token t
            lp, tgt, m = logp[:, 1:], input_ids[:, :-1], attention_mask[:, :-1]
        else:  # no shift: logits at t score token t
            lp, tgt, m = logp, input_ids, attention_mask
        nll = -lp.gather(-1, tgt[..., None])[..., 0]  # (B, T')
        m = m.to(nll.dtype) if use_mask else torch.ones_like(nll)
        s = (nll * m).sum(-1)
        return s / m.sum(-1).clamp(min=1) if mean else s
    return fn


def _nll_cases() -> list[tuple]:
    cases = []
    for seed, (B, T, V) in enumerate([(2, 6, 11), (3, 9, 50), (1, 4, 7)]):
        g = _gen(20 + seed)
        logits = torch.randn(B, T, V, generator=g) * 2
        ids = torch.randint(0, V, (B, T), generator=g)
        mask = torch.ones(B, T, dtype=torch.long)
        if B > 1:
            mask[1, T - 2:] = 0  # row 1 right-padded by 2
        if B > 2:
            mask[2, 2:] = 0  # row 2: 2 real tokens, one prediction
        cases.append((logits, ids, mask))
    return cases


def check_2(sequence_nll: Callable) -> bool | None:
    """sequence_nll(logits, input_ids, attention_mask) on batches with and without right padding."""
    wrong = [
        (_nll_variant(shift=0), "forgot the label shift? The logits at position t score the token at t + 1 "
                                "(compare logits[:, :-1] with input_ids[:, 1:])"),
        (_nll_variant(shift=0, use_mask=False), "forgot the label shift (logits at t score the token at t + 1), and "
                                                "padding was scored too"),
        (_nll_variant(shift=-1), "shifted the wrong way: position t predicts t + 1, so drop the LAST logits and the "
                                 "FIRST tokens"),
        (_nll_variant(use_mask=False), "padding was scored: a target whose attention_mask is 0 is not a token of the "
                                       "text (shift the mask with the labels)"),
        (_nll_variant(mean=True), "returned the mean per token: the sequence's NLL is the SUM over its predicted tokens"),
    ]
    return _check_with_hints(2, sequence_nll, reference_sequence_nll, _nll_cases(), wrong, atol=1e-4, rtol=1e-5,
                             describe="sum_t -log p(x_t+1 | x_<=t) over the real targets")


# ---- 3. one KV-cache decoding step ---------------------------------------------------------------------
class Forbidden(RuntimeError):
    """Raised when Exercise 3 calls a forward it is meant to write."""


def _forbid(what: str) -> Callable:
    def fn(*args, **kwargs):
        raise Forbidden(what)
    return fn


def student_copy(model: GPTModel) -> GPTModel:
    """A copy of `model` whose forwards refuse to run: the sub-layers (Linear, LayerNorm, Embedding, block.ffn)
    still work, so the step must be written from them."""
    m = copy.deepcopy(model)
    for name in ("forward", "body", "lm_head", "generate"):
        setattr(m, name, _forbid(f"model.{name}"))
    m.embeddings.forward = _forbid("model.embeddings(...) (it adds the positions for you)")
    for i, block in enumerate(m.layers):
        block.forward = _forbid(f"model.layers[{i}](...)")
        block.attn.forward = _forbid(f"model.layers[{i}].attn(...)")
    return m


@torch.no_grad()
def reference_kv_step(model: GPTModel, past_key_values, token: torch.Tensor):
    """The package: feed the one new token with the cache; (logits (B, V), the extended cache)."""
    out = model(token[:, None], past_key_values=past_key_values, use_cache=True)
    return out.logits[:, -1], out.past_key_values


@torch.no_grad()
def manual_kv_step(model: GPTModel, past_key_values, token: torch.Tensor, *, position_shift: int = 0,
                   position_zero: bool = False,
                   use_past: bool = True, final_norm: bool = True, scale: bool = True, pre_ln: bool = True,
                   append_past: bool = True):
    """The step written out, with switches for the usual mistakes (the defaults give the package's numbers)."""
    E, H = model.embeddings, model.config.n_heads
    P = past_key_values[0][0].size(2)
    pos = 0 if position_zero else P + position_shift
    x = E.word_embeddings(token)[:, None] + E.position_embeddings.weight[pos]  # (B, 1, D)
    B, _, D = x.shape
    presents = []
    for block, (pk, pv) in zip(model.layers, past_key_values):
        a = block.attn
        h = block.attn_norm(x) if pre_ln else x
        q, k, v = (lin(h).view(B, 1, H, D // H).transpose(1, 2) for lin in (a.q, a.k, a.v))  # (B, H, 1, Dh)
        if use_past:
            k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)  # (B, H, P + 1, Dh)
        presents.append((k, v) if append_past else (pk, pv))
        w = (q @ k.transpose(-2, -1) / (math.sqrt(D // H) if scale else 1.0)).softmax(-1)
        o = a.o((w @ v).transpose(1, 2).reshape(B, 1, D))
        x = x + o if pre_ln else block.attn_norm(x + o)
        x = x + block.ffn(block.ffn_norm(x)) if pre_ln else block.ffn_norm(x + block.ffn(x))
    h = model.final_norm(x) if final_norm else x
    return (h @ E.word_embeddings.weight.T)[:, 0], tuple(presents)


@functools.lru_cache(maxsize=1)
def _kv_cases() -> list[tuple]:
    cases = []
    geometries = [(TransformerConfig.tiny(norm_first=True, type_vocab_size=0, dropout=0.0, attn_dropout=0.0,
                                          vocab_size=60), 2, 4),
                  (TransformerConfig.tiny(norm_first=True, type_vocab_size=0, dropout=0.0, attn_dropout=0.0,
                                          vocab_size=60, n_layers=3, d_model=24, n_heads=3), 3, 1),
                  (TransformerConfig.mini_gpt(dropout=0.0, attn_dropout=0.0, vocab_size=300, d_model=64, d_ff=256,
                                              n_layers=2, max_positions=32), 1, 9)]  # mini-gpt's kind, smaller
    for seed, (cfg, B, P) in enumerate(geometries):
        torch.manual_seed(100 + seed)
        model = GPTModel(cfg).eval()
        for p in model.parameters():  # larger than the init's 0.02, so that every mistake shows in the logits
            p.data.add_(torch.randn(p.shape, generator=_gen(seed)) * 0.2)
        g = _gen(200 + seed)
        prompt = torch.randint(0, cfg.vocab_size, (B, P), generator=g)
        with torch.no_grad():
            past = model(prompt, use_cache=True).past_key_values
        cases.append((model, past, torch.randint(0, cfg.vocab_size, (B,), generator=g)))
    return cases


def _kv_answer(k: int, kv_step: Callable, model: GPTModel, past, token: torch.Tensor) -> tuple[bool, Any]:
    try:
        return _attempt(k, kv_step, student_copy(model), copy.deepcopy(past), token.clone())
    except Forbidden as e:
        return True, e


def check_3(kv_step: Callable) -> bool | None:
    """kv_step(model, past_key_values, token) on three random GPTs (past lengths 4, 1, 9; batch 2, 3, 1; 2 to 3
    layers; GELU and the tanh GELU of GPT-2). The models and caches are built once and never handed out: the
    student's function gets copies."""
    k = 3
    variants = [
        (dict(position_zero=True), "positions not offset by the past length? The new token is the (P+1)-th of the "
                                  "sequence: its position embedding is row P, not row 0"),
        (dict(position_shift=1), "position off by one: after P cached tokens (positions 0 .. P-1) the new token "
                                 "sits at position P, not P + 1"),
        (dict(position_shift=-1), "position off by one: after P cached tokens (positions 0 .. P-1) the new token "
                                  "sits at position P, not P - 1"),
        (dict(use_past=False), "the new token attended to itself only: concatenate the cached keys and values in "
                               "front of its own (torch.cat([past_k, k], dim=2)) before the attention"),
        (dict(final_norm=False), "forgot model.final_norm before the tied head (GPT-2 normalises the last hidden "
                                 "state once more)"),
        (dict(scale=False), "forgot the 1/sqrt(Dh) scale of the attention scores"),
        (dict(pre_ln=False), "GPT-2 is pre-LN: x = x + Attn(LN(x)) and x = x + FFN(LN(x)), not LN(x + ...)"),
    ]
    for i, (model, past, token) in enumerate(_kv_cases()):
        attempted, got = _kv_answer(k, kv_step, model, past, token)
        if not attempted:
            print(f"Exercise {k}: not attempted yet")
            return None
        if isinstance(got, Forbidden):
            print(f"Exercise {k}: not yet — your step calls {got}: write it from the sub-layers (embedding tables, "
                  "attn.q/k/v/o, the LayerNorms, block.ffn, the word-embedding matrix as the head)")
            return False
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            print(f"Exercise {k}: not yet — return a pair (logits (B, V), past_key_values), got {short(got)}")
            return False
        want_logits, want_past = reference_kv_step(model, past, token)
        P = past[0][0].size(2)
        if (m := mismatch(want_logits, got[0], atol=1e-4)) is not None:
            for kw, hint in variants:
                if mismatch(manual_kv_step(model, past, token, **kw)[0], got[0], atol=1e-4) is None:
                    print(f"Exercise {k}: not yet — {hint}")
                    return False
            print(f"Exercise {k}: not yet — the logits on case {i} (past length {P}): {m}")
            return False
        if mismatch(manual_kv_step(model, past, token, append_past=False)[1], got[1], atol=1e-5) is None:
            print(f"Exercise {k}: not yet — the logits are right but the cache was returned unchanged: each layer's "
                  f"(k, v) must grow from {P} to {P + 1} positions, the new token's appended")
            return False
        if (m := mismatch(want_past, got[1], atol=1e-5)) is not None:
            print(f"Exercise {k}: not yet — the logits are right, the returned cache is not (case {i}, past length "
                  f"{P}): {m}. Per layer: (torch.cat([past_k, k_new], 2), torch.cat([past_v, v_new], 2))")
            return False
    print(f"Exercise {k}: correct (equal to GPTModel with past_key_values, logits and cache)")
    return True


# ---- 4. top-k filtering ----------------------------------------------------------------------------------
def reference_top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The two lines of `GPTModel.generate` that keep the k largest logits of each row (ties included)."""
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def _top_k_variant(kind: str) -> Callable:
    def fn(logits, k):
        kk = min(k, logits.size(-1))
        kth = logits.topk(kk, dim=-1).values[:, -1:]
        if kind == "strict":
            return logits.masked_fill(logits <= kth, float("-inf"))
        if kind == "zero":
            return logits.masked_fill(logits < kth, 0.0)
        if kind == "smallest":
            kth_low = logits.topk(kk, dim=-1, largest=False).values[:, -1:]
            return logits.masked_fill(logits > kth_low, float("-inf"))
        if kind == "probs":
            return logits.softmax(-1).masked_fill(logits < kth, 0.0)
        raise ValueError(kind)
    return fn


def check_4(top_k_filter: Callable) -> bool | None:
    """top_k_filter(logits, k) for k = 3, 1, k > V, and rows with ties at the k-th value."""
    x = torch.randn(2, 10, generator=_gen(5))
    ties = torch.tensor([[1.0, 2.0, 2.0, 0.5, 2.0, -1.0], [0.0, 3.0, 1.0, 1.0, 1.0, 2.0]])
    cases = [(x, 3), (x, 1), (x, 20), (ties, 2), (ties, 3)]
    wrong = [
        (_top_k_variant("strict"), "only k - 1 survive: keep every logit >= the k-th largest (the k-th itself too)"),
        (_top_k_variant("zero"), "a filtered logit must be -inf: a logit of 0 still gets probability > 0"),
        (_top_k_variant("smallest"), "kept the k SMALLEST logits: top-k keeps the largest"),
        (_top_k_variant("probs"), "return filtered logits (-inf outside the top k), not probabilities: generate "
                                  "applies the softmax after the filter"),
    ]
    return _check_with_hints(4, top_k_filter, reference_top_k_filter, cases, wrong,
                             describe="logits below the k-th largest -> -inf")


# ---- 5. prediction: temperature and top-k = 1 ------------------------------------------------------------
TEMPERATURES = (0.1, 1.5)


def check_5(prediction: Callable[[], dict], measured: dict) -> bool | None:
    """`prediction()` -> {"repeats_more": 0.1 or 1.5, "top_k_1_equals_greedy": bool}, written BEFORE the
    measurement; `measured` = {"repeated": {0.1: share, 1.5: share}, "top_k_1_equals_greedy": bool}, what the
    notebook's cell measured on mini-gpt (share = the fraction of repeated 4-grams in the samples)."""
    k = 5
    if not isinstance(measured, dict) or set(measured) != {"repeated", "top_k_1_equals_greedy"}:
        raise ValueError(f"measured must be a dict with keys 'repeated' and 'top_k_1_equals_greedy', got {short(measured)}")
    if not isinstance(measured["repeated"], dict) or set(measured["repeated"]) != set(TEMPERATURES):
        raise ValueError(f"measured['repeated'] must map each temperature {TEMPERATURES} to a share, "
                         f"got {short(measured['repeated'])}")
    attempted, got = _attempt(k, prediction)
    if not attempted:
        print(f"Exercise {k}: not attempted yet")
        return None
    if not isinstance(got, dict) or set(got) != {"repeats_more", "top_k_1_equals_greedy"}:
        print(f"Exercise {k}: not yet — return a dict with keys 'repeats_more' and 'top_k_1_equals_greedy', "
              f"got {short(got)}")
        return False
    if got["repeats_more"] not in TEMPERATURES:
        print(f"Exercise {k}: not yet — 'repeats_more' must be one of {TEMPERATURES}, got {short(got['repeats_more'])}")
        return False
    if not isinstance(got["top_k_1_equals_greedy"], bool):
        print(f"Exercise {k}: not yet — 'top_k_1_equals_greedy' must be True or False, "
              f"got {short(got['top_k_1_equals_greedy'])}")
        return False
    rep = measured["repeated"]
    more = max(TEMPERATURES, key=lambda t: rep[t])
    shares = ", ".join(f"T={t}: {rep[t]:.2f}" for t in TEMPERATURES)
    ok = True
    if got["repeats_more"] != more:
        ok = False
        print(f"Exercise {k}: not yet — measured repeated 4-grams {shares}. Dividing the logits by T < 1 widens the "
              "gaps between them: at T = 0.1 nearly all the probability sits on the argmax, so sampling is almost "
              "greedy decoding, and greedy decoding falls into a loop; T > 1 flattens the distribution.")
    if got["top_k_1_equals_greedy"] != measured["top_k_1_equals_greedy"]:
        ok = False
        print(f"Exercise {k}: not yet — measured: top_k=1 {'equals' if measured['top_k_1_equals_greedy'] else 'differs from'} "
              "greedy. The filter runs before the draw: with k = 1 only the argmax keeps a non-zero probability, "
              "whatever the temperature (dividing by T never changes which logit is the largest).")
    if ok:
        print(f"Exercise {k}: correct (repeated 4-grams {shares}; top_k=1 "
              f"{'equals' if measured['top_k_1_equals_greedy'] else 'differs from'} greedy)")
    return ok


# ---- 6. perplexity from per-batch losses --------------------------------------------------------------
def reference_perplexity(batch_losses: list[float], batch_tokens: list[int]) -> float:
    """exp(sum_b n_b L_b / sum_b n_b): every token counts once, whichever batch it sits in."""
    return math.exp(sum(loss * n for loss, n in zip(batch_losses, batch_tokens)) / sum(batch_tokens))


def check_6(perplexity: Callable) -> bool | None:
    """perplexity(losses, tokens) on unequal batches (an MLM's masked counts), equal batches and one batch.
    The unequal cases come first, so that a per-batch average is caught (on equal batches it is right)."""
    cases = [([2.0, 4.0], [300, 100]), ([5.25, 4.5, 6.0], [61, 58, 9]), ([2.0, 3.0], [100, 100]), ([3.0], [7])]
    wrong = [
        (lambda ls, ns: math.exp(sum(ls) / len(ls)), "averaged the batch means: weight each batch's mean loss by its "
                                                     "number of tokens (a batch of 9 tokens is not worth one of 61)"),
        (lambda ls, ns: sum(math.exp(x) for x in ls) / len(ls), "averaged the per-batch perplexities: average the "
                                                                "losses per token first, then take exp once"),
        (lambda ls, ns: sum(x * n for x, n in zip(ls, ns)) / sum(ns), "returned the mean loss per token: the "
                                                                      "perplexity is its exp"),
        (lambda ls, ns: math.exp(sum(x * n for x, n in zip(ls, ns))), "forgot to divide by the number of tokens"),
    ]
    return _check_with_hints(6, perplexity, reference_perplexity, cases, wrong, rtol=1e-9,
                             describe="exp of the mean loss per token, not per batch")

