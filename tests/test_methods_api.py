"""The API beyond the contract: published counts, the exact print format, target_modules and task checks."""

import pytest
import torch

import methods as M
import minitransformer as mt
from methods.api.counting import base_params
from minitransformer import TransformerConfig as Cfg


def meta_bert_cls(cfg=None, C=2):
    with torch.device("meta"):
        return mt.BertForSequenceClassification(cfg or Cfg.bert_base(), num_labels=C)


def test_bitfit_counts_on_bert_base(capsys):
    # peft's "names containing bias" recipe: every bias, the head's weight frozen (peft's published figure)
    peft = M.get_peft_model(meta_bert_cls(), M.BitFitConfig(modules_to_save=[]))
    peft.print_trainable_parameters()
    assert capsys.readouterr().out == "trainable params: 102,914 || all params: 109,483,778 || trainable%: 0.0940\n"
    D, L, F, C = 768, 12, 3072, 2
    assert 102_914 == D + L * (4 * D + D + F + D + D) + D + C
    # the paper's code: biases + the whole classifier (wrapped as in peft, so "all" holds the head twice)
    peft = M.get_peft_model(meta_bert_cls(), M.BitFitConfig())
    assert peft.get_nb_trainable_parameters() == (104_450, 109_483_778 + 1_538)


def test_bitfit_counts_gpt2_and_bert_large_and_partial():
    with torch.device("meta"):
        gpt = mt.GPTModel(Cfg.gpt2_small())
        large = mt.BertModel(Cfg.bert_base(d_model=1024, n_heads=16, n_layers=24, d_ff=4096))
        base = mt.BertModel(Cfg.bert_base())
    t, a = M.get_peft_model(gpt, M.BitFitConfig(task_type="CAUSAL_LM")).get_nb_trainable_parameters()
    assert (t, a, f"{100 * t / a:.4f}") == (102_144, 124_439_808, "0.0821")
    cfg = M.BitFitConfig(task_type="CAUSAL_LM")  # the task type is not checked against a bare BertModel here
    assert cfg.expected_trainable_parameters(large.config, "bert") == 272_384  # the paper's "0.08 %" (BERT-large)
    assert round(100 * 272_384 / base_params(large.config, "bert"), 3) == 0.081
    partial = M.BitFitConfig(target_modules=M.bitfit.SUBSETS["paper_partial"], modules_to_save=[])
    assert partial.expected_trainable_parameters(base.config, "bert") == 46_080  # b_q + b_m2 on BERT-base


def test_full_and_probe_counts_on_bert_base():
    assert M.get_peft_model(meta_bert_cls(), M.FullFineTuningConfig()).get_nb_trainable_parameters() == (
        109_483_778, 109_483_778)
    assert M.get_peft_model(meta_bert_cls(), M.LinearProbeConfig()).get_nb_trainable_parameters()[0] == 1_538


def test_base_closed_forms_equal_live_counts():
    with torch.device("meta"):
        for make, cfg, fam in [(mt.BertModel, Cfg.bert_base(), "bert"), (mt.GPTModel, Cfg.gpt2_small(), "gpt"),
                               (mt.Transformer, Cfg.mini_seq2seq(), "seq2seq")]:
            assert sum(p.numel() for p in make(cfg).parameters()) == base_params(cfg, fam)
    assert base_params(Cfg.bert_base(), "bert", 2) == 109_483_778


def test_bitfit_subset_and_regex_targets():
    model = mt.BertForSequenceClassification(Cfg.tiny(), num_labels=2)
    peft = M.get_peft_model(model, M.BitFitConfig(target_modules=["attn.q", "ffn.fc1"], modules_to_save=[]))
    names = {n for n, p in peft.named_parameters() if p.requires_grad}
    assert names == {f"base_model.bert.layers.{i}.{m}.bias" for i in (0, 1) for m in ("attn.q", "ffn.fc1")}
    model = mt.BertForSequenceClassification(Cfg.tiny(), num_labels=2)
    peft = M.get_peft_model(model, M.BitFitConfig(target_modules=r".*layers\.0\.attn\.(q|v)", modules_to_save=[]))
    assert {n for n, p in peft.named_parameters() if p.requires_grad} == {
        "base_model.bert.layers.0.attn.q.bias", "base_model.bert.layers.0.attn.v.bias"}


def test_unknown_target_lists_the_names_that_exist():
    model = mt.BertForSequenceClassification(Cfg.tiny(), num_labels=2)
    with pytest.raises(ValueError, match=r"target_modules names \['query'\] match no Linear/LayerNorm module; "
                                         r"the Linear/LayerNorm modules are: \[.*'bert\.layers\.\*\.attn\.q'"):
        M.get_peft_model(model, M.BitFitConfig(target_modules=["query"]))
    with pytest.raises(ValueError, match=r"modules_to_save names \['score'\] match no Module"):
        M.get_peft_model(mt.BertForSequenceClassification(Cfg.tiny()), M.BitFitConfig(modules_to_save=["score"]))


def test_task_type_must_fit_the_model():
    with pytest.raises(ValueError, match="task_type='CAUSAL_LM' does not fit a BertForSequenceClassification"):
        M.get_peft_model(mt.BertForSequenceClassification(Cfg.tiny()), M.BitFitConfig(task_type="CAUSAL_LM"))
    with pytest.raises(ValueError, match="unknown method 'lora2'; registered methods: \\["):
        M.get_method("lora2")


def test_head_trains_as_a_copy_and_original_stays():
    model = mt.BertForSequenceClassification(Cfg.tiny(), num_labels=2)
    peft = M.get_peft_model(model, M.LinearProbeConfig())
    assert isinstance(peft.base_model.classifier, M.api.targets.ModulesToSave)
    assert "(classifier): ModulesToSave(" in str(peft)  # the surgery is visible in print(model)
    assert not peft.base_model.classifier.original_module.weight.requires_grad


def test_config_json_roundtrip():
    cfg = M.BitFitConfig(target_modules=["attn.q"], modules_to_save=["classifier"])
    assert M.get_method(cfg.to_dict()["peft_type"]).from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown fields \['r'\]"):
        M.BitFitConfig.from_dict({**cfg.to_dict(), "r": 8})


def test_random_subset_matches_bitfit_count_and_spreads_by_size():
    model = mt.BertForSequenceClassification(Cfg.tiny(), num_labels=2)
    bitfit_count = M.BitFitConfig(modules_to_save=[]).expected_trainable_parameters(model.config, "bert")
    peft = M.get_peft_model(model, M.RandomSubsetConfig())
    deltas = {n: p.numel() for n, p in peft.named_parameters() if n.endswith("random_subset_delta.default")}
    assert sum(deltas.values()) == bitfit_count  # every bias of the trunk, head excluded
    fc1 = sum(v for n, v in deltas.items() if "ffn.fc1" in n)
    q = sum(v for n, v in deltas.items() if "attn.q" in n)
    assert abs(fc1 / q - 4.0) < 0.2  # fc1 (D x 4D) holds 4x the entries of q (D x D)
    with pytest.raises(ValueError, match="n_params=10000000 exceeds the"):
        M.get_peft_model(mt.BertForSequenceClassification(Cfg.tiny()), M.RandomSubsetConfig(n_params=10_000_000))
