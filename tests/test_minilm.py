"""The real all-MiniLM-L6-v2 weights in our BertModel match `transformers.BertModel` on real sentences."""

from __future__ import annotations

import pytest
import torch

from minitransformer.bases.datasets import RAW_DIR

FOLDER = RAW_DIR / "minilm"
if not all((FOLDER / f).exists() for f in ("config.json", "model.safetensors", "tokenizer.json")):
    pytest.skip("data/raw/minilm is missing: run `make data`", allow_module_level=True)
transformers = pytest.importorskip("transformers", reason="transformers (the test oracle) is not installed")

SENTENCES = [
    "A gripping, beautifully acted drama that stays with you.",
    "The plot is thin and the jokes fall flat.",
    "And God said, Let there be light: and there was light.",
    "Where are you going tonight?",
]


@pytest.fixture(scope="module")
def models_and_batch():
    from minitransformer.bases.checkpoints import load_minilm
    ours, tok = load_minilm()
    ref = transformers.BertModel.from_pretrained(str(FOLDER), add_pooling_layer=True).eval()
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest sentence of this batch
    enc = tok.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    assert (mask == 0).any()  # the batch really has padding
    return ours, ref, ids, mask


def _embed(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' embedding: mean over real tokens, then L2 normalisation."""
    m = mask[..., None].to(h.dtype)
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)


@torch.no_grad()
def test_hidden_states_match_transformers(models_and_batch):
    ours, ref, ids, mask = models_and_batch
    a = ours(ids, attention_mask=mask).hidden_states
    b = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert (a[real] - b[real]).abs().max() <= 1e-5


@torch.no_grad()
def test_sentence_embeddings_match(models_and_batch):
    ours, ref, ids, mask = models_and_batch
    a = _embed(ours(ids, attention_mask=mask).hidden_states, mask)
    b = _embed(ref(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
    assert (a - b).abs().max() <= 1e-5
    sims = a @ a.T  # the two film reviews are closer to each other than to the verse
    assert sims[0, 1] > sims[0, 2]
