"""Reference solutions of notebook 09's exercises (bottleneck adapters), and typical wrong answers (the checkers must
reject each one and name its mistake)."""

import torch
from torch import nn

from methods.adapters import ParallelAdapter, SequentialAdapter


# ---- 1. the sequential adapter ------------------------------------------------------------------------------------
def bottleneck_adapter(h, W_down, b_down, W_up, b_up, s, f):
    z = f(h @ W_down.T + b_down)  # (..., m): down into the bottleneck, then the non-linearity
    return h + s * (z @ W_up.T + b_up)  # back up to D, scaled, and the inner residual


def bottleneck_adapter_no_residual(h, W_down, b_down, W_up, b_up, s, f):
    return s * (f(h @ W_down.T + b_down) @ W_up.T + b_up)


def bottleneck_adapter_f_after_up(h, W_down, b_down, W_up, b_up, s, f):
    return h + s * f((h @ W_down.T + b_down) @ W_up.T + b_up)


def bottleneck_adapter_scales_residual(h, W_down, b_down, W_up, b_up, s, f):
    return s * (h + f(h @ W_down.T + b_down) @ W_up.T + b_up)


def bottleneck_adapter_bias_after_scale(h, W_down, b_down, W_up, b_up, s, f):
    return h + s * (f(h @ W_down.T + b_down) @ W_up.T) + b_up


def bottleneck_adapter_untransposed(h, W_down, b_down, W_up, b_up, s, f):
    return h + s * (f(h @ W_down + b_down) @ W_up + b_up)


def bottleneck_adapter_no_scale(h, W_down, b_down, W_up, b_up, s, f):
    return h + f(h @ W_down.T + b_down) @ W_up.T + b_up


def bottleneck_adapter_calls_the_package(h, W_down, b_down, W_up, b_up, s, f):
    m, D = W_down.shape
    layer = SequentialAdapter(nn.Linear(D, D))
    layer.update_layer("default", bottleneck_size=m, scaling=s)
    layer.set_adapter("default")
    layer.adapter_down["default"].weight.data, layer.adapter_down["default"].bias.data = W_down, b_down
    layer.adapter_up["default"].weight.data, layer.adapter_up["default"].bias.data = W_up, b_up
    layer.adapter_act["default"] = f
    return h + layer.adapter_delta("default", h)


# ---- 2. the parallel adapter --------------------------------------------------------------------------------------
def parallel_ffn(x, ffn, W_down, b_down, W_up, b_up, s):
    z = torch.relu(x @ W_down.T + b_down)  # the adapter reads the FFN's input x, as the FFN does
    return ffn(x) + s * (z @ W_up.T + b_up)  # beside the frozen FFN, scaled by s


def parallel_ffn_reads_output(x, ffn, W_down, b_down, W_up, b_up, s):
    h = ffn(x)
    return h + s * (torch.relu(h @ W_down.T + b_down) @ W_up.T + b_up)


def parallel_ffn_no_ffn(x, ffn, W_down, b_down, W_up, b_up, s):
    return s * (torch.relu(x @ W_down.T + b_down) @ W_up.T + b_up)


def parallel_ffn_inner_residual(x, ffn, W_down, b_down, W_up, b_up, s):
    return ffn(x) + x + s * (torch.relu(x @ W_down.T + b_down) @ W_up.T + b_up)


def parallel_ffn_no_scale(x, ffn, W_down, b_down, W_up, b_up, s):
    return ffn(x) + torch.relu(x @ W_down.T + b_down) @ W_up.T + b_up


def parallel_ffn_scales_ffn(x, ffn, W_down, b_down, W_up, b_up, s):
    return s * (ffn(x) + torch.relu(x @ W_down.T + b_down) @ W_up.T + b_up)


def parallel_ffn_gelu(x, ffn, W_down, b_down, W_up, b_up, s):
    return ffn(x) + s * (nn.functional.gelu(x @ W_down.T + b_down) @ W_up.T + b_up)


def parallel_ffn_calls_the_package(x, ffn, W_down, b_down, W_up, b_up, s):
    layer = ParallelAdapter(ffn)
    layer.update_layer("default", bottleneck_size=W_down.shape[0], scaling=s)
    layer.set_adapter("default")
    layer.adapter_down["default"].weight.data, layer.adapter_down["default"].bias.data = W_down, b_down
    layer.adapter_up["default"].weight.data, layer.adapter_up["default"].bias.data = W_up, b_up
    return layer(x)


# ---- 3. the count -------------------------------------------------------------------------------------------------
def adapter_count(D, L, m, placement, layer_norms, C):
    per_adapter = 2 * D * m + m + D  # W_down (m×D) + W_up (D×m) + b_down (m) + b_up (D)
    adapters = 2 * L if placement == "houlsby" else L  # Houlsby: after attn.o and after ffn.fc2
    norms = L * 2 * 2 * D if placement == "houlsby" and layer_norms else 0  # attn_norm, ffn_norm: γ and β each
    return adapters * per_adapter + norms + D * C + C  # and the head


def adapter_count_one_per_block(D, L, m, placement, layer_norms, C):
    norms = L * 2 * 2 * D if placement == "houlsby" and layer_norms else 0
    return L * (2 * D * m + m + D) + norms + D * C + C


def adapter_count_no_layer_norms(D, L, m, placement, layer_norms, C):
    return adapter_count(D, L, m, placement, False, C)


def adapter_count_no_biases(D, L, m, placement, layer_norms, C):
    return adapter_count(D, L, m, placement, layer_norms, C) - (2 if placement == "houlsby" else 1) * L * (m + D)


def adapter_count_no_head_bias(D, L, m, placement, layer_norms, C):
    return adapter_count(D, L, m, placement, layer_norms, C) - C


def adapter_count_no_head(D, L, m, placement, layer_norms, C):
    return adapter_count(D, L, m, placement, layer_norms, C) - D * C - C


def adapter_count_gamma_only(D, L, m, placement, layer_norms, C):
    norms = L * 2 * D if placement == "houlsby" and layer_norms else 0
    return adapter_count(D, L, m, placement, False, C) + norms


# ---- 4. the prediction (any may be right: the checker compares with the measured removals) ------------------------
def prediction_top():
    return 3


WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, bottleneck_adapter_no_residual, "forgot the inner residual"),
    (1, bottleneck_adapter_f_after_up, "non-linearity after the up-projection"),
    (1, bottleneck_adapter_scales_residual, "scaled the residual too"),
    (1, bottleneck_adapter_bias_after_scale, "added b_up after the scaling"),
    (1, bottleneck_adapter_untransposed, "untransposed"),
    (1, bottleneck_adapter_no_scale, "forgot the scale s"),
    (1, bottleneck_adapter_calls_the_package, "your code called BottleneckLayer.adapter_delta"),
    (2, parallel_ffn_reads_output, "reads the FFN's output"),
    (2, parallel_ffn_no_ffn, "contribution alone"),
    (2, parallel_ffn_inner_residual, "inner residual"),
    (2, parallel_ffn_no_scale, "forgot the scale s"),
    (2, parallel_ffn_scales_ffn, "scaled the FFN too"),
    (2, parallel_ffn_gelu, "used GELU"),
    (2, parallel_ffn_calls_the_package, "your code called"),
    (3, adapter_count_one_per_block, "one adapter per Houlsby block"),
    (3, adapter_count_no_layer_norms, "forgot the LayerNorms"),
    (3, adapter_count_no_biases, "forgot the adapters' biases"),
    (3, adapter_count_no_head_bias, "forgot the head's bias"),
    (3, adapter_count_no_head, "forgot the head?"),
    (3, adapter_count_gamma_only, "each LayerNorm as D entries"),
]
