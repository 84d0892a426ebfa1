"""Reference solutions of notebook 13's exercises (AdaLoRA), and typical wrong answers (the checkers must reject
each one and name its mistake)."""

import torch

from methods.adalora import budget_schedule as _package_budget_schedule


# ---- 1. the budget schedule ----------------------------------------------------------------------------------
def budget(step, init_budget, target_budget, tinit, tfinal, total_step):
    if step <= tinit:  # warm-up: every triplet kept
        return init_budget
    if step > total_step - tfinal:  # the final phase: the pattern is frozen at the target
        return target_budget
    progress = 1 - (step - tinit) / (total_step - tfinal - tinit)
    return int((init_budget - target_budget) * progress ** 3 + target_budget)


def budget_linear(step, init_budget, target_budget, tinit, tfinal, total_step):
    if step <= tinit:
        return init_budget
    if step > total_step - tfinal:
        return target_budget
    progress = 1 - (step - tinit) / (total_step - tfinal - tinit)
    return int((init_budget - target_budget) * progress + target_budget)


def budget_not_frozen(step, init_budget, target_budget, tinit, tfinal, total_step):
    if step <= tinit:
        return init_budget
    progress = 1 - (step - tinit) / (total_step - tfinal - tinit)
    return int((init_budget - target_budget) * progress ** 3 + target_budget)


def budget_float(step, init_budget, target_budget, tinit, tfinal, total_step):
    if step <= tinit:
        return init_budget
    if step > total_step - tfinal:
        return target_budget
    progress = 1 - (step - tinit) / (total_step - tfinal - tinit)
    return (init_budget - target_budget) * progress ** 3 + target_budget


def budget_off_by_one(step, init_budget, target_budget, tinit, tfinal, total_step):
    if step <= tinit:
        return init_budget
    if step > total_step - tfinal:
        return target_budget
    progress = 1 - (step - 1 - tinit) / (total_step - tfinal - tinit)  # counts t from 0
    return int((init_budget - target_budget) * progress ** 3 + target_budget)


def budget_with_mask(step, init_budget, target_budget, tinit, tfinal, total_step):
    return budget(step, init_budget, target_budget, tinit, tfinal, total_step), step > tinit  # (budget, mask)


def budget_calls_the_package(step, init_budget, target_budget, tinit, tfinal, total_step):
    return _package_budget_schedule(step, init_budget, target_budget, tinit, tfinal, total_step, 1)[0]


# ---- 2. the orthogonality penalty ----------------------------------------------------------------------------
def orthogonality(P, Q):
    r = P.shape[1]
    eye = torch.eye(r, dtype=P.dtype)
    return torch.linalg.norm(P.T @ P - eye) + torch.linalg.norm(Q @ Q.T - eye)


def orthogonality_squared(P, Q):  # the paper's eq. 4 as printed
    eye = torch.eye(P.shape[1], dtype=P.dtype)
    return torch.linalg.norm(P.T @ P - eye) ** 2 + torch.linalg.norm(Q @ Q.T - eye) ** 2


def orthogonality_no_identity(P, Q):
    return torch.linalg.norm(P.T @ P) + torch.linalg.norm(Q @ Q.T)


def orthogonality_outer_grams(P, Q):
    return (torch.linalg.norm(P @ P.T - torch.eye(P.shape[0], dtype=P.dtype))
            + torch.linalg.norm(Q.T @ Q - torch.eye(Q.shape[1], dtype=Q.dtype)))


# ---- 3. one step of the importance EMAs ----------------------------------------------------------------------
def update_importance(ipt, unc, w, grad, beta1, beta2):
    sensitivity = (w * grad).abs()
    ipt = beta1 * ipt + (1 - beta1) * sensitivity
    unc = beta2 * unc + (1 - beta2) * (sensitivity - ipt).abs()  # against the average just updated
    return ipt, unc


def update_importance_old_mean(ipt, unc, w, grad, beta1, beta2):
    sensitivity = (w * grad).abs()
    new_ipt = beta1 * ipt + (1 - beta1) * sensitivity
    unc = beta2 * unc + (1 - beta2) * (sensitivity - ipt).abs()  # the average before this step
    return new_ipt, unc


def update_importance_gradient_only(ipt, unc, w, grad, beta1, beta2):
    sensitivity = grad.abs()
    ipt = beta1 * ipt + (1 - beta1) * sensitivity
    unc = beta2 * unc + (1 - beta2) * (sensitivity - ipt).abs()
    return ipt, unc


def update_importance_swapped_weights(ipt, unc, w, grad, beta1, beta2):
    sensitivity = (w * grad).abs()
    ipt = (1 - beta1) * ipt + beta1 * sensitivity
    unc = (1 - beta2) * unc + beta2 * (sensitivity - ipt).abs()
    return ipt, unc


# ---- 4. the triplet scores -----------------------------------------------------------------------------------
def triplet_scores(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q):
    return (ipt_lam * unc_lam).view(-1) + (ipt_P * unc_P).mean(dim=0) + (ipt_Q * unc_Q).mean(dim=1)


def triplet_scores_sensitivity_only(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q):
    return ipt_lam.view(-1) + ipt_P.mean(dim=0) + ipt_Q.mean(dim=1)


def triplet_scores_summed(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q):
    return (ipt_lam * unc_lam).view(-1) + (ipt_P * unc_P).sum(dim=0) + (ipt_Q * unc_Q).sum(dim=1)


def triplet_scores_broadcast(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q):
    return ipt_lam * unc_lam + (ipt_P * unc_P).mean(dim=0) + (ipt_Q * unc_Q).mean(dim=1)  # (r, 1) + (r,): (r, r)


def triplet_scores_wrong_axis(ipt_P, unc_P, ipt_lam, unc_lam, ipt_Q, unc_Q):
    return (ipt_P * unc_P).mean(dim=1)  # one number per row of P: (out,)


# ---- 5. the count --------------------------------------------------------------------------------------------
def _in_out(kind, D, F):
    return {"ffn.fc1": (D, F), "ffn.fc2": (F, D)}.get(kind, (D, D))


def adalora_count(D, L, F, init_r, target_r, targets):
    # per target: P (out × r), λ (r), Q (r × in); pruning masks λ, the tensors keep init_r
    return L * sum(init_r * (fan_in + 1 + fan_out) for fan_in, fan_out in (_in_out(t, D, F) for t in targets))


def adalora_count_target_r(D, L, F, init_r, target_r, targets):
    return L * sum(target_r * (i + 1 + o) for i, o in (_in_out(t, D, F) for t in targets))


def adalora_count_no_lambda(D, L, F, init_r, target_r, targets):
    return L * sum(init_r * (i + o) for i, o in (_in_out(t, D, F) for t in targets))


def adalora_count_square_ffn(D, L, F, init_r, target_r, targets):
    return L * len(targets) * init_r * (2 * D + 1)


def adalora_count_one_layer(D, L, F, init_r, target_r, targets):
    return adalora_count(D, L, F, init_r, target_r, targets) // L


# ---- 6. the prediction (either may be right: the checker compares with the measured drops) --------------------
def prediction_ffn():
    return "ffn"


def prediction_attention():
    return "attention"
