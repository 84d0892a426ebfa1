"""End-to-end smoke run of the model package (`make smoke`): seconds, no data, no checkpoints.

Builds the three models from their presets, runs a forward pass with padding, generates a few tokens
with and without the KV cache, and prints shapes and parameter counts. Random weights: this shows the
machinery, not knowledge (the pretrained bases come with `python -m minitransformer.bases.pretrain`).
"""

from __future__ import annotations

import time

import torch

from ..bert import BertForSequenceClassification
from ..config import TransformerConfig
from ..gpt import GPTModel
from ..seq2seq import Transformer


def main() -> None:
    torch.manual_seed(0)
    bert = BertForSequenceClassification(TransformerConfig.mini_bert(), num_labels=2).eval()
    x = torch.randint(1000, 30000, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    out = bert(x, attention_mask=mask)
    print(f"mini_bert  {sum(p.numel() for p in bert.parameters()):>10,} params  logits {tuple(out.logits.shape)}")

    gpt = GPTModel(TransformerConfig.mini_gpt()).eval()
    prompt = torch.randint(0, 8192, (2, 5))
    for use_cache in (True, False):
        t = time.perf_counter()
        y = gpt.generate(prompt, 24, use_cache=use_cache)
        print(f"mini_gpt   {sum(p.numel() for p in gpt.parameters()):>10,} params  generate 24 tokens "
              f"use_cache={use_cache!s:5}: {1e3 * (time.perf_counter() - t):6.1f} ms  first ids {y[0, 5:11].tolist()}")

    s2s = Transformer(TransformerConfig.mini_seq2seq()).eval()
    src = torch.randint(3, 64, (2, 10))
    print(f"seq2seq    {sum(p.numel() for p in s2s.parameters()):>10,} params  generate -> "
          f"{tuple(s2s.generate(src, 8).shape)}")
    print("smoke run OK (random weights: `make demo` runs the real comparison on a pretrained base)")


if __name__ == "__main__":
    main()
