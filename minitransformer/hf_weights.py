"""Load Hugging Face BERT and GPT-2 state dicts into our models by an explicit name map.

Why explicit: a student can read, line by line, which tensor of the reference implementation becomes which
tensor here. Two things differ from a plain rename:
- GPT-2 uses `Conv1D` layers, whose weight is stored (in, out), the transpose of `nn.Linear`'s (out, in);
- GPT-2 fuses q, k, v into one `c_attn` (D, 3D); we split it into three D x D matrices.
Tied output matrices (`lm_head.weight`, `cls.predictions.decoder.weight`) are not loaded: ours are tied by
construction to the word embeddings. Buffers (`position_ids`, GPT-2's causal `attn.bias`) and BERT's
next-sentence head (`cls.seq_relationship`) have no counterpart here; they are listed in the returned report.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from .bert import BertForMaskedLM, BertForSequenceClassification, BertModel
from .gpt import GPTForSequenceClassification, GPTModel

_BERT_RULES = [  # (HF regex, our name); HF's old TF names gamma/beta are normalised to weight/bias first
    (r"embeddings\.word_embeddings\.weight", "embeddings.word_embeddings.weight"),
    (r"embeddings\.position_embeddings\.weight", "embeddings.position_embeddings.weight"),
    (r"embeddings\.token_type_embeddings\.weight", "embeddings.token_type_embeddings.weight"),
    (r"embeddings\.LayerNorm\.(weight|bias)", r"embeddings.norm.\1"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.query\.(weight|bias)", r"layers.\1.attn.q.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.key\.(weight|bias)", r"layers.\1.attn.k.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.value\.(weight|bias)", r"layers.\1.attn.v.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"layers.\1.attn.o.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"layers.\1.ffn.fc1.\2"),
    (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"layers.\1.ffn.fc2.\2"),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)", r"layers.\1.ffn_norm.\2"),
    (r"pooler\.dense\.(weight|bias)", r"pooler.dense.\1"),
]
_BERT_HEADS = [
    (r"cls\.predictions\.transform\.dense\.(weight|bias)", r"mlm_head.dense.\1"),
    (r"cls\.predictions\.transform\.LayerNorm\.(weight|bias)", r"mlm_head.norm.\1"),
    (r"cls\.predictions\.bias", "mlm_head.bias"),
    (r"classifier\.(weight|bias)", r"classifier.\1"),
]
_BERT_SKIP = r"(bert\.)?embeddings\.position_ids|cls\.predictions\.decoder\.(weight|bias)|cls\.seq_relationship\..*"

_GPT_RULES = [  # (HF regex, our name, transpose Conv1D?)
    (r"wte\.weight", "embeddings.word_embeddings.weight", False),
    (r"wpe\.weight", "embeddings.position_embeddings.weight", False),
    (r"h\.(\d+)\.ln_1\.(weight|bias)", r"layers.\1.attn_norm.\2", False),
    (r"h\.(\d+)\.attn\.c_proj\.(weight|bias)", r"layers.\1.attn.o.\2", True),
    (r"h\.(\d+)\.ln_2\.(weight|bias)", r"layers.\1.ffn_norm.\2", False),
    (r"h\.(\d+)\.mlp\.c_fc\.(weight|bias)", r"layers.\1.ffn.fc1.\2", True),
    (r"h\.(\d+)\.mlp\.c_proj\.(weight|bias)", r"layers.\1.ffn.fc2.\2", True),
    (r"ln_f\.(weight|bias)", r"final_norm.\1", False),
]
_GPT_SKIP = r"h\.\d+\.attn\.(bias|masked_bias)|lm_head\.weight"


def _convert_bert(sd: dict[str, torch.Tensor], ours: str) -> tuple[dict, list]:
    out, ignored = {}, []
    for name, t in sd.items():
        name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
        if re.fullmatch(_BERT_SKIP, name):
            ignored.append(name)
            continue
        body = name[len("bert."):] if name.startswith("bert.") else name
        for pat, rep in _BERT_RULES:
            if re.fullmatch(pat, body):
                out[ours + re.sub(pat, rep, body)] = t
                break
        else:
            for pat, rep in _BERT_HEADS:
                if re.fullmatch(pat, name):
                    out[re.sub(pat, rep, name)] = t
                    break
            else:
                out["<unmapped> " + name] = t
    return out, ignored


def _convert_gpt(sd: dict[str, torch.Tensor], ours: str) -> tuple[dict, list]:
    out, ignored = {}, []
    for name, t in sd.items():
        body = name[len("transformer."):] if name.startswith("transformer.") else name
        if re.fullmatch(_GPT_SKIP, body):
            ignored.append(name)
            continue
        m = re.fullmatch(r"h\.(\d+)\.attn\.c_attn\.(weight|bias)", body)
        if m:  # fused (D, 3D) Conv1D -> three (D, D) Linear weights
            i, kind = m.groups()
            parts = t.chunk(3, dim=-1)
            for proj, p in zip("qkv", parts):
                out[f"{ours}layers.{i}.attn.{proj}.{kind}"] = p.T.contiguous() if kind == "weight" else p
            continue
        if name == "score.weight":
            out["classifier.weight"] = t
            continue
        for pat, rep, transpose in _GPT_RULES:
            if re.fullmatch(pat, body):
                out[ours + re.sub(pat, rep, body)] = t.T.contiguous() if transpose and t.dim() == 2 else t
                break
        else:
            out["<unmapped> " + name] = t
    return out, ignored


def load_hf_weights(model: nn.Module, state_dict: dict[str, torch.Tensor],
                    allow_missing: tuple[str, ...] = ()) -> dict:
    """Copy a Hugging Face BERT or GPT-2 state dict into `model` (in place).

    `allow_missing`: prefixes of our parameter names that may stay at their initial values, e.g.
    `("classifier.",)` when loading a base checkpoint into a classifier. Any other missing key, any key
    that cannot be mapped, or any shape mismatch raises `ValueError` listing them all.
    Returns a report: {"loaded": [...], "ignored": [...], "left_at_init": [...]}.
    """
    if isinstance(model, (BertForSequenceClassification, BertForMaskedLM)):
        converted, ignored = _convert_bert(state_dict, "bert.")
    elif isinstance(model, BertModel):
        converted, ignored = _convert_bert(state_dict, "")
    elif isinstance(model, GPTForSequenceClassification):
        converted, ignored = _convert_gpt(state_dict, "gpt.")
    elif isinstance(model, GPTModel):
        converted, ignored = _convert_gpt(state_dict, "")
    else:
        raise ValueError(f"load_hf_weights supports BertModel, BertForMaskedLM, BertForSequenceClassification, "
                         f"GPTModel and GPTForSequenceClassification, got {type(model).__name__}")
    target = model.state_dict()
    unexpected = sorted(k.replace("<unmapped> ", "") for k in converted if k not in target)
    missing = sorted(k for k in target if k not in converted and not k.startswith(tuple(allow_missing)))
    mismatched = sorted(f"{k}: ours {tuple(target[k].shape)} vs given {tuple(v.shape)}"
                        for k, v in converted.items() if k in target and target[k].shape != v.shape)
    if unexpected or missing or mismatched:
        raise ValueError(
            f"cannot load weights into {type(model).__name__}:\n"
            f"  missing keys ({len(missing)}): {missing}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected}\n"
            f"  shape mismatches ({len(mismatched)}): {mismatched}"
        )
    with torch.no_grad():
        for k, v in converted.items():
            target[k].copy_(v)
    return {"loaded": sorted(converted), "ignored": sorted(ignored),
            "left_at_init": sorted(k for k in target if k not in converted)}
