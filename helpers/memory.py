"""What a computation keeps alive for backward, measured with ``saved_tensors_hooks``."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from helpers.validation import LabInputError


@dataclass
class SavedTensors:
    """Tensors that autograd saved for backward while a block ran.

    Attributes:
        count: how many times a tensor was saved (one tensor saved by two ops counts twice).
        bytes: total size of the distinct storages behind them; each storage counted once,
            so a weight saved at every time step adds its size only once.
        storages: number of distinct storages.
    """

    count: int = 0
    bytes: int = 0
    storages: int = 0
    _seen: set = field(default_factory=set, repr=False)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.count += 1
        storage = tensor.untyped_storage()
        key = (tensor.device, storage.data_ptr())
        if key not in self._seen:
            self._seen.add(key)
            self.storages += 1
            self.bytes += storage.nbytes()
        return tensor

    def __str__(self) -> str:
        return f"{self.count} saved tensors in {self.storages} storages, {self.bytes:,} bytes"


@contextmanager
def record_saved_tensors() -> Iterator[SavedTensors]:
    """Record every tensor autograd saves for backward inside the ``with`` block.

    Yields:
        A ``SavedTensors`` that fills in while the block runs.

    Example:
        >>> w = torch.ones(3, 3, requires_grad=True)
        >>> with record_saved_tensors() as saved:
        ...     y = (torch.ones(3) @ w).tanh()
        >>> saved.count   # the product saves the vector (w's gradient needs it); tanh saves its output
        2
    """
    saved = SavedTensors()
    with torch.autograd.graph.saved_tensors_hooks(saved._pack, lambda tensor: tensor):
        yield saved


def saved_for_backward(fn: Callable[..., object], *args: object, **kwargs: object) -> SavedTensors:
    """Run ``fn(*args, **kwargs)`` and report what it saved for backward.

    The result of ``fn`` is discarded after measuring, so its graph is freed.

    Args:
        fn: the computation, e.g. a module or a function returning a loss.
        *args, **kwargs: its inputs.

    Returns:
        ``SavedTensors``.

    Example:
        >>> layer = torch.nn.Linear(4, 4)
        >>> saved_for_backward(layer, torch.ones(2, 4)).count
        1
    """
    if not callable(fn):
        raise LabInputError(f"fn must be callable (a module or function); got {type(fn).__name__}.")
    if not torch.is_grad_enabled():
        raise LabInputError("saved_for_backward was called with gradients disabled (inside torch.no_grad()), "
                            "so nothing would be saved. Call it outside no_grad.")
    with record_saved_tensors() as saved:
        fn(*args, **kwargs)
    return saved
