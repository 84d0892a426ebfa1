"""Bad input raises ValueError naming the argument, what it got and what it wanted."""

import pytest
import torch

import minitransformer as mt
from minitransformer import TransformerConfig as Cfg


@pytest.fixture(scope="module")
def bert():
    return mt.BertModel(Cfg.tiny()).eval()


@pytest.fixture(scope="module")
def gpt():
    return mt.GPTModel(Cfg.tiny(norm_first=True, type_vocab_size=0)).eval()


def x(T=5):
    return torch.randint(1, 100, (2, T))


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("d_model", 15, "divisible by n_heads"),
        ("n_layers", 0, "n_layers must be a positive int"),
        ("dropout", 1.0, r"dropout must be in \[0, 1\)"),
        ("attn_dropout", -0.1, "attn_dropout"),
        ("activation", "swish", "activation='swish' is unknown"),
        ("vocab_size", -3, "vocab_size"),
        ("pad_token_id", 100, "pad_token_id=100"),
    ],
)
def test_config_validates_itself(field, value, match):
    with pytest.raises(ValueError, match=match):
        Cfg.tiny(**{field: value})


def test_config_roundtrip_and_unknown_field():
    c = Cfg.mini_gpt()
    assert Cfg.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match=r"unknown fields \['n_embd'\]"):
        Cfg.from_dict({**c.to_dict(), "n_embd": 3})


def test_both_or_neither_inputs(bert):
    with pytest.raises(ValueError, match=r"exactly one of input_ids .* got input_ids=None, inputs_embeds=None"):
        bert()
    with pytest.raises(ValueError, match="exactly one"):
        bert(x(), inputs_embeds=torch.zeros(2, 5, 16))


def test_too_long(bert, gpt):
    with pytest.raises(ValueError, match="sequence too long: past length 0 \\+ input length 65 = 65 > max_positions=64"):
        bert(x(65))
    past = tuple((torch.zeros(2, 2, 62, 8), torch.zeros(2, 2, 62, 8)) for _ in range(2))
    with pytest.raises(ValueError, match="past length 62 \\+ input length 5"):
        gpt(x(), past_key_values=past)


def test_mask_of_wrong_shape(bert):
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, T\) = \(2, 5\) .* got \(2, 6\)"):
        bert(x(), attention_mask=torch.ones(2, 6))


def test_malformed_past(gpt):
    with pytest.raises(ValueError, match="one \\(k, v\\) pair per layer: wanted 2, got 1"):
        gpt(x(), past_key_values=((torch.zeros(2, 2, 3, 8), torch.zeros(2, 2, 3, 8)),))
    bad = ((torch.zeros(2, 2, 3, 8), torch.zeros(2, 2, 3, 8)), (torch.zeros(2, 2, 3, 8), torch.zeros(2, 3, 3, 8)))
    with pytest.raises(ValueError, match=r"past_key_values\[1\]\.v must have shape .* \(2, 2, 3, 8\), got \(2, 3, 3, 8\)"):
        gpt(x(), past_key_values=bad)


def test_other_bad_inputs(bert, gpt):
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(B, T, D=16\), got \(2, 5, 8\)"):
        bert(inputs_embeds=torch.zeros(2, 5, 8))
    with pytest.raises(ValueError, match=r"input_ids must be in \[0, vocab_size=100\)"):
        bert(torch.tensor([[1, 100]]))
    with pytest.raises(ValueError, match="token_type_ids must have shape"):
        bert(x(), token_type_ids=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="token_type_ids must be None"):
        gpt(x(), token_type_ids=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="norm_first must be True"):
        mt.GPTModel(Cfg.tiny())
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        gpt.generate(x(), 3, do_sample=True, top_k=0)
