"""AdaMix (methods/adamix.py): the count with a shared up projection, routing (every expert in training, none
drawn in eval), the symmetric KL and the consistency loss, merge_experts against an adapter built from the averaged
weights, and one pinned expert."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_adapters import data, randomise, tiny_bert

import methods as M
from methods.adamix import AdaMixLayer, adamix_layers, merge_experts, set_fixed_expert, symmetric_kl
from methods.adapters import SequentialAdapter, bottleneck_layers
from minitransformer import BertForSequenceClassification
from minitransformer import TransformerConfig as Cfg


def test_bert_base_count():
    c = Cfg.bert_base()
    D, m, L = 768, 48, 12
    assert M.AdaMixConfig().expected_trainable_parameters(c, "bert") == L * (4 * (D * m + m) + (m * D + D)) == 2_223_360
    assert M.AdaMixConfig(share_up=False).expected_trainable_parameters(c, "bert") == L * 4 * (2 * D * m + m + D)
    with torch.device("meta"):
        peft = M.get_peft_model(BertForSequenceClassification(c, 2), M.AdaMixConfig())
    assert peft.get_nb_trainable_parameters()[0] == 2_223_360 + 2 * D + 2


def peft_adamix(**kw):
    peft = M.get_peft_model(tiny_bert(), M.AdaMixConfig(bottleneck_size=4, **kw))
    randomise(peft)
    return peft


def test_training_routes_cover_every_expert_and_eval_is_deterministic():
    peft = peft_adamix(share_up=False)
    layer = adamix_layers(peft)[0][1]
    peft.train()
    torch.manual_seed(0)
    routes = set()
    for _ in range(60):
        peft(**data())
        routes.add(layer.last_route)
    assert {i for i, _ in routes} == set(range(4)) and {j for _, j in routes} == set(range(4))
    assert any(i != j for i, j in routes)  # down and up are drawn independently
    peft.eval()
    layer.last_route = None
    a, b = peft(**data()).logits, peft(**data()).logits
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert layer.last_route is None  # nothing drawn in eval


def test_merge_experts_equals_an_adapter_built_from_the_averaged_weights():
    peft = peft_adamix()
    peft.eval()
    before = peft(**data()).logits
    averaged = {n: (l.adamix_down_weight["default"].mean(0), l.adamix_down_bias["default"].mean(0),
                    l.adamix_up_weight["default"].mean(0), l.adamix_up_bias["default"].mean(0))
                for n, l in adamix_layers(peft.base_model)}
    merge_experts(peft)
    assert all(layer.num_experts("default") == (1, 1) for _, layer in adamix_layers(peft))
    after = peft(**data()).logits
    torch.testing.assert_close(after, before)
    # an independent build: a plain GELU bottleneck adapter after ffn.fc2 with the averaged weights
    ref = M.get_peft_model(tiny_bert(), M.PfeifferConfig(bottleneck_size=4, non_linearity="gelu"))
    ref.base_model.classifier.modules_to_save["default"].load_state_dict(
        peft.base_model.classifier.modules_to_save["default"].state_dict())
    with torch.no_grad():
        for n, layer in bottleneck_layers(ref.base_model):
            Wd, bd, Wu, bu = averaged[n]
            layer.adapter_down["default"].weight.copy_(Wd)
            layer.adapter_down["default"].bias.copy_(bd)
            layer.adapter_up["default"].weight.copy_(Wu)
            layer.adapter_up["default"].bias.copy_(bu)
    ref.eval()
    torch.testing.assert_close(ref(**data()).logits, after)
    # one adapter's cost: after merging a training pass draws nothing but expert 0
    peft.train()
    peft(**data())
    assert adamix_layers(peft)[0][1].last_route == (0, 0)
    assert all(isinstance(layer, SequentialAdapter) for _, layer in bottleneck_layers(ref))


def test_fixed_expert_uses_that_expert_alone():
    peft = peft_adamix()
    peft.eval()
    set_fixed_expert(peft, 2)
    layer: AdaMixLayer = adamix_layers(peft)[0][1]
    h = torch.randn(2, 3, 16)
    Wd, bd = layer.adamix_down_weight["default"][2], layer.adamix_down_bias["default"][2]
    Wu, bu = layer.adamix_up_weight["default"][0], layer.adamix_up_bias["default"][0]  # the shared up projection
    torch.testing.assert_close(layer.adapter_delta("default", h), F.linear(F.gelu(F.linear(h, Wd, bd)), Wu, bu))
    set_fixed_expert(peft, None)
    assert layer.fixed_expert is None
    for bad in (4, -1, "2"):
        with pytest.raises(ValueError, match=r"expert=.*allowed: None or an integer in 0..3"):
            set_fixed_expert(peft, bad)


def test_symmetric_kl_is_zero_for_identical_passes_positive_otherwise_and_detaches_targets():
    a = torch.randn(5, 3, requires_grad=True)
    assert symmetric_kl(a, a.detach().clone()).item() == pytest.approx(0.0, abs=1e-7)
    b = torch.randn(5, 3, requires_grad=True)
    kl = symmetric_kl(a, b)
    assert kl > 0
    pa, pb = a.softmax(-1), b.softmax(-1)
    by_hand = 0.5 * ((pb * (pb.log() - pa.log())).sum(-1).mean() + (pa * (pa.log() - pb.log())).sum(-1).mean())
    torch.testing.assert_close(kl, by_hand)
    kl.backward()
    # each term's gradient flows through its log_softmax side only: d/da = ½ (p_A - p_B) / rows
    torch.testing.assert_close(a.grad, 0.5 * (pa - pb).detach() / 5)


def test_consistency_loss_is_ce_plus_lambda_kl_of_two_routes():
    peft = peft_adamix(share_up=False, consistency_weight=1.0)
    peft.train()
    torch.manual_seed(3)
    total = peft.training_loss(data())
    torch.manual_seed(3)
    a, b = peft(**data()), peft(**data())
    torch.testing.assert_close(total, a.loss + symmetric_kl(a.logits, b.logits))
    assert symmetric_kl(a.logits, b.logits) > 0
    one = M.get_peft_model(tiny_bert(dropout=0.0, attn_dropout=0.0), M.AdaMixConfig(bottleneck_size=4, num_experts=1))
    randomise(one)
    one.train()
    # a single expert: both passes take the same route, so the loss is the cross-entropy alone (no dropout here)
    torch.testing.assert_close(one.training_loss(data()), one(**data()).loss)
    peft.eval()
    torch.testing.assert_close(peft.training_loss(data()), peft(**data()).loss)  # eval: one pass
