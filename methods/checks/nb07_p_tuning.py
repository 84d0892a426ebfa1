"""Exercise checkers of notebook 07 (P-tuning; Liu et al. 2021, "GPT Understands, Too", arXiv:2103.10385).

Each `check_k(student_fn)` runs the student's function and the package's own implementation on the same inputs:
None = not attempted (the stub raised NotImplementedError), True = correct, False = not yet. On a wrong answer
the checker computes the usual wrong variants and, when the student's answer equals one of them, names that
mistake instead of printing a bare expected/got. A wrong answer never raises.

1. `mlp_prompts(E, W1, b1, W2, b2, W3, b3)`: the MLP prompt encoder's output, ReLU(ReLU(E W1ᵀ + b1) W2ᵀ + b2) W3ᵀ + b3.
   Reference: real `PromptEncoder`s (MLP) with these weights, `prompts()`.
2. `lstm_count(n, D, h, layers)`: the LSTM encoder's trainable entries. Reference:
   `PromptEncoderConfig.expected_trainable_parameters` (itself tested against the live modules).
3. `fill_slots(x, input_ids, attention_mask, p, pseudo_token_id)`: the embeddings with row b's real pseudo positions
   replaced by p[b, 0 .. n-1] in order. Reference: `SoftPrompt._fill_template`.
4. A prediction: after 50 steps, which of plain prompt, MLP encoder, LSTM encoder has the lowest training loss in
   the committed study? `losses_at_step` reads it from the study's curves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from minitransformer import GPTModel, TransformerConfig
from minitransformer.teaching.exercises import check_choice, check_parity

from ..p_tuning import PromptEncoder, PromptEncoderConfig
from ..prompt_tuning import SoftPrompt

FORBIDDEN = [(PromptEncoder, "prompts", "PromptEncoder.prompts"), (PromptEncoder, "forward", "PromptEncoder.forward"),
             (SoftPrompt, "_fill_template", "SoftPrompt._fill_template"),
             (SoftPrompt, "embed_inputs", "SoftPrompt.embed_inputs"),
             (PromptEncoderConfig, "expected_trainable_parameters", "PromptEncoderConfig.expected_trainable_parameters")]


def _encoder(D: int, **config) -> PromptEncoder:
    """A `PromptEncoder` on a tiny GPT of width D (the module reads only D and the positions from the model)."""
    model = GPTModel(TransformerConfig.tiny(d_model=D, n_heads=1, norm_first=True, type_vocab_size=0))
    return PromptEncoder(PromptEncoderConfig(task_type="CAUSAL_LM", **config), model)


# ---- 1. the MLP encoder's forward --------------------------------------------------------------------------
MLP_CASES = [(4, 8, 8, 0), (5, 16, 6, 1), (3, 12, 20, 2), (20, 32, 16, 3)]  # (n, D, h, seed); the first is square


def _mlp_cases() -> list[tuple]:
    cases = []
    for n, D, h, seed in MLP_CASES:
        torch.manual_seed(seed)
        enc = _encoder(D, num_virtual_tokens=n, encoder_hidden_size=h)
        l1, l2, l3 = enc.mlp_head[0], enc.mlp_head[2], enc.mlp_head[4]
        cases.append(tuple(t.detach().clone() for t in (enc.prompt_embeddings.weight, l1.weight, l1.bias, l2.weight,
                                                         l2.bias, l3.weight, l3.bias)))
    return cases


def _reference_mlp(E, W1, b1, W2, b2, W3, b3):
    (n, D), h = E.shape, W1.shape[0]
    enc = _encoder(D, num_virtual_tokens=n, encoder_hidden_size=h)
    with torch.no_grad():
        enc.prompt_embeddings.weight.copy_(E)
        for layer, (w, b) in zip((enc.mlp_head[0], enc.mlp_head[2], enc.mlp_head[4]), ((W1, b1), (W2, b2), (W3, b3))):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        return enc.prompts().detach().clone()


def _relu(x):
    return torch.clamp(x, min=0)


MLP_HINTS = [
    ("the ReLU after the second layer is missing: the encoder is Linear–ReLU–Linear–ReLU–Linear, two ReLUs.",
     lambda E, W1, b1, W2, b2, W3, b3: (_relu(E @ W1.T + b1) @ W2.T + b2) @ W3.T + b3),
    ("the ReLU after the first layer is missing: the encoder is Linear–ReLU–Linear–ReLU–Linear, two ReLUs.",
     lambda E, W1, b1, W2, b2, W3, b3: _relu((E @ W1.T + b1) @ W2.T + b2) @ W3.T + b3),
    ("a ReLU after the last layer too? The output layer is linear: the virtual tokens may be negative, as word "
     "embeddings are.", lambda E, W1, b1, W2, b2, W3, b3: _relu(_relu(_relu(E @ W1.T + b1) @ W2.T + b2) @ W3.T + b3)),
    ("weights not transposed? An nn.Linear stores its weight as (out, in) and computes x Wᵀ + b.",
     lambda E, W1, b1, W2, b2, W3, b3: _relu(_relu(E @ W1 + b1) @ W2 + b2) @ W3 + b3
     if W1.shape[0] == W1.shape[1] else torch.full((E.shape[0], W3.shape[0]), float("nan"))),  # fits square ones only
    ("a bias forgotten? Each of the three Linear layers adds its bias.",
     lambda E, W1, b1, W2, b2, W3, b3: [
         _relu(_relu(E @ W1.T) @ W2.T + b2) @ W3.T + b3, _relu(_relu(E @ W1.T + b1) @ W2.T) @ W3.T + b3,
         _relu(_relu(E @ W1.T + b1) @ W2.T + b2) @ W3.T, _relu(_relu(E @ W1.T) @ W2.T) @ W3.T]),
]


def check_1(mlp_prompts: Callable) -> bool | None:
    """mlp_prompts(E, W1, b1, W2, b2, W3, b3) on square and rectangular encoders, n from 3 to 20."""
    return check_parity(1, mlp_prompts, _reference_mlp, _mlp_cases(), MLP_HINTS, forbidden=FORBIDDEN,
                        describe="ReLU(ReLU(E W1ᵀ + b1) W2ᵀ + b2) W3ᵀ + b3", atol=1e-5,
                        build_from="three matrix products, the biases and two ReLUs")


# ---- 2. the LSTM encoder's count ---------------------------------------------------------------------------
COUNT_CASES = [(20, 768, 128, 2), (20, 128, 128, 2), (6, 256, 256, 2), (9, 1024, 512, 2), (5, 64, 32, 1),
               (10, 96, 40, 3)]  # (n, D, h, layers): BERT-base, mini-bert, mini-gpt, the paper's LAMA, made-up ones


def reference_lstm_count(n: int, D: int, h: int, layers: int) -> int:
    config = PromptEncoderConfig(num_virtual_tokens=n, encoder_hidden_size=h, encoder_num_layers=layers,
                                 encoder_reparameterization_type="LSTM")
    return config.expected_trainable_parameters(TransformerConfig.tiny(d_model=D, n_heads=1), "bert")


def _lstm(n, D, h, layers, *, biases=2, directions=2, second_input=None, table=True, head=True) -> int:
    def layer_in(i):
        return D if i == 0 else (second_input if second_input is not None else directions * h)
    lstm = sum(directions * (4 * h * (layer_in(i) + h) + biases * 4 * h) for i in range(layers))
    return n * D * table + lstm + head * ((2 * h * 2 * h + 2 * h) + (2 * h * D + D))


COUNT_HINTS = [
    ("forgot the second bias per gate? PyTorch's LSTM has two bias vectors, b_ih and b_hh, of 4h each per direction "
     "and layer: 8h, not 4h.", lambda n, D, h, layers: _lstm(n, D, h, layers, biases=1)),
    ("forgot the reverse direction? The LSTM is bidirectional: every layer has a forward and a backward LSTM, each "
     "with its own weights, and the next layer reads both (2h).",
     lambda n, D, h, layers: [_lstm(n, D, h, layers, directions=1), _lstm(n, D, h, layers, directions=1,
                                                                          second_input=2 * h)]),
    ("layer 2's input is not D: from the second layer on, an LSTM layer reads the previous layer's output, 2h wide "
     "(both directions).", lambda n, D, h, layers: _lstm(n, D, h, layers, second_input=D)),
    ("forgot the table of n input embeddings (n·D)? It trains too: the encoder's input is a learned nn.Embedding.",
     lambda n, D, h, layers: _lstm(n, D, h, layers, table=False)),
    ("forgot the MLP after the LSTM? Linear(2h, 2h)–ReLU–Linear(2h, D): (4h² + 2h) + (2hD + D).",
     lambda n, D, h, layers: _lstm(n, D, h, layers, head=False)),
]


def check_2(lstm_count: Callable) -> bool | None:
    """lstm_count(n, D, h, layers) on BERT-base, mini-bert, mini-gpt, the paper's LAMA geometry and made-up ones."""
    return check_parity(2, lstm_count, reference_lstm_count, COUNT_CASES, COUNT_HINTS, forbidden=FORBIDDEN,
                        describe="n·D + Σ_layers 2·[4h(in + h) + 8h] + (4h² + 2h) + (2hD + D)", atol=0,
                        prepare=lambda c: c, build_from="the shapes of the weights")


# ---- 3. filling the pseudo positions -----------------------------------------------------------------------
PSEUDO = 1


def _fill_cases() -> list[tuple]:
    """(x, input_ids, attention_mask, p, pseudo_token_id): right padding that holds the pseudo id (mini-gpt pads with
    the id it uses as pseudo token), left padding that holds it too, and rows whose prompts differ (mixed tasks)."""
    g = torch.Generator().manual_seed(7)
    cases = []
    for B, T, D, n, layout in ((1, 8, 4, 2, "none"), (3, 10, 6, 3, "right"), (2, 9, 5, 2, "left"),
                               (4, 12, 8, 4, "right")):
        ids = torch.randint(2, 50, (B, T), generator=g)  # (B, T): no pseudo id among the words
        mask = torch.ones(B, T, dtype=torch.long)
        for b in range(B):
            pad = 0 if layout == "none" else (b + 1) % 3 + (layout == "left")  # some rows padded, some not
            real = range(pad, T) if layout == "left" else range(0, T - pad)
            if layout == "left":
                mask[b, :pad] = 0
            elif pad:
                mask[b, T - pad:] = 0
            ids[b, mask[b] == 0] = PSEUDO  # the padding holds the pseudo id
            slots = sorted(torch.randperm(len(real), generator=g)[:n].tolist())
            ids[b, [real[s] for s in slots]] = PSEUDO
        cases.append((torch.randn(B, T, D, generator=g), ids, mask, torch.randn(B, n, D, generator=g), PSEUDO))
    return cases


def _reference_fill(x, input_ids, attention_mask, p, pseudo_token_id):
    B, n, D = p.shape
    module = _encoder(D, num_virtual_tokens=n, template="[P]" * n + " {x}", pseudo_token_id=pseudo_token_id)
    return module._fill_template(x, input_ids, attention_mask, p)


def _fill_loop(x, input_ids, attention_mask, p, pseudo_token_id, *, use_mask=True, order=None, rows=None, add=False):
    out = x.clone()
    for b in range(x.size(0)):
        ok = input_ids[b] == pseudo_token_id
        if use_mask:
            ok &= attention_mask[b].bool()
        pos = ok.nonzero().flatten()[: p.size(1)]
        prompts = p[0 if rows == "first" else b]
        prompts = prompts.flip(0) if order == "reversed" else prompts
        out[b, pos] = out[b, pos] + prompts if add else prompts
    return out


FILL_HINTS = [
    ("filled positions whose attention_mask is 0? Padding may hold the pseudo id (mini-gpt pads with id 0); only "
     "the real positions (mask 1) that hold it are virtual tokens.",
     lambda *c: _fill_loop(*c, use_mask=False)),
    ("gave every row the first row's prompts? p is (B, n, D): row b's slots get p[b] (in a mixed-task batch each "
     "row has its own prompt).", lambda *c: _fill_loop(*c, rows="first")),
    ("filled the slots in reverse order? The i-th pseudo position of a row, left to right, gets p[b, i].",
     lambda *c: _fill_loop(*c, order="reversed")),
    ("added the virtual tokens to the embeddings? They replace the pseudo token's embedding.",
     lambda *c: _fill_loop(*c, add=True)),
]


def check_3(fill_slots: Callable) -> bool | None:
    """fill_slots(x, input_ids, attention_mask, p, pseudo_token_id) with right and left padding holding the pseudo
    id, and a different prompt per row."""
    return check_parity(3, fill_slots, _reference_fill, _fill_cases(), FILL_HINTS, forbidden=FORBIDDEN,
                        describe="row-major: row b's i-th real pseudo position gets p[b, i]", atol=0,
                        build_from="a boolean mask of the slots and indexing")


# ---- 4. prediction: which converges faster? ----------------------------------------------------------------
OPTIONS = {"plain prompt": "plain prompt (prompt tuning)", "MLP encoder": "MLP encoder (P-tuning)",
           "LSTM encoder": "LSTM encoder (P-tuning)"}


def losses_at_step(encoder_part: dict, step: int = 50, window: int = 10) -> dict[str, float]:
    """{option: training loss around `step`}: the study's curve value of the window holding `step` (means over
    windows of 10 steps), averaged over the seeds. A curve shorter than that gives its last window."""
    out = {}
    for option, key in OPTIONS.items():
        curves = encoder_part[key]["curves"]
        i = min((step - 1) // window, min(len(c) for c in curves) - 1)
        out[option] = sum(c[i] for c in curves) / len(curves)
    return out


WHY_ENCODER = ("the paper's argument: a randomly initialised table sits in a small neighbourhood and SGD moves each "
               "vector on its own, while the encoder moves all virtual tokens together through shared weights "
               "(the 'association' of the tokens), which should make optimisation easier — here it did.")
WHY_PLAIN = ("the paper argues that the encoder makes optimisation easier (its vectors move together through shared "
             "weights), but in the committed study the plain table, trained at the rate prompt tuning chose on dev, "
             "reached a lower loss first: on this small base and budget the argument does not show in the loss.")


def check_4(prediction: Callable[[], str], measured: dict[str, float]) -> bool | None:
    """prediction() -> "plain prompt", "MLP encoder" or "LSTM encoder": the lowest training loss after 50 steps?
    `measured` = losses_at_step(study["encoder"], 50)."""
    winner = min(measured, key=measured.get)
    return check_choice(4, prediction, measured, WHY_PLAIN if winner == "plain prompt" else WHY_ENCODER,
                        higher_wins=False, unit=" (loss)")
