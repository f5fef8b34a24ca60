"""What a computation keeps alive for backward, measured with ``saved_tensors_hooks``."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from helpers.validation import LabInputError, run_specimen


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
        run_specimen(fn, "saved_for_backward's fn", *args, **kwargs)
    return saved


class _Held:
    """What the pack hook hands autograd: the tensor, and a callback run when the graph lets go of it.

    The tensor is detached: same storage, but no reference back to the graph (a saved output holding its
    own grad_fn would form a cycle that only the garbage collector frees, hiding when the graph dies).
    """

    __slots__ = ("tensor", "_release")

    def __init__(self, tensor: torch.Tensor, release: Callable[[], None]):
        self.tensor, self._release = tensor.detach(), release

    def __del__(self) -> None:
        self._release()


@dataclass
class LiveSaved:
    """Tensors saved for backward that are still held by a graph; fills in inside ``track_live_saved``.

    Attributes:
        peak_bytes: the most bytes (distinct storages) held for backward at once.
        peak_tensors: the most saved tensors held at once.
        ignored_bytes: bytes of the storages passed as ``ignore`` (inputs, weights) seen saved; they are
            alive anyway, so the other figures exclude them.
    """

    peak_bytes: int = 0
    peak_tensors: int = 0
    ignored_bytes: int = 0
    _live: dict = field(default_factory=dict, repr=False)
    _bytes: int = 0
    _tensors: int = 0
    _ignore: set = field(default_factory=set, repr=False)
    _ignored_seen: set = field(default_factory=set, repr=False)

    @property
    def live_bytes(self) -> int:
        """Bytes held for backward now: 0 once every graph recorded in the block was freed."""
        return self._bytes

    @property
    def live_tensors(self) -> int:
        """Saved tensors held for backward now."""
        return self._tensors

    def _pack(self, tensor: torch.Tensor) -> _Held:
        storage = tensor.untyped_storage()
        key = (tensor.device, storage.data_ptr())
        if key in self._ignore:
            if key not in self._ignored_seen:
                self._ignored_seen.add(key)
                self.ignored_bytes += storage.nbytes()
            return _Held(tensor, lambda: None)
        count, size = self._live.get(key, (0, storage.nbytes()))
        if count == 0:
            self._bytes += size
        self._live[key] = (count + 1, size)
        self._tensors += 1
        self.peak_bytes = max(self.peak_bytes, self._bytes)
        self.peak_tensors = max(self.peak_tensors, self._tensors)
        return _Held(tensor, lambda: self._release(key))

    def _release(self, key: tuple) -> None:
        count, size = self._live[key]
        self._tensors -= 1
        if count == 1:
            del self._live[key]
            self._bytes -= size
        else:
            self._live[key] = (count - 1, size)


@contextmanager
def track_live_saved(ignore: Sequence[torch.Tensor] = ()) -> Iterator[LiveSaved]:
    """Follow what autograd holds for backward inside the block: now, and at its peak.

    Unlike ``record_saved_tensors`` (everything ever saved), this also sees saved tensors being
    released when ``backward`` frees a graph, or when nothing refers to a graph any more. So it tells
    what is held *at once* (a loop that calls backward every step), and what a forgotten reference
    keeps alive (a running ``total_loss`` tensor).

    Args:
        ignore: tensors whose storages are alive anyway (the input, the weights); not counted. A single
            tensor is accepted too.

    Yields:
        A ``LiveSaved`` that updates while the block runs (and after it, as graphs are freed).

    Example:
        >>> w = torch.ones(3, 3, requires_grad=True)
        >>> with track_live_saved(ignore=[w]) as held:
        ...     loss = (torch.ones(3) @ w).tanh().sum()
        ...     before = held.live_bytes             # the vector (for w's gradient) and tanh's output
        ...     loss.backward()                      # frees the graph and what it saved
        >>> before, held.peak_bytes, held.live_bytes
        (24, 24, 0)
    """
    if isinstance(ignore, torch.Tensor):
        ignore = [ignore]
    if isinstance(ignore, (str, bytes)) or not isinstance(ignore, Iterable):
        raise LabInputError(f"ignore must be a list of tensors, e.g. [x, *model.parameters()]; got "
                            f"{type(ignore).__name__}.")
    ignore = list(ignore)
    for i, tensor in enumerate(ignore):
        if not isinstance(tensor, torch.Tensor):
            raise LabInputError(f"ignore[{i}] must be a tensor (an input or a weight); got {type(tensor).__name__}.")
    tracker = LiveSaved()
    tracker._ignore = {(t.device, t.untyped_storage().data_ptr()) for t in ignore}
    with torch.autograd.graph.saved_tensors_hooks(tracker._pack, lambda held: held.tensor):
        yield tracker
