"""Bottleneck adapters (methods/adapters.py): placements by module type at the expected paths, the published counts
on BERT-base, the adapter against its equation, both inits, AdapterDrop (specialised, at inference, robust). The
registry-wide contract (no-op at init, gradients, save/load, disable_adapter) is in test_contract.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import methods as M
from methods.adapters import (
    ParallelAdapter,
    SequentialAdapter,
    adapter_drop,
    bottleneck_layers,
    set_adapter_drop,
)
from methods.api.targets import ModulesToSave
from minitransformer import BertForSequenceClassification, GPTModel, Transformer
from minitransformer import TransformerConfig as Cfg
from minitransformer.blocks import FeedForward


def tiny_bert(seed: int = 0, **cfg) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(Cfg.tiny(**cfg), num_labels=2, pooling="mean").eval()


def data(V: int = 100, B: int = 3, T: int = 7) -> dict:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, 5:] = 0
    return dict(input_ids=torch.randint(3, V, (B, T), generator=g), attention_mask=mask,
                labels=torch.tensor([0, 1, 1])[:B])


def randomise(model: nn.Module, seed: int = 0) -> None:
    """Give every adapter tensor non-zero values (a zero-init adapter would hide a wrong equation)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and "classifier" not in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def meta_count(config) -> int:
    with torch.device("meta"):
        peft = M.get_peft_model(BertForSequenceClassification(Cfg.bert_base(), 2), config)
    return peft.get_nb_trainable_parameters()[0]


def test_bert_base_counts_are_the_adapters_library_figures():
    c = Cfg.bert_base()
    D, L, m = 768, 12, 48
    per = 2 * D * m + m + D
    assert M.PfeifferConfig().expected_trainable_parameters(c, "bert") == L * per == 894_528
    assert M.HoulsbyConfig().expected_trainable_parameters(c, "bert") == 2 * L * per == 1_789_056
    assert M.ParallelAdapterConfig().expected_trainable_parameters(c, "bert") == 894_528
    head = D * 2 + 2
    assert meta_count(M.PfeifferConfig()) == 894_528 + head
    # Houlsby also retrains the blocks' LayerNorms: 2 per block, 2D each
    assert meta_count(M.HoulsbyConfig()) == 1_789_056 + L * 2 * 2 * D + head == 1_827_458
    assert meta_count(M.HoulsbyConfig(train_layer_norms=False)) == 1_789_056 + head
    assert meta_count(M.PfeifferConfig(reduction_factor=2)) == L * (2 * D * 384 + 384 + D) + head


def test_placements_by_module_type_at_the_expected_paths():
    model = M.get_peft_model(tiny_bert(), M.HoulsbyConfig(bottleneck_size=4))
    b = model.base_model.bert
    for layer in b.layers:
        assert isinstance(layer.attn.o, SequentialAdapter) and isinstance(layer.ffn.fc2, SequentialAdapter)
        assert isinstance(layer.attn.q, nn.Linear) and isinstance(layer.ffn.fc1, nn.Linear)
        assert isinstance(layer.attn_norm, ModulesToSave) and isinstance(layer.ffn_norm, ModulesToSave)
    text = str(model)
    assert "(o): SequentialAdapter" in text and "(fc2): SequentialAdapter" in text
    model = M.get_peft_model(tiny_bert(), M.PfeifferConfig(bottleneck_size=4))
    assert [n for n, _ in bottleneck_layers(model.base_model)] == ["bert.layers.0.ffn.fc2", "bert.layers.1.ffn.fc2"]
    model = M.get_peft_model(tiny_bert(), M.ParallelAdapterConfig(bottleneck_size=4))
    for layer in model.base_model.bert.layers:
        assert isinstance(layer.ffn, ParallelAdapter) and isinstance(layer.ffn.base_layer, FeedForward)
    assert "(ffn): ParallelAdapter" in str(model)
    # the encoder-decoder: Houlsby also adapts the decoder's cross-attention output
    s2s = M.get_peft_model(Transformer(Cfg.mini_seq2seq(d_model=16, d_ff=32)),
                           M.HoulsbyConfig(task_type="SEQ_2_SEQ_LM", bottleneck_size=4))
    names = [n for n, _ in bottleneck_layers(s2s.base_model)]
    assert "decoder.layers.0.cross_attn.o" in names and "encoder.layers.1.attn.o" in names
    assert len(names) == 2 * 2 + 2 * 3


@pytest.mark.parametrize("cls", [M.PfeifferConfig, M.HoulsbyConfig])
def test_sequential_adapter_is_its_equation(cls):
    peft = M.get_peft_model(tiny_bert(), cls(bottleneck_size=4, train_layer_norms=False)
                            if cls is M.HoulsbyConfig else cls(bottleneck_size=4))
    randomise(peft)
    layer = peft.base_model.bert.layers[0].ffn.fc2
    x = torch.randn(2, 5, 64)
    h = layer.base_layer(x)
    down, up = layer.adapter_down["default"], layer.adapter_up["default"]
    f = torch.nn.functional.gelu if cls is M.HoulsbyConfig else torch.relu
    expected = h + (f(h @ down.weight.T + down.bias) @ up.weight.T + up.bias)  # A(h) = h + W_up f(W_down h + b) + b
    torch.testing.assert_close(layer(x), expected)


def test_parallel_adapter_reads_the_ffn_input_and_scales_by_s():
    peft = M.get_peft_model(tiny_bert(), M.ParallelAdapterConfig(bottleneck_size=4))
    randomise(peft)
    ffn = peft.base_model.bert.layers[1].ffn
    x = torch.randn(2, 5, 16)
    down, up = ffn.adapter_down["default"], ffn.adapter_up["default"]
    expected = ffn.base_layer(x) + 4.0 * (torch.relu(x @ down.weight.T + down.bias) @ up.weight.T + up.bias)
    torch.testing.assert_close(ffn(x), expected)


def test_zero_init_is_an_exact_noop_and_houlsby_init_is_a_truncated_normal():
    base = tiny_bert()
    ref = base(**data()).logits
    for cls in (M.HoulsbyConfig, M.PfeifferConfig, M.ParallelAdapterConfig):
        peft = M.get_peft_model(tiny_bert(), cls(bottleneck_size=4))
        torch.testing.assert_close(peft(**data()).logits, ref, atol=0, rtol=0)
    torch.manual_seed(0)
    big = M.get_peft_model(BertForSequenceClassification(Cfg.tiny(d_model=256, n_heads=4), 2),
                           M.PfeifferConfig(init_weights="houlsby", init_std=1e-2, bottleneck_size=64))
    w = big.base_model.bert.layers[0].ffn.fc2.adapter_down["default"].weight
    assert w.abs().max() <= 2e-2 and 0.7e-2 < w.std() < 1e-2  # truncated at 2 std: std shrinks to ~0.88 std
    assert big.base_model.bert.layers[0].ffn.fc2.adapter_up["default"].weight.abs().max() > 0


def test_adapter_drop_all_layers_is_the_frozen_model_and_zero_is_the_adapted_one():
    base = tiny_bert()
    ref = base(**data()).logits
    peft = M.get_peft_model(tiny_bert(), M.PfeifferConfig(bottleneck_size=4))
    randomise(peft)
    adapted = peft(**data()).logits
    assert not torch.allclose(adapted, ref)
    with adapter_drop(peft, 2):  # n = L: every block runs without its adapter (the head is the same copy)
        torch.testing.assert_close(peft(**data()).logits, ref, atol=0, rtol=0)
    with adapter_drop(peft, 1):
        assert [layer.dropped for _, layer in bottleneck_layers(peft)] == [True, False]
        one = peft(**data()).logits
    assert not torch.allclose(one, adapted)
    torch.testing.assert_close(peft(**data()).logits, adapted, atol=0, rtol=0)  # back after the block
    with pytest.raises(ValueError, match="adapter_drop n=-1"):
        set_adapter_drop(peft, -1)


def test_specialised_adapter_drop_builds_no_adapter_below_skip_layers():
    c = Cfg.bert_base()
    assert M.PfeifferConfig(skip_layers=5).expected_trainable_parameters(c, "bert") == 7 * 74_544 == 894_528 * 7 // 12
    peft = M.get_peft_model(tiny_bert(n_layers=4), M.PfeifferConfig(bottleneck_size=4, skip_layers=3))
    assert [n for n, _ in bottleneck_layers(peft.base_model)] == ["bert.layers.3.ffn.fc2"]
    assert peft.get_nb_trainable_parameters()[0] == M.expected_trainable_parameters(tiny_bert(n_layers=4),
                                                                                   M.PfeifferConfig(bottleneck_size=4, skip_layers=3))
    with pytest.raises(ValueError, match="skip_layers=2 leaves no block"):
        M.get_peft_model(tiny_bert(), M.PfeifferConfig(bottleneck_size=4, skip_layers=2))


def test_robust_adapter_drop_samples_the_depth_per_batch_and_only_in_training():
    peft = M.get_peft_model(tiny_bert(n_layers=4), M.PfeifferConfig(bottleneck_size=4, robust_drop=True))
    randomise(peft)
    seen = set()
    layers = bottleneck_layers(peft)
    original = layers[0][1].forward

    def spy(x, *a, **k):  # record how many blocks are dropped during the loss's forward pass
        seen.add(sum(layer.dropped for _, layer in layers))
        return original(x, *a, **k)

    layers[0][1].forward = spy
    peft.train()
    torch.manual_seed(0)
    for _ in range(40):
        peft.training_loss(data()).backward()
    assert seen == {0, 1, 2, 3}  # n uniform on {0, ..., L-1}: the top block always keeps its adapter
    assert not any(layer.dropped for _, layer in layers)  # reset after each loss
    peft.eval()
    seen.clear()
    torch.testing.assert_close(peft.training_loss(data()), peft(**data()).loss)
    assert seen == {0}


def test_lower_blocks_get_no_backward_when_their_adapters_are_dropped():
    peft = M.get_peft_model(tiny_bert(n_layers=4), M.PfeifferConfig(bottleneck_size=4))
    randomise(peft)
    peft.train()
    with adapter_drop(peft, 2):
        peft(**data()).loss.backward()
    grads = {n: p.grad for n, p in peft.named_parameters() if "adapter_down" in n}
    assert all(grads[n] is None for n in grads if ".layers.0." in n or ".layers.1." in n)
    assert all(grads[n] is not None for n in grads if ".layers.2." in n or ".layers.3." in n)


def test_gpt_gets_adapters_too():
    torch.manual_seed(0)
    gpt = GPTModel(Cfg.tiny(norm_first=True, type_vocab_size=0))
    peft = M.get_peft_model(gpt, M.HoulsbyConfig(task_type="CAUSAL_LM", bottleneck_size=4))
    assert len(bottleneck_layers(peft)) == 4
