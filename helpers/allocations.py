"""The tensor memory PyTorch operators allocate inside a block: how many tensors, how many bytes, the peak.

Seen through a ``TorchDispatchMode``, so it counts the same on every run and every machine (no clock, no
allocator statistics) and sees backward too: ``loss.backward()`` inside the block runs its operators there.
A tensor counts as allocated when an operator returns it on a storage none of the operator's inputs had;
it is freed when that storage dies (views and in-place results allocate nothing). Memory that a kernel
takes for itself without returning it (a BLAS workspace) is not seen. To count the operators themselves,
use ``helpers.profiling``.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from helpers.validation import LabInputError, run_specimen


@dataclass
class Allocations:
    """Tensors allocated inside ``record_allocations``; fills in while the block runs.

    Attributes:
        count: tensors allocated (one per new storage).
        bytes: their total size in bytes: the memory the block asked for, all of it.
        peak_bytes: the most bytes of them alive at once (what existed before the block is not counted).
        sizes: the size in bytes of each allocation, in order.
    """

    count: int = 0
    bytes: int = 0
    peak_bytes: int = 0
    sizes: list = field(default_factory=list, repr=False)
    _live: int = field(default=0, repr=False)
    _tracked: set = field(default_factory=set, repr=False)

    @property
    def live_bytes(self) -> int:
        """Bytes allocated in the block that are still alive now."""
        return self._live

    def at_least(self, nbytes: int) -> int:
        """How many allocations were ``nbytes`` or larger (e.g. full-size copies of an input).

        Example:
            >>> with record_allocations() as seen:
            ...     a, b = torch.zeros(100), torch.zeros(10)
            >>> seen.at_least(400), seen.at_least(1)
            (1, 2)
        """
        return sum(1 for size in self.sizes if size >= nbytes)

    def _allocated(self, storage: torch.UntypedStorage) -> None:
        key, size = id(storage), storage.nbytes()
        self._tracked.add(key)
        self.count += 1
        self.bytes += size
        self.sizes.append(size)
        self._live += size
        self.peak_bytes = max(self.peak_bytes, self._live)
        # Storages keep one Python object for their whole life, so this fires when the memory is freed.
        weakref.finalize(storage, self._freed, key, size)

    def _freed(self, key: int, size: int) -> None:
        self._tracked.discard(key)
        self._live -= size

    def __str__(self) -> str:
        return f"{self.count} tensors allocated, {self.bytes:,} bytes in all, peak {self.peak_bytes:,} bytes alive at once"


def _storages(tree: object) -> list[torch.UntypedStorage]:
    found = []
    for leaf in tree_flatten(tree)[0]:
        if isinstance(leaf, torch.Tensor) and leaf.layout == torch.strided:
            try:
                found.append(leaf.untyped_storage())
            except (RuntimeError, NotImplementedError):  # tensors without a storage of their own
                pass
    return found


class _Recorder(TorchDispatchMode):
    def __init__(self, record: Allocations):
        super().__init__()
        self.record = record

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(s) for s in _storages((args, kwargs))}
        for storage in _storages(out):
            key = id(storage)
            if key not in inputs and key not in self.record._tracked:
                inputs.add(key)  # an op returning two views of one new storage allocated once
                self.record._allocated(storage)
        return out


@contextmanager
def record_allocations() -> Iterator[Allocations]:
    """Record the tensors allocated inside the ``with`` block (forward and backward).

    Yields:
        An ``Allocations`` that fills in while the block runs; ``live_bytes`` keeps falling afterwards as
        tensors made in the block are freed.

    Example:
        >>> w = torch.ones(256, requires_grad=True)            # 1 KiB, made before the block: not counted
        >>> with record_allocations() as seen:
        ...     loss = (w * 2).sum()                          # the product: 1 KiB
        ...     loss.backward()                               # w's gradient: 1 KiB
        >>> seen.at_least(1024), seen.peak_bytes >= 1024
        (2, True)
    """
    record = Allocations()
    with _Recorder(record):
        yield record


def allocations_of(fn: Callable[..., object], *args: object, **kwargs: object) -> Allocations:
    """Run ``fn(*args, **kwargs)`` under ``record_allocations``; its result is dropped (and so freed).

    Args:
        fn: the computation, e.g. ``lambda: model(x).sum().backward()`` for forward and backward.
        *args, **kwargs: its inputs, made before the call (so they are not counted).

    Returns:
        ``Allocations``: tensors and bytes allocated, and the peak alive at once.

    Example:
        >>> x = torch.ones(1000)
        >>> allocations_of(lambda v: v.view(10, 100)[0] * 3, x).bytes    # the view is free; the product is 100 floats
        400
    """
    if not callable(fn):
        raise LabInputError(f"fn must be callable (a function or module); got {type(fn).__name__}. "
                            "Wrap a statement in a lambda: allocations_of(lambda: loss.backward()).")
    with record_allocations() as record:
        run_specimen(fn, "allocations_of's fn", *args, **kwargs)
    return record
