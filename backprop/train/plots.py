"""Figures for ``backprop train`` and ``backprop gradflow`` (matplotlib's Agg canvas; no pyplot state).

Names are shown in the course notation (:func:`backprop.support.notation.latex_name`,
through matplotlib's mathtext): W₁, b₁, ŷ. A ``title`` is user text (it holds
the model's name): its ``$`` would start mathtext, so it is escaped here.

matplotlib is optional (the ``[train]`` extra): it is imported only when a
figure is made, so this module imports without it, and the commands check for
it (:func:`backprop.support.extras.require`) before they start.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from backprop.engine.optim import get_optimizer
from backprop.support.escape import mathtext_text
from backprop.support.notation import latex_name

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from backprop.train.loop import History

DPI = 120
_LINE = "#1f4e79"
_LIGHT = "#7fa7d0"
_VAL = "#d1495b"


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure on no pyplot state (matplotlib imported here: it is an optional dependency)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes; no timestamp or version in the metadata, so the same figure gives the same bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a diverged run's huge values
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def finite(y: Sequence[float]) -> np.ndarray:
    """Values to plot: non-finite ones (a diverged run) left out, and the rest capped where plotting stays sane."""
    y = np.asarray(y, dtype=float)
    return np.where(np.isfinite(y) & (np.abs(y) < 1e100), y, np.nan)


def math(name: str) -> str:
    """A variable name as mathtext."""
    return f"${latex_name(name)}$"


def grad_label(name: str) -> str:
    return rf"$\|\partial\mathcal{{L}}/\partial {latex_name(name)}\|$"


def _smooth(y: Sequence[float], window: int) -> np.ndarray:
    """Moving average (shorter at the start), so a noisy mini-batch curve shows its trend."""
    y = np.asarray(y, dtype=float)
    if window <= 1 or len(y) < 3:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    for i in range(len(y)):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def _log_if_wide(ax: object, values: Sequence[float]) -> None:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) and v.min() > 0 and v.max() / v.min() > 30:
        ax.set_yscale("log")  # type: ignore[attr-defined]


def loss_curve(h: History, title: str) -> Figure:
    """Mini-batch loss at every step (light) and the loss on all the data at the end of every epoch (dark).

    The legend says which is which in the terminal's words: the progress bar shows the mini-batch's loss,
    which jumps from batch to batch; the loss printed at the end, and history.csv's ``loss``, is on all
    the training examples.
    """
    fig = _figure((7.5, 4.6))
    ax = fig.add_subplot()
    steps = np.arange(1, len(h.step_loss) + 1) / h.steps_per_epoch
    if len(h.step_loss) > len(h.epoch_loss):
        ax.plot(steps, finite(h.step_loss), color=_LIGHT, lw=0.8, alpha=0.55,
                label="loss on each mini-batch (the progress bar's loss)")
    epochs = np.arange(len(h.epoch_loss))
    kind = "training examples" if h.val_examples else "examples"
    data = f"all {h.examples} {kind}" if h.examples else f"all the {kind}"
    ax.plot(epochs, finite(h.epoch_loss), "o-", color=_LINE, lw=2, ms=3.5,
            label=f"loss on {data}, end of each epoch (the loss printed at the end)")
    if h.val_examples:
        ax.plot(epochs, finite(h.epoch_val_loss), "s--", color=_VAL, lw=1.8, ms=3.5,
                label=f"loss on the {h.val_examples} held-out examples (validation)")
    _log_if_wide(ax, [*finite(h.epoch_loss), *finite(h.step_loss), *finite(h.epoch_val_loss)])
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"loss $\mathcal{L}$")
    ax.set_xlim(0, max(len(h.epoch_loss) - 1, 1))
    ax.grid(True, which="major", alpha=0.3)
    opt = get_optimizer(h.optimizer)
    ratio = h.first / h.last if h.last > 0 and np.isfinite(h.last) else float("inf")
    ax.set_title(
        f"{mathtext_text(title)}: {opt.title}, learning rate {h.lr:g}, batches of {h.batch_size}\n"
        f"loss {h.first:.4g} → {h.last:.4g}" + (f"  ({ratio:.3g}× lower)" if np.isfinite(ratio) and ratio > 1 else "")
        + (f"; validation {h.val_first:.4g} → {h.val_last:.4g}" if h.val_examples else "")
        + ("  — diverged: try a smaller learning rate" if h.diverged else ""),
        fontsize=10,
    )
    ax.annotate(f"{h.last:.3g}", (epochs[-1], finite(h.epoch_loss)[-1]), textcoords="offset points", xytext=(-4, 8),
                ha="right", fontsize=9, color=_LINE)
    ax.legend(loc="upper right", fontsize=9, frameon=False)
    return fig


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.0 + 0.78 * i / max(n - 1, 1)) for i in range(n)]


def gradflow_over_training(h: History, title: str, biases: Sequence[str] = ()) -> Figure:
    """Each param's gradient norm over training (mini-batch, smoothed), log scale: how gradients flow and fade."""
    fig = _figure((7.5, 4.6))
    ax = fig.add_subplot()
    colors = _palette(len(h.params))
    window = max(1, h.steps_per_epoch // 2)
    steps = np.arange(1, len(h.step_loss) + 1) / h.steps_per_epoch
    for p, color in zip(h.params, colors):
        if len(h.step_norms[p]) > len(h.epoch_norms[p]):
            y = np.maximum(_smooth(finite(h.step_norms[p]), window), 1e-300)
            ax.plot(steps, y, color=color, lw=1.6, ls="--" if p in biases else "-", label=grad_label(p))
        else:
            ax.plot(np.arange(len(h.epoch_norms[p])), finite(h.epoch_norms[p]), "o-", color=color, label=grad_label(p))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient norm (mini-batches, smoothed)")
    ax.set_xlim(0, max(len(h.epoch_loss) - 1, 1))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{mathtext_text(title)}: gradient flow, {get_optimizer(h.optimizer).title}", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    return fig


def ratio_caption(first: str, last: str, ratios: Mapping[str, float], vanishing: float) -> str:
    """The first-to-last gradient ratio the terminal prints, as one mathtext line for the chart."""
    head = rf"{grad_label(first)} / {grad_label(last)}"
    marks = {k: f"{r:.3g}" + (" (vanishing gradients)" if r < vanishing else "") for k, r in ratios.items()}
    if len(marks) == 1:
        return f"{head} = {next(iter(marks.values()))}  (first layer / last)"
    return f"{head}  (first layer / last): " + "; ".join(f"{mathtext_text(k)} {m}" for k, m in marks.items())


def gradflow_bars(norms: Mapping[str, Mapping[str, float]], title: str, caption: str | None = None) -> Figure:
    """Gradient norm per param at initialization, one bar group per param, one bar per network variant;
    ``caption`` (mathtext, e.g. :func:`ratio_caption`) is a second title line."""
    variants = list(norms)
    params = list(next(iter(norms.values())))
    fig = _figure((min(11.0, max(6.0, 2.5 + 0.45 * len(params) * len(variants))), 4.6))
    ax = fig.add_subplot()
    width = 0.8 / len(variants)
    colors = ["#1f4e79", "#d1495b", "#66a182", "#edae49"]
    x = np.arange(len(params))
    for i, v in enumerate(variants):
        vals = [max(norms[v][p], 1e-300) for p in params]
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, vals, width, label=v, color=colors[i % len(colors)])
    _log_if_wide(ax, [n for v in norms.values() for n in v.values()])
    ax.set_xticks(x, [math(p) for p in params])
    ax.set_xlabel("parameter (input side → output side)")
    ax.set_ylabel(r"gradient norm $\|\partial\mathcal{L}/\partial\theta\|$ at initialization")
    ax.grid(True, axis="y", which="major", alpha=0.3)
    ax.set_title(mathtext_text(title) + (f"\n{caption}" if caption else ""), fontsize=10)
    if len(variants) > 1:
        ax.legend(fontsize=9, frameon=False)
    return fig


def gradflow_over_time(flows: Mapping[str, Mapping[str, Sequence[float]]], title: str) -> Figure:
    """‖∂L/∂Hₜ‖ against the step t, one line per network variant and state: a gradient that
    vanishes (or explodes) as it flows back from the loss shows as a line falling (rising) to the left."""
    fig = _figure((7.5, 4.6))
    ax = fig.add_subplot()
    colors = ["#1f4e79", "#d1495b", "#66a182", "#edae49"]
    styles = ["-", "--", ":", "-."]
    values = []
    for i, (label, norms) in enumerate(flows.items()):
        for j, (state, ys) in enumerate(norms.items()):
            ts = np.arange(1, len(ys) + 1)
            y = np.maximum(finite(ys), 1e-300)
            values.extend(y)
            name = label if len(norms) == 1 else f"{label}, {math(state)}"
            ax.plot(ts, y, styles[j % len(styles)], color=colors[i % len(colors)], label=name, linewidth=1.6)
    ax.set_yscale("log")
    ax.set_xlabel("step t (backpropagation through time runs from t = T down to 1)")
    ax.set_ylabel(r"$\|\partial\mathcal{L}/\partial H_t\|$ at initialization")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(mathtext_text(title), fontsize=10)
    if len(flows) > 1 or any(len(n) > 1 for n in flows.values()):
        ax.legend(fontsize=9, frameon=False)
    return fig
