"""Reference solutions of notebook 12's exercises (LoRA), and typical wrong answers the checkers must name."""

from __future__ import annotations

import torch

SHAPES = {"q": "DD", "k": "DD", "v": "DD", "o": "DD", "fc1": "DF", "fc2": "FD"}


def lora_forward(x, weight, bias, A, B, alpha, r):
    return x @ weight.T + bias + (alpha / r) * (x @ A.T @ B.T)


def lora_forward_no_scaling(x, weight, bias, A, B, alpha, r):
    return x @ weight.T + bias + x @ A.T @ B.T


def lora_forward_no_bias(x, weight, bias, A, B, alpha, r):
    return x @ weight.T + (alpha / r) * (x @ A.T @ B.T)


def lora_count(D, L, F, r, targets):
    size = {"D": D, "F": F}
    return L * sum(r * (size[SHAPES[t][0]] + size[SHAPES[t][1]]) for t in targets)


def lora_count_full_matrices(D, L, F, r, targets):
    size = {"D": D, "F": F}
    return L * sum(size[SHAPES[t][0]] * size[SHAPES[t][1]] for t in targets)


def lora_count_square_ffn(D, L, F, r, targets):
    return L * sum(2 * r * D for _ in targets)


def merge_weight(weight, A, B, alpha, r):
    return weight + (alpha / r) * (B @ A)


def merge_weight_transposed(weight, A, B, alpha, r):
    return weight + (alpha / r) * (B @ A).T


def merge_weight_unscaled(weight, A, B, alpha, r):
    return weight + B @ A


def subspace_similarity(A1, A2, i, j):
    U1 = torch.linalg.svd(A1.double(), full_matrices=False).Vh[:i].T
    U2 = torch.linalg.svd(A2.double(), full_matrices=False).Vh[:j].T
    return float(torch.linalg.matrix_norm(U1.T @ U2) ** 2 / min(i, j))


def subspace_similarity_unnormalised(A1, A2, i, j):
    return subspace_similarity(A1, A2, i, j) * min(i, j)


def subspace_similarity_not_squared(A1, A2, i, j):
    return (subspace_similarity(A1, A2, i, j) * min(i, j)) ** 0.5 / min(i, j)
