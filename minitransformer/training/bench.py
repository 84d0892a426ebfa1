"""Training throughput of the mini models, and how close it gets to this machine's matmul peak.

    python -m minitransformer.training.bench [--steps 10] [--batch 32] [--seq 128] [--threads N]

Model FLOPs per trained token (Kaplan et al. 2020; PaLM's appendix B adds the attention term):

    6 N + 12 L T D        N = weights used in matrix products (q, k, v, o, fc1, fc2, and the LM head),
                          6 = 2 (multiply-add) x 3 (forward + backward for inputs and weights)

The "peak" is measured in the same run: the best of several fp32 2048 x 2048 matrix products. The fraction
(achieved / peak) is the model FLOPs utilisation (MFU) against what this CPU really does, not a datasheet.
"""

from __future__ import annotations

import argparse
import time

import torch

from ..bert import BertForSequenceClassification
from ..config import TransformerConfig
from ..gpt import GPTModel


def matmul_peak_flops(n: int = 2048, repeats: int = 8) -> float:
    """Best observed FLOP/s of an (n x n) @ (n x n) fp32 product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool, caches
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def matmul_params(model: torch.nn.Module, config: TransformerConfig, lm_head: bool) -> int:
    """N: weights that take part in a matrix product per token (embedding lookups excluded)."""
    n = sum(m.weight.numel() for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and "pooler" not in name)
    return n + (config.vocab_size * config.d_model if lm_head else 0)


def train_throughput(name: str, steps: int, batch: int, seq: int) -> dict:
    """Time `steps` AdamW training steps (after 2 warm-up steps) and return tokens/s and FLOP/s."""
    torch.manual_seed(0)
    if name == "mini_gpt":
        config = TransformerConfig.mini_gpt(use_sdpa=True)
        model = GPTModel(config)
        n = matmul_params(model, config, lm_head=True)
    else:
        config = TransformerConfig.mini_bert(use_sdpa=True)
        model = BertForSequenceClassification(config, num_labels=2)
        n = matmul_params(model, config, lm_head=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(1, config.vocab_size, (batch, seq))
    y = torch.randint(0, 2, (batch,))

    def step() -> None:
        out = model(x, labels=x) if name == "mini_gpt" else model(x, labels=y)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - t) / steps
    tokens = batch * seq
    flops_per_token = 6 * n + 12 * config.n_layers * seq * config.d_model
    return {"model": name, "batch": batch, "seq": seq, "ms_per_step": 1e3 * seconds,
            "tokens_per_s": tokens / seconds, "flops_per_s": tokens * flops_per_token / seconds, "N": n}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_peak_flops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"matmul peak (fp32 2048^3, best of 8): {peak / 1e9:.1f} GFLOP/s")
    print("| model | batch x seq | N (matmul weights) | ms/step | tokens/s | GFLOP/s | fraction of matmul peak |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in ("mini_gpt", "mini_bert"):
        r = train_throughput(name, args.steps, args.batch, args.seq)
        print(f"| {name} | {r['batch']} x {r['seq']} | {r['N']:,} | {r['ms_per_step']:.0f} | "
              f"{r['tokens_per_s']:,.0f} | {r['flops_per_s'] / 1e9:.1f} | {r['flops_per_s'] / peak:.0%} |")


if __name__ == "__main__":
    main()
