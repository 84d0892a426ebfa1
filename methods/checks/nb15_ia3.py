"""Exercise checkers of notebook 15 ((IA)³; Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and
Cheaper than In-Context Learning", arXiv:2205.05638).

    output scaling (attn.k, attn.v):   y = l ⊙ (W x + b)          l ∈ R^out
    input scaling (ffn.fc2, attn.o):   y = W (l ⊙ x) + b          l ∈ R^in

Each `check_k(...)` runs the student's function and the package's own code on the same inputs: None = not
attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer never raises. On
a wrong answer the checker also computes the usual mistakes (the bias scaled or not where the package does the
opposite, input and output scaling swapped, the rows of W scaled instead of its columns, F counted for the keys,
the head forgotten, ...) and, when the student's answer equals one of them, names that mistake. While the
student's code runs, the package's `IA3Linear.forward`, `IA3Linear.fold` and `AdapterLayer.merge` are tripwires.

1. `ia3_linear(x, weight, bias, l, mode)`: one rescaled linear layer, mode "output" or "input". Reference: an
   `IA3Linear` holding these tensors; the cases come from the layers of a real (IA)³ model with random vectors.
2. `fold_ia3(weight, bias, l, mode)` -> (merged weight, merged bias): what `merge()` writes into the base layer.
   Reference: an `IA3Linear` holding these tensors, merged.
3. `ia3_count(D, L, F, C, attn_o)`: trainable entries of (IA)³ on a BERT classifier (mean pooling, a C-label
   head that trains), with the paper's targets (attn_o False) or `peft`'s default for BERT, which also scales the
   input of the attention output projection (attn_o True). Reference: `IA3Config.expected_trainable_parameters` plus the head.
4. A prediction: after training, which kind of vector, reset to ones alone (l_k, l_v or l_ff in every layer), costs
   the most dev accuracy? Checked against the notebook's measurement (`check_4(prediction, measured)`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from minitransformer import BertForSequenceClassification, TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from ..api.counting import head_params
from ..api.layers import AdapterLayer
from ..api.peft_model import get_peft_model
from ..ia3 import IA3Config, IA3Linear

MODES = ("output", "input")
# peft's default on BERT: every `output.dense` is a feed-forward module, so the attention output projection's
# *input* is scaled too; in our names that is attn.o beside ffn.fc2
PEFT_TARGETS = ["attn.k", "attn.v", "attn.o", "ffn.fc2"]
PEFT_FEEDFORWARD = ["attn.o", "ffn.fc2"]
FORBIDDEN = [(IA3Linear, "forward", "IA3Linear.forward (the package's layer)"),
             (IA3Linear, "fold", "IA3Linear.fold (the package's merge)"),
             (AdapterLayer, "merge", "AdapterLayer.merge (the package's merge)")]


def peft_like_config(**kw) -> IA3Config:
    """`peft`'s default (IA)³ targets for BERT, in this package's module names."""
    return IA3Config(target_modules=list(PEFT_TARGETS), feedforward_modules=list(PEFT_FEEDFORWARD), **kw)


def _layer(weight: torch.Tensor, bias: torch.Tensor, l: torch.Tensor, mode: str) -> IA3Linear:
    """An IA3Linear around nn.Linear(weight, bias) whose one adapter holds `l`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    out_features, in_features = weight.shape
    base = nn.Linear(in_features, out_features)
    with torch.no_grad():
        base.weight.copy_(weight)
        base.bias.copy_(bias)
    layer = IA3Linear(base)
    layer.update_layer("default", is_feedforward=mode == "input")
    layer.set_adapter("default")
    with torch.no_grad():
        layer.ia3_l["default"].copy_(l)
    return layer


# ---- the cases: the wrapped layers of a real (IA)³ model ------------------------------------------------------
def ia3_model(seed: int = 0):
    """A tiny BERT classifier with peft's targets (so a *square* layer, attn.o, is scaled on its input as well as
    the wide ffn.fc2), its vectors drawn in [0.5, 1.5] and its biases at random (BERT initialises them to 0, and
    a zero bias would hide a bias mistake)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(TransformerConfig.tiny(), 2, pooling="mean")
        peft = get_peft_model(model, peft_like_config(task_type="SEQ_CLS"))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in peft.modules():
                if isinstance(layer, IA3Linear):
                    layer.ia3_l["default"].copy_(0.5 + torch.rand(layer.ia3_l["default"].shape, generator=g))
                    layer.get_base_layer().bias.copy_(torch.randn(layer.bias.shape, generator=g))
    return peft.eval()


# which layers, in which order: the square output- and input-scaled layers first, so that a swap of the two modes
# is named before the wide fc2 (where it could only fail on shapes); then fc2, v, and fc2 on a 2-D input
CASE_LAYERS = [("bert.layers.0.attn.k", (2, 5)), ("bert.layers.0.attn.o", (2, 5)), ("bert.layers.0.ffn.fc2", (3, 4)),
               ("bert.layers.1.attn.v", (1, 6)), ("bert.layers.1.ffn.fc2", (7,))]


def ia3_cases(seed: int = 0) -> list[tuple]:
    """(x, weight, bias, l, mode) for five IA3Linear layers of `ia3_model(seed)`."""
    peft = ia3_model(seed)
    g = torch.Generator().manual_seed(seed + 1)
    cases = []
    for name, lead in CASE_LAYERS:
        layer = peft.base_model.get_submodule(name)
        x = torch.randn(*lead, layer.weight.shape[1], generator=g)
        cases.append((x, layer.weight.detach().clone(), layer.bias.detach().clone(),
                      layer.ia3_l["default"].detach().clone(), "input" if layer.is_feedforward else "output"))
    return cases


def _square(W: torch.Tensor) -> bool:
    return W.shape[0] == W.shape[1]


# ---- 1. the layer -----------------------------------------------------------------------------------------------
def reference_ia3_linear(x, weight, bias, l, mode):
    """The package's IA3Linear holding (weight, bias, l), on x (..., in)."""
    return _layer(weight, bias, l, mode)(x)


def _only(mode: str, fn: Callable, square: bool = False) -> Callable:
    """A wrong variant that exists only in `mode` (and, where it needs W to be square, on a square W)."""
    return lambda x, W, b, l, m: fn(x, W, b, l) if m == mode and (_square(W) or not square) else []


LINEAR_HINTS = [
    ("forgot to scale the bias? For attn.k and attn.v the package scales the whole output, l ⊙ (W x + b): the bias "
     "is part of the key and the value, so it is scaled with them (as in peft; the paper's T5 has no biases)",
     _only("output", lambda x, W, b, l: (x @ W.T) * l + b)),
    ("input and output scaling swapped? mode 'output' (attn.k, attn.v) multiplies the layer's output, l ⊙ (W x + b); "
     "mode 'input' (ffn.fc2: the FFN's activation) multiplies its input, W (l ⊙ x) + b",
     lambda x, W, b, l, m: [] if not _square(W) else
     (x * l) @ W.T + b if m == "output" else (x @ W.T + b) * l),
    ("scaled the rows of W (its outputs) instead of its columns (its inputs)? In mode 'input', W (l ⊙ x) = "
     "(W diag(l)) x: l multiplies column j of W, the weight that reads input j",
     _only("input", lambda x, W, b, l: x @ (l[:, None] * W).T + b, square=True)),
    ("scaled the bias in mode 'input'? There l multiplies the input before W; the bias is added after W and stays "
     "as it is: W (l ⊙ x) + b", _only("input", lambda x, W, b, l: (x * l) @ W.T + b * l, square=True)),
    ("l is not applied: the output equals the frozen layer's W x + b", lambda x, W, b, l, m: x @ W.T + b),
    ("nn.Linear stores its weight as (out, in): the layer computes x @ W.T + b, not x @ W",
     lambda x, W, b, l, m: [] if not _square(W) else (x @ W + b) * l if m == "output" else (x * l) @ W + b),
]


def check_1(ia3_linear: Callable) -> bool | None:
    """ia3_linear(x, weight, bias, l, mode) against five IA3Linear layers of a real (IA)³ model."""
    return check_parity(1, ia3_linear, reference_ia3_linear, ia3_cases(), LINEAR_HINTS, forbidden=FORBIDDEN,
                        no_grad=True, build_from="tensor operations",
                        describe="'output': l ⊙ (W x + b); 'input': W (l ⊙ x) + b")


# ---- 2. the fold ------------------------------------------------------------------------------------------------
def reference_fold_ia3(weight, bias, l, mode):
    """(weight, bias) of the package's IA3Linear holding (weight, bias, l) after `merge()`."""
    layer = _layer(weight, bias, l, mode)
    layer.merge()
    return layer.weight.detach().clone(), layer.bias.detach().clone()


def fold_cases(seed: int = 0) -> list[tuple]:
    return [(W, b, l, mode) for _, W, b, l, mode in ia3_cases(seed)]


def _fold_only(mode: str, fn: Callable, square: bool = True) -> Callable:
    return lambda W, b, l, m: fn(W, b, l) if m == mode and (_square(W) or not square) else []


FOLD_HINTS = [
    ("forgot the bias? l ⊙ (W x + b) = (diag(l) W) x + l ⊙ b: in mode 'output' the bias is scaled with the rows",
     _fold_only("output", lambda W, b, l: (l[:, None] * W, b), square=False)),
    ("scaled the columns of W instead of its rows? In mode 'output' entry i of l multiplies output i, which row i "
     "of W (shape (out, in)) computes: diag(l) W, i.e. W * l[:, None]",
     _fold_only("output", lambda W, b, l: [(W * l[None, :], b * l), (W * l[None, :], b)])),
    ("scaled the rows of W instead of its columns? In mode 'input' entry j of l multiplies input j, which column j "
     "of W reads: W diag(l), i.e. W * l[None, :]",
     _fold_only("input", lambda W, b, l: [(l[:, None] * W, b), (l[:, None] * W, b * l)])),
    ("scaled the bias in mode 'input'? W (l ⊙ x) + b = (W diag(l)) x + b: the bias is added after W and is not "
     "scaled", _fold_only("input", lambda W, b, l: (W * l[None, :], b * l))),
    ("divided by l instead of multiplying: that is what unmerging does (it takes the vector back out)",
     lambda W, b, l, m: (W / l[:, None], b / l) if m == "output" else (W / l[None, :], b)),
    ("l is not applied: the weight and bias are returned unchanged", lambda W, b, l, m: (W, b)),
]


def check_2(fold_ia3: Callable) -> bool | None:
    """fold_ia3(weight, bias, l, mode) -> (weight, bias) against the package's merge, on five real layers."""
    return check_parity(2, fold_ia3, reference_fold_ia3, fold_cases(), FOLD_HINTS, forbidden=FORBIDDEN,
                        no_grad=True, build_from="tensor operations",
                        describe="'output': (diag(l) W, l ⊙ b); 'input': (W diag(l), b)")


# ---- 3. the count -----------------------------------------------------------------------------------------------
def _bert(D: int, L: int, F: int) -> TransformerConfig:
    return TransformerConfig.bert_base(d_model=D, n_layers=L, d_ff=F, n_heads=4 if D % 12 else 12)


def reference_ia3_count(D: int, L: int, F: int, C: int, attn_o: bool) -> int:
    """What the package predicts for (IA)³ on a mean-pooled BERT classifier (no pooler; the head trains, peft's
    default): the method's closed form from the geometry alone, plus the head, as `expected_trainable_parameters`
    adds it (the tests check both against a live model)."""
    config = peft_like_config(task_type="SEQ_CLS") if attn_o else IA3Config(task_type="SEQ_CLS")
    c = _bert(D, L, F)
    return config.expected_trainable_parameters(c, "bert", C, pooler=False) + head_params(c, "bert", C)


COUNT_CASES = [  # (D, L, F, C, attn_o): mini-bert, BERT-base, MiniLM-L6, a made-up geometry; each with and without
    (128, 4, 512, 2, False), (128, 4, 512, 2, True), (768, 12, 3072, 2, False), (768, 12, 3072, 2, True),
    (384, 6, 1536, 6, False), (200, 3, 700, 5, True), (200, 3, 700, 5, False),
]


def _head(D: int, C: int) -> int:
    return D * C + C


COUNT_HINTS = [
    ("counted F entries for l_k and l_v? Keys and values are D wide (the outputs of attn.k and attn.v); only l_ff, "
     "the FFN's activation, has F entries", lambda D, L, F, C, o: L * (3 * F + (D if o else 0)) + _head(D, C)),
    ("counted l_ff with D entries? It scales the *input* of ffn.fc2, the FFN's activation γ(W_1 x), which is F wide",
     lambda D, L, F, C, o: L * (3 * D + (D if o else 0)) + _head(D, C)),
    ("forgot the head? The new classifier is wrapped in modules_to_save: its weight and its bias train (D·C + C)",
     lambda D, L, F, C, o: reference_ia3_count(D, L, F, C, o) - _head(D, C)),
    ("only the head's bias? With peft's SEQ_CLS default the head's weight D·C trains too",
     lambda D, L, F, C, o: reference_ia3_count(D, L, F, C, o) - D * C),
    ("counted the attention output projection as a D·D matrix? (IA)³ never trains a matrix: attn.o gets one vector "
     "of D entries that scales its input", lambda D, L, F, C, o: L * (2 * D + F + D * D) + _head(D, C) if o else []),
    ("forgot attn.o? With attn_o=True (peft's default on BERT) each layer has a fourth vector of D entries, scaling "
     "the input of the attention output projection", lambda D, L, F, C, o: L * (2 * D + F) + _head(D, C) if o else []),
    ("counted attn.o although attn_o=False? The paper's (IA)³ scales keys, values and the FFN's activation only",
     lambda D, L, F, C, o: L * (3 * D + F) + _head(D, C) if not o else []),
]


def check_3(ia3_count: Callable) -> bool | None:
    """ia3_count(D, L, F, C, attn_o) on mini-bert, BERT-base, MiniLM and a made-up geometry, with and without attn.o."""
    return check_parity(3, ia3_count, reference_ia3_count, COUNT_CASES, COUNT_HINTS,
                        describe="L·(D + D + F) [+ L·D with attn.o] + D·C + C")


# ---- 4. the prediction ------------------------------------------------------------------------------------------
KINDS = ("l_k", "l_v", "l_ff")
COMMON = ("The three kinds were trained together, so resetting one also breaks what the other two learned to do "
          "with it; what the measurement ranks is how much of the trained behaviour each kind carries. ")
PREDICTION_WHY = {
    "l_ff": COMMON + "Each entry of l_ff gates one hidden unit of the FFN, whose contribution to the residual stream "
                     "is a fixed direction (a column of W_2); the FFN holds two thirds of a block's weights and l_ff "
                     "has F = 4D entries per layer against D for l_k or l_v: the most levers, each acting directly "
                     "on the sentence vector that the head reads.",
    "l_v": COMMON + "Each entry of l_v scales one feature of what every attended token contributes to the output (the "
                    "same as scaling the input of W_o, as §4 shows): with D entries per layer it acts on every "
                    "token's update from attention directly, whatever the attention pattern.",
    "l_k": COMMON + "Each entry of l_k sharpens or flattens the attention along one feature of q·k, so it decides "
                    "which tokens each token reads: here the task needed the model to look at other tokens more "
                    "than it needed new values or new FFN units.",
}


def check_4(prediction: Callable, measured: dict[str, float]) -> bool | None:
    """prediction() -> "l_k", "l_v" or "l_ff": right when it names the kind whose reset to ones cost the most dev
    accuracy (`measured`: kind -> accuracy lost, from the notebook's run)."""
    winner = max(measured, key=measured.get)
    return check_choice(4, prediction, measured, PREDICTION_WHY.get(winner, ""))
