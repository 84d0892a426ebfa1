"""The one training loop of the project — notebooks, PEFT methods, the comparison job and pretraining all use it:
AdamW, warm-up then decay, clipping.

    for each step:  loss = loss_fn(model, batch);  loss.backward();  clip ||g|| <= max_grad_norm
                    optimizer.step();  model.on_step(step, total);  on_step(step, model)
                    optimizer.zero_grad();  scheduler.step()

Two hooks let a PEFT method change training without any caller having to remember it:
- the loss: `loss_fn` defaults to `default_loss`, which asks a `PeftModel` for its method's loss
  (`model.training_loss(batch)`: AdaMix's two passes and consistency term, AdaLoRA's orthogonality penalty,
  AdapterDrop's sampled depth) and any other model for `model(**batch).loss`;
- the step: a model with an `on_step(step, total_steps)` method (every `PeftModel`) has it called after each
  optimizer step, before the gradients are cleared (AdaLoRA's budget allocator reads them).

The PEFT contract lives in one line: the optimizer only receives parameters with `requires_grad=True`
(a method freezes the base and adds its own trainable tensors), so a frozen weight never changes — AdamW's
weight decay included — and costs no gradient or optimizer memory.

Learning rate for update s = 0 .. N-1 (W = round(warmup_ratio * N) warm-up updates):
    lr_s = lr * (s + 1) / W                          s < W   (the last warm-up update uses the full lr)
    lr_s = lr * f((s - W) / (N - W))                 s >= W, f(p) = 1 - p ("linear"),
                                                     (1 + cos(pi p)) / 2 ("cosine"), 1 ("constant")
so the rate reaches `lr` at the end of warm-up and decays towards 0 (it is 0 at s = N).

Memory (`training_memory`) is a *model* of what one training step holds, not an RSS reading:
parameters + gradients (trainable only) + optimizer state (read from `optimizer.state` after a step) +
activations saved for backward (every tensor autograd packs, de-duplicated by storage, parameters excluded).
On CUDA `History.peak_memory_bytes` is `torch.cuda.max_memory_allocated` instead.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch.utils.data import Dataset
from tqdm import tqdm  # plain text bar: renders the same in a terminal, a notebook and a committed output

from .batching import EncodedDataset, encode_classification, encode_lm, make_loader
from .env import show_progress
from .memory import tracked_step, training_memory

__all__ = ["TrainConfig", "History", "train", "evaluate", "lr_factor", "default_loss", "flush_denormal",
           "training_memory", "EncodedDataset", "encode_classification", "encode_lm", "make_loader"]

SCHEDULES = ("linear", "cosine", "constant")


@dataclass
class TrainConfig:
    """Hyper-parameters of `train`. Validated on construction (ValueError naming field, value, range)."""

    max_steps: int | None = None  # optimizer updates; None = `epochs` passes over the data
    epochs: int = 1
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    schedule: str = "linear"  # "linear" | "cosine" | "constant" (after warm-up)
    max_grad_norm: float | None = 1.0  # None = no clipping
    eval_every: int | None = None  # steps; None = at the end of every epoch and at the end
    seed: int = 0
    progress: bool | None = None  # None = on, unless the environment sets QUICK=1 or CI

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is invalid; allowed: {allowed}")

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "an int >= 1")
        for name in ("max_steps", "eval_every"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise bad(name, "None or an int >= 1")
        if not self.lr > 0:
            raise bad("lr", "a float > 0")
        if not self.weight_decay >= 0:
            raise bad("weight_decay", "a float >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "a float in [0, 1)")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", " | ".join(SCHEDULES))
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise bad("max_grad_norm", "None or a float > 0")
        if not is_int(self.seed):
            raise bad("seed", "an int")
        if self.progress not in (None, True, False):
            raise bad("progress", "None, True or False")

    def show_progress(self) -> bool:
        return show_progress(self.progress)


def lr_factor(step: int, total: int, warmup: int, schedule: str = "linear") -> float:
    """Multiplier of the base lr for update `step` (0-based) of `total`, `warmup` of them warm-up."""
    if step < warmup:
        return (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))  # decay progress in [0, 1]
    if schedule == "linear":
        return 1.0 - p
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    return 1.0


@dataclass
class History:
    """What a run leaves behind: per-step loss and lr, every evaluation, time and memory."""

    metric: str = "accuracy"
    steps: list[int] = field(default_factory=list)  # 1 .. N
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # the rate used by each update
    eval: list[dict] = field(default_factory=list)  # {step, epoch, eval_loss, eval_metric}
    seconds: float = 0.0  # wall time of the whole `train` call, evaluations included
    ms_per_step: float = 0.0  # training steps only
    peak_memory_bytes: int = 0  # CUDA: max_memory_allocated; CPU: memory["total"]
    memory: dict = field(default_factory=dict)  # bytes, measured on the first step; see `training_memory`

    def best(self, key: str = "eval_metric", higher_is_better: bool | None = None) -> dict:
        """The evaluation with the best `key`; by default higher is better except for losses/perplexity."""
        if not self.eval:
            raise ValueError("History.best: no evaluation was recorded (pass eval_data to train)")
        if higher_is_better is None:
            higher_is_better = not (key == "eval_loss" or self.metric == "perplexity")
        pick = max if higher_is_better else min
        return pick(self.eval, key=lambda e: e[key])

    def final(self) -> dict:
        """The last evaluation, or the last step's train loss when there was none."""
        if self.eval:
            return self.eval[-1]
        return {"step": self.steps[-1] if self.steps else 0, "train_loss": self.train_loss[-1] if self.train_loss else None}

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def flush_denormal() -> Iterator[None]:
    """Inside the block, denormal floats are flushed to zero (on CPUs that support it), then the default
    (off) is restored. Tiny gradients squared in AdamW's second moment become denormals, which x86 CPUs
    process 10-20x slower; flushing them changes results by less than float32 rounding."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def default_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The training loss of one batch: a PeftModel's method loss hook (`training_loss`), else `.loss`."""
    hook = getattr(model, "training_loss", None)
    return hook(batch) if callable(hook) else model(**batch).loss


def _to_device(batch, device) -> dict[str, torch.Tensor]:
    if isinstance(batch, (tuple, list)):  # a TensorDataset: (input_ids, [attention_mask,] labels)
        names = ("input_ids", "attention_mask", "labels") if len(batch) == 3 else ("input_ids", "labels")
        batch = dict(zip(names, batch))
    return {k: v.to(device) for k, v in batch.items()}


def _loader(data, batch_size: int, shuffle: bool, seed: int):
    return make_loader(data, batch_size, shuffle, seed) if isinstance(data, Dataset) else data


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, metric: str | Callable = "accuracy", batch_size: int = 128) -> dict:
    """{"loss", "metric", <metric name>: value} on `data` (a Dataset or a DataLoader), in eval mode.

    accuracy = mean(argmax logits (B, C) == labels); perplexity = exp(mean token loss); a callable gets
    `(logits, labels)` concatenated over all batches along dim 0 and returns a float. The loss is the
    mean over examples (over label tokens for token-level labels). The model's train/eval mode is restored.
    """
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    total, count, correct, all_logits, all_labels = 0.0, 0, 0, [], []
    try:
        for batch in _loader(data, batch_size, False, 0):
            batch = _to_device(batch, device)
            out, y = model(**batch), batch["labels"]
            n = int((y != -100).sum()) if y.dim() > 1 else y.size(0)
            total, count = total + float(out.loss) * n, count + n
            if metric == "accuracy":
                correct += int((out.logits.argmax(-1) == y).sum())
            elif callable(metric):
                all_logits.append(out.logits.float().cpu())
                all_labels.append(y.cpu())
    finally:
        model.train(was_training)
    loss = total / max(count, 1)
    if metric == "accuracy":
        value, name = correct / max(count, 1), "accuracy"
    elif metric == "perplexity":
        value, name = math.exp(min(loss, 50.0)), "perplexity"
    elif callable(metric):
        value, name = float(metric(torch.cat(all_logits), torch.cat(all_labels))), getattr(metric, "__name__", "metric")
    else:
        raise ValueError(f"metric must be 'accuracy', 'perplexity' or a callable, got {metric!r}")
    return {"loss": loss, "metric": value, name: value}


def train(model: torch.nn.Module, train_data, eval_data=None, config: TrainConfig | None = None, *,
          params=None, metric: str | Callable = "accuracy",
          loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor] | None = None,
          on_step: Callable[[int, torch.nn.Module], None] | None = None, desc: str = "train") -> History:
    """Train `model` with AdamW and return its `History`.

    `train_data` / `eval_data`: a Dataset (batched here with `make_loader`, shuffled with `config.seed`) or
    any re-iterable of dict batches (a DataLoader); tuples (TensorDataset) are read as (input_ids,
    attention_mask, labels) or (input_ids, labels). The model is called as `model(**batch)` — input_ids,
    attention_mask, labels, and token_type_ids when the batch has them — and must return `.loss`/`.logits`.
    The optimizer gets `params`, or else only `p for p in model.parameters() if p.requires_grad`:
    frozen parameters are never updated. `loss_fn(model, batch)` computes the loss (default: `default_loss`,
    which calls a PeftModel's method loss hook). After `optimizer.step()` and *before* `zero_grad()` — so the
    gradients are still there — the model's own `on_step(step, total_steps)` runs if it has one (every
    PeftModel: the method's step hook), then the caller's `on_step(step, model)`; `step` is 1-based.
    The same `config.seed` gives identical numbers (torch.manual_seed + the loader's generator).
    """
    config = config or TrainConfig()
    loss_fn = loss_fn or default_loss
    model_hook = getattr(model, "on_step", None)
    torch.manual_seed(config.seed)
    start, device = time.perf_counter(), next(model.parameters()).device
    loader = _loader(train_data, config.batch_size, True, config.seed)
    if len(loader) == 0:
        raise ValueError("train: train_data is empty")
    params = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
    if not params:
        raise ValueError("train: nothing to train — no parameter has requires_grad=True")
    total = config.max_steps or config.epochs * len(loader)
    warmup = round(config.warmup_ratio * total)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, config.schedule))
    history = History(metric=metric if isinstance(metric, str) else getattr(metric, "__name__", "metric"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step, train_seconds = 0, 0.0
    bar = tqdm(total=total, disable=not config.show_progress(), desc=desc)

    def show() -> None:  # the progress bar's text: last loss, last evaluation
        last = {history.metric: f"{history.eval[-1]['eval_metric']:.4f}"} if history.eval else {}
        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", **last)

    def run_eval() -> None:
        if eval_data is not None and (not history.eval or history.eval[-1]["step"] != step):
            r = evaluate(model, eval_data, metric, config.eval_batch_size)
            history.eval.append({"step": step, "epoch": round(step / len(loader), 3),
                                 "eval_loss": r["loss"], "eval_metric": r["metric"]})
            show()

    model.train()
    with flush_denormal():
        while step < total:
            for batch in loader:
                t0 = time.perf_counter()
                batch = _to_device(batch, device)
                with tracked_step(model, optimizer, enabled=step == 0) as memory:
                    loss = loss_fn(model, batch)
                    loss.backward()
                    if config.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    history.lr.append(optimizer.param_groups[0]["lr"])
                    optimizer.step()
                step += 1
                if callable(model_hook):
                    model_hook(step, total)  # the method's step hook (e.g. AdaLoRA's budget allocator)
                if on_step is not None:
                    on_step(step, model)
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                train_seconds += time.perf_counter() - t0
                history.steps.append(step)
                history.train_loss.append(float(loss.detach()))
                if memory:
                    history.memory = memory
                bar.update(1)
                show()
                if config.eval_every is not None and step % config.eval_every == 0:
                    run_eval()
                if step >= total:
                    break
            if config.eval_every is None:
                run_eval()
        run_eval()
    bar.close()
    history.seconds = time.perf_counter() - start
    history.ms_per_step = 1e3 * train_seconds / max(step, 1)
    history.peak_memory_bytes = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                                 else history.memory.get("total", 0))
    return history
