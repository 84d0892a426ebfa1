"""Pretrain the three bases, cache them as safetensors checkpoints, load them back.

    python -m minitransformer.bases.pretrain mini-bert-mlm mini-bert mini-gpt [--force]

- `mini-bert-mlm`: masked-language modelling from scratch (Devlin et al. 2019, arXiv:1810.04805). 15 % of the
  non-special tokens are chosen; of those 80 % become [MASK], 10 % a random token, 10 % stay. The loss is
      L_MLM = - mean_{i masked} log p(x_i | x_masked)
  computed with `BertForMaskedLM(masked_only=True)`: the vocabulary projection runs at masked positions only.
- `mini-bert`: distilled from the MiniLM teacher (see distill.py).
- `mini-gpt`: causal language modelling from scratch,  L_LM = - mean_t log p(x_{t+1} | x_{<=t}).

Every recipe is seeded and trains with the project's one loop (`minitransformer.training.train`): AdamW with a
5 % linear warm-up then a cosine decay,
    lr_s = lr (s + 1) / W  (s < W),   lr_s = lr (1 + cos(pi (s - W) / (N - W))) / 2  (s >= W),
clipping at 1, a fixed number of steps sized for <= 10 minutes on 2 CPU cores. There is deliberately no wall-clock stop: a
checkpoint must depend on the seed only, not on how busy the machine was (`metrics.json` records the seconds). Corpus: `data/processed/pretrain.txt`, every 50th line held out
(`heldout_split`) for validation loss / perplexity; tokenizers are trained on the other lines.

Checkpoints (`checkpoints.py`): `data/checkpoints/<name>/`, or `<name>-quick/` under QUICK=1 (a small fraction
of the budget, for CI). `load_pretrained(name)` trains the base first when its folder is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..bert import BertForMaskedLM, BertModel
from ..config import TransformerConfig
from ..gpt import GPTModel
from ..training.env import is_quick
from .checkpoints import (
    SEED,
    TRAINED,
    check_name,
    checkpoint_dir,
    classifier_from_trunk,
    load_checkpoint,
    load_minilm,
    random_base,
    save_checkpoint,
)
from .corpus import corpus_lines, epoch_batches, heldout_split, mask_tokens, pack_blocks, run_steps
from .distill import pretrain_mini_bert
from .tokenizer import BERT_SPECIALS, EOT, train_byte_bpe, train_wordpiece


# ---- loading (pretraining first when a checkpoint is missing) ------------------------------------------
def load_pretrained(name: str, quick: bool | None = None) -> tuple[BertModel | GPTModel, object]:
    """(trunk, tokenizer) of base `name`: BertModel for the BERTs, minilm and random, GPTModel for mini-gpt.
    A missing checkpoint is pretrained first. `quick=None` reads QUICK from the environment. "random" draws
    its weights from the current torch seed."""
    check_name(name)
    if name == "minilm":
        return load_minilm()
    if name == "random":
        return random_base()
    folder = checkpoint_dir(name, quick)
    if not (folder / "model.safetensors").exists():
        pretrain(name, quick=quick)
    return load_checkpoint(folder)


def load_pretrained_classifier(name: str, num_labels: int, pooling: str = "mean", quick: bool | None = None):
    """(classifier, tokenizer): a fresh BertForSequenceClassification (pooling "mean" or "cls") whose trunk is
    base `name`, or a GPTForSequenceClassification for mini-gpt (`pooling` ignored: last real token)."""
    trunk, tokenizer = load_pretrained(name, quick)
    return classifier_from_trunk(trunk, num_labels, pooling), tokenizer


def load_masked_lm(name: str = "mini-bert-mlm", quick: bool | None = None) -> tuple[BertForMaskedLM, object]:
    """(BertForMaskedLM in eval mode, tokenizer) for fill-mask: the trunk and the MLM head it was pretrained
    with. Only `mini-bert-mlm` has one (MiniLM ships without its MLM head; `mini-bert` is distilled)."""
    check_name(name)
    if name != "mini-bert-mlm":
        raise ValueError(f"base {name!r} has no MLM head; allowed: 'mini-bert-mlm'")
    trunk, tok = load_pretrained(name, quick)
    model = BertForMaskedLM(trunk.config)
    model.bert.load_state_dict(trunk.state_dict(), strict=False)  # the MLM model's trunk has no pooler
    folder = checkpoint_dir(name, quick)
    model.mlm_head.load_state_dict(load_file(str(folder / "mlm_head.safetensors")))  # decoder = word embeddings
    return model.eval(), tok


def mlm_pretrain(config: TransformerConfig, blocks: torch.Tensor, steps: int, batch_size: int = 64,
                 lr: float = 1e-3, seed: int = SEED, special_ids: tuple[int, ...] = (0, 1, 2, 3, 4),
                 mask_id: int = 4, progress: bool | None = None):
    """MLM from scratch on `blocks` (N, T). Returns (BertForMaskedLM, stats). Same seed -> same losses."""
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    g = torch.Generator().manual_seed(seed)
    batches = []
    for idx in epoch_batches(len(blocks), steps, batch_size, g):  # masks drawn once, in step order
        inputs, labels = mask_tokens(blocks[idx], list(special_ids), mask_id, config.vocab_size, g)  # (B, T)
        batches.append({"input_ids": inputs, "labels": labels})

    def loss_fn(m: BertForMaskedLM, b: dict) -> torch.Tensor:  # vocabulary projection at masked positions only
        return m(b["input_ids"], labels=b["labels"], masked_only=True).loss

    stats = run_steps(model, batches, loss_fn, lr, "mlm", progress=progress)
    return model, stats


def clm_pretrain(config: TransformerConfig, blocks: torch.Tensor, steps: int, batch_size: int = 32,
                 lr: float = 1e-3, seed: int = SEED, progress: bool | None = None):
    """Causal LM from scratch on `blocks` (N, T). Returns (GPTModel, stats). Same seed -> same losses."""
    torch.manual_seed(seed)
    model = GPTModel(config)
    order = epoch_batches(len(blocks), steps, batch_size, torch.Generator().manual_seed(seed))
    batches = [{"input_ids": blocks[idx], "labels": blocks[idx]} for idx in order]  # (B, T); the model shifts
    stats = run_steps(model, batches, None, lr, "causal lm", progress=progress)
    return model, stats


@torch.no_grad()
def heldout_loss(model, blocks: torch.Tensor, batch_size: int = 32, mlm_ids: dict | None = None) -> float:
    """Mean loss on held-out blocks (causal LM; or MLM with fixed seeded masks when `mlm_ids` is given).

    The mean of the per-batch mean losses. The recipes below pass a multiple of `batch_size` blocks of one length,
    so for the causal LM this is exactly the per-token mean; for MLM each batch holds a different number of
    masked tokens, so it differs slightly from the per-masked-token mean."""
    model.eval()
    g, total = torch.Generator().manual_seed(1234), []
    for i in range(0, len(blocks), batch_size):
        x = blocks[i:i + batch_size]
        if mlm_ids is None:
            total.append(float(model(x, labels=x).loss))
        else:
            inputs, labels = mask_tokens(x, mlm_ids["special"], mlm_ids["mask"], model.config.vocab_size, g)
            total.append(float(model(inputs, labels=labels, masked_only=True).loss))
    model.train()
    return sum(total) / len(total)


# ---- the recipes ---------------------------------------------------------------------------------------
def _budget(quick: bool, full: int, frac: float = 0.04) -> int:
    return max(10, int(full * frac)) if quick else full


def pretrain_mini_bert_mlm(quick: bool) -> tuple[BertModel, object, dict, dict]:
    lines, held = heldout_split(corpus_lines())
    tok = train_wordpiece(lines)
    enc = lambda texts: [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]  # noqa: E731
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    blocks, val = pack_blocks(enc(lines), 64, sep, cls), pack_blocks(enc(held), 64, sep, cls)[:64]
    config = TransformerConfig.mini_bert(vocab_size=tok.get_vocab_size(), extra={"name": "mini-bert-mlm"})
    ids = {"special": [tok.token_to_id(t) for t in BERT_SPECIALS], "mask": tok.token_to_id("[MASK]")}
    mlm, stats = mlm_pretrain(config, blocks, _budget(quick, 1000), batch_size=64, lr=1e-3,
                              special_ids=tuple(ids["special"]), mask_id=ids["mask"])
    stats["heldout_mlm_loss"] = heldout_loss(mlm, val, mlm_ids=ids)
    trunk = BertModel(config)  # the pooler stays at its seeded init: MLM does not train it
    trunk.load_state_dict(mlm.bert.state_dict(), strict=False)
    stats.update(tokens_per_step=64 * 64, train_blocks=len(blocks))
    return trunk, tok, stats, mlm.mlm_head.state_dict()  # dense, norm, bias; the decoder is tied, not stored


def pretrain_mini_gpt(quick: bool) -> tuple[GPTModel, object, dict]:
    lines, held = heldout_split(corpus_lines())
    tok = train_byte_bpe(lines)
    eot = tok.token_to_id(EOT)
    enc = lambda texts: [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]  # noqa: E731
    blocks, val = pack_blocks(enc(lines), 128, eot), pack_blocks(enc(held), 128, eot)[:128]
    config = TransformerConfig.mini_gpt(vocab_size=tok.get_vocab_size(), pad_token_id=eot, eos_token_id=eot,
                                        bos_token_id=eot, extra={"name": "mini-gpt", "pad": EOT})
    model, stats = clm_pretrain(config, blocks, _budget(quick, 220), batch_size=32, lr=1e-3)
    stats["heldout_loss"] = heldout_loss(model, val)
    stats["heldout_perplexity"] = math.exp(stats["heldout_loss"])
    stats["heldout_tokens"] = val.numel()
    model.eval()
    samples, g = [], torch.Generator().manual_seed(0)
    for prompt in ("And God said", "I don't know what", "Where are you going"):
        x = torch.tensor([tok.encode(prompt).ids])
        greedy = tok.decode(model.generate(x, 30)[0].tolist())
        sampled = tok.decode(model.generate(x, 30, do_sample=True, temperature=0.8, top_k=40, generator=g)[0].tolist())
        samples.append({"prompt": prompt, "greedy": greedy, "sampled": sampled})
    stats["samples"] = samples
    return model, tok, stats


def pretrain(name: str, quick: bool | None = None, force: bool = False) -> Path:
    """Pretrain base `name` into its checkpoint folder (skipped when it exists, unless `force`)."""
    check_name(name)
    if name not in TRAINED:
        raise ValueError(f"{name} is not pretrained here (allowed: {', '.join(TRAINED)}); load_pretrained({name!r}) "
                         f"reads the real weights (minilm) or draws them (random)")
    quick, folder = is_quick(quick), checkpoint_dir(name, quick)
    if (folder / "model.safetensors").exists() and not force:
        return folder
    random.seed(SEED)
    start = time.perf_counter()
    head = None
    if name == "mini-bert-mlm":
        model, tok, stats, head = pretrain_mini_bert_mlm(quick)
    elif name == "mini-gpt":
        model, tok, stats = pretrain_mini_gpt(quick)
    else:
        model, tok, stats = pretrain_mini_bert(quick)
    stats.pop("losses", None)
    metrics = {"name": name, "quick": quick, "seed": SEED, "total_seconds": round(time.perf_counter() - start, 1),
               "torch_threads": torch.get_num_threads(), **stats}
    return save_checkpoint(folder, model, tok, metrics, mlm_head=head)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pretrain the mini bases into data/checkpoints/.")
    parser.add_argument("names", nargs="+", choices=TRAINED)
    parser.add_argument("--force", action="store_true", help="retrain even if the checkpoint exists")
    args = parser.parse_args(argv)
    for name in args.names:
        folder = pretrain(name, force=args.force)
        metrics = json.loads((folder / "metrics.json").read_text())
        short = {k: v for k, v in metrics.items() if k not in ("loss_curve", "samples")}
        print(f"{name}: {folder}\n{json.dumps(short, indent=2)}")
        for s in metrics.get("samples", []):
            print(f"  greedy : {s['greedy']!r}\n  sampled: {s['sampled']!r}")


if __name__ == "__main__":
    main()
