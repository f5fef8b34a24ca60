"""Which PyTorch operators a computation runs, forward and backward, counted: deterministic evidence of work."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from helpers.validation import require_callable, run_specimen


def count_ops(fn: Callable[..., object], *args: object, **kwargs: object) -> Counter:
    """Run ``fn(*args, **kwargs)`` and count every ATen operator it executes, including inside ``backward()``.

    A ``TorchDispatchMode`` sees each operator once per call, so the counts do not depend on the
    machine's speed or load: ``tanh_backward`` runs once per RNN step a backward pass walks through,
    ``addmm`` once per ``nn.Linear`` call, and a recomputation (``torch.utils.checkpoint``) shows up as
    repeated forward operators.

    Args:
        fn: the computation (a function from the notebook, a lambda, a module).
        *args, **kwargs: passed to ``fn``.

    Returns:
        ``collections.Counter`` mapping operator names without overload (``"tanh"``,
        ``"tanh_backward"``, ``"addmm"``, ...) to how often they ran.

    Raises:
        LabInputError: for a non-callable ``fn``, or when ``fn`` fails (the message names its error and line).

    Example:
        >>> w = torch.ones(3, requires_grad=True)
        >>> counts = count_ops(lambda: torch.tanh(w * 2).sum().backward())
        >>> counts["tanh"], counts["tanh_backward"]
        (1, 1)
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    require_callable(fn, "fn", "a function or module to run")
    counts: Counter = Counter()

    class _Counting(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    with _Counting():
        run_specimen(fn, "the function count_ops runs", *args, **kwargs)
    return counts
