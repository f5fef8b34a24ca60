"""Which operators a computation runs, counted with ``torch.profiler``: deterministic evidence for timing claims."""
from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from helpers.device import pick_device
from helpers.validation import LabInputError, require_callable, run_specimen


@dataclass(frozen=True)
class OpCount:
    """One operator (or GPU kernel) seen by the profiler: its name, its inputs' shapes and its call count."""

    name: str
    shapes: tuple[tuple[int, ...], ...]
    count: int

    def __str__(self) -> str:
        shapes = " ".join(str(s) for s in self.shapes)
        return f"{self.name}{' on ' + shapes if shapes else ''} ×{self.count}"


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the profiler's C++ side logs timestamped start/stop lines there,
    which would otherwise land in a notebook's stored output."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to redirect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def profile_ops(fn: Callable[[], object], prefixes: Sequence[str] | None = None, device: str = "cpu",
                kernels: bool = False) -> list[OpCount]:
    """Run ``fn`` once under ``torch.profiler`` and count the operators whose name starts with a prefix.

    ``fn`` is run once before profiling, so one-time set-up does not show. Counts are grouped by
    operator name and the shapes of its tensor inputs (e.g. one ``aten::linear`` on an input of
    (B, T, I) versus T of them on (B, H)). Operators called by other operators are counted too.

    Args:
        fn: a zero-argument callable, e.g. ``lambda: model(x)``.
        prefixes: keep only names starting with one of these (``()`` keeps all; default ``("aten::",)`` for
            operators, all for kernels).
        device: ``"cuda"`` also records GPU activity.
        kernels: count GPU kernels by name (no shapes) instead of CPU operators.

    Returns:
        A list of ``OpCount``, most frequent first (ties by name).

    Raises:
        LabInputError: for a non-callable ``fn``, or when ``fn`` fails (the message names its error and line).

    Example:
        >>> w, x = torch.randn(3, 2), torch.randn(5, 4, 2)
        >>> for op in profile_ops(lambda: [x_t @ w.T for x_t in x.unbind(0)], prefixes=("aten::mm",)): print(op)
        aten::mm on (4, 2) (2, 3) ×5
    """
    if not callable(fn):
        raise LabInputError(f"fn must be a zero-argument callable (e.g. lambda: model(x)); got {type(fn).__name__}.")
    dev = pick_device(device)
    if kernels and dev.type != "cuda":
        raise LabInputError("kernels=True lists GPU kernels; it needs device='cuda' on a machine with CUDA.")
    from torch.profiler import ProfilerActivity, profile

    if prefixes is None:
        prefixes = () if kernels else ("aten::",)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    run_specimen(fn, "the function profile_ops runs (its warm-up call)")
    with _native_stderr_silenced(), profile(activities=activities, record_shapes=not kernels) as prof:
        run_specimen(fn, "the function profile_ops runs")
        if dev.type == "cuda":
            torch.cuda.synchronize()
    counts: Counter = Counter()
    if kernels:
        for event in prof.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                counts[(event.name, ())] += 1
    else:
        for event in prof.key_averages(group_by_input_shape=True):
            shapes = tuple(tuple(s) for s in event.input_shapes if s)
            counts[(event.key, shapes)] += event.count
    rows = [OpCount(name, shapes, n) for (name, shapes), n in counts.items()
            if not prefixes or any(name.startswith(p) for p in prefixes)]
    return sorted(rows, key=lambda r: (-r.count, r.name, str(r.shapes)))


def count_calls(ops: Sequence[OpCount], name: str) -> int:
    """Total calls of one operator over all input shapes.

    Example:
        >>> count_calls([OpCount("aten::mm", ((2, 2), (2, 2)), 3), OpCount("aten::mm", ((4, 2), (2, 2)), 1)], "aten::mm")
        4
    """
    return sum(op.count for op in ops if op.name == name)


def gemm_counts(ops: Sequence[OpCount]) -> Counter:
    """Matrix multiplies among profiled ops (``aten::addmm``, ``aten::mm``), by shape ``(m, k, n)`` of
    ``(m×k) @ (k×n)``.

    Example:
        >>> gemm_counts([OpCount("aten::addmm", ((12,), (5, 2), (2, 12)), 1), OpCount("aten::mm", ((1, 3), (3, 12)), 5)])
        Counter({(1, 3, 12): 5, (5, 2, 12): 1})
    """
    counts: Counter = Counter()
    for op in ops:
        mats = [s for s in op.shapes if len(s) == 2]
        if op.name in ("aten::addmm", "aten::mm") and len(mats) >= 2:
            (m, k), (_, n) = mats[-2], mats[-1]
            counts[(m, k, n)] += op.count
    return counts


def describe_gemms(ops: Sequence[OpCount]) -> str:
    """One line: how many matrix multiplies ran, and of which shapes (largest first).

    Example:
        >>> describe_gemms([OpCount("aten::addmm", ((12,), (5, 2), (2, 12)), 1), OpCount("aten::mm", ((1, 3), (3, 12)), 5)])
        '6 matrix multiplies: 1 × (5×2 @ 2×12), 5 × (1×3 @ 3×12)'
    """
    counts = gemm_counts(ops)
    parts = [f"{n} × ({m}×{k} @ {k}×{o})" for (m, k, o), n in sorted(counts.items(), key=lambda kv: -kv[0][0] * kv[0][1])]
    return f"{sum(counts.values())} matrix multiplies" + (": " + ", ".join(parts) if parts else "")


def operator_counts(fn: Callable[[], object], prefix: str = "aten::") -> Counter:
    """Calls of each operator ``fn()`` dispatches, by name over all input shapes (``fn`` runs once first).

    A Python loop over T time steps dispatches a few operators per step; a fused kernel dispatches a fixed
    number whatever T is. Comparing the counts at two lengths tells the two apart without a clock. Nested
    operators count too (``aten::linear`` and the ``aten::addmm`` it calls are two).

    Args:
        fn: a zero-argument callable, e.g. ``lambda: model(x)``.
        prefix: keep only operator names starting with it (``""`` keeps every profiler event).

    Returns:
        ``Counter({operator name: calls})``.

    Example:
        >>> counts = operator_counts(lambda: torch.ones(3).add(1).mul(2))
        >>> counts["aten::add"], counts["aten::mul"]
        (1, 1)
    """
    if not isinstance(prefix, str):
        raise LabInputError(f"prefix must be a string such as 'aten::'; got {type(prefix).__name__}.")
    counts: Counter = Counter()
    for op in profile_ops(fn, prefixes=(prefix,) if prefix else ()):
        counts[op.name] += op.count
    return counts


def operator_calls(fn: Callable[[], object], prefix: str = "aten::") -> int:
    """The total number of operators ``fn()`` dispatches (the sum of ``operator_counts``).

    Example:
        >>> operator_calls(lambda: torch.ones(3).add(1)) >= 2   # ones (and what it calls) and add
        True
    """
    return sum(operator_counts(fn, prefix).values())


def dispatch_counts(fn: Callable[..., object], *args: object, **kwargs: object) -> Counter:
    """Run ``fn(*args, **kwargs)`` exactly once and count every ATen operator it dispatches, backward included.

    A ``TorchDispatchMode`` sees each operator once per call, without the profiler: no warm-up run (so a
    training step with an optimizer is taken once, as the caller expects), no profiler start-up. It sees
    the operators ``backward()`` runs (``aten::tanh_backward`` once per RNN step a backward pass walks
    through) and the forward operators that ``torch.utils.checkpoint`` runs again during backward. The
    counts do not depend on the machine's speed or load. Only leaf operators are counted (``aten::linear``
    shows as the ``aten::addmm`` it decomposes into), unlike ``operator_counts``.

    Args:
        fn: the computation (a function from the notebook, a lambda, a module).
        *args, **kwargs: passed to ``fn``.

    Returns:
        ``Counter({"aten::name": calls})``.

    Raises:
        LabInputError: for a non-callable ``fn``, or when ``fn`` fails (the message names its error and line).

    Example:
        >>> w = torch.ones(3, requires_grad=True)
        >>> counts = dispatch_counts(lambda: torch.tanh(w * 2).sum().backward())
        >>> counts["aten::tanh"], counts["aten::tanh_backward"]
        (1, 1)
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    require_callable(fn, "fn", "a function or module to run")
    counts: Counter = Counter()

    class _Counting(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts[f"aten::{func.overloadpacket.__name__}"] += 1
            return func(*args, **(kwargs or {}))

    with _Counting():
        run_specimen(fn, "the function dispatch_counts runs", *args, **kwargs)
    return counts
