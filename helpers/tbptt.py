"""Full vs truncated backpropagation through time on a small RNN: gradients, graph memory, a panel."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from helpers.memory import record_saved_tensors
from helpers.validation import LabInputError, require_positive_int, require_tensor

MAX_LENGTH = 256  # sequence length cap for the panel and sweeps, so every run stays well under a second


class TinyRNN(nn.Module):
    """An ``nn.RNNCell`` stepped in a Python loop, with a linear read-out at every step.

    Args:
        input_size: features per time step.
        hidden_size: width of the hidden state.
        output_size: features predicted per time step.

    Example:
        >>> model = TinyRNN(1, 8, 1)
        >>> out, h = model(torch.zeros(2, 5, 1))
        >>> tuple(out.shape), tuple(h.shape)
        ((2, 5, 1), (2, 8))
    """

    def __init__(self, input_size: int = 1, hidden_size: int = 8, output_size: int = 1):
        super().__init__()
        for value, name in ((input_size, "input_size"), (hidden_size, "hidden_size"), (output_size, "output_size")):
            require_positive_int(value, name)
        self.cell = nn.RNNCell(input_size, hidden_size)
        self.head = nn.Linear(hidden_size, output_size)

    def init_hidden(self, batch: int) -> torch.Tensor:
        """A zero hidden state ``(batch, hidden_size)`` on the model's device and dtype."""
        weight = self.cell.weight_hh
        return torch.zeros(batch, self.cell.hidden_size, device=weight.device, dtype=weight.dtype)

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``x_t (batch, input)``, ``h (batch, hidden)`` -> ``(output, new h)``."""
        h = self.cell(x_t, h)
        return self.head(h), h

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the whole sequence ``x (batch, time, input)``; returns ``(outputs (batch, time, output), last h)``."""
        x = check_sequence(x, self)
        h = self.init_hidden(x.shape[0]) if h is None else h
        outputs = []
        for t in range(x.shape[1]):
            out, h = self.step(x[:, t], h)
            outputs.append(out)
        return torch.stack(outputs, dim=1), h


def check_targets(y: object, x: torch.Tensor, model: TinyRNN) -> torch.Tensor:
    """Check that targets ``y`` are ``(batch, time, output_size)`` matching ``x``; returns them.

    Example:
        >>> check_targets(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1), TinyRNN(1, 4, 1)).shape
        torch.Size([2, 3, 1])
    """
    y = require_tensor(y, "y", ndim=3, layout="(batch, time, outputs)")
    want = (x.shape[0], x.shape[1], model.head.out_features)
    if tuple(y.shape) != want:
        raise LabInputError(f"targets y have shape {tuple(y.shape)} but must be {want} (batch and time of x, "
                            "the model's output size); slice or reshape them to match.")
    return y


def check_sequence(x: object, model: TinyRNN, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is ``(batch, time, input_size)`` for ``model``; returns it.

    Example:
        >>> check_sequence(torch.zeros(2, 3, 1), TinyRNN(1, 4, 1)).shape
        torch.Size([2, 3, 1])
    """
    x = require_tensor(x, name, ndim=3, layout="(batch, time, features)")
    if x.shape[2] != model.cell.input_size:
        raise LabInputError(f"{name} has {x.shape[2]} features per step but the model expects "
                            f"{model.cell.input_size}; build TinyRNN(input_size={x.shape[2]}, ...) or reshape {name}.")
    if x.shape[1] < 1:
        raise LabInputError(f"{name} has no time steps; pass a sequence of length >= 1.")
    return x


def make_echo_task(batch: int = 8, length: int = 32, delay: int = 2, seed: int = 0,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A small sequence task: the target at step t is the input at step ``t - delay`` (zeros before).

    Args:
        batch, length: sequences and steps per sequence.
        delay: how many steps the RNN must remember.
        seed: for the random inputs (a private generator; the global RNG is untouched).
        dtype: of both tensors.

    Returns:
        ``(x, y)``, each ``(batch, length, 1)``.

    Example:
        >>> x, y = make_echo_task(batch=1, length=4, delay=1)
        >>> torch.equal(y[0, 1:], x[0, :-1]), float(y[0, 0])
        (True, 0.0)
    """
    require_positive_int(batch, "batch")
    require_positive_int(length, "length", maximum=MAX_LENGTH)
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay < length:
        raise LabInputError(f"delay must be an integer in [0, length); got {delay!r} for length {length}.")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, 1, generator=gen, dtype=dtype)
    y = torch.zeros_like(x)
    y[:, delay:] = x[:, :length - delay]
    return x, y


def step_loss(output: torch.Tensor, target: torch.Tensor, length: int) -> torch.Tensor:
    """The loss of one time step, scaled by ``1 / length`` so the per-step losses sum to the sequence's mean MSE.

    Example:
        >>> float(step_loss(torch.ones(2, 1), torch.zeros(2, 1), length=4))
        0.25
    """
    return nn.functional.mse_loss(output, target) / length


def sequence_loss(model: TinyRNN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Full-BPTT loss: the mean squared error over every step of the whole sequence, one graph.

    Example:
        >>> x, y = make_echo_task(batch=2, length=3)
        >>> sequence_loss(TinyRNN(), x, y).shape
        torch.Size([])
    """
    out, _ = model(x)
    if y.shape != out.shape:
        raise LabInputError(f"targets have shape {tuple(y.shape)} but the model outputs {tuple(out.shape)}.")
    return nn.functional.mse_loss(out, y)


def parameter_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter's ``.grad`` that is set, by name.

    Example:
        >>> layer = torch.nn.Linear(2, 1); layer(torch.ones(1, 2)).sum().backward()
        >>> sorted(parameter_grads(layer))
        ['bias', 'weight']
    """
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def full_bptt_gradients(model: TinyRNN, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of ``sequence_loss`` from one backward over the whole sequence.

    Returns:
        ``{parameter name: gradient}`` (copies; the model's ``.grad`` is left set).

    Example:
        >>> x, y = make_echo_task(batch=2, length=4)
        >>> sorted(full_bptt_gradients(TinyRNN(), x, y))[:2]
        ['cell.bias_hh', 'cell.bias_ih']
    """
    model.zero_grad(set_to_none=True)
    sequence_loss(model, x, y).backward()
    return parameter_grads(model)


def windows(length: int, window: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each truncation window; the last one may be shorter.

    Example:
        >>> windows(5, 2)
        [(0, 2), (2, 4), (4, 5)]
    """
    require_positive_int(length, "length")
    require_positive_int(window, "window")
    return [(start, min(start + window, length)) for start in range(0, length, window)]


def tbptt_pass(model: TinyRNN, x: torch.Tensor, y: torch.Tensor, window: int,
               optimizer: torch.optim.Optimizer | None = None) -> float:
    """One pass of truncated BPTT over the sequence: forward ``window`` steps, backward, detach h, go on.

    Without an optimizer, gradients of all windows accumulate in ``.grad`` (zeroed at the start),
    so with ``window == length`` they equal full BPTT's. With an optimizer, each window does
    ``zero_grad``, ``backward``, ``step``. No ``retain_graph`` anywhere: the ``detach()`` cuts the
    graph, so each backward only walks its own window.

    Args:
        model: a ``TinyRNN``.
        x, y: ``(batch, time, features)`` inputs and targets.
        window: steps per truncation window (``>= length`` means full BPTT).
        optimizer: optional; stepped once per window.

    Returns:
        The sequence's loss (sum of the per-step losses, a Python float).

    Example:
        >>> x, y = make_echo_task(batch=2, length=6)
        >>> model = TinyRNN()
        >>> loss = tbptt_pass(model, x, y, window=2, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        >>> isinstance(loss, float)
        True
    """
    x = check_sequence(x, model)
    check_targets(y, x, model)
    length = x.shape[1]
    require_positive_int(window, "window")
    h = model.init_hidden(x.shape[0])
    model.zero_grad(set_to_none=True)
    total = 0.0
    for start, stop in windows(length, window):
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        h = h.detach()  # cut: the next backward stops here
        loss = 0
        for t in range(start, stop):
            out, h = model.step(x[:, t], h)
            loss = loss + step_loss(out, y[:, t], length)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        total += loss.item()
    return total


def tbptt_gradients(model: TinyRNN, x: torch.Tensor, y: torch.Tensor, window: int) -> dict[str, torch.Tensor]:
    """Gradients accumulated by ``tbptt_pass`` without an optimizer.

    Example:
        >>> x, y = make_echo_task(batch=2, length=6)
        >>> model = TinyRNN()
        >>> full, trunc = full_bptt_gradients(model, x, y), tbptt_gradients(model, x, y, window=6)
        >>> all(torch.allclose(full[k], trunc[k], atol=1e-6) for k in full)
        True
    """
    tbptt_pass(model, x, y, window)
    return parameter_grads(model)


def relative_difference(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """``||grads - reference|| / ||reference||`` over all parameters together (0 means identical).

    Example:
        >>> relative_difference({"w": torch.tensor([1.0, 1.0])}, {"w": torch.tensor([1.0, 0.0])})
        1.0
    """
    if set(grads) != set(reference):
        raise LabInputError(f"gradient names differ: {sorted(set(grads) ^ set(reference))}.")
    diff = sum(float((grads[k].double() - reference[k].double()).pow(2).sum()) for k in reference)
    norm = sum(float(reference[k].double().pow(2).sum()) for k in reference)
    return (diff / norm) ** 0.5 if norm > 0 else diff ** 0.5


def window_graph_bytes(model: TinyRNN, x: torch.Tensor, y: torch.Tensor, window: int) -> int:
    """Bytes of tensors saved for backward by the graph of one truncation window (the largest alive at once).

    Measured with ``helpers.memory.record_saved_tensors`` over one window's forward and loss; the
    graph is freed afterwards without a backward.

    Example:
        >>> x, y = make_echo_task(batch=2, length=8)
        >>> model = TinyRNN()
        >>> window_graph_bytes(model, x, y, 2) < window_graph_bytes(model, x, y, 8)
        True
    """
    x = check_sequence(x, model)
    require_positive_int(window, "window")
    length = x.shape[1]
    stop = min(window, length)
    h = model.init_hidden(x.shape[0])
    with record_saved_tensors() as saved:
        loss = 0
        for t in range(stop):
            out, h = model.step(x[:, t], h)
            loss = loss + step_loss(out, y[:, t], length)
    del loss, h, out
    return saved.bytes


@dataclass(frozen=True)
class WindowResult:
    """Truncated BPTT at one window length, compared with full BPTT on the same model and data."""

    window: int
    length: int
    graph_bytes: int
    full_graph_bytes: int
    relative_grad_difference: float

    def __str__(self) -> str:
        return (f"window {self.window:>3} of {self.length}: graph {self.graph_bytes:,} bytes "
                f"({self.graph_bytes / self.full_graph_bytes:.0%} of full BPTT's), "
                f"gradient differs from full BPTT by {self.relative_grad_difference:.2%} (relative L2)")


def compare_window(model: TinyRNN, x: torch.Tensor, y: torch.Tensor, window: int) -> WindowResult:
    """Graph memory and gradient difference of truncated BPTT at ``window`` against full BPTT.

    Example:
        >>> x, y = make_echo_task(batch=2, length=8)
        >>> compare_window(TinyRNN(), x, y, 8).relative_grad_difference < 1e-6
        True
    """
    x = check_sequence(x, model)
    return _compare(model, x, y, window, full_bptt_gradients(model, x, y), window_graph_bytes(model, x, y, x.shape[1]))


def _compare(model: TinyRNN, x: torch.Tensor, y: torch.Tensor, window: int, full: dict[str, torch.Tensor],
             full_bytes: int) -> WindowResult:
    trunc = tbptt_gradients(model, x, y, window)
    length = x.shape[1]
    return WindowResult(min(window, length), length, window_graph_bytes(model, x, y, window), full_bytes,
                        relative_difference(trunc, full))


def window_sweep(window_sizes: Sequence[int], length: int = 32, hidden: int = 16, batch: int = 8,
                 delay: int = 2, seed: int = 0) -> list[WindowResult]:
    """``compare_window`` for several windows on one seeded model and echo task.

    Example:
        >>> [r.window for r in window_sweep([1, 4], length=8, hidden=4, batch=2)]
        [1, 4]
    """
    require_positive_int(length, "length", maximum=MAX_LENGTH)
    if not window_sizes:
        raise LabInputError("window_sizes is empty; pass e.g. [1, 2, 4, 8].")
    torch.manual_seed(seed)
    model = TinyRNN(1, hidden, 1)
    x, y = make_echo_task(batch, length, delay, seed)
    sizes = [require_positive_int(int(w), "window", maximum=length) for w in window_sizes]
    full, full_bytes = full_bptt_gradients(model, x, y), window_graph_bytes(model, x, y, length)
    return [_compare(model, x, y, w, full, full_bytes) for w in sizes]


def plot_window_sweep(results: Sequence[WindowResult], highlight: int | None = None):
    """Two panels against window length: graph memory of one window, and gradient difference from full BPTT.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    if not results:
        raise LabInputError("no results to plot; run window_sweep first.")
    ws = [r.window for r in results]
    fig, (ax_mem, ax_diff) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_mem.plot(ws, [r.graph_bytes / 1024 for r in results], marker="o", label="one window (TBPTT)")
    ax_mem.axhline(results[0].full_graph_bytes / 1024, color="tab:red", ls="--", label="whole sequence (full BPTT)")
    ax_mem.set_xlabel("window length (steps)")
    ax_mem.set_ylabel("saved for backward (KiB)")
    ax_mem.set_ylim(bottom=0)
    ax_mem.set_title("Graph memory alive at one backward")
    diffs = [max(r.relative_grad_difference, 1e-12) for r in results]
    ax_diff.plot(ws, [d * 100 for d in diffs], marker="o", color="tab:green", label="truncated vs full")
    ax_diff.set_yscale("log")
    ax_diff.set_xlabel("window length (steps)")
    ax_diff.set_ylabel("relative gradient difference (%)\n(1e-10 % = identical)")
    ax_diff.set_title(f"Gradient error, sequence length {results[0].length}")
    for ax in (ax_mem, ax_diff):
        if highlight is not None:
            ax.axvline(highlight, color="0.5", ls=":", label=f"chosen window {highlight}")
        ax.set_xticks(ws)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _sweep_windows(length: int, window: int) -> list[int]:
    powers = [2 ** k for k in range(0, length.bit_length()) if 2 ** k <= length]
    return sorted(set(powers + [length, window]))


def make_tbptt_panel(length: int = 32, hidden: int = 16, batch: int = 8):
    """A panel: window length (and sequence length) -> graph memory and gradient difference from full BPTT.

    Returns:
        A ``helpers.widgets.Panel`` whose result is the list of ``WindowResult`` of a sweep that
        includes the chosen window (powers of two, the chosen window and the full length).

    Example:
        >>> panel = make_tbptt_panel(length=8, hidden=4, batch=2)
        >>> [r.window for r in panel.set(window=3).run()]
        [1, 2, 3, 4, 8]
    """
    import ipywidgets as W
    from IPython.display import display

    from helpers.widgets import Panel

    require_positive_int(length, "length", maximum=MAX_LENGTH)

    def run(window: int, length: int) -> list[WindowResult]:
        if window > length:
            raise LabInputError(f"window={window} is longer than the sequence ({length}); choose window <= length.")
        return window_sweep(_sweep_windows(length, window), length=length, hidden=hidden, batch=batch)

    def render(results: list[WindowResult]) -> None:
        chosen = panel.values()["window"]
        for result in results:
            if result.window == chosen:
                print(result)
        display(plot_window_sweep(results, highlight=chosen))
        import matplotlib.pyplot as plt

        plt.close("all")

    def estimate(window: int, length: int) -> int:  # a few tensors of (batch, hidden) floats per step, per sweep point
        return 8 * length * batch * hidden * 4 * (len(_sweep_windows(length, window)) + 2)

    panel = Panel(run, {"window": W.IntSlider(value=max(1, length // 4), min=1, max=MAX_LENGTH // 4,
                                              description="window (steps)"),
                        "length": W.IntSlider(value=length, min=4, max=MAX_LENGTH // 4, description="sequence length")},
                  render=render, title="Truncated BPTT: window length vs graph memory and gradient error",
                  memory_estimate=estimate)
    return panel


@contextmanager
def backward_calls() -> Iterator[list[dict]]:
    """Record every ``backward`` call made inside the block (its ``retain_graph`` and ``create_graph``).

    ``Tensor.backward`` goes through ``torch.autograd.backward``; both entry points are watched
    and restored afterwards.

    Example:
        >>> w = torch.ones(2, requires_grad=True)
        >>> with backward_calls() as calls:
        ...     (w * w).sum().backward(retain_graph=True)
        >>> calls
        [{'retain_graph': True, 'create_graph': False}]
    """
    calls: list[dict] = []
    original = torch.autograd.backward

    def watched(tensors, grad_tensors=None, retain_graph=None, create_graph=False, *args, **kwargs):
        calls.append({"retain_graph": bool(retain_graph) if retain_graph is not None else bool(create_graph),
                      "create_graph": bool(create_graph)})
        return original(tensors, grad_tensors, retain_graph, create_graph, *args, **kwargs)

    torch.autograd.backward = watched
    try:
        yield calls
    finally:
        torch.autograd.backward = original


def check_tbptt_exercise(fn: Callable | None, name: str = "truncated-BPTT loop"):
    """Self-check for the exercise: ``fn(model, x, y, window, optimizer=None)`` runs one TBPTT pass.

    Checks that (1) it trains with windows shorter than the sequence and an optimizer stepping per
    window, with no ``retain_graph=True`` in any backward call; (2) the loss goes down over a few
    passes; (3) without an optimizer and with ``window == length`` the accumulated gradients equal
    full BPTT's (``atol=1e-6``).

    Returns:
        ``helpers.exercises.CheckResult`` (prints ⏳ while ``fn`` is None).

    Example:
        >>> check_tbptt_exercise(tbptt_pass)
        ✅ truncated-BPTT loop: correct: 0 retain_graph calls, loss went down, window = length equals full BPTT.
    """
    from helpers.exercises import CheckResult

    if fn is None or fn is Ellipsis:
        return CheckResult(name, False, "not answered yet: replace the None / ... placeholder with your code and re-run.",
                           answered=False)
    if not callable(fn):
        return CheckResult(name, False, f"expected a function fn(model, x, y, window, optimizer=None); got {type(fn).__name__}.")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = TinyRNN(1, 8, 1)
        x, y = make_echo_task(batch=8, length=24, delay=2, seed=1)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
        with backward_calls() as calls:
            try:
                before = sequence_loss(model, x, y).item()
                for _ in range(15):
                    fn(model, x, y, 4, optimizer)
                after = sequence_loss(model, x, y).item()
            except Exception as error:  # report the learner's error instead of a traceback from inside the check
                hint = " (detach the hidden state between windows)" if isinstance(error, RuntimeError) else ""
                return CheckResult(name, False, f"training with window=4 and optimizer steps raised "
                                   f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}{hint}.")
        retained = sum(call["retain_graph"] for call in calls)
        if not calls:
            return CheckResult(name, False, "no backward() call was made; call loss.backward() once per window.")
        if retained:
            return CheckResult(name, False, f"{retained} of {len(calls)} backward calls used retain_graph=True; "
                               "detach the hidden state between windows instead.")
        if not after < before:
            return CheckResult(name, False, f"the loss did not go down over 15 passes ({before:.4g} -> {after:.4g}); "
                               "call optimizer.step() after each window's backward.")
        full = full_bptt_gradients(model, x, y)
        model.zero_grad(set_to_none=True)
        try:
            fn(model, x, y, x.shape[1], None)
        except Exception as error:
            return CheckResult(name, False, f"with window = length and optimizer=None it raised "
                               f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}.")
        got = parameter_grads(model)
        if set(got) != set(full):
            return CheckResult(name, False, f"with optimizer=None, gradients are missing for {sorted(set(full) - set(got))}.")
        worst = max(float((got[k] - full[k]).abs().max()) for k in full)
        if worst > 1e-6:
            return CheckResult(name, False, f"with window = length the gradients differ from full BPTT by up to "
                               f"{worst:.3g}; scale each step's loss by 1/length (step_loss) and do not zero "
                               "gradients between windows when optimizer is None.")
        return CheckResult(name, True, "correct: 0 retain_graph calls, loss went down, window = length equals full BPTT.")
    finally:
        torch.random.set_rng_state(state)
