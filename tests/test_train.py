"""The training loop: determinism, frozen parameters stay frozen, the schedule, learning, memory, batching."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from minitransformer import BertForSequenceClassification, GPTModel, TransformerConfig
from minitransformer.training.batching import EncodedDataset, encode_classification, encode_lm, make_loader
from minitransformer.training.train import History, TrainConfig, evaluate, lr_factor, train, training_memory


@pytest.fixture(autouse=True)
def one_thread():
    """D=16 models gain nothing from threads, and on a busy 2-core machine the thread pool's waiting costs
    seconds; one thread keeps these tests fast. The previous setting is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy(n: int, seed: int) -> EncodedDataset:
    """label = 1 iff token 5 appears; rows of 3..7 random tokens from 6..99 (unequal lengths: padding)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        T, y = int(torch.randint(3, 8, (1,), generator=g)), int(torch.rand(1, generator=g) < 0.5)
        x = torch.randint(6, 100, (T,), generator=g)
        if y:
            x[int(torch.randint(0, T, (1,), generator=g))] = 5
        rows.append({"input_ids": x, "labels": torch.tensor(y)})
    return EncodedDataset(rows, pad_id=0)


def bert(seed: int = 0, **kw) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(TransformerConfig.tiny(**kw), num_labels=2)


def quiet(**kw) -> TrainConfig:
    return TrainConfig(**{"progress": False, "batch_size": 16, **kw})


def test_same_seed_same_numbers_other_seed_other_numbers():
    data = toy(64, 0)
    runs = [train(bert(), data, config=quiet(max_steps=6, seed=s)).train_loss for s in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_only_trainable_parameters_change_and_on_step_sees_gradients():
    model = bert()
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("classifier")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []
    train(model, toy(64, 0), config=quiet(max_steps=5, weight_decay=0.1, lr=1e-2),
          on_step=lambda step, m: seen.append((step, m.classifier.weight.grad is not None)))
    assert seen == [(s, True) for s in range(1, 6)]  # after optimizer.step(), before zero_grad()
    for n, p in model.named_parameters():
        if n.startswith("classifier"):
            assert not torch.equal(p, before[n]), n
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"


def test_schedule_warms_up_to_lr_then_decays_to_zero():
    h = train(bert(), toy(64, 0), config=quiet(max_steps=20, warmup_ratio=0.2, lr=1e-2))
    assert len(h.lr) == 20
    assert h.lr[0] == pytest.approx(1e-2 / 4) and h.lr[3] == pytest.approx(1e-2)  # W = 4 warm-up updates
    assert all(a >= b for a, b in zip(h.lr[3:], h.lr[4:]))
    assert h.lr[-1] == pytest.approx(1e-2 / 16)  # the last update, one step before 0
    assert lr_factor(20, 20, 4, "linear") == 0.0
    assert lr_factor(20, 20, 4, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(12, 20, 4, "cosine") == pytest.approx(0.5)
    assert lr_factor(19, 20, 4, "constant") == 1.0 and lr_factor(0, 20, 0) == 1.0


def test_training_learns_the_toy_task():
    model = bert(dropout=0.0, attn_dropout=0.0)
    config = quiet(epochs=8, batch_size=32, lr=1e-2, warmup_ratio=0.1)
    h = train(model, toy(256, 0), toy(128, 1), config)
    assert h.steps == list(range(1, 65)) and [e["step"] for e in h.eval] == [8 * i for i in range(1, 9)]
    first, last = sum(h.train_loss[:5]) / 5, sum(h.train_loss[-5:]) / 5
    assert first > 0.6 and last < 0.3, (first, last)  # from chance (ln 2) to well below
    assert h.best()["eval_metric"] >= 0.9 and h.final() == h.eval[-1]
    assert h.best("eval_loss")["eval_loss"] == min(e["eval_loss"] for e in h.eval)
    assert isinstance(h.to_dict()["eval"], list) and h.ms_per_step > 0 and h.peak_memory_bytes == h.memory["total"]


def test_eval_every_and_evaluate_restores_mode():
    model = bert()
    h = train(model, toy(64, 0), toy(32, 1), quiet(max_steps=7, eval_every=3))
    assert [e["step"] for e in h.eval] == [3, 6, 7]
    model.train()
    r = evaluate(model, toy(32, 1), "accuracy", batch_size=8)
    assert model.training and set(r) == {"loss", "metric", "accuracy"} and 0 <= r["accuracy"] <= 1
    model.eval()
    evaluate(model, toy(32, 1), lambda logits, labels: float(logits.shape[0]))
    assert not model.training


def test_lm_training_reports_perplexity():
    torch.manual_seed(0)
    gpt = GPTModel(TransformerConfig.tiny(norm_first=True, type_vocab_size=0))
    blocks = EncodedDataset([{"input_ids": x, "labels": x} for x in torch.randint(0, 100, (16, 8))])
    h = train(gpt, blocks, blocks, quiet(max_steps=2), metric="perplexity")
    assert h.eval[-1]["eval_metric"] == pytest.approx(torch.tensor(h.eval[-1]["eval_loss"]).exp().item(), rel=1e-5)


def test_training_memory_closed_form_for_a_frozen_base():
    batch = toy(8, 0).collate(toy(8, 0).rows)
    full, probe = bert(), bert()
    for name, p in probe.named_parameters():
        p.requires_grad = name.startswith("classifier")
    before = {n: p.detach().clone() for n, p in full.named_parameters()}
    a, b = training_memory(full, batch), training_memory(probe, batch)
    assert all(torch.equal(p, before[n]) and p.grad is None for n, p in full.named_parameters())  # untouched
    n_full = sum(p.numel() for p in full.parameters())
    n_probe = sum(p.numel() for p in probe.parameters() if p.requires_grad)
    tensors = len(list(full.parameters())) - sum(p.requires_grad for p in probe.parameters())
    assert a["parameters"] == b["parameters"] == 4 * n_full
    assert a["gradients"] - b["gradients"] == 4 * (n_full - n_probe)
    # AdamW: two fp32 moments per parameter plus a 4-byte step counter per tensor
    assert a["optimizer_state"] - b["optimizer_state"] == 8 * (n_full - n_probe) + 4 * tensors
    assert a["activations"] > 0 and a["total"] == sum(v for k, v in a.items() if k != "total")


@pytest.mark.parametrize("field, value", [("max_steps", 0), ("epochs", 0), ("batch_size", 1.5), ("lr", 0.0),
                                          ("weight_decay", -1.0), ("warmup_ratio", 1.0), ("schedule", "step"),
                                          ("max_grad_norm", 0.0), ("eval_every", 0), ("progress", "yes")])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}="):
        TrainConfig(**{field: value})


def test_progress_auto_follows_quick_and_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("QUICK", "1")
    assert not TrainConfig().show_progress() and TrainConfig(progress=True).show_progress()
    monkeypatch.setenv("QUICK", "0")
    assert TrainConfig().show_progress()


def word_tokenizer() -> Tokenizer:
    vocab = {w: i for i, w in enumerate("[PAD] [UNK] [CLS] [SEP] a b c d e".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


def test_encode_classification_pads_each_batch_to_its_longest_row():
    ds = encode_classification(word_tokenizer(), ["a b", "a b c d e", "c"], [0, 1, 0], max_length=5)
    assert [r["input_ids"].tolist() for r in ds.rows] == [[2, 4, 5, 3], [2, 4, 5, 6, 3], [2, 6, 3]]  # [SEP] kept
    batch = ds.collate([ds[0], ds[2]])
    assert batch["input_ids"].tolist() == [[2, 4, 5, 3], [2, 6, 3, 0]]  # T = 4, not max_length
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [0, 0]
    with pytest.raises(ValueError, match="same length"):
        encode_classification(word_tokenizer(), ["a"], [0, 1])


def test_encode_lm_cuts_eos_separated_text_into_blocks():
    ds = encode_lm(word_tokenizer(), ["a b c", "d e", "a"], block_size=3)  # a b c SEP d e SEP a SEP
    assert [r["input_ids"].tolist() for r in ds.rows] == [[4, 5, 6], [3, 7, 8], [3, 4, 3]]
    assert all(torch.equal(r["labels"], r["input_ids"]) for r in ds.rows)
    ragged = EncodedDataset([{"input_ids": torch.tensor([4, 5, 6]), "labels": torch.tensor([4, 5, 6])},
                             {"input_ids": torch.tensor([7]), "labels": torch.tensor([7])}])
    assert ragged.collate(ragged.rows)["labels"].tolist() == [[4, 5, 6], [7, -100, -100]]


def test_make_loader_is_deterministic():
    data = toy(40, 0)

    def order(seed: int) -> list[list[int]]:
        loader = make_loader(data, 8, shuffle=True, seed=seed)
        return [b["labels"].tolist() + b["input_ids"][:, 0].tolist() for _ in range(2) for b in loader]

    assert order(0) == order(0) and order(0) != order(1)
    two_epochs = order(0)
    assert two_epochs[:5] != two_epochs[5:]  # a new order every epoch
    assert isinstance(History(), History)
