"""Closed-form parameter counts of the base models, shared by the methods' formulas and the tests.

Legend: V vocab, P positions, S segment types, D width, L layers, F FFN width, C labels.
"""

from __future__ import annotations

from minitransformer import TransformerConfig


def block_params(c: TransformerConfig, cross: bool = False) -> int:
    """One block: q, k, v, o (D² + D each), two LayerNorms (2D each), fc1 (DF + F), fc2 (FD + D)."""
    attn = 4 * (c.d_model**2 + c.d_model) + 2 * c.d_model
    ffn = (c.d_model * c.d_ff + c.d_ff) + (c.d_ff * c.d_model + c.d_model) + 2 * c.d_model
    return attn * (2 if cross else 1) + ffn


def head_params(c: TransformerConfig, family: str, num_labels: int) -> int:
    """The classification head: BERT D·C + C (with bias), GPT D·C (no bias, as GPT-2's `score`)."""
    return c.d_model * num_labels + (num_labels if family == "bert" else 0)


def base_params(c: TransformerConfig, family: str, num_labels: int | None = None, pooler: bool = True) -> int:
    """All parameters of a base model; `num_labels` adds the classification head. `pooler=False`: a BERT
    built without its pooler (a classifier with `pooling="mean"` never runs it, so it does not build it)."""
    V, P, S, D, L = c.vocab_size, c.max_positions, c.type_vocab_size, c.d_model, c.n_layers
    if family == "bert":  # embeddings + LN, blocks, pooler
        total = V * D + P * D + S * D + 2 * D + L * block_params(c) + (D * D + D if pooler else 0)
    elif family == "gpt":  # embeddings, blocks, final LN; the LM head is tied (counted once)
        total = V * D + P * D + L * block_params(c) + 2 * D
    elif family == "seq2seq":  # shared embeddings + LN, encoder blocks, decoder blocks with cross-attention
        total = V * D + P * D + S * D + 2 * D + L * block_params(c) + c.n_decoder_layers * block_params(c, True)
    else:
        raise ValueError(f"family must be 'bert', 'gpt' or 'seq2seq', got {family!r}")
    return total + (head_params(c, family, num_labels) if num_labels else 0)


def linear_table(c: TransformerConfig, family: str, num_labels: int | None = None,
                 pooler: bool = True) -> list[tuple[str, int, int]]:
    """(module name, in_features, out_features) of every `nn.Linear` of a model, from the geometry alone (not from
    a live model; the tests check it against one). Names as `named_modules()` gives them: a classifier's trunk
    under `bert.` / `gpt.`. GPT's LM head is tied to the token embeddings (not a Linear of its own)."""
    D, F = c.d_model, c.d_ff
    attn = [(f"attn.{m}", D, D) for m in "qkvo"]
    cross = [(f"cross_attn.{m}", D, D) for m in "qkvo"]
    ffn = [("ffn.fc1", D, F), ("ffn.fc2", F, D)]
    pre = {"bert": "bert.", "gpt": "gpt."}.get(family, "") if num_labels else ""
    stacks = {"bert": [("layers", c.n_layers, False)], "gpt": [("layers", c.n_layers, False)],
              "seq2seq": [("encoder.layers", c.n_layers, False), ("decoder.layers", c.n_decoder_layers, True)]}
    if family not in stacks:
        raise ValueError(f"family must be 'bert', 'gpt' or 'seq2seq', got {family!r}")
    rows: list[tuple[str, int, int]] = []
    for stack, n, has_cross in stacks[family]:
        for i in range(n):
            rows += [(f"{pre}{stack}.{i}.{m}", fan_in, fan_out) for m, fan_in, fan_out in attn + (cross if has_cross else []) + ffn]
    if family == "bert" and pooler:
        rows.append((f"{pre}pooler.dense", D, D))
    if num_labels:
        rows.append(("classifier", D, num_labels))
    return rows
