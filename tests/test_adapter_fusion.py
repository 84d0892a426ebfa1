"""AdapterFusion (methods/adapter_fusion.py): the count, the V-identity init and the regulariser, shapes of the
attention over adapters, fusion of one saved adapter equals that adapter, loading errors name the field, and the
key bias that a softmax over adapters cannot see."""

from __future__ import annotations

import pytest
import torch
from test_adapters import data, randomise, tiny_bert

import methods as M
from methods.adapter_fusion import FusionLayer, fusion_layers, set_recording, value_regularizer
from minitransformer import BertForSequenceClassification
from minitransformer import TransformerConfig as Cfg


def test_count_is_not_cheap():
    c = Cfg.bert_base()
    D, L = 768, 12
    assert M.AdapterFusionConfig().expected_trainable_parameters(c, "bert") == L * (3 * D * D + D) == 21_242_880
    with torch.device("meta"):
        peft = M.get_peft_model(BertForSequenceClassification(c, 2), M.AdapterFusionConfig())
    assert peft.get_nb_trainable_parameters()[0] == 21_242_880 + 2 * D + 2


def test_value_starts_at_identity_and_the_regulariser_is_zero_there():
    peft = M.get_peft_model(tiny_bert(), M.AdapterFusionConfig(num_adapters=3))
    for _, layer in fusion_layers(peft):
        torch.testing.assert_close(layer.fusion_value["default"].weight, torch.eye(16), atol=0, rtol=0)
        assert layer.fusion_value["default"].bias is None and layer.fusion_key["default"].bias is None
    assert value_regularizer(peft.base_model, "default").item() == 0
    with torch.no_grad():
        fusion_layers(peft)[0][1].fusion_value["default"].weight.add_(0.1)
    assert value_regularizer(peft.base_model, "default").item() == pytest.approx(256 * 0.01, rel=1e-5)
    peft.train()
    torch.manual_seed(0)
    loss = peft.training_loss(data())
    torch.manual_seed(0)  # the same dropout masks
    torch.testing.assert_close(loss, peft(**data()).loss + 0.01 * value_regularizer(peft.base_model, "default"))


def test_attention_over_adapters_shapes_and_equation():
    peft = M.get_peft_model(tiny_bert(), M.AdapterFusionConfig(num_adapters=3, bottleneck_size=4))
    randomise(peft)
    set_recording(peft, True)
    peft.eval()
    peft(**data())
    layer: FusionLayer = fusion_layers(peft)[0][1]
    assert layer.last_weights.shape == (3, 7, 3)  # (B, T, N)
    torch.testing.assert_close(layer.last_weights.sum(-1), torch.ones(3, 7))
    h = torch.randn(2, 5, 16)
    E = layer.fusion_adapters["default"]
    z = torch.stack([E.up_weight[n] @ torch.relu(E.down_weight[n] @ h[..., None] + E.down_bias[n][:, None])
                     for n in range(3)], 2)[..., 0] + E.up_bias  # (B, T, N, D), adapter by adapter
    Q, K, V = (layer.fusion_query["default"], layer.fusion_key["default"], layer.fusion_value["default"])
    s = torch.softmax(torch.einsum("btd,btnd->btn", Q(h), K(z)), -1)
    torch.testing.assert_close(layer.apply_adapter("default", None, h), h + torch.einsum("btn,btnd->btd", s, V(z)))


def test_a_key_bias_would_get_no_gradient():
    """Why K has no bias: (Q h)·(K z_n + b) = (Q h)·K z_n + (Q h)·b, the same shift for every adapter n."""
    q, z = torch.randn(4, 8), torch.randn(4, 3, 8)
    b = torch.randn(8, requires_grad=True)
    s = torch.softmax(torch.einsum("td,tnd->tn", q, z + b), -1)
    (s * torch.randn(4, 3)).sum().backward()
    assert b.grad.abs().max() < 1e-6


def test_fusing_one_saved_adapter_gives_that_adapter(tmp_path):
    single = M.get_peft_model(tiny_bert(), M.PfeifferConfig(bottleneck_size=4))
    randomise(single)
    single.eval()
    single.save_pretrained(tmp_path / "a")
    fused = M.get_peft_model(tiny_bert(), M.AdapterFusionConfig(adapter_paths=[str(tmp_path / "a")]))
    fused.base_model.classifier.modules_to_save["default"].load_state_dict(
        single.base_model.classifier.modules_to_save["default"].state_dict())
    fused.eval()
    # one adapter: the softmax weight is 1 and V = I, so fusion adds exactly that adapter's output
    torch.testing.assert_close(fused(**data()).logits, single(**data()).logits)
    # three copies: the weights are a distribution over identical outputs, the same result
    three = M.get_peft_model(tiny_bert(), M.AdapterFusionConfig(adapter_paths=[str(tmp_path / "a")] * 3))
    three.base_model.classifier.modules_to_save["default"].load_state_dict(
        single.base_model.classifier.modules_to_save["default"].state_dict())
    three.eval()
    torch.testing.assert_close(three(**data()).logits, single(**data()).logits)
    # the fusion checkpoint holds Q, K, V and the head, not the adapters (read again from their paths)
    fused.save_pretrained(tmp_path / "f")
    loaded = M.PeftModel.from_pretrained(tiny_bert(), tmp_path / "f")
    torch.testing.assert_close(loaded(**data()).logits, fused(**data()).logits, atol=0, rtol=0)


def test_adapter_paths_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="adapter_paths.*no adapter_config.json"):
        M.get_peft_model(tiny_bert(), M.AdapterFusionConfig(adapter_paths=[str(tmp_path)]))
    M.get_peft_model(tiny_bert(), M.HoulsbyConfig(bottleneck_size=4)).save_pretrained(tmp_path / "h")
    with pytest.raises(ValueError, match="adapter_paths.*'houlsby' adapter; allowed: 'pfeiffer'"):
        M.get_peft_model(tiny_bert(), M.AdapterFusionConfig(adapter_paths=[str(tmp_path / "h")]))
    M.get_peft_model(tiny_bert(), M.PfeifferConfig(bottleneck_size=4, skip_layers=1)).save_pretrained(tmp_path / "p")
    with pytest.raises(ValueError, match="adapter_paths.*no adapter at bert.layers.0.ffn.fc2"):
        M.get_peft_model(tiny_bert(), M.AdapterFusionConfig(adapter_paths=[str(tmp_path / "p")]))


def test_not_in_the_comparison_by_default():
    from methods.compare import comparable_methods

    assert "adapter_fusion" not in comparable_methods() and "pfeiffer" in comparable_methods()
