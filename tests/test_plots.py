"""Every plot returns a Figure, writes nothing, and leaves pyplot's list of open figures as it was."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: tests never open a window

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from minitransformer.teaching.plots import plot_attention, plot_bars, plot_curves, plot_scatter_logx, smooth  # noqa: E402
from minitransformer.training.train import History  # noqa: E402


def history(offset: float) -> History:
    steps = list(range(1, 21))
    return History(metric="accuracy", steps=steps, train_loss=[offset + 1 / s for s in steps],
                   eval=[{"step": s, "epoch": s / 10, "eval_loss": 1 / s, "eval_metric": 0.5 + s / 50} for s in (10, 20)])


def test_every_plot_returns_a_figure_and_no_open_figure_accumulates(tmp_path):
    before = plt.get_fignums()
    figs = [
        plot_curves({"lora": history(0.0), "full": history(0.1)}),
        plot_curves(history(0.0), "eval_metric"),
        plot_curves(history(0.0), "eval_loss", title="x"),
        plot_bars({"a": 0.7, "b": 0.8}, errors={"a": 0.01, "b": 0.02}, ylabel="accuracy", title="t"),
        plot_attention(torch.softmax(torch.randn(3, 4), -1), ["k1", "k2", "k3", "k4"], ["q1", "q2", "q3"], "attn"),
        plot_scatter_logx([("LoRA", 3e3, 0.8, 0.01), ("full", 1e6, 0.85, float("nan")), ("BitFit", 1e4, 0.78)]),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert plt.get_fignums() == before
    assert list(tmp_path.iterdir()) == []  # nothing written
    figs[0].savefig(tmp_path / "still_usable.png")  # a detached figure can still be saved
    assert (tmp_path / "still_usable.png").stat().st_size > 0
    assert figs[0].axes[0].get_legend() is not None and len(figs[0].axes[0].lines) == 4


def test_drawing_into_a_given_axes_returns_its_figure():
    fig, (a, b) = plt.subplots(1, 2)
    assert plot_curves(history(0.0), ax=a) is fig and plot_bars({"x": 1.0}, ax=b) is fig
    plt.close(fig)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        plot_attention(torch.rand(2, 2), ["a", "b", "c"], ["a", "b"])
    with pytest.raises(ValueError, match="what"):
        plot_curves(history(0.0), "accuracy")
    with pytest.raises(ValueError, match="x must be > 0"):
        plot_scatter_logx([("zero", 0, 0.5)])


def test_smooth_is_a_bias_corrected_moving_average():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    assert smooth([1.0, 3.0], weight=0.0) == [1.0, 3.0]
