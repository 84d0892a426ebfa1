"""Reference solutions of notebook 11's exercises (AdaMix), and typical wrong answers (the checkers must reject each
one and name its mistake)."""

import torch
import torch.nn.functional as F

from methods import adamix


# ---- 1. the symmetric KL ----------------------------------------------------------------------------------------
def symmetric_kl(logits_a, logits_b):
    a, b = logits_a.reshape(-1, logits_a.size(-1)), logits_b.reshape(-1, logits_b.size(-1))  # one row per distribution
    kl_ba = F.kl_div(F.log_softmax(a, -1), F.softmax(b.detach(), -1), reduction="batchmean")  # KL(p_B ‖ p_A)
    kl_ab = F.kl_div(F.log_softmax(b, -1), F.softmax(a.detach(), -1), reduction="batchmean")  # KL(p_A ‖ p_B)
    return 0.5 * (kl_ba + kl_ab)


def symmetric_kl_by_hand(logits_a, logits_b):
    """The same without F.kl_div: Σ_c p (log p − log q) per row, averaged over the rows."""
    a, b = logits_a.reshape(-1, logits_a.size(-1)), logits_b.reshape(-1, logits_b.size(-1))
    log_pa, log_pb = a.log_softmax(-1), b.log_softmax(-1)
    pa, pb = log_pa.exp().detach(), log_pb.exp().detach()
    kl_ba = (pb * (pb.log() - log_pa)).sum(-1).mean()
    kl_ab = (pa * (pa.log() - log_pb)).sum(-1).mean()
    return 0.5 * (kl_ba + kl_ab)


def symmetric_kl_one_direction(logits_a, logits_b):
    a, b = logits_a.reshape(-1, logits_a.size(-1)), logits_b.reshape(-1, logits_b.size(-1))
    return F.kl_div(F.log_softmax(a, -1), F.softmax(b.detach(), -1), reduction="batchmean")


def symmetric_kl_no_half(logits_a, logits_b):
    return 2 * symmetric_kl(logits_a, logits_b)


def symmetric_kl_no_detach(logits_a, logits_b):
    a, b = logits_a.reshape(-1, logits_a.size(-1)), logits_b.reshape(-1, logits_b.size(-1))
    kl_ba = F.kl_div(F.log_softmax(a, -1), F.softmax(b, -1), reduction="batchmean")
    kl_ab = F.kl_div(F.log_softmax(b, -1), F.softmax(a, -1), reduction="batchmean")
    return 0.5 * (kl_ba + kl_ab)


def symmetric_kl_summed_rows(logits_a, logits_b):
    a, b = logits_a.reshape(-1, logits_a.size(-1)), logits_b.reshape(-1, logits_b.size(-1))
    kl_ba = F.kl_div(F.log_softmax(a, -1), F.softmax(b.detach(), -1), reduction="sum")
    kl_ab = F.kl_div(F.log_softmax(b, -1), F.softmax(a.detach(), -1), reduction="sum")
    return 0.5 * (kl_ba + kl_ab)


def symmetric_kl_not_flattened(logits_a, logits_b):
    kl_ba = F.kl_div(F.log_softmax(logits_a, -1), F.softmax(logits_b.detach(), -1), reduction="batchmean")
    kl_ab = F.kl_div(F.log_softmax(logits_b, -1), F.softmax(logits_a.detach(), -1), reduction="batchmean")
    return 0.5 * (kl_ba + kl_ab)


def symmetric_kl_per_row(logits_a, logits_b):
    a, b = logits_a.reshape(-1, logits_a.size(-1)), logits_b.reshape(-1, logits_b.size(-1))
    pa, pb = a.softmax(-1).detach(), b.softmax(-1).detach()
    return 0.5 * ((pb * (pb.log() - a.log_softmax(-1))).sum(-1) + (pa * (pa.log() - b.log_softmax(-1))).sum(-1))


def symmetric_kl_no_grad(logits_a, logits_b):
    with torch.no_grad():
        return symmetric_kl(logits_a, logits_b)


def symmetric_kl_calls_the_package(logits_a, logits_b):
    return adamix.symmetric_kl(logits_a, logits_b)


# ---- 2. one AdaMix layer's contribution ---------------------------------------------------------------------------
def adamix_delta(h, down_w, down_b, up_w, up_b, route):
    if route is None:  # eval: the experts merged, each of the four tensors averaged
        Wd, bd, Wu, bu = down_w.mean(0), down_b.mean(0), up_w.mean(0), up_b.mean(0)
    else:  # training: down expert i, up expert j (0 when the up projection is shared)
        i, j = route
        Wd, bd, Wu, bu = down_w[i], down_b[i], up_w[j], up_b[j]
    return F.linear(F.gelu(F.linear(h, Wd, bd)), Wu, bu)  # down D → m, GELU, up m → D


def adamix_delta_averaged_outputs(h, down_w, down_b, up_w, up_b, route):
    if route is not None:
        return adamix_delta(h, down_w, down_b, up_w, up_b, route)
    M, M_up = down_w.shape[0], up_w.shape[0]
    outs = [adamix_delta(h, down_w, down_b, up_w, up_b, (i, 0 if M_up == 1 else i)) for i in range(M)]
    return torch.stack(outs).mean(0)


def adamix_delta_up_first(h, down_w, down_b, up_w, up_b, route):
    i, j = (0, 0) if route is None else route
    Wd, bd, Wu, bu = ((down_w.mean(0), down_b.mean(0), up_w.mean(0), up_b.mean(0)) if route is None
                      else (down_w[i], down_b[i], up_w[j], up_b[j]))
    return F.gelu(h @ Wu + bd) @ Wd + bu  # the up matrix first: shapes fit, the function is another


def adamix_delta_relu(h, down_w, down_b, up_w, up_b, route):
    Wd, bd, Wu, bu = ((down_w.mean(0), down_b.mean(0), up_w.mean(0), up_b.mean(0)) if route is None
                      else (down_w[route[0]], down_b[route[0]], up_w[route[1]], up_b[route[1]]))
    return F.linear(F.relu(F.linear(h, Wd, bd)), Wu, bu)


def adamix_delta_with_residual(h, down_w, down_b, up_w, up_b, route):
    return h + adamix_delta(h, down_w, down_b, up_w, up_b, route)


def adamix_delta_same_index(h, down_w, down_b, up_w, up_b, route):
    if route is not None and up_w.shape[0] > 1:
        route = (route[0], route[0])
    return adamix_delta(h, down_w, down_b, up_w, up_b, route)


def adamix_delta_ignores_route(h, down_w, down_b, up_w, up_b, route):
    return adamix_delta(h, down_w, down_b, up_w, up_b, None)


def adamix_delta_calls_the_package(h, down_w, down_b, up_w, up_b, route):
    M, m, D = down_w.shape
    layer = adamix.AdaMixLayer(torch.nn.Linear(D, D))
    layer.update_layer("default", m, M, share_up=up_w.shape[0] == 1)
    for store, t in zip((layer.adamix_down_weight, layer.adamix_down_bias, layer.adamix_up_weight,
                         layer.adamix_up_bias), (down_w, down_b, up_w, up_b)):
        store["default"].data = t
    layer.eval()
    return layer.adapter_delta("default", h)


# ---- 3. the count -------------------------------------------------------------------------------------------------
def adamix_count(D, L, m, M, share_up):
    down, up = D * m + m, m * D + D  # one down expert (D → m), one up projection (m → D), biases included
    M_up = 1 if share_up else M
    return L * (M * down + M_up * up), L * (down + up)  # merged: one adapter per block


def adamix_count_no_biases(D, L, m, M, share_up):
    M_up = 1 if share_up else M
    return L * (M * D * m + M_up * m * D), L * 2 * D * m


def adamix_count_merge_keeps_experts(D, L, m, M, share_up):
    trained, _ = adamix_count(D, L, m, M, share_up)
    return trained, trained


def adamix_count_up_not_shared(D, L, m, M, share_up):
    return L * M * (D * m + m + m * D + D), L * (D * m + m + m * D + D)


def adamix_count_no_layers(D, L, m, M, share_up):
    return adamix_count(D, 1, m, M, share_up)


def adamix_count_single(D, L, m, M, share_up):
    return adamix_count(D, L, m, M, share_up)[0]


# ---- 4. the prediction (any may be right: the checker compares with the measured accuracies) -----------------------
def prediction_ensemble():
    return "ensemble of outputs"


WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, symmetric_kl_one_direction, "one direction only"),
    (1, symmetric_kl_no_half, "forgot the ½"),
    (1, symmetric_kl_no_detach, "forgot to detach the target side"),
    (1, symmetric_kl_summed_rows, "summed over the rows instead of averaging"),
    (1, symmetric_kl_not_flattened, "flatten to (B·T, C)"),
    (1, symmetric_kl_per_row, "return one number"),
    (1, symmetric_kl_no_grad, "carries no gradient"),
    (1, symmetric_kl_calls_the_package, "your code called methods.adamix.symmetric_kl"),
    (2, adamix_delta_averaged_outputs, "averaged the outputs instead of the weights"),
    (2, adamix_delta_up_first, "projected up before down"),
    (2, adamix_delta_relu, "ReLU instead of GELU"),
    (2, adamix_delta_with_residual, "returned h + Δ(h)"),
    (2, adamix_delta_same_index, "used one index for both projections"),
    (2, adamix_delta_ignores_route, "ignored the route"),
    (2, adamix_delta_calls_the_package, "your code called AdaMixLayer"),
    (3, adamix_count_no_biases, "forgot the biases"),
    (3, adamix_count_merge_keeps_experts, "the experts are still there after merging"),
    (3, adamix_count_up_not_shared, "counted M up projections although they are shared"),
    (3, adamix_count_no_layers, "forgot the layers"),
    (3, adamix_count_single, "return a pair"),
]
