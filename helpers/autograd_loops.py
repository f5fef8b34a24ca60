"""Autograd through Python loops: what the graph records, and the pitfalls of backward inside a loop."""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from helpers.graphs import GraphView, draw_graph, graph_stats
from helpers.memory import track_live_saved
from helpers.tbptt import (TinyRNN, check_sequence, check_targets, make_echo_task, parameter_grads, sequence_loss,
                           step_loss)
from helpers.timing import Experiment
from helpers.validation import LabInputError, require_choice, require_positive_int

MAX_WHILE_STEPS = 1000
MAX_GRAPH_ITERATIONS = 6
RUNNING_LOSS_MODES = ("tensor", "item", "detach")


# --- 1. loops are recorded ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoopSumGradients:
    """``x.grad`` of ``sum_i (x**2 + i)`` computed three ways."""

    loop: float
    stacked: float
    last_only: float


def loop_sum_gradients(x_value: float = 2.0, iterations: int = 3) -> LoopSumGradients:
    """Gradient of ``loss = sum_i (x**2 + i)``: summed in a Python loop, stacked then summed, and last term only.

    Args:
        x_value: the value of the leaf ``x``.
        iterations: number of loop iterations (terms).

    Returns:
        ``LoopSumGradients(loop, stacked, last_only)``; the first two are the full gradient
        ``iterations * 2 * x``, the third is what keeping only the last iteration would give.

    Example:
        >>> loop_sum_gradients(2.0, 3)
        LoopSumGradients(loop=12.0, stacked=12.0, last_only=4.0)
    """
    require_positive_int(iterations, "iterations")
    x = torch.tensor(float(x_value), requires_grad=True)
    loss = 0
    for i in range(iterations):
        loss = loss + (x ** 2 + i)
    loss.backward()
    loop = float(x.grad)

    x2 = torch.tensor(float(x_value), requires_grad=True)
    torch.stack([x2 ** 2 + i for i in range(iterations)]).sum().backward()

    x3 = torch.tensor(float(x_value), requires_grad=True)
    (x3 ** 2 + (iterations - 1)).backward()
    return LoopSumGradients(loop, float(x2.grad), float(x3.grad))


def loop_sum_loss(x: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """``sum_i (x**2 + i)`` built in a Python loop (returns the loss, for drawing its graph).

    Example:
        >>> loop_sum_loss(torch.tensor(2.0, requires_grad=True), 3).item()
        15.0
    """
    require_positive_int(iterations, "iterations")
    loss = 0
    for i in range(iterations):
        loss = loss + (x ** 2 + i)
    return loss


@dataclass(frozen=True)
class WhileLoopGradient:
    """A data-dependent ``while`` loop's step count, autograd's gradient and the analytic one."""

    steps: int
    value: float
    autograd: float
    analytic: float


def while_loop_gradient(x_value: float = 1.5, limit: float = 10.0, dtype: torch.dtype = torch.float64) -> WhileLoopGradient:
    """``y = x; while y < limit: y = y * x`` - the number of iterations depends on the data.

    After ``n`` multiplications ``y = x**(n+1)``, so ``dy/dx = (n+1) * x**n``; autograd records
    exactly the iterations that ran, so its gradient matches this for every ``x``.

    Args:
        x_value: the leaf's value; must be above 1 (else the loop would never end).
        limit: the loop stops once ``y >= limit``.
        dtype: of ``x`` (float64 by default, so the comparison is tight).

    Returns:
        ``WhileLoopGradient(steps, value, autograd, analytic)``.

    Example:
        >>> r = while_loop_gradient(1.5, 10.0)
        >>> r.steps, abs(r.autograd - r.analytic) < 1e-9
        (5, True)
    """
    if not float(x_value) > 1.0:
        raise LabInputError(f"x_value must be above 1 so that y = y * x grows past the limit; got {x_value!r}.")
    x = torch.tensor(float(x_value), dtype=dtype, requires_grad=True)
    y, steps = x, 0
    while y.item() < limit:
        if steps >= MAX_WHILE_STEPS:
            raise LabInputError(f"the loop ran {MAX_WHILE_STEPS} times without reaching limit={limit}; "
                                "choose a larger x_value or a smaller limit.")
        y = y * x
        steps += 1
    y.backward()
    analytic = (steps + 1) * float(x_value) ** steps
    return WhileLoopGradient(steps, y.item(), float(x.grad), analytic)


# --- 2-4. backward inside the time loop -----------------------------------------------------------------------

def rnn_setup(batch: int = 4, length: int = 6, hidden: int = 8, seed: int = 0,
              dtype: torch.dtype = torch.float32) -> tuple[TinyRNN, torch.Tensor, torch.Tensor]:
    """A seeded ``TinyRNN`` and an echo task ``(model, x, y)`` for the per-step experiments.

    Example:
        >>> model, x, y = rnn_setup(batch=2, length=3)
        >>> tuple(x.shape)
        (2, 3, 1)
    """
    torch.manual_seed(seed)
    model = TinyRNN(1, hidden, 1).to(dtype)
    x, y = make_echo_task(batch, length, delay=min(2, length - 1), seed=seed, dtype=dtype)
    return model, x, y


def per_step_backward(model: TinyRNN, x: torch.Tensor, y: torch.Tensor, retain_graph: bool = True,
                      optimizer: torch.optim.Optimizer | None = None) -> dict[str, torch.Tensor]:
    """The popular loop: at every time step compute that step's loss and call ``backward`` on it.

    The hidden state is carried over without ``detach``, so step t's backward walks back through
    steps t, t-1, ..., 0. What happens depends on the flags, and errors are PyTorch's own:

    - ``retain_graph=False``: step 1's backward reaches step 0's graph, already freed ->
      ``RuntimeError: Trying to backward through the graph a second time ...``.
    - ``retain_graph=True`` with an optimizer: ``optimizer.step()`` changes the weights in place,
      and a later backward needs the old values saved in the retained graph ->
      ``RuntimeError: one of the variables needed for gradient computation has been modified by an
      inplace operation ...``.
    - ``retain_graph=True`` without an optimizer: works; gradients accumulate to full BPTT's, at
      quadratic cost.

    Args:
        model, x, y: a ``TinyRNN`` and ``(batch, time, features)`` inputs and targets.
        retain_graph: passed to every ``backward``.
        optimizer: stepped after every backward when given.

    Returns:
        The accumulated gradients ``{name: tensor}`` (when nothing raised).

    Example:
        >>> model, x, y = rnn_setup(length=4)
        >>> per_step = per_step_backward(model, x, y, retain_graph=True)
        >>> full = {k: v.clone() for k, v in per_step.items()}
        >>> model.zero_grad(); sequence_loss(model, x, y).backward()
        >>> all(torch.allclose(full[k], p.grad, atol=1e-6) for k, p in model.named_parameters())
        True
    """
    x = check_sequence(x, model)
    check_targets(y, x, model)
    length = x.shape[1]
    model.zero_grad(set_to_none=True)
    h = model.init_hidden(x.shape[0])
    for t in range(length):
        out, h = model.step(x[:, t], h)
        step_loss(out, y[:, t], length).backward(retain_graph=retain_graph)
        if optimizer is not None:
            optimizer.step()
    return parameter_grads(model)


@dataclass(frozen=True)
class StepFailure:
    """Where the per-step loop failed, the real error, and the weight's version counter at each backward."""

    failed_at_step: int | None
    error: BaseException | None
    weight_hh_versions: tuple[int, ...]

    @property
    def stale_step(self) -> int | None:
        """The step whose forward pass saved the weight version the error expected (None without such an error).

        Example:
            >>> trace_per_step_training(steps=4).stale_step
            1
        """
        match = re.search(r"expected version (\d+)", str(self.error or ""))
        if match is None or int(match.group(1)) not in self.weight_hh_versions:
            return None
        return self.weight_hh_versions.index(int(match.group(1)))

    def __str__(self) -> str:
        if self.error is None:
            return f"ran all steps; weight_hh._version at each backward: {list(self.weight_hh_versions)}"
        first_line = str(self.error).splitlines()[0]
        return (f"failed at step {self.failed_at_step} (weight_hh._version at each backward: "
                f"{list(self.weight_hh_versions)})\n{type(self.error).__name__}: {first_line}")


def trace_per_step_training(steps: int = 4, retain_graph: bool = True, lr: float = 0.1, seed: int = 0) -> StepFailure:
    """Run the per-step loop with ``optimizer.step()`` (SGD) and report where it fails and why.

    Same loop as ``per_step_backward`` with an optimizer, but it records ``weight_hh._version``
    before each backward and returns the error instead of raising it.

    Example:
        >>> trace = trace_per_step_training(steps=4)
        >>> trace.failed_at_step, type(trace.error).__name__
        (2, 'RuntimeError')
    """
    require_positive_int(steps, "steps", maximum=64)
    model, x, y = rnn_setup(length=steps, seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    weight = model.cell.weight_hh
    versions: list[int] = []
    h = model.init_hidden(x.shape[0])
    for t in range(steps):
        out, h = model.step(x[:, t], h)
        versions.append(weight._version)
        try:
            step_loss(out, y[:, t], steps).backward(retain_graph=retain_graph)
        except RuntimeError as error:
            return StepFailure(t, error, tuple(versions))
        optimizer.step()
    return StepFailure(None, None, tuple(versions))


def retain_graph_with_optimizer_step(steps: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """The failing snippet: per-step ``backward(retain_graph=True)`` + ``optimizer.step()``; raises the real error.

    Example:
        >>> from helpers.exercises import check_raises
        >>> check_raises(retain_graph_with_optimizer_step, RuntimeError, match="inplace").passed
        True
    """
    model, x, y = rnn_setup(length=steps, seed=seed)
    return per_step_backward(model, x, y, retain_graph=True, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def per_step_without_retain_graph(steps: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per-step ``backward()`` with no ``retain_graph`` and no ``detach``; raises the real second-backward error.

    Example:
        >>> from helpers.exercises import check_raises
        >>> check_raises(per_step_without_retain_graph, RuntimeError, match="second time").passed
        True
    """
    model, x, y = rnn_setup(length=steps, seed=seed)
    return per_step_backward(model, x, y, retain_graph=False)


def backward_step_executions(length: int, per_step: bool) -> int:
    """How many times the RNN cell's backward runs in total: a deterministic measure of backward work.

    A hook on each step's ``grad_fn`` counts its executions. One backward over the summed loss
    runs each step once (``length``); per-step backward with ``retain_graph`` walks back to step
    0 from every step (``length * (length + 1) / 2``).

    Example:
        >>> backward_step_executions(8, per_step=False), backward_step_executions(8, per_step=True)
        (8, 36)
    """
    require_positive_int(length, "length", maximum=512)
    model, x, y = rnn_setup(length=length, hidden=4, batch=2)
    count = [0]
    h = model.init_hidden(x.shape[0])
    total = 0
    for t in range(length):
        out, h = model.step(x[:, t], h)
        h.grad_fn.register_hook(lambda grad_inputs, grad_outputs: count.__setitem__(0, count[0] + 1))
        loss = step_loss(out, y[:, t], length)
        if per_step:
            loss.backward(retain_graph=True)
        else:
            total = total + loss
    if not per_step:
        total.backward()
    return count[0]


def _per_step_builder(size: int, device: torch.device):
    model, x, y = rnn_setup(batch=4, length=size, hidden=16)
    model, x, y = model.to(device), x.to(device), y.to(device)
    return lambda: per_step_backward(model, x, y, retain_graph=True)


def _single_builder(size: int, device: torch.device):
    model, x, y = rnn_setup(batch=4, length=size, hidden=16)
    model, x, y = model.to(device), x.to(device), y.to(device)

    def run() -> None:
        model.zero_grad(set_to_none=True)
        sequence_loss(model, x, y).backward()

    return run


def per_step_experiment(sizes: tuple[int, ...] = (8, 16, 32, 64)) -> Experiment:
    """The timing experiment of section 4: one backward over the summed loss vs per-step backward.

    Both builders run their own forward and backward, so they are timed in ``"forward"`` mode
    (the callable as it is). Batch 4, hidden 16.

    Example:
        >>> sorted(per_step_experiment().builders)
        ['per-step retain_graph', 'single backward']
    """
    sizes = tuple(require_positive_int(int(s), "size", maximum=512) for s in sizes)
    return Experiment("nb03.per_step_backward",
                      {"single backward": _single_builder, "per-step retain_graph": _per_step_builder},
                      sizes, "sequence length T", "single backward", modes=("forward",),
                      fixed={"batch": 4, "hidden": 16, "model": "TinyRNN (RNNCell loop)"})


def standard_experiments(scale: str = "notebook") -> list[Experiment]:
    """This notebook's timing experiments for ``make bench``: ``"notebook"`` sizes as run live, or larger ``"reference"`` ones.

    Example:
        >>> [e.sizes for e in standard_experiments("notebook")]
        [(8, 16, 32, 64)]
    """
    sizes = {"notebook": (8, 16, 32, 64), "reference": (16, 32, 64, 128, 256)}
    if scale not in sizes:
        raise LabInputError(f"scale must be one of {sorted(sizes)}; got {scale!r}.")
    return [per_step_experiment(sizes[scale])]


# --- 5. gradient accumulation ----------------------------------------------------------------------------------

def grads_after_repeated_backward(calls: int = 3, x_value: float = 2.0) -> list[float]:
    """``x.grad`` after each of ``calls`` backward passes of fresh ``x**2`` graphs, never zeroed.

    Example:
        >>> grads_after_repeated_backward(3, 2.0)
        [4.0, 8.0, 12.0]
    """
    require_positive_int(calls, "calls", maximum=100)
    x = torch.tensor(float(x_value), requires_grad=True)
    seen = []
    for _ in range(calls):
        (x ** 2).backward()
        seen.append(float(x.grad))
    return seen


def micro_batch_gradients(model: TinyRNN, x: torch.Tensor, y: torch.Tensor, micro_batches: int,
                          scale: bool = True) -> dict[str, torch.Tensor]:
    """Gradient accumulation: split the batch, ``backward`` each part's mean loss, never zero in between.

    Args:
        model, x, y: a ``TinyRNN`` and ``(batch, time, features)`` data.
        micro_batches: how many equal parts to split the batch into (must divide it).
        scale: multiply each part's loss by its share of the batch (``part / batch``), which makes
            the accumulated gradient equal the big batch's; without it the result is
            ``micro_batches`` times too large.

    Returns:
        ``{name: accumulated gradient}``.

    Example:
        >>> model, x, y = rnn_setup(batch=4, length=3, dtype=torch.float64)
        >>> big = {k: v.clone() for k, v in micro_batch_gradients(model, x, y, 1).items()}
        >>> small = micro_batch_gradients(model, x, y, 4)
        >>> all(torch.allclose(big[k], small[k]) for k in big)
        True
    """
    x = check_sequence(x, model)
    batch = x.shape[0]
    require_positive_int(micro_batches, "micro_batches")
    if batch % micro_batches:
        raise LabInputError(f"micro_batches={micro_batches} does not divide the batch of {batch}; "
                            f"choose one of {[d for d in range(1, batch + 1) if batch % d == 0]}.")
    part = batch // micro_batches
    model.zero_grad(set_to_none=True)
    for start in range(0, batch, part):
        loss = sequence_loss(model, x[start:start + part], y[start:start + part])
        (loss * (part / batch) if scale else loss).backward()
    return parameter_grads(model)


# --- 6. a running total that keeps graphs alive -------------------------------------------------------------

@dataclass(frozen=True)
class RunningLossRow:
    """After one iteration of a loop that keeps a running total of the loss."""

    step: int
    graph_nodes: int
    live_saved_bytes: int


def running_loss_growth(steps: int = 6, mode: str = "tensor", train: bool = True, batch: int = 8,
                        length: int = 16, hidden: int = 16) -> list[RunningLossRow]:
    """Keep ``total_loss`` across iterations and measure what each iteration leaves alive.

    Args:
        steps: loop iterations (each on a fresh batch of the echo task).
        mode: how the loss is added: ``"tensor"`` (``total_loss += loss``), ``"item"``
            (``total_loss += loss.item()``) or ``"detach"`` (``total_loss += loss.detach()``).
        train: ``True`` for a training loop (``backward`` + ``optimizer.step()`` each iteration),
            ``False`` for an evaluation loop that forgot ``torch.no_grad()`` (no backward).
        batch, length, hidden: sizes of the data and model.

    Returns:
        One ``RunningLossRow`` per iteration: autograd nodes reachable from ``total_loss`` (0 when it
        has no graph) and bytes of saved tensors still held by some graph (parameters excluded).

    Example:
        >>> [r.graph_nodes > 0 for r in running_loss_growth(2, "tensor", length=3)]
        [True, True]
        >>> [r.graph_nodes for r in running_loss_growth(2, "item", length=3)]
        [0, 0]
    """
    require_positive_int(steps, "steps", maximum=64)
    require_choice(mode, "mode", RUNNING_LOSS_MODES)
    model, _, _ = rnn_setup(batch=batch, length=length, hidden=hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05) if train else None
    rows = []
    total_loss: float | torch.Tensor = 0.0
    with track_live_saved(ignore=tuple(model.parameters())) as tracker:
        for step in range(steps):
            x, y = make_echo_task(batch, length, delay=min(2, length - 1), seed=100 + step)
            loss = sequence_loss(model, x, y)
            if train:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if mode == "tensor":
                total_loss += loss
            elif mode == "item":
                total_loss += loss.item()
            else:
                total_loss += loss.detach()
            del loss, x, y
            nodes = (graph_stats(total_loss).nodes
                     if isinstance(total_loss, torch.Tensor) and total_loss.grad_fn is not None else 0)
            rows.append(RunningLossRow(step + 1, nodes, tracker.live_bytes))
    return rows


# --- graph viewer ---------------------------------------------------------------------------------------------

def loop_graph_loss(iterations: int, detach_every: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``h = tanh(w * h + x)`` for ``iterations`` steps, detaching ``h`` every ``detach_every`` steps (0 = never).

    Returns:
        ``(loss, {"x": x, "w": w})`` where ``loss = h.sum()`` after the last step; its graph
        reaches back only to the last ``detach``.

    Example:
        >>> graph_stats(loop_graph_loss(4)[0]).nodes > graph_stats(loop_graph_loss(4, detach_every=2)[0]).nodes
        True
    """
    require_positive_int(iterations, "iterations", maximum=MAX_GRAPH_ITERATIONS * 4)
    if isinstance(detach_every, bool) or not isinstance(detach_every, int) or detach_every < 0:
        raise LabInputError(f"detach_every must be 0 (never) or a positive integer; got {detach_every!r}.")
    x = torch.tensor([0.5, -0.3], requires_grad=True)
    w = torch.tensor([0.9, 1.1], requires_grad=True)
    h = torch.zeros(2)
    for i in range(iterations):
        h = torch.tanh(w * h + x)
        if detach_every and (i + 1) % detach_every == 0 and i + 1 < iterations:
            h = h.detach()
    return h.sum(), {"x": x, "w": w}


def loop_graph_view(iterations: int = 3, detach_every: int = 0) -> GraphView:
    """Draw ``loop_graph_loss``'s graph (torchviz when graphviz is installed).

    Example:
        >>> loop_graph_view(2).stats.nodes == graph_stats(loop_graph_loss(2)[0]).nodes
        True
    """
    loss, params = loop_graph_loss(iterations, detach_every)
    cut = f", detach every {detach_every}" if detach_every else ", no detach"
    return draw_graph(loss, params=params, title=f"h = tanh(w*h + x), {iterations} iterations{cut}")


def make_graph_panel():
    """A panel: loop iterations (1-6) and "detach every k steps" (0 = never) -> the graph and its node count.

    Example:
        >>> panel = make_graph_panel()
        >>> a = panel.set(iterations=6, detach_every=0).run().stats.nodes
        >>> b = panel.set(detach_every=2).run().stats.nodes
        >>> a > b
        True
    """
    import ipywidgets as W
    from IPython.display import display

    from helpers.widgets import Panel

    def render(view: GraphView) -> None:
        print(f"{view.stats.nodes} autograd nodes, depth {view.stats.depth}")
        display(view)

    return Panel(loop_graph_view,
                 {"iterations": W.IntSlider(value=3, min=1, max=MAX_GRAPH_ITERATIONS, description="loop iterations"),
                  "detach_every": W.IntSlider(value=0, min=0, max=MAX_GRAPH_ITERATIONS,
                                              description="detach every k steps (0 = never)")},
                 render=render, title="The loop's autograd graph: grown by iterations, cut by detach()")


def plot_running_loss(results: dict[str, list[RunningLossRow]]):
    """Graph nodes reachable from ``total_loss`` and saved bytes still alive, per iteration, one line per variant.

    Args:
        results: ``{label: running_loss_growth(...)}``.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    if not results:
        raise LabInputError("no results to plot; pass {label: running_loss_growth(...)}.")
    fig, (ax_nodes, ax_bytes) = plt.subplots(1, 2, figsize=(10, 3.6))
    markers, styles = "osd^v<>", ("-", "--", ":", "-.")  # distinct styles, so overlapping lines stay visible
    for i, (label, rows) in enumerate(results.items()):
        steps = [r.step for r in rows]
        style = {"marker": markers[i % len(markers)], "ls": styles[i % len(styles)], "label": label,
                 "markersize": 8 - 1.5 * (i % 3)}
        ax_nodes.plot(steps, [r.graph_nodes for r in rows], **style)
        ax_bytes.plot(steps, [r.live_saved_bytes / 1024 for r in rows], **style)
    ax_nodes.set_xlabel("loop iteration")
    ax_nodes.set_ylabel("autograd nodes reachable from total_loss")
    ax_nodes.set_title("Graph kept by total_loss")
    ax_bytes.set_xlabel("loop iteration")
    ax_bytes.set_ylabel("saved tensors still alive (KiB)")
    ax_bytes.set_title("Activation memory held by graphs")
    for ax in (ax_nodes, ax_bytes):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
