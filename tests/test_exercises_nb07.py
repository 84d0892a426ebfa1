"""Notebook 07's checkers (P-tuning): the reference solutions pass, typical wrong answers fail *with the hint that
names their mistake*, untouched stubs are "not attempted yet", the package's encoder cannot answer for the student;
and the checkers' references agree with the live package."""

from __future__ import annotations

from solutions import nb07
from solutions.contract import assert_every_hint_is_reachable, checker_tests, stub

from methods import PromptEncoderConfig, get_peft_model
from methods.checks import nb07_p_tuning as C
from minitransformer import GPTModel, TransformerConfig

CHECKS = {1: C.check_1, 2: C.check_2, 3: C.check_3}
SOLUTIONS = {1: nb07.mlp_prompts, 2: nb07.lstm_count, 3: nb07.fill_slots}
WRONG = [  # (exercise, wrong answer, words the hint must contain)
    (1, nb07.mlp_prompts_one_relu, "ReLU after the second layer"),
    (1, nb07.mlp_prompts_not_transposed, "not transposed"),
    (1, nb07.mlp_prompts_no_last_bias, "bias forgotten"),
    (2, nb07.lstm_count_one_bias, "second bias"),
    (2, nb07.lstm_count_one_direction, "reverse direction"),
    (2, nb07.lstm_count_second_layer_reads_D, "layer 2's input"),
    (3, nb07.fill_slots_ignoring_mask, "attention_mask is 0"),
    (3, nb07.fill_slots_first_row, "first row's prompts"),
    (3, nb07.fill_slots_added, "replace"),
]

test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
    CHECKS, SOLUTIONS, WRONG)


def test_every_hint_is_reachable():
    assert_every_hint_is_reachable(C.MLP_HINTS, C._mlp_cases(), C._reference_mlp)
    assert_every_hint_is_reachable(C.COUNT_HINTS, C.COUNT_CASES, C.reference_lstm_count, atol=0)
    assert_every_hint_is_reachable(C.FILL_HINTS, C._fill_cases(), C._reference_fill, atol=0)


def test_calling_the_package_encoder_is_refused(capsys):
    def cheat(E, W1, b1, W2, b2, W3, b3):
        return C._reference_mlp(E, W1, b1, W2, b2, W3, b3)
    assert C.check_1(cheat) is False
    assert "PromptEncoder.prompts" in capsys.readouterr().out

    def cheat_fill(x, input_ids, attention_mask, p, pseudo_token_id):
        return C._reference_fill(x, input_ids, attention_mask, p, pseudo_token_id)
    assert C.check_3(cheat_fill) is False
    assert "SoftPrompt._fill_template" in capsys.readouterr().out


def test_count_reference_is_the_live_model():
    for n, D, h, layers in [(3, 16, 8, 2), (2, 16, 5, 1), (4, 16, 6, 3)]:
        model = GPTModel(TransformerConfig.tiny(d_model=D, norm_first=True, type_vocab_size=0))
        config = PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=n, encoder_hidden_size=h,
                                     encoder_num_layers=layers, encoder_reparameterization_type="LSTM")
        live = get_peft_model(model, config).get_nb_trainable_parameters()[0]
        assert live == C.reference_lstm_count(n, D, h, layers) == nb07.lstm_count(n, D, h, layers)


def test_fill_cases_have_padding_that_holds_the_pseudo_id():
    cases = C._fill_cases()
    assert any(((ids == C.PSEUDO) & (mask == 0)).any() for _, ids, mask, _, _ in cases)
    left = cases[2][2]
    assert (left[:, 0] == 0).all()  # left padding: the case where ignoring the mask changes the answer


def test_prediction_checker(capsys):
    curve = [0.7, 0.69, 0.68, 0.67, 0.66]
    part = {C.OPTIONS["plain prompt"]: {"curves": [curve, curve]},
            C.OPTIONS["MLP encoder"]: {"curves": [[v - 0.1 for v in curve]] * 2},
            C.OPTIONS["LSTM encoder"]: {"curves": [[v + 0.1 for v in curve]] * 2}}
    measured = C.losses_at_step(part, 50)
    assert abs(measured["MLP encoder"] - 0.56) < 1e-9
    assert C.check_4(lambda: "MLP encoder", measured) is True
    assert "correct" in capsys.readouterr().out
    assert C.check_4(lambda: "plain prompt", measured) is False
    assert "not yet" in capsys.readouterr().out
    assert C.check_4(stub, measured) is None
    short = {k: {"curves": [[0.5]]} for k in C.OPTIONS.values()}  # a curve shorter than 50 steps: its last window
    assert C.losses_at_step(short, 50) == {k: 0.5 for k in C.OPTIONS}
