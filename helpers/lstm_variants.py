"""Three LSTMs with the same weights: a loop over ``nn.LSTMCell``, a loop with the input projection hoisted
out of it, and ``nn.LSTM``; plus the profiling, FLOP and timing tools notebook 02 measures them with.

All three are ``nn.Module``s whose parameters carry ``nn.LSTM``'s names (``weight_ih_l0``, ``weight_hh_l0``,
``bias_ih_l0``, ``bias_hh_l0``), take ``x`` of shape (batch, time, features) and return what ``nn.LSTM(...,
batch_first=True)`` returns: ``out`` (batch, time, hidden) and ``(h_n, c_n)``, each (1, batch, hidden). So
``helpers.gradients.compare_gradients`` can compare them gradient by gradient.
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from helpers.device import available_devices, pick_device
from helpers.timing import (MODES, Builder, Experiment, TimingRecord, label_measured_sizes, plot_timings, speedups,
                            time_callable, time_implementations)
from helpers.validation import LabInputError, require_choice, require_positive_int, require_tensor
from helpers.widgets import Panel

PARAM_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
CELL_LOOP, HOISTED, NN_LSTM, COMPILED = "LSTMCell loop", "hoisted loop", "nn.LSTM", "compiled cell loop"
IMPLEMENTATIONS = (CELL_LOOP, HOISTED, NN_LSTM)  # the default set; COMPILED is opt-in (compile time)
BASELINE = NN_LSTM
SCALES = ("notebook", "reference")


def _check_input(x: object, input_size: int) -> torch.Tensor:
    x = require_tensor(x, "x", ndim=3, layout="(batch, time, features)")
    if x.shape[2] != input_size:
        raise LabInputError(f"x has {x.shape[2]} features per step but the LSTM expects input_size={input_size}; "
                            f"x must be (batch, time, {input_size}).")
    if x.shape[1] < 1:
        raise LabInputError("x has no time steps (shape[1] == 0); give it at least one.")
    return x


def _initial_state(x: torch.Tensor, hidden_size: int, hx: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, c)`` of shape (batch, hidden) from ``hx`` given as ``nn.LSTM`` takes it, (1, batch, hidden) each."""
    if hx is None:
        zeros = x.new_zeros(x.shape[0], hidden_size)
        return zeros, zeros
    if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
        raise LabInputError("hx must be a pair (h_0, c_0), each of shape (1, batch, hidden), as nn.LSTM takes it.")
    want = (1, x.shape[0], hidden_size)
    for name, t in zip(("h_0", "c_0"), hx):
        require_tensor(t, name)
        if tuple(t.shape) != want:
            raise LabInputError(f"{name} must have shape {want} (layers, batch, hidden); got {tuple(t.shape)}.")
    return hx[0][0], hx[1][0]


class _SharedWeights(nn.Module):
    """The four LSTM parameters under ``nn.LSTM``'s names, initialised as ``nn.LSTM`` does."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = require_positive_int(input_size, "input_size")
        self.hidden_size = require_positive_int(hidden_size, "hidden_size")
        four_h = 4 * hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(four_h, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(four_h, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(four_h))
        self.bias_hh_l0 = nn.Parameter(torch.empty(four_h))
        bound = 1 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class CellLoopLSTM(_SharedWeights):
    """A Python loop over ``nn.LSTMCell``: one cell call (two small matrix multiplies) per time step.

    The cell's parameters are tied to this module's, so its parameter names are ``nn.LSTM``'s.

    Args:
        input_size: features per time step.
        hidden_size: size of h and c.

    Example:
        >>> model = CellLoopLSTM(3, 5)
        >>> out, (h_n, c_n) = model(torch.randn(2, 7, 3))
        >>> tuple(out.shape), tuple(h_n.shape), [name for name, _ in model.named_parameters()]
        ((2, 7, 5), (1, 2, 5), ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0'])
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.cell = nn.LSTMCell(input_size, hidden_size)
        self.cell.weight_ih, self.cell.weight_hh = self.weight_ih_l0, self.weight_hh_l0  # tie, do not copy
        self.cell.bias_ih, self.cell.bias_hh = self.bias_ih_l0, self.bias_hh_l0
        self.step: Callable = self.cell

    def forward(self, x: torch.Tensor, hx: object = None):
        x = _check_input(x, self.input_size)
        h, c = _initial_state(x, self.hidden_size, hx)
        outputs = []
        # unbind: one autograd node for all steps. Indexing x[:, t] would add T nodes, and each one's backward
        # writes its slice into a zero tensor the size of all of x: O(T^2) work over the backward pass.
        for x_t in x.unbind(1):
            h, c = self.step(x_t, (h, c))
            outputs.append(h)
        return torch.stack(outputs, 1), (h.unsqueeze(0), c.unsqueeze(0))


class HoistedLSTM(_SharedWeights):
    """The same LSTM with the input projection hoisted out of the loop: one matrix multiply for all
    time steps (both biases folded in), then a loop over the recurrent part ``h @ W_hh^T`` only.

    Example:
        >>> model = HoistedLSTM(3, 5)
        >>> out, (h_n, c_n) = model(torch.randn(2, 7, 3))
        >>> torch.equal(out[:, -1], h_n[0])
        True
    """

    def forward(self, x: torch.Tensor, hx: object = None):
        x = _check_input(x, self.input_size)
        h, c = _initial_state(x, self.hidden_size, hx)
        # one GEMM over batch*time rows instead of T GEMMs over batch rows
        gates_x = nn.functional.linear(x, self.weight_ih_l0, self.bias_ih_l0 + self.bias_hh_l0)
        w_hh_t = self.weight_hh_l0.t()
        outputs = []
        for g_x in gates_x.unbind(1):
            gates = torch.addmm(g_x, h, w_hh_t)  # the part that depends on h stays in the loop
            i, f, g, o = gates.chunk(4, 1)  # PyTorch's gate order: input, forget, cell, output
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, 1), (h.unsqueeze(0), c.unsqueeze(0))


class NNLSTM(nn.LSTM):
    """``nn.LSTM(input_size, hidden_size, batch_first=True)`` with the lab's input checks (oneDNN on CPU,
    cuDNN on GPU).

    Example:
        >>> model = NNLSTM(3, 5)
        >>> tuple(model(torch.randn(2, 7, 3))[0].shape)
        (2, 7, 5)
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(require_positive_int(input_size, "input_size"),
                         require_positive_int(hidden_size, "hidden_size"), batch_first=True)

    def forward(self, x: torch.Tensor, hx: object = None):
        x = _check_input(x, self.input_size)
        if hx is not None:
            _initial_state(x, self.hidden_size, hx)
        return super().forward(x, hx)


def copy_weights(source: nn.Module, target: nn.Module) -> nn.Module:
    """Copy the four LSTM parameters from ``source`` into ``target`` (in place) and return ``target``.

    Args:
        source, target: any of the lab's LSTMs, or a plain single-layer ``nn.LSTM``.

    Returns:
        ``target``, now with ``source``'s values.

    Example:
        >>> a, b = CellLoopLSTM(3, 4), NNLSTM(3, 4)
        >>> torch.equal(copy_weights(a, b).weight_hh_l0, a.weight_hh_l0)
        True
    """
    src, dst = dict(source.named_parameters()), dict(target.named_parameters())
    for name in PARAM_NAMES:
        if name not in src or name not in dst:
            raise LabInputError(f"both modules need the parameter {name!r}; source has {sorted(src)}, "
                                f"target has {sorted(dst)}. Use single-layer, unidirectional LSTMs.")
        if src[name].shape != dst[name].shape:
            raise LabInputError(f"{name} has shape {tuple(src[name].shape)} in source but "
                                f"{tuple(dst[name].shape)} in target; build both with the same sizes.")
    with torch.no_grad():
        for name in PARAM_NAMES:
            dst[name].copy_(src[name])
    return target


def make_compiled_cell_loop(input_size: int, hidden_size: int, backend: str = "inductor") -> CellLoopLSTM:
    """A ``CellLoopLSTM`` whose cell step is ``torch.compile``-d; the Python loop over time stays.

    Compilation happens on the first call (seconds); time it separately with ``first_call_seconds``.

    Args:
        backend: the ``torch.compile`` backend (``"inductor"`` generates fused kernels; ``"eager"`` only traces).

    Example:
        >>> from helpers.exercises import check_raises
        >>> check_raises(lambda: make_compiled_cell_loop(3, 4, backend="tvm"), LabInputError, "unknown backend")
        ✅ unknown backend: raised LabInputError: backend must be one of 'inductor', 'eager', 'aot_eager'; got 'tvm'.
    """
    require_choice(backend, "backend", ("inductor", "eager", "aot_eager"))
    model = CellLoopLSTM(input_size, hidden_size)
    model.step = torch.compile(model.cell, backend=backend, dynamic=False)
    return model


_FACTORIES: dict[str, Callable[[int, int], nn.Module]] = {
    CELL_LOOP: CellLoopLSTM, HOISTED: HoistedLSTM, NN_LSTM: NNLSTM, COMPILED: make_compiled_cell_loop}


def _check_kinds(kinds: object) -> None:
    if isinstance(kinds, str) or not isinstance(kinds, (list, tuple)) or not kinds:
        raise LabInputError(f"kinds must be a non-empty list of names from {list(_FACTORIES)}; got {kinds!r}.")
    for kind in kinds:
        require_choice(kind, "kind", list(_FACTORIES))


def make_family(input_size: int, hidden_size: int, kinds: Sequence[str] = IMPLEMENTATIONS, seed: int = 0,
                dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """Build several LSTM implementations with identical weights (copied from a seeded ``nn.LSTM``).

    Args:
        input_size, hidden_size: the LSTM's sizes.
        kinds: names from ``IMPLEMENTATIONS`` (and ``COMPILED``, opt-in).
        seed: seeds the shared weights.
        dtype, device: where the models live.

    Returns:
        ``{kind: module}`` in the order of ``kinds``.

    Example:
        >>> family = make_family(3, 4)
        >>> list(family)
        ['LSTMCell loop', 'hoisted loop', 'nn.LSTM']
        >>> torch.equal(family["LSTMCell loop"].weight_ih_l0, family["nn.LSTM"].weight_ih_l0)
        True
    """
    _check_kinds(kinds)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        source = NNLSTM(input_size, hidden_size)
    return {kind: copy_weights(source, _FACTORIES[kind](input_size, hidden_size)).to(device=device, dtype=dtype)
            for kind in kinds}


def first_call_seconds(model: nn.Module, x: torch.Tensor) -> float:
    """Wall-clock seconds of one call (for a compiled model's first call: mostly compilation).

    A one-off cost has no median; this is a single ``time.perf_counter`` reading.

    Example:
        >>> first_call_seconds(HoistedLSTM(2, 3), torch.randn(1, 4, 2)) > 0
        True
    """
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    model(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- profiling

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
    (T, B, I) versus T of them on (B, H)).

    Args:
        fn: a zero-argument callable, e.g. ``lambda: model(x)``.
        prefixes: keep only names starting with one of these (``()`` keeps all; default ``("aten::",)`` for
            operators, all for kernels).
        device: ``"cuda"`` also records GPU activity.
        kernels: count GPU kernels by name (no shapes) instead of CPU operators.

    Returns:
        A list of ``OpCount``, most frequent first (ties by name).

    Example:
        >>> model = HoistedLSTM(2, 3); x = torch.randn(1, 5, 2)
        >>> for op in profile_ops(lambda: model(x), prefixes=("aten::linear", "aten::addmm")): print(op)
        aten::addmm on (1, 12) (1, 3) (3, 12) ×5
        aten::addmm on (12,) (5, 2) (2, 12) ×1
        aten::linear on (1, 5, 2) (12, 2) (12,) ×1
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
    fn()
    with _native_stderr_silenced(), profile(activities=activities, record_shapes=not kernels) as prof:
        fn()
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


# -------------------------------------------------------------------------------------------------- FLOPs

def lstm_flops(batch: int, length: int, input_size: int, hidden_size: int, mode: str = "forward") -> float:
    """Floating-point operations of an LSTM layer's matrix multiplies (the element-wise gate math is ignored).

    Forward: ``2 * batch * length * 4H * (input_size + H)``. Backward needs two products of the same size
    (gradients for the inputs and for the weights), so forward+backward counts three times the forward.

    Example:
        >>> lstm_flops(1, 1, 1, 1)
        16.0
        >>> lstm_flops(1, 1, 1, 1, "forward+backward")
        48.0
    """
    for value, name in ((batch, "batch"), (length, "length"), (input_size, "input_size"), (hidden_size, "hidden_size")):
        require_positive_int(value, name)
    require_choice(mode, "mode", MODES)
    forward = 2.0 * batch * length * 4 * hidden_size * (input_size + hidden_size)
    return forward * (3 if mode == "forward+backward" else 1)


def matmul_peak_gflops(n: int = 1024, device: str = "cpu", threads: int = 2, min_run_time: float = 0.1) -> float:
    """This machine's throughput on one large float32 matrix multiply (n×n @ n×n), in GFLOP/s.

    It is the practical ceiling the LSTM's GFLOP/s are compared against, measured in the same run.

    Example:
        >>> matmul_peak_gflops(64, threads=1, min_run_time=0.01) > 0
        True
    """
    require_positive_int(n, "n", maximum=8192)
    dev = pick_device(device)
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    median, _, _ = time_callable(lambda: a @ b, threads=threads, min_run_time=min_run_time)
    return 2.0 * n**3 / median / 1e9


def record_flops(record: TimingRecord, fixed: Mapping[str, object]) -> float:
    """FLOPs of the LSTM call a timing record measured, from the experiment's ``fixed`` sizes.

    ``fixed["swept"]`` names what ``record.size`` is: ``"length"`` or ``"hidden_size"`` (input = hidden).

    Example:
        >>> rec = TimingRecord("nn.LSTM", 10, "forward", 1e-3, 0.0, 5, 2, "cpu")
        >>> record_flops(rec, {"swept": "length", "batch": 1, "input_size": 1, "hidden_size": 1})
        160.0
    """
    swept = fixed.get("swept")
    if swept == "length":
        dims = (fixed["batch"], record.size, fixed["input_size"], fixed["hidden_size"])
    elif swept == "hidden_size":
        dims = (fixed["batch"], fixed["length"], record.size, record.size)
    else:
        raise LabInputError(f"fixed['swept'] must be 'length' or 'hidden_size'; got {swept!r}.")
    return lstm_flops(*(int(d) for d in dims), mode=record.mode)


def gflops_table(records: Sequence[TimingRecord], fixed: Mapping[str, object], peak_gflops: float,
                 size_name: str = "size") -> str:
    """Achieved GFLOP/s per record, and as a percentage of the measured large-matmul peak.

    Example:
        >>> rec = TimingRecord("nn.LSTM", 10, "forward", 1e-6, 0.0, 5, 2, "cpu")
        >>> print(gflops_table([rec], {"swept": "length", "batch": 1, "input_size": 1, "hidden_size": 1}, 1.0))
        mode               size  implementation         GFLOP/s  % of peak
        forward              10  nn.LSTM                   0.16         16
    """
    if peak_gflops <= 0:
        raise LabInputError("peak_gflops must be positive; measure it with matmul_peak_gflops().")
    lines = [f"{'mode':<17}{size_name:>6}  {'implementation':<20}{'GFLOP/s':>10}  % of peak"]
    for r in sorted(records, key=lambda r: (r.mode, r.size, r.implementation)):
        g = record_flops(r, fixed) / r.median_s / 1e9
        lines.append(f"{r.mode:<17}{r.size:>6}  {r.implementation:<20}{g:>10.2f}  {100 * g / peak_gflops:>9.0f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- timing

def _input(batch: int, length: int, input_size: int, device: torch.device, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, input_size, generator=gen).to(device)


def length_builders(batch: int, input_size: int, hidden_size: int,
                    kinds: Sequence[str] = IMPLEMENTATIONS) -> dict[str, Builder]:
    """Timing builders over sequence length: ``builder(T, device)`` returns ``lambda: model(x)``.

    Every implementation gets the same weights and the same input.

    Example:
        >>> fn = length_builders(2, 3, 4)["nn.LSTM"](5, torch.device("cpu"))
        >>> tuple(fn()[0].shape)
        (2, 5, 4)
    """
    require_positive_int(batch, "batch")

    def builder_for(kind: str) -> Builder:
        def build(length: int, device: torch.device) -> Callable[[], object]:
            model = make_family(input_size, hidden_size, [kind], device=device)[kind]
            x = _input(batch, length, input_size, device)
            return lambda: model(x)
        return build

    _check_kinds(kinds)
    require_positive_int(input_size, "input_size")
    require_positive_int(hidden_size, "hidden_size")
    return {kind: builder_for(kind) for kind in kinds}


def hidden_builders(batch: int, length: int, kinds: Sequence[str] = IMPLEMENTATIONS) -> dict[str, Builder]:
    """Timing builders over hidden size H (input size = H): ``builder(H, device)`` returns ``lambda: model(x)``.

    Example:
        >>> fn = hidden_builders(2, 5)["hoisted loop"](8, torch.device("cpu"))
        >>> tuple(fn()[0].shape)
        (2, 5, 8)
    """
    require_positive_int(batch, "batch")
    require_positive_int(length, "length")

    def builder_for(kind: str) -> Builder:
        def build(hidden: int, device: torch.device) -> Callable[[], object]:
            model = make_family(hidden, hidden, [kind], device=device)[kind]
            x = _input(batch, length, hidden, device)
            return lambda: model(x)
        return build

    _check_kinds(kinds)
    return {kind: builder_for(kind) for kind in kinds}


def index_vs_unbind_builders(batch: int = 4, features: int = 8) -> dict[str, Builder]:
    """Builders over T for a loop that reads every step of ``x``: by ``x[:, t]`` or by ``x.unbind(1)``.

    Each callable returns ``stack(steps).tanh()`` so backward flows through every step to ``x``.

    Example:
        >>> b = index_vs_unbind_builders(2, 3)
        >>> torch.equal(b["x[:, t] indexing"](4, torch.device("cpu"))(), b["unbind"](4, torch.device("cpu"))())
        True
    """
    require_positive_int(batch, "batch")
    require_positive_int(features, "features")

    def indexing(length: int, device: torch.device) -> Callable[[], object]:
        x = _input(batch, length, features, device).requires_grad_()
        return lambda: torch.stack([x[:, t] * 2 for t in range(x.shape[1])], 1).tanh()

    def unbinding(length: int, device: torch.device) -> Callable[[], object]:
        x = _input(batch, length, features, device).requires_grad_()
        return lambda: torch.stack([x_t * 2 for x_t in x.unbind(1)], 1).tanh()

    return {"x[:, t] indexing": indexing, "unbind": unbinding}


def batch_vs_time_builders(rows: int, input_size: int, hidden_size: int) -> dict[str, Builder]:
    """Two LSTM calls with the same FLOPs: ``rows`` sequences of one step, or one sequence of ``rows`` steps.

    If ``nn.LSTM`` ran time steps in parallel the way it runs a batch, both would take about as long.
    The builders ignore the size they are given (use ``sizes=(rows,)``).

    Example:
        >>> b = batch_vs_time_builders(6, 2, 3)
        >>> [tuple(b[k](6, torch.device("cpu"))()[0].shape) for k in b]
        [(6, 1, 3), (1, 6, 3)]
    """
    require_positive_int(rows, "rows")

    def build(batch: int, length: int) -> Builder:
        def builder(_size: int, device: torch.device) -> Callable[[], object]:
            model = make_family(input_size, hidden_size, [NN_LSTM], device=device)[NN_LSTM]
            x = _input(batch, length, input_size, device)
            return lambda: model(x)
        return builder

    return {f"batch {rows} × 1 step": build(rows, 1), f"batch 1 × {rows} steps": build(1, rows)}


def standard_experiments(scale: str = "notebook") -> list[Experiment]:
    """The timing experiments of notebook 02, at notebook scale (small, fast) or reference scale (``make bench``).

    Names: ``nb02.length_sweep`` (over sequence length), ``nb02.hidden_sweep`` (over hidden size, input =
    hidden), ``nb02.fastrnns`` (the PyTorch fastrnns benchmark shape: T=100, batch 64, input = hidden = 512;
    forward only at notebook scale, and the notebook runs it only on request) and ``nb02.mingru_scan``
    (minGRU: step loop against log-space scan over T). Baseline ``nn.LSTM`` (minGRU: the step loop).

    Example:
        >>> [e.name for e in standard_experiments("notebook")]
        ['nb02.length_sweep', 'nb02.hidden_sweep', 'nb02.fastrnns', 'nb02.mingru_scan']
    """
    from helpers.mingru import SCAN, STEP_LOOP, mingru_builders

    require_choice(scale, "scale", SCALES)
    small = scale == "notebook"
    b, h = (16, 64) if small else (64, 256)
    lengths = (8, 32, 128) if small else (16, 64, 256, 1024)
    hidden_batch, hidden_len = (16, 16) if small else (64, 100)
    hiddens = (16, 64, 256) if small else (32, 64, 128, 256, 512, 1024)
    mg_batch, mg_hidden = (2, 16) if small else (8, 128)
    mg_lengths = (16, 128, 1024, 4096) if small else (16, 128, 1024, 4096, 16384)
    return [
        Experiment("nb02.length_sweep", length_builders(b, h, h), lengths, "sequence length T", BASELINE,
                   fixed={"swept": "length", "batch": b, "input_size": h, "hidden_size": h}),
        Experiment("nb02.hidden_sweep", hidden_builders(hidden_batch, hidden_len), hiddens,
                   "hidden size H (= input size)", BASELINE,
                   fixed={"swept": "hidden_size", "batch": hidden_batch, "length": hidden_len}),
        Experiment("nb02.fastrnns", length_builders(64, 512, 512), (100,), "sequence length T", BASELINE,
                   modes=("forward",) if small else MODES,
                   fixed={"swept": "length", "batch": 64, "input_size": 512, "hidden_size": 512}),
        Experiment("nb02.mingru_scan", mingru_builders(mg_batch, mg_hidden, mg_hidden), mg_lengths,
                   "sequence length T", STEP_LOOP,
                   fixed={"batch": mg_batch, "input_size": mg_hidden, "hidden_size": mg_hidden, "fast": SCAN}),
    ]


def experiment_named(name: str, scale: str = "notebook") -> Experiment:
    """One of ``standard_experiments(scale)`` by name.

    Example:
        >>> experiment_named("nb02.fastrnns").sizes
        (100,)
    """
    experiments = {e.name: e for e in standard_experiments(scale)}
    require_choice(name, "name", list(experiments))
    return experiments[name]


# -------------------------------------------------------------------------------------------------- plots

def plot_sweep(records: Sequence[TimingRecord], size_label: str, baseline: str = BASELINE, title: str = ""):
    """Three panels: time per call for forward and for forward+backward (log-log), and each
    implementation's time divided by the baseline's.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt


    if not records:
        raise LabInputError("no timing records to plot; run the experiment first.")
    modes = [m for m in MODES if any(r.mode == m for r in records)]
    fig, axes = plt.subplots(1, len(modes) + 1, figsize=(5.2 * (len(modes) + 1), 3.9))
    for ax, mode in zip(axes, modes):
        plot_timings([r for r in records if r.mode == mode], size_label=size_label, ax=ax)
    ratios = speedups(records, baseline)
    ax = axes[-1]
    others = [i for i in dict.fromkeys(r.implementation for r in records) if i != baseline]
    for colour, impl in zip(("tab:blue", "tab:orange", "tab:red", "tab:purple"), others):
        for mode, style in zip(MODES, ("-o", "--s")):
            pts = sorted((s, v) for (i, s, m), v in ratios.items() if i == impl and m == mode)
            if pts:
                ax.plot(*zip(*pts), style, color=colour, label=f"{impl} ({mode})")
    ax.axhline(1.0, color="0.4", lw=1, ls=":", label=f"{baseline} = 1")
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_measured_sizes(ax, [r.size for r in records])
    ax.set_xlabel(size_label)
    ax.set_ylabel(f"time ÷ time of {baseline} (×)")
    ax.set_title(f"ratio to {baseline}, same run")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_gflops(records: Sequence[TimingRecord], fixed: Mapping[str, object], peak_gflops: float,
                size_label: str, ax=None):
    """Achieved GFLOP/s of each implementation against size, with the measured large-matmul peak as a line.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    colours = dict(zip(dict.fromkeys(r.implementation for r in records), ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for impl, mode in dict.fromkeys((r.implementation, r.mode) for r in records):
        pts = sorted((r.size, record_flops(r, fixed) / r.median_s / 1e9) for r in records
                     if (r.implementation, r.mode) == (impl, mode))
        ax.plot(*zip(*pts), "-o" if mode == "forward" else "--s", color=colours.get(impl), label=f"{impl} ({mode})")
    ax.axhline(peak_gflops, color="k", ls=":", label=f"large matmul, same run: {peak_gflops:.0f} GFLOP/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_measured_sizes(ax, [r.size for r in records])
    ax.set_xlabel(size_label)
    ax.set_ylabel("achieved GFLOP/s (matmul FLOPs ÷ median time)")
    ax.set_title(f"LSTM throughput against this machine's matmul peak ({records[0].device}, {records[0].threads} threads)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# -------------------------------------------------------------------------------------------------- panel

PANEL_MAX_GFLOP = 2.0  # matmul work of one call at the longest length; keeps every setting to seconds
PANEL_LENGTHS_PER_SWEEP = 4


def panel_lengths(length: int) -> list[int]:
    """The lengths a panel run sweeps: ``length`` and up to three halvings of it (at least 2).

    Example:
        >>> panel_lengths(64)
        [8, 16, 32, 64]
    """
    require_positive_int(length, "length")
    return sorted({max(2, length >> k) for k in range(PANEL_LENGTHS_PER_SWEEP)})


def _panel_memory(batch: int, hidden: int, length: int, implementations: Sequence[str], **_: object) -> int:
    # float32 input plus what backward keeps per step (gates, c, h and their activations: ~12H)
    return 4 * batch * length * (hidden + 12 * hidden) * max(1, len(implementations))


def run_timing_point(device: str = "cpu", batch: int = 8, hidden: int = 64, length: int = 64,
                     implementations: Sequence[str] = IMPLEMENTATIONS, mode: str = "forward",
                     threads: int = 2, min_run_time: float = 0.05) -> list[TimingRecord]:
    """What the timing panel runs: the chosen implementations over ``panel_lengths(length)``.

    Raises:
        LabInputError: for an unknown implementation, or a setting over ``PANEL_MAX_GFLOP``.

    Example:
        >>> recs = run_timing_point(batch=2, hidden=8, length=8, implementations=("nn.LSTM",), min_run_time=0.01)
        >>> sorted({r.size for r in recs})
        [2, 4, 8]
    """
    implementations = list(implementations)
    if not implementations:
        raise LabInputError("choose at least one implementation.")
    for impl in implementations:
        require_choice(impl, "implementation", IMPLEMENTATIONS)
    gflop = lstm_flops(batch, length, hidden, hidden, mode) / 1e9
    if gflop > PANEL_MAX_GFLOP:
        raise LabInputError(f"batch={batch}, hidden={hidden}, length={length} needs {gflop:.1f} GFLOP per call "
                            f"({mode}), over this panel's limit of {PANEL_MAX_GFLOP:g}; lower one of them.")
    builders = length_builders(batch, hidden, hidden, implementations)
    return time_implementations(builders, panel_lengths(length), mode, device, threads, min_run_time)


def render_timing(records: Sequence[TimingRecord]) -> None:
    """Show a panel result: the log-log plot and the ratio table (ratios to nn.LSTM when it ran)."""
    import matplotlib.pyplot as plt

    from helpers.timing import ratio_table

    impls = list(dict.fromkeys(r.implementation for r in records))
    baseline = BASELINE if BASELINE in impls else impls[0]
    ax = plot_timings(records, size_label="sequence length T")
    plt.show()
    print(ratio_table(records, baseline, size_name="T"))
    del ax


def make_timing_panel() -> Panel:
    """A panel: device, batch, hidden size, length, implementations and mode, then Run (with progress).

    Example:
        >>> panel = make_timing_panel()
        >>> len(panel.set(batch=2, hidden=16, length=8, implementations=("nn.LSTM",)).run())
        3
    """
    import ipywidgets as W

    controls = {
        "device": W.Dropdown(options=available_devices(), value="cpu"),
        "batch": W.IntSlider(value=8, min=1, max=64),
        "hidden": W.IntSlider(value=64, min=8, max=512, step=8),
        "length": W.IntSlider(value=32, min=8, max=512, step=8),
        "implementations": W.SelectMultiple(options=IMPLEMENTATIONS, value=IMPLEMENTATIONS, rows=3),
        "mode": W.Dropdown(options=MODES, value="forward"),
    }
    where = "" if torch.cuda.is_available() else " No CUDA GPU on this machine: runs use the CPU."
    return Panel(run_timing_point, controls, render=render_timing,
                 title=f"LSTM timing: each run sweeps {PANEL_LENGTHS_PER_SWEEP} lengths up to the chosen one "
                       f"(runs over {PANEL_MAX_GFLOP:g} GFLOP per call are refused).{where}",
                 memory_estimate=_panel_memory)
