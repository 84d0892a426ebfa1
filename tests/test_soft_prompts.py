"""Soft prompts (prompt tuning, P-tuning, prefix tuning, P-tuning v2): counts against the closed forms and the
issue's BERT-base figures, shapes and mask growth, positions after a prefix, generate() against a manual loop,
bake(), save/load/resume for every encoder, mixed-task batches and ensembles, inits, templates, bad input."""

from __future__ import annotations

import copy

import pytest
import torch

import methods as M
import minitransformer as mt
from methods.p_tuning import fill_template, verbalizer_scores
from methods.prompt_tuning import ensemble_predict, frequent_tokens, load_base_tokenizer, token_ids
from minitransformer import TransformerConfig as Cfg


def bert(num_labels=2, pooling="mean"):
    torch.manual_seed(0)
    return mt.BertForSequenceClassification(Cfg.tiny(), num_labels=num_labels, pooling=pooling).eval()


def gpt():
    torch.manual_seed(0)
    return mt.GPTModel(Cfg.tiny(norm_first=True, type_vocab_size=0)).eval()


def seq2seq():
    torch.manual_seed(0)
    return mt.Transformer(Cfg.mini_seq2seq(d_model=16, d_ff=32)).eval()


def ids(B=3, T=7, V=100, seed=1):
    return torch.randint(5, V, (B, T), generator=torch.Generator().manual_seed(seed))


def trained(peft, seed=0):
    """Move every trainable tensor off its init, so that equalities below are not between zeros or defaults."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in peft.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return peft


# ---- counts ----------------------------------------------------------------------------------------------------
def meta_count(config, cls=mt.BertForSequenceClassification, **kw):
    with torch.device("meta"):
        model = cls(Cfg.bert_base(), num_labels=2, **kw)
    peft = M.get_peft_model(model, config)
    return peft.get_nb_trainable_parameters()[0], M.expected_trainable_parameters(model, config)


@pytest.mark.parametrize("config, want", [
    (M.PromptTuningConfig(num_virtual_tokens=20), 16_898),  # peft: 15,360 + a 2-label head with bias 1,538
    (M.PromptEncoderConfig(num_virtual_tokens=20, encoder_hidden_size=128), 229_376 + 1_538),
    (M.PromptEncoderConfig(num_virtual_tokens=20, encoder_hidden_size=128, encoder_reparameterization_type="LSTM"),
     1_593_344 + 1_538),
    (M.PrefixTuningConfig(num_virtual_tokens=20, prefix_projection=False), 368_640 + 1_538),  # peft: 370,178
    (M.PrefixTuningConfig(num_virtual_tokens=20, prefix_projection=True, encoder_hidden_size=512), 9_864_704 + 1_538),
    (M.PTuningV2Config(num_virtual_tokens=20), 368_640 + 1_538),
])
def test_bert_base_counts_match_the_published_figures(config, want):
    live, closed = meta_count(config)
    assert live == closed == want


def test_gpt2_small_prompt_and_prefix_counts_match_peft():
    with torch.device("meta"):
        lm = mt.GPTModel(Cfg.gpt2_small())
    assert M.get_peft_model(lm, M.PromptTuningConfig(task_type="CAUSAL_LM")).get_nb_trainable_parameters()[0] == 15_360
    with torch.device("meta"):
        lm = mt.GPTModel(Cfg.gpt2_small())
    pre = M.PrefixTuningConfig(task_type="CAUSAL_LM", prefix_projection=False)
    assert M.get_peft_model(lm, pre).get_nb_trainable_parameters()[0] == 368_640


def test_seq2seq_prefix_counts_three_prefixes():
    model = seq2seq()
    c = model.config
    config = M.PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=4, prefix_projection=False)
    peft = M.get_peft_model(model, config)
    assert peft.get_nb_trainable_parameters()[0] == 4 * 2 * c.d_model * (c.n_layers + 2 * c.n_decoder_layers)


# ---- shapes, masks, positions --------------------------------------------------------------------------------
def test_prompt_goes_in_front_and_grows_mask_types_and_labels():
    model = mt.BertForSequenceClassification(Cfg.tiny(), num_labels=2).eval()
    peft = trained(M.get_peft_model(model, M.PromptTuningConfig(num_virtual_tokens=5)))
    x, mask = ids(), torch.ones(3, 7, dtype=torch.long)
    mask[0, 5:] = 0
    kw = peft.adapter_modules["default"](model, input_ids=x, attention_mask=mask, token_type_ids=torch.ones_like(x))
    P = peft.adapter_modules["default"].prompts()
    assert kw["inputs_embeds"].shape == (3, 12, 16) and "input_ids" not in kw
    torch.testing.assert_close(kw["inputs_embeds"][:, :5], P.expand(3, -1, -1))
    torch.testing.assert_close(kw["inputs_embeds"][:, 5:], model.bert.embeddings.word_embeddings(x))
    assert kw["attention_mask"][:, :5].eq(1).all() and torch.equal(kw["attention_mask"][:, 5:], mask)
    assert kw["token_type_ids"][:, :5].eq(0).all() and kw["token_type_ids"][:, 5:].eq(1).all()
    lm = gpt()
    lm_peft = M.get_peft_model(lm, M.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    out = lm_peft(input_ids=x, labels=x)
    assert out.logits.shape == (3, 11, lm.config.vocab_size)  # n + T, as in peft
    # the labels get n values of -100 in front (as in peft): the last virtual token predicts x_0, x_t predicts x_t+1
    V = lm.config.vocab_size
    want = torch.nn.functional.cross_entropy(out.logits[:, 3:-1].reshape(-1, V), x.reshape(-1))
    torch.testing.assert_close(out.loss, want)


def test_prefix_shapes_layout_and_no_mask_growth_needed():
    model = bert()
    peft = trained(M.get_peft_model(model, M.PrefixTuningConfig(num_virtual_tokens=3)))
    module = peft.adapter_modules["default"]
    pkv = module.past_key_values(2)
    c = model.config
    assert len(pkv) == c.n_layers and all(k.shape == v.shape == (2, c.n_heads, 3, c.head_dim) for k, v in pkv)
    table = module.table()  # (P, L·2·D): row p = layer-major, then k/v, then heads
    torch.testing.assert_close(pkv[1][0][0, :, 2].reshape(-1), table[2, 2 * c.d_model: 3 * c.d_model])
    torch.testing.assert_close(pkv[1][1][0, :, 2].reshape(-1), table[2, 3 * c.d_model: 4 * c.d_model])
    x, mask = ids(2), torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    direct = model(input_ids=x, attention_mask=mask, past_key_values=module.past_key_values(2)).logits
    torch.testing.assert_close(peft(input_ids=x, attention_mask=mask).logits, direct, atol=0, rtol=0)
    grown = torch.cat([torch.ones(2, 3, dtype=torch.long), mask], 1)
    torch.testing.assert_close(model(input_ids=x, attention_mask=grown, past_key_values=pkv).logits, direct)


def test_prefix_is_a_kv_cache_positions_start_after_it():
    """A prefix made of the frozen GPT's own keys and values for real words gives the real tokens exactly the
    logits they have when those words precede them: positions P .. P + T - 1, the prefix attended everywhere."""
    lm = gpt()
    words, x = ids(1, 4, seed=5), ids(1, 6, seed=6)
    full = lm(input_ids=torch.cat([words, x], 1)).logits[:, 4:]
    cache = lm(input_ids=words, use_cache=True).past_key_values
    config = M.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4, prefix_projection=False)
    peft = M.get_peft_model(lm, config)
    module = peft.adapter_modules["default"]
    with torch.no_grad():
        module.prefix_embeddings.weight.copy_(torch.stack([torch.stack(kv) for kv in cache])[:, :, 0]
                                              .permute(3, 0, 1, 2, 4).reshape(4, -1))
    torch.testing.assert_close(peft(input_ids=x).logits, full, atol=1e-5, rtol=0)


def test_prompt_tuning_sees_positions_after_the_prompt():
    lm = gpt()
    peft = trained(M.get_peft_model(lm, M.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3)))
    x = ids(2)
    P = peft.adapter_modules["default"].prompts()
    emb = torch.cat([P.expand(2, -1, -1), lm.embeddings.word_embeddings(x)], 1)
    torch.testing.assert_close(peft(input_ids=x).logits, lm(inputs_embeds=emb).logits, atol=0, rtol=0)


# ---- generate --------------------------------------------------------------------------------------------------
def manual_gpt(lm, emb, past, mask, steps):
    """Greedy decoding by hand: the whole sequence again at every step, no cache."""
    out = []
    for _ in range(steps):
        nxt = lm(inputs_embeds=emb, past_key_values=past, attention_mask=mask).logits[:, -1].argmax(-1)
        out.append(nxt)
        emb = torch.cat([emb, lm.embeddings.word_embeddings(nxt)[:, None]], 1)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], 1)
    return torch.stack(out, 1)


@pytest.mark.parametrize("config", [
    M.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
    M.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=3, encoder_reparameterization_type="LSTM"),
    M.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
], ids=["prompt", "p-tuning-lstm", "prefix"])
def test_gpt_generate_equals_a_manual_loop(config):
    lm = gpt()
    peft = trained(M.get_peft_model(lm, config))
    x = ids(2, 5)
    got = peft.generate(x, 6, eos_token_id=-1)
    assert got.shape == (2, 11) and torch.equal(got[:, :5], x)
    module = peft.adapter_modules["default"]
    with torch.no_grad():
        if isinstance(config, M.PrefixTuningConfig):
            want = manual_gpt(lm, lm.embeddings.word_embeddings(x), module.past_key_values(2), None, 6)
        else:
            emb = torch.cat([module.prompts().expand(2, -1, -1), lm.embeddings.word_embeddings(x)], 1)
            want = manual_gpt(lm, emb, None, None, 6)
    assert torch.equal(got[:, 5:], want)
    assert torch.equal(got, peft.generate(x, 6, eos_token_id=-1, use_cache=False))


@pytest.mark.parametrize("config", [
    M.PromptTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=3),
    M.PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=3),
], ids=["prompt", "prefix"])
def test_seq2seq_generate_equals_a_manual_loop(config):
    model = seq2seq()
    peft = trained(M.get_peft_model(model, config))
    x = ids(2, 6, V=model.config.vocab_size)
    got = peft.generate(x, 5, eos_token_id=-1)
    ys = torch.full((2, 1), model.config.bos_token_id)
    with torch.no_grad():
        for _ in range(5):
            nxt = peft(input_ids=x, decoder_input_ids=ys).logits[:, -1].argmax(-1)
            ys = torch.cat([ys, nxt[:, None]], 1)
    assert torch.equal(got, ys[:, 1:])
    assert torch.equal(got, peft.generate(x, 5, eos_token_id=-1, use_cache=False))


# ---- bake, save, load, resume -------------------------------------------------------------------------------------
ENCODERS = {
    "p-tuning-mlp": M.PromptEncoderConfig(num_virtual_tokens=4, encoder_hidden_size=8),
    "p-tuning-lstm": M.PromptEncoderConfig(num_virtual_tokens=4, encoder_hidden_size=8,
                                           encoder_reparameterization_type="LSTM"),
    "prefix-mlp": M.PrefixTuningConfig(num_virtual_tokens=4, encoder_hidden_size=8),
    "prefix-direct": M.PrefixTuningConfig(num_virtual_tokens=4, prefix_projection=False),
    "p-tuning-v2": M.PTuningV2Config(num_virtual_tokens=4),
    "prompt": M.PromptTuningConfig(num_virtual_tokens=4),
}


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_bake_gives_identical_outputs_and_save_keeps_the_encoder(name, tmp_path):
    model = bert()
    pristine = copy.deepcopy(model)
    peft = trained(M.get_peft_model(model, copy.deepcopy(ENCODERS[name]))).eval()
    x = ids()
    before = peft(input_ids=x).logits
    peft.save_pretrained(tmp_path)  # before bake: the encoder is in the checkpoint
    trainable = peft.get_nb_trainable_parameters()[0]
    peft.bake()
    torch.testing.assert_close(peft(input_ids=x).logits, before, atol=1e-6, rtol=0)
    baked = sum(p.numel() for p in peft.adapter_modules.parameters())
    width = 2 * 16 * 2 if name.startswith("prefix") or name == "p-tuning-v2" else 16  # L·2·D or D, tiny: D=16, L=2
    assert baked == 4 * width  # only the table of P (or n) rows is left
    assert trainable > 0 and not any(p.requires_grad for p in peft.adapter_modules.parameters())
    with pytest.raises(ValueError, match="baked"):
        peft.save_pretrained(tmp_path / "again")
    resumed = M.PeftModel.from_pretrained(copy.deepcopy(pristine), tmp_path, is_trainable=True)
    assert resumed.get_nb_trainable_parameters()[0] == trainable  # the encoder came back: training resumes
    torch.testing.assert_close(resumed.eval()(input_ids=x).logits, before, atol=0, rtol=0)
    opt = torch.optim.AdamW([p for p in resumed.parameters() if p.requires_grad], lr=1e-2)
    resumed.train()
    resumed(input_ids=x, labels=torch.tensor([0, 1, 0])).loss.backward()
    opt.step()
    assert not torch.allclose(resumed.eval()(input_ids=x).logits, before)


# ---- mixed-task batches and ensembles ------------------------------------------------------------------------
@pytest.mark.parametrize("config", [M.PromptTuningConfig(num_virtual_tokens=3), M.PrefixTuningConfig(num_virtual_tokens=3),
                                    M.PromptEncoderConfig(num_virtual_tokens=3, encoder_hidden_size=8)],
                         ids=["prompt", "prefix", "p-tuning"])
def test_mixed_task_batch_equals_each_task_alone(config):
    model = bert()
    peft = M.get_peft_model(model, copy.deepcopy(config), "rt")
    peft.add_adapter("trec", copy.deepcopy(config))
    peft.add_adapter("spam", copy.deepcopy(config))
    trained(peft, 1)
    for name in ("rt", "trec", "spam"):  # every adapter's tensors and head differ
        peft.set_adapter(name)
        trained(peft, hash(name) % 100)
    peft.eval()
    x, mask = ids(4), torch.ones(4, 7, dtype=torch.long)
    mask[2, 3:] = 0
    names = ["trec", "rt", "spam", "trec"]
    mixed = peft(input_ids=x, attention_mask=mask, adapter_names=names).logits
    for b, name in enumerate(names):
        peft.set_adapter(name)
        alone = peft(input_ids=x[b:b + 1], attention_mask=mask[b:b + 1]).logits
        torch.testing.assert_close(mixed[b:b + 1], alone, atol=1e-6, rtol=0)
    assert all(m.row_adapters is None for m in peft.modules() if isinstance(m, M.api.targets.ModulesToSave))


def test_mixed_task_generate_equals_each_task_alone():
    lm = gpt()
    config = M.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2)
    peft = M.get_peft_model(lm, copy.deepcopy(config), "a")
    peft.add_adapter("b", copy.deepcopy(config))
    trained(peft, 3)
    x = ids(2, 4)
    mixed = peft.generate(x, 5, eos_token_id=-1, adapter_names=["b", "a"])
    for row, name in enumerate(["b", "a"]):
        peft.set_adapter(name)
        assert torch.equal(mixed[row:row + 1], peft.generate(x[row:row + 1], 5, eos_token_id=-1))


def test_mixed_batches_refuse_weight_side_methods_and_unknown_names():
    peft = M.get_peft_model(bert(), M.PromptTuningConfig(num_virtual_tokens=2))
    with pytest.raises(ValueError, match="unknown adapters"):
        peft(input_ids=ids(1), adapter_names=["nope"])
    lora = M.get_peft_model(bert(), M.LoraConfig(r=2))
    with pytest.raises(ValueError, match="input-side"):
        lora(input_ids=ids(1), adapter_names=["default"])


def test_ensemble_is_a_majority_vote_in_one_batch():
    model = bert(num_labels=3)
    config = M.PromptTuningConfig(num_virtual_tokens=2)
    peft = M.get_peft_model(model, copy.deepcopy(config), "p0")
    for k in (1, 2):
        peft.add_adapter(f"p{k}", copy.deepcopy(config))
    for k in range(3):
        peft.set_adapter(f"p{k}")
        trained(peft, 10 + k)
    peft.eval()
    batch = {"input_ids": ids(5), "attention_mask": torch.ones(5, 7, dtype=torch.long)}
    votes = []
    for k in range(3):
        peft.set_adapter(f"p{k}")
        votes.append(peft(**batch).logits.argmax(-1))
    votes = torch.stack(votes, 1)  # (B, 3)
    want = torch.tensor([torch.bincount(v, minlength=3).argmax() for v in votes])
    assert torch.equal(ensemble_predict(peft, ["p0", "p1", "p2"], batch), want)


# ---- inits -----------------------------------------------------------------------------------------------------
def test_random_init_is_uniform_half():
    peft = M.get_peft_model(bert(), M.PromptTuningConfig(num_virtual_tokens=50))
    w = peft.adapter_modules["default"].prompt_embeddings.weight
    assert w.min() >= -0.5 and w.max() <= 0.5 and w.std() > 0.2


def test_text_class_label_and_vocab_inits_copy_embeddings():
    torch.manual_seed(0)
    model = mt.BertForSequenceClassification(Cfg.tiny(vocab_size=30522), num_labels=2)
    table = model.bert.embeddings.word_embeddings.weight
    tok = load_base_tokenizer("minilm")
    text = "classify the sentiment"
    t = token_ids(tok, text)
    peft = M.get_peft_model(copy.deepcopy(model), M.PromptTuningConfig(
        num_virtual_tokens=8, prompt_tuning_init="TEXT", prompt_tuning_init_text=text, tokenizer_name="minilm"))
    cyc = (t * 8)[:8]  # repeated cyclically, then truncated
    torch.testing.assert_close(peft.adapter_modules["default"].prompts(), table[cyc])
    peft = M.get_peft_model(copy.deepcopy(model), M.PromptTuningConfig(
        num_virtual_tokens=6, prompt_tuning_init="CLASS_LABELS", class_labels=["terrible", "unwatchable"],
        tokenizer_name="minilm"))
    p = peft.adapter_modules["default"].prompts()
    torch.testing.assert_close(p[0], table[token_ids(tok, "terrible")].mean(0))
    pieces = token_ids(tok, "unwatchable")
    assert len(pieces) > 1  # a word of several pieces: their mean
    torch.testing.assert_close(p[1], table[pieces].mean(0))
    frequent = set(frequent_tokens("minilm", 5000))
    rows = [int((table == r).all(1).nonzero()[0]) for r in p[2:]]
    assert len(set(rows)) == 4 and set(rows) <= frequent
    assert tok.token_to_id("the") in frequent_tokens("minilm", 20)


def test_prefix_word_init_is_the_models_own_keys_and_values():
    torch.manual_seed(0)
    lm = mt.GPTModel(Cfg.tiny(norm_first=True, type_vocab_size=0, vocab_size=30522)).eval()
    text = "summarize the review"
    t = token_ids(load_base_tokenizer("minilm"), text)
    config = M.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=len(t), prefix_projection=False,
                                  prefix_init="WORDS", prefix_init_text=text, tokenizer_name="minilm")
    peft = M.get_peft_model(lm, config)
    cache = lm(input_ids=torch.tensor([t]), use_cache=True).past_key_values
    for (k, v), (pk, pv) in zip(cache, peft.adapter_modules["default"].past_key_values(1)):
        torch.testing.assert_close(pk, k) and torch.testing.assert_close(pv, v)


# ---- P-tuning templates and verbalizers ----------------------------------------------------------------------
def test_template_puts_virtual_tokens_at_the_pseudo_positions():
    tok = load_base_tokenizer("minilm")
    rows = fill_template(tok, "[P][P] {x} [P] it was [MASK] .", ["a fine film", "bad"], pseudo_token_id=1, max_length=12)
    assert rows[0][0] == tok.token_to_id("[CLS]") and rows[0][1:3] == [1, 1] and rows[0][-1] == tok.token_to_id("[SEP]")
    assert all(r.count(1) == 3 and tok.token_to_id("[MASK]") in r and len(r) <= 12 for r in rows)
    torch.manual_seed(0)
    model = mt.BertForSequenceClassification(Cfg.tiny(vocab_size=30522), num_labels=2).eval()
    config = M.PromptEncoderConfig(num_virtual_tokens=3, encoder_hidden_size=8, template="[P][P] {x} [P] it was [MASK] .",
                                   pseudo_token_id=1)
    peft = M.get_peft_model(model, config)
    x = torch.tensor([rows[1] + [0] * (len(rows[0]) - len(rows[1])), rows[0]])
    mask = (torch.arange(x.size(1)) < torch.tensor([[len(rows[1])], [len(rows[0])]])).long()
    x[0, len(rows[1]):] = 1  # padding that happens to hold the pseudo id is never a virtual token
    kw = peft.adapter_modules["default"](model, input_ids=x, attention_mask=mask)
    emb, P = kw["inputs_embeds"], peft.adapter_modules["default"].prompts()
    slots = (x == 1) & mask.bool()
    torch.testing.assert_close(emb[slots].view(2, 3, -1), P.expand(2, -1, -1))
    torch.testing.assert_close(emb[~slots], model.bert.embeddings.word_embeddings(x)[~slots])
    with pytest.raises(ValueError, match="num_virtual_tokens=3 pseudo tokens"):
        peft(input_ids=x[:, 3:], attention_mask=mask[:, 3:])


def test_verbalizer_reads_the_last_real_position():
    lm = gpt()
    peft = trained(M.get_peft_model(lm, M.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2)))
    x, mask = ids(2, 6), torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    scores = verbalizer_scores(peft, {"input_ids": x, "attention_mask": mask}, [7, 9])
    logits = peft(input_ids=x, attention_mask=mask).logits
    torch.testing.assert_close(scores, torch.stack([logits[0, 7, [7, 9]], logits[1, 5, [7, 9]]]))


# ---- bad input ---------------------------------------------------------------------------------------------------
def test_too_many_virtual_tokens_name_the_field():
    with pytest.raises(ValueError, match="num_virtual_tokens=64"):
        M.get_peft_model(bert(), M.PromptTuningConfig(num_virtual_tokens=64))  # tiny: 64 positions
    peft = M.get_peft_model(bert(), M.PromptTuningConfig(num_virtual_tokens=60))
    with pytest.raises(ValueError, match="num_virtual_tokens=60 \\+ input length T=7"):
        peft(input_ids=ids())
    peft = M.get_peft_model(bert(), M.PrefixTuningConfig(num_virtual_tokens=60))
    with pytest.raises(ValueError, match="num_virtual_tokens=60 \\+ input length T=7"):
        peft(input_ids=ids())


def test_prefix_refuses_a_second_past():
    peft = M.get_peft_model(gpt(), M.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2))
    with pytest.raises(ValueError, match="past_key_values"):
        peft(input_ids=ids(1), past_key_values=peft.adapter_modules["default"].past_key_values(1))


def test_bake_needs_an_input_side_method():
    with pytest.raises(ValueError, match="bake"):
        M.get_peft_model(bert(), M.LoraConfig(r=2)).bake()
