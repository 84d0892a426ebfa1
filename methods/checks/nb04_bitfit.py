"""Exercise checkers of notebook 04 (BitFit; Ben Zaken, Ravfogel, Goldberg 2022, arXiv:2106.10199).

Each `check_k(student_fn)` runs the student's function and the package's own implementation on the same inputs:
None = not attempted (the stub raised NotImplementedError), True = correct, False = not yet. On a wrong answer
the checker also computes the usual wrong variants (the head forgotten, the LayerNorm scales γ counted, the pooler
counted although mean pooling builds none, the bias left out, ...) and, when the student's answer equals one of
them, names that mistake instead of printing a bare expected/got. A wrong answer never raises.

1. `bitfit_count(D, L, F, C, pooling)`: BitFit's trainable entries on a BERT classifier, the head trained as
   `peft`'s SEQ_CLS default does. Reference: `expected_trainable_parameters` on a model built on `meta`.
2. `bitfit_trains(name)`: the name filter, on every parameter name of two real classifiers. Reference:
   `BitFitConfig.is_trainable` plus the head that `modules_to_save` wraps.
3. `allocate(k, sizes)`: the random-subset control's split of k entries over matrices (largest remainder).
   Reference: `methods.random_subset._allocate`, on real geometries and on random sizes.
4. `sparse_delta_linear(x, weight, bias, index, delta)`: the forward of `SparseDeltaLinear`. Reference: the
   layers of a real `RandomSubsetConfig` model with random δ.
5. A prediction: BitFit with the classifier's weight frozen at its random initialisation (the `"bias" in name`
   snippet) or the linear probe, which reaches the higher dev accuracy? Checked against the runs of the notebook.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from minitransformer import BertForSequenceClassification, TransformerConfig
from minitransformer.teaching.exercises import mismatch, short

from .. import random_subset
from ..api.peft_model import expected_trainable_parameters, get_peft_model
from ..bitfit import BitFitConfig
from ..random_subset import RandomSubsetConfig, SparseDeltaLinear


# ---- the shared machinery: compare, and on a mismatch look for a known mistake -----------------------------
def _attempt(k: int, fn: Callable, *args) -> tuple[bool, Any]:
    """(attempted, value): a stub gives (False, None); any other exception propagates, labelled."""
    try:
        return True, fn(*args)
    except NotImplementedError:
        return False, None
    except Exception as e:
        print(f"Exercise {k}: your code raised {type(e).__name__}: {e}")
        raise


def _check_hinted(k: int, student_fn: Callable, reference_fn: Callable, cases: list[tuple],
                  mistakes: dict[str, Callable], *, atol: float = 0.0, describe: str = "") -> bool | None:
    """Run student and reference on every case; at the first difference, name the mistake whose wrong variant
    gives exactly the student's answer (`mistakes`: hint -> function with the student's signature)."""
    for i, case in enumerate(cases):
        attempted, got = _attempt(k, student_fn, *[_copy(a) for a in case])
        if not attempted:
            print(f"Exercise {k}: not attempted yet")
            return None
        want = reference_fn(*case)
        if (m := mismatch(want, got, atol=atol)) is None:
            continue
        shown = ", ".join(short(a) for a in case)
        for hint, wrong in mistakes.items():
            if mismatch(wrong(*case), got, atol=atol) is None:
                print(f"Exercise {k}: not yet — on case {i} ({shown}): {hint}")
                return False
        print(f"Exercise {k}: not yet — on case {i} ({shown}): {m}")
        return False
    print(f"Exercise {k}: correct" + (f" ({describe})" if describe else ""))
    return True


def _copy(a: Any) -> Any:
    return a.clone() if isinstance(a, torch.Tensor) else list(a) if isinstance(a, list) else a


# ---- 1. the count ------------------------------------------------------------------------------------------
def _bert(D: int, L: int, F: int) -> TransformerConfig:
    return TransformerConfig.bert_base(d_model=D, n_layers=L, d_ff=F, n_heads=4 if D % 12 else 12)


def reference_bitfit_count(D: int, L: int, F: int, C: int, pooling: str) -> int:
    """What the package predicts for BitFit (peft's SEQ_CLS default: the head's weight and bias train)."""
    with torch.device("meta"):
        model = BertForSequenceClassification(_bert(D, L, F), C, pooling=pooling)
    return expected_trainable_parameters(model, BitFitConfig(task_type="SEQ_CLS"))


COUNT_CASES = [  # (D, L, F, C, pooling): mini-bert, BERT-base, MiniLM-L6, BERT-large, a made-up one
    (128, 4, 512, 2, "mean"), (768, 12, 3072, 2, "cls"), (384, 6, 1536, 6, "mean"), (1024, 24, 4096, 3, "cls"),
    (200, 3, 700, 5, "mean"),
]


def _count_mistakes() -> dict[str, Callable]:
    ref = reference_bitfit_count
    return {
        "forgot the head? The new classifier is wrapped in modules_to_save: its weight and its bias train "
        "(D·C + C).": lambda D, L, F, C, p: ref(D, L, F, C, p) - D * C - C,
        "only the head's bias? With peft's SEQ_CLS default the head's weight D·C trains too (a random weight "
        "that never trains is mistake 1 of the notebook).": lambda D, L, F, C, p: ref(D, L, F, C, p) - D * C,
        "counted a pooler? A mean-pooling classifier builds no pooler (it would never run), so it has no pooler "
        "bias.": lambda D, L, F, C, p: ref(D, L, F, C, p) + D if p == "mean" else -1,
        "forgot the pooler? With pooling='cls' the pooler runs, and its bias (D) trains.":
            lambda D, L, F, C, p: ref(D, L, F, C, p) - D if p == "cls" else -1,
        "counted the LayerNorm weights γ? Only the shift β is a bias; the scale γ stays frozen (2L + 1 "
        "LayerNorms of D).": lambda D, L, F, C, p: ref(D, L, F, C, p) + (2 * L + 1) * D,
        "off by the embedding LayerNorm? A post-LN BERT normalises its embeddings: one more β of D.":
            lambda D, L, F, C, p: ref(D, L, F, C, p) - D,
        "off by one bias per layer? Per layer: q, k, v, o, the two LayerNorm β and fc2 have D entries each, fc1 "
        "has F.": lambda D, L, F, C, p: ref(D, L, F, C, p) - L * D,
        "the FFN's first layer has F outputs: its bias b_m2 has F entries, not D.":
            lambda D, L, F, C, p: ref(D, L, F, C, p) - L * (F - D),
    }


def check_1(bitfit_count: Callable) -> bool | None:
    """bitfit_count(D, L, F, C, pooling) on mini-bert, BERT-base, MiniLM, BERT-large and a made-up geometry."""
    return _check_hinted(1, bitfit_count, reference_bitfit_count, COUNT_CASES, _count_mistakes(),
                         describe="D + L(4D + D + F + D + D) [+ D pooler with 'cls'] + D·C + C")


# ---- 2. the name filter ------------------------------------------------------------------------------------
def filter_models() -> list[nn.Module]:
    """Two real classifiers (built on `meta`, no memory): the mini-bert geometry with mean pooling (no pooler)
    and BERT-base with [CLS] pooling (a pooler)."""
    with torch.device("meta"):
        return [BertForSequenceClassification(TransformerConfig.mini_bert(), 2, pooling="mean"),
                BertForSequenceClassification(TransformerConfig.bert_base(), 3, pooling="cls")]


def reference_trained_names(names: list[str]) -> list[str]:
    """The parameters BitFit trains with peft's SEQ_CLS default: the method's filter, and the wrapped head."""
    config = BitFitConfig(task_type="SEQ_CLS")
    head = set(config.resolved_modules_to_save())
    return [n for n in names if config.is_trainable(n) or n.split(".")[0] in head]


def _selected(fn: Callable[[str], bool]) -> Callable[[list[str]], list[str]]:
    return lambda names: [n for n in names if fn(n) is True]


def _filter_mistakes() -> dict[str, Callable]:
    ref = reference_trained_names
    return {
        "forgot the head's weight? The new classifier is wrapped in modules_to_save: classifier.weight trains "
        "as well as classifier.bias.": lambda names: [n for n in ref(names) if n != "classifier.weight"],
        "forgot the head? The classifier is new and random: its weight and bias must train.":
            lambda names: [n for n in ref(names) if not n.startswith("classifier.")],
        "counted the LayerNorm weights γ? They are named '...norm.weight'; only β ('...norm.bias') is a bias.":
            lambda names: [n for n in names if n in ref(names) or (n.endswith(".weight") and "norm" in n)],
        "forgot the LayerNorm shifts β? '...norm.bias' is a bias too (b_LN in the paper) and trains.":
            lambda names: [n for n in ref(names) if not (n.endswith(".bias") and "norm" in n)],
    }


def check_2(bitfit_trains: Callable[[str], bool]) -> bool | None:
    """bitfit_trains(name) -> bool on every parameter name of a mean-pooled mini-bert classifier and of a
    [CLS]-pooled BERT-base classifier; the selected names must be exactly those BitFit trains."""
    cases = [([n for n, _ in m.named_parameters()],) for m in filter_models()]
    return _check_hinted(2, _selected(bitfit_trains), reference_trained_names, cases, _filter_mistakes(),
                         describe="every bias (LayerNorm β included, γ not) and the whole head")


# ---- 3. the random subset's allocation ---------------------------------------------------------------------
def _linear_sizes(c: TransformerConfig) -> list[int]:
    """Sizes of the q, k, v, o, fc1, fc2 weights of every layer, in model order (the random subset's targets)."""
    D, F = c.d_model, c.d_ff
    return [D * D] * 4 + [D * F, F * D]


def allocate_cases() -> list[tuple[int, list[int]]]:
    mini, base = TransformerConfig.mini_bert(), TransformerConfig.bert_base()
    cases = [(5_760, _linear_sizes(mini) * mini.n_layers),  # BitFit's count on mini-bert (head excluded)
             (102_912, _linear_sizes(base) * base.n_layers),  # ... on BERT-base
             (2, [10, 10, 10]), (7, [3, 3, 3, 3]), (0, [5, 7]), (12, [5, 7]), (5, [1, 100, 1])]
    rng = random.Random(4)
    for _ in range(6):
        sizes = [rng.randint(1, 500) for _ in range(rng.randint(2, 9))]
        cases.append((rng.randint(1, sum(sizes)), sizes))
    return cases


def _floor_only(k: int, sizes: list[int]) -> list[int]:
    return [int(k * s / sum(sizes)) for s in sizes]


def _rounded(k: int, sizes: list[int]) -> list[int]:
    return [round(k * s / sum(sizes)) for s in sizes]


def _equal_split(k: int, sizes: list[int]) -> list[int]:
    n = len(sizes)
    return [k // n + (1 if i < k % n else 0) for i in range(n)]


def _ties_to_later(k: int, sizes: list[int]) -> list[int]:
    exact = [k * s / sum(sizes) for s in sizes]
    shares = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: (exact[i] - shares[i], i), reverse=True)
    for i in order[: k - sum(shares)]:
        shares[i] += 1
    return shares


def _largest_size_first(k: int, sizes: list[int]) -> list[int]:
    exact = [k * s / sum(sizes) for s in sizes]
    shares = [int(e) for e in exact]
    for i in sorted(range(len(sizes)), key=lambda i: sizes[i], reverse=True)[: k - sum(shares)]:
        shares[i] += 1
    return shares


def check_3(allocate: Callable[[int, list[int]], list[int]]) -> bool | None:
    """allocate(k, sizes) against the package's largest-remainder split, on mini-bert's and BERT-base's 24 / 72
    matrices with BitFit's count, on ties and edge cases, and on random sizes."""
    mistakes = {
        "the shares add up to less than k: after taking the integer part of each k·s/total, hand the leftover "
        "entries, one each, to the matrices with the largest remainders.": _floor_only,
        "rounding each share on its own can overshoot or undershoot k: take the integer parts, then give the "
        "leftover entries to the largest remainders.": _rounded,
        "an equal split ignores the sizes: each matrix gets a share in proportion to its number of entries.":
            _equal_split,
        "ties: when two remainders are equal, the earlier matrix gets the entry first (a stable sort, as "
        "`sorted(..., reverse=True)` keeps equal keys in order).": _ties_to_later,
        "the leftover entries go to the largest *remainders* k·s/total − ⌊k·s/total⌋, not to the largest "
        "matrices.": _largest_size_first,
    }
    return _check_hinted(3, lambda k, sizes: list(allocate(k, sizes)), random_subset._allocate, allocate_cases(),
                         mistakes, describe="largest remainder: floor, then the leftovers to the largest remainders")


# ---- 4. SparseDeltaLinear's forward ------------------------------------------------------------------------
def sparse_delta_cases(seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """(x, weight, bias, index, delta, output) from the SparseDeltaLinear layers of a real random-subset model
    (tiny BERT, 300 random entries) whose δ were set to random values; output = the layer's own forward."""
    torch.manual_seed(seed)
    model = BertForSequenceClassification(TransformerConfig.tiny(), 2, pooling="mean")
    peft = get_peft_model(model, RandomSubsetConfig(task_type="SEQ_CLS", n_params=300, seed=seed))
    g = torch.Generator().manual_seed(seed)
    cases = []
    for layer in peft.modules():
        if not isinstance(layer, SparseDeltaLinear) or len(cases) == 3:
            continue
        with torch.no_grad():
            for p in layer.parameters():
                if p.requires_grad:  # δ: random non-zero values instead of the zeros of initialisation
                    p.copy_(torch.randn(p.shape, generator=g) + 3.0)
            layer.base_layer.bias.copy_(torch.randn(layer.base_layer.bias.shape, generator=g))  # biases init at 0
        delta_w = layer.delta_weight("default").detach()
        index = delta_w.flatten().nonzero().flatten()  # sorted flat positions (δ is never 0 here)
        delta = delta_w.flatten()[index]
        weight, bias = layer.base_layer.weight.detach(), layer.base_layer.bias.detach()
        x = torch.randn(2, 3, weight.shape[1], generator=g)
        layer.eval()
        with torch.no_grad():
            out = layer(x)
        cases.append((x, weight.clone(), bias.clone(), index, delta, out))
    return cases


def check_4(sparse_delta_linear: Callable) -> bool | None:
    """sparse_delta_linear(x, weight, bias, index, delta) against three SparseDeltaLinear layers of a real model."""
    cases = sparse_delta_cases()
    outputs = {id(c[0]): c[5] for c in cases}

    def reference(x, weight, bias, index, delta):
        return outputs[id(x)]

    def with_delta(weight, index, delta, transpose=False, replace=False):
        w = (weight.t().contiguous() if transpose else weight.clone()).flatten()
        w = w.index_copy(0, index, delta) if replace else w.index_add(0, index, delta)
        w = w.view(weight.shape[::-1] if transpose else weight.shape)
        return w.t() if transpose else w

    mistakes = {
        "off by the bias? y = x (W + ΔW)ᵀ + b: the layer keeps its frozen bias.":
            lambda x, W, b, i, d: x @ with_delta(W, i, d).T,
        "δ is missing: the output equals the frozen layer's. Add δ to W at the flat positions `index`.":
            lambda x, W, b, i, d: x @ W.T + b,
        "δ is *added* to the frozen entries of W, it does not overwrite them (index_add, not index_copy).":
            lambda x, W, b, i, d: x @ with_delta(W, i, d, replace=True).T + b,
        "flat positions count along the rows of the (out, in) weight (row-major): position p is row p // in, "
        "column p % in. Did you flatten Wᵀ?": lambda x, W, b, i, d: x @ with_delta(W, i, d, transpose=True).T + b,
    }
    return _check_hinted(4, sparse_delta_linear, reference, [c[:5] for c in cases], mistakes, atol=1e-5,
                         describe="y = x (W + scatter(δ, I))ᵀ + b")


# ---- 5. the prediction -------------------------------------------------------------------------------------
PREDICTION_WHY = {
    "head": "the classifier's weight is what maps the features onto the labels: with it frozen at its random "
            "initialisation, the biases must bend the whole network towards one fixed random direction, while the "
            "probe turns its 258 weights towards the features the frozen base already has.",
    "biases": "the biases reach every layer: thousands of them can move the pooled sentence vector along the "
              "fixed random head, and that was enough to beat a probe that only re-weights the frozen features.",
}


def check_5(prediction: Callable[[], Any], dev_accuracy: dict[str, float]) -> bool | None:
    """prediction() -> "biases" (BitFit with the head's weight frozen) or "head" (the linear probe): right when it
    names the run that reached the higher dev accuracy (`dev_accuracy`, measured in the cell that calls this)."""
    attempted, got = _attempt(5, prediction)
    if not attempted:
        print("Exercise 5: not attempted yet")
        return None
    if got not in dev_accuracy:
        print(f"Exercise 5: not yet — answer one of {', '.join(map(repr, dev_accuracy))}, got {short(got)}")
        return False
    winner = max(dev_accuracy, key=dev_accuracy.get)
    measured = ", ".join(f"{k}: dev {a:.4f}" for k, a in dev_accuracy.items())
    why = PREDICTION_WHY.get(winner, "")
    if dev_accuracy[got] == dev_accuracy[winner]:
        print(f"Exercise 5: correct ({measured}) — {why}")
        return True
    print(f"Exercise 5: not yet — measured {measured}. Why {winner!r} wins: {why}")
    return False
