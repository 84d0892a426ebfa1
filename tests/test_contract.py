"""The contract every registered method satisfies (DESIGN.md §5). A method added to the
registry is checked here with no extra code: counts, every trainable tensor gets a gradient, frozen weights stay,
shapes, no-op at init, saved keys, save/load, resume, disable_adapter, merging, and clear errors for bad configs."""

import copy

import pytest
import torch

import methods as M
import minitransformer as mt
from minitransformer import TransformerConfig as Cfg

BASES = {  # task type -> (model factory, a batch maker)
    "SEQ_CLS/bert": ("SEQ_CLS", lambda: mt.BertForSequenceClassification(Cfg.tiny(), num_labels=3)),
    # mean pooling, as every notebook and the comparison use: no pooler is built, so none is counted
    "SEQ_CLS/bert-mean": ("SEQ_CLS", lambda: mt.BertForSequenceClassification(Cfg.tiny(), num_labels=3, pooling="mean")),
    "SEQ_CLS/gpt": ("SEQ_CLS", lambda: mt.GPTForSequenceClassification(Cfg.tiny(norm_first=True, type_vocab_size=0), num_labels=3)),
    "CAUSAL_LM/gpt": ("CAUSAL_LM", lambda: mt.GPTModel(Cfg.tiny(norm_first=True, type_vocab_size=0))),
    "SEQ_2_SEQ_LM/seq2seq": ("SEQ_2_SEQ_LM", lambda: mt.Transformer(Cfg.mini_seq2seq(d_model=16, d_ff=32))),
}
CASES = [(name, base) for name, cls in sorted(M.METHODS.items()) for base in BASES if BASES[base][0] in cls.task_types]


def batch(task: str, model) -> dict:
    g = torch.Generator().manual_seed(0)
    V = model.config.vocab_size
    x = torch.randint(3, V, (4, 9), generator=g)
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[1, 6:] = 0
    if task == "SEQ_CLS":
        return dict(input_ids=x, attention_mask=mask, labels=torch.tensor([0, 1, 2, 1]))
    if task == "CAUSAL_LM":
        return dict(input_ids=x, attention_mask=mask, labels=x.masked_fill(mask == 0, -100))
    return dict(input_ids=x, attention_mask=mask, labels=torch.randint(3, V, (4, 5), generator=g))


def build(method: str, base: str, seed: int = 0):
    task, make = BASES[base]
    torch.manual_seed(seed)
    model = make().eval()  # eval: no dropout, so outputs can be compared exactly
    pristine = copy.deepcopy(model)
    config = M.get_method(method).example(task)
    return task, model, pristine, config


def step(model, data, lr=0.05):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model(**data).loss.backward()
    opt.step()
    opt.zero_grad()


def _without_gradient(model, data, names) -> list[str]:
    """Which of `names` get no (or an all-zero) gradient from one backward pass of the training loss."""
    model.zero_grad(set_to_none=True)
    model.training_loss(data).backward()
    params = dict(model.named_parameters())
    missing = [n for n in names if params[n].grad is None or not params[n].grad.any()]
    model.zero_grad(set_to_none=True)
    return missing


@pytest.mark.parametrize("method, base", CASES)
def test_counts_frozen_shapes_noop(method, base):
    task, model, pristine, config = build(method, base)
    expected = M.expected_trainable_parameters(model, config)
    peft = M.get_peft_model(model, config)
    trainable, total = peft.get_nb_trainable_parameters()
    live = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert trainable == live == expected > 0
    data = batch(task, pristine)
    base_out = pristine(**data).logits
    out = peft(**data).logits
    want = list(base_out.shape)
    want[1:2] = [want[1] + config.extra_positions()] if len(want) > 2 else want[1:2]  # a causal LM's virtual tokens
    assert list(out.shape) == want
    if config.noop_at_init:
        torch.testing.assert_close(out, base_out, atol=0, rtol=0)
    frozen = {n: p.detach().clone() for n, p in peft.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in peft.named_parameters() if p.requires_grad}
    # trainable means trained: every tensor counted as trainable receives a non-zero gradient, on the first batch
    # or, when a zero-initialised partner blocks it at init (LoRA's A behind B = 0), once one step has moved that
    # partner. A tensor that never runs (an unused pooler) gets none in either pass.
    peft.train()
    no_grad = _without_gradient(peft, data, list(trained))
    if no_grad:
        probe = copy.deepcopy(peft)
        step(probe, data)
        probe.train()
        no_grad = _without_gradient(probe, data, no_grad)
    assert not no_grad, f"counted as trainable but no gradient, even after one step: {no_grad}"
    peft.eval()
    step(peft, data)
    now = dict(peft.named_parameters())
    assert all(torch.equal(now[n], v) for n, v in frozen.items()), "a frozen parameter moved"
    assert any(not torch.equal(now[n], v) for n, v in trained.items()), "no trainable parameter moved"


@pytest.mark.parametrize("method, base", CASES)
def test_saved_keys_save_load_resume(method, base, tmp_path):
    task, model, pristine, config = build(method, base)
    peft = M.get_peft_model(model, config)
    # the filter, recomputed from names alone (not from requires_grad): the method's parameters after its
    # surgery, the trained copies of the wrapped heads (never their frozen originals) and the method's own
    # module (input-side methods) -- saved without the adapter name "default", as in peft
    strip = lambda n: ".".join(p for p in n.split(".") if p != "default")  # noqa: E731
    want = {strip("base_model." + n) for n, _ in peft.base_model.named_parameters()
            if ".modules_to_save." in n or (config.is_trainable(n) and ".original_module." not in n)}
    want |= {strip(n) for n, _ in peft.named_parameters() if n.startswith("adapter_modules.")}
    data = batch(task, pristine)
    step(peft, data)
    peft.eval()
    peft.save_pretrained(tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "adapter_model.safetensors"), "pt") as f:
        saved = set(f.keys())
    assert saved == want
    assert saved == {strip(n) for n in peft.adapter_keys()}
    loaded = M.PeftModel.from_pretrained(copy.deepcopy(pristine), tmp_path)
    assert loaded.get_nb_trainable_parameters()[0] == 0 and not loaded.training
    torch.testing.assert_close(loaded(**data).logits, peft(**data).logits, atol=0, rtol=0)
    resumed = M.PeftModel.from_pretrained(copy.deepcopy(pristine), tmp_path, is_trainable=True)
    assert resumed.get_nb_trainable_parameters() == peft.get_nb_trainable_parameters()
    before = {n: p.detach().clone() for n, p in resumed.named_parameters() if p.requires_grad}
    step(resumed, data)
    assert any(not torch.equal(p, before[n]) for n, p in resumed.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("method, base", CASES)
def test_disable_adapter_and_merge(method, base):
    task, model, pristine, config = build(method, base)
    peft = M.get_peft_model(model, config)
    data = batch(task, pristine)
    # the base that disable_adapter() must give back: the original, or the one prepare() made (QLoRA: 4-bit),
    # read before training while the adapter is still a no-op on it
    base_out = peft(**data).logits if config.alters_base else pristine(**data).logits
    step(peft, data, lr=0.1)
    peft.eval()
    adapted = peft(**data).logits
    with peft.disable_adapter():
        torch.testing.assert_close(peft(**data).logits, base_out, atol=0, rtol=0)
    torch.testing.assert_close(peft(**data).logits, adapted, atol=0, rtol=0)  # back on after the block
    if config.can_merge:
        merged = peft.merge_and_unload()
        assert type(merged) is type(pristine)
        assert not any(isinstance(m, M.api.targets.ModulesToSave) for m in merged.modules())
        torch.testing.assert_close(merged(**data).logits, adapted, atol=1e-5, rtol=0)
    else:
        with pytest.raises(ValueError, match="cannot be merged"):
            peft.merge_and_unload()


@pytest.mark.parametrize("method", sorted(M.METHODS))
def test_bad_configs_name_the_field(method):
    cls = M.get_method(method)
    assert cls.invalid_examples, f"{method} lists no invalid examples"
    for kwargs, field in cls.invalid_examples:
        with pytest.raises(ValueError, match=field):
            cls(**kwargs)


def test_loading_into_another_shape_lists_mismatched_keys(tmp_path):
    base = mt.BertForSequenceClassification(Cfg.tiny(), num_labels=2)
    M.get_peft_model(base, M.BitFitConfig()).save_pretrained(tmp_path)
    wider = mt.BertForSequenceClassification(Cfg.tiny(d_model=32, n_heads=2), num_labels=2)
    with pytest.raises(ValueError, match=r"shape mismatches \(\d+\): .*layers\.0\.attn\.q\.bias: model \(32,\) vs saved \(16,\)"):
        M.PeftModel.from_pretrained(wider, tmp_path)
