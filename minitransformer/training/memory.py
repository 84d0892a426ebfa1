"""How much memory one training step holds — a model of training memory, not an RSS reading.

    total = parameters            every parameter, frozen or not
          + gradients             one per *trainable* parameter (frozen ones get none)
          + optimizer_state       read from `optimizer.state` after a step (AdamW: exp_avg, exp_avg_sq, step)
          + activations           tensors autograd saves for backward, counted once per storage

This is why PEFT saves memory even though the frozen base still sits there: for N trainable fp32
parameters AdamW adds 4 N (gradient) + 8 N (two moments) bytes, so freezing the base removes 12 bytes per
frozen parameter (plus a 4-byte step counter per tensor). Activations shrink much less: backward still
flows through the frozen layers to reach an adapter. Activations are counted with
`torch.autograd.graph.saved_tensors_hooks`; parameters and buffers that autograd saves (a Linear saves its
weight) are excluded, since they are already counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _storage_key(t: torch.Tensor):
    try:
        s = t.untyped_storage()
        return s.data_ptr(), s.nbytes()
    except (RuntimeError, NotImplementedError):  # tensors without a plain storage (sparse, wrapper subclasses)
        return id(t), t.numel() * t.element_size()


@contextmanager
def tracked_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, enabled: bool = True) -> Iterator[dict]:
    """Wrap one step (forward, backward, optimizer.step) and fill the yielded dict with its breakdown
    (bytes: parameters, gradients, optimizer_state, activations, total) on exit. Disabled: stays empty."""
    result: dict = {}
    if not enabled:
        yield result
        return
    known = {_storage_key(t)[0] for t in list(model.parameters()) + list(model.buffers())}
    saved: dict = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr, size = _storage_key(t)
        if ptr not in known:
            saved[ptr] = size
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result
    result["parameters"] = _nbytes(model.parameters())
    result["gradients"] = _nbytes(p.grad for p in model.parameters() if p.grad is not None)
    result["optimizer_state"] = sum(_nbytes(v for v in state.values() if torch.is_tensor(v))
                                    for state in optimizer.state.values())
    result["activations"] = sum(saved.values())
    result["total"] = sum(result.values())


def training_memory(model: torch.nn.Module, batch: dict, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Bytes held by one training step on `batch` (a dict for `model(**batch)`):
    {"parameters", "gradients", "optimizer_state", "activations", "total"}.

    Runs forward, backward and one step of a *fresh* optimizer (AdamW over the trainable parameters, or the
    class and settings of `optimizer`), then puts everything back: parameter values, gradients, train/eval
    mode and the random state are as before, and `optimizer` itself is never stepped.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        fresh = torch.optim.AdamW(trainable)
    else:
        fresh = type(optimizer)([dict(g) for g in optimizer.param_groups], **optimizer.defaults)
    values = [p.detach().clone() for p in trainable]
    grads = [p.grad for p in trainable]
    was_training, device = model.training, next(model.parameters()).device
    for p in trainable:
        p.grad = None
    model.train()
    try:
        with torch.random.fork_rng(devices=[]), tracked_step(model, fresh) as result:
            model(**{k: v.to(device) for k, v in batch.items()}).loss.backward()
            fresh.step()
    finally:
        with torch.no_grad():
            for p, v, g in zip(trainable, values, grads):
                p.copy_(v)
                p.grad = g
        model.train(was_training)
    return result
