"""Checkpoint folders of the bases, the MiniLM reference weights and the random-weights control. No training here.

A checkpoint is a folder `data/checkpoints/<name>/` (or `<name>-quick/` under QUICK=1, so quick and full runs
never mix): `model.safetensors`, `config.json`, `tokenizer.json`, `metrics.json` (and `mlm_head.safetensors` for
the MLM-pretrained BERT). Loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..bert import BertForSequenceClassification, BertModel
from ..config import TransformerConfig
from ..gpt import GPTForSequenceClassification, GPTModel
from ..hf_weights import load_hf_weights
from ..training.env import is_quick
from .datasets import DATA_DIR, minilm_dir
from .tokenizer import load_tokenizer, minilm_tokenizer

NAMES = ("mini-bert-mlm", "mini-bert", "mini-gpt", "minilm", "random")
TRAINED = NAMES[:3]  # the bases `pretrain.py` makes
CHECKPOINT_DIR = DATA_DIR / "checkpoints"
SEED = 0


def check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown base {name!r}; allowed names: {', '.join(NAMES)}")


def checkpoint_dir(name: str, quick: bool | None = None) -> Path:
    """`data/checkpoints/<name>/`, or `<name>-quick/` in quick mode."""
    check_name(name)
    if name not in TRAINED:
        raise ValueError(f"base {name!r} has no checkpoint folder; allowed: {', '.join(TRAINED)}")
    return CHECKPOINT_DIR / (name + ("-quick" if is_quick(quick) else ""))


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


def load_minilm() -> tuple[BertModel, object]:
    """The real all-MiniLM-L6-v2 weights in our BertModel, and MiniLM's tokenizer."""
    model = BertModel(TransformerConfig.minilm_l6(extra={"name": "minilm"}))
    load_hf_weights(model, load_file(str(minilm_dir() / "model.safetensors")))
    return model.eval(), minilm_tokenizer()


def random_base() -> tuple[BertModel, object]:
    """The control without pretraining: the `mini-bert` geometry and MiniLM vocabulary, weights drawn from the
    current torch seed (call `torch.manual_seed` first)."""
    return BertModel(TransformerConfig.mini_bert(extra={"name": "random"})).eval(), minilm_tokenizer()


def classifier_from_trunk(trunk: BertModel | GPTModel, num_labels: int, pooling: str = "mean"):
    """A fresh classifier around a copy of `trunk`'s weights: BertForSequenceClassification (pooling "mean" or
    "cls"; with "mean" the trunk's pooler is left out) or GPTForSequenceClassification (last real token)."""
    if isinstance(trunk, GPTModel):
        clf = GPTForSequenceClassification(trunk.config, num_labels)
        clf.gpt.load_state_dict(trunk.state_dict())
        return clf
    clf = BertForSequenceClassification(trunk.config, num_labels, pooling=pooling)
    state = trunk.state_dict()
    if clf.bert.pooler is None:  # mean pooling builds no pooler: drop its weights, and only those
        state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    clf.bert.load_state_dict(state)
    return clf
