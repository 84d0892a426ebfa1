"""Prompt tuning (Lester, Al-Rfou & Constant 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning",
arXiv:2104.08691, §2).

n learned vectors, the soft prompt P_e ∈ R^{n×D}, are put in front of the input's word embeddings X_e ∈ R^{T×D};
the frozen model reads the concatenation and only P_e trains:

    max_{P_e}  log Pr_θ(Y | [P_e ; X_e])              [P_e ; X_e] ∈ R^{(n+T)×D},  θ frozen

- Input layer only: the virtual tokens pass through every block like words, but nothing is added inside a block
  (prefix tuning, `methods/prefix_tuning.py`, adds keys and values in every layer instead).
- Init (`prompt_tuning_init`): "RANDOM" = U(-0.5, 0.5), the paper's (`peft` uses nn.Embedding's N(0, 1)); "TEXT" =
  the embeddings of a text's tokens, repeated cyclically up to n and truncated (as `peft`); "SAMPLE_VOCAB" = rows of
  n distinct tokens drawn from the `vocab_sample_size` most frequent tokens of the pretraining corpus (the paper:
  5,000 most common); "CLASS_LABELS" = each label word's embedding (the mean over its pieces when a word is several
  tokens), the remaining rows sampled vocabulary (the paper's best init at small scale).
- Positions: the virtual tokens take positions 0 .. n-1 and the real tokens n .. n+T-1, as in `peft`.
- Causal LM: the logits cover the n + T positions and the labels get n values of -100 in front, as in `peft`;
  `generate()` puts the prompt only into the first step, the KV cache carries it afterwards.
- Encoder-decoder: the prompt goes in front of the encoder's input only (the paper's T5 setting).
- Serving (the paper's argument): one frozen model, a different task's prompt per row of one batch
  (`PeftModel(..., adapter_names=[...])`, tested equal to running each task alone), and prompt ensembling:
  k prompts in one batch, majority vote (`ensemble_predict`).

Plugs in at: the input embeddings (`inputs_embeds`, `attention_mask`, and `labels` / `token_type_ids` grown by n),
through the module `prepare` returns, which `PeftModel.forward` / `generate` call; the base is not modified.

Count: n·D = 15,360 on BERT-base for n = 20 (+ 1,538 for a 2-label head = 16,898, the `peft` figure).
The shared machinery of input-layer virtual tokens (`SoftPrompt`) lives here; P-tuning (`methods/p_tuning.py`)
subclasses it with a reparameterisation encoder.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from minitransformer import TransformerConfig

from .api.config import PeftConfig, TaskType, check_choice, check_positive
from .api.registry import register
from .api.targets import model_family

INITS = ("RANDOM", "TEXT", "SAMPLE_VOCAB", "CLASS_LABELS")
TOKENIZERS = ("mini-bert", "mini-bert-mlm", "mini-gpt", "minilm")


# ---- helpers shared by the input-side methods -----------------------------------------------------------------
def word_embeddings(model: nn.Module) -> nn.Embedding:
    """The base's word-embedding table (the one `embeddings.word_embeddings` of every model family)."""
    for name, m in model.named_modules():
        if name.endswith("embeddings.word_embeddings"):
            return m
    raise ValueError(f"{type(model).__name__} has no `embeddings.word_embeddings`")


def load_base_tokenizer(name: str):
    """The tokenizer of a base: "minilm" and "mini-bert" share MiniLM's WordPiece; the others read the checkpoint's
    `tokenizer.json` (the base is pretrained first if missing)."""
    from minitransformer.bases.checkpoints import checkpoint_dir
    from minitransformer.bases.pretrain import load_pretrained
    from minitransformer.bases.tokenizer import load_tokenizer, minilm_tokenizer

    if name not in TOKENIZERS:
        raise ValueError(f"tokenizer_name={name!r} is not allowed; allowed: {TOKENIZERS}")
    if name in ("minilm", "mini-bert"):
        return minilm_tokenizer()
    path = checkpoint_dir(name) / "tokenizer.json"
    if not path.exists():
        load_pretrained(name)
    return load_tokenizer(path)


def token_ids(tokenizer, text: str) -> list[int]:
    """The ids of `text` without [CLS]/[SEP]: only the words."""
    return tokenizer.encode(text, add_special_tokens=False).ids


@functools.lru_cache(maxsize=8)
def frequent_tokens(tokenizer_name: str, k: int, lines: int = 20000) -> tuple[int, ...]:
    """The k most frequent token ids over the first `lines` lines of the pretraining corpus (ties: smaller id)."""
    from minitransformer.bases.datasets import pretrain_corpus_path

    tok = load_base_tokenizer(tokenizer_name)
    with open(pretrain_corpus_path(), encoding="utf-8") as f:
        texts = [line.strip() for _, line in zip(range(lines), f)]
    counts = Counter(i for enc in tok.encode_batch(texts, add_special_tokens=False) for i in enc.ids)
    special = {tok.token_to_id(s) for s in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<|endoftext|>")}
    ranked = sorted((i for i in counts if i not in special), key=lambda i: (-counts[i], i))
    return tuple(ranked[:k])


def grow_mask(mask: torch.Tensor | None, B: int, n: int, device) -> torch.Tensor | None:
    """(B, T) -> (B, n + T): n attended positions in front; None stays None (every position attended)."""
    if mask is None:
        return None
    return torch.cat([mask.new_ones(B, n), mask], dim=1)


# ---- the module: n virtual tokens at the input layer ---------------------------------------------------------
class SoftPrompt(nn.Module):
    """Input-layer virtual tokens: `forward(base, **kwargs)` returns the base's keyword arguments with the prompt in
    front of the word embeddings (or, with a P-tuning template, in place of the pseudo tokens). Subclasses give
    `prompts()`, the (n, D) matrix of virtual-token embeddings."""

    def __init__(self, config: PromptTuningConfig, model: nn.Module) -> None:
        super().__init__()
        self.config, self.family = config, model_family(model)
        self.n, self.max_positions = config.num_virtual_tokens, model.config.max_positions
        self.dim = word_embeddings(model).weight.size(1)  # D
        self.template = getattr(config, "template", None)  # P-tuning: where the virtual tokens go
        if self.n >= self.max_positions:
            raise ValueError(f"{type(config).__name__}.num_virtual_tokens={self.n} leaves no position for the input: "
                             f"the model has max_positions={self.max_positions}; allowed: 1 .. {self.max_positions - 1}")
        self.baked = False

    def prompts(self) -> torch.Tensor:  # (n, D)
        raise NotImplementedError

    def _row_prompts(self, B: int, prompts: torch.Tensor | None) -> torch.Tensor:  # (B, n, D)
        if prompts is None:
            return self.prompts().unsqueeze(0).expand(B, -1, -1)
        if tuple(prompts.shape) != (B, self.n, self.dim):
            raise ValueError(f"prompts must have shape (B={B}, n={self.n}, D={self.dim}), got {tuple(prompts.shape)}")
        return prompts

    def per_row(self, modules: list[SoftPrompt]) -> dict:
        """Keyword arguments of `forward` that give row b the prompt of `modules[b]` (mixed-task batches)."""
        if any(m.n != self.n for m in modules):
            raise ValueError(f"adapter_names: mixed-task batches need prompts of one length; got "
                             f"num_virtual_tokens {sorted({m.n for m in modules})}")
        cache = {id(m): m.prompts() for m in modules}
        return {"prompts": torch.stack([cache[id(m)] for m in modules])}  # (B, n, D)

    def embed_inputs(self, base: nn.Module, input_ids, inputs_embeds, attention_mask, prompts=None):
        """[P ; X]: (B, T) ids or (B, T, D) embeddings -> (B, n + T, D) and the mask grown to (B, n + T)."""
        x = word_embeddings(base)(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, D)
        B, T = x.shape[:2]
        if self.template is None and self.n + T > self.max_positions:
            raise ValueError(f"num_virtual_tokens={self.n} + input length T={T} = {self.n + T} exceeds the model's "
                             f"max_positions={self.max_positions}; truncate the input or use fewer virtual tokens")
        p = self._row_prompts(B, prompts).to(x.dtype)  # (B, n, D)
        if self.template is not None:  # P-tuning: virtual tokens in place of the pseudo tokens
            return self._fill_template(x, input_ids, attention_mask, p), attention_mask
        return torch.cat([p, x], dim=1), grow_mask(attention_mask, B, self.n, x.device)

    def _fill_template(self, x, input_ids, attention_mask, p):
        if input_ids is None:
            raise ValueError("a template needs input_ids (the pseudo tokens mark where the virtual tokens go), "
                             "got inputs_embeds")
        slots = input_ids == self.config.pseudo_token_id  # (B, T)
        if attention_mask is not None:
            slots &= attention_mask.bool()  # padding never holds a virtual token
        per_row = slots.sum(1)
        if not bool((per_row == self.n).all()):
            raise ValueError(f"template: every row must hold num_virtual_tokens={self.n} pseudo tokens "
                             f"(pseudo_token_id={self.config.pseudo_token_id}); got {per_row.tolist()}")
        out = x.clone()
        out[slots] = p.reshape(-1, p.size(-1))  # row-major order: row b's slots get p[b, 0 .. n-1]
        return out

    def forward(self, base: nn.Module, prompts: torch.Tensor | None = None, **kw) -> dict:
        """The base's keyword arguments with the virtual tokens in place. `prompts` (B, n, D) overrides the
        module's own per row (mixed-task batches, ensembles)."""
        n_added = 0 if self.template is not None else self.n
        if self.family == "seq2seq":  # the prompt goes in front of the encoder's input
            kw["inputs_embeds"], kw["attention_mask"] = self.embed_inputs(
                base, kw.pop("input_ids", None), kw.pop("inputs_embeds", None), kw.get("attention_mask"), prompts)
            return kw
        ids, emb = kw.pop("input_ids", None), kw.pop("inputs_embeds", None)
        kw["inputs_embeds"], kw["attention_mask"] = self.embed_inputs(base, ids, emb, kw.get("attention_mask"), prompts)
        B = kw["inputs_embeds"].size(0)
        if n_added and kw.get("token_type_ids") is not None:
            kw["token_type_ids"] = torch.cat([kw["token_type_ids"].new_zeros(B, n_added), kw["token_type_ids"]], 1)
        if n_added and self.config.task_type == TaskType.CAUSAL_LM and kw.get("labels") is not None:
            kw["labels"] = torch.cat([kw["labels"].new_full((B, n_added), -100), kw["labels"]], 1)  # as in peft
        if kw.get("past_key_values") is not None:
            raise ValueError("past_key_values: a soft prompt starts the sequence; generate() handles the KV cache")
        return kw

    @torch.no_grad()
    def generate(self, base: nn.Module, input_ids: torch.Tensor, max_new_tokens: int = 20, *,
                 attention_mask: torch.Tensor | None = None, prompts: torch.Tensor | None = None, **kw):
        """The base's `generate` with the prompt in the first step only (the KV cache carries it afterwards).
        Returns what the base returns for `input_ids`: GPT the prompt ids then the new ids, the encoder-decoder
        the new ids."""
        emb, mask = self.embed_inputs(base, input_ids, None, attention_mask, prompts)
        if self.family == "seq2seq":
            return base.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=max_new_tokens, **kw)
        new = base.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=max_new_tokens, **kw)  # (B, N)
        return torch.cat([input_ids, new], dim=1)

    # ---- baking: keep only the table of virtual tokens ----------------------------------------------------
    def bake(self) -> None:
        """Replace whatever computes the prompts by their values (inference; identical outputs)."""
        table = self.prompts().detach().clone()
        for name in list(self._modules):
            delattr(self, name)
        for name in [n for n, _ in self.named_parameters(recurse=False)]:
            delattr(self, name)
        self.prompt_table = nn.Parameter(table, requires_grad=False)
        self.baked = True


class PromptEmbedding(SoftPrompt):
    """Prompt tuning's module: the soft prompt itself, `prompt_embeddings` (n, D), trained directly."""

    def __init__(self, config: PromptTuningConfig, model: nn.Module) -> None:
        super().__init__(config, model)
        table = word_embeddings(model).weight  # (V, D)
        self.prompt_embeddings = nn.Embedding(self.n, self.dim)
        with torch.no_grad():
            self.prompt_embeddings.weight.copy_(initial_prompt(config, table))

    def prompts(self) -> torch.Tensor:  # (n, D)
        return self.prompt_table if self.baked else self.prompt_embeddings.weight


def initial_prompt(config: PromptTuningConfig, table: torch.Tensor) -> torch.Tensor:
    """The n initial virtual-token embeddings (n, D) of `config.prompt_tuning_init`, from the word table (V, D)."""
    n, (V, D) = config.num_virtual_tokens, table.shape
    g = torch.Generator().manual_seed(config.init_seed)
    if config.prompt_tuning_init == "RANDOM":
        return torch.rand(n, D, generator=g) - 0.5  # U(-0.5, 0.5)
    tok = load_base_tokenizer(config.tokenizer_name)
    if tok.get_vocab_size() > V:
        raise ValueError(f"tokenizer_name={config.tokenizer_name!r} has {tok.get_vocab_size()} tokens but the model's "
                         f"table has {V}; allowed: the tokenizer of this model's base")
    if config.prompt_tuning_init == "TEXT":
        ids = token_ids(tok, config.prompt_tuning_init_text)
        ids = (ids * (n // len(ids) + 1))[:n]  # repeated cyclically up to n, then truncated (as peft)
        return table[torch.tensor(ids)].detach().clone()
    pool = torch.tensor(frequent_tokens(config.tokenizer_name, config.vocab_sample_size))
    sampled = table[pool[torch.randperm(len(pool), generator=g)[:n]]].detach().clone()  # (n, D), distinct tokens
    if config.prompt_tuning_init == "SAMPLE_VOCAB":
        return sampled
    rows = [table[torch.tensor(token_ids(tok, w))].mean(0) for w in config.class_labels][:n]  # a word's pieces: mean
    return torch.cat([torch.stack(rows), sampled[len(rows):]], dim=0)


@register("prompt_tuning")
@dataclass
class PromptTuningConfig(PeftConfig):
    """Prompt tuning: n virtual tokens in front of the input (input layer only).

    num_virtual_tokens:       n (the paper's prompt length; 20 here, 100 in the paper's default on T5).
    prompt_tuning_init:       "RANDOM" (U(-0.5, 0.5)), "TEXT", "SAMPLE_VOCAB" or "CLASS_LABELS" (see the module).
    prompt_tuning_init_text:  the text for "TEXT".
    class_labels:             the label words for "CLASS_LABELS" ("terrible", "great"), one row each.
    tokenizer_name:           the base whose tokenizer reads the text / labels / corpus (`peft`'s
                              `tokenizer_name_or_path`): "mini-bert", "mini-bert-mlm", "mini-gpt" or "minilm".
    vocab_sample_size:        how many of the most frequent tokens "SAMPLE_VOCAB" samples from (the paper: 5,000).
    init_seed:                the seed of the random and sampled inits.
    """

    num_virtual_tokens: int = 20
    prompt_tuning_init: str = "RANDOM"
    prompt_tuning_init_text: str | None = None
    class_labels: list[str] | None = None
    tokenizer_name: str | None = None
    vocab_sample_size: int = 5000
    init_seed: int = 0

    # Prompt tuning's optimum is far above the weight-side methods': the paper trains at 0.3 with Adafactor.
    default_lr: ClassVar[float] = 3e-2
    # lr_grid: 1.0, then 3.0 added when trec chose the top each time (a grid must bracket what it finds)
    lr_grid: ClassVar[tuple[float, ...]] = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)
    noop_at_init: ClassVar[bool] = False  # the virtual tokens change what every real token attends to
    invalid_examples: ClassVar[list[tuple[dict, str]]] = PeftConfig.invalid_examples + [
        ({"num_virtual_tokens": 0}, "num_virtual_tokens"),
        ({"prompt_tuning_init": "ZEROS"}, "prompt_tuning_init"),
        ({"prompt_tuning_init": "TEXT", "tokenizer_name": "minilm"}, "prompt_tuning_init_text"),
        ({"prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "great"}, "tokenizer_name"),
        ({"prompt_tuning_init": "CLASS_LABELS", "tokenizer_name": "minilm"}, "class_labels"),
        ({"prompt_tuning_init": "SAMPLE_VOCAB", "tokenizer_name": "gpt2"}, "tokenizer_name"),
        ({"vocab_sample_size": 0}, "vocab_sample_size"),
    ]

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        check_positive(self, "num_virtual_tokens")
        check_choice(self, "prompt_tuning_init", INITS)
        check_positive(self, "vocab_sample_size")
        if self.prompt_tuning_init == "TEXT" and not (isinstance(self.prompt_tuning_init_text, str)
                                                      and self.prompt_tuning_init_text.strip()):
            raise ValueError(f"{name}.prompt_tuning_init_text={self.prompt_tuning_init_text!r}: "
                             f"prompt_tuning_init='TEXT' needs a non-empty text")
        if self.prompt_tuning_init == "CLASS_LABELS":
            if not self.class_labels or not all(isinstance(w, str) and w.strip() for w in self.class_labels):
                raise ValueError(f"{name}.class_labels={self.class_labels!r}: prompt_tuning_init='CLASS_LABELS' needs "
                                 f"a list of label words")
            if len(self.class_labels) > self.num_virtual_tokens:
                raise ValueError(f"{name}.class_labels has {len(self.class_labels)} words but num_virtual_tokens="
                                 f"{self.num_virtual_tokens}; allowed: at most one word per virtual token")
        if self.prompt_tuning_init != "RANDOM" and self.tokenizer_name not in TOKENIZERS:
            raise ValueError(f"{name}.tokenizer_name={self.tokenizer_name!r}: prompt_tuning_init="
                             f"{self.prompt_tuning_init!r} reads words, so it needs a tokenizer; allowed: {TOKENIZERS}")

    def prepare(self, model: nn.Module, adapter_name: str = "default") -> nn.Module:
        return PromptEmbedding(self, model)

    def expected_trainable_parameters(self, model_config: TransformerConfig, family: str,
                                      num_labels: int | None = None, pooler: bool = True) -> int:
        return self.num_virtual_tokens * model_config.d_model  # n·D

    def extra_positions(self) -> int:
        """Positions added to a causal LM's logits (n: the virtual tokens' own predictions, as in `peft`)."""
        in_front = getattr(self, "template", None) is None
        return self.num_virtual_tokens if self.task_type == TaskType.CAUSAL_LM and in_front else 0


@torch.no_grad()
def ensemble_predict(peft_model, adapter_names: list[str], batch: dict) -> torch.Tensor:
    """Prompt ensembling (Lester et al. §7, Table 3): each example replicated once per prompt in ONE batch of
    B·k rows (row b·k + j carries prompt j), then a majority vote over the k predicted classes (ties: the
    smallest class id). Returns (B,) predicted labels. Classification adapters only."""
    k = len(adapter_names)
    if k < 1:
        raise ValueError("adapter_names must name at least one prompt adapter")
    inputs = {key: v.repeat_interleave(k, 0) for key, v in batch.items() if key != "labels" and v is not None}
    B = next(iter(inputs.values())).size(0) // k
    logits = peft_model(**inputs, adapter_names=list(adapter_names) * B).logits  # (B·k, C)
    votes = logits.argmax(-1).view(B, k)  # (B, k)
    counts = torch.zeros(B, logits.size(-1), dtype=torch.long).scatter_add_(1, votes, torch.ones_like(votes))
    return counts.argmax(-1)  # first maximum = smallest class id among ties
