"""The method API's extension points, each exercised by a toy method on the tiny models (DESIGN.md §5, "Hooks"):
the loss hook and the step hook through the one training loop, the wrapper-layer base with two wrappers on one
Linear, named adapters, composed configs, task types enforced by `validate`, and the registry's completeness."""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

import methods as M
import minitransformer as mt
from methods.api.layers import AdapterLayer, add_to_layer
from methods.api.targets import find_targets
from minitransformer import TransformerConfig as Cfg
from minitransformer.training import EncodedDataset, TrainConfig, train


def tiny_bert(seed: int = 0):
    torch.manual_seed(seed)
    return mt.BertForSequenceClassification(Cfg.tiny(), num_labels=3, pooling="mean").eval()


def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(3, 100, (4, 9), generator=g)
    return dict(input_ids=x, attention_mask=torch.ones(4, 9, dtype=torch.long), labels=torch.tensor([0, 1, 2, 1]))


def dataset(n: int = 16) -> EncodedDataset:
    g = torch.Generator().manual_seed(1)
    return EncodedDataset([{"input_ids": torch.randint(3, 100, (7,), generator=g), "labels": torch.tensor(i % 3)}
                           for i in range(n)])


# ---- toy methods (registered only inside the tests that need them) -------------------------------------------
@dataclass
class TwoPassConfig(M.LinearProbeConfig):
    """A toy loss hook (two forward passes, the mean of their losses) and a toy step counter."""

    calls: ClassVar[dict] = {}

    def loss(self, model, batch):
        self.calls["loss"] = self.calls.get("loss", 0) + 1
        return 0.5 * (model(**batch).loss + model(**batch).loss)

    def on_step(self, model, step, total_steps):
        self.calls.setdefault("steps", []).append((step, total_steps))


class ScaleLayer(AdapterLayer):
    """A toy multiplicative wrapper, y <- y ⊙ s (as (IA)³ does), to stack on another wrapper."""

    adapter_attributes = ("toy_scale",)

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.toy_scale = nn.ParameterDict()

    def update_layer(self, adapter_name: str) -> None:
        self.toy_scale[adapter_name] = nn.Parameter(torch.ones(self.weight.shape[0]))

    def apply_adapter(self, adapter_name, x, result):
        return result * self.toy_scale[adapter_name]


@dataclass
class ToyScaleConfig(M.PeftConfig):
    target_modules: list[str] | None = None

    def prepare(self, model, adapter_name="default"):
        for name in find_targets(model, self.target_modules or ["attn.q"]):
            add_to_layer(model, name, ScaleLayer, adapter_name)

    def is_trainable(self, name):
        return "toy_scale" in name.split(".")

    def expected_trainable_parameters(self, model_config, family, num_labels=None, pooler=True):
        return model_config.n_layers * model_config.d_model


@dataclass
class PairConfig(M.PeftConfig):
    """A toy composed method: two sub-configs applied one after the other (as MAM and UniPELT will)."""

    first: M.PeftConfig | None = None
    second: M.PeftConfig | None = None

    def prepare(self, model, adapter_name="default"):
        self.first.prepare(model, adapter_name)
        self.second.prepare(model, adapter_name)

    def is_trainable(self, name):
        return self.first.is_trainable(name) or self.second.is_trainable(name)


@pytest.fixture
def toys():
    added = []
    for name, cls in (("toy_two_pass", TwoPassConfig), ("toy_scale", ToyScaleConfig), ("toy_pair", PairConfig)):
        M.register(name)(cls)
        added.append(name)
    TwoPassConfig.calls.clear()
    yield
    for name in added:
        M.METHODS.pop(name)


# ---- the loss and step hooks: called by the one training loop --------------------------------------------------
def test_loss_and_step_hooks_run_through_the_training_loop(toys):
    peft = M.get_peft_model(tiny_bert(), TwoPassConfig())
    train(peft, dataset(), config=TrainConfig(max_steps=5, batch_size=4, progress=False))
    assert TwoPassConfig.calls["loss"] == 5  # the hook computed every step's loss (two passes each)
    assert TwoPassConfig.calls["steps"] == [(s, 5) for s in range(1, 6)]  # after every optimizer step


def test_step_hook_sees_the_gradients():
    seen = []

    @dataclass
    class GradReader(M.LinearProbeConfig):
        def on_step(self, model, step, total_steps):
            seen.append(all(p.grad is not None for p in model.parameters() if p.requires_grad))

    train(M.get_peft_model(tiny_bert(), GradReader()), dataset(), config=TrainConfig(max_steps=2, batch_size=4,
                                                                                     progress=False))
    assert seen == [True, True]  # AdaLoRA's allocator reads |w * dL/dw| here


# ---- the wrapper-layer base: two methods on one Linear ----------------------------------------------------------
def test_two_wrappers_on_one_linear_see_through_each_other(toys):
    model = tiny_bert()
    pristine = copy.deepcopy(model)
    before = find_targets(model, ["attn.q"])
    peft = M.get_peft_model(model, M.RandomSubsetConfig(target_modules=["attn.q"], n_params=40))
    assert find_targets(model, ["attn.q"]) == before  # the wrapped q is still found as `attn.q`
    ToyScaleConfig().prepare(model, "default")  # a second method wraps the same Linear
    peft.set_adapter("default")  # activates "default" in every wrapper, the new one included
    q = model.bert.layers[0].attn.q
    assert isinstance(q, ScaleLayer) and isinstance(q.base_layer, M.random_subset.SparseDeltaLinear)
    assert type(q.get_base_layer()) is nn.Linear and torch.equal(q.weight, pristine.bert.layers[0].attn.q.weight)
    with torch.no_grad():
        q.toy_scale["default"].fill_(2.0)
        q.base_layer.random_subset_delta["default"].fill_(0.5)
    x = torch.randn(3, 16)
    inner = q.base_layer
    expected = (x @ (inner.weight + inner.delta_weight("default")).T + inner.bias) * 2.0
    torch.testing.assert_close(q(x), expected)
    assert "toy_scale" in str(peft) and "random_subset_delta" in str(peft)  # the surgery shows in print(model)


def test_merge_and_unmerge_are_explicit_and_idempotent():
    model = tiny_bert()
    peft = M.get_peft_model(model, M.RandomSubsetConfig(n_params=200))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "random_subset_delta" in n:
                p.normal_()
    data = batch()
    ref = peft(**data).logits
    W0 = model.bert.layers[0].attn.q.weight.clone()
    peft.merge_adapter()
    peft.merge_adapter()  # idempotent: merged once
    assert not torch.equal(model.bert.layers[0].attn.q.weight, W0)
    for mode in (peft.train, peft.eval):  # never a side effect of .train()/.eval()
        mode()
        assert model.bert.layers[0].attn.q.merged_adapters == ["default"]
    peft.eval()
    torch.testing.assert_close(peft(**data).logits, ref, atol=1e-5, rtol=0)
    peft.unmerge_adapter()
    peft.unmerge_adapter()
    torch.testing.assert_close(model.bert.layers[0].attn.q.weight, W0, atol=1e-6, rtol=0)
    torch.testing.assert_close(peft(**data).logits, ref, atol=1e-5, rtol=0)


# ---- named adapters ---------------------------------------------------------------------------------------------
def test_named_adapters_switch_train_save_and_load(tmp_path):
    pristine = tiny_bert()
    peft = M.get_peft_model(copy.deepcopy(pristine), M.RandomSubsetConfig(n_params=100, seed=1), adapter_name="a")
    peft.add_adapter("b", M.RandomSubsetConfig(n_params=100, seed=2))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "random_subset_delta" in n:
                p.normal_(generator=torch.Generator().manual_seed(len(n)))
    data = batch()
    out_a = peft(**data).logits
    peft.set_adapter("b")
    out_b = peft(**data).logits
    assert not torch.allclose(out_a, out_b)
    trainable = [n for n, p in peft.named_parameters() if p.requires_grad]
    assert trainable and all("b" in n.split(".") for n in trainable)  # only the active adapter trains
    assert peft.adapter_keys("a") and set(peft.adapter_keys("a")).isdisjoint(peft.adapter_keys("b"))
    with peft.disable_adapter():
        torch.testing.assert_close(peft(**data).logits, pristine(**data).logits, atol=0, rtol=0)
    peft.save_pretrained(tmp_path / "b", adapter_name="b")
    loaded = M.PeftModel.from_pretrained(copy.deepcopy(pristine), tmp_path / "b")  # loads as "default"
    torch.testing.assert_close(loaded(**data).logits, out_b, atol=0, rtol=0)
    peft.set_adapter("a")
    peft.delete_adapter("b")
    torch.testing.assert_close(peft(**data).logits, out_a, atol=0, rtol=0)
    assert not any("b" in n.split(".") for n, _ in peft.named_parameters())


def test_named_adapter_errors_name_the_problem():
    peft = M.get_peft_model(tiny_bert(), M.RandomSubsetConfig(n_params=50))
    with pytest.raises(ValueError, match="adapter_name='default' exists already"):
        peft.add_adapter("default", M.RandomSubsetConfig(n_params=50))
    with pytest.raises(ValueError, match="adapter_name='q' is also the name of a module"):
        peft.add_adapter("q", M.RandomSubsetConfig(n_params=50))
    with pytest.raises(ValueError, match="bitfit trains the base model's own parameters"):
        peft.add_adapter("bias", M.BitFitConfig())
    with pytest.raises(ValueError, match="set_adapter: unknown adapter 'nope'"):
        peft.set_adapter("nope")
    with pytest.raises(ValueError, match="delete_adapter: 'default' is active"):
        peft.delete_adapter("default")


# ---- composed configs, task types, the registry -------------------------------------------------------------------
def test_composed_config_round_trip_and_training(toys, tmp_path):
    cfg = PairConfig(first=M.RandomSubsetConfig(n_params=30, target_modules=["attn.v"]), second=ToyScaleConfig())
    d = cfg.to_dict()
    assert d["first"]["peft_type"] == "random_subset" and d["second"]["peft_type"] == "toy_scale"
    again = PairConfig.from_dict(d)
    assert again == cfg and isinstance(again.first, M.RandomSubsetConfig)
    pristine = tiny_bert()
    peft = M.get_peft_model(copy.deepcopy(pristine), cfg)
    names = {n for n, p in peft.named_parameters() if p.requires_grad}
    assert any("random_subset_delta" in n for n in names) and any("toy_scale" in n for n in names)
    peft.save_pretrained(tmp_path)
    loaded = M.PeftModel.from_pretrained(copy.deepcopy(pristine), tmp_path)
    assert isinstance(loaded.active_peft_config.first, M.RandomSubsetConfig)
    torch.testing.assert_close(loaded(**batch()).logits, peft(**batch()).logits, atol=0, rtol=0)


def test_validate_enforces_task_types_and_sub_configs(toys):
    with pytest.raises(ValueError, match=r"LinearProbeConfig.task_type='CAUSAL_LM' is not allowed; allowed: \('SEQ_CLS',\)"):
        M.LinearProbeConfig(task_type="CAUSAL_LM")
    with pytest.raises(ValueError, match="PairConfig.second.task_type='CAUSAL_LM' differs"):
        PairConfig(first=M.BitFitConfig(), second=M.BitFitConfig(task_type="CAUSAL_LM"))
    with pytest.raises(ValueError, match="got peft_type='bitfit'; allowed: 'random_subset'"):
        M.RandomSubsetConfig.from_dict({"peft_type": "bitfit"})


def test_every_registered_config_in_a_methods_file_is_in_the_registry():
    """A method file whose `@register` never runs (forgotten in methods/__init__.py) would silently escape the
    contract test: every `@register("name")` in methods/*.py must be in METHODS, with that file's class."""
    root = Path(M.__file__).parent
    found = {}
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Call) and getattr(dec.func, "id", "") == "register":
                        found[dec.args[0].value] = (path.stem, node.name)
    assert found, "no @register found: the scan is broken"
    for name, (module, cls) in found.items():
        assert name in M.METHODS, f"methods/{module}.py registers {name!r} but it is not in METHODS (import it in methods/__init__.py)"
        assert M.METHODS[name].__name__ == cls and M.METHODS[name].__module__ == f"methods.{module}"
