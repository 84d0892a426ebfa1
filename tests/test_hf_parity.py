"""Parity with Hugging Face `transformers` (the oracle): random-init reference models, converted with
`load_hf_weights`, give our outputs to max |diff| <= 1e-5."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minitransformer as mt
from minitransformer import TransformerConfig as Cfg

transformers = pytest.importorskip("transformers", reason="transformers (the dev extra) is the test oracle")

ATOL = 1e-5


def hf_bert_config(**kw):
    base = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12)
    return transformers.BertConfig(**{**base, **kw}, attn_implementation="eager")


def our_bert_config():
    return Cfg(vocab_size=100, d_model=32, n_heads=4, n_layers=2, d_ff=64, max_positions=64, type_vocab_size=2,
               activation="gelu", layer_norm_eps=1e-12, dropout=0.0, attn_dropout=0.0)


def inputs(B=3, T=9, V=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 6:] = 0  # right padding in one row
    mask[2, 4:] = 0
    segments = torch.zeros(B, T, dtype=torch.long)
    segments[:, 5:] = 1
    return x, mask, segments


def test_bert_matches_transformers():
    torch.manual_seed(0)
    ref = transformers.BertModel(hf_bert_config()).eval()
    ours = mt.BertModel(our_bert_config()).eval()
    report = mt.load_hf_weights(ours, ref.state_dict())
    assert not report["left_at_init"]
    x, mask, seg = inputs()
    with torch.no_grad():
        r = ref(input_ids=x, attention_mask=mask, token_type_ids=seg)
        o = ours(x, attention_mask=mask, token_type_ids=seg)
    real = mask.bool()
    assert (r.last_hidden_state[real] - o.hidden_states[real]).abs().max() <= ATOL
    assert (r.pooler_output - o.pooled_output).abs().max() <= ATOL


def test_bert_heads_match_transformers():
    torch.manual_seed(1)
    x, mask, seg = inputs()
    ref = transformers.BertForSequenceClassification(hf_bert_config(num_labels=3)).eval()
    ours = mt.BertForSequenceClassification(our_bert_config(), num_labels=3).eval()
    mt.load_hf_weights(ours, ref.state_dict())
    with torch.no_grad():
        assert (ref(input_ids=x, attention_mask=mask).logits - ours(x, mask).logits).abs().max() <= ATOL

    ref = transformers.BertForMaskedLM(hf_bert_config()).eval()
    ours = mt.BertForMaskedLM(our_bert_config()).eval()
    report = mt.load_hf_weights(ours, ref.state_dict())
    assert "cls.predictions.decoder.weight" in report["ignored"]  # tied, not loaded
    with torch.no_grad():
        diff = ref(input_ids=x, attention_mask=mask).logits - ours(x, mask).logits
    assert diff[mask.bool()].abs().max() <= ATOL


def hf_gpt_config(**kw):
    return transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                   activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                   attn_pdrop=0.0, attn_implementation="eager", **kw)


def our_gpt_config():
    return Cfg(vocab_size=100, d_model=32, n_heads=4, n_layers=2, d_ff=128, max_positions=64, type_vocab_size=0,
               activation="gelu_tanh", layer_norm_eps=1e-5, norm_first=True, dropout=0.0, attn_dropout=0.0)


def test_gpt2_matches_transformers_including_cache():
    torch.manual_seed(0)
    ref = transformers.GPT2LMHeadModel(hf_gpt_config()).eval()
    ours = mt.GPTModel(our_gpt_config()).eval()
    report = mt.load_hf_weights(ours, ref.state_dict())
    assert "lm_head.weight" in report["ignored"] and not report["left_at_init"]
    x, mask, _ = inputs()
    with torch.no_grad():
        r, o = ref(input_ids=x, attention_mask=mask), ours(x, attention_mask=mask)
        assert (r.logits[mask.bool()] - o.logits[mask.bool()]).abs().max() <= ATOL
        # the reference's cache continues our prefix: incremental logits agree too
        rp = ref(input_ids=x[:, :5], use_cache=True)
        op = ours(x[:, :5], use_cache=True)
        r2 = ref(input_ids=x[:, 5:], past_key_values=rp.past_key_values).logits
        o2 = ours(x[:, 5:], past_key_values=op.past_key_values).logits
        assert (r2 - o2).abs().max() <= ATOL


def test_gpt2_classifier_matches_transformers():
    torch.manual_seed(2)
    ref = transformers.GPT2ForSequenceClassification(hf_gpt_config(num_labels=3, pad_token_id=0)).eval()
    ours = mt.GPTForSequenceClassification(our_gpt_config(), num_labels=3).eval()
    mt.load_hf_weights(ours, ref.state_dict())
    x, mask, _ = inputs()
    x = x.masked_fill(mask == 0, 0)  # the reference finds the last token by pad id, ours by the mask
    with torch.no_grad():
        assert (ref(input_ids=x, attention_mask=mask).logits - ours(x, mask).logits).abs().max() <= ATOL


def test_loading_reports_missing_unexpected_and_mismatched_keys():
    ref = transformers.BertModel(hf_bert_config()).state_dict()
    ours = mt.BertModel(our_bert_config())
    broken = {k: v for k, v in ref.items() if "pooler" not in k}
    broken["encoder.layer.0.attention.self.query.weight"] = torch.zeros(3, 3)
    broken["something.else"] = torch.zeros(1)
    with pytest.raises(ValueError) as e:
        mt.load_hf_weights(ours, broken)
    msg = str(e.value)
    assert "missing keys (2): ['pooler.dense.bias', 'pooler.dense.weight']" in msg
    assert "unexpected keys (1): ['something.else']" in msg
    assert "layers.0.attn.q.weight: ours (32, 32) vs given (3, 3)" in msg
    clf = mt.BertForSequenceClassification(our_bert_config())
    report = mt.load_hf_weights(clf, ref, allow_missing=("classifier.",))
    assert report["left_at_init"] == ["classifier.bias", "classifier.weight"]


@settings(max_examples=12, deadline=None)
@given(D_per_head=st.sampled_from([4, 8]), H=st.integers(1, 3), L=st.integers(1, 2), B=st.integers(1, 3),
       T=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_random_small_geometries_match_transformers(D_per_head, H, L, B, T, seed):
    torch.manual_seed(seed)
    D = D_per_head * H
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_embd=D, n_layer=L, n_head=H, n_positions=16, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, attn_implementation="eager")).eval()
    ours = mt.GPTModel(Cfg(vocab_size=50, d_model=D, n_heads=H, n_layers=L, d_ff=4 * D, max_positions=16,
                           type_vocab_size=0, activation="gelu_tanh", layer_norm_eps=1e-5, norm_first=True,
                           dropout=0.0, attn_dropout=0.0, use_sdpa=bool(seed % 2))).eval()
    mt.load_hf_weights(ours, ref.state_dict())
    x = torch.randint(0, 50, (B, T), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert (ref(input_ids=x).logits - ours(x).logits).abs().max() <= ATOL
