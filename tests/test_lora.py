"""LoRA (methods/lora.py): the counts of the paper's and `peft`'s geometries, `peft`'s exact summary line, the
low-rank update against its equation, explicit and idempotent merging (never a side effect of train/eval),
named adapters, rsLoRA, and target selection. The registry-wide contract (no-op at init, gradients, save/load,
disable_adapter) is in test_contract.py."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import methods as M
from methods.api.counting import linear_table
from methods.lora import LoraConfig, LoraLinear
from minitransformer import BertForSequenceClassification, GPTForSequenceClassification, GPTModel, Transformer
from minitransformer import TransformerConfig as Cfg


@pytest.mark.parametrize("make, num_labels, family", [
    (lambda: BertForSequenceClassification(Cfg.tiny(), 3), 3, "bert"),
    (lambda: BertForSequenceClassification(Cfg.tiny(), 3, pooling="mean"), 3, "bert"),
    (lambda: GPTForSequenceClassification(Cfg.tiny(norm_first=True, type_vocab_size=0), 2), 2, "gpt"),
    (lambda: GPTModel(Cfg.tiny(norm_first=True, type_vocab_size=0)), None, "gpt"),
    (lambda: Transformer(Cfg.mini_seq2seq(d_model=16, d_ff=32)), None, "seq2seq"),
])
def test_linear_table_is_every_linear_of_the_live_model(make, num_labels, family):
    model = make()
    live = [(n, m.in_features, m.out_features) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    pooler = getattr(getattr(model, "bert", None), "pooler", 0) is not None
    assert sorted(linear_table(model.config, family, num_labels, pooler)) == sorted(live)


def meta_lora(config, cls=BertForSequenceClassification, **lora):
    with torch.device("meta"):
        return M.get_peft_model(cls(config, 2), LoraConfig(task_type="SEQ_CLS", **lora))


def test_bert_base_q_v_r8_counts_and_peft_summary_line(capsys):
    peft = meta_lora(Cfg.bert_base())
    assert peft.get_nb_trainable_parameters() == (296_450, 109_780_228)  # 294,912 LoRA + 1,538 head
    c = Cfg.bert_base()
    assert LoraConfig().expected_trainable_parameters(c, "bert") == 2 * c.n_layers * 8 * (2 * c.d_model) == 294_912
    peft.print_trainable_parameters()
    assert capsys.readouterr().out.strip() == \
        "trainable params: 296,450 || all params: 109,780,228 || trainable%: 0.2700"


def test_gpt2_small_q_v_r8():
    assert LoraConfig(task_type="CAUSAL_LM").expected_trainable_parameters(Cfg.gpt2_small(), "gpt") == 294_912
    with torch.device("meta"):
        peft = M.get_peft_model(GPTModel(Cfg.gpt2_small()), LoraConfig(task_type="CAUSAL_LM"))
    assert peft.get_nb_trainable_parameters()[0] == 294_912


def test_count_follows_targets_rank_and_regex():
    c = Cfg.tiny()
    D, F, L = c.d_model, c.d_ff, c.n_layers
    all_linear = LoraConfig(r=4, target_modules=["attn.q", "attn.k", "attn.v", "attn.o", "ffn.fc1", "ffn.fc2"])
    assert all_linear.expected_trainable_parameters(c, "bert", 2, False) == L * 4 * (4 * 2 * D + 2 * (D + F))
    regex = LoraConfig(r=2, target_modules=r"bert\.layers\.0\.ffn\.fc1")
    assert regex.expected_trainable_parameters(c, "bert", 2, False) == 2 * (D + F)
    model = BertForSequenceClassification(c, 2, pooling="mean")
    assert M.get_peft_model(model, regex).get_nb_trainable_parameters()[0] == 2 * (D + F) + D * 2 + 2


def test_the_update_is_its_equation_and_a_noop_at_init():
    torch.manual_seed(0)
    base = nn.Linear(12, 10)
    layer = LoraLinear(copy.deepcopy(base))
    layer.update_layer("default", r=3, lora_alpha=6.0)
    layer.set_adapter("default")
    x = torch.randn(5, 7, 12)
    assert torch.equal(layer(x), base(x))  # B = 0
    assert not layer.lora_A["default"].weight.eq(0).all()  # A is random, so B's gradient is not zero
    bound = 1 / math.sqrt(12)  # kaiming-uniform with a = √5 on fan_in 12: U(-1/√in, 1/√in)
    assert layer.lora_A["default"].weight.abs().max() <= bound
    nn.init.normal_(layer.lora_B["default"].weight)
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight  # (r, in), (out, r)
    want = x @ base.weight.T + base.bias + (6.0 / 3) * (x @ A.T @ B.T)  # W0 x + (α/r) B A x
    torch.testing.assert_close(layer(x), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(layer.delta_weight("default"), 2.0 * B @ A)


def test_rslora_scales_by_alpha_over_sqrt_r():
    layer = LoraLinear(nn.Linear(8, 8))
    layer.update_layer("a", r=16, lora_alpha=8.0)
    layer.update_layer("b", r=16, lora_alpha=8.0, use_rslora=True)
    assert layer.scaling == {"a": 0.5, "b": 2.0}


def _trained_peft(dropout: float = 0.0):
    torch.manual_seed(0)
    # no dropout in the base, so that train-mode outputs are deterministic and can be compared
    model = BertForSequenceClassification(Cfg.tiny(dropout=0.0, attn_dropout=0.0), 2, pooling="mean").eval()
    peft = M.get_peft_model(model, LoraConfig(r=4, lora_dropout=dropout))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    x = torch.randint(3, Cfg.tiny().vocab_size, (3, 7))
    return peft, x


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_merge_is_explicit_idempotent_and_exact_in_train_and_eval_mode(mode):
    peft, x = _trained_peft()
    getattr(peft, mode)()
    before = peft(input_ids=x).logits
    weight = peft.base_model.bert.layers[0].attn.q.get_base_layer().weight.detach().clone()
    peft.merge_adapter()
    peft.merge_adapter()  # idempotent: ΔW is added once
    merged_weight = peft.base_model.bert.layers[0].attn.q.get_base_layer().weight
    torch.testing.assert_close(merged_weight, weight + peft.base_model.bert.layers[0].attn.q.delta_weight("default"))
    torch.testing.assert_close(peft(input_ids=x).logits, before, atol=1e-5, rtol=0)
    peft.train()
    peft.eval()  # switching modes never merges or unmerges
    assert all(layer.merged_adapters == ["default"] for _, layer in M.api.layers.wrappers(peft))
    peft.unmerge_adapter()
    peft.unmerge_adapter()
    torch.testing.assert_close(peft.base_model.bert.layers[0].attn.q.get_base_layer().weight, weight, atol=1e-6, rtol=0)
    peft.eval()
    peft.train()
    assert not any(layer.merged for _, layer in M.api.layers.wrappers(peft))


def test_merge_and_unload_returns_the_plain_model():
    peft, x = _trained_peft()
    peft.eval()
    want = peft(input_ids=x).logits
    plain = peft.merge_and_unload()
    assert type(plain.bert.layers[0].attn.q) is nn.Linear and "lora" not in str(plain)
    torch.testing.assert_close(plain(input_ids=x).logits, want, atol=1e-5, rtol=0)


def test_dropout_only_on_the_adapter_branch_and_only_in_training():
    peft, x = _trained_peft(dropout=0.5)
    peft.eval()
    a = peft(input_ids=x).logits
    torch.testing.assert_close(peft(input_ids=x).logits, a)  # eval: deterministic
    peft.train()
    torch.manual_seed(1)
    b = peft(input_ids=x).logits
    torch.manual_seed(2)
    assert not torch.allclose(b, peft(input_ids=x).logits)


def test_named_adapters_switch_and_disable():
    peft, x = _trained_peft()
    peft.add_adapter("other", LoraConfig(r=2, target_modules=["attn.v"]))
    peft.eval()
    first = peft(input_ids=x).logits
    peft.set_adapter("other")
    assert torch.equal(peft.base_model.bert.layers[0].attn.q(torch.ones(1, Cfg.tiny().d_model)),
                       peft.base_model.bert.layers[0].attn.q.get_base_layer()(torch.ones(1, Cfg.tiny().d_model)))
    assert not torch.allclose(peft(input_ids=x).logits, first)
    assert {n.split(".")[-2] for n, p in peft.named_parameters() if p.requires_grad and "lora" in n} == {"other"}
    peft.set_adapter("default")
    torch.testing.assert_close(peft(input_ids=x).logits, first, atol=0, rtol=0)
    state = peft.adapter_state_dict()
    assert "base_model.bert.layers.0.attn.q.lora_A.weight" in state  # saved without the adapter name, as in peft
    assert state["base_model.bert.layers.0.attn.q.lora_A.weight"].shape == (4, Cfg.tiny().d_model)


@pytest.mark.parametrize("kwargs, field", LoraConfig.invalid_examples)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LoraConfig(**kwargs)


def test_unknown_target_lists_the_linear_layers():
    model = BertForSequenceClassification(Cfg.tiny(), 2)
    with pytest.raises(ValueError, match=r"target_modules names \['attn.query'\].*attn\.q"):
        M.get_peft_model(model, LoraConfig(target_modules=["attn.query"]))
