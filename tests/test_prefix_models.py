"""Prefixes on every attention sublayer of the encoder-decoder, and prefixes / soft prompts in `generate()`.

Prefix tuning for encoder-decoders (Li & Liang 2021, arXiv:2101.00190): z = [PREFIX; x; PREFIX′; y], one prefix
for the encoder's self-attention (`encoder_past_key_values`), one for the decoder's (`past_key_values`) and one
for the cross-attention (`cross_past_key_values`). Sizes: S source, T target, P a self-attention prefix,
P′ the cross-attention prefix.
"""

import copy
import math

import pytest
import torch

import minitransformer as mt
from minitransformer import TransformerConfig as Cfg
from minitransformer.core import init_weights

B, S, T = 2, 6, 4


def s2s(seed=0) -> mt.Transformer:
    """The tiny encoder-decoder (H=4, Dh=4, 2 + 2 layers) with larger weights, so greedy decoding varies."""
    torch.manual_seed(seed)
    m = mt.Transformer(Cfg.mini_seq2seq(d_model=16, d_ff=32, dropout=0.0, attn_dropout=0.0))
    init_weights(m, std=0.5)
    return m.eval()


def gpt(seed=0) -> mt.GPTModel:
    torch.manual_seed(seed)
    m = mt.GPTModel(Cfg.tiny(norm_first=True, type_vocab_size=0, dropout=0.0, attn_dropout=0.0))
    init_weights(m, std=0.3)
    return m.eval()


def ids(B=B, T=S, V=64, seed=0):
    return torch.randint(3, V, (B, T), generator=torch.Generator().manual_seed(seed))


def prefix(m, n_layers, P, seed, B=B):
    """Per layer a random pair (k, v), each (B, H, P, Dh)."""
    g = torch.Generator().manual_seed(seed)
    H, Dh = m.config.n_heads, m.config.head_dim
    return tuple((torch.randn(B, H, P, Dh, generator=g), torch.randn(B, H, P, Dh, generator=g))
                 for _ in range(n_layers))


def three_prefixes(m, P_enc=2, P=3, P_cross=2):
    return dict(encoder_past_key_values=prefix(m, m.config.n_layers, P_enc, 1),
                past_key_values=prefix(m, m.config.n_decoder_layers, P, 2),
                cross_past_key_values=prefix(m, m.config.n_decoder_layers, P_cross, 3))


SRC_MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])  # (B, S): row 1 has 2 padded positions


# ---- (a) a zero-length cross prefix changes nothing --------------------------------------------------------
def test_zero_length_cross_prefix_changes_nothing():
    m, src, y = s2s(), ids(), ids(T=T, seed=1)
    want = m(src, SRC_MASK, decoder_input_ids=y).logits
    empty = prefix(m, m.config.n_decoder_layers, 0, 3)
    got = m(src, SRC_MASK, decoder_input_ids=y, cross_past_key_values=empty).logits
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert torch.equal(m.generate(src, 6, SRC_MASK, cross_past_key_values=empty), m.generate(src, 6, SRC_MASK))


# ---- (b) the cross prefix equals an explicit attention computation -----------------------------------------
def manual_cross_attention(attn, x, enc, pk, pv, src_mask):
    """Eq. 1 by hand: queries from x (B, T, D), keys/values [prefix (B, H, P′, Dh); enc (B, S, D) projected]."""
    Bx, Tx, D = x.shape
    H, Dh = attn.n_heads, attn.head_dim

    def split(t):
        return t.view(Bx, -1, H, Dh).transpose(1, 2)  # (B, H, ·, Dh)

    q = split(attn.q(x))
    k = torch.cat([pk, split(attn.k(enc))], 2)  # (B, H, P′ + S, Dh)
    v = torch.cat([pv, split(attn.v(enc))], 2)
    keep = torch.cat([torch.ones(Bx, pk.size(2), dtype=torch.bool), src_mask.bool()], 1)  # (B, P′ + S)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(Dh)).masked_fill(~keep[:, None, None, :], float("-inf"))
    out = scores.softmax(-1) @ v  # (B, H, T, Dh)
    return attn.o(out.transpose(1, 2).reshape(Bx, Tx, D))


def test_cross_prefix_equals_manual_attention():
    m, src, y = s2s(), ids(), ids(T=T, seed=1)
    cross = prefix(m, m.config.n_decoder_layers, 3, 3)
    enc = m.encode(src, SRC_MASK).hidden_states  # (B, S, D)
    x = m.embeddings(y)  # (B, T, D), positions 0 .. T - 1
    for blk, (pk, pv) in zip(m.decoder.layers, cross):  # post-LN decoder block, written out
        x = blk.attn_norm(x + blk.attn(x, is_causal=True)[0])
        x = blk.cross_norm(x + manual_cross_attention(blk.cross_attn, x, enc, pk, pv, SRC_MASK))
        x = blk.ffn_norm(x + blk.ffn(x))
    want = x @ m.embeddings.word_embeddings.weight.T
    got = m(src, SRC_MASK, decoder_input_ids=y, cross_past_key_values=cross).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_block_passes_cross_prefix_to_cross_attention(use_sdpa):
    m, src = s2s(), ids()
    m.config.use_sdpa = use_sdpa
    for blk in m.decoder.layers:
        blk.attn.use_sdpa = blk.cross_attn.use_sdpa = use_sdpa
    blk, (pk, pv) = m.decoder.layers[0], prefix(m, 1, 2, 4)[0]
    enc, x = m.encode(src).hidden_states, torch.randn(B, T, 16)
    bias, _ = mt.core.build_bias(SRC_MASK, B, S, 2, False, x.dtype, x.device)  # (B, 1, 1, P′ + S)
    out = blk(x, None, True, None, False, False, enc, bias, (pk, pv))[0]
    h = blk.attn_norm(x + blk.attn(x, is_causal=True)[0])
    h = blk.cross_norm(h + manual_cross_attention(blk.cross_attn, h, enc, pk, pv, SRC_MASK))
    torch.testing.assert_close(out, blk.ffn_norm(h + blk.ffn(h)), atol=1e-5, rtol=0)


# ---- (c) prefixes change outputs; the target's positions start after the decoder prefix ------------------
def test_each_prefix_changes_the_logits():
    m, src, y = s2s(), ids(), ids(T=T, seed=1)
    base = m(src, SRC_MASK, decoder_input_ids=y).logits
    for name, kv in three_prefixes(m).items():
        assert (m(src, SRC_MASK, decoder_input_ids=y, **{name: kv}).logits - base).abs().max() > 1e-3, name


def test_decoder_prefix_from_a_previous_forward_equals_tokens_in_front():
    """A decoder prefix made from the cache of earlier target tokens = those tokens in front (all prefixes on)."""
    m, src = s2s(), ids()
    kw = three_prefixes(m)
    enc_kw = dict(encoder_past_key_values=kw["encoder_past_key_values"],
                  cross_past_key_values=kw["cross_past_key_values"])
    a, b = ids(T=3, seed=5), ids(T=T, seed=6)
    past = m(src, SRC_MASK, decoder_input_ids=a, use_cache=True, **enc_kw).past_key_values
    got = m(src, SRC_MASK, decoder_input_ids=b, past_key_values=past, **enc_kw).logits
    want = m(src, SRC_MASK, decoder_input_ids=torch.cat([a, b], 1), **enc_kw).logits[:, 3:]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_target_positions_start_after_the_decoder_prefix():
    """A fully masked decoder prefix of length P leaves only its effect on positions: the same as a model whose
    position table is shifted by P and which gets no prefix."""
    m, src, y, P = s2s(), ids(), ids(T=T, seed=1), 3
    past = prefix(m, m.config.n_decoder_layers, P, 2)
    mask = torch.cat([torch.zeros(B, P), torch.ones(B, T)], 1)  # (B, P + T)
    got = m(src, SRC_MASK, decoder_input_ids=y, past_key_values=past, decoder_attention_mask=mask)
    shifted = copy.deepcopy(m)
    table = shifted.embeddings.position_embeddings.weight.data
    table[: -P] = m.embeddings.position_embeddings.weight.data[P:]
    # the encoder must see the original table: reuse the original model's encoder output
    enc = m.encode(src, SRC_MASK).hidden_states
    want = shifted(attention_mask=SRC_MASK, decoder_input_ids=y, encoder_hidden_states=enc)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=0)
    assert (got.logits - m(src, SRC_MASK, decoder_input_ids=y).logits).abs().max() > 1e-3  # positions moved


def test_encoder_prefix_source_mask_may_cover_the_prefix():
    """With an encoder prefix the source mask may be (B, P + S); the cross-attention uses its last S columns."""
    m, src, y = s2s(), ids(), ids(T=T, seed=1)
    kw = three_prefixes(m)
    short = m(src, SRC_MASK, decoder_input_ids=y, **kw).logits
    long_mask = torch.cat([torch.ones(B, 2, dtype=torch.long), SRC_MASK], 1)  # (B, P + S)
    torch.testing.assert_close(m(src, long_mask, decoder_input_ids=y, **kw).logits, short, atol=1e-6, rtol=0)


# ---- (d) generate with all three prefixes --------------------------------------------------------------
def manual_greedy(m, src, mask, n, **kw):
    """Token by token, no cache: the whole target after the same prefixes at every step."""
    ys = torch.full((src.size(0), 1), m.config.bos_token_id)
    for _ in range(n):
        logits = m(src, mask, decoder_input_ids=ys, **kw).logits[:, -1]
        ys = torch.cat([ys, logits.argmax(-1)[:, None]], 1)
    return ys[:, 1:]


@pytest.mark.parametrize("with_prefixes", [True, False])
def test_generate_with_prefixes_cache_no_cache_and_manual_agree(with_prefixes):
    m, src, n = s2s(), ids(), 10
    kw = three_prefixes(m) if with_prefixes else {}
    cached = m.generate(src, n, SRC_MASK, eos_token_id=-1, **kw)
    uncached = m.generate(src, n, SRC_MASK, use_cache=False, eos_token_id=-1, **kw)
    assert cached.shape == (B, n) and torch.equal(cached, uncached)
    assert torch.equal(cached, manual_greedy(m, src, SRC_MASK, n, **kw))
    if with_prefixes:
        assert not torch.equal(cached, m.generate(src, n, SRC_MASK, eos_token_id=-1))  # the prefixes matter
        assert len(set(cached.flatten().tolist())) > 2  # not a degenerate constant output
    # with the default eos (rows may stop early) the cache still changes nothing
    assert torch.equal(m.generate(src, n, SRC_MASK, **kw), m.generate(src, n, SRC_MASK, use_cache=False, **kw))


def test_generate_with_each_prefix_alone_matches_manual():
    m, src = s2s(), ids()
    for name, kv in three_prefixes(m).items():
        for use_cache in (True, False):
            got = m.generate(src, 8, SRC_MASK, use_cache=use_cache, eos_token_id=-1, **{name: kv})
            assert torch.equal(got, manual_greedy(m, src, SRC_MASK, 8, **{name: kv})), (name, use_cache)


def test_generate_inputs_embeds_equals_input_ids():
    m, src = s2s(), ids()
    kw = three_prefixes(m)
    emb = m.embeddings.word_embeddings(src)  # (B, S, D)
    for use_cache in (True, False):
        want = m.generate(src, 8, SRC_MASK, use_cache=use_cache, **kw)
        assert torch.equal(m.generate(None, 8, SRC_MASK, use_cache=use_cache, inputs_embeds=emb, **kw), want)
    soft = torch.randn(B, 2, 16)  # a soft prompt in front of the source
    mask = torch.cat([torch.ones(B, 2, dtype=torch.long), SRC_MASK], 1)
    a = m.generate(max_new_tokens=8, attention_mask=mask, inputs_embeds=torch.cat([soft, emb], 1), eos_token_id=-1)
    b = m.generate(max_new_tokens=8, attention_mask=mask, inputs_embeds=torch.cat([soft, emb], 1), eos_token_id=-1,
                   use_cache=False)
    assert a.shape == (B, 8) and torch.equal(a, b)


# ---- (e) bad shapes name the argument ------------------------------------------------------------------
def test_bad_cross_prefix_shapes_raise():
    m, src, y = s2s(), ids(), ids(T=T, seed=1)
    good = prefix(m, 2, 3, 3)

    def run(cross):
        return m(src, SRC_MASK, decoder_input_ids=y, cross_past_key_values=cross)

    with pytest.raises(ValueError, match=r"cross_past_key_values must hold one \(k, v\) pair per layer: "
                                         r"wanted 2, got 1"):
        run(good[:1])
    with pytest.raises(ValueError, match=r"cross_past_key_values\[1\] must be a pair \(k, v\), got 1 items"):
        run((good[0], good[1][:1]))
    bad_heads = (good[0], (good[1][0], torch.zeros(B, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"cross_past_key_values\[1\]\.v must have shape \(B, H, P′, Dh\) = "
                                         r"\(2, 4, 3, 4\), got \(2, 2, 3, 4\)"):
        run(bad_heads)
    with pytest.raises(ValueError, match=r"cross_past_key_values\[0\]\.k must have shape .* = \(2, 4, 3, 4\), "
                                         r"got \(1, 4, 3, 4\)"):
        run(prefix(m, 2, 3, 3, B=1))
    uneven = (good[0], tuple(t[:, :, :2] for t in good[1]))  # layers with different P′
    with pytest.raises(ValueError, match=r"cross_past_key_values\[1\]\.k must have shape"):
        run(uneven)
    with pytest.raises(ValueError, match=r"cross_past_key_values"):
        m.generate(src, 3, SRC_MASK, cross_past_key_values=good[:1])
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, S\) = \(2, 6\)"):
        m(attention_mask=SRC_MASK[:, :4], decoder_input_ids=y, encoder_hidden_states=m.encode(src).hidden_states,
          cross_past_key_values=good)


def test_generate_needs_exactly_one_source():
    m, src = s2s(), ids()
    with pytest.raises(ValueError, match="exactly one of input_ids"):
        m.generate(src, 3, inputs_embeds=m.embeddings.word_embeddings(src))
    with pytest.raises(ValueError, match="exactly one of input_ids"):
        m.generate(None, 3)
    with pytest.raises(ValueError, match=r"past_key_values\[0\]\.k must have shape"):
        m.generate(src, 3, past_key_values=prefix(m, 2, 3, 3, B=1))
    with pytest.raises(ValueError, match=r"past_key_values must hold one \(k, v\) pair per layer"):
        m.generate(src, 3, encoder_past_key_values=prefix(m, 1, 3, 3))


# ---- (f) source padding with a cross prefix ---------------------------------------------------------------
def test_cross_prefix_is_attended_and_source_padding_is_not():
    m, src, y, Pc = s2s(), ids(), ids(T=T, seed=1), 3
    out = m(src, SRC_MASK, decoder_input_ids=y, cross_past_key_values=prefix(m, 2, Pc, 3), output_attentions=True)
    for self_map, cross_map in out.attentions:
        assert self_map.shape == (B, 4, T, T) and cross_map.shape == (B, 4, T, Pc + S)
        torch.testing.assert_close(cross_map.sum(-1), torch.ones(B, 4, T))
        assert (cross_map[:, :, :, :Pc] > 0).all()  # the prefix is always attended
        assert (cross_map[0] > 0).all()  # row 0 has no padding
        assert (cross_map[1, :, :, Pc + 4:] == 0).all()  # row 1's two padded source positions get weight 0
        assert (cross_map[1, :, :, : Pc + 4] > 0).all()
    # changing what sits at the padded positions changes nothing
    src2 = src.clone()
    src2[1, 4:] = 7
    again = m(src2, SRC_MASK, decoder_input_ids=y, cross_past_key_values=prefix(m, 2, Pc, 3)).logits
    torch.testing.assert_close(again[1], out.logits[1], atol=1e-6, rtol=0)


# ---- GPT: generate with a prefix + mask, and with inputs_embeds --------------------------------------------
def gpt_manual(m, embeds, n, past=None, mask=None):
    """Token by token, no cache, embeddings in: the whole sequence after the prefix at every step."""
    seen, new = embeds, []
    for _ in range(n):
        nxt = m(inputs_embeds=seen, past_key_values=past, attention_mask=mask).logits[:, -1].argmax(-1)
        new.append(nxt)
        seen = torch.cat([seen, m.embeddings.word_embeddings(nxt)[:, None]], 1)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], 1)
    return torch.stack(new, 1)


def test_gpt_generate_prefix_with_padded_mask_cache_and_manual_agree():
    m, x, P = gpt(), ids(T=5, V=100, seed=2), 3
    past = prefix(m, m.config.n_layers, P, 8)
    mask = torch.ones(B, P + 5, dtype=torch.long)
    mask[1, :2] = 0  # row 1 ignores two of its prefix positions
    a = m.generate(x, 8, past_key_values=past, attention_mask=mask, eos_token_id=-1)
    b = m.generate(x, 8, past_key_values=past, attention_mask=mask, eos_token_id=-1, use_cache=False)
    assert a.shape == (B, 13) and torch.equal(a, b) and torch.equal(a[:, :5], x)
    assert torch.equal(a[:, 5:], gpt_manual(m, m.embeddings.word_embeddings(x), 8, past, mask))
    assert not torch.equal(a, m.generate(x, 8, past_key_values=past, eos_token_id=-1))  # the mask matters


def test_gpt_generate_prefix_from_tokens_equals_tokens_in_front():
    m, pre, x = gpt(), ids(T=3, V=100, seed=4), ids(T=5, V=100, seed=2)
    past = m(pre, use_cache=True).past_key_values
    want = m.generate(torch.cat([pre, x], 1), 8, eos_token_id=-1)[:, 3:]
    for use_cache in (True, False):
        got = m.generate(x, 8, past_key_values=past, attention_mask=torch.ones(B, 8), eos_token_id=-1,
                         use_cache=use_cache)
        assert torch.equal(got, want)


def test_gpt_generate_inputs_embeds_with_and_without_prefix():
    m, x = gpt(), ids(T=5, V=100, seed=2)
    emb = m.embeddings.word_embeddings(x)
    past = prefix(m, m.config.n_layers, 3, 8)
    for kw in ({}, {"past_key_values": past}):
        want = m.generate(x, 8, eos_token_id=-1, **kw)[:, 5:]
        for use_cache in (True, False):
            got = m.generate(inputs_embeds=emb, max_new_tokens=8, eos_token_id=-1, use_cache=use_cache, **kw)
            assert got.shape == (B, 8) and torch.equal(got, want)
        assert torch.equal(want, gpt_manual(m, emb, 8, kw.get("past_key_values")))


def test_gpt_generate_prefix_with_short_mask_and_cache():
    m, x = gpt(), ids(T=5, V=100, seed=2)
    past = prefix(m, m.config.n_layers, 3, 8)
    a = m.generate(x, 4, past_key_values=past, attention_mask=torch.ones(B, 5), eos_token_id=-1)
    assert torch.equal(a, m.generate(x, 4, past_key_values=past, eos_token_id=-1))
