"""Count the operators a call dispatches, with ``torch.profiler``: deterministic evidence of per-step work.

A timing on a busy machine is noisy; the number of ATen operators one call dispatches is not. A Python loop
over T time steps dispatches a few operators per step; a fused kernel may dispatch a fixed number whatever T
is. Comparing the counts at two lengths tells the two apart without a clock.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from helpers.validation import LabInputError


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while profiling: the profiler's C++ side may log timestamped
    start/stop lines there, which a notebook kernel would otherwise copy into the cell's output."""
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


def operator_counts(fn: Callable[[], object], prefix: str = "aten::") -> Counter:
    """Run ``fn()`` once under ``torch.profiler`` and count the operators it dispatches, by name.

    ``fn`` runs once before profiling, so one-time set-up does not count. Nested operators count too
    (``aten::linear`` and the ``aten::addmm`` it calls are two).

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
    if not callable(fn):
        raise LabInputError(f"fn must be a zero-argument callable (e.g. lambda: model(x)); got {type(fn).__name__}.")
    if not isinstance(prefix, str):
        raise LabInputError(f"prefix must be a string such as 'aten::'; got {type(prefix).__name__}.")
    from torch.profiler import ProfilerActivity, profile

    fn()
    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return Counter({event.key: event.count for event in prof.key_averages() if event.key.startswith(prefix)})


def operator_calls(fn: Callable[[], object], prefix: str = "aten::") -> int:
    """The total number of operators ``fn()`` dispatches (the sum of ``operator_counts``).

    Example:
        >>> operator_calls(lambda: torch.ones(3).add(1)) >= 2   # ones (and what it calls) and add
        True
    """
    return sum(operator_counts(fn, prefix).values())
