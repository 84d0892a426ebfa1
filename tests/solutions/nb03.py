"""Reference solutions of notebook 03's exercises, and the common wrong answers the checkers must name.

`WRONG[k]` lists (wrong answer, a piece of the hint its checker must print)."""

import torch


# ---- 1. prediction: the share of full fine-tuning's gain that head + top layer recovers -----------------
def predicted_share():
    return 0.6


def predicted_share_percent():
    return 60  # a percentage, not a fraction


def predicted_share_text():
    return "closer to full fine-tuning"


# ---- 2. mean pooling over the real tokens --------------------------------------------------------------
def mean_pool(h, mask):
    m = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1): 1 on the real tokens, 0 on the padding
    return (h * m).sum(dim=1) / m.sum(dim=1)  # (B, D) / (B, 1)


def mean_pool_with_padding(h, mask):
    return h.mean(dim=1)


def mean_pool_over_T(h, mask):
    return (h * mask.to(h.dtype).unsqueeze(-1)).sum(dim=1) / h.shape[1]


def mean_pool_first_n(h, mask):
    lengths = mask.sum(dim=1)
    return torch.stack([h[i, : int(lengths[i])].mean(dim=0) for i in range(h.shape[0])])


def mean_pool_calls_the_package(h, mask):
    from minitransformer.core import mean_pool as package_mean_pool
    return package_mean_pool(h, mask)


# ---- 3. freeze all but the head and the top k layers ---------------------------------------------------
def freeze_all_but_top(model, k):
    L = len(model.bert.layers)
    train_prefixes = ["classifier."] + [f"bert.layers.{i}." for i in range(L - k, L)]
    names = []
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(tuple(train_prefixes))
        if p.requires_grad:
            names.append(name)
    return names


def freeze_forgot_head(model, k):
    L = len(model.bert.layers)
    names = []
    for name, p in model.named_parameters():
        p.requires_grad = any(name.startswith(f"bert.layers.{i}.") for i in range(L - k, L))
        if p.requires_grad:
            names.append(name)
    return names


def freeze_bottom_layers(model, k):
    names = []
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("classifier.") or any(name.startswith(f"bert.layers.{i}.") for i in range(k))
        if p.requires_grad:
            names.append(name)
    return names


def freeze_one_too_many(model, k):
    L = len(model.bert.layers)
    names = []
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("classifier.") or any(
            name.startswith(f"bert.layers.{i}.") for i in range(L - k - 1, L))
        if p.requires_grad:
            names.append(name)
    return names


def freeze_only_sets_false(model, k):
    L = len(model.bert.layers)
    keep = ["classifier."] + [f"bert.layers.{i}." for i in range(L - k, L)]
    names = []
    for name, p in model.named_parameters():
        if name.startswith(tuple(keep)):
            names.append(name)
        else:
            p.requires_grad = False
    return names


# ---- 4. the learning-rate schedule -----------------------------------------------------------------------
def lr_factor(step, total, warmup):
    if step < warmup:
        return (step + 1) / warmup
    return 1 - min(1.0, (step - warmup) / max(1, total - warmup))


def lr_factor_warmup_from_zero(step, total, warmup):
    if step < warmup:
        return step / warmup
    return 1 - min(1.0, (step - warmup) / max(1, total - warmup))


def lr_factor_decay_over_total(step, total, warmup):
    if step < warmup:
        return (step + 1) / warmup
    return 1 - step / total


def lr_factor_calls_the_package(step, total, warmup):
    from minitransformer.training.train import lr_factor as package_lr_factor
    return package_lr_factor(step, total, warmup)


# ---- 5. the memory that does not depend on the batch -----------------------------------------------------
def adamw_bytes(n_params, n_trainable):
    return 4 * n_params + 4 * n_trainable + 8 * n_trainable


def adamw_bytes_all_train(n_params, n_trainable):
    return 16 * n_params


def adamw_bytes_no_gradient(n_params, n_trainable):
    return 4 * n_params + 8 * n_trainable


WRONG = {
    2: [(mean_pool_with_padding, "averaged the padding"), (mean_pool_over_T, "divided by T"),
        (mean_pool_first_n, "the mask, not the position"),
        (mean_pool_calls_the_package, "your code called minitransformer.core.mean_pool")],
    3: [(freeze_forgot_head, "forgot the head"), (freeze_bottom_layers, "bottom k layers"),
        (freeze_one_too_many, "one layer too many"), (freeze_only_sets_false, "set requires_grad=True")],
    4: [(lr_factor_warmup_from_zero, "off by one in the warm-up"), (lr_factor_decay_over_total, "total - warmup"),
        (lr_factor_calls_the_package, "your code called minitransformer.training.train.lr_factor")],
    5: [(adamw_bytes_all_train, "as if every parameter trained"), (adamw_bytes_no_gradient, "forgot the gradient")],
}
