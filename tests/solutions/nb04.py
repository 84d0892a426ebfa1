"""Reference solutions of notebook 04's exercises, and one wrong answer each (the checkers must reject it)."""


def bitfit_count(D, L, F, C):
    # embedding LN + per layer (q, k, v, o, attn LN, fc1, fc2, ffn LN) + pooler + classifier bias
    return D + L * (4 * D + D + F + D + D) + D + C


def bitfit_count_wrong(D, L, F, C):
    return L * (4 * D + D + F + D + D)  # forgets the embedding LN, the pooler and the head


def select(name):
    module, _, leaf = name.rpartition(".")
    return leaf == "bias" and (module.endswith("attn.q") or module.endswith("ffn.fc1"))


def select_wrong(name):
    return name.endswith("bias") and ("attn.q" in name or "ffn" in name)  # takes fc2 too


def bitfit_percent(D, L, F, V=30522, P=512, S=2):
    biases = D + L * (4 * D + D + F + D + D) + D
    total = V * D + P * D + S * D + 2 * D + L * (4 * (D * D + D) + 2 * D + 2 * D * F + F + D + 2 * D) + D * D + D
    return round(100 * biases / total, 4)


def bitfit_percent_wrong(D, L, F):
    return round(100 * (L * (4 * D + D + F + D + D)) / (12 * L * D * D), 4)  # non-embedding params only
