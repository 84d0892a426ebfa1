"""Shapes, masks, KV cache, prefixes, attention paths, determinism and exact parameter counts."""

import pytest
import torch

import minitransformer as mt
from minitransformer import TransformerConfig as Cfg


def cfg(**kw):
    return Cfg.tiny(**{"dropout": 0.0, "attn_dropout": 0.0, **kw})


def gpt_cfg(**kw):
    return cfg(norm_first=True, type_vocab_size=0, activation="gelu_tanh", layer_norm_eps=1e-5, **kw)


def ids(B=2, T=7, V=100, seed=0):
    return torch.randint(1, V, (B, T), generator=torch.Generator().manual_seed(seed))


# ---- shapes -------------------------------------------------------------------------------------------
def test_shapes_every_model():
    torch.manual_seed(0)
    x = ids()
    bert = mt.BertModel(cfg())(x)
    assert bert.hidden_states.shape == (2, 7, 16) and bert.pooled_output.shape == (2, 16)
    assert mt.BertForMaskedLM(cfg())(x).logits.shape == (2, 7, 100)
    assert mt.BertForSequenceClassification(cfg(), num_labels=3)(x).logits.shape == (2, 3)
    assert mt.GPTModel(gpt_cfg())(x).logits.shape == (2, 7, 100)
    assert mt.GPTForSequenceClassification(gpt_cfg(), num_labels=5)(x).logits.shape == (2, 5)
    s2s = mt.Transformer(Cfg.mini_seq2seq(dropout=0.0, attn_dropout=0.0))
    out = s2s(ids(V=64), decoder_input_ids=ids(T=4, V=64, seed=1))
    assert out.logits.shape == (2, 4, 64) and out.encoder_hidden_states.shape == (2, 7, 64)


def test_same_module_names_in_all_models():
    names = lambda m: {n.split(".", 2)[-1] for n, _ in m.named_modules() if ".attn." in n}  # noqa: E731
    want = {"attn.q", "attn.k", "attn.v", "attn.o"}
    assert want <= names(mt.BertModel(cfg())) and want <= names(mt.GPTModel(gpt_cfg()))
    s2s = {n for n, _ in mt.Transformer(Cfg.mini_seq2seq()).named_modules()}
    assert {"encoder.layers.0.attn.q", "decoder.layers.0.cross_attn.v", "decoder.layers.1.ffn.fc2"} <= s2s


# ---- masks ----------------------------------------------------------------------------------------------
def test_gpt_is_causal():
    m = mt.GPTModel(gpt_cfg()).eval()
    a, b = ids(seed=1), ids(seed=2)
    b[:, :4] = a[:, :4]  # same first 4 tokens, different later tokens
    la, lb = m(a).logits, m(b).logits
    torch.testing.assert_close(la[:, :4], lb[:, :4], atol=1e-6, rtol=0)
    assert (la[:, 4:] - lb[:, 4:]).abs().max() > 1e-3


@pytest.mark.parametrize("sdpa", [False, True])
def test_padding_leaves_real_tokens_unchanged(sdpa):
    torch.manual_seed(0)
    for model in (mt.BertModel(cfg(use_sdpa=sdpa)), mt.GPTModel(gpt_cfg(use_sdpa=sdpa))):
        model.eval()
        x = ids(B=1, T=5)
        padded = torch.cat([x, torch.full((1, 3), 7)], 1)
        mask = torch.tensor([[1] * 5 + [0] * 3])
        short = model(x)
        longer = model(padded, attention_mask=mask)
        torch.testing.assert_close(longer.hidden_states[:, :5], short.hidden_states, atol=1e-5, rtol=0)


def test_written_out_attention_equals_fused_kernel():
    torch.manual_seed(0)
    for make, c in ((mt.BertModel, cfg()), (mt.GPTModel, gpt_cfg())):
        slow = make(c).eval()
        fast = make(c.replace(use_sdpa=True)).eval()
        fast.load_state_dict(slow.state_dict())
        mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
        torch.testing.assert_close(fast(ids(), attention_mask=mask).hidden_states,
                                   slow(ids(), attention_mask=mask).hidden_states, atol=1e-6, rtol=0)


def test_attention_weights_are_returned_and_normalised():
    out = mt.BertModel(cfg(use_sdpa=True)).eval()(ids(), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, 7, 7)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, 2, 7))


# ---- KV cache and prefixes ----------------------------------------------------------------------------------
def test_incremental_logits_equal_full_forward():
    m = mt.GPTModel(gpt_cfg()).eval()
    x = ids(T=9)
    full = m(x).logits
    out = m(x[:, :4], use_cache=True)
    steps = [out.logits]
    cache = out.past_key_values
    for t in range(4, 9):
        out = m(x[:, t : t + 1], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sample", [False, True])
def test_generate_with_and_without_cache_agree(sample):
    m = mt.GPTModel(gpt_cfg()).eval()
    kw = dict(do_sample=sample, top_k=10, temperature=0.8)
    a = m.generate(ids(T=3), 12, use_cache=True, generator=torch.Generator().manual_seed(1), **kw)
    b = m.generate(ids(T=3), 12, use_cache=False, generator=torch.Generator().manual_seed(1), **kw)
    assert a.shape == (2, 15) and torch.equal(a, b)


def test_seq2seq_generate_with_and_without_cache_agree():
    m = mt.Transformer(Cfg.mini_seq2seq(dropout=0.0, attn_dropout=0.0)).eval()
    src = ids(T=6, V=64)
    assert torch.equal(m.generate(src, 10, use_cache=True), m.generate(src, 10, use_cache=False))


def test_prefix_as_past_equals_tokens_in_front():
    """A prefix given as past_key_values from P real tokens = running those tokens in front (GPT)."""
    m = mt.GPTModel(gpt_cfg()).eval()
    prefix, x = ids(T=3, seed=5), ids(T=6)
    past = m(prefix, use_cache=True).past_key_values
    with_past = m(x, past_key_values=past).logits
    in_front = m(torch.cat([prefix, x], 1)).logits[:, 3:]
    torch.testing.assert_close(with_past, in_front, atol=1e-5, rtol=0)
    # the mask may cover the past too (B, P + T): here it masks nothing, so nothing changes
    torch.testing.assert_close(m(x, past_key_values=past, attention_mask=torch.ones(2, 9)).logits, with_past)


def test_bert_prefix_is_attended_and_shifts_positions():
    import copy

    m = mt.BertModel(cfg()).eval()
    H, Dh, P = 2, 8, 3
    g = torch.Generator().manual_seed(0)
    past = tuple((torch.randn(2, H, P, Dh, generator=g), torch.randn(2, H, P, Dh, generator=g)) for _ in range(2))
    base = m(ids()).hidden_states
    assert (m(ids(), past_key_values=past).hidden_states - base).abs().max() > 1e-3  # the prefix is attended
    # A fully masked prefix changes nothing but the positions, which start at P: equal to a copy of the
    # model whose position table is shifted by P.
    masked = m(ids(), past_key_values=past, attention_mask=torch.cat([torch.zeros(2, P), torch.ones(2, 7)], 1))
    shifted = copy.deepcopy(m)
    with torch.no_grad():
        shifted.embeddings.position_embeddings.weight[:-P] = m.embeddings.position_embeddings.weight[P:]
    torch.testing.assert_close(masked.hidden_states, shifted(ids()).hidden_states, atol=1e-5, rtol=0)


# ---- determinism and counts --------------------------------------------------------------------------------
def test_same_seed_same_weights_and_outputs():
    def run():
        torch.manual_seed(123)
        m = mt.GPTModel(gpt_cfg(dropout=0.1, attn_dropout=0.1))
        return m(ids()).logits  # training mode: dropout drawn from the same seed

    torch.testing.assert_close(run(), run(), atol=0, rtol=0)


def count(m):
    return sum(p.numel() for p in m.parameters())


def test_exact_parameter_counts_on_real_geometries():
    with torch.device("meta"):
        assert count(mt.BertModel(Cfg.bert_base())) == 109_482_240
        assert count(mt.BertForSequenceClassification(Cfg.bert_base(), num_labels=2)) == 109_483_778
        assert count(mt.GPTModel(Cfg.gpt2_small())) == 124_439_808  # tied head counted once
        assert count(mt.BertModel(Cfg.minilm_l6())) == 22_713_216


def test_closed_form_counts_match_live_counts():
    def bert(c, C=0):
        V, P, T, D, L, F = c.vocab_size, c.max_positions, c.type_vocab_size, c.d_model, c.n_layers, c.d_ff
        per_layer = 4 * (D * D + D) + 2 * D + (D * F + F) + (F * D + D) + 2 * D
        return V * D + P * D + T * D + 2 * D + L * per_layer + (D * D + D) + (D * C + C if C else 0)

    for c in (Cfg.tiny(), Cfg.mini_bert(), Cfg.minilm_l6()):
        with torch.device("meta"):
            assert count(mt.BertModel(c)) == bert(c)
            assert count(mt.BertForSequenceClassification(c, 3)) == bert(c, 3)
