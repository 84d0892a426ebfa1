"""Pretrain the three bases, cache them as safetensors checkpoints, load them back.

    python -m minitransformer.pretrain mini-bert-mlm mini-bert mini-gpt [--force]

- `mini-bert-mlm`: masked-language modelling from scratch (Devlin et al. 2019, arXiv:1810.04805). 15 % of the
  non-special tokens are chosen; of those 80 % become [MASK], 10 % a random token, 10 % stay. The loss is
      L_MLM = - mean_{i masked} log p(x_i | x_masked)
  computed with `BertForMaskedLM(masked_only=True)`: the vocabulary projection runs at masked positions only.
- `mini-bert`: distilled from the MiniLM teacher (see distill.py).
- `mini-gpt`: causal language modelling from scratch,  L_LM = - mean_t log p(x_{t+1} | x_{<=t}).

Every recipe is seeded, uses AdamW with a linear warm-up then a cosine decay,
    lr_s = lr (s + 1) / W  (s < W),   lr_s = lr (1 + cos(pi (s - W) / (N - W))) / 2  (s >= W),
a fixed number of steps sized for <= 10 minutes on 2 CPU cores. There is deliberately no wall-clock stop: a
checkpoint must depend on the seed only, not on how busy the machine was (`metrics.json` records the seconds). Corpus: `data/processed/pretrain.txt`, every 50th line held out
(`heldout_split`) for validation loss / perplexity; tokenizers are trained on the other lines.

A checkpoint is a folder `data/checkpoints/<name>/` (or `<name>-quick/` under QUICK=1, a small fraction of the
budget for CI, so the two never mix): `model.safetensors`, `config.json`, `tokenizer.json`, `metrics.json`.
`load_pretrained(name)` trains the base first when its folder is missing; loading never unpickles anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .bert import BertForMaskedLM, BertForSequenceClassification, BertModel
from .config import TransformerConfig
from .datasets import DATA_DIR, minilm_dir, pretrain_corpus_path
from .gpt import GPTForSequenceClassification, GPTModel
from .hf_weights import load_hf_weights
from .tokenizer import BERT_SPECIALS, EOT, load_tokenizer, minilm_tokenizer, train_byte_bpe, train_wordpiece

NAMES = ("mini-bert-mlm", "mini-bert", "mini-gpt", "minilm")
TRAINED = NAMES[:3]
CHECKPOINT_DIR = DATA_DIR / "checkpoints"
SEED = 0


# ---- switches and paths --------------------------------------------------------------------------------
def is_quick(quick: bool | None = None) -> bool:
    """`quick`, or when None the environment: QUICK=1 (set in CI) means quick."""
    return os.environ.get("QUICK") == "1" if quick is None else bool(quick)


def show_progress() -> bool:
    return not (os.environ.get("QUICK") == "1" or os.environ.get("CI"))


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown base {name!r}; allowed names: {', '.join(NAMES)}")


def checkpoint_dir(name: str, quick: bool | None = None) -> Path:
    """`data/checkpoints/<name>/`, or `<name>-quick/` in quick mode."""
    _check_name(name)
    return CHECKPOINT_DIR / (name + ("-quick" if is_quick(quick) else ""))


# ---- checkpoints ---------------------------------------------------------------------------------------
def save_checkpoint(folder: str | Path, model: BertModel | GPTModel, tokenizer, metrics: dict,
                    mlm_head: dict[str, torch.Tensor] | None = None) -> Path:
    """Write model.safetensors, config.json, tokenizer.json and metrics.json into `folder` (and
    mlm_head.safetensors, the MLM head, whose decoder is the tied word embeddings, for an MLM-pretrained BERT)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    if mlm_head is not None:
        save_file({k: v.detach().contiguous().cpu() for k, v in mlm_head.items()}, str(folder / "mlm_head.safetensors"))
    (folder / "config.json").write_text(model.config.to_json())
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return folder


def load_checkpoint(folder: str | Path) -> tuple[BertModel | GPTModel, object]:
    """(model in eval mode, tokenizer) from a folder written by `save_checkpoint` (safetensors only)."""
    folder = Path(folder)
    config = TransformerConfig.from_dict(json.loads((folder / "config.json").read_text()))
    model = GPTModel(config) if config.norm_first else BertModel(config)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.eval(), load_tokenizer(folder / "tokenizer.json")


def load_masked_lm(name: str = "mini-bert-mlm", quick: bool | None = None) -> tuple[BertForMaskedLM, object]:
    """(BertForMaskedLM in eval mode, tokenizer) for fill-mask: the trunk and the MLM head it was pretrained
    with. Only `mini-bert-mlm` has one (MiniLM ships without its MLM head; `mini-bert` is distilled)."""
    _check_name(name)
    folder = checkpoint_dir(name, quick)
    if name != "mini-bert-mlm":
        raise ValueError(f"base {name!r} has no MLM head; allowed: 'mini-bert-mlm'")
    trunk, tok = load_pretrained(name, quick)
    model = BertForMaskedLM(trunk.config)
    model.bert.load_state_dict(trunk.state_dict(), strict=False)  # the MLM model's trunk has no pooler
    model.mlm_head.load_state_dict(load_file(str(folder / "mlm_head.safetensors")))  # decoder = word embeddings
    return model.eval(), tok


def load_minilm() -> tuple[BertModel, object]:
    """The real all-MiniLM-L6-v2 weights in our BertModel, and MiniLM's tokenizer."""
    model = BertModel(TransformerConfig.minilm_l6(extra={"name": "minilm"}))
    load_hf_weights(model, load_file(str(minilm_dir() / "model.safetensors")))
    return model.eval(), minilm_tokenizer()


def load_pretrained(name: str, quick: bool | None = None) -> tuple[BertModel | GPTModel, object]:
    """(trunk, tokenizer) of base `name`: BertModel for the BERTs and minilm, GPTModel for mini-gpt.
    A missing checkpoint is pretrained first. `quick=None` reads QUICK from the environment."""
    _check_name(name)
    if name == "minilm":
        return load_minilm()
    folder = checkpoint_dir(name, quick)
    if not (folder / "model.safetensors").exists():
        pretrain(name, quick=quick)
    return load_checkpoint(folder)


def load_pretrained_classifier(name: str, num_labels: int, pooling: str = "mean", quick: bool | None = None):
    """(classifier, tokenizer): a fresh BertForSequenceClassification (pooling "mean" or "cls") whose trunk is
    base `name`, or a GPTForSequenceClassification for mini-gpt (`pooling` ignored: last real token)."""
    trunk, tokenizer = load_pretrained(name, quick)
    if isinstance(trunk, GPTModel):
        clf = GPTForSequenceClassification(trunk.config, num_labels)
        clf.gpt.load_state_dict(trunk.state_dict())
    else:
        clf = BertForSequenceClassification(trunk.config, num_labels, pooling=pooling)
        clf.bert.load_state_dict(trunk.state_dict())
    return clf, tokenizer


# ---- data ----------------------------------------------------------------------------------------------
def heldout_split(lines: list[str], every: int = 50) -> tuple[list[str], list[str]]:
    """(train, held-out): every `every`-th line (index % every == every - 1) is held out."""
    return ([t for i, t in enumerate(lines) if i % every != every - 1],
            [t for i, t in enumerate(lines) if i % every == every - 1])


def corpus_lines() -> list[str]:
    return [t for t in pretrain_corpus_path().read_text(encoding="utf-8").splitlines() if t.strip()]


def pack_blocks(ids_per_text: list[list[int]], block: int, sep: int, bos: int | None = None) -> torch.Tensor:
    """Concatenate texts (each followed by `sep`) and cut into rows of `block` tokens, each row starting with
    `bos` when given (BERT's [CLS]); the ragged tail is dropped. Returns (N, block)."""
    body = block - (bos is not None)
    stream = [t for ids in ids_per_text for t in ids + [sep]]
    n = len(stream) // body
    rows = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
    return rows if bos is None else torch.cat([torch.full((n, 1), bos), rows], 1)


def mask_tokens(input_ids: torch.Tensor, special_ids: list[int], mask_id: int, vocab_size: int,
                generator: torch.Generator, prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking. Returns (inputs, labels), labels = -100 except at the chosen positions. Special tokens
    (padding included) are never chosen; random replacements are drawn from the ids above the largest special
    id. That is "every non-special id" for this project's WordPiece and BPE, which put their specials first; on
    MiniLM's vocab.txt ([PAD] 0, [unused*] 1-99, [UNK] [CLS] [SEP] [MASK] 100-103) it also skips the unused ids."""
    eligible = ~torch.isin(input_ids, torch.tensor(special_ids))
    chosen = (torch.rand(input_ids.shape, generator=generator) < prob) & eligible
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    u = torch.rand(input_ids.shape, generator=generator)
    low = max(special_ids) + 1  # the specials are the first ids of our vocabularies
    rand_tok = torch.randint(low, vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), rand_tok, inputs)
    return inputs, labels


# ---- the loop ------------------------------------------------------------------------------------------
def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Multiplier of the base lr for update `step` (0-based) of `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def run_steps(params: list, loss_fn: Callable[[int], torch.Tensor], steps: int, lr: float, desc: str,
              warmup_ratio: float = 0.05, weight_decay: float = 0.01, progress: bool | None = None) -> dict:
    """AdamW + warm-up/cosine + clipping at 1 for `steps` updates of `loss_fn(step)`. Returns the loss curve
    (mean per 1/20 of the run), the first/last losses, steps done and seconds."""
    torch.set_flush_denormal(True)  # tiny gradients squared become denormal floats: 10-20x slower on x86 CPUs
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warmup, losses, start = max(1, round(warmup_ratio * steps)), [], time.perf_counter()
    bar = tqdm(total=steps, desc=desc, disable=not (show_progress() if progress is None else progress))
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * warmup_cosine(s, steps, warmup)
        loss = loss_fn(s)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    k = max(1, len(losses) // 20)
    curve = [round(sum(losses[i:i + k]) / len(losses[i:i + k]), 4) for i in range(0, len(losses), k)]
    return {"steps": len(losses),
            "seconds": round(time.perf_counter() - start, 1), "loss_first": losses[0],
            "loss_last": sum(losses[-k:]) / len(losses[-k:]), "loss_curve": curve, "losses": losses}


def epoch_batches(n: int, steps: int, batch_size: int, g: torch.Generator) -> torch.Tensor:
    """(steps, batch_size) row indices: shuffled epochs over `n` rows, one after the other."""
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(steps * batch_size // n + 1)])
    return order[: steps * batch_size].view(steps, batch_size)


def mlm_pretrain(config: TransformerConfig, blocks: torch.Tensor, steps: int, batch_size: int = 64,
                 lr: float = 1e-3, seed: int = SEED, special_ids: tuple[int, ...] = (0, 1, 2, 3, 4),
                 mask_id: int = 4, progress: bool | None = None):
    """MLM from scratch on `blocks` (N, T). Returns (BertForMaskedLM, stats). Same seed -> same losses."""
    torch.manual_seed(seed)
    model = BertForMaskedLM(config).train()
    g = torch.Generator().manual_seed(seed)
    batches = epoch_batches(len(blocks), steps, batch_size, g)

    def loss_fn(s: int) -> torch.Tensor:
        x = blocks[batches[s]]  # (B, T)
        inputs, labels = mask_tokens(x, list(special_ids), mask_id, config.vocab_size, g)
        return model(inputs, labels=labels, masked_only=True).loss

    stats = run_steps(list(model.parameters()), loss_fn, steps, lr, "mlm", progress=progress)
    return model, stats


def clm_pretrain(config: TransformerConfig, blocks: torch.Tensor, steps: int, batch_size: int = 32,
                 lr: float = 1e-3, seed: int = SEED, progress: bool | None = None):
    """Causal LM from scratch on `blocks` (N, T). Returns (GPTModel, stats). Same seed -> same losses."""
    torch.manual_seed(seed)
    model = GPTModel(config).train()
    batches = epoch_batches(len(blocks), steps, batch_size, torch.Generator().manual_seed(seed))

    def loss_fn(s: int) -> torch.Tensor:
        return model(blocks[batches[s]], labels=blocks[batches[s]]).loss  # blocks (B, T)

    stats = run_steps(list(model.parameters()), loss_fn, steps, lr, "causal lm", progress=progress)
    return model, stats


@torch.no_grad()
def heldout_loss(model, blocks: torch.Tensor, batch_size: int = 32, mlm_ids: dict | None = None) -> float:
    """Mean loss on held-out blocks (causal LM; or MLM with fixed seeded masks when `mlm_ids` is given).

    The mean of the per-batch mean losses. The recipes below pass a multiple of `batch_size` blocks of one length,
    so for the causal LM this is exactly the per-token mean; for MLM each batch holds a different number of
    masked tokens, so it differs slightly from the per-masked-token mean (kept, so that the figures recorded in
    metrics.json, README and notebook 02 stay reproducible)."""
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
    _check_name(name)
    if name == "minilm":
        raise ValueError("minilm is not pretrained here: load_pretrained('minilm') reads the real weights")
    quick, folder = is_quick(quick), checkpoint_dir(name, quick)
    if (folder / "model.safetensors").exists() and not force:
        return folder
    random.seed(SEED)
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    head = None
    if name == "mini-bert-mlm":
        model, tok, stats, head = pretrain_mini_bert_mlm(quick)
    elif name == "mini-gpt":
        model, tok, stats = pretrain_mini_gpt(quick)
    else:
        from .distill import pretrain_mini_bert
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
