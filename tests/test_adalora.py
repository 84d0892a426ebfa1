"""AdaLoRA (methods/adalora.py): `peft`'s count, the cubic budget trace the issue pins, the orthogonality term,
the allocator called by the training loop's step hook (the budget reached, the pattern frozen), and the pruned
ranks surviving save and load. The registry-wide contract is in test_contract.py."""

from __future__ import annotations

import copy

import pytest
import torch

import methods as M
from methods.adalora import AdaLoraConfig, AdaLoraLinear, budget_schedule
from minitransformer import BertForSequenceClassification
from minitransformer import TransformerConfig as Cfg
from minitransformer.training import EncodedDataset, TrainConfig, train


def test_bert_base_count_is_peft():
    c = Cfg.bert_base()
    assert AdaLoraConfig().expected_trainable_parameters(c, "bert") == 24 * 12 * (768 + 1 + 768) == 442_656
    with torch.device("meta"):
        peft = M.get_peft_model(BertForSequenceClassification(c, 2), AdaLoraConfig())
    assert peft.get_nb_trainable_parameters()[0] == 444_194


@pytest.mark.parametrize("step, budget", [(0, 96), (10, 96), (11, 94), (15, 89), (30, 75), (50, 66), (80, 64),
                                          (81, 64), (100, 64)])
def test_budget_trace(step, budget):
    # init 96, target 64, t_init 10, t_final 20, ΔT 5, T 100: the trace peft's allocator gives
    assert budget_schedule(step, 96, 64, 10, 20, 100, 5)[0] == budget


def test_masking_happens_every_delta_t_in_between_and_always_at_the_end():
    masks = [t for t in range(0, 101) if budget_schedule(t, 96, 64, 10, 20, 100, 5)[1]]
    assert masks[:3] == [15, 20, 25] and 81 in masks and 11 not in masks


def _layer(seed=0):
    torch.manual_seed(seed)
    layer = AdaLoraLinear(torch.nn.Linear(10, 6))
    layer.update_layer("default", init_r=4, lora_alpha=8.0)
    layer.set_adapter("default")
    return layer


def test_orthogonality_is_zero_for_orthonormal_factors_and_the_update_is_its_equation():
    layer = _layer()
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(10, 4))  # orthonormal columns
        layer.lora_A["default"].copy_(q.T)  # Q Qᵀ = I
        p, _ = torch.linalg.qr(torch.randn(6, 4))
        layer.lora_B["default"].copy_(p)  # Pᵀ P = I
    assert layer.orthogonality("default") < 1e-5
    x = torch.randn(3, 10)
    assert torch.equal(layer(x), layer.base_layer(x))  # λ = 0
    with torch.no_grad():
        layer.lora_E["default"].copy_(torch.tensor([[1.0], [0.0], [2.0], [-1.0]]))
    P, lam, Q = layer.lora_B["default"], layer.lora_E["default"].view(-1), layer.lora_A["default"]
    want = layer.base_layer(x) + x @ (P @ torch.diag(lam) @ Q).T * (8.0 / 4)
    torch.testing.assert_close(layer(x), want, atol=1e-5, rtol=0)


def test_the_penalty_is_added_by_the_loss_hook():
    model = BertForSequenceClassification(Cfg.tiny(), 2, pooling="mean")
    peft = M.get_peft_model(model, AdaLoraConfig(init_r=4, target_r=2))
    batch = dict(input_ids=torch.randint(3, 100, (2, 5)), labels=torch.tensor([0, 1]))
    peft.eval()
    plain = peft(**batch).loss
    layers = [m for m in peft.modules() if isinstance(m, AdaLoraLinear)]
    penalty = sum(m.orthogonality("default") for m in layers) / (2 * len(layers))
    torch.testing.assert_close(peft.training_loss(batch), plain + 0.5 * penalty)


def _train(config, steps=30, seed=0):
    torch.manual_seed(seed)
    model = BertForSequenceClassification(Cfg.tiny(), 2, pooling="mean")
    peft = M.get_peft_model(model, config)
    g = torch.Generator().manual_seed(seed)
    data = EncodedDataset([{"input_ids": torch.randint(3, 100, (7,), generator=g), "labels": torch.tensor(i % 2)}
                           for i in range(64)])
    train(peft, data, config=TrainConfig(max_steps=steps, batch_size=8, lr=1e-2, seed=seed, progress=False))
    return peft


def test_the_training_loop_runs_the_allocator_to_the_target_budget(tmp_path):
    config = AdaLoraConfig(init_r=4, target_r=2, tinit=3, tfinal=5, deltaT=2)
    peft = _train(config, steps=30)
    layers = [m for m in peft.modules() if isinstance(m, AdaLoraLinear)]
    kept = sum(int((m.lora_E["default"] != 0).sum()) for m in layers)
    assert kept == 2 * len(layers)  # target_r · number of targets
    assert sum(config.final_ranks().values()) == kept and len(config.rank_pattern) == len(layers)
    # save and load: the pruned ranks come back (the λ are zero where they were pruned) and the pattern with them
    peft.save_pretrained(tmp_path)
    torch.manual_seed(0)
    fresh = BertForSequenceClassification(Cfg.tiny(), 2, pooling="mean")
    loaded = M.PeftModel.from_pretrained(fresh, tmp_path)
    assert loaded.active_peft_config.rank_pattern == config.rank_pattern
    loaded_layers = [m for m in loaded.modules() if isinstance(m, AdaLoraLinear)]
    assert [int((m.lora_E["default"] != 0).sum()) for m in loaded_layers] == \
        [int((m.lora_E["default"] != 0).sum()) for m in layers]


def test_a_total_step_that_disagrees_with_the_loop_is_an_error():
    with pytest.raises(ValueError, match="total_step=50.*runs 30 steps"):
        _train(AdaLoraConfig(init_r=4, target_r=2, total_step=50), steps=30)


@pytest.mark.parametrize("kwargs, field", AdaLoraConfig.invalid_examples)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AdaLoraConfig(**kwargs)


def test_copy_of_config_keeps_the_pattern():
    c = AdaLoraConfig(rank_pattern={"a": [True, False]})
    assert AdaLoraConfig.from_dict(c.to_dict()).rank_pattern == {"a": [True, False]}
    assert copy.deepcopy(c).rank_pattern == c.rank_pattern


def test_scores_and_masks_live_on_the_adapters_device():
    """A model on another device (meta here, a GPU in use) gets its empty scores there, and masking works there."""
    with torch.device("meta"):
        peft = M.get_peft_model(BertForSequenceClassification(Cfg.tiny(), 2),
                              AdaLoraConfig(task_type="SEQ_CLS", init_r=4, target_r=2))
    config = peft.active_peft_config
    layers = [(n, m) for n, m in peft.named_modules() if isinstance(m, AdaLoraLinear)]
    assert layers[0][1].triplet_scores("default").device.type == "meta"
    config.rank_pattern = {n: [True, False, True, False] for n, _ in layers}
    config._apply_pattern(layers, "default")  # no device mismatch
