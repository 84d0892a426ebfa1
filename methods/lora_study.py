"""LoRA's own experiments, measured on a small base: the rank sweep (Hu et al. 2021, arXiv:2106.09685, Table 6),
the choice of weight matrices at an equal budget (its Table 5), the 16-bit counterpart of QLoRA, and the adapters
needed for the subspace analysis of its §7 (Figures 3 and 4).

    python -m methods.lora_study [--task rt] [--base mini-bert] [--seeds 3] [--steps 300] [--batch 32]
                                 [--lr-from compare_rt_mini-bert] [--variants NAME,...] [--cache] [--out DIR]

Each variant is a `LoraConfig` (below). The learning rates:
- the rank sweep trains at the lr LoRA (q, v, r = 8) chose on dev in the committed comparison `--lr-from` (the
  paper, too, keeps one lr across ranks, with α fixed at the first r it tried: here α = 8, so the scaling α / r is
  8 / r);
- the equal-budget variants that adapt other matrices (q alone, q k v o, all six) choose their own lr on seed-0
  dev over SWEEP_GRID, as the comparison does for a method (q and v at r = 8 is LoRA's own row, chosen there): the
  lr that suits q and v need not suit the FFN — on all six linears at r = 2 it collapses to the majority class;
- "all linear r=8" takes the lr QLoRA chose there, so that it is the like-for-like 16-bit counterpart of the
  `qlora` rows (same adapters, same lr, same seeds; only the frozen base is 4-bit there).
Seeds 0..S-1; dev and test are both reported; test chooses nothing.

Equal budget (Table 5's question: adapt one kind of matrix at a higher rank, or more kinds at a lower one?): on a
block of width D with an FFN of width F = 4D, q and v at r = 8 train 2·8·2D = 32D entries per layer; q alone at
r = 16 the same; q, k, v, o at r = 4 the same; every linear (q, k, v, o, fc1, fc2) trains r·(4·2D + 2(D + F))
= 18rD, and the nearest integer rank, r = 2, gives 36D (12.5 % more; r = 1 would give 18D).

The seed-0 adapters of r = 8 and r = 64 (q, v) and the seed-1 adapter of r = 64 are saved (their lora_A and
lora_B, fp32 safetensors) for the subspace similarity of §7, which notebook 12 computes from them.

Output, in `--out` (default data/results/, ignored by git; `make results` writes results/):
`lora_study_{task}_{base}.json`, `.md` and `.safetensors`. JSON:

    {"header", "task", "base", "steps", "batch", "seeds", "machine", "lr_from",
     "variants": {name: {"r", "target_modules", "trainable", "lr", "lr_from", "grid": {"<lr>": seed-0 dev} (swept
                         variants; else empty), "dev": {"mean", "std", "per_seed"},
                         "test": {"mean", "std", "per_seed"}, "ms_per_step"}}}

Safetensors keys: "{variant}/seed{s}/{module}.lora_A" (r, in) and ".lora_B" (out, r), e.g.
"r=64/seed0/bert.layers.3.attn.v.lora_A".
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import statistics
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from minitransformer.bases import datasets
from minitransformer.training.env import is_quick
from minitransformer.training.train import TrainConfig, evaluate, train

from . import compare
from .api.peft_model import get_peft_model
from .lora import LoraConfig, LoraLinear

ALL_LINEAR = ["attn.q", "attn.k", "attn.v", "attn.o", "ffn.fc1", "ffn.fc2"]
QV = ["attn.q", "attn.v"]
SWEEP = "sweep"  # a variant whose lr is chosen here, on seed-0 dev over SWEEP_GRID
SWEEP_GRID = (1e-3, 3e-3, 1e-2, 3e-2)
# name -> (r, target modules, the method of the comparison whose dev-chosen lr this variant trains at, or SWEEP)
VARIANTS: dict[str, tuple[int, list[str], str]] = {
    **{f"r={r}": (r, QV, "lora") for r in (1, 2, 4, 8, 16, 64)},        # Table 6: the rank, on q and v
    "q r=16": (16, ["attn.q"], SWEEP),                                   # Table 5: equal budget, 32D per layer
    "q,k,v,o r=4": (4, ["attn.q", "attn.k", "attn.v", "attn.o"], SWEEP),
    "all linear r=2": (2, ALL_LINEAR, SWEEP),                            # 36D per layer: the nearest integer rank
    "all linear r=8": (8, ALL_LINEAR, "qlora"),                          # QLoRA's adapters on the 16-bit base
}
SAVED = {("r=8", 0), ("r=64", 0), ("r=64", 1)}  # the adapters §7's subspace similarity needs
CACHE_DIR = datasets.DATA_DIR / "cache" / "lora_study"


def variant_config(name: str) -> LoraConfig:
    if name not in VARIANTS:
        raise ValueError(f"variant={name!r}; allowed: {', '.join(VARIANTS)}")
    r, targets, _ = VARIANTS[name]
    return LoraConfig(task_type="SEQ_CLS", r=r, target_modules=list(targets))


def adapter_tensors(peft) -> dict[str, torch.Tensor]:
    """{"{module}.lora_A": (r, in), "{module}.lora_B": (out, r)} of the active adapter of every LoRA layer."""
    out = {}
    for name, module in peft.base_model.named_modules():
        if isinstance(module, LoraLinear):
            out[f"{name}.lora_A"] = module.lora_A[peft.active_adapter].weight.detach().clone()
            out[f"{name}.lora_B"] = module.lora_B[peft.active_adapter].weight.detach().clone()
    return out


def train_variant(name: str, seed: int, base: str, data: dict, steps: int, batch: int, lr: float
                  ) -> tuple[dict, dict[str, torch.Tensor]]:
    """One run of one variant (a fresh copy of the base, as `compare.run_one` does): its measurements and its
    adapter tensors."""
    config = variant_config(name)
    torch.manual_seed(seed)  # the head's and the adapters' initialisation
    model, _ = compare.make_classifier(base, data["num_labels"])
    peft = get_peft_model(model, config)
    history = train(peft, data["train"], data["dev"], TrainConfig(max_steps=steps, batch_size=batch, lr=lr,
                                                                  seed=seed, eval_every=steps),
                    desc=f"LoRA {name} lr {lr:g} seed {seed}")
    r = {"trainable": peft.get_nb_trainable_parameters()[0], "dev_acc": history.final()["eval_metric"],
         "test_acc": evaluate(peft, data["test"], "accuracy")["accuracy"], "ms_per_step": history.ms_per_step}
    return r, adapter_tensors(peft)


_SOURCES = [inspect.getsource(train_variant), inspect.getsource(variant_config),
            inspect.getsource(inspect.getmodule(train)), inspect.getsource(LoraConfig), inspect.getsource(LoraLinear)]


def _key(name: str, seed: int, base: str, data: dict, steps: int, batch: int, lr: float) -> str:
    ident = [name, VARIANTS[name][:2], seed, base, steps, batch, repr(lr), compare.MAX_LENGTH, torch.__version__,
             torch.get_num_threads(), data.get("ident"), compare.run_key("lora", seed, base, data, steps, batch, lr),
             *_SOURCES]
    return hashlib.sha256(json.dumps(ident, default=str).encode()).hexdigest()[:20]


def cached_train_variant(name: str, seed: int, base: str, data: dict, steps: int, batch: int, lr: float,
                         cache: Path | None) -> tuple[dict, dict[str, torch.Tensor]]:
    """`train_variant`, read from `cache` (measurements as JSON, adapters as safetensors) when done before."""
    stem = cache / _key(name, seed, base, data, steps, batch, lr) if cache is not None else None
    if stem is not None and stem.with_suffix(".json").exists():
        return json.loads(stem.with_suffix(".json").read_text()), load_file(str(stem.with_suffix(".safetensors")))
    r, tensors = train_variant(name, seed, base, data, steps, batch, lr)
    if stem is not None:
        stem.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(stem.with_suffix(".safetensors")))
        stem.with_suffix(".json").write_text(json.dumps(r) + "\n")
    return r, tensors


def right_singular(A: torch.Tensor) -> torch.Tensor:
    """The right-singular unitary matrix of A (r, in) as columns, (in, r), strongest direction first."""
    return torch.linalg.svd(A.double(), full_matrices=False).Vh.T


def subspace_similarity(A1: torch.Tensor, A2: torch.Tensor, i: int, j: int) -> float:
    """The paper's §7.2 normalised subspace similarity (Hu et al., eq. 4, after Ham & Lee 2008):

        φ(A1, A2, i, j) = ‖U1[:, :i]ᵀ U2[:, :j]‖²_F / min(i, j)   ∈ [0, 1]

    with U the right-singular matrices of A1 (r1, in) and A2 (r2, in): 1 when the span of A1's top i directions
    contains that of A2's top j (or the reverse), 0 when they are orthogonal."""
    U1, U2 = right_singular(A1)[:, :i], right_singular(A2)[:, :j]
    return float((U1.T @ U2).pow(2).sum() / min(i, j))


def amplification(W: torch.Tensor, delta: torch.Tensor, r: int, seed: int = 0) -> dict[str, float]:
    """The paper's §7.3 (Table 7): how much of W lies in ΔW's top-r singular directions, ‖Uᵀ W Vᵀ‖_F with U, V
    ΔW's top-r left and right singular vectors, beside the same quantity for W's own top-r directions and for
    random orthonormal directions (drawn with `seed`); and ‖ΔW‖_F / ‖Uᵀ W Vᵀ‖_F, the amplification factor."""
    def projected(U: torch.Tensor, V: torch.Tensor) -> float:  # U (out, r), V (in, r)
        return float(torch.linalg.matrix_norm(U.T @ W.double() @ V))

    Ud, _, Vhd = torch.linalg.svd(delta.double(), full_matrices=False)
    Uw, _, Vhw = torch.linalg.svd(W.double(), full_matrices=False)
    g = torch.Generator().manual_seed(seed)
    Ur = torch.linalg.qr(torch.randn(W.shape[0], r, generator=g, dtype=torch.float64)).Q
    Vr = torch.linalg.qr(torch.randn(W.shape[1], r, generator=g, dtype=torch.float64)).Q
    on_delta = projected(Ud[:, :r], Vhd[:r].T)
    return {"delta_directions": on_delta, "W_directions": projected(Uw[:, :r], Vhw[:r].T),
            "random_directions": projected(Ur, Vr), "norm_W": float(torch.linalg.matrix_norm(W.double())),
            "norm_delta": float(torch.linalg.matrix_norm(delta.double())),
            "amplification": float(torch.linalg.matrix_norm(delta.double())) / on_delta}


def _stats(values: list[float]) -> dict:
    return {**compare._mean_std(values), "per_seed": values}


def study(task: str = "rt", base: str = "mini-bert", seeds: int = 3, steps: int = 300, batch: int = 32,
          lr_from: str = "compare_rt_mini-bert", variants: list[str] | None = None, quick: bool | None = None,
          cache: Path | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Train every variant with every seed; return (the JSON-ready results, the saved adapters)."""
    quick = is_quick(quick)
    names = list(variants or VARIANTS)
    for n in names:
        variant_config(n)  # an unknown name fails before any training
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds={seeds!r}; allowed: an int >= 1")
    chosen = compare.load_comparison(lr_from)["methods"]
    for n in names:
        method = VARIANTS[n][2]
        if method != SWEEP and method not in chosen:
            raise ValueError(f"lr_from={lr_from!r} has no {method!r} row to take the lr from; it has "
                             f"{', '.join(chosen)}")
    _, tokenizer = compare.make_classifier(base, 2)
    limit = 256 if quick else None
    data = compare.load_task(task, tokenizer, limit=limit)
    data["ident"] = [task, limit, None, None]
    where, start = compare.machine(), time.perf_counter()
    out, saved = {}, {}
    for n in names:
        r_, targets, method = VARIANTS[n]
        grid = {}
        if method == SWEEP:  # seed 0 over the grid, the lr with the best dev accuracy (test unseen)
            grid = {lr: cached_train_variant(n, 0, base, data, steps, batch, lr, cache)[0]["dev_acc"]
                    for lr in SWEEP_GRID}
            lr = compare.choose_lr({k: [v] for k, v in grid.items()})
        else:
            lr = chosen[method]["best_lr"]
        runs = []
        for s in range(seeds):
            r, tensors = cached_train_variant(n, s, base, data, steps, batch, lr, cache)
            runs.append(r)
            if (n, s) in SAVED:
                saved.update({f"{n}/seed{s}/{k}": v for k, v in tensors.items()})
        out[n] = {"r": r_, "target_modules": targets, "trainable": runs[0]["trainable"], "lr": lr,
                  "lr_from": ("seed-0 dev over " + ", ".join(f"{x:g}" for x in SWEEP_GRID)) if grid else
                  f"{method} in results/{lr_from}", "grid": {f"{k:g}": v for k, v in grid.items()},
                  "dev": _stats([r["dev_acc"] for r in runs]), "test": _stats([r["test_acc"] for r in runs]),
                  "ms_per_step": statistics.fmean(r["ms_per_step"] for r in runs)}
    minutes = (time.perf_counter() - start) / 60
    header = (f"Task `{task}`, base `{base}`, all training labels, {steps} steps x batch {batch}; the rank sweep at "
              f"the lr LoRA chose on dev in results/{lr_from}, 'all linear r=8' at QLoRA's, the other equal-budget "
              f"variants at the lr each chose on seed-0 dev over its grid; α = 8 throughout; mean ± std "
              f"over seeds 0..{seeds - 1}{' (QUICK=1: dev/test cut to 256 sentences)' if quick else ''}; "
              f"{minutes:.1f} min on {where} (cached runs count no time).")
    return ({"header": header, "task": task, "base": base, "steps": steps, "batch": batch,
             "seeds": list(range(seeds)), "machine": where, "lr_from": lr_from, "variants": out}, saved)


def table(result: dict) -> str:
    rows = ["| variant | target modules | r | trainable | seed-0 dev acc per lr (swept variants) | lr | dev acc | "
            "test acc | train ms/step |", "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for n, v in result["variants"].items():
        grid = ", ".join(f"{k}: {d:.3f}{'*' if float(k) == v['lr'] else ''}" for k, d in v["grid"].items()) or "—"
        rows.append(f"| {n} | {', '.join(v['target_modules'])} | {v['r']} | {v['trainable']:,} | {grid} | {v['lr']:g} | "
                    f"{v['dev']['mean']:.3f} ± {v['dev']['std']:.3f} | {v['test']['mean']:.3f} ± "
                    f"{v['test']['std']:.3f} | {v['ms_per_step']:.0f} |")
    return result["header"] + "\n\n" + "\n".join(rows) + "\n"


def stem_of(task: str, base: str, quick: bool = False) -> str:
    return f"lora_study_{task}_{base}" + ("_quick" if quick else "")


def load_study(stem: str = "lora_study_rt_mini-bert") -> tuple[dict, dict[str, torch.Tensor]]:
    """A committed study (results/STEM.json and its adapters), as `python -m methods.lora_study --out results`
    wrote it."""
    folder = datasets.results_dir(False)
    return json.loads((folder / f"{stem}.json").read_text()), load_file(str(folder / f"{stem}.safetensors"))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m methods.lora_study", description=__doc__.splitlines()[0])
    p.add_argument("--task", default="rt", choices=datasets.CLASSIFICATION_TASKS)
    p.add_argument("--base", default="mini-bert", choices=compare.BASES)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr-from", default="compare_rt_mini-bert")
    p.add_argument("--variants", default=None, help="comma-separated names (default: all): " + ", ".join(VARIANTS))
    p.add_argument("--cache", action="store_true", help=f"reuse finished runs in {CACHE_DIR}")
    p.add_argument("--out", default=None, help="output folder (default data/results/)")
    a = p.parse_args(argv)
    quick = is_quick()
    result, saved = study(a.task, a.base, a.seeds, a.steps, a.batch, a.lr_from,
                          a.variants.split(",") if a.variants else None, quick, CACHE_DIR if a.cache else None)
    out = Path(a.out) if a.out else datasets.DATA_DIR / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = stem_of(a.task, a.base, quick)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{stem}.md").write_text(table(result))
    save_file(saved, str(out / f"{stem}.safetensors"))
    print(table(result))
    return result


if __name__ == "__main__":
    main()
