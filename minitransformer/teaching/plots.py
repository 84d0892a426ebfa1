"""The notebooks' pictures: loss curves, bar charts, attention heatmaps, accuracy vs trainable parameters.

Every function returns a matplotlib `Figure` and writes no file (save one with `fig.savefig(path)`).
No function calls `plt.show()` or picks a backend, so the code runs headless (Agg) and inline in Jupyter.
Each figure is created through pyplot and then detached from it (`plt.close(fig)`): the figure stays fully
usable — it is displayed once when a notebook cell returns it, and `savefig` works — but pyplot's list of
open figures does not grow with every call, and Jupyter does not show it a second time.
Pass `ax=` to draw into an existing Axes instead (then its figure is returned, and not closed).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes, bool]:
    if ax is not None:
        return ax.figure, ax, False
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax, True


def _done(fig: Figure, own: bool) -> Figure:
    fig.tight_layout()
    if own:
        plt.close(fig)  # detach from pyplot; the Figure object stays valid
    return fig


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard): m_t = w m_{t-1} + (1 - w) x_t."""
    out, m = [], 0.0
    for t, x in enumerate(values, start=1):
        m = weight * m + (1 - weight) * x
        out.append(m / (1 - weight**t) if weight > 0 else x)
    return out


def plot_curves(histories, what: str = "train_loss", *, smoothing: float = 0.9, title: str | None = None,
                ax: Axes | None = None) -> Figure:
    """Curves of one or several runs (`{name: History}` or one `History`) against the step.

    what: "train_loss" (raw per-step loss faint, smoothed solid), "eval_metric" or "eval_loss" (markers).
    """
    if what not in ("train_loss", "eval_metric", "eval_loss"):
        raise ValueError(f"what must be 'train_loss', 'eval_metric' or 'eval_loss', got {what!r}")
    if not isinstance(histories, dict):
        histories = {"": histories}
    fig, ax, own = _axes(ax, (6, 3.5))
    ylabel = what.replace("_", " ")
    for name, h in histories.items():
        if what == "train_loss":
            (line,) = ax.plot(h.steps, smooth(h.train_loss, smoothing), label=name or None)
            ax.plot(h.steps, h.train_loss, color=line.get_color(), alpha=0.2, linewidth=0.8)
        else:
            ax.plot([e["step"] for e in h.eval], [e[what] for e in h.eval], marker="o", label=name or None)
            if what == "eval_metric":
                ylabel = h.metric
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else ("training loss" if what == "train_loss" else ylabel))
    ax.grid(alpha=0.3)
    if any(histories):
        ax.legend()
    return _done(fig, own)


def plot_bars(values: dict[str, float], errors: dict[str, float] | None = None, *, ylabel: str = "",
              title: str = "", fmt: str = "{:.3g}", ax: Axes | None = None) -> Figure:
    """One bar per key, its value written on top; `errors` (same keys) draws error bars."""
    fig, ax, own = _axes(ax, (max(4.0, 0.8 * len(values) + 2), 3.5))
    names = list(values)
    yerr = [errors.get(n, 0.0) for n in names] if errors else None
    bars = ax.bar(range(len(names)), [values[n] for n in names], yerr=yerr, capsize=4 if yerr else 0)
    ax.bar_label(bars, labels=[fmt.format(values[n]) for n in names], padding=2, fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _done(fig, own)


def plot_attention(weights: torch.Tensor, x_tokens: list[str], y_tokens: list[str], title: str = "", *,
                   ax: Axes | None = None) -> Figure:
    """Heatmap of attention weights (T, S): row t = query token y_tokens[t], column s = key x_tokens[s]."""
    w = torch.as_tensor(weights).detach().float().cpu()
    if w.dim() != 2 or w.shape != (len(y_tokens), len(x_tokens)):
        raise ValueError(f"weights must have shape (T, S) = ({len(y_tokens)}, {len(x_tokens)}) to match "
                         f"y_tokens and x_tokens, got {tuple(w.shape)}")
    T, S = w.shape
    fig, ax, own = _axes(ax, (min(12.0, 1.5 + 0.35 * S), min(12.0, 1.0 + 0.35 * T)))
    im = ax.imshow(w.numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(S), x_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(T), y_tokens, fontsize=8)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _done(fig, own)


def plot_scatter_logx(points: list[tuple], *, xlabel: str = "trainable parameters", ylabel: str = "accuracy",
                      title: str = "", ax: Axes | None = None) -> Figure:
    """Points (label, x, y) or (label, x, y, yerr) on a log x-axis, each labelled: accuracy vs trainable
    parameters, the usual PEFT trade-off picture."""
    fig, ax, own = _axes(ax, (6, 4))
    for point in points:
        label, x, y = point[:3]
        yerr = point[3] if len(point) > 3 else None
        if not x > 0:
            raise ValueError(f"plot_scatter_logx: x must be > 0 on a log axis, got {x!r} for {label!r}")
        ax.errorbar([x], [y], yerr=None if yerr is None or math.isnan(yerr) else [yerr], fmt="o", capsize=3)
        ax.annotate(str(label), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    return _done(fig, own)
