"""Exercise checkers of notebook 08 (prefix tuning; Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts
for Generation", arXiv:2101.00190; P-tuning v2, Liu et al. 2022, arXiv:2110.07602).

    head_i = Attn(x W_q^(i), [P_k^(i) ; C W_k^(i)], [P_v^(i) ; C W_v^(i)])   P key and value vectors in every layer

Each `check_k(...)` runs the student's function and the package's own code on the same inputs: None = not
attempted (the stub raised NotImplementedError), True = correct, False = not yet. A wrong answer never raises. On
a wrong answer the checker also computes the usual mistakes (heads and positions swapped, k and v swapped, the
layers read from the wrong axis, the biases forgotten, L·D instead of L·2·D, the prefix's mask entries put at the
wrong end, ...) and, when the student's answer equals one of them, names that mistake. While the student's code
runs, the package's functions that would answer the exercise are tripwires.

1. `split_prefix(table, n_layers, n_heads)`: a prefix table (B, P, L·2·D) -> per layer (k, v), each (B, H, P, Dh).
   Reference: `Prefix.split` of a `Prefix` on a tiny BERT of that geometry.
2. `prefix_count(P, D, h, L)`: the trainable count of prefix tuning with the MLP reparameterisation on one stack of
   L layers. Reference: `PrefixTuningConfig.expected_trainable_parameters` on the geometry alone.
3. `generation_mask(attention_mask, P)`: the (B, P + T) mask a padded batch needs when the KV cache starts with a
   prefix of P positions. Reference: `grow_mask`, what `Prefix.generate` uses.
4. A prediction: after prefix tuning the dates model to write "03.03.2021", what does it write with the prefix
   switched off (`disable_adapter()`): ISO dates, dotted dates, or garbage? Checked against the notebook's
   measurement (`check_4(prediction, measured)`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from minitransformer import BertModel, TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from .. import prefix_tuning, prompt_tuning
from ..prefix_tuning import Prefix, PrefixTuningConfig

FORBIDDEN = [(Prefix, "split", "Prefix.split"), (Prefix, "past_key_values", "Prefix.past_key_values"),
             (Prefix, "forward", "Prefix.forward"), (Prefix, "generate", "Prefix.generate"),
             (PrefixTuningConfig, "expected_trainable_parameters", "PrefixTuningConfig.expected_trainable_parameters"),
             (prompt_tuning, "grow_mask", "grow_mask"), (prefix_tuning, "grow_mask", "grow_mask")]


# ---- 1. the table -> per-layer (k, v) ---------------------------------------------------------------------------
SPLIT_GEOMETRIES = [  # (B, P, L, H, D): P ≠ H, P = H (a swap keeps the shape), one row, many layers
    (2, 3, 2, 2, 8), (3, 4, 2, 4, 16), (1, 5, 3, 2, 12), (2, 2, 4, 2, 8)]


def _split_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(8)
    return [(torch.randn(B, P, L * 2 * D, generator=g), L, H) for B, P, L, H, D in SPLIT_GEOMETRIES]


def reference_split(table: torch.Tensor, n_layers: int, n_heads: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`Prefix.split` of a `Prefix` on a tiny BERT with `n_layers` layers, `n_heads` heads and the table's width."""
    B, P, W = table.shape
    D = W // (2 * n_layers)
    base = BertModel(TransformerConfig.tiny(d_model=D, n_layers=n_layers, n_heads=n_heads, max_positions=64))
    module = PrefixTuningConfig(num_virtual_tokens=P, prefix_projection=False).prepare(base)
    return [(k.clone(), v.clone()) for k, v in module.split(table)]


def _wrong_split(kind: str) -> Callable:
    def split(table, L, H):
        B, P, W = table.shape
        D = W // (2 * L)
        Dh = D // H
        if kind == "layers":  # (2, L) instead of (L, 2): k/v taken as the outer axis
            kv = table.view(B, P, 2, L, H, Dh).permute(3, 2, 0, 4, 1, 5)
        elif kind == "heads":  # (Dh, H) instead of (H, Dh): heads interleaved
            kv = table.view(B, P, L, 2, Dh, H).permute(2, 3, 0, 5, 1, 4)
        else:
            kv = table.view(B, P, L, 2, H, Dh).permute(2, 3, 0, 4, 1, 5)  # the right (L, 2, B, H, P, Dh)
        pairs = [(layer[0], layer[1]) for layer in kv]
        if kind == "swap kv":
            return [(v, k) for k, v in pairs]
        if kind == "positions":  # (B, P, H, Dh): heads and positions swapped
            return [(k.transpose(1, 2), v.transpose(1, 2)) for k, v in pairs]
        return pairs
    return split


SPLIT_HINTS = [
    ("swapped k and v? Per layer the table holds the key vectors first, then the value vectors: (k, v).",
     _wrong_split("swap kv")),
    ("heads and positions swapped? Attention wants (B, H, P, Dh): each head sees its own P keys; after the view "
     "(B, P, L, 2, H, Dh) the head axis must move in front of the positions.", _wrong_split("positions")),
    ("took the layers from the wrong axis? A row of the table is laid out layer by layer, and inside each layer "
     "k then v: view (B, P, L, 2, H, Dh), not (B, P, 2, L, H, Dh).", _wrong_split("layers")),
    ("split D as (Dh, H)? A head's Dh entries are contiguous (head 0 owns entries 0 .. Dh-1): view (..., H, Dh), "
     "as the attention's own q, k, v are split.", _wrong_split("heads")),
]


def _split_shape_hint(case, want, got) -> str | None:
    table, L, H = case
    B, P, W = table.shape
    Dh = W // (2 * L) // H
    if not isinstance(got, (list, tuple)) or len(got) != L:
        return f"return one (k, v) pair per layer: a list of L = {L} tuples"
    if not all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in got):
        return "each layer's entry is a pair (k, v) of tensors"
    k = got[0][0]
    if not isinstance(k, torch.Tensor):
        return None
    if k.dim() == 3 or (k.dim() == 4 and k.size(-1) == H * Dh and H > 1):
        return (f"forgot the head split? Each of k and v is (B, H, P, Dh) = ({B}, {H}, {P}, {Dh}): the D = H·Dh "
                f"entries of a key are split into H heads of Dh, got shape {tuple(k.shape)}")
    if tuple(k.shape) == (B, P, H, Dh) and P != H:
        return ("heads and positions swapped? Attention wants (B, H, P, Dh): each head sees its own P keys; after "
                "the view (B, P, L, 2, H, Dh) the head axis must move in front of the positions.")
    return None


def check_1(split_prefix: Callable) -> bool | None:
    """split_prefix(table, n_layers, n_heads) on tables of several geometries."""
    return check_parity(1, split_prefix, reference_split, _split_cases(), SPLIT_HINTS, forbidden=FORBIDDEN,
                        describe="view (B, P, L, 2, H, Dh), permute to (L, 2, B, H, P, Dh)", atol=0,
                        shape_hint=_split_shape_hint, build_from="view and permute", no_grad=True)


# ---- 2. the count with the MLP -------------------------------------------------------------------------------
COUNT_CASES = [  # (P, D, h, L): BERT-base, GPT-2 medium (the paper's), mini-gpt, mini-bert, made-up
    (20, 768, 512, 12), (10, 1024, 512, 24), (20, 256, 512, 4), (5, 128, 64, 4), (3, 64, 8, 2)]


def reference_prefix_count(P: int, D: int, h: int, L: int) -> int:
    c = TransformerConfig.bert_base(d_model=D, n_layers=L, n_heads=4 if D % 12 else 12)
    return PrefixTuningConfig(num_virtual_tokens=P, encoder_hidden_size=h).expected_trainable_parameters(c, "bert")


COUNT_HINTS = [
    ("forgot the biases? Each Linear has one: D·h + h for the first, h·(L·2·D) + L·2·D for the second.",
     lambda P, D, h, L: P * D + D * h + h * 2 * L * D),
    ("used L·D for the MLP's output? Every layer gets a key AND a value vector per position: width L·2·D.",
     lambda P, D, h, L: P * D + D * h + h + h * L * D + L * D),
    ("forgot P′? The MLP's input is a trained table too, Embedding(P, D): P·D entries.",
     lambda P, D, h, L: D * h + h + h * 2 * L * D + 2 * L * D),
    ("counted P_θ itself? With the reparameterisation the table P_θ = MLP(P′) is computed, not trained; only P′ "
     "and the MLP are parameters (after `bake()` only P_θ is kept).",
     lambda P, D, h, L: P * D + D * h + h + h * 2 * L * D + 2 * L * D + P * 2 * L * D),
    ("that is the direct table, P·L·2·D (P-tuning v2's); this exercise asks for the MLP path: P′, then "
     "Linear(D, h), Tanh, Linear(h, L·2·D).", lambda P, D, h, L: P * 2 * L * D),
    ("forgot the layers? The MLP's output is one row for ALL layers: width L·2·D, not 2·D.",
     lambda P, D, h, L: P * D + D * h + h + h * 2 * D + 2 * D),
]


def check_2(prefix_count: Callable) -> bool | None:
    """prefix_count(P, D, h, L) on BERT-base, GPT-2 medium, mini-gpt, mini-bert and a made-up geometry."""
    return check_parity(2, prefix_count, reference_prefix_count, COUNT_CASES, COUNT_HINTS, forbidden=FORBIDDEN,
                        describe="P·D + (D·h + h) + (h·L·2·D + L·2·D)", atol=0, prepare=lambda c: c)


# ---- 3. the mask in generation ---------------------------------------------------------------------------------
def _mask_cases() -> list[tuple]:
    cases = []
    for B, T, P in ((3, 6, 4), (1, 5, 10), (2, 4, 1), (4, 7, 7)):
        mask = torch.ones(B, T, dtype=torch.long)
        for b in range(B):
            mask[b, T - b % T:] = 0  # row b ends with b padding positions (row 0 none)
        cases.append((mask, P))
    return cases


def reference_generation_mask(attention_mask: torch.Tensor, P: int) -> torch.Tensor:
    return prompt_tuning.grow_mask(attention_mask, attention_mask.size(0), P, attention_mask.device)


def _ones(m: torch.Tensor, P: int) -> torch.Tensor:
    return m.new_ones(m.size(0), P)


MASK_HINTS = [
    ("put the prefix's entries after the tokens? The cache holds the prefix first: keys 0 .. P-1 are the prefix, "
     "the tokens follow, and the mask's columns are in the same order.", lambda m, P: torch.cat([m, _ones(m, P)], 1)),
    ("masked the prefix out (zeros)? 0 means 'padding, do not attend': every row must see all P prefix positions, "
     "or the prefix does nothing.", lambda m, P: torch.cat([torch.zeros_like(_ones(m, P)), m], 1)),
    ("lost the padding? The tokens' own 0s must stay: a padded position is still not to be attended.",
     lambda m, P: torch.ones(m.size(0), P + m.size(1), dtype=m.dtype)),
]


def _mask_shape_hint(case, want, got) -> str | None:
    m, P = case
    if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(m.shape):
        return (f"forgot the prefix? During generation the cache holds P + T = {P + m.size(1)} keys, so the mask "
                f"needs one column per key: shape ({m.size(0)}, {P + m.size(1)})")
    return None


def check_3(generation_mask: Callable) -> bool | None:
    """generation_mask(attention_mask, P) on padded batches, a prefix longer than the input, P = 1."""
    return check_parity(3, generation_mask, reference_generation_mask, _mask_cases(), MASK_HINTS,
                        forbidden=FORBIDDEN, describe="P ones in front of the tokens' mask", atol=0,
                        shape_hint=_mask_shape_hint, build_from="torch.cat and ones")


# ---- 4. prediction ---------------------------------------------------------------------------------------------
WHY_4 = ("prefix tuning trains only the P key and value vectors in front of each attention; the frozen weights never "
         "move. Switch the prefix off and nothing of the training is left: the model is the base again, bit for bit, "
         "and writes ISO dates exactly as it did before (the same outputs, its mistakes included). The new behaviour "
         "lives entirely in the prefix — which is what lets one frozen model serve many formats.")


def check_4(prediction: Callable[[], str], measured: dict[str, float]) -> bool | None:
    """prediction() -> "ISO", "dotted" or "garbage"; `measured`: the fraction of test dates written each way with
    the prefix switched off."""
    return check_choice(4, prediction, measured, WHY_4)
