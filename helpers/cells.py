"""Instruments for notebook 04's cell loops: a step-through panel and a timing panel over the notebook's code.

The cell loop, the layer stacks and the timed functions are defined in the notebook; the panels here take
them as arguments, so editing the notebook's loop changes what the panels show.

- ``step_through`` / ``plot_step_trace`` / ``make_step_panel``: run the notebook's loop over the first
  ``step`` steps of one sequence and draw the hidden state as a heat map;
- ``sweep_lengths`` / ``make_timing_panel`` / ``plot_loop_vs_fused``: time the notebook's implementations
  (built by a function it passes in) over sequence lengths up to the one chosen;
- ``cpu_time_sweep``: the same implementations over several lengths as one thread's CPU time, interleaved
  (robust on a shared machine), as ``TimingRecord`` s for ``ratio_table``, plots and ``bench_record``.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from helpers.device import available_devices
from helpers.timing import MODES, Builder, TimingRecord, interleaved_cpu_medians, time_implementations
from helpers.validation import (
    LabInputError,
    require_choice,
    require_positive_int,
    require_sizes,
    require_tensor,
    run_specimen,
)
from helpers.widgets import DEFAULT_MEMORY_BUDGET, Panel

KINDS = ("RNN", "LSTM", "GRU")
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
LONGEST_CHOICES = (16, 32, 64, 128, 256, 512, 1024, 2048)

RunLoop = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, object]]


# ---------------------------------------------------------------------------------------------------
# Step-through panel
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepTrace:
    """The input sequence and the hidden states a cell loop produced over its first ``step`` steps."""

    inputs: torch.Tensor   # (time, features)
    hidden: torch.Tensor   # (step, hidden)
    step: int


def step_through(run_loop: RunLoop, cell: nn.Module, sequence: torch.Tensor, step: int) -> StepTrace:
    """Run ``run_loop(cell, x)`` over the first ``step`` steps of one sequence and keep every hidden state.

    Args:
        run_loop: the notebook's cell loop, ``run_loop(cell, x) -> (outputs (batch, time, hidden), state)``.
        cell: the cell it runs (``nn.RNNCell`` / ``GRUCell`` / ``LSTMCell``; it must have ``hidden_size``).
        sequence: ``(time, features)``, one sequence without a batch dimension.
        step: how many steps to take, 0..time.

    Returns:
        ``StepTrace``.

    Example:
        >>> def loop(cell, x):
        ...     h, outs = None, []
        ...     for t in range(x.shape[1]):
        ...         h = cell(x[:, t], h); outs.append(h)
        ...     return torch.stack(outs, dim=1), h
        >>> trace = step_through(loop, torch.nn.RNNCell(1, 6), torch.randn(10, 1), step=4)
        >>> tuple(trace.hidden.shape), trace.step
        ((4, 6), 4)
    """
    if not callable(run_loop):
        raise LabInputError(f"run_loop must be the notebook's loop function; got {type(run_loop).__name__}.")
    sequence = require_tensor(sequence, "sequence", ndim=2, layout="(time, features)")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= sequence.shape[0]:
        raise LabInputError(f"step must be an int in 0..{sequence.shape[0]}; got {step!r}.")
    hidden_size = getattr(cell, "hidden_size", None)
    if not isinstance(hidden_size, int):
        raise LabInputError(f"cell must be a recurrent cell with a hidden_size; got {type(cell).__name__}.")
    with torch.no_grad():
        if step:
            result = run_specimen(run_loop, "the cell loop", cell, sequence[None, :step])
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise LabInputError(f"run_loop must return a pair (outputs, state) like nn.RNN; got "
                                    f"{type(result).__name__}" + (f" of {len(result)} items" if isinstance(
                                        result, (tuple, list)) else "") + ". End the loop with: return outputs, h")
            outputs = result[0]
            if not isinstance(outputs, torch.Tensor) or outputs.shape != (1, step, hidden_size):
                raise LabInputError(f"run_loop must return outputs of shape (1, {step}, {hidden_size}) first; "
                                    f"got {getattr(outputs, 'shape', type(outputs).__name__)}.")
            hidden = outputs[0]
            bad = ~torch.isfinite(hidden)
            if bool(bad.any()):
                raise LabInputError(f"the cell loop returned NaN or infinity at step {int(bad.any(dim=1).nonzero()[0])} "
                                    "(counting from 0); look at what the loop computes there.")
        else:
            hidden = torch.zeros(0, hidden_size)
    return StepTrace(sequence.detach().clone(), hidden.detach().clone(), step)


def plot_step_trace(trace: StepTrace, time_label: str = "time step t", input_label: str = "input x_t"):
    """Draw the input (top) and the hidden state as a heat map (units × time, bottom), up to the current step.

    Returns:
        The matplotlib ``Figure`` (axes: ``fig.axes[0]`` input, ``fig.axes[1]`` heat map, then the colour bar).

    Example:
        >>> fig = plot_step_trace(StepTrace(torch.zeros(5, 1), torch.zeros(2, 3), 2))
        >>> len(fig.axes)
        3
    """
    import matplotlib.pyplot as plt
    import numpy as np

    length, units = trace.inputs.shape[0], trace.hidden.shape[-1]
    fig, (ax_in, ax_h) = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True,
                                      gridspec_kw={"height_ratios": [1, 1.6]}, constrained_layout=True)
    steps = np.arange(1, length + 1)
    values = trace.inputs.numpy()
    ax_in.plot(steps, values, color="0.75", label="whole input")
    ax_in.plot(steps[:trace.step], values[:trace.step], color="C0", marker=".", label="read so far")
    if trace.step:
        ax_in.axvline(trace.step, color="C3", lw=1, ls="--", label=f"step {trace.step}")
    ax_in.set_ylabel(input_label)
    ax_in.set_title(f"Hidden state after {trace.step} of {length} steps")
    ax_in.legend(fontsize=8, loc="upper right")
    grid = np.full((units, length), np.nan)
    grid[:, :trace.step] = trace.hidden.numpy().T
    image = ax_h.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest",
                        extent=(0.5, length + 0.5, units - 0.5, -0.5))
    ax_h.set_xlabel(time_label)
    ax_h.set_ylabel("hidden unit")
    fig.colorbar(image, ax=ax_h, label="h_t")
    return fig


def _show_figure(fig) -> None:
    """Display a figure inside a panel's output area now, then close it so it is not shown twice."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


class StepPanel(Panel):
    """A ``Panel`` with a "Next step" button that advances its ``step`` slider and runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.next_button = W.Button(description="Next step", icon="forward")
        self.next_button.on_click(lambda _button: self.next_step())
        self.widget.children = (self.widget.children[:-2]
                                + (W.HBox([self.next_button] + list(self.widget.children[-2].children)),)
                                + self.widget.children[-1:])

    def next_step(self) -> object:
        """Advance the step by one (wrapping to 0 after the last) and run."""
        slider = self.controls["step"]
        return self.set(step=slider.value + 1 if slider.value < slider.max else 0).run()


def make_step_panel(run_loop: RunLoop, cell: nn.Module, sequence: torch.Tensor, step: int = 1,
                    time_label: str = "time step t", input_label: str = "input x_t") -> StepPanel:
    """A step-through panel over the notebook's cell loop: a step slider and a "Next step" button.

    Args:
        run_loop: the notebook's loop, ``run_loop(cell, x) -> (outputs, state)``.
        cell: the cell to step.
        sequence: ``(time, features)``, the sequence to read.
        step: the starting step.
        time_label, input_label: axis labels for the figure.

    Returns:
        ``StepPanel``; ``panel.run()`` returns a ``StepTrace``.

    Example:
        >>> def loop(cell, x):
        ...     h, outs = None, []
        ...     for t in range(x.shape[1]):
        ...         h = cell(x[:, t], h); outs.append(h)
        ...     return torch.stack(outs, dim=1), h
        >>> panel = make_step_panel(loop, torch.nn.RNNCell(1, 4), torch.randn(8, 1))
        >>> panel.set(step=3).run().step, panel.next_step().step
        (3, 4)
    """
    sequence = require_tensor(sequence, "sequence", ndim=2, layout="(time, features)")
    length = sequence.shape[0]
    slider = W.IntSlider(value=min(step, length), min=0, max=length, description="step")
    return StepPanel(lambda step: step_through(run_loop, cell, sequence, step), {"step": slider},
                     render=lambda trace: _show_figure(plot_step_trace(trace, time_label, input_label)),
                     title="Step through the cell: the hidden state, one time step at a time")


# ---------------------------------------------------------------------------------------------------
# Timing panel: the notebook's implementations over sequence lengths
# ---------------------------------------------------------------------------------------------------

def sweep_lengths(longest: int, points: int = 3, factor: int = 4, shortest: int = 4) -> tuple[int, ...]:
    """Sequence lengths ``longest / factor**k``, ending at exactly ``longest`` (so the choice is always timed).

    Example:
        >>> sweep_lengths(256), sweep_lengths(512), sweep_lengths(16)
        ((16, 64, 256), (32, 128, 512), (4, 16))
    """
    require_positive_int(longest, "longest", maximum=100_000)
    require_positive_int(points, "points", maximum=10)
    require_positive_int(factor, "factor", maximum=100)
    lengths = [longest]
    while len(lengths) < points and lengths[0] // factor >= shortest and factor > 1:
        lengths.insert(0, lengths[0] // factor)
    return tuple(lengths)


def timing_memory_estimate(kind: str, longest: int, hidden_size: int, batch: int = 16, input_size: int = 16) -> int:
    """Bytes a forward+backward run keeps alive at the longest length (float32), with a margin of 4×.

    Example:
        >>> timing_memory_estimate("RNN", 100, 10, batch=1, input_size=1)
        65600
    """
    gates = GATES[require_choice(kind, "kind", KINDS)]
    per_step = batch * (input_size + (2 + 2 * gates) * hidden_size)
    return 4 * 4 * longest * per_step


def plot_loop_vs_fused(records: list[TimingRecord], ax=None):
    """``helpers.timing.plot_timings`` for a loop-against-fused sweep, with plain numbers on the time axis.

    Returns:
        The matplotlib ``Axes``.
    """
    from matplotlib.ticker import FuncFormatter

    from helpers.timing import plot_timings

    ax = plot_timings(records, size_label="sequence length T (steps)", ax=ax)

    def plain(value: float, _position: int) -> str:   # "0.4", "2", "20" rather than "4e-01" or "2×10^0"
        leading = f"{value:.0e}"[0]
        return f"{value:g}" if leading in "1235" else ""

    ax.yaxis.set_major_formatter(FuncFormatter(plain))
    ax.yaxis.set_minor_formatter(FuncFormatter(plain))
    return ax


def make_timing_panel(builders_for: Callable[..., dict[str, Builder]], baseline: str, batch: int = 16,
                      input_size: int = 16, longest: int = 256, min_run_time: float = 0.05) -> Panel:
    """A panel timing the notebook's implementations: kind, longest T, hidden size, mode, device, threads.

    The lengths timed are ``sweep_lengths(longest)``, so every setting of "longest T" times that length.
    Its choices stop where ``timing_memory_estimate`` would exceed ``DEFAULT_MEMORY_BUDGET``.

    Args:
        builders_for: the notebook's ``builders_for(kind, hidden_size, batch, input_size) -> {name: builder}``,
            each ``builder(T, device)`` returning a zero-argument callable (see ``helpers.timing``).
        baseline: the implementation the ratio table divides by (e.g. ``"fused"``).
        batch, input_size: fixed sizes.
        longest: the starting "longest T".
        min_run_time: seconds of measurement per point.

    Returns:
        ``Panel``; ``panel.run()`` returns the ``TimingRecord`` list.

    Example:
        >>> def builders_for(kind, hidden_size, batch, input_size):
        ...     return {"ones": lambda T, dev: (lambda: torch.ones(T, hidden_size, device=dev)),
        ...             "zeros": lambda T, dev: (lambda: torch.zeros(T, hidden_size, device=dev))}
        >>> panel = make_timing_panel(builders_for, "ones", min_run_time=0.001)
        >>> sorted({r.size for r in panel.set(longest=32, hidden_size=8).run()})
        [8, 32]
    """
    if not callable(builders_for):
        raise LabInputError(f"builders_for must be the notebook's function; got {type(builders_for).__name__}.")
    choices = [n for n in LONGEST_CHOICES
               if timing_memory_estimate("LSTM", n, 256, batch, input_size) <= DEFAULT_MEMORY_BUDGET]
    if longest not in choices:
        raise LabInputError(f"longest must be one of {choices}; got {longest!r}.")
    devices = available_devices()
    controls = {
        "kind": W.Dropdown(options=list(KINDS), value="RNN"),
        "longest": W.SelectionSlider(options=choices, value=longest, description="longest T"),
        "hidden_size": W.IntSlider(value=64, min=8, max=256, step=8, description="hidden size"),
        "mode": W.Dropdown(options=list(MODES), value="forward"),
        "device": W.Dropdown(options=devices, value=devices[0]),
        "threads": W.IntSlider(value=1, min=1, max=max(1, os.cpu_count() or 1), description="CPU threads"),
    }

    def run(kind, longest, hidden_size, mode, device, threads):
        builders = run_specimen(builders_for, "builders_for", kind, hidden_size, batch, input_size)
        if baseline not in builders:
            raise LabInputError(f"builders_for returned {sorted(builders)}, without the baseline {baseline!r}.")
        return time_implementations(builders, sweep_lengths(longest), mode, device, threads, min_run_time,
                                    progress=False)

    def render(records):
        from helpers.timing import ratio_table

        _show_figure(plot_loop_vs_fused(records).figure)
        print(ratio_table(records, baseline, size_name="T"))

    return Panel(run, controls, render=render, title="Cell loop vs fused module: time per call",
                 memory_estimate=lambda kind, longest, hidden_size, **_: timing_memory_estimate(
                     kind, longest, hidden_size, batch, input_size))


def _summed(output: object) -> torch.Tensor:
    """The sum of every tensor in a callable's output (a tensor or nested tuples), for ``backward()``."""
    if isinstance(output, torch.Tensor):
        return output.sum()
    if isinstance(output, (tuple, list)):
        return sum(_summed(o) for o in output if isinstance(o, (torch.Tensor, tuple, list)))
    raise LabInputError(f"a timed function must return a tensor or a tuple of tensors; got {type(output).__name__}.")


def cpu_time_sweep(builders: dict[str, Builder], sizes, mode: str = "forward", rounds: int = 5,
                   min_run_time: float = 0.005) -> list[TimingRecord]:
    """One thread's CPU time per call of each implementation at each size, every point interleaved with the others.

    Each round measures every (size, implementation) once with ``interleaved_cpu_medians`` (one round each), so a
    stall on a busy machine hits one round of every point alike, and CPU time leaves out the time the machine gave
    to other programs. Use it for sweeps whose ratios a notebook shows or records.

    Args:
        builders: ``{implementation: builder(size, device) -> zero-argument callable}`` (see ``helpers.timing``).
        sizes: the sizes to build each implementation at, e.g. ``(16, 64, 256)``.
        mode: ``"forward"`` (call it) or ``"forward+backward"`` (call it, sum its outputs, ``backward()``).
        rounds: rounds over all points (1..50); the record's ``median_s`` / ``iqr_s`` are over them.
        min_run_time: CPU seconds per point per round (the call is repeated until reached), in (0, 1].

    Returns:
        One ``TimingRecord`` per implementation and size (``threads`` 1, ``device`` ``"cpu"``).

    Raises:
        LabInputError: on an empty ``builders``, bad sizes, an unknown mode, or rounds / min_run_time out of range.

    Example:
        >>> builders = {"ones": lambda n, dev: (lambda: torch.ones(n, device=dev)),
        ...             "zeros": lambda n, dev: (lambda: torch.zeros(n, device=dev))}
        >>> records = cpu_time_sweep(builders, (8, 64), rounds=2, min_run_time=0.001)
        >>> [(r.implementation, r.size, r.runs, r.threads) for r in records]
        [('ones', 8, 2, 1), ('zeros', 8, 2, 1), ('ones', 64, 2, 1), ('zeros', 64, 2, 1)]
    """
    if not isinstance(builders, dict) or not builders:
        raise LabInputError("builders must be a non-empty dict {implementation: builder(size, device)}, e.g. "
                            "builders_for('RNN', 64, 16, 16).")
    sizes = require_sizes(sizes, "sizes", maximum=100_000)
    mode = require_choice(mode, "mode", MODES)
    rounds = require_positive_int(rounds, "rounds", maximum=50)
    if not (isinstance(min_run_time, (int, float)) and 0 < min_run_time <= 1):
        raise LabInputError(f"min_run_time must be CPU seconds in (0, 1], e.g. 0.005; got {min_run_time!r}.")
    points = {}
    for size in sizes:
        for name, builder in builders.items():
            fn = run_specimen(builder, f"builders[{name!r}]", size, torch.device("cpu"))
            points[name, size] = fn if mode == "forward" else (lambda fn=fn: _summed(fn()).backward())
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in points}
    for _ in range(rounds):
        for key, fn in points.items():
            samples[key].append(interleaved_cpu_medians({key[0]: fn}, rounds=1, min_run_time=min_run_time)[key[0]])
    records = []
    for (name, size), times in samples.items():
        q1, median, q3 = np.percentile(times, [25, 50, 75])
        records.append(TimingRecord(name, size, mode, float(median), float(q3 - q1), rounds, 1, "cpu"))
    return records
