"""Tokenizers, MLM masking, the pretraining loop, checkpoints and `load_pretrained` (fast: no real pretraining)."""

from __future__ import annotations

import pytest
import torch

from minitransformer import BertModel, GPTModel, TransformerConfig
from minitransformer.bases.checkpoints import NAMES, checkpoint_dir, load_checkpoint, save_checkpoint
from minitransformer.bases.corpus import mask_tokens, pack_blocks
from minitransformer.bases.pretrain import clm_pretrain, load_pretrained, mlm_pretrain
from minitransformer.bases.tokenizer import BERT_SPECIALS, EOT, train_byte_bpe, train_wordpiece
from minitransformer.training.train import lr_factor

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A film that is funny, moving and quite brilliant!",
    "I don't think so; where are you going tonight?",
    "And God said, Let there be light: and there was light.",
] * 20


def test_wordpiece_special_ids_roundtrip_and_determinism():
    tok = train_wordpiece(TEXTS, vocab_size=300)
    assert [tok.token_to_id(t) for t in BERT_SPECIALS] == [0, 1, 2, 3, 4]
    enc = tok.encode("The quick brown fox.")
    assert enc.ids[0] == 2 and enc.ids[-1] == 3  # [CLS] ... [SEP]
    assert tok.decode(enc.ids) == "the quick brown fox."
    assert tok.padding is None and tok.truncation is None
    assert train_wordpiece(TEXTS, vocab_size=300).to_str() == tok.to_str()


def test_byte_bpe_roundtrip_and_eot():
    tok = train_byte_bpe(TEXTS, vocab_size=400)
    assert tok.token_to_id(EOT) == 0
    for s in ("I don't think so; where are you going?", "naïve café ☃ 123"):  # unseen bytes still encode
        assert tok.decode(tok.encode(s).ids) == s
    assert train_byte_bpe(TEXTS, vocab_size=400).to_str() == tok.to_str()


def test_minilm_tokenizer_has_no_fixed_padding():
    from minitransformer.bases.datasets import RAW_DIR
    if not (RAW_DIR / "minilm" / "tokenizer.json").exists():
        pytest.skip("data/raw/minilm is missing (run `make data`)")
    from minitransformer.bases.tokenizer import minilm_tokenizer
    tok = minilm_tokenizer()
    ids = tok.encode("hello world").ids
    assert ids == [101, 7592, 2088, 102]  # [CLS] hello world [SEP], not padded to 128
    assert len(tok.encode("word " * 1000).ids) == 512


def test_mlm_masking_statistics():
    g = torch.Generator().manual_seed(0)
    V, specials = 1000, [0, 1, 2, 3, 4]
    x = torch.randint(5, V, (512, 128), generator=g)
    x[:, 0], x[:, -1], x[::2, 100:] = 2, 3, 0  # [CLS], [SEP], padding
    inputs, labels = mask_tokens(x, specials, 4, V, g)
    eligible = ~torch.isin(x, torch.tensor(specials))
    chosen = labels != -100
    assert not (chosen & ~eligible).any()  # never a special token or padding
    assert (inputs[~eligible] == x[~eligible]).all()
    assert (labels[chosen] == x[chosen]).all()
    rate = chosen.sum() / eligible.sum()
    assert abs(float(rate) - 0.15) < 0.005
    n = chosen.sum()
    to_mask = (inputs[chosen] == 4).sum() / n
    kept = (inputs[chosen] == x[chosen]).sum() / n
    randomised = 1 - to_mask - kept
    assert abs(float(to_mask) - 0.8) < 0.01
    assert abs(float(kept) - 0.1) < 0.01 + 0.001  # a random token may equal the original (p = 1/995)
    assert abs(float(randomised) - 0.1) < 0.01
    assert (inputs[chosen & (inputs != 4) & (inputs != x)] >= 5).all()  # random tokens are not specials


def _blocks(n: int = 64, T: int = 16) -> torch.Tensor:
    start = torch.arange(n)[:, None] % 40
    return 5 + (start + torch.arange(T)[None, :]) % 90  # counting sequences: learnable


def test_mlm_pretraining_reduces_loss_and_is_deterministic():
    cfg = TransformerConfig.tiny(dropout=0.0, attn_dropout=0.0)
    blocks = _blocks()
    _, a = mlm_pretrain(cfg, blocks, steps=30, batch_size=16, lr=1e-2, progress=False)
    _, b = mlm_pretrain(cfg, blocks, steps=30, batch_size=16, lr=1e-2, progress=False)
    assert a["losses"] == b["losses"]
    assert sum(a["losses"][-5:]) / 5 < sum(a["losses"][:5]) / 5 - 0.3


def test_clm_pretraining_reduces_loss_and_is_deterministic():
    cfg = TransformerConfig.tiny(norm_first=True, type_vocab_size=0)
    _, a = clm_pretrain(cfg, _blocks(), steps=30, batch_size=16, lr=1e-2, seed=3, progress=False)
    _, b = clm_pretrain(cfg, _blocks(), steps=30, batch_size=16, lr=1e-2, seed=3, progress=False)
    assert a["losses"] == b["losses"]
    assert a["losses"][-1] < a["losses"][0] - 1.0


def test_warmup_cosine_schedule():
    """The pretraining recipes' schedule is the one loop's "cosine" schedule."""
    def warmup_cosine(s, total, warmup):
        return lr_factor(s, total, warmup, "cosine")
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == 1.0
    assert warmup_cosine(10, 100, 10) == 1.0
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0)


def test_pack_blocks():
    rows = pack_blocks([[7, 8], [9], [10, 11, 12]], block=4, sep=3, bos=2)
    assert rows.tolist() == [[2, 7, 8, 3], [2, 9, 3, 10], [2, 11, 12, 3]]


@pytest.mark.parametrize("gpt", [False, True])
def test_checkpoint_roundtrip_is_safetensors(tmp_path, gpt):
    torch.manual_seed(0)
    cfg = TransformerConfig.tiny(norm_first=True, type_vocab_size=0) if gpt else TransformerConfig.tiny()
    model = (GPTModel(cfg) if gpt else BertModel(cfg)).eval()
    tok = train_byte_bpe(TEXTS, vocab_size=300) if gpt else train_wordpiece(TEXTS, vocab_size=100)
    save_checkpoint(tmp_path, model, tok, {"seed": 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "metrics.json", "model.safetensors",
                                                           "tokenizer.json"]
    raw = (tmp_path / "model.safetensors").read_bytes()
    assert not raw.startswith(b"\x80") and not raw.startswith(b"PK")  # not a pickle, not a torch zip
    loaded, tok2 = load_checkpoint(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    x = torch.randint(5, 100, (2, 7))
    out_a = model(x).logits if gpt else model(x).hidden_states
    out_b = loaded(x).logits if gpt else loaded(x).hidden_states
    assert torch.equal(out_a, out_b)
    assert tok2.to_str() == tok.to_str()


def test_load_pretrained_unknown_name():
    with pytest.raises(ValueError) as e:
        load_pretrained("bert-large")
    for name in NAMES:  # includes "minilm" and "random"
        assert name in str(e.value)


def test_quick_and_full_checkpoints_never_mix(monkeypatch):
    assert checkpoint_dir("mini-gpt", quick=True).name == "mini-gpt-quick"
    assert checkpoint_dir("mini-gpt", quick=False).name == "mini-gpt"
    monkeypatch.setenv("QUICK", "1")
    assert checkpoint_dir("mini-bert").name == "mini-bert-quick"
    monkeypatch.delenv("QUICK")
    assert checkpoint_dir("mini-bert").name == "mini-bert"


def test_mlm_head_is_saved_beside_the_trunk(tmp_path):
    from minitransformer import BertForMaskedLM
    from minitransformer.bases.pretrain import load_masked_lm
    torch.manual_seed(0)
    mlm = BertForMaskedLM(TransformerConfig.tiny())
    save_checkpoint(tmp_path, BertModel(mlm.config), train_wordpiece(TEXTS, vocab_size=100), {},
                    mlm_head=mlm.mlm_head.state_dict())
    from safetensors.torch import load_file
    head = load_file(str(tmp_path / "mlm_head.safetensors"))
    assert sorted(head) == ["bias", "dense.bias", "dense.weight", "norm.bias", "norm.weight"]  # decoder is tied
    with pytest.raises(ValueError, match="mini-bert-mlm"):
        load_masked_lm("mini-bert")
