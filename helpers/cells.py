"""Iterating recurrent cells by hand, and proving the iteration equals PyTorch's fused modules.

Everything here uses the ``batch_first`` layout: inputs are ``(batch, time, features)``. The pieces:

- ``cell_from_layer`` / ``run_cell_loop``: a Python loop over ``nn.RNNCell`` (or ``LSTMCell``, ``GRUCell``)
  with the weights of one layer of ``nn.RNN`` (``LSTM``, ``GRU``) copied in;
- ``rnn_step`` / ``lstm_step`` / ``gru_step`` and ``HandRecurrent``: the same equations written out, for any
  number of layers, with parameters named exactly like the fused module's (``weight_ih_l0`` ...), so outputs
  *and* gradients can be compared with ``helpers.gradients.compare_gradients``;
- ``popular_multilayer_snippet``: the broken pattern that calls a weight tensor as if it were a layer;
- ``run_in_chunks``: streaming, carrying the state from one chunk to the next;
- ``step_through`` / ``make_step_panel``: watch the hidden state evolve, one step at a time;
- ``loop_builder`` / ``fused_builder`` / ``loop_vs_fused_experiment``: timing a cell loop against the fused module.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as W
import torch
from torch import nn

from helpers.device import available_devices
from helpers.timing import Experiment
from helpers.validation import LabInputError, require_choice, require_positive_int, require_tensor
from helpers.widgets import DEFAULT_MEMORY_BUDGET, Panel, largest_within_budget

KINDS = ("RNN", "LSTM", "GRU")
MODULES = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
CELLS = {"RNN": nn.RNNCell, "LSTM": nn.LSTMCell, "GRU": nn.GRUCell}
LAYOUT = "(batch, time, features)"

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def kind_of(module: nn.Module) -> str:
    """The kind (``"RNN"``, ``"LSTM"`` or ``"GRU"``) of a fused recurrent module or cell.

    Example:
        >>> kind_of(torch.nn.GRU(2, 3)), kind_of(torch.nn.LSTMCell(2, 3))
        ('GRU', 'LSTM')
    """
    for kind in KINDS:
        if isinstance(module, (MODULES[kind], CELLS[kind])):
            return kind
    raise LabInputError(f"expected nn.RNN, nn.LSTM or nn.GRU (or their cells); got {type(module).__name__}.")


def make_recurrent(kind: str, input_size: int, hidden_size: int, num_layers: int = 1,
                   bidirectional: bool = False, seed: int | None = 0) -> nn.Module:
    """A fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` in the ``batch_first`` layout, seeded for repeatability.

    Args:
        kind: ``"RNN"``, ``"LSTM"`` or ``"GRU"``.
        input_size, hidden_size, num_layers: as for the torch module.
        bidirectional: as for the torch module.
        seed: seeds the weight initialisation (None: use the global generator as it is).

    Returns:
        The module, with ``batch_first=True``.

    Example:
        >>> make_recurrent("LSTM", 3, 4, num_layers=2).weight_hh_l1.shape
        torch.Size([16, 4])
    """
    require_choice(kind, "kind", KINDS)
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        require_positive_int(value, name)
    if seed is not None:
        torch.manual_seed(seed)
    return MODULES[kind](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                         bidirectional=bidirectional)


def _require_sequence(x: object, module: nn.Module, name: str = "x") -> torch.Tensor:
    x = require_tensor(x, name, ndim=3, layout=LAYOUT)
    expected = module.input_size
    if x.shape[-1] != expected:
        raise LabInputError(f"{name} has {x.shape[-1]} features in its last dimension but the module expects "
                            f"input_size={expected}; reshape it to {LAYOUT}.")
    if x.shape[1] == 0:
        raise LabInputError(f"{name} has no time steps (shape {tuple(x.shape)}); give it at least one.")
    return x


def cell_from_layer(module: nn.Module, layer: int = 0) -> nn.Module:
    """A cell (``nn.RNNCell`` / ``LSTMCell`` / ``GRUCell``) holding copies of one layer's weights.

    Args:
        module: a unidirectional ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (without ``proj_size``).
        layer: which layer's weights to copy (``weight_ih_l{layer}``, ...).

    Returns:
        A new cell whose parameters equal that layer's (copies: training one does not change the other).

    Example:
        >>> rnn = torch.nn.RNN(3, 4, num_layers=2)
        >>> torch.equal(cell_from_layer(rnn, layer=1).weight_hh, rnn.weight_hh_l1)
        True
    """
    kind = kind_of(module)
    if isinstance(module, CELLS[kind]):
        raise LabInputError("module is already a cell; pass the fused nn.RNN / nn.LSTM / nn.GRU to copy from.")
    if module.bidirectional:
        raise LabInputError("a bidirectional module has two weight sets per layer; a cell loop reproduces only "
                            "a unidirectional one. Build it with bidirectional=False.")
    if getattr(module, "proj_size", 0):
        raise LabInputError("an LSTM with proj_size > 0 has no matching nn.LSTMCell; use proj_size=0.")
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < module.num_layers:
        raise LabInputError(f"layer must be an int in 0..{module.num_layers - 1}; got {layer!r}.")
    extra = {"nonlinearity": module.nonlinearity} if kind == "RNN" else {}
    in_size = module.input_size if layer == 0 else module.hidden_size
    cell = CELLS[kind](in_size, module.hidden_size, bias=module.bias, **extra)
    cell = cell.to(device=module.weight_ih_l0.device, dtype=module.weight_ih_l0.dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if module.bias else ()):
            getattr(cell, name).copy_(getattr(module, f"{name}_l{layer}"))
    return cell


def run_cell_loop(cell: nn.Module, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
    """Run a cell over every time step of ``x`` in a Python loop, carrying the state.

    Args:
        cell: an ``nn.RNNCell``, ``nn.LSTMCell`` or ``nn.GRUCell``.
        x: input of shape ``(batch, time, features)``.
        state: the state before the first step: ``h`` of shape ``(batch, hidden)``, or ``(h, c)`` for an
            LSTM cell; None means zeros, as in torch.

    Returns:
        ``(outputs, final state)``: outputs ``(batch, time, hidden)`` stack ``h`` after each step.

    Example:
        >>> cell = torch.nn.GRUCell(2, 3)
        >>> out, h = run_cell_loop(cell, torch.randn(4, 5, 2))
        >>> out.shape, torch.equal(out[:, -1], h)
        (torch.Size([4, 5, 3]), True)
    """
    kind = kind_of(cell)
    if not isinstance(cell, CELLS[kind]):
        raise LabInputError(f"cell must be an nn.{kind}Cell; got the fused nn.{kind}. "
                            "Make one with cell_from_layer(module, layer).")
    x = _require_sequence(x, cell)
    if state is not None:
        parts = state if kind == "LSTM" else (state,)
        if kind == "LSTM" and not (isinstance(state, tuple) and len(state) == 2):
            raise LabInputError("an LSTM cell's state is a tuple (h, c); got a single tensor.")
        for part in parts:
            require_tensor(part, "state", ndim=2, layout="(batch, hidden)")
    outputs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        outputs.append(state[0] if kind == "LSTM" else state)
    return torch.stack(outputs, dim=1), state


# ---------------------------------------------------------------------------------------------------
# The equations, written out (PyTorch's gate order: LSTM i, f, g, o; GRU r, z, n)
# ---------------------------------------------------------------------------------------------------

def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x @ weight.T if bias is None else torch.addmm(bias, x, weight.T)


def rnn_step(x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
             b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None,
             nonlinearity: str = "tanh") -> torch.Tensor:
    """One Elman RNN step: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or ReLU).

    Example:
        >>> cell = torch.nn.RNNCell(2, 3); x, h = torch.randn(4, 2), torch.randn(4, 3)
        >>> new = rnn_step(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        >>> bool((new - cell(x, h)).abs().max() < 1e-6)
        True
    """
    pre = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], w_ih: torch.Tensor, w_hh: torch.Tensor,
              b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step; gates in PyTorch's order input, forget, cell (g), output.

    ``c' = f * c + i * g``, ``h' = o * tanh(c')``.

    Example:
        >>> cell = torch.nn.LSTMCell(2, 3); x = torch.randn(4, 2); s = (torch.randn(4, 3), torch.randn(4, 3))
        >>> h, c = lstm_step(x, s, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        >>> bool((h - cell(x, s)[0]).abs().max() < 1e-6)
        True
    """
    h, c = state
    i, f, g, o = (_affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_step(x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
             b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None) -> torch.Tensor:
    """One GRU step; gates in PyTorch's order reset, update, new.

    ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``, ``h' = (1 - z) * n + z * h``: the reset gate
    multiplies the hidden part *including its bias*, which is why the two projections stay separate.

    Example:
        >>> cell = torch.nn.GRUCell(2, 3); x, h = torch.randn(4, 2), torch.randn(4, 3)
        >>> new = gru_step(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        >>> bool((new - cell(x, h)).abs().max() < 1e-6)
        True
    """
    xr, xz, xn = _affine(x, w_ih, b_ih).chunk(3, dim=-1)
    hr, hz, hn = _affine(h, w_hh, b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


class HandRecurrent(nn.Module):
    """A multi-layer RNN / LSTM / GRU iterated by hand, one time step and one layer at a time.

    Its parameters have the fused module's names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
    ``bias_hh_l0``, ``..._l1``), so ``load_state_dict`` copies weights across in one line and
    ``compare_gradients`` can compare every gradient. Call it like the fused module
    (``batch_first=True``): ``out, h_n = m(x, h0)``; for an LSTM ``out, (h_n, c_n) = m(x, (h0, c0))``.

    Args:
        kind: ``"RNN"``, ``"LSTM"`` or ``"GRU"``.
        input_size, hidden_size, num_layers, bias: as for the torch module.
        nonlinearity: ``"tanh"`` or ``"relu"`` (RNN only).

    Example:
        >>> fused = make_recurrent("GRU", 3, 4, num_layers=2)
        >>> hand = HandRecurrent.from_module(fused)
        >>> x = torch.randn(2, 5, 3)
        >>> bool((hand(x)[0] - fused(x)[0]).abs().max() < 1e-6)
        True
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 nonlinearity: str = "tanh"):
        super().__init__()
        require_choice(kind, "kind", KINDS)
        require_choice(nonlinearity, "nonlinearity", ("tanh", "relu"))
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            require_positive_int(value, name)
        self.kind, self.input_size, self.hidden_size = kind, input_size, hidden_size
        self.num_layers, self.bias, self.nonlinearity = num_layers, bias, nonlinearity
        gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
        for k in range(num_layers):
            width = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(gates * hidden_size, width)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(gates * hidden_size, hidden_size)))
            if bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(gates * hidden_size)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(gates * hidden_size)))
        bound = hidden_size ** -0.5  # torch's initialisation, so a fresh HandRecurrent is usable on its own
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    @classmethod
    def from_module(cls, module: nn.Module) -> "HandRecurrent":
        """A ``HandRecurrent`` with the same shape and a copy of the weights of a fused module.

        Raises:
            LabInputError: for a bidirectional module, an LSTM with ``proj_size``, or one not ``batch_first``.
        """
        kind = kind_of(module)
        if isinstance(module, CELLS[kind]):
            raise LabInputError("pass a fused nn.RNN / nn.LSTM / nn.GRU, not a cell.")
        if module.bidirectional or getattr(module, "proj_size", 0):
            raise LabInputError("HandRecurrent reproduces unidirectional modules without proj_size only.")
        if not module.batch_first:
            raise LabInputError("build the fused module with batch_first=True: the helpers use "
                                f"{LAYOUT} throughout.")
        hand = cls(kind, module.input_size, module.hidden_size, module.num_layers, module.bias,
                   getattr(module, "nonlinearity", "tanh"))
        hand = hand.to(device=module.weight_ih_l0.device, dtype=module.weight_ih_l0.dtype)
        hand.load_state_dict(module.state_dict())
        return hand

    def _layer_weights(self, k: int) -> tuple:
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
        weights = tuple(getattr(self, f"{name}_l{k}") for name in names)
        return weights if self.bias else weights + (None, None)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        x = _require_sequence(x, self)
        batch, layers = x.shape[0], self.num_layers
        zeros = x.new_zeros(layers, batch, self.hidden_size)
        if self.kind == "LSTM":
            h0, c0 = state if state is not None else (zeros, zeros)
            hs, cs = list(h0.unbind(0)), list(c0.unbind(0))
        else:
            hs = list((state if state is not None else zeros).unbind(0))
        if hs[0].shape != (batch, self.hidden_size) or len(hs) != layers:
            raise LabInputError(f"the initial state must have shape (num_layers={layers}, batch={batch}, "
                                f"hidden={self.hidden_size}); got {tuple(torch.stack(hs).shape)}.")
        outputs = []
        for t in range(x.shape[1]):
            inp = x[:, t]
            for k in range(layers):
                w = self._layer_weights(k)
                if self.kind == "RNN":
                    hs[k] = rnn_step(inp, hs[k], *w, nonlinearity=self.nonlinearity)
                elif self.kind == "GRU":
                    hs[k] = gru_step(inp, hs[k], *w)
                else:
                    hs[k], cs[k] = lstm_step(inp, (hs[k], cs[k]), *w)
                inp = hs[k]  # the next layer reads this layer's new hidden state
            outputs.append(inp)
        out = torch.stack(outputs, dim=1)
        h_n = torch.stack(hs)
        return (out, (h_n, torch.stack(cs))) if self.kind == "LSTM" else (out, h_n)


def popular_multilayer_snippet(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A broken hand iteration of a multi-layer RNN, of a shape often seen: it calls weight tensors as layers.

    ``getattr(rnn, "weight_ih_l0")`` is an ``nn.Parameter`` (a tensor), not an ``nn.Linear``: calling it
    raises ``TypeError: 'Parameter' object is not callable``. The fix multiplies instead
    (``x @ w.T + b``): see ``rnn_step`` and ``HandRecurrent``.

    Example:
        >>> popular_multilayer_snippet(torch.nn.RNN(3, 4, num_layers=2, batch_first=True), torch.randn(2, 5, 3))
        Traceback (most recent call last):
        ...
        TypeError: 'Parameter' object is not callable
    """
    h = [torch.zeros(x.shape[0], module.hidden_size) for _ in range(module.num_layers)]
    outputs = []
    for t in range(x.shape[1]):
        inp = x[:, t]
        for k in range(module.num_layers):
            layer_ih = getattr(module, f"weight_ih_l{k}")  # a Parameter: a tensor, not a layer
            layer_hh = getattr(module, f"weight_hh_l{k}")
            h[k] = torch.tanh(layer_ih(inp) + layer_hh(h[k]))
            inp = h[k]
        outputs.append(inp)
    return torch.stack(outputs, dim=1), torch.stack(h)


# ---------------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------------

def run_in_chunks(module: nn.Module, x: torch.Tensor, chunk: int,
                  state: State | None = None) -> tuple[torch.Tensor, State]:
    """Feed ``x`` to a fused recurrent module ``chunk`` time steps at a time, carrying the state across calls.

    This is how a stream is processed when the whole sequence is not available at once. For a
    unidirectional module it computes what one call on the whole sequence computes; for a
    bidirectional one it does not (the backward direction would need the future).

    Args:
        module: a fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` with ``batch_first=True``.
        x: ``(batch, time, features)``.
        chunk: time steps per call (the last chunk may be shorter).
        state: the state before the first chunk (None: zeros).

    Returns:
        ``(outputs concatenated over time, state after the last chunk)``.

    Example:
        >>> gru = make_recurrent("GRU", 2, 3)
        >>> x = torch.randn(4, 10, 2)
        >>> out, h = run_in_chunks(gru, x, chunk=3)
        >>> bool((out - gru(x)[0]).abs().max() < 1e-6)
        True
    """
    kind = kind_of(module)
    if isinstance(module, CELLS[kind]):
        raise LabInputError("run_in_chunks takes a fused module; for a cell use run_cell_loop.")
    if not module.batch_first:
        raise LabInputError(f"build the module with batch_first=True: chunks are cut along time in {LAYOUT}.")
    x = _require_sequence(x, module)
    require_positive_int(chunk, "chunk")
    outputs = []
    for start in range(0, x.shape[1], chunk):
        out, state = module(x[:, start:start + chunk], state)
        outputs.append(out)
    return torch.cat(outputs, dim=1), state


def max_abs_diff(a: object, b: object) -> float:
    """The largest absolute difference between two tensors, or two (nested) tuples of tensors.

    Example:
        >>> max_abs_diff((torch.ones(2), torch.zeros(3)), (torch.ones(2), torch.full((3,), 0.5)))
        0.5
    """
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            raise LabInputError(f"cannot compare shapes {tuple(a.shape)} and {tuple(b.shape)}.")
        return float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        return max((max_abs_diff(p, q) for p, q in zip(a, b)), default=0.0)
    raise LabInputError(f"compare tensors or tuples of the same length; got {type(a).__name__} and {type(b).__name__}.")


def bidirectional_chunk_gap(hidden_size: int = 4, length: int = 12, chunk: int = 4,
                            kind: str = "GRU", seed: int = 0) -> dict[str, float]:
    """Chunk a bidirectional layer with a carried state and measure how far each direction drifts.

    The forward direction's half of the output (``out[..., :H]``) still matches the whole-sequence run;
    the backward half (``out[..., H:]``) does not, because in a chunk the backward pass starts at the
    chunk's end instead of the sequence's end.

    Returns:
        ``{"forward": max |diff| of the forward half, "backward": max |diff| of the backward half}``.

    Example:
        >>> gap = bidirectional_chunk_gap()
        >>> gap["forward"] < 1e-6, gap["backward"] > 1e-3
        (True, True)
    """
    require_positive_int(hidden_size, "hidden_size", maximum=512)
    require_positive_int(length, "length", maximum=10_000)
    require_positive_int(chunk, "chunk")
    if chunk >= length:
        raise LabInputError(f"chunk={chunk} must be shorter than length={length}, or nothing is chunked.")
    module = make_recurrent(kind, 3, hidden_size, bidirectional=True, seed=seed)
    x = torch.randn(2, length, 3, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        whole, _ = module(x)
        chunked, _ = run_in_chunks(module, x, chunk)
    h = hidden_size
    return {"forward": max_abs_diff(chunked[..., :h], whole[..., :h]),
            "backward": max_abs_diff(chunked[..., h:], whole[..., h:])}


# ---------------------------------------------------------------------------------------------------
# Step-through panel
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepTrace:
    """The input sequence and the hidden states a cell produced over its first ``step`` steps."""

    inputs: torch.Tensor   # (time, features)
    hidden: torch.Tensor   # (step, hidden)
    step: int

    @property
    def current(self) -> torch.Tensor:
        """The hidden state after the last step taken (zeros before the first step)."""
        return self.hidden[-1] if self.step else torch.zeros(self.hidden.shape[-1])


def step_through(cell: nn.Module, sequence: torch.Tensor, step: int) -> StepTrace:
    """Run ``cell`` over the first ``step`` steps of one sequence and keep every hidden state.

    Args:
        cell: an ``nn.RNNCell`` / ``GRUCell`` / ``LSTMCell`` (for an LSTM the trace holds ``h``).
        sequence: ``(time, features)``, one sequence without a batch dimension.
        step: how many steps to take, 0..time.

    Returns:
        ``StepTrace``.

    Example:
        >>> trace = step_through(torch.nn.RNNCell(1, 6), torch.randn(10, 1), step=4)
        >>> tuple(trace.hidden.shape), trace.step
        ((4, 6), 4)
    """
    sequence = require_tensor(sequence, "sequence", ndim=2, layout="(time, features)")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= sequence.shape[0]:
        raise LabInputError(f"step must be an int in 0..{sequence.shape[0]}; got {step!r}.")
    with torch.no_grad():
        if step:
            hidden, _ = run_cell_loop(cell, sequence[None, :step])
            hidden = hidden[0]
        else:
            hidden = torch.zeros(0, cell.hidden_size)
    return StepTrace(sequence.detach().clone(), hidden, step)


def plot_step_trace(trace: StepTrace, time_label: str = "time step t", input_label: str = "input x_t"):
    """Draw the input (top) and the hidden state as a heat map (units × time, bottom), up to the current step.

    Returns:
        The matplotlib ``Figure`` (axes: ``fig.axes[0]`` input, ``fig.axes[1]`` heat map, then the colour bar).
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
    fig.colorbar(image, ax=ax_h, label="h_t (unitless, tanh range)")
    return fig


def _show_figure(fig) -> None:
    """Display a figure inside a panel's output area now, then close it so it is not shown twice."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


class StepPanel(Panel):
    """A ``Panel`` with a "next step" button that advances its ``step`` slider and runs."""

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


def make_step_panel(cell: nn.Module, sequence: torch.Tensor, step: int = 1, time_label: str = "time step t",
                    input_label: str = "input x_t") -> StepPanel:
    """A step-through panel: a slider (and a "Next step" button) for the step; shows input and hidden state.

    Args:
        cell: the cell to step (e.g. from ``cell_from_layer``).
        sequence: ``(time, features)``, the sequence to read.
        step: the starting step.
        time_label, input_label: axis labels for the figure.

    Returns:
        ``StepPanel``; ``panel.run()`` returns a ``StepTrace``.

    Example:
        >>> panel = make_step_panel(torch.nn.RNNCell(1, 4), torch.randn(8, 1))
        >>> panel.set(step=3).run().step, panel.next_step().step
        (3, 4)
    """
    sequence = require_tensor(sequence, "sequence", ndim=2, layout="(time, features)")
    length = sequence.shape[0]
    slider = W.IntSlider(value=min(step, length), min=0, max=length, description="step")
    return StepPanel(lambda step: step_through(cell, sequence, step), {"step": slider},
                     render=lambda trace: _show_figure(plot_step_trace(trace, time_label, input_label)),
                     title="Step through the cell: the hidden state, one time step at a time")


# ---------------------------------------------------------------------------------------------------
# Timing: cell loop against the fused module
# ---------------------------------------------------------------------------------------------------

def _inputs(length: int, device: torch.device, batch: int, input_size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(length)
    return torch.randn(batch, length, input_size, generator=gen).to(device).requires_grad_()


def fused_builder(kind: str = "RNN", hidden_size: int = 64, batch: int = 16,
                  input_size: int = 16) -> Callable[[int, torch.device], Callable[[], object]]:
    """A timing builder (for ``helpers.timing``): the fused module over a sequence of the given length.

    Example:
        >>> fn = fused_builder("GRU", 8, 2, 4)(5, torch.device("cpu"))
        >>> fn()[0].shape
        torch.Size([2, 5, 8])
    """
    require_choice(kind, "kind", KINDS)

    def build(length: int, device: torch.device) -> Callable[[], object]:
        module = make_recurrent(kind, input_size, hidden_size).to(device)
        x = _inputs(length, device, batch, input_size)
        return lambda: module(x)

    return build


def loop_builder(kind: str = "RNN", hidden_size: int = 64, batch: int = 16,
                 input_size: int = 16) -> Callable[[int, torch.device], Callable[[], object]]:
    """A timing builder: a Python loop over the matching cell (weights copied from the fused module).

    Example:
        >>> fn = loop_builder("LSTM", 8, 2, 4)(5, torch.device("cpu"))
        >>> fn()[0].shape
        torch.Size([2, 5, 8])
    """
    require_choice(kind, "kind", KINDS)

    def build(length: int, device: torch.device) -> Callable[[], object]:
        cell = cell_from_layer(make_recurrent(kind, input_size, hidden_size)).to(device)
        x = _inputs(length, device, batch, input_size)
        return lambda: run_cell_loop(cell, x)

    return build


def loop_vs_fused_experiment(kind: str = "RNN", sizes: tuple[int, ...] = (16, 64, 256), hidden_size: int = 64,
                             batch: int = 16, input_size: int = 16) -> Experiment:
    """The notebook's timing experiment ``nb04.loop_vs_fused.<kind>``: cell loop against the fused module.

    Example:
        >>> exp = loop_vs_fused_experiment("GRU", sizes=(4, 8))
        >>> exp.name, sorted(exp.builders), exp.baseline
        ('nb04.loop_vs_fused.GRU', ['cell loop', 'fused'], 'fused')
    """
    require_choice(kind, "kind", KINDS)
    return Experiment(f"nb04.loop_vs_fused.{kind}",
                      {"fused": fused_builder(kind, hidden_size, batch, input_size),
                       "cell loop": loop_builder(kind, hidden_size, batch, input_size)},
                      tuple(sizes), "sequence length T", "fused",
                      fixed={"kind": kind, "hidden_size": hidden_size, "batch": batch, "input_size": input_size})


def standard_experiments(scale: str = "notebook") -> list[Experiment]:
    """This notebook's standard timing experiments, for ``python -m helpers.bench`` (``make bench``).

    Args:
        scale: ``"notebook"`` (the sizes notebook 04 times live) or ``"reference"`` (all kinds, longer sequences).

    Example:
        >>> [e.name for e in standard_experiments("notebook")]
        ['nb04.loop_vs_fused.RNN']
    """
    require_choice(scale, "scale", ("notebook", "reference"))
    if scale == "notebook":
        return [loop_vs_fused_experiment("RNN", sizes=(16, 64, 256))]
    return [loop_vs_fused_experiment(kind, sizes=(16, 64, 256, 1024)) for kind in KINDS]


def timing_memory_estimate(kind: str, max_length: int, hidden_size: int, batch: int = 16,
                           input_size: int = 16) -> int:
    """Bytes a forward+backward run keeps alive at the longest length (float32), with a margin of 4×.

    Example:
        >>> timing_memory_estimate("RNN", 100, 10, batch=1, input_size=1) > 0
        True
    """
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[require_choice(kind, "kind", KINDS)]
    per_step = batch * (input_size + (2 + 2 * gates) * hidden_size)
    return 4 * 4 * max_length * per_step


def run_timing(kind: str, max_length: int, hidden_size: int, mode: str, device: str,
               min_run_time: float = 0.05, batch: int = 16, threads: int = 1) -> list:
    """Time cell loop and fused module at lengths 16, 64, ... up to ``max_length`` (×4 apart), on ``threads`` threads.

    Example:
        >>> recs = run_timing("RNN", 16, 8, "forward", "cpu", min_run_time=0.01, batch=2)
        >>> sorted(r.implementation for r in recs)
        ['cell loop', 'fused']
    """
    from helpers.timing import run_experiment

    require_positive_int(max_length, "max_length", maximum=4096)
    sizes = []
    length = 16
    while length <= max(max_length, 16):
        sizes.append(length)
        length *= 4
    experiment = loop_vs_fused_experiment(kind, tuple(sizes), hidden_size, batch)
    experiment = Experiment(experiment.name, experiment.builders, experiment.sizes, experiment.size_name,
                            experiment.baseline, (mode,), experiment.fixed)
    return run_experiment(experiment, device=device, threads=threads, min_run_time=min_run_time)


def plot_loop_vs_fused(records: list, ax=None):
    """``helpers.timing.plot_timings`` for this experiment, with plain numbers on the time axis.

    Returns:
        The matplotlib ``Axes``.
    """
    from matplotlib.ticker import LogFormatter

    from helpers.timing import plot_timings

    ax = plot_timings(records, size_label="sequence length T (steps)", ax=ax)
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))  # plain "5", "20" rather than "5×10^0"
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    return ax


def render_timing(records: list) -> None:
    """Show the log-log plot and the ratio table of a ``run_timing`` result."""
    from helpers.timing import ratio_table

    _show_figure(plot_loop_vs_fused(records).figure)
    print(ratio_table(records, "fused", size_name="T"))


def make_timing_panel() -> Panel:
    """A panel timing the cell loop against the fused module: kind, longest length, width, mode, device, threads.

    The longest length offered is bounded by ``DEFAULT_MEMORY_BUDGET`` through ``timing_memory_estimate``.

    Example:
        >>> panel = make_timing_panel()
        >>> recs = panel.set(max_length=16, hidden_size=8).run()
        >>> len(recs)
        2
    """
    upper = largest_within_budget(lambda n: timing_memory_estimate("LSTM", n, 256), 4096, DEFAULT_MEMORY_BUDGET)
    controls = {
        "kind": W.Dropdown(options=list(KINDS), value="RNN"),
        "max_length": W.IntSlider(value=256, min=16, max=min(upper, 4096), step=16, description="longest T"),
        "hidden_size": W.IntSlider(value=64, min=8, max=256, step=8, description="hidden size"),
        "mode": W.Dropdown(options=["forward", "forward+backward"], value="forward"),
        "device": W.Dropdown(options=available_devices(), value=available_devices()[0]),
        "threads": W.IntSlider(value=1, min=1, max=max(1, os.cpu_count() or 1), description="CPU threads"),
    }

    def fn(kind, max_length, hidden_size, mode, device, threads):
        return run_timing(kind, max_length, hidden_size, mode, device, threads=threads)

    return Panel(fn, controls, render=render_timing, title="Cell loop vs fused module: time per call",
                 memory_estimate=lambda kind, max_length, hidden_size, **_: timing_memory_estimate(
                     kind, max_length, hidden_size))
