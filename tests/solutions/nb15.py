"""Reference solutions of notebook 15's exercises ((IA)³), and typical wrong answers (the checkers must reject each
one and name its mistake)."""

from torch import nn

from methods.ia3 import IA3Linear


# ---- 1. the layer -----------------------------------------------------------------------------------------------
def ia3_linear(x, weight, bias, l, mode):
    if mode == "output":  # attn.k, attn.v: l ⊙ (W x + b)
        return (x @ weight.T + bias) * l
    return (x * l) @ weight.T + bias  # ffn.fc2 (and peft's attn.o): W (l ⊙ x) + b


def ia3_linear_bias_unscaled(x, weight, bias, l, mode):
    if mode == "output":
        return (x @ weight.T) * l + bias  # the bias added after the scaling
    return (x * l) @ weight.T + bias


def ia3_linear_swapped(x, weight, bias, l, mode):
    return ia3_linear(x, weight, bias, l, "input" if mode == "output" else "output")


def ia3_linear_rows(x, weight, bias, l, mode):
    if mode == "output":
        return (x @ weight.T + bias) * l
    return x @ (l[:, None] * weight).T + bias  # diag(l) W: the rows, in input mode


def ia3_linear_ignores_l(x, weight, bias, l, mode):
    return x @ weight.T + bias


def ia3_linear_calls_the_package(x, weight, bias, l, mode):
    base = nn.Linear(weight.shape[1], weight.shape[0])
    base.weight.data, base.bias.data = weight, bias
    layer = IA3Linear(base)
    layer.update_layer("default", is_feedforward=mode == "input")
    layer.set_adapter("default")
    layer.ia3_l["default"].data = l
    return layer(x)


# ---- 2. the fold ------------------------------------------------------------------------------------------------
def fold_ia3(weight, bias, l, mode):
    if mode == "output":  # diag(l) W and l ⊙ b: row i of W computes output i
        return weight * l[:, None], bias * l
    return weight * l[None, :], bias  # W diag(l): column j of W reads input j; the bias is added after W


def fold_ia3_bias_forgotten(weight, bias, l, mode):
    return (weight * l[:, None], bias) if mode == "output" else (weight * l[None, :], bias)


def fold_ia3_columns_for_output(weight, bias, l, mode):
    return (weight * l[None, :], bias * l) if mode == "output" else (weight * l[None, :], bias)


def fold_ia3_bias_scaled_for_input(weight, bias, l, mode):
    return (weight * l[:, None], bias * l) if mode == "output" else (weight * l[None, :], bias * l)


def fold_ia3_divided(weight, bias, l, mode):
    return (weight / l[:, None], bias / l) if mode == "output" else (weight / l[None, :], bias)


def fold_ia3_calls_the_package(weight, bias, l, mode):
    base = nn.Linear(weight.shape[1], weight.shape[0])
    base.weight.data, base.bias.data = weight.clone(), bias.clone()
    layer = IA3Linear(base)
    layer.update_layer("default", is_feedforward=mode == "input")
    layer.set_adapter("default")
    layer.ia3_l["default"].data = l
    layer.merge()
    return layer.weight, layer.bias


# ---- 3. the count -----------------------------------------------------------------------------------------------
def ia3_count(D, L, F, C, attn_o):
    # per layer l_k (D) + l_v (D) + l_ff (F) [+ l_o (D), scaling attn.o's input], and the head D·C + C
    return L * (D + D + F + (D if attn_o else 0)) + D * C + C


def ia3_count_F_for_kv(D, L, F, C, attn_o):
    return L * (F + F + F + (D if attn_o else 0)) + D * C + C


def ia3_count_no_head(D, L, F, C, attn_o):
    return L * (D + D + F + (D if attn_o else 0))


def ia3_count_o_as_matrix(D, L, F, C, attn_o):
    return L * (D + D + F + (D * D if attn_o else 0)) + D * C + C


def ia3_count_ignores_attn_o(D, L, F, C, attn_o):
    return L * (D + D + F) + D * C + C


# ---- 4. the prediction (any may be right: the checker compares with the measured resets) -------------------------
def prediction_ff():
    return "l_ff"


WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, ia3_linear_bias_unscaled, "forgot to scale the bias"),
    (1, ia3_linear_swapped, "input and output scaling swapped"),
    (1, ia3_linear_rows, "scaled the rows of W"),
    (1, ia3_linear_ignores_l, "l is not applied"),
    (1, ia3_linear_calls_the_package, "your code called IA3Linear.forward"),
    (2, fold_ia3_bias_forgotten, "forgot the bias"),
    (2, fold_ia3_columns_for_output, "scaled the columns of W instead of its rows"),
    (2, fold_ia3_bias_scaled_for_input, "scaled the bias in mode 'input'"),
    (2, fold_ia3_divided, "unmerging"),
    (2, fold_ia3_calls_the_package, "your code called"),
    (3, ia3_count_F_for_kv, "counted F entries for l_k and l_v"),
    (3, ia3_count_no_head, "forgot the head"),
    (3, ia3_count_o_as_matrix, "as a D·D matrix"),
    (3, ia3_count_ignores_attn_o, "forgot attn.o"),
]

