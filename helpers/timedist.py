"""Time-distributed layers: one reshape against Python loops over time, and what each costs.

A stateless layer applied to every time step of ``x`` (shape ``(batch, time, *features)``) can run as
one call on ``(batch * time, *features)`` or as a loop over ``t``. This module holds the three ways
notebook 01 compares (``METHODS``), a ``TimeDistributed`` wrapper, an LSTM-cell counter-example, a
tracker of the *peak* bytes kept for backward, timing builders, and the notebook's panels.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import ipywidgets as W
import torch
from torch import nn

from helpers.device import available_devices
from helpers.gradients import compare_gradients
from helpers.graphs import GraphStats, GraphView, draw_graph, graph_stats, side_by_side
from helpers.memory import saved_for_backward, track_live_saved
from helpers.timing import Builder, Experiment, TimingRecord, plot_timings, ratio_table, time_implementations
from helpers.validation import LabInputError, require_choice, require_positive_int, require_tensor

RESHAPE, SLICE_LOOP, UNBIND_LOOP = "reshape", "slice loop", "unbind-stack loop"
METHODS = (RESHAPE, SLICE_LOOP, UNBIND_LOOP)
LOOPS = (SLICE_LOOP, UNBIND_LOOP)
SCALES = ("notebook", "reference")


def _check_sequence(x: object, name: str = "x") -> torch.Tensor:
    x = require_tensor(x, name)
    if x.dim() < 2:
        raise LabInputError(f"{name} must have at least 2 dimensions (batch, time, *features); got shape "
                            f"{tuple(x.shape)}. Add a batch dimension with {name}.unsqueeze(0).")
    if x.shape[1] < 1:
        raise LabInputError(f"{name} has no time steps (shape {tuple(x.shape)}); the time axis is dimension 1.")
    return x


def _check_layer(layer: object) -> Callable:
    if not callable(layer):
        raise LabInputError(f"layer must be an nn.Module or a function of one tensor; got {type(layer).__name__}.")
    return layer


def _check_output(y: object, rows: int) -> torch.Tensor:
    if isinstance(y, (tuple, list)):
        raise LabInputError(f"the layer returned a {type(y).__name__}, not one tensor. A stateful cell such as "
                            "nn.LSTMCell returns (h, c) and needs its state carried from step to step: loop over "
                            "time with `h, c = cell(x_t, (h, c))` instead of distributing it over time.")
    y = require_tensor(y, "layer output")
    if y.dim() == 0 or y.shape[0] != rows:
        raise LabInputError(f"the layer must keep the leading (batch) dimension: it got {rows} rows and returned "
                            f"shape {tuple(y.shape)}. Only layers that treat each row independently can be "
                            "applied over time this way.")
    return y


def apply_reshape(layer: Callable, x: torch.Tensor) -> torch.Tensor:
    """Apply ``layer`` to every time step in one call: ``(B, T, *f) -> (B*T, *f) -> layer -> (B, T, *g)``.

    Args:
        layer: a stateless module or function that maps ``(rows, *f)`` to ``(rows, *g)``.
        x: input of shape ``(batch, time, *features)`` (any number of trailing dimensions, also none).

    Returns:
        Output of shape ``(batch, time, *out_features)``.

    Example:
        >>> apply_reshape(torch.nn.Linear(4, 3), torch.zeros(2, 5, 4)).shape
        torch.Size([2, 5, 3])
    """
    x, layer = _check_sequence(x), _check_layer(layer)
    batch, time = x.shape[:2]
    y = _check_output(layer(x.reshape(batch * time, *x.shape[2:])), batch * time)
    return y.reshape(batch, time, *y.shape[1:])


def apply_slice_loop(layer: Callable, x: torch.Tensor) -> torch.Tensor:
    """The loop that writes into a preallocated output: ``out[:, t] = layer(x[:, t])``.

    Every read ``x[:, t]`` and every write ``out[:, t] = ...`` is one autograd node; in backward
    each of them handles a gradient the size of the *whole* sequence, which is what makes this
    loop's backward grow with the square of the length.

    Example:
        >>> layer = torch.nn.Linear(4, 3); x = torch.randn(2, 5, 4)
        >>> torch.equal(apply_slice_loop(layer, x), apply_reshape(layer, x))
        True
    """
    x, layer = _check_sequence(x), _check_layer(layer)
    batch, time = x.shape[:2]
    first = _check_output(layer(x[:, 0]), batch)
    out = first.new_empty((batch, time, *first.shape[1:]))
    out[:, 0] = first
    for t in range(1, time):
        out[:, t] = layer(x[:, t])
    return out


def apply_unbind_stack(layer: Callable, x: torch.Tensor) -> torch.Tensor:
    """The loop over ``x.unbind(1)`` whose per-step results are joined by ``torch.stack``.

    ``unbind`` and ``stack`` are one autograd node each, so backward stays linear in the length.

    Example:
        >>> layer = torch.nn.Linear(4, 3); x = torch.randn(2, 5, 4)
        >>> apply_unbind_stack(layer, x).shape
        torch.Size([2, 5, 3])
    """
    x, layer = _check_sequence(x), _check_layer(layer)
    batch = x.shape[0]
    return torch.stack([_check_output(layer(x_t), batch) for x_t in x.unbind(1)], dim=1)


_APPLY = {RESHAPE: apply_reshape, SLICE_LOOP: apply_slice_loop, UNBIND_LOOP: apply_unbind_stack}


def time_distributed(layer: Callable, x: torch.Tensor, method: str = RESHAPE) -> torch.Tensor:
    """Apply ``layer`` at every time step of ``x`` by one of ``METHODS``.

    Args:
        layer: stateless module or function on ``(rows, *features)``.
        x: ``(batch, time, *features)``.
        method: ``"reshape"``, ``"slice loop"`` or ``"unbind-stack loop"``.

    Returns:
        ``(batch, time, *out_features)``.

    Example:
        >>> time_distributed(torch.nn.Linear(4, 2), torch.zeros(3, 6, 4), "slice loop").shape
        torch.Size([3, 6, 2])
    """
    require_choice(method, "method", METHODS)
    return _APPLY[method](layer, x)


class TimeDistributed(nn.Module):
    """Wrap a stateless layer so it runs at every time step of a ``(batch, time, *features)`` input.

    The wrapped layer is registered as ``self.layer`` whatever the method, so wrappers with
    different methods have the same parameter names (``layer.0.weight``, ...) and can be compared
    by ``helpers.gradients.compare_gradients``.

    Args:
        layer: the module to distribute over time.
        method: one of ``METHODS``.

    Example:
        >>> conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        >>> TimeDistributed(conv)(torch.zeros(2, 5, 3, 8, 8)).shape   # (batch, time, C, H, W)
        torch.Size([2, 5, 4, 8, 8])
    """

    def __init__(self, layer: nn.Module, method: str = RESHAPE):
        super().__init__()
        if not isinstance(layer, nn.Module):
            raise LabInputError(f"layer must be an nn.Module; got {type(layer).__name__}. "
                                "Wrap a function with time_distributed(fn, x) instead.")
        self.layer, self.method = layer, require_choice(method, "method", METHODS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return time_distributed(self.layer, x, self.method)

    def extra_repr(self) -> str:
        return f"method={self.method!r}"


def make_mlp(width: int = 16, hidden: int = 32, seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The stateless layer of the lesson: ``Linear(width, hidden) -> Tanh -> Linear(hidden, width)``.

    Example:
        >>> make_mlp(4, 8)
        Sequential(
          (0): Linear(in_features=4, out_features=8, bias=True)
          (1): Tanh()
          (2): Linear(in_features=8, out_features=4, bias=True)
        )
    """
    require_positive_int(width, "width")
    require_positive_int(hidden, "hidden")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    layer = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, width)).to(dtype)
    torch.random.set_rng_state(generator_state)
    return layer


def wrappers(layer: nn.Module, methods: Sequence[str] = METHODS) -> dict[str, TimeDistributed]:
    """``{method: TimeDistributed(copy of layer, method)}``: identical weights, for ``compare_gradients``.

    Example:
        >>> list(wrappers(torch.nn.Linear(2, 2)))
        ['reshape', 'slice loop', 'unbind-stack loop']
    """
    for method in methods:
        require_choice(method, "method", METHODS)
    return {method: TimeDistributed(copy.deepcopy(layer), method) for method in methods}


# --------------------------------------------------------------------------- gradients and accuracy

@dataclass(frozen=True)
class ErrorRow:
    """Largest float32 gradient error against float64, per method, at one sequence length (median over seeds)."""

    length: int
    errors: dict[str, float]


def float32_error_by_length(lengths: Sequence[int], batch: int = 4, width: int = 16, hidden: int = 32,
                            seeds: int = 5, methods: Sequence[str] = (RESHAPE, UNBIND_LOOP)) -> list[ErrorRow]:
    """For each length: the median (over seeds) of the largest |float32 gradient - float64 gradient| over
    all weights and biases, per method. Shows which accumulation order drifts further from exact.

    Example:
        >>> rows = float32_error_by_length([4], seeds=1)
        >>> sorted(rows[0].errors)
        ['reshape', 'unbind-stack loop']
    """
    require_positive_int(seeds, "seeds")
    rows = []
    for length in lengths:
        require_positive_int(length, "length")
        per_method: dict[str, list[float]] = {m: [] for m in methods}
        for seed in range(seeds):
            layer = make_mlp(width, hidden, seed=seed)
            x = torch.randn(batch, length, width, generator=torch.Generator().manual_seed(seed))
            result = compare_gradients(wrappers(layer, methods), x, float64_reference=True)
            for m in methods:
                per_method[m].append(max(r.max_abs_diff for r in result.rows
                                         if r.implementation == m and r.quantity != "input"))
        rows.append(ErrorRow(length, {m: float(torch.tensor(v).median()) for m, v in per_method.items()}))
    return rows


def plot_error_by_length(rows: Sequence[ErrorRow], ax=None):
    """Log-log plot of ``float32_error_by_length`` rows; returns the Axes."""
    import matplotlib.pyplot as plt

    if not rows:
        raise LabInputError("no rows to plot; run float32_error_by_length first.")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for method in rows[0].errors:
        ax.plot([r.length for r in rows], [r.errors[method] for r in rows], marker="o", label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T (steps)")
    ax.set_ylabel("max |grad32 − grad64| (weights, biases)")
    ax.set_title("float32 weight-gradient error against float64 (median over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


# --------------------------------------------------------------------------- memory

@dataclass(frozen=True)
class SavedRow:
    """What one method saved for backward at one length (``helpers.memory.saved_for_backward``)."""

    method: str
    length: int
    tensors: int
    storages: int
    bytes: int


def saved_by_length(layer: nn.Module, lengths: Sequence[int], batch: int = 8,
                    methods: Sequence[str] = METHODS) -> list[SavedRow]:
    """Measure the tensors and bytes each method saves for backward over several sequence lengths.

    The input requires grad, as it does when it comes from an earlier layer.

    Example:
        >>> rows = saved_by_length(make_mlp(4, 8), [3], batch=2)
        >>> [(r.method, r.tensors) for r in rows]
        [('reshape', 5), ('slice loop', 15), ('unbind-stack loop', 15)]
    """
    width = _in_features(layer)
    rows = []
    for length in lengths:
        require_positive_int(length, "length")
        x = torch.randn(batch, length, width, requires_grad=True)
        for method in methods:
            saved = saved_for_backward(time_distributed, layer, x, method)
            rows.append(SavedRow(method, length, saved.count, saved.storages, saved.bytes))
    return rows


def _in_features(layer: nn.Module) -> int:
    for module in layer.modules():
        if isinstance(module, nn.Linear):
            return module.in_features
    raise LabInputError("could not find the input width: the layer has no nn.Linear; pass an MLP from make_mlp().")


def plot_saved_by_length(rows: Sequence[SavedRow]):
    """Two panels against length: bytes saved for backward, and number of saved tensors. Returns the figure."""
    import matplotlib.pyplot as plt

    if not rows:
        raise LabInputError("no rows to plot; run saved_by_length first.")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        style = {"marker": "o", "label": method, "linestyle": "--" if method == UNBIND_LOOP else "-"}
        left.plot([r.length for r in mine], [r.bytes / 1024 for r in mine], **style)
        right.plot([r.length for r in mine], [r.tensors for r in mine], **style)
    for ax, label, title in ((left, "saved for backward (KiB)", "Bytes saved (distinct storages)"),
                             (right, "saved tensors (count)", "Tensors saved")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def per_step_weights(shape: Sequence[int], seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Fixed random weights ``g`` for the loss ``(y * g).sum()``, which splits into one term per time step.

    Example:
        >>> per_step_weights((2, 3, 4)).shape
        torch.Size([2, 3, 4])
    """
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def full_backward(layer: nn.Module, x: torch.Tensor, g: torch.Tensor, method: str = RESHAPE) -> torch.Tensor:
    """Forward over the whole sequence, then one backward of ``(y * g).sum()``; returns the input gradient.

    Parameter gradients accumulate into ``layer``'s ``.grad`` as usual.

    Example:
        >>> layer = make_mlp(4, 8); x = torch.randn(2, 3, 4)
        >>> full_backward(layer, x, per_step_weights((2, 3, 4))).shape
        torch.Size([2, 3, 4])
    """
    x = _check_sequence(x).detach().requires_grad_(True)
    y = time_distributed(layer, x, method)
    if y.shape != g.shape:
        raise LabInputError(f"g must have the output's shape {tuple(y.shape)}; got {tuple(g.shape)}.")
    (y * g).sum().backward()
    return x.grad


def stepwise_backward(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Forward and backward one time step at a time, so only one step's graph is alive at once.

    Valid only because the layer is stateless and the loss ``(y * g).sum()`` splits into one term per
    step. Each step's input is cut from ``x`` (``detach``), so the gradient cannot flow further back
    by itself: it is returned for the caller to pass on.

    Args:
        layer: the stateless layer.
        x: ``(batch, time, *features)``.
        g: the loss weights, shaped like the output.

    Returns:
        The input gradient, shaped like ``x``.

    Example:
        >>> layer = make_mlp(4, 8); x = torch.randn(2, 3, 4); g = per_step_weights((2, 3, 4))
        >>> a = stepwise_backward(layer, x, g); b = full_backward(copy.deepcopy(layer), x, g)
        >>> torch.allclose(a, b)
        True
    """
    x = _check_sequence(x)
    if g.shape[:2] != x.shape[:2]:
        raise LabInputError(f"g must have the output's shape, starting with (batch, time) = {tuple(x.shape[:2])}; "
                            f"got {tuple(g.shape)}.")
    grad = torch.empty_like(x)
    for t in range(x.shape[1]):
        x_t = x[:, t].detach().requires_grad_(True)
        (layer(x_t) * g[:, t]).sum().backward()
        grad[:, t] = x_t.grad
    return grad


@dataclass(frozen=True)
class StepwiseRow:
    """Peak bytes/tensors held for backward (input, loss weights and layer weights excluded: they live anyway)
    for one strategy at one length."""

    strategy: str
    length: int
    peak_bytes: int
    peak_tensors: int


def peak_saved_by_length(layer: nn.Module, lengths: Sequence[int], batch: int = 8) -> list[StepwiseRow]:
    """Peak saved memory of one full backward (reshape and unbind-stack loop) against step-by-step backward.

    Example:
        >>> rows = peak_saved_by_length(make_mlp(4, 8), [2], batch=1)
        >>> [r.strategy for r in rows]
        ['reshape', 'unbind-stack loop', 'stepwise backward']
    """
    width = _in_features(layer)
    rows = []
    for length in lengths:
        require_positive_int(length, "length")
        x = torch.randn(batch, length, width)
        g = per_step_weights((batch, length, width))
        runs = {RESHAPE: lambda: full_backward(layer, x, g, RESHAPE),
                UNBIND_LOOP: lambda: full_backward(layer, x, g, UNBIND_LOOP),
                "stepwise backward": lambda: stepwise_backward(layer, x, g)}
        for strategy, run in runs.items():
            with track_live_saved(ignore=[x, g, *layer.parameters()]) as peak:
                run()
            rows.append(StepwiseRow(strategy, length, peak.peak_bytes, peak.peak_tensors))
    layer.zero_grad(set_to_none=True)
    return rows


# --------------------------------------------------------------------------- LSTM cell

def lstm_cell_by_reshape(cell: nn.LSTMCell, x: torch.Tensor) -> torch.Tensor:
    """The wrong way: run the cell once on ``(batch*time, features)``; every step starts from zero state.

    Returns:
        The hidden states, ``(batch, time, hidden)``.

    Example:
        >>> lstm_cell_by_reshape(torch.nn.LSTMCell(3, 5), torch.zeros(2, 4, 3)).shape
        torch.Size([2, 4, 5])
    """
    x = require_tensor(x, "x", ndim=3, layout="(batch, time, features)")
    batch, time, features = x.shape
    h, _c = cell(x.reshape(batch * time, features))
    return h.reshape(batch, time, -1)


def lstm_cell_loop(cell: nn.LSTMCell, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The correct recurrence: ``h, c = cell(x_t, (h, c))`` at every step, from zero state.

    Returns:
        ``(outputs, (h, c))`` like ``nn.LSTM(batch_first=True)``: outputs ``(batch, time, hidden)``.

    Example:
        >>> out, (h, c) = lstm_cell_loop(torch.nn.LSTMCell(3, 5), torch.zeros(2, 4, 3))
        >>> out.shape, h.shape
        (torch.Size([2, 4, 5]), torch.Size([2, 5]))
    """
    x = require_tensor(x, "x", ndim=3, layout="(batch, time, features)")
    h = x.new_zeros(x.shape[0], cell.hidden_size)
    c = x.new_zeros(x.shape[0], cell.hidden_size)
    outputs = []
    for x_t in x.unbind(1):
        h, c = cell(x_t, (h, c))      # an LSTMCell returns the pair (h, c), nothing else
        outputs.append(h)
    return torch.stack(outputs, dim=1), (h, c)


def lstm_cell_popular_snippet(cell: nn.LSTMCell, x: torch.Tensor) -> torch.Tensor:
    """The popular wrong loop, copied from ``nn.LSTM``'s ``output, (h, c) = lstm(x, (h, c))``.

    An ``LSTMCell`` returns ``(h, c)``, so ``out`` gets ``h`` and ``(h, c)`` unpacks the *rows* of ``c``.

    Example:
        >>> from helpers.exercises import check_raises
        >>> check_raises(lambda: lstm_cell_popular_snippet(torch.nn.LSTMCell(3, 5), torch.zeros(4, 2, 3)), ValueError)
        ✅ call: raised ValueError: too many values to unpack (expected 2)
    """
    x = require_tensor(x, "x", ndim=3, layout="(batch, time, features)")
    h = x.new_zeros(x.shape[0], cell.hidden_size)
    c = x.new_zeros(x.shape[0], cell.hidden_size)
    outputs = []
    for x_t in x.unbind(1):
        out, (h, c) = cell(x_t, (h, c))
        outputs.append(out)
    return torch.stack(outputs, dim=1)


def lstm_like_cell(cell: nn.LSTMCell) -> nn.LSTM:
    """An ``nn.LSTM(batch_first=True)`` with ``cell``'s weights: PyTorch's own recurrence, to check a loop against.

    Example:
        >>> cell = torch.nn.LSTMCell(3, 5); x = torch.randn(2, 4, 3)
        >>> torch.allclose(lstm_like_cell(cell)(x)[0], lstm_cell_loop(cell, x)[0], atol=1e-6)
        True
    """
    if not isinstance(cell, nn.LSTMCell):
        raise LabInputError(f"cell must be an nn.LSTMCell; got {type(cell).__name__}.")
    lstm = nn.LSTM(cell.input_size, cell.hidden_size, batch_first=True, bias=cell.bias)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(cell.weight_ih)
        lstm.weight_hh_l0.copy_(cell.weight_hh)
        if cell.bias:
            lstm.bias_ih_l0.copy_(cell.bias_ih)
            lstm.bias_hh_l0.copy_(cell.bias_hh)
    return lstm.to(cell.weight_ih.device, cell.weight_ih.dtype)


# --------------------------------------------------------------------------- graphs

@dataclass
class GraphPair:
    """Autograd graphs of a loop and of the reshape for the same steps; shows as one PNG."""

    steps: int
    loop: str
    views: dict[str, GraphView]
    png: bytes

    @property
    def nodes(self) -> dict[str, int]:
        """Node count per method."""
        return {name: view.stats.nodes for name, view in self.views.items()}

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return f"<graphs at {self.steps} steps: " + ", ".join(f"{k}: {v}" for k, v in self.views.items()) + ">"


def graph_for(method: str, steps: int, width: int = 2, hidden: int = 3) -> torch.Tensor:
    """A scalar loss through a tiny MLP applied over ``steps`` time steps by ``method`` (for drawing).

    Example:
        >>> graph_for("reshape", 3).shape
        torch.Size([])
    """
    require_choice(method, "method", METHODS)
    require_positive_int(steps, "steps", maximum=12)
    x = torch.randn(1, steps, width, generator=torch.Generator().manual_seed(0), requires_grad=True)
    return time_distributed(make_mlp(width, hidden), x, method).sum()


def graph_stats_at(method: str, steps: int) -> GraphStats:
    """Node counts of ``graph_for(method, steps)``: how the graph grows with the number of steps.

    Example:
        >>> graph_stats_at("slice loop", 2).node_types["CopySlices"]
        2
    """
    return graph_stats(graph_for(method, steps))


def graph_pair(steps: int, loop: str = UNBIND_LOOP) -> GraphPair:
    """Draw the loop's and the reshape's autograd graphs side by side, with node counts.

    Example:
        >>> pair = graph_pair(2); pair.nodes["reshape"] < pair.nodes["unbind-stack loop"]
        True
    """
    require_choice(loop, "loop", LOOPS)
    views = {name: draw_graph(graph_for(name, steps), title=f"{name}, {steps} steps") for name in (loop, RESHAPE)}
    return GraphPair(steps, loop, views, side_by_side(views))


def _render_graph_pair(pair: GraphPair) -> None:
    from IPython.display import Image, display

    print("\n".join(f"{name}: {view.stats}" for name, view in pair.views.items()))
    hints = {view.hint for view in pair.views.values() if view.hint}
    for hint in hints:
        print(hint)
    display(Image(pair.png))


def make_graph_panel(steps: int = 3) -> "Panel":
    """Panel: a slider for the number of time steps (1-6) and the loop kind; Run draws both graphs.

    Example:
        >>> make_graph_panel().set(steps=1).run().nodes["reshape"] > 0
        True
    """
    from helpers.widgets import Panel

    controls = {"steps": W.IntSlider(value=steps, min=1, max=6, description="time steps"),
                "loop": W.Dropdown(options=list(LOOPS), value=UNBIND_LOOP, description="loop")}
    return Panel(graph_pair, controls, render=_render_graph_pair,
                 title="Autograd graph of a loop over time vs. one reshape")


# --------------------------------------------------------------------------- timing

def make_builder(method: str, batch: int, width: int, hidden: int | None = None) -> Builder:
    """A timing builder for ``helpers.timing``: ``builder(length, device)`` returns the forward pass.

    The input requires grad (as when it comes from an earlier layer), so backward also computes
    the input gradient.

    Example:
        >>> fn = make_builder("slice loop", batch=2, width=4)(5, torch.device("cpu"))
        >>> fn().shape
        torch.Size([2, 5, 4])
    """
    require_choice(method, "method", METHODS)
    require_positive_int(batch, "batch")
    require_positive_int(width, "width")
    hidden = width if hidden is None else require_positive_int(hidden, "hidden")

    def build(length: int, device: torch.device) -> Callable[[], torch.Tensor]:
        layer = make_mlp(width, hidden).to(device)
        x = torch.randn(batch, length, width, generator=torch.Generator().manual_seed(length))
        x = x.to(device).requires_grad_(True)
        return lambda: time_distributed(layer, x, method)

    return build


_SCALE_SIZES = {
    # notebook: seconds on a 2-core CPU; reference (make bench): long enough for the quadratic term to dominate
    "notebook": {"lengths": (16, 32, 64, 128, 256), "batch": 64, "width": 32},
    "reference": {"lengths": (16, 32, 64, 128, 256, 512, 1024), "batch": 64, "width": 64},
}


def length_sweep(lengths: Sequence[int], batch: int, width: int, methods: Sequence[str] = METHODS,
                 modes: Sequence[str] = ("forward", "forward+backward"), name: str = "nb01.length_sweep") -> Experiment:
    """The experiment: each method over sequence length at fixed batch and width, baseline ``"reshape"``.

    Example:
        >>> length_sweep([4, 8], batch=2, width=4).baseline
        'reshape'
    """
    if not methods:
        raise LabInputError("choose at least one implementation to time.")
    builders = {m: make_builder(m, batch, width) for m in methods}
    baseline = RESHAPE if RESHAPE in methods else methods[0]
    return Experiment(name, builders, tuple(require_positive_int(int(n), "length") for n in lengths),
                      "sequence length T (steps)", baseline, tuple(modes),
                      {"batch": batch, "width": width, "hidden": width, "layer": "Linear-Tanh-Linear",
                       "input requires grad": True})


def standard_experiments(scale: str = "notebook") -> list[Experiment]:
    """The notebook's timing experiments, at ``"notebook"`` scale (small, fast) or ``"reference"`` scale
    (larger, recorded by ``make bench`` into ``data/reference/``).

    Example:
        >>> [(e.name, e.baseline) for e in standard_experiments()]
        [('nb01.length_sweep', 'reshape')]
        >>> standard_experiments("reference")[0].sizes[-1] > standard_experiments()[0].sizes[-1]
        True
    """
    require_choice(scale, "scale", SCALES)
    sizes = _SCALE_SIZES[scale]
    return [length_sweep(sizes["lengths"], sizes["batch"], sizes["width"])]


def tail_slopes(records: Sequence[TimingRecord], points: int = 3) -> dict[tuple[str, str], float]:
    """Log-log slope of each (implementation, mode) over its ``points`` largest sizes, where the leading
    term dominates (about 1 = linear, 2 = quadratic).

    Example:
        >>> recs = [TimingRecord("a", n, "forward", n * n * 1e-6, 0, 1, 1, "cpu") for n in (2, 4, 8)]
        >>> round(tail_slopes(recs)[("a", "forward")], 3)
        2.0
    """
    from helpers.timing import fit_loglog_slope

    slopes = {}
    for key in dict.fromkeys((r.implementation, r.mode) for r in records):
        points_ = sorted((r.size, r.median_s) for r in records if (r.implementation, r.mode) == key)[-points:]
        if len(points_) >= 2:
            slopes[key] = fit_loglog_slope(*zip(*points_))
    return slopes


def plot_length_sweep(records: Sequence[TimingRecord]):
    """One log-log panel per mode (forward, forward+backward), fitted slopes in the legends. Returns the figure."""
    import matplotlib.pyplot as plt

    if not records:
        raise LabInputError("no timing records to plot; run the experiment first.")
    modes = list(dict.fromkeys(r.mode for r in records))
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        plot_timings([r for r in records if r.mode == mode], size_label="sequence length T (steps)", ax=ax)
    fig.tight_layout()
    return fig


PANEL_LIMITS = {"length": (8, 256), "batch": (1, 64), "width": (4, 64)}


def panel_memory_estimate(length: int, batch: int, width: int, **_: object) -> int:
    """Bytes a panel run may hold at once: a few full-sequence float32 tensors (input, activations,
    gradients) per implementation.

    Example:
        >>> panel_memory_estimate(length=10, batch=2, width=4)
        7680
    """
    return 12 * 4 * length * batch * width * 2


def run_timing_panel(length: int, batch: int, width: int, reshape: bool = True, slice_loop: bool = True,
                     unbind_stack_loop: bool = True, mode: str = "forward+backward", device: str = "cpu",
                     threads: int = 1, min_run_time: float = 0.05) -> list[TimingRecord]:
    """What the timing panel runs: each chosen method at lengths 8, 16, ... up to ``length``.

    Example:
        >>> recs = run_timing_panel(length=16, batch=2, width=4, slice_loop=False, min_run_time=0.01)
        >>> sorted({(r.implementation, r.size) for r in recs})
        [('reshape', 8), ('reshape', 16), ('unbind-stack loop', 8), ('unbind-stack loop', 16)]
    """
    chosen = [m for m, on in zip(METHODS, (reshape, slice_loop, unbind_stack_loop)) if on]
    if not chosen:
        raise LabInputError("tick at least one implementation to time.")
    low, high = PANEL_LIMITS["length"]
    if not low <= length <= high:
        raise LabInputError(f"length must be between {low} and {high}; got {length}.")
    lengths = [n for n in (8, 16, 32, 64, 128, 256) if n <= length]
    if lengths[-1] != length:
        lengths.append(length)
    experiment = length_sweep(lengths, batch, width, chosen, modes=(mode,))
    return time_implementations(experiment.builders, experiment.sizes, mode, device, threads, min_run_time)


def _render_timings(records: Sequence[TimingRecord]) -> None:
    import matplotlib.pyplot as plt

    plot_length_sweep(records)
    plt.show()
    baseline = RESHAPE if any(r.implementation == RESHAPE for r in records) else records[0].implementation
    print(ratio_table(records, baseline, "T"))


def make_timing_panel(threads: int = 1) -> "Panel":
    """Panel: length, batch, width, implementation checkboxes, mode and device; Run times and plots them.

    Devices come from ``helpers.device.available_devices()`` (CUDA only when present).

    Example:
        >>> panel = make_timing_panel()
        >>> panel.controls["device"].options[0]
        'cpu'
    """
    from helpers.widgets import Panel

    (l0, l1), (b0, b1), (w0, w1) = PANEL_LIMITS["length"], PANEL_LIMITS["batch"], PANEL_LIMITS["width"]
    controls = {
        "length": W.IntSlider(value=64, min=l0, max=l1, step=8, description="max length T"),
        "batch": W.IntSlider(value=32, min=b0, max=b1, description="batch"),
        "width": W.IntSlider(value=32, min=w0, max=w1, step=4, description="width"),
        "reshape": W.Checkbox(value=True, description=RESHAPE),
        "slice_loop": W.Checkbox(value=True, description=SLICE_LOOP),
        "unbind_stack_loop": W.Checkbox(value=True, description=UNBIND_LOOP),
        "mode": W.Dropdown(options=["forward", "forward+backward"], value="forward+backward", description="mode"),
        "device": W.Dropdown(options=available_devices(), value="cpu", description="device"),
    }

    def run(**values: object) -> list[TimingRecord]:
        return run_timing_panel(**values, threads=threads)

    where = ("CPU or CUDA" if "cuda" in available_devices()
             else "runs on the CPU: no CUDA GPU is visible here")
    return Panel(run, controls, render=_render_timings,
                 title=f"Time distributed over sequence length ({where})", memory_estimate=panel_memory_estimate)
