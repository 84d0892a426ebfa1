"""(IA)³ (methods/ia3.py): the paper's count and `peft`'s, the three rescalings against the paper's equations,
merge/unmerge (multiplicative) exact and idempotent. The registry-wide contract is in test_contract.py."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import methods as M
from methods.ia3 import IA3Config, IA3Linear
from minitransformer import BertForSequenceClassification
from minitransformer import TransformerConfig as Cfg


def test_bert_base_count_is_the_papers_and_peft_default_adds_the_attention_output():
    c = Cfg.bert_base()
    L, D, F = c.n_layers, c.d_model, c.d_ff
    assert IA3Config().expected_trainable_parameters(c, "bert") == L * (D + D + F) == 55_296
    peft_like = IA3Config(target_modules=["attn.k", "attn.v", "attn.o", "ffn.fc2"],
                          feedforward_modules=["attn.o", "ffn.fc2"])
    assert peft_like.expected_trainable_parameters(c, "bert") == 64_512
    with torch.device("meta"):
        peft = M.get_peft_model(BertForSequenceClassification(c, 2), IA3Config())
    assert peft.get_nb_trainable_parameters()[0] == 55_296 + 1_538


def test_output_and_input_scaling_are_the_equations():
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    x = torch.randn(3, 6)
    out = IA3Linear(copy.deepcopy(base))
    out.update_layer("default", is_feedforward=False)
    out.set_adapter("default")
    assert torch.equal(out(x), base(x))  # ones: a no-op
    nn.init.normal_(out.ia3_l["default"])
    torch.testing.assert_close(out(x), out.ia3_l["default"] * base(x))  # l ⊙ (W x + b)
    inp = IA3Linear(copy.deepcopy(base))
    inp.update_layer("default", is_feedforward=True)
    inp.set_adapter("default")
    nn.init.normal_(inp.ia3_l["default"])
    torch.testing.assert_close(inp(x), base(inp.ia3_l["default"] * x))  # W (l ⊙ h) + b
    assert inp.ia3_l["default"].shape == (6,) and out.ia3_l["default"].shape == (4,)


@pytest.mark.parametrize("feedforward", [False, True])
def test_merge_folds_the_vector_and_unmerge_restores(feedforward):
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    layer = IA3Linear(copy.deepcopy(base))
    layer.update_layer("default", is_feedforward=feedforward)
    layer.set_adapter("default")
    with torch.no_grad():
        layer.ia3_l["default"].uniform_(0.5, 1.5)
    x = torch.randn(5, 6)
    want = layer(x)
    layer.merge()
    layer.merge()  # idempotent
    torch.testing.assert_close(layer(x), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer.get_base_layer()(x), want, atol=1e-6, rtol=0)  # the plain layer alone
    layer.unmerge()
    layer.unmerge()
    torch.testing.assert_close(layer.get_base_layer().weight, base.weight, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer.get_base_layer().bias, base.bias, atol=1e-6, rtol=0)


def test_the_attention_and_ffn_are_wrapped_and_the_query_is_not():
    peft = M.get_peft_model(BertForSequenceClassification(Cfg.tiny(), 2, pooling="mean"), IA3Config())
    layer = peft.base_model.bert.layers[0]
    assert isinstance(layer.attn.k, IA3Linear) and isinstance(layer.attn.v, IA3Linear)
    assert isinstance(layer.ffn.fc2, IA3Linear) and layer.ffn.fc2.is_feedforward and not layer.attn.k.is_feedforward
    assert type(layer.attn.q) is nn.Linear and type(layer.ffn.fc1) is nn.Linear


@pytest.mark.parametrize("kwargs, field", IA3Config.invalid_examples)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        IA3Config(**kwargs)
