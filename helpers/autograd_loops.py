"""Instruments for notebook 03 (autograd in loops): what backward calls a loop makes, what anomaly mode
reports, and the self-check of the exercise that makes per-step training work.

The loops themselves (the article's training loop, truncated BPTT, checkpointing) live in the notebook;
these functions take them as arguments.
"""
from __future__ import annotations

import copy
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from helpers.exercises import CheckResult
from helpers.profiling import dispatch_counts
from helpers.validation import LabInputError, describe_error, require_callable, require_tensor, run_specimen


@dataclass(frozen=True)
class BackwardCall:
    """One call of ``backward()``: whether it kept the graph (``retain_graph``, also implied by ``create_graph``)."""

    retain_graph: bool
    create_graph: bool


@contextmanager
def backward_calls() -> Iterator[list[BackwardCall]]:
    """Record every ``backward()`` call made inside the block, with its ``retain_graph`` flag.

    ``Tensor.backward`` goes through ``torch.autograd.backward``; that entry point is watched and
    restored afterwards (also on error).

    Yields:
        A list that fills with one ``BackwardCall`` per call.

    Example:
        >>> w = torch.ones(2, requires_grad=True)
        >>> with backward_calls() as calls:
        ...     (w * w).sum().backward(retain_graph=True)
        ...     (w * w).sum().backward()
        >>> [call.retain_graph for call in calls]
        [True, False]
    """
    calls: list[BackwardCall] = []
    original = torch.autograd.backward

    def watched(tensors, grad_tensors=None, retain_graph=None, create_graph=False, *args, **kwargs):
        kept = bool(create_graph) if retain_graph is None else bool(retain_graph)
        calls.append(BackwardCall(kept, bool(create_graph)))
        return original(tensors, grad_tensors, retain_graph, create_graph, *args, **kwargs)

    torch.autograd.backward = watched
    try:
        yield calls
    finally:
        torch.autograd.backward = original


@dataclass(frozen=True)
class AnomalyReport:
    """What ``torch.autograd.set_detect_anomaly(True)`` adds to an autograd error.

    Attributes:
        error: the error's first line, as raised with anomaly mode on (None when nothing was raised).
        failed_node: the backward node anomaly mode names, e.g. ``"AddmmBackward0"``.
        forward_lines: the source lines of the forward call that created that node, outermost first,
            outside PyTorch's own files (the learner's code).
    """

    error: str | None
    failed_node: str | None
    forward_lines: tuple[str, ...]

    def __str__(self) -> str:
        if self.error is None:
            return "ran without an error: anomaly mode had nothing to report"
        lines = [f"error: {self.error}", f"backward node that failed: {self.failed_node}",
                 "forward code that created it (outside torch's own files):"]
        return "\n".join(lines + [f"    {line}" for line in self.forward_lines])


def anomaly_report(fn: Callable[[], object]) -> AnomalyReport:
    """Run ``fn()`` under ``torch.autograd.set_detect_anomaly(True)`` and collect what anomaly mode adds.

    Anomaly mode records a traceback of every forward operation; when a backward node fails it warns
    with the node's name and that traceback, then raises. Here the warning is captured (not printed)
    and reduced to the node and the learner's own source lines; the error is caught.

    Args:
        fn: a zero-argument callable expected to raise an autograd ``RuntimeError``.

    Returns:
        ``AnomalyReport``.

    Example:
        >>> w = torch.ones(3, requires_grad=True)
        >>> def update_then_backward():
        ...     y = (w * w).sum()
        ...     with torch.no_grad():
        ...         w.add_(1.0)
        ...     y.backward()
        >>> report = anomaly_report(update_then_backward)
        >>> report.failed_node, report.forward_lines[-1]
        ('MulBackward0', 'y = (w * w).sum()')
    """
    require_callable(fn, "fn", "a zero-argument callable, e.g. lambda: train(model, x, y)")
    error: BaseException | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autograd.set_detect_anomaly(True, check_nan=False):
            try:
                fn()
            except RuntimeError as raised:  # autograd's errors are RuntimeErrors: what anomaly mode explains
                error = raised
            except LabInputError:
                raise
            except Exception as other:  # a bug elsewhere in fn: one line, not a traceback through this helper
                raise LabInputError(f"fn failed before autograd could: {describe_error(other)}") from None
    node, lines = None, ()
    for warning in caught:
        text = str(warning.message)
        match = re.search(r"Error detected in (\w+)\.", text)
        if match:
            node, lines = match.group(1), _own_source_lines(text)
    first = (str(error).strip().splitlines() or [""])[0] if error is not None else None
    return AnomalyReport(first, node, lines)


def _own_source_lines(traceback_text: str) -> tuple[str, ...]:
    """The source lines of the frames below ``anomaly_report``'s call of ``fn``, outside torch's own files."""
    torch_dir = os.path.dirname(torch.__file__)
    frames: list[tuple[str, str]] = []
    lines = traceback_text.splitlines()
    for i, line in enumerate(lines):
        frame = re.match(r'\s*File "([^"]+)", line \d+', line)
        if frame and i + 1 < len(lines) and not re.match(r'\s*File "', lines[i + 1]):
            frames.append((frame.group(1), lines[i + 1].strip()))
    ours = [i for i, (path, _) in enumerate(frames) if os.path.abspath(path) == os.path.abspath(__file__)]
    below = frames[ours[-1] + 1:] if ours else frames      # the caller's frames (kernel, test runner) are noise
    return tuple(text for path, text in below if not path.startswith(torch_dir) and text)


def check_sliding_window_training(fn: Callable | None, make_model: Callable[[], torch.nn.Module],
                                  inputs: torch.Tensor, targets: torch.Tensor, reach: int,
                                  step_op: str = "aten::tanh_backward",
                                  name: str = "per-step training with a reach of k steps",
                                  init_hidden: Callable | None = None) -> CheckResult:
    """Self-check: ``fn(model, inputs, targets, optimizer, reach)`` updates the weights at every time step,
    each update's backward reaching ``reach`` steps back (fewer at the start), with no ``retain_graph``.

    The check runs ``fn`` once over the sequence with SGD and counts, deterministically: optimizer steps
    (one per time step), backward calls and their ``retain_graph`` flags (none kept), and how often the
    model's per-step backward operator ``step_op`` ran: step ``t`` must walk back ``min(t + 1, reach)``
    steps, so the total is ``sum(min(t + 1, reach) for t in range(T))``. With ``init_hidden`` it also
    compares the final weights with a reference run from the same initial weights (rebuild the last
    ``reach`` steps from stored detached states, ``optimizer.zero_grad()``, backward of step ``t``'s loss
    ``mean((output - y_t) ** 2)``, ``optimizer.step()``), so a forgotten ``zero_grad()`` or a loss summed
    over the window is caught even though it walks the right number of steps.

    Args:
        fn: the learner's function, or None while unanswered.
        make_model: builds a fresh model (the notebook's own ``SimpleRNN``), called once.
        inputs, targets: time-major sequences ``(T, batch, features)``.
        reach: how many steps back each update's gradient must reach.
        step_op: the ATen operator that runs once per step in the model's backward.
        name: shown in the result.
        init_hidden: ``init_hidden(model, inputs)`` gives the state before step 0 (the notebook's
            ``zero_state``); the model must be called ``model(x_t, hidden) -> (output, hidden)``. None skips
            the comparison of the final weights.

    Returns:
        ``helpers.exercises.CheckResult`` (⏳ while ``fn`` is None).

    Example:
        >>> rnn = lambda: torch.nn.RNNCell(1, 4)
        >>> def one_step_reach(model, inputs, targets, optimizer, reach):   # detach every step: reach 1
        ...     h = torch.zeros(inputs.shape[1], 4)
        ...     for x_t, y_t in zip(inputs, targets):
        ...         h = model(x_t, h.detach())
        ...         optimizer.zero_grad(); ((h[:, :1] - y_t) ** 2).mean().backward(); optimizer.step()
        >>> x, y = torch.randn(6, 2, 1), torch.randn(6, 2, 1)
        >>> check_sliding_window_training(one_step_reach, rnn, x, y, reach=1).passed
        True
        >>> check_sliding_window_training(one_step_reach, rnn, x, y, reach=3).message
        'the backward passes walked 6 steps in total; a reach of 3 over 6 steps walks 15 (min(t + 1, 3) at step t).'
    """
    if fn is None or fn is Ellipsis:
        return CheckResult(name, False, "not answered yet: replace the None / ... placeholder with your code and re-run.",
                           answered=False)
    if not callable(fn):
        return CheckResult(name, False, f"expected a function fn(model, inputs, targets, optimizer, reach); "
                           f"got {type(fn).__name__}.")
    if isinstance(reach, bool) or not isinstance(reach, int) or reach < 1:
        raise LabInputError(f"reach must be a positive integer; got {reach!r}.")
    if init_hidden is not None and not callable(init_hidden):
        raise LabInputError(f"init_hidden must be a function init_hidden(model, inputs) -> hidden state, e.g. "
                            f"zero_state; got {type(init_hidden).__name__}.")
    if not callable(make_model) or isinstance(make_model, torch.nn.Module):
        raise LabInputError(f"make_model must be a function that builds a fresh model, e.g. lambda: SimpleRNN(1, 8); "
                            f"got {type(make_model).__name__}" + (" (a model itself)." if callable(make_model) else "."))
    require_tensor(inputs, "inputs", ndim=3, layout="(time, batch, features)")
    require_tensor(targets, "targets", ndim=3, layout="(time, batch, features)")
    if len(inputs) < 1 or len(inputs) != len(targets):
        raise LabInputError(f"inputs and targets need the same number of time steps (at least 1); "
                            f"got {len(inputs)} and {len(targets)}.")
    steps = len(inputs)
    model = run_specimen(make_model, "make_model")
    if not isinstance(model, torch.nn.Module):
        raise LabInputError(f"make_model must return a fresh torch.nn.Module; it returned {type(model).__name__}. "
                            "End it with return model (e.g. lambda: SimpleRNN(1, 8)).")
    reference = copy.deepcopy(model) if init_hidden is not None else None
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    updates = [0]
    handle = optimizer.register_step_post_hook(lambda *_: updates.__setitem__(0, updates[0] + 1))
    try:
        with backward_calls() as calls:
            ops = dispatch_counts(fn, model, inputs, targets, optimizer, reach)
    except Exception as error:  # the learner's error, reported instead of a traceback from inside the check
        cause = error.__context__ if isinstance(error, LabInputError) and error.__context__ is not None else error
        return CheckResult(name, False, f"raised {describe_error(cause)}")
    finally:
        handle.remove()
    walked, expected = ops[step_op], sum(min(t + 1, reach) for t in range(steps))
    kept = sum(call.retain_graph for call in calls)
    if updates[0] != steps:
        return CheckResult(name, False, f"optimizer.step() ran {updates[0]} times; update once per time step ({steps}).")
    if kept:
        return CheckResult(name, False, f"{kept} of {len(calls)} backward calls used retain_graph=True; "
                           "rebuild the graph from a stored, detached hidden state instead.")
    if walked != expected:
        return CheckResult(name, False, f"the backward passes walked {walked} steps in total; a reach of {reach} "
                           f"over {steps} steps walks {expected} (min(t + 1, {reach}) at step t).")
    if all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)):
        return CheckResult(name, False, "the weights did not change; call optimizer.step() after each backward.")
    if reference is not None:
        _sliding_window_reference(reference, inputs, targets, reach, init_hidden)
        gap = max((a.detach() - b.detach()).abs().max().item()
                  for a, b in zip(model.parameters(), reference.parameters(), strict=True))
        if gap > 1e-5:
            return CheckResult(name, False, f"the final weights differ from the reference run by up to {gap:.2g} "
                               "(more than 1e-05): zero the gradients before each backward, and backpropagate step "
                               "t's own loss only, not the sum over the window.")
    return CheckResult(name, True, f"correct: {steps} updates, no retain_graph, each backward reached "
                       f"min(t + 1, {reach}) steps ({walked} in total).")


def _sliding_window_reference(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, reach: int,
                              init_hidden: Callable) -> None:
    """The exercise's reference run (SGD, lr 0.01): at step t, rebuild the last ``reach`` steps from stored
    detached states with the current weights, zero the gradients, backpropagate step t's loss, update."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    starts = [init_hidden(model, inputs)]
    for t in range(len(inputs)):
        first = max(0, t + 1 - reach)
        hidden = starts[first]
        for i in range(first, t + 1):
            output, hidden = model(inputs[i], hidden)
        optimizer.zero_grad()
        torch.mean((output - targets[t]) ** 2).backward()
        optimizer.step()
        starts.append(hidden.detach())
