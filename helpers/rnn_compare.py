"""RNN, LSTM and GRU side by side: gate equations, parameter counts, timings and gradient flow over distance."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from helpers.timing import Builder, Experiment
from helpers.validation import LabInputError, require_choice, require_positive_int, require_tensor

LAYER_TYPES = ("RNN", "LSTM", "GRU")
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}  # weight blocks stacked in weight_ih / weight_hh
SCALES = ("notebook", "reference")
MAX_FLOW_HIDDEN = 128
MAX_FLOW_DISTANCE = 200


def _layer_type(layer_type: object) -> str:
    return require_choice(layer_type, "layer_type", LAYER_TYPES)


# --------------------------------------------------------------------------- gate equations, one step by hand

def manual_step(cell: nn.Module, x: torch.Tensor, state: torch.Tensor | tuple[torch.Tensor, torch.Tensor]):
    """One time step of ``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell`` written out from the gate equations.

    Uses the cell's own weights (PyTorch's gate order: LSTM ``i, f, g, o``; GRU ``r, z, n``), so the
    result can be compared with ``cell(x, state)``.

    Args:
        cell: an ``nn.RNNCell`` (tanh), ``nn.LSTMCell`` or ``nn.GRUCell`` with biases.
        x: input of shape ``(batch, input_size)``.
        state: ``h`` of shape ``(batch, hidden_size)``, or ``(h, c)`` for the LSTM.

    Returns:
        The new ``h``, or ``(h, c)`` for the LSTM.

    Example:
        >>> cell = torch.nn.GRUCell(3, 4); x, h = torch.randn(2, 3), torch.randn(2, 4)
        >>> torch.allclose(manual_step(cell, x, h), cell(x, h), atol=1e-6)
        True
    """
    if not isinstance(cell, (nn.RNNCell, nn.LSTMCell, nn.GRUCell)):
        raise LabInputError(f"cell must be an nn.RNNCell, nn.LSTMCell or nn.GRUCell; got {type(cell).__name__}.")
    if not cell.bias:
        raise LabInputError("manual_step expects a cell built with bias=True (the PyTorch default).")
    require_tensor(x, "x", ndim=2, layout="(batch, input_size)")
    if isinstance(cell, nn.LSTMCell):
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise LabInputError("an LSTM cell's state is a pair (h, c); pass state=(h, c).")
        h, c = (require_tensor(s, n, ndim=2, layout="(batch, hidden_size)") for s, n in zip(state, ("h", "c")))
    else:
        h = require_tensor(state, "state", ndim=2, layout="(batch, hidden_size)")
    if x.shape[1] != cell.input_size or h.shape[1] != cell.hidden_size or x.shape[0] != h.shape[0]:
        raise LabInputError(f"x must be (batch, {cell.input_size}) and h (batch, {cell.hidden_size}) with the same "
                            f"batch; got x {tuple(x.shape)} and h {tuple(h.shape)}.")
    gi = x @ cell.weight_ih.T + cell.bias_ih  # input contributions of every gate, stacked
    gh = h @ cell.weight_hh.T + cell.bias_hh  # hidden contributions
    if isinstance(cell, nn.RNNCell):
        if cell.nonlinearity != "tanh":
            raise LabInputError("manual_step implements the tanh RNN cell; build it with nonlinearity='tanh'.")
        return torch.tanh(gi + gh)                                   # h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
    if isinstance(cell, nn.LSTMCell):
        i, f, g, o = (gi + gh).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # c' = f ⊙ c + i ⊙ g
        return torch.sigmoid(o) * torch.tanh(c_new), c_new               # h' = o ⊙ tanh(c')
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)                                    # reset gate scales W_hn h + b_hn
    return (1 - z) * n + z * h                                       # h' = (1 − z) ⊙ n + z ⊙ h


def manual_step_difference(layer_type: str, input_size: int = 5, hidden_size: int = 7, batch: int = 3,
                           seed: int = 0) -> float:
    """Largest |difference| between ``manual_step`` and the PyTorch cell on random weights, input and state.

    Args:
        layer_type: ``"RNN"``, ``"LSTM"`` or ``"GRU"``.
        input_size, hidden_size, batch: sizes of the random test.
        seed: seeds the weights and the inputs.

    Returns:
        ``max |manual − cell|`` over every output element (``h``, and ``c`` for the LSTM), in float32.

    Example:
        >>> manual_step_difference("LSTM") < 1e-6
        True
    """
    kind = _layer_type(layer_type)
    for value, name in ((input_size, "input_size"), (hidden_size, "hidden_size"), (batch, "batch")):
        require_positive_int(value, name, maximum=4096)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cell = {"RNN": nn.RNNCell, "LSTM": nn.LSTMCell, "GRU": nn.GRUCell}[kind](input_size, hidden_size)
    x = torch.randn(batch, input_size, generator=gen)
    h = torch.randn(batch, hidden_size, generator=gen)
    state = (h, torch.randn(batch, hidden_size, generator=gen)) if kind == "LSTM" else h
    with torch.no_grad():
        mine, theirs = manual_step(cell, x, state), cell(x, state)
    pairs = zip(mine, theirs) if kind == "LSTM" else [(mine, theirs)]
    return max(float((a - b).abs().max()) for a, b in pairs)


# --------------------------------------------------------------------------- parameters

def parameter_count_formula(layer_type: str, input_size: int, hidden_size: int) -> int:
    """Parameters of a one-layer ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` with biases: g·(H·I + H² + 2H).

    g is the number of weight blocks (RNN 1, GRU 3, LSTM 4); each block has an input matrix (H×I), a
    recurrent matrix (H×H) and two bias vectors (PyTorch keeps ``bias_ih`` and ``bias_hh`` separately).

    Example:
        >>> parameter_count_formula("LSTM", input_size=10, hidden_size=20)
        2560
    """
    g = GATES[_layer_type(layer_type)]
    i = require_positive_int(input_size, "input_size")
    h = require_positive_int(hidden_size, "hidden_size")
    return g * (h * i + h * h + 2 * h)


def parameter_count(module: nn.Module) -> int:
    """``sum(p.numel() for p in module.parameters())``: what PyTorch actually allocates.

    Example:
        >>> parameter_count(torch.nn.GRU(10, 20))
        1920
    """
    if not isinstance(module, nn.Module):
        raise LabInputError(f"module must be an nn.Module; got {type(module).__name__}.")
    return sum(p.numel() for p in module.parameters())


def parameter_table(configs: Sequence[tuple[int, int]]) -> list[dict]:
    """Formula and measured parameter count of each layer type at each ``(input_size, hidden_size)``.

    Returns:
        One dict per (config, layer type): ``input_size``, ``hidden_size``, ``layer``, ``formula``,
        ``measured`` and ``match``.

    Example:
        >>> [row["match"] for row in parameter_table([(4, 8)])]
        [True, True, True]
    """
    if not configs:
        raise LabInputError("configs is empty: pass a list of (input_size, hidden_size) pairs.")
    rows = []
    for config in configs:
        if not (isinstance(config, (tuple, list)) and len(config) == 2):
            raise LabInputError(f"each config must be a pair (input_size, hidden_size); got {config!r}.")
        i, h = config
        for kind in LAYER_TYPES:
            formula = parameter_count_formula(kind, i, h)
            measured = parameter_count(getattr(nn, kind)(i, h))
            rows.append({"input_size": i, "hidden_size": h, "layer": kind, "formula": formula,
                         "measured": measured, "match": formula == measured})
    return rows


def format_parameter_table(rows: Sequence[dict]) -> str:
    """The rows of ``parameter_table`` as aligned text, with the ratio to the RNN of the same size.

    Example:
        >>> print(format_parameter_table(parameter_table([(1, 1)])))  # doctest: +NORMALIZE_WHITESPACE
            I     H  layer      formula    measured  match  × RNN
            1     1  RNN              4           4  True    1.0
            1     1  LSTM            16          16  True    4.0
            1     1  GRU             12          12  True    3.0
    """
    rnn = {(r["input_size"], r["hidden_size"]): r["measured"] for r in rows if r["layer"] == "RNN"}
    lines = [f"{'I':>5} {'H':>5}  {'layer':<6} {'formula':>11} {'measured':>11}  {'match':<5} {'× RNN':>6}"]
    for r in rows:
        base = rnn.get((r["input_size"], r["hidden_size"]))
        ratio = f"{r['measured'] / base:.1f}" if base else "-"
        lines.append(f"{r['input_size']:>5} {r['hidden_size']:>5}  {r['layer']:<6} {r['formula']:>11,} "
                     f"{r['measured']:>11,}  {str(r['match']):<5} {ratio:>6}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- layers and timing

def make_layer(layer_type: str, input_size: int, hidden_size: int, forget_bias: float | None = None,
               batch_first: bool = True) -> nn.Module:
    """A one-layer ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` at PyTorch's default initialisation.

    Args:
        layer_type: ``"RNN"``, ``"LSTM"`` or ``"GRU"``.
        input_size, hidden_size: the layer's sizes.
        forget_bias: LSTM only. None keeps PyTorch's default (both biases uniform in ±1/√H, so the
            forget gate's total bias is near 0 and the gate opens about halfway). A number sets the
            forget block of ``bias_ih`` to it and that of ``bias_hh`` to 0, so the gate's total bias
            equals it (1 and 3 are common choices).
        batch_first: inputs are ``(batch, time, features)``.

    Returns:
        The module.

    Example:
        >>> lstm = make_layer("LSTM", 2, 4, forget_bias=3.0)
        >>> (lstm.bias_ih_l0[4:8] + lstm.bias_hh_l0[4:8]).tolist()
        [3.0, 3.0, 3.0, 3.0]
    """
    kind = _layer_type(layer_type)
    require_positive_int(input_size, "input_size")
    require_positive_int(hidden_size, "hidden_size")
    layer = getattr(nn, kind)(input_size, hidden_size, batch_first=batch_first)
    if forget_bias is not None:
        if kind != "LSTM":
            raise LabInputError(f"forget_bias applies to the LSTM only (the {kind} has no forget gate); "
                                "pass forget_bias=None for RNN and GRU.")
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)) or not math.isfinite(forget_bias):
            raise LabInputError(f"forget_bias must be a finite number or None; got {forget_bias!r}.")
        with torch.no_grad():
            layer.bias_ih_l0[hidden_size:2 * hidden_size] = float(forget_bias)
            layer.bias_hh_l0[hidden_size:2 * hidden_size] = 0.0
    return layer


def layer_builder(layer_type: str, batch: int = 32, seq_len: int = 32, input_size: int = 32) -> Builder:
    """A ``helpers.timing`` builder: ``builder(hidden_size, device)`` returns a call of the layer on fixed input.

    Example:
        >>> fn = layer_builder("GRU", batch=2, seq_len=3, input_size=4)(5, torch.device("cpu"))
        >>> fn().shape
        torch.Size([2, 3, 5])
    """
    kind = _layer_type(layer_type)
    for value, name in ((batch, "batch"), (seq_len, "seq_len"), (input_size, "input_size")):
        require_positive_int(value, name)

    def build(hidden_size: int, device: torch.device):
        layer = make_layer(kind, input_size, hidden_size).to(device)
        x = torch.randn(batch, seq_len, input_size, device=device)
        return lambda: layer(x)[0]

    return build


_SCALE_SETTINGS = {
    "notebook": dict(sizes=(32, 64, 128, 256), batch=16, seq_len=25, input_size=32),
    "reference": dict(sizes=(64, 128, 256, 512, 1024), batch=64, seq_len=100, input_size=64),
}


def standard_experiments(scale: str = "notebook") -> list[Experiment]:
    """The timing experiments of notebook 05: ``"nb05.size_sweep"``, RNN / LSTM / GRU over hidden size.

    Ratios are taken against the LSTM (the layer most people reach for), so RNN and GRU read as
    "× LSTM's time".

    Args:
        scale: ``"notebook"`` (small, a few seconds on a laptop) or ``"reference"`` (larger, for ``make bench``).

    Returns:
        A list of ``helpers.timing.Experiment``.

    Example:
        >>> [(e.name, e.baseline, e.sizes) for e in standard_experiments()]
        [('nb05.size_sweep', 'LSTM', (32, 64, 128, 256))]
    """
    settings = dict(_SCALE_SETTINGS[require_choice(scale, "scale", SCALES)])
    sizes = settings.pop("sizes")
    builders = {kind: layer_builder(kind, **settings) for kind in LAYER_TYPES}
    return [Experiment("nb05.size_sweep", builders, sizes, "hidden size H", "LSTM",
                       fixed=dict(settings, layers=1))]


# --------------------------------------------------------------------------- gradient flow over distance

@dataclass(frozen=True)
class GradientFlow:
    """‖∂h_T/∂x_{T−d}‖ (Frobenius norm of the Jacobian) for d = 0 … max distance, one row per seed.

    ``norms[s, d]`` is the mean over ``samples`` random input sequences for seed ``seeds[s]``.
    """

    layer_type: str
    hidden_size: int
    input_size: int
    forget_bias: float | None
    seeds: tuple[int, ...]
    norms: torch.Tensor  # (len(seeds), max_distance + 1), float64

    @property
    def distances(self) -> list[int]:
        return list(range(self.norms.shape[1]))

    @property
    def label(self) -> str:
        bias = "" if self.layer_type != "LSTM" else (
            ", forget bias default" if self.forget_bias is None else f", forget bias {self.forget_bias:g}")
        return f"{self.layer_type} (H={self.hidden_size}{bias})"

    def typical(self) -> torch.Tensor:
        """Geometric mean over seeds at each distance (the norms span orders of magnitude)."""
        return self.norms.clamp_min(1e-300).log().mean(0).exp()

    def ratio(self, distance: int) -> float:
        """Typical norm at ``distance`` divided by the typical norm at distance 0."""
        if not 0 <= distance < self.norms.shape[1]:
            raise LabInputError(f"distance must be within 0..{self.norms.shape[1] - 1}; got {distance}.")
        typical = self.typical()
        return float(typical[distance] / typical[0])

    def decay_per_step(self, start: int = 1) -> float:
        """Factor by which the norm shrinks per step of distance: exp(slope of log-norm against d), d ≥ start."""
        typical = self.typical()[start:]
        if typical.numel() < 2:
            raise LabInputError("need at least two distances beyond start to fit a decay rate.")
        d = torch.arange(typical.numel(), dtype=torch.float64)
        y = typical.clamp_min(1e-300).log()
        slope = ((d - d.mean()) * (y - y.mean())).sum() / ((d - d.mean()) ** 2).sum()
        return float(slope.exp())


def gradient_flow_memory(layer_type: str, hidden_size: int, max_distance: int, input_size: int = 8,
                         samples: int = 2) -> int:
    """Rough bytes ``gradient_flow`` keeps for one seed: batch (samples·H) × time × saved gate activations.

    Example:
        >>> gradient_flow_memory("LSTM", 128, 200) > gradient_flow_memory("RNN", 128, 200)
        True
    """
    g = GATES[_layer_type(layer_type)]
    batch, steps = samples * hidden_size, max_distance + 1
    return 4 * batch * steps * (input_size + (3 * g + 3) * hidden_size)


def gradient_flow(layer_type: str, hidden_size: int = 32, max_distance: int = 60, seeds: Sequence[int] = (0, 1, 2),
                  forget_bias: float | None = None, input_size: int = 8, samples: int = 2) -> GradientFlow:
    """Measure how the gradient of the last hidden state with respect to earlier inputs falls with distance.

    For each seed: a fresh layer at PyTorch's default initialisation (plus ``forget_bias`` for the LSTM),
    ``samples`` standard-normal input sequences of length ``max_distance + 1`` and a zero initial state.
    The full Jacobian ∂h_T/∂x_t (H × I) is computed exactly with one backward pass: each sequence is
    repeated H times in the batch and copy k backpropagates only from hidden unit k.

    Args:
        layer_type: ``"RNN"``, ``"LSTM"`` or ``"GRU"``.
        hidden_size: H, at most 128.
        max_distance: the largest d, at most 200.
        seeds: one layer and input draw per seed.
        forget_bias: LSTM forget-gate bias (see ``make_layer``); None for the default.
        input_size: I.
        samples: input sequences per seed, averaged.

    Returns:
        ``GradientFlow`` with ``norms`` of shape ``(len(seeds), max_distance + 1)``.

    Example:
        >>> flow = gradient_flow("GRU", hidden_size=8, max_distance=5, seeds=(0,))
        >>> flow.norms.shape
        torch.Size([1, 6])
    """
    kind = _layer_type(layer_type)
    hidden = require_positive_int(hidden_size, "hidden_size", maximum=MAX_FLOW_HIDDEN)
    distance = require_positive_int(max_distance, "max_distance", maximum=MAX_FLOW_DISTANCE)
    require_positive_int(input_size, "input_size", maximum=256)
    require_positive_int(samples, "samples", maximum=16)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise LabInputError("seeds is empty: pass at least one seed, e.g. seeds=(0, 1, 2).")
    steps = distance + 1
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        layer = make_layer(kind, input_size, hidden, forget_bias=forget_bias)
        x = torch.randn(samples, steps, input_size, generator=torch.Generator().manual_seed(10_000 + seed))
        xs = x.repeat_interleave(hidden, dim=0).requires_grad_(True)          # (samples·H, T, I)
        out, _ = layer(xs)
        last = out[:, -1, :].reshape(samples, hidden, hidden)                 # [sample, copy k, unit]
        last.diagonal(dim1=1, dim2=2).sum().backward()                        # copy k → unit k only
        jac = xs.grad.reshape(samples, hidden, steps, input_size)             # [sample, unit, t, input]
        norms = jac.double().pow(2).sum(dim=(1, 3)).sqrt().mean(0)            # (T,) over t
        rows.append(norms.flip(0))                                            # index d = T − 1 − t
    return GradientFlow(kind, hidden, input_size, forget_bias, seeds, torch.stack(rows))


def plot_gradient_flow(flows: Sequence[GradientFlow], ax=None, min_distance: int = 0, show_seeds: bool = True):
    """Log-scale plot of ‖∂h_T/∂x_{T−d}‖ against d: the typical value per configuration, seeds faint.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    if not flows:
        raise LabInputError("no gradient-flow results to plot; run gradient_flow first.")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for k, flow in enumerate(flows):
        color = f"C{k}"
        d = flow.distances[min_distance:]
        if show_seeds and len(flow.seeds) > 1:
            for row in flow.norms:
                ax.plot(d, row[min_distance:].numpy(), color=color, alpha=0.25, lw=0.8)
        ax.plot(d, flow.typical()[min_distance:].numpy(), color=color, lw=2, label=flow.label)
    ax.set_yscale("log")
    ax.set_xlabel("distance d (time steps between input x_{T−d} and the last state h_T)")
    ax.set_ylabel("‖∂h_T / ∂x_{T−d}‖ (Frobenius)")
    seeds = len(flows[0].seeds)
    ax.set_title(f"Gradient flow at initialisation ({seeds} seed{'s' if seeds > 1 else ''}; thin lines: each seed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------- panels

def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _show(ax) -> None:
    import matplotlib.pyplot as plt

    ax.figure.tight_layout()
    plt.show()


PANEL_FLOW_SAMPLES = 1   # input sequences per seed in the panel (three seeds), to keep a run to seconds
PANEL_FLOW_HIDDEN = (16, 32, 64)
PANEL_FLOW_DISTANCE = 150
FORGET_BIAS_OPTIONS = (("default", "default"), ("0", 0.0), ("1", 1.0), ("3", 3.0))


def _flow_for_panel(layer_type: str, hidden_size: int, forget_bias: object, distance: tuple[int, int]):
    low, high = (int(v) for v in distance)
    bias = None if forget_bias == "default" or layer_type != "LSTM" else float(forget_bias)
    far = max(high, 1)
    flows = [gradient_flow(layer_type, hidden_size, far, forget_bias=bias, samples=PANEL_FLOW_SAMPLES)]
    if layer_type == "LSTM" and bias is not None:  # the default LSTM beside it, for comparison
        flows.insert(0, gradient_flow("LSTM", hidden_size, far, samples=PANEL_FLOW_SAMPLES))
    return flows, low


def make_gradient_flow_panel():
    """Panel: layer type, hidden size, LSTM forget-gate bias and distance range → log plot of the gradient norm.

    The forget bias applies to the LSTM only (RNN and GRU ignore it); a non-default LSTM bias is drawn
    beside the default LSTM. Three seeds per run, one input sequence each; hidden size ≤ 64 and
    distance ≤ 150 keep a run to a few seconds.

    Returns:
        A ``helpers.widgets.Panel``; ``panel.run()`` returns ``(flows, min_distance)``.
    """
    import ipywidgets as W

    from helpers.widgets import Panel

    controls = {
        "layer_type": W.Dropdown(options=list(LAYER_TYPES), value="LSTM", description="layer"),
        "hidden_size": W.Dropdown(options=list(PANEL_FLOW_HIDDEN), value=32, description="hidden size H"),
        "forget_bias": W.Dropdown(options=list(FORGET_BIAS_OPTIONS), value=1.0, description="LSTM forget bias"),
        "distance": W.IntRangeSlider(value=(0, 60), min=0, max=PANEL_FLOW_DISTANCE, step=10,
                                     description="distance d"),
    }

    def render(result) -> None:
        flows, low = result
        _show(plot_gradient_flow(flows, min_distance=low))

    def memory(layer_type, hidden_size, forget_bias, distance):
        return gradient_flow_memory(layer_type, hidden_size, max(int(distance[1]), 1), samples=PANEL_FLOW_SAMPLES)

    return Panel(_flow_for_panel, controls, render=render, title="Gradient flow over distance at initialisation",
                 memory_estimate=memory)


MAX_TRAIN_LEN = 40
MAX_TRAIN_STEPS = 400


def _train_for_panel(layer_type: str, seq_len: int, steps: int):
    from helpers.tasks import train_adding

    callback = None
    if _in_kernel():
        import ipywidgets as W
        from IPython.display import display

        bar = W.IntProgress(min=0, max=steps, description="training")
        display(bar)

        def callback(done: int, total: int, loss: float) -> None:
            bar.value = done
            bar.description = f"{done}/{total}"

    return train_adding(layer_type, seq_len, steps=steps, progress=callback)


def make_training_panel():
    """Panel: layer type, sequence length and steps → train on the adding problem (progress bar) → loss curve.

    Bounded to sequence length ≤ 40 and ≤ 400 steps so a run takes seconds on a laptop CPU.

    Returns:
        A ``helpers.widgets.Panel``; ``panel.run()`` returns a ``helpers.tasks.TrainResult``.
    """
    import ipywidgets as W

    from helpers.widgets import Panel

    controls = {
        "layer_type": W.Dropdown(options=list(LAYER_TYPES), value="GRU", description="layer"),
        "seq_len": W.IntSlider(value=20, min=5, max=MAX_TRAIN_LEN, step=5, description="sequence length T"),
        "steps": W.IntSlider(value=200, min=50, max=MAX_TRAIN_STEPS, step=50, description="training steps"),
    }

    def render(result) -> None:
        from helpers.tasks import plot_training

        _show(plot_training([result]))

    return Panel(_train_for_panel, controls, render=render, title="Train on the adding problem")
