"""Instruments for notebook 05 (RNN vs. LSTM vs. GRU): figures and panels over the notebook's own functions.

The gate equations, the gradient-by-distance measurement, the adding problem and the training loop are
defined in the notebook's cells; this module only draws their results and wraps them in bounded panels.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

from helpers.lines import line_style
from helpers.validation import LabInputError, require_mapping, require_series, run_specimen

LAYER_TYPES = ("RNN", "LSTM", "GRU")
PANEL_HIDDEN = (16, 32, 64)   # panel bounds: a run measures a few 8 × d × H sequences, well under a second
PANEL_MAX_DISTANCE = 150
PANEL_MAX_SEQ_LEN = 40        # training panel: T ≤ 40 and ≤ 400 steps take seconds on a laptop CPU
PANEL_MAX_STEPS = 400


def smooth(values: Sequence[float], window: int = 20) -> list[float]:
    """Trailing moving average (shorter window at the start), to read noisy per-batch losses.

    Example:
        >>> smooth([1.0, 3.0, 5.0], window=2)
        [1.0, 2.0, 4.0]
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise LabInputError(f"window must be a positive int; got {window!r}.")
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, torch.Tensor)):
        raise LabInputError(f"values must be a list of numbers; got {type(values).__name__}.")
    values = [float(v) for v in values]
    # each mean from its own window, not a running sum: one NaN then spoils only the windows that contain it
    return [math.fsum(values[max(0, i - window + 1):i + 1]) / min(i + 1, window) for i in range(len(values))]


def _curves(curves: object, what: str, length: int | None = None, index: str = "step") -> dict[str, list[float]]:
    """``{label: finite values}``; a NaN, a wrong count or a non-number is refused naming the label and position."""
    return {str(label): require_series(values, f"{what} ({label})", length, index)
            for label, values in require_mapping(curves, what, "{label: values}").items()}


def plot_gradient_flow(curves: Mapping[str, Sequence[float] | torch.Tensor], ax=None, min_distance: int = 0,
                       title: str = "Gradient reaching the input d steps back, relative to d = 0"):
    """Log-scale plot of a gradient ratio against distance d, one line per configuration.

    Args:
        curves: ``{label: ratios}`` with ``ratios[d]`` the gradient norm at distance d over the norm at d = 0
            (what the notebook's gradient-by-distance function returns).
        ax: a matplotlib ``Axes`` or None.
        min_distance: the first distance drawn.
        title: the figure title.

    Returns:
        The ``Axes``.

    Example:
        >>> ax = plot_gradient_flow({"demo": torch.tensor([1.0, 0.5, 0.25])})
        >>> ax.get_yscale(), [t.get_text() for t in ax.get_legend().get_texts()]
        ('log', ['demo'])
    """
    import matplotlib.pyplot as plt

    data = _curves(curves, "curves")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for k, (label, ratios) in enumerate(data.items()):
        d = list(range(min_distance, len(ratios)))
        ax.plot(d, [max(r, 1e-300) for r in ratios[min_distance:]], lw=2, label=label, **line_style(k, len(d)))
    ax.set_yscale("log")
    # mathtext, so the subscripts render instead of showing raw braces; the sum is what is differentiated
    ax.set_xlabel(r"distance $d$ (steps between the input $x_{T-d}$ and the last state $h_T$)")
    ax.set_ylabel(r"$\|\partial(\Sigma h_T)/\partial x_{T-d}\|\;/\;\|\partial(\Sigma h_T)/\partial x_T\|$")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_losses(curves: Mapping[str, Sequence[float]], ax=None, window: int = 20,
                lines: Mapping[str, float] | None = None, title: str = "training loss"):
    """Smoothed per-step training losses (log scale) with horizontal reference lines.

    Args:
        curves: ``{label: per-step losses}``.
        ax: a matplotlib ``Axes`` or None.
        window: moving-average window (see ``smooth``).
        lines: ``{label: y}`` drawn dashed, e.g. a trivial baseline and a "learned" threshold.
        title: the axes title.

    Returns:
        The ``Axes``.

    Example:
        >>> ax = plot_losses({"GRU": [0.2, 0.1, 0.05]}, window=2, lines={"baseline": 1 / 6})
        >>> [t.get_text() for t in ax.get_legend().get_texts()]
        ['GRU', 'baseline']
    """
    import matplotlib.pyplot as plt

    data = _curves(curves, "curves")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for k, (label, losses) in enumerate(data.items()):
        ax.plot(range(1, len(losses) + 1), smooth(losses, window), lw=1.5, label=label,
                **line_style(k, len(losses)))
    for k, (label, y) in enumerate((lines or {}).items()):
        ax.axhline(float(y), color="k" if k == 0 else "grey", ls="--" if k == 0 else ":", lw=1, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("training step (one fresh batch each)")
    ax.set_ylabel(f"training MSE (moving average of {window})")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _show(ax) -> None:
    import matplotlib.pyplot as plt

    ax.figure.tight_layout()
    plt.show()


def _require_callable(fn: object, what: str) -> None:
    if not callable(fn):
        raise LabInputError(f"{what} must be a function defined in the notebook; got {type(fn).__name__}.")


def make_gradient_flow_panel(measure: Callable[..., object], controls_label: Mapping[str, str] | None = None):
    """Panel: layer type, hidden size and distance → the notebook's gradient measurement, plain vs. controlled.

    ``measure(layer_type, hidden_size=H, steps=d + 1, control=flag)`` is the notebook's function and must
    return the ratios by distance (a 1-D tensor or list). The panel draws the layer at PyTorch's default
    initialisation beside the same layer with its control switched on (the notebook decides what the
    control is: an open forget / update gate, an orthogonal recurrent matrix). Hidden size ≤ 64 and
    distance ≤ 150 keep a run under a second.

    Args:
        measure: the notebook's measurement.
        controls_label: ``{layer_type: words}`` naming each layer's control in the legend.

    Returns:
        A ``helpers.widgets.Panel``; ``panel.run()`` returns ``({label: ratios}, min_distance)``.

    Example:
        >>> panel = make_gradient_flow_panel(lambda layer_type, hidden_size, steps, control: [1.0] * steps)
        >>> curves, low = panel.set(distance=(0, 10)).run()
        >>> sorted(len(r) for r in curves.values()), low
        ([11, 11], 0)
    """
    import ipywidgets as W

    from helpers.widgets import Panel

    _require_callable(measure, "measure")
    names = dict(controls_label or {})

    def run(layer_type: str, hidden_size: int, distance: tuple[int, int]):
        low, high = (int(v) for v in distance)
        steps = max(high, 1) + 1
        control = names.get(layer_type, "control on")
        curves = {f"{layer_type}, {'default init' if not flag else control}": run_specimen(
            measure, "the gradient measurement", layer_type, hidden_size=hidden_size, steps=steps, control=flag)
            for flag in (False, True)}
        return _curves(curves, "your measurement", length=steps, index="distance"), low

    controls = {
        "layer_type": W.Dropdown(options=list(LAYER_TYPES), value="GRU", description="layer"),
        "hidden_size": W.Dropdown(options=list(PANEL_HIDDEN), value=32, description="hidden size H"),
        "distance": W.IntRangeSlider(value=(0, 60), min=0, max=PANEL_MAX_DISTANCE, step=10, description="distance d"),
    }

    def render(result) -> None:
        curves, low = result
        _show(plot_gradient_flow(curves, min_distance=low))

    return Panel(run, controls, render=render, title="Gradient flow over distance: default vs. controlled")


def make_training_panel(train: Callable[..., Sequence[float]], lines: Mapping[str, float] | None = None):
    """Panel: layer type, sequence length and steps → the notebook's training loop (progress bar) → loss curve.

    ``train(layer_type, seq_len, steps, progress)`` is a notebook function returning the per-step losses;
    ``progress(step, steps)`` updates the bar. Bounded to T ≤ 40 and ≤ 400 steps.

    Args:
        train: the notebook's training run.
        lines: reference lines for the plot (see ``plot_losses``).

    Returns:
        A ``helpers.widgets.Panel``; ``panel.run()`` returns ``(layer_type, seq_len, losses)``.

    Example:
        >>> panel = make_training_panel(lambda layer_type, seq_len, steps, progress: [0.1] * steps)
        >>> panel.set(steps=50).run()[2][:2]
        [0.1, 0.1]
    """
    import ipywidgets as W

    from helpers.widgets import Panel

    _require_callable(train, "train")

    def run(layer_type: str, seq_len: int, steps: int):
        callback = None
        if _in_kernel():
            from IPython.display import display

            bar = W.IntProgress(min=0, max=steps, description="training")
            display(bar)

            def callback(done: int, total: int) -> None:
                bar.value = done
                bar.description = f"{done}/{total}"

        losses = _curves({layer_type: run_specimen(train, "the training run", layer_type, seq_len, steps, callback)},
                         "your train function", length=steps)[layer_type]
        return layer_type, seq_len, losses

    controls = {
        "layer_type": W.Dropdown(options=list(LAYER_TYPES), value="GRU", description="layer"),
        "seq_len": W.IntSlider(value=20, min=5, max=PANEL_MAX_SEQ_LEN, step=5, description="sequence length T"),
        "steps": W.IntSlider(value=200, min=50, max=PANEL_MAX_STEPS, step=50, description="training steps"),
    }

    def render(result) -> None:
        layer_type, seq_len, losses = result
        _show(plot_losses({f"{layer_type}, T = {seq_len}": losses}, lines=lines,
                          title=f"live run: {layer_type} on the adding problem, T = {seq_len}, {len(losses)} steps"))

    return Panel(run, controls, render=render, title="Train on the adding problem")
