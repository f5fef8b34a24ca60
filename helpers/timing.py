"""Timing with ``torch.utils.benchmark``: medians and IQRs as records, ratios within one run, log-log plots."""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils import benchmark

from helpers.device import MAX_THREADS, pick_device, using_threads
from helpers.lines import line_style
from helpers.validation import (
    LabInputError,
    require_callable,
    require_choice,
    require_mapping,
    require_number,
    require_positive_int,
    require_sizes,
    run_specimen,
)

MODES = ("forward", "forward+backward")
MAX_MIN_RUN_TIME_S = 60.0  # seconds of measurement per point; more never sharpens a median usefully
MAX_PLANNED_S = 600.0  # a sweep planned to measure longer than ten minutes is refused up front
MAX_SIZE = 10_000_000  # sizes are lengths, widths or element counts; beyond this a builder needs gigabytes
MAX_ROUNDS = 1000
Builder = Callable[[int, torch.device], Callable[[], object]]


@dataclass(frozen=True)
class TimingRecord:
    """One measured point: an implementation at one size, in one mode."""

    implementation: str
    size: int
    mode: str
    median_s: float
    iqr_s: float
    runs: int
    threads: int
    device: str

    def as_dict(self) -> dict:
        return asdict(self)


def _require_min_run_time(min_run_time: object) -> float:
    return require_number(min_run_time, "min_run_time", low=0, high=MAX_MIN_RUN_TIME_S, low_inclusive=False,
                          unit="seconds")


def _require_threads(threads: object) -> int:
    return require_positive_int(threads, "threads", maximum=MAX_THREADS,
                                reason="(more threads than any CPU here only adds contention)")


def _require_plan(points: int, min_run_time: float, what: str) -> None:
    planned = points * min_run_time
    if planned > MAX_PLANNED_S:
        raise LabInputError(f"{what} would measure for at least {planned:.0f} s ({points} measurements × "
                            f"min_run_time {min_run_time:g} s), above the limit of {MAX_PLANNED_S:.0f} s; "
                            "lower min_run_time or measure fewer points.")


def _require_records(records: object, name: str = "records") -> list[TimingRecord]:
    if isinstance(records, TimingRecord) or not isinstance(records, Sequence) or isinstance(records, str):
        raise LabInputError(f"{name} must be a list of TimingRecord (from time_implementations or "
                            f"run_experiment); got {type(records).__name__}.")
    records = list(records)
    if not records:
        raise LabInputError(f"{name} is empty: there is nothing to show; time something first, e.g. with "
                            "time_implementations.")
    for i, record in enumerate(records):
        if not isinstance(record, TimingRecord):
            raise LabInputError(f"{name}[{i}] is a {type(record).__name__}, not a TimingRecord; pass what "
                                "time_implementations or run_experiment returned.")
        if not (isinstance(record.median_s, (int, float)) and math.isfinite(record.median_s) and record.median_s > 0):
            raise LabInputError(f"{name}[{i}] ({record.implementation} at size {record.size}) has median_s="
                                f"{record.median_s!r}; a time must be a finite positive number of seconds.")
    return records


def _outputs_sum(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output.sum()
    if isinstance(output, (tuple, list)):
        parts = [_outputs_sum(o) for o in output if isinstance(o, (torch.Tensor, tuple, list))]
        return sum(parts[1:], parts[0])
    raise LabInputError(f"a timed function must return a tensor or a tuple of tensors; got {type(output).__name__}.")


def _with_mode(fn: Callable[[], object], mode: str) -> Callable[[], object]:
    if mode == "forward":
        return fn  # autograd still records, as in a training forward pass

    def forward_backward() -> None:
        _outputs_sum(fn()).backward()

    return forward_backward


def time_callable(fn: Callable[[], object], threads: int = 2, min_run_time: float = 0.2) -> tuple[float, float, int]:
    """Time a zero-argument callable with ``torch.utils.benchmark.Timer.blocked_autorange``.

    CUDA work is synchronised by the benchmark timer itself.

    Args:
        fn: what to time.
        threads: intra-op threads during the measurement.
        min_run_time: seconds of measurement to collect at least, in (0, 60].

    Returns:
        ``(median seconds, interquartile range in seconds, number of measured blocks)``.

    Raises:
        LabInputError: for a non-callable ``fn``, ``threads`` outside 1..256, or ``min_run_time`` that is not
            a finite number of seconds in (0, 60] (NaN would otherwise make the timer loop forever).

    Example:
        >>> median, iqr, runs = time_callable(lambda: torch.ones(10).sum(), threads=1, min_run_time=0.01)
        >>> median > 0 and runs >= 1
        True
    """
    require_callable(fn, "fn", "a zero-argument callable, e.g. lambda: model(x)")
    threads = _require_threads(threads)
    min_run_time = _require_min_run_time(min_run_time)
    with using_threads(threads):  # the warm-up too, so it picks the kernels the measurement will use
        # warm-up, outside the measurement: first calls allocate and pick kernels (and show a broken fn plainly)
        run_specimen(fn, "the timed function (its warm-up call)")
        timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
    iqr = measurement.iqr if len(measurement.times) > 1 else 0.0
    return measurement.median, iqr, len(measurement.times)


def interleaved_medians(fns: Mapping[str, Callable[[], object]], rounds: int = 7, threads: int = 1,
                        min_run_time: float = 0.02) -> dict[str, float]:
    """Median time of each callable over ``rounds`` interleaved rounds (a, b, c, a, b, c, ...).

    A stall on a busy machine then hits one round of every callable alike instead of all of one callable's
    measurement, so ratios between them are stable enough for a checked verdict.

    Args:
        fns: ``{name: zero-argument callable}``, e.g. the notebook's own loop and reshape.
        rounds: how many rounds (1..1000); each callable is timed once per round.
        threads: intra-op threads during every measurement (1 where per-step overhead is compared).
        min_run_time: seconds of measurement per callable per round, in (0, 60]; ``rounds × len(fns) ×
            min_run_time`` must stay within ten minutes.

    Returns:
        ``{name: median seconds per call}`` over the rounds.

    Example:
        >>> medians = interleaved_medians({"small": lambda: torch.ones(10).sum(),
        ...                                "large": lambda: torch.ones(10**6).sum()}, rounds=3, min_run_time=0.01)
        >>> medians["large"] > medians["small"]
        True
    """
    samples = _interleaved_samples(fns, rounds, threads, min_run_time, "interleaved_medians")
    return {name: float(np.median(times)) for name, times in samples.items()}


def _require_fns(fns: object, example: str = "lambda: model(x)") -> None:
    for name, fn in require_mapping(fns, "fns", "{name: zero-argument callable}").items():
        require_callable(fn, f"fns[{name!r}]", f"a zero-argument callable, e.g. {example}")


def _interleaved_samples(fns: Mapping[str, Callable[[], object]], rounds: int, threads: int, min_run_time: float,
                         what: str, example: str = "lambda: model(x)") -> dict[str, list[float]]:
    """Checked inputs, then one ``time_callable`` median per callable per round, the callables interleaved."""
    _require_fns(fns, example)
    rounds = require_positive_int(rounds, "rounds", maximum=MAX_ROUNDS)
    threads = _require_threads(threads)
    min_run_time = _require_min_run_time(min_run_time)
    _require_plan(rounds * len(fns), min_run_time, what)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(time_callable(fn, threads=threads, min_run_time=min_run_time)[0])
    return samples



def interleaved_cpu_medians(fns: Mapping[str, Callable[[], object]], rounds: int = 7,
                            min_run_time: float = 0.01) -> dict[str, float]:
    """Median CPU time per call of each callable, on one thread, over ``rounds`` interleaved rounds.

    With one intra-op thread every operator runs on the calling thread, so that thread's CPU time
    (``time.thread_time``) is the work the call did; unlike wall-clock time it leaves out the time a busy
    machine gave to other programs. Use it for one-thread comparisons of overhead and work on a shared machine.

    Args:
        fns: ``{name: zero-argument callable}`` (CPU work only: a GPU's time is not the thread's).
        rounds: how many rounds (1..1000); each callable is measured once per round, after one warm-up call.
        min_run_time: CPU seconds per callable per round, in (0, 60] (the call is repeated until reached);
            ``rounds × len(fns) × min_run_time`` must stay within ten minutes.

    Returns:
        ``{name: median CPU seconds per call}`` over the rounds.

    Example:
        >>> medians = interleaved_cpu_medians({"small": lambda: torch.ones(10).sum(),
        ...                                    "large": lambda: torch.ones(10**6).sum()}, rounds=3)
        >>> medians["large"] > medians["small"] > 0
        True
    """
    import time

    _require_fns(fns)
    rounds = require_positive_int(rounds, "rounds", maximum=MAX_ROUNDS)
    min_run_time = _require_min_run_time(min_run_time)
    _require_plan(rounds * len(fns), min_run_time, "interleaved_cpu_medians")
    samples: dict[str, list[float]] = {name: [] for name in fns}
    with using_threads(1):
        for name, fn in fns.items():  # warm-up: first calls allocate and pick kernels (and show a broken fn plainly)
            run_specimen(fn, f"fns[{name!r}] (its warm-up call)")
        for _ in range(rounds):
            for name, fn in fns.items():
                calls, start = 0, time.thread_time()
                while True:
                    fn()
                    calls += 1
                    spent = time.thread_time() - start
                    if spent >= min_run_time:
                        break
                samples[name].append(spent / calls)
    return {name: float(np.median(times)) for name, times in samples.items()}


class _Progress:
    """A progress bar in a notebook (ipywidgets) or a line on stderr; silent for short runs."""

    def __init__(self, total: int, expected_s: float, enabled: bool):
        self.total, self.done, self.bar = total, 0, None
        self.enabled = enabled and expected_s > 2.0
        if self.enabled and "ipykernel" in sys.modules:
            try:
                import ipywidgets
                from IPython.display import display

                self.bar = ipywidgets.IntProgress(min=0, max=total, description="timing")
                display(self.bar)
            except Exception:  # no widget support: fall back to text
                self.bar = None

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.value = self.done
            self.bar.description = f"{self.done}/{self.total}"
        else:
            print(f"\r[{self.done}/{self.total}] {label}    ", end="" if self.done < self.total else "\n",
                  file=sys.stderr, flush=True)


def _require_builders_and_sizes(builders: object, sizes: object) -> list[int]:
    for name, builder in require_mapping(builders, "builders", "{name: builder(size, device)}").items():
        require_callable(builder, f"builders[{name!r}]", "a builder(size, device) returning a zero-argument callable")
    return require_sizes(sizes, "sizes", maximum=MAX_SIZE,
                         reason="(sizes are lengths, widths or element counts; larger ones need gigabytes)")


def _build_point(builder: Builder, name: str, size: int, dev: torch.device) -> Callable[[], object]:
    """The learner's builder run at one size; what it returns must be the zero-argument callable to time."""
    timed = run_specimen(builder, f"builders[{name!r}] at size {size}", size, dev)
    if not callable(timed):
        raise LabInputError(f"builders[{name!r}]({size}, device) returned {type(timed).__name__}; a builder "
                            "sets up inputs and returns a zero-argument callable, e.g. lambda: model(x).")
    return timed


def time_implementations(builders: Mapping[str, Builder], sizes: Sequence[int], mode: str = "forward",
                         device: str = "cpu", threads: int = 2, min_run_time: float = 0.2,
                         progress: bool = True) -> list[TimingRecord]:
    """Time every implementation at every size, interleaved so machine noise hits all alike.

    Args:
        builders: ``{name: builder}``; ``builder(size, device)`` sets up inputs and returns a
            zero-argument callable that runs the forward pass and returns its output.
        sizes: the swept sizes (e.g. sequence lengths): positive integers up to ``MAX_SIZE``.
        mode: ``"forward"`` or ``"forward+backward"`` (backward of the sum of all outputs).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        threads: intra-op threads, set explicitly so runs are comparable.
        min_run_time: seconds of measurement per point, in (0, 60]; all points together must stay within ten
            minutes.
        progress: show progress when the run is expected to take more than two seconds.

    Returns:
        A list of ``TimingRecord``, one per implementation and size.

    Example:
        >>> builders = {"sum": lambda n, dev: (lambda: torch.ones(n, device=dev).sum())}
        >>> [r.size for r in time_implementations(builders, [10, 100], min_run_time=0.01)]
        [10, 100]
    """
    require_choice(mode, "mode", MODES)
    dev = pick_device(device)
    sizes = _require_builders_and_sizes(builders, sizes)
    threads = _require_threads(threads)
    min_run_time = _require_min_run_time(min_run_time)
    _require_plan(len(builders) * len(sizes), min_run_time, "time_implementations")
    progress_bar = _Progress(len(builders) * len(sizes), 1.5 * len(builders) * len(sizes) * min_run_time, progress)
    records = []
    for size in sizes:
        for name, builder in builders.items():
            fn = _with_mode(_build_point(builder, name, size, dev), mode)
            median, iqr, runs = time_callable(fn, threads=threads, min_run_time=min_run_time)
            records.append(TimingRecord(name, size, mode, median, iqr, runs, threads, str(dev)))
            progress_bar.step(f"{name} @ {size}")
    return records


def interleaved_sweep(builders: Mapping[str, Builder], sizes: Sequence[int], mode: str = "forward",
                      device: str = "cpu", threads: int = 1, rounds: int = 5,
                      min_run_time: float = 0.02) -> list[TimingRecord]:
    """Time every implementation at every size in ``rounds`` interleaved rounds; medians over the rounds.

    Each round times every (size, implementation) once, so a stall on a busy machine spoils one round of
    everything alike instead of one point; the median over rounds then ignores it. Use it where a checked
    verdict reads a ratio or a slope from the records (``time_implementations`` measures each point once).

    Args:
        builders: ``{name: builder}``; ``builder(size, device)`` returns a zero-argument callable that runs
            the forward pass and returns its output (built once per point, before the first round).
        sizes: the swept sizes.
        mode: ``"forward"`` or ``"forward+backward"`` (backward of the sum of all outputs).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        threads: intra-op threads (1 where per-step overhead is compared).
        rounds: how many rounds.
        min_run_time: seconds of measurement per point per round.

    Returns:
        One ``TimingRecord`` per implementation and size: ``median_s`` and ``iqr_s`` over the rounds'
        medians, ``runs`` = ``rounds``.

    Example:
        >>> builders = {"short": lambda n, dev: (lambda: torch.ones(n, device=dev).sum()),
        ...             "long": lambda n, dev: (lambda: torch.ones(100 * n, device=dev).sum())}
        >>> records = interleaved_sweep(builders, [10_000], rounds=3, min_run_time=0.01)
        >>> [(r.implementation, r.runs) for r in records]
        [('short', 3), ('long', 3)]
        >>> records[1].median_s > records[0].median_s
        True
    """
    require_choice(mode, "mode", MODES)
    dev = pick_device(device)
    sizes = _require_builders_and_sizes(builders, sizes)
    rounds = require_positive_int(rounds, "rounds", maximum=MAX_ROUNDS)
    threads = _require_threads(threads)
    min_run_time = _require_min_run_time(min_run_time)
    _require_plan(rounds * len(builders) * len(sizes), min_run_time, "interleaved_sweep")
    points = {}
    for size in sizes:
        for name, builder in builders.items():
            points[name, size] = _with_mode(_build_point(builder, name, size, dev), mode)
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in points}
    for _ in range(rounds):
        for key, fn in points.items():
            samples[key].append(time_callable(fn, threads=threads, min_run_time=min_run_time)[0])
    records = []
    for (name, size), times in samples.items():
        q1, median, q3 = np.percentile(times, [25, 50, 75])
        records.append(TimingRecord(name, size, mode, float(median), float(q3 - q1), rounds, threads, str(dev)))
    return records


def speedups(records: Sequence[TimingRecord], baseline: str) -> dict[tuple[str, int, str], float]:
    """Time of each implementation divided by the baseline's, at the same size and mode, in one run.

    Returns:
        ``{(implementation, size, mode): ratio}``; a ratio of 3.0 means three times slower than the baseline.

    Example:
        >>> recs = [TimingRecord("a", 1, "forward", 2.0, 0, 1, 1, "cpu"), TimingRecord("b", 1, "forward", 1.0, 0, 1, 1, "cpu")]
        >>> speedups(recs, "b")[("a", 1, "forward")]
        2.0
    """
    records = _require_records(records)
    base = {(r.size, r.mode): r.median_s for r in records if r.implementation == baseline}
    if not base:
        raise LabInputError(f"no records for baseline {baseline!r}; implementations timed: "
                            f"{sorted({r.implementation for r in records})}.")
    return {(r.implementation, r.size, r.mode): r.median_s / base[(r.size, r.mode)]
            for r in records if (r.size, r.mode) in base}


def ratio_table(records: Sequence[TimingRecord], baseline: str, size_name: str = "size") -> str:
    """A text table of medians and ratios to the baseline (one run, same machine state).

    Example:
        >>> recs = [TimingRecord("a", 1, "forward", 2e-3, 0, 1, 1, "cpu"), TimingRecord("b", 1, "forward", 1e-3, 0, 1, 1, "cpu")]
        >>> print(ratio_table(recs, "b"))  # doctest: +NORMALIZE_WHITESPACE
        mode     size  implementation  median (ms)  × b
        forward     1  a                     2.000  2.00
        forward     1  b                     1.000  1.00
    """
    records = _require_records(records)
    ratios = speedups(records, baseline)
    lines = [f"{'mode':<17}{size_name:>6}  {'implementation':<22}{'median (ms)':>12}  × {baseline}"]
    for r in sorted(records, key=lambda r: (r.mode, r.size, r.implementation)):
        ratio = ratios.get((r.implementation, r.size, r.mode), math.nan)
        lines.append(f"{r.mode:<17}{r.size:>6}  {r.implementation:<22}{r.median_s * 1e3:>12.3f}  {ratio:.2f}")
    return "\n".join(lines)


def fit_loglog_slope(sizes: Sequence[float], times: Sequence[float]) -> float:
    """Slope of log(time) against log(size): about 1 for linear growth, 2 for quadratic.

    Example:
        >>> round(fit_loglog_slope([1, 2, 4, 8], [1, 4, 16, 64]), 6)
        2.0
    """
    for name, values in (("sizes", sizes), ("times", times)):
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, torch.Tensor)):
            raise LabInputError(f"{name} must be a list of numbers; got {type(values).__name__}.")
    if len(sizes) != len(times) or len(sizes) < 2:
        raise LabInputError(f"fit_loglog_slope needs at least two (size, time) pairs of equal length; got "
                            f"{len(sizes)} sizes and {len(times)} times.")
    xs = [require_number(float(v) if isinstance(v, (np.generic, torch.Tensor)) else v, f"sizes[{i}]", low=0,
                         low_inclusive=False) for i, v in enumerate(sizes)]
    ys = [require_number(float(v) if isinstance(v, (np.generic, torch.Tensor)) else v, f"times[{i}]", low=0,
                         low_inclusive=False) for i, v in enumerate(times)]
    if len(set(xs)) < 2:
        raise LabInputError(f"sizes must hold at least two different values to fit a slope; got {list(sizes)}.")
    slope, _ = np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)
    return float(slope)


def label_measured_sizes(ax, sizes: Sequence[int]) -> None:
    """Label a log x-axis at the sizes that were measured, written out, with no overlapping minor labels.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> _, ax = plt.subplots(); ax.set_xscale("log"); label_measured_sizes(ax, [16, 64, 16])
        >>> [t.get_text() for t in ax.get_xticklabels()]
        ['16', '64']
    """
    from matplotlib.ticker import NullFormatter

    if not hasattr(ax, "set_xticks"):
        raise LabInputError(f"ax must be a matplotlib Axes (e.g. from plt.subplots()); got {type(ax).__name__}.")
    measured = sorted(set(require_sizes(sizes, "sizes", max_count=1000)))
    ax.set_xticks(measured, [str(s) for s in measured])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_timings(records: Sequence[TimingRecord], size_label: str = "size", ax=None, fit: bool = True):
    """Log-log plot of median time against size, one line per implementation and mode, IQR as error bars.

    Args:
        records: from ``time_implementations``.
        size_label: the x-axis label (e.g. ``"sequence length T"``).
        ax: an existing matplotlib ``Axes`` or None.
        fit: add the fitted log-log slope to each legend entry.

    Returns:
        The ``Axes``.
    """
    import matplotlib.pyplot as plt

    records = _require_records(records)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    keys = list(dict.fromkeys((r.implementation, r.mode) for r in records))
    for k, (impl, mode) in enumerate(keys):
        points = sorted((r.size, r.median_s, r.iqr_s) for r in records if (r.implementation, r.mode) == (impl, mode))
        xs, ys, errs = zip(*points, strict=True)
        label = impl if len({m for _, m in keys}) == 1 else f"{impl} ({mode})"
        if fit and len(xs) >= 2:
            label += f", slope {fit_loglog_slope(xs, ys):.2f}"
        ax.errorbar(xs, [y * 1e3 for y in ys], yerr=[e * 1e3 / 2 for e in errs], capsize=3, label=label,
                    **line_style(k))
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_measured_sizes(ax, [r.size for r in records])
    ax.set_xlabel(size_label)
    ax.set_ylabel("median time per call (ms)")
    threads = records[0].threads
    ax.set_title(f"{', '.join(sorted({r.mode for r in records}))} on {records[0].device}, "
                 f"{threads} thread{'s' if threads != 1 else ''}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax



def interleaved_records(fns: Mapping[str, Callable[[], object]], size: int, mode: str, rounds: int = 7,
                        threads: int = 1, min_run_time: float = 0.02, device: str = "cpu") -> list[TimingRecord]:
    """``interleaved_medians`` as ``TimingRecord`` s (for tables, ``bench_record`` and plots), IQR over the rounds.

    Args:
        fns: ``{implementation: zero-argument callable}``, all at one ``size``.
        size: the swept size these callables were built for (e.g. the sequence length).
        mode: what each callable runs, one of ``MODES``; a callable that calls ``backward()`` itself is
            ``"forward+backward"``.
        rounds, threads, min_run_time: as for ``interleaved_medians``.
        device: where the callables' tensors live (recorded, not changed).

    Returns:
        One ``TimingRecord`` per implementation; ``median_s`` is the median over rounds, ``iqr_s`` their IQR.

    Example:
        >>> records = interleaved_records({"sum": lambda: torch.ones(10).sum()}, size=10, mode="forward",
        ...                               rounds=3, min_run_time=0.01)
        >>> [(r.implementation, r.size, r.mode, r.runs) for r in records]
        [('sum', 10, 'forward', 3)]
    """
    require_choice(mode, "mode", MODES)
    size = require_positive_int(size, "size")
    rounds, threads = require_positive_int(rounds, "rounds", maximum=MAX_ROUNDS), _require_threads(threads)
    samples = _interleaved_samples(fns, rounds, threads, min_run_time, "interleaved_records",
                                   "lambda: train_step(model, x)")
    records = []
    for name, times in samples.items():
        q1, median, q3 = np.percentile(times, [25, 50, 75])
        records.append(TimingRecord(name, size, mode, float(median), float(q3 - q1), rounds, threads, str(device)))
    return records
