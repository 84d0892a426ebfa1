"""QLoRA's 4-bit storage (methods/qlora.py): the NF4 table against the paper's, the rounding error bound,
packing and double-quantisation round trips, the bits per weight, and the 4-bit linear layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from methods.qlora import (
    Linear4bit,
    code_table,
    dequantize_4bit,
    dequantize_constants,
    nf4_code,
    pack_4bit,
    quantize_4bit,
    quantize_constants,
    unpack_4bit,
)

PAPER_NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
             -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
             0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
             0.7229568362236023, 1.0]


def test_nf4_table_is_the_papers_to_7_decimals():
    code = nf4_code(torch.float64)
    assert code.shape == (16,) and code[7] == 0 and code[0] == -1 and code[-1] == 1
    assert torch.allclose(code, torch.tensor(PAPER_NF4, dtype=torch.float64), atol=5e-8, rtol=0)
    # stored in float32, as the paper's values are: equal up to one float32 rounding step
    assert torch.allclose(nf4_code(), torch.tensor(PAPER_NF4), atol=6e-8, rtol=0)


@pytest.mark.parametrize("name, distinct", [("nf4", 16), ("fp4", 15), ("int4", 15)])
def test_every_code_is_sorted_in_minus_one_one_with_an_exact_zero(name, distinct):
    code = code_table(name)
    assert len(code.unique()) == distinct and torch.equal(code, code.sort().values)
    assert code.min() == -1 and code.max() == 1 and (code == 0).any()


def test_unknown_code_names_the_field():
    with pytest.raises(ValueError, match="code='nf3'"):
        code_table("nf3")


@pytest.mark.parametrize("n", [1, 2, 7, 64, 129])
def test_packing_round_trip(n):
    index = torch.randint(0, 16, (n,), generator=torch.Generator().manual_seed(n))
    packed = pack_4bit(index)
    assert packed.dtype == torch.uint8 and packed.numel() == (n + 1) // 2
    assert torch.equal(unpack_4bit(packed, n), index)
    assert pack_4bit(torch.tensor([1, 2]))[0] == 0x12  # the first index in the high nibble


@pytest.mark.parametrize("name", ["nf4", "fp4", "int4"])
def test_rounding_error_is_at_most_half_the_largest_gap_times_the_block_absmax(name):
    code = code_table(name)
    w = torch.randn(37, 50, generator=torch.Generator().manual_seed(0)) * 0.05
    packed, absmax = quantize_4bit(w, code, blocksize=64)
    w_hat = dequantize_4bit(packed, absmax, code, w.shape, blocksize=64)
    bound = (code.diff().max() / 2) * absmax.repeat_interleave(64)[: w.numel()].view(w.shape)
    assert ((w - w_hat).abs() <= bound + 1e-7).all()
    assert torch.allclose(absmax, torch.nn.functional.pad(w.flatten(), (0, -w.numel() % 64)).view(-1, 64).abs().amax(1))


def test_double_quantisation_round_trip_within_half_a_step():
    absmax = torch.rand(1000, generator=torch.Generator().manual_seed(1)) * 0.3 + 0.01
    q, c2, mean = quantize_constants(absmax, blocksize=256)
    assert q.dtype == torch.int8 and c2.shape == (4,) and torch.isclose(mean, absmax.mean())
    back = dequantize_constants(q, c2, mean, blocksize=256)
    step = (c2 / 127).repeat_interleave(256)[:1000]
    assert ((back - absmax).abs() <= step / 2 + 1e-7).all()


def test_bits_per_weight_with_double_quantisation():
    layer = Linear4bit.from_linear(nn.Linear(768, 768))
    bits = layer.storage_bits() / (768 * 768)
    assert bits == pytest.approx(4 + 8 / 64 + 32 / (64 * 256), abs=1e-4)  # 4.127
    plain = Linear4bit.from_linear(nn.Linear(768, 768), double_quant=False)
    assert plain.storage_bits() / (768 * 768) == pytest.approx(4.5)


@pytest.mark.parametrize("double_quant", [True, False])
def test_linear4bit_computes_with_its_dequantised_weight(double_quant):
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    layer = Linear4bit.from_linear(linear, double_quant=double_quant)
    x = torch.randn(3, 5, 96)
    torch.testing.assert_close(layer(x), x @ layer.weight.T + linear.bias)
    assert not list(p for p in layer.parameters() if p.requires_grad)
    error = (layer.weight - linear.weight).abs().max()
    # close, not equal: at most half the widest NF4 gap (0.28 / 2) of a block absmax, plus the 8-bit rounding of it
    assert 0 < error < linear.weight.abs().max() * 0.16
    assert "code=nf4" in repr(layer)


def test_linear4bit_keeps_no_float_weight_between_forward_and_backward():
    """The backward dequantises W again: autograd saves no float (out, in) copy of it (which would give back, during
    training, the memory the 4 bits saved), and the gradients are those of x @ W_deqᵀ + b."""
    torch.manual_seed(0)
    layer = Linear4bit.from_linear(nn.Linear(96, 40))
    x = torch.randn(3, 5, 96, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = layer(x)
    assert not {(40, 96), (96, 40)} & set(saved), saved
    g = torch.randn_like(y)
    y.backward(g)
    torch.testing.assert_close(x.grad, g @ layer.weight)
    layer.bias.requires_grad_(True)  # frozen in QLoRA; unfrozen, it must still get its gradient
    x.grad = None
    layer(x).backward(g)
    torch.testing.assert_close(layer.bias.grad, g.sum((0, 1)))
    torch.testing.assert_close(x.grad, g @ layer.weight)


# ---- QLoRA: LoRA on the 4-bit base ---------------------------------------------------------------------------
def _qlora(**kw):
    import methods as M
    from methods.qlora import QLoraConfig
    from minitransformer import BertForSequenceClassification
    from minitransformer import TransformerConfig as Cfg
    torch.manual_seed(0)
    model = BertForSequenceClassification(Cfg.tiny(d_model=64, d_ff=128), 2, pooling="mean").eval()
    float_model = __import__("copy").deepcopy(model)
    return M.get_peft_model(model, QLoraConfig(r=4, **kw)), float_model


def test_qlora_quantises_every_block_linear_and_wraps_it():
    from methods.qlora import QLoraLinear
    peft, _ = _qlora()
    layer = peft.base_model.bert.layers[0]
    for m in (layer.attn.q, layer.attn.k, layer.attn.v, layer.attn.o, layer.ffn.fc1, layer.ffn.fc2):
        assert isinstance(m, QLoraLinear) and isinstance(m.base_layer, Linear4bit)
    assert type(peft.base_model.classifier.original_module) is nn.Linear  # the head is not quantised
    c = peft.base_model.config
    per_layer = 4 * 4 * (c.d_model + c.d_model) + 4 * (c.d_model + c.d_ff) + 4 * (c.d_ff + c.d_model)
    assert peft.get_nb_trainable_parameters()[0] == c.n_layers * per_layer + c.d_model * 2 + 2


def test_qlora_merge_dequantises_and_requantising_reports_the_error():
    from methods.qlora import quantize_linears_
    peft, float_model = _qlora()
    x = torch.randint(3, 100, (2, 6))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    peft.eval()
    want = peft(input_ids=x).logits
    merged = peft.merge_and_unload()
    assert type(merged.bert.layers[0].attn.q) is nn.Linear  # float again: W_deq + ΔW
    torch.testing.assert_close(merged(input_ids=x).logits, want, atol=1e-5, rtol=0)
    names = [n for n, m in merged.named_modules() if isinstance(m, nn.Linear) and ".layers." in n]
    errors = quantize_linears_(merged, names)
    assert set(errors) == set(names) and all(0 < e < 0.1 for e in errors.values())
    assert isinstance(merged.bert.layers[0].attn.q, Linear4bit)
