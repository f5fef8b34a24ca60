"""Recorded long training runs (``data/recorded/``): read the file, say where it came from, plot it.

``scripts/record_long_range.py`` writes ``data/recorded/long_range.json`` by running notebook 05's own
training cells for longer than a lesson can wait; the notebook shows the file beside its live run.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from helpers.integrity import DataFileError, read_json_verified
from helpers.lines import line_style
from helpers.validation import LabInputError

RECORDED_PATH = Path(__file__).resolve().parents[1] / "data" / "recorded" / "long_range.json"
RECORDED_WRITER = "python scripts/record_long_range.py"  # named whenever the file is refused
LAYER_ORDER = ("RNN", "LSTM", "GRU")
RUN_KEYS = ("layer_type", "seq_len", "seed", "steps", "steps_to_learn", "relative_mse", "seconds_per_step",
            "loss_steps", "loss_curve")


def load_recorded(path: Path | str | None = None) -> dict:
    """The file ``scripts/record_long_range.py`` wrote: ``{"meta": ..., "settings": ..., "runs": [...]}``.

    The file's SHA-256 (``helpers.integrity``) must match, and its layout and numbers must agree with its own
    settings (every run a recorded layer, length and seed; loss curves of the recorded number of finite points).

    Raises:
        LabInputError: one line naming the file, what is wrong and the command that records it again.

    Example:
        >>> sorted(load_recorded())[:3]
        ['meta', 'runs', 'settings']
    """
    path = Path(path) if path is not None else RECORDED_PATH
    data = read_json_verified(path, RECORDED_WRITER)
    try:
        check_recorded(data)
    except ValueError as problem:
        raise DataFileError(path, str(problem), RECORDED_WRITER) from None
    return data


def _number(value: object, where: str, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise ValueError(f"{where} is {value!r}, not a finite number >= {low:g}")
    return float(value)


def _integer(value: object, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where} is {value!r}, not an integer >= {low}")
    return value


def _integers(value: object, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} is {value!r}, not a non-empty list")
    return [_integer(v, f"{where}[{i}]", low=0) for i, v in enumerate(value)]


def check_recorded(data: object) -> dict:
    """Check a recorded file's layout and that its runs agree with its settings; ``ValueError`` says what is not.

    Example:
        >>> check_recorded({"meta": {}, "settings": {}, "runs": []})
        Traceback (most recent call last):
        ...
        ValueError: meta lacks ['command', 'cpu', 'date', 'device', 'torch']
    """
    if not isinstance(data, dict):
        raise ValueError(f"the top level is a {type(data).__name__}, not an object")
    missing = [key for key in ("meta", "settings", "runs") if not isinstance(data.get(key), (dict, list))]
    if missing:
        raise ValueError(f"it lacks {missing} (it has {sorted(data)})")
    meta, settings, runs = data["meta"], data["settings"], data["runs"]
    if not isinstance(meta, dict) or not isinstance(settings, dict) or not isinstance(runs, list):
        raise ValueError("meta and settings must be objects and runs a list")
    absent = sorted({"date", "torch", "cpu", "device", "command"} - set(meta))
    if absent:
        raise ValueError(f"meta lacks {absent}")
    if meta["device"] != "cpu" or meta.get("cuda"):
        raise ValueError(f"meta.device is {meta['device']!r} (CUDA {meta.get('cuda')!r}); the recording trains "
                         "on the CPU, one thread")
    lengths, seeds = _integers(settings.get("lengths"), "settings.lengths"), _integers(settings.get("seeds"), "settings.seeds")
    layers = settings.get("layers")
    if not isinstance(layers, list) or not layers or any(layer not in LAYER_ORDER for layer in layers):
        raise ValueError(f"settings.layers is {layers!r}, not a list from {list(LAYER_ORDER)}")
    steps = _integer(settings.get("steps"), "settings.steps")
    points = _integer(settings.get("loss_points"), "settings.loss_points")
    if not runs:
        raise ValueError("it holds no runs")
    seen = set()
    for i, run in enumerate(runs):
        where = f"runs[{i}]"
        if not isinstance(run, dict):
            raise ValueError(f"{where} is a {type(run).__name__}, not an object")
        absent = sorted(set(RUN_KEYS) - set(run))
        if absent:
            raise ValueError(f"{where} lacks {absent}")
        if run["layer_type"] not in layers:
            raise ValueError(f"{where}.layer_type {run['layer_type']!r} is not among settings.layers {layers}")
        if run["seq_len"] not in lengths:
            raise ValueError(f"{where}.seq_len {run['seq_len']!r} is not among settings.lengths {lengths}")
        if run["seed"] not in seeds:
            raise ValueError(f"{where}.seed {run['seed']!r} is not among settings.seeds {seeds}")
        if run["steps"] != steps:
            raise ValueError(f"{where}.steps {run['steps']!r} differs from settings.steps {steps}")
        key = (run["layer_type"], run["seq_len"], run["seed"])
        if key in seen:
            raise ValueError(f"{where} repeats the run {key}")
        seen.add(key)
        learned = run["steps_to_learn"]
        if learned is not None and (isinstance(learned, bool) or not isinstance(learned, int) or not 1 <= learned <= steps):
            raise ValueError(f"{where}.steps_to_learn is {learned!r}, not null or a step in 1..{steps}")
        _number(run["relative_mse"], f"{where}.relative_mse")
        _number(run["seconds_per_step"], f"{where}.seconds_per_step")
        loss_steps, curve = run["loss_steps"], run["loss_curve"]
        if not isinstance(loss_steps, list) or not isinstance(curve, list) or len(loss_steps) != len(curve):
            raise ValueError(f"{where}: loss_steps and loss_curve must be lists of the same length")
        if not 1 <= len(curve) <= points:
            raise ValueError(f"{where}.loss_curve has {len(curve)} points; settings.loss_points is {points}")
        previous = 0
        for k, step in enumerate(loss_steps):
            if isinstance(step, bool) or not isinstance(step, int) or not previous < step <= steps:
                raise ValueError(f"{where}.loss_steps[{k}] is {step!r}; steps must increase within 1..{steps}")
            previous = step
        for k, value in enumerate(curve):
            _number(value, f"{where}.loss_curve[{k}]")
    return data


def recorded_caption(data: Mapping) -> str:
    """Where, when, with what code and by which command the recorded runs were made, from the file's metadata.

    Example:
        >>> recorded_caption({"meta": {"date": "2026-01-01", "cpu": "x", "threads": 1, "torch": "2",
        ...                            "git_commit": "abc1234", "command": "python s.py"}})
        'recorded 2026-01-01 on x (1 thread), torch 2, commit abc1234, by `python s.py`'
    """
    m = data.get("meta", {})
    threads = m.get("threads", "?")
    commit = m.get("git_commit") or "unknown"
    if m.get("git_dirty"):
        commit += " with uncommitted changes"
    return (f"recorded {m.get('date', '?')} on {m.get('cpu', '?')} ({threads} thread{'' if threads == 1 else 's'}), "
            f"torch {m.get('torch', '?')}, commit {commit}, by `{m.get('command', '?')}`")


def downsample(losses: Sequence[float], points: int = 100) -> tuple[list[int], list[float]]:
    """Mean loss over ``points`` equal intervals, with the last step of each interval (to keep files small).

    Example:
        >>> downsample([1.0, 3.0, 5.0, 7.0], points=2)
        ([2, 4], [2.0, 6.0])
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise LabInputError(f"points must be a positive int; got {points!r}.")
    n = len(losses)
    if n == 0:
        raise LabInputError("losses is empty.")
    edges = sorted({math.ceil(n * k / points) for k in range(points + 1)})
    steps, means = [], []
    for lo, hi in itertools.pairwise(edges):
        steps.append(hi)
        means.append(sum(losses[lo:hi]) / (hi - lo))
    return steps, means


def plot_recorded(data: Mapping, lines: Mapping[str, float] | None = None, axes=None):
    """One panel per recorded sequence length: every run's loss curve, coloured by layer, titled as recorded.

    Args:
        data: from ``load_recorded``.
        lines: ``{label: y}`` reference lines (e.g. the trivial baseline and the "learned" line).
        axes: a sequence of ``Axes``, one per length, or None.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    runs = data.get("runs") or []
    lengths = sorted({r["seq_len"] for r in runs})
    if not lengths:
        raise LabInputError("the recorded file holds no runs.")
    if axes is None:
        fig, axes = plt.subplots(1, len(lengths), figsize=(4.2 * len(lengths), 3.8), sharey=True, squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    for ax, t in zip(axes, lengths, strict=True):
        labelled = set()
        for run in [r for r in runs if r["seq_len"] == t]:
            kind = run["layer_type"]
            k = LAYER_ORDER.index(kind) if kind in LAYER_ORDER else 3
            ax.plot(run["loss_steps"], run["loss_curve"], lw=1.2, alpha=0.85,
                    label=None if kind in labelled else kind, **line_style(k, len(run["loss_curve"])))
            labelled.add(kind)
        for j, (label, y) in enumerate((lines or {}).items()):
            ax.axhline(float(y), color="k" if j == 0 else "grey", ls="--" if j == 0 else ":", lw=1, label=label)
        ax.set_yscale("log")
        ax.set_title(f"RECORDED · T = {t}", fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("training MSE (mean per logged interval)")
    axes[0].legend(fontsize=7)
    settings = data.get("settings", {})
    fig.suptitle(f"Recorded file, not this run: {recorded_caption(data)}\n"
                 f"hidden {settings.get('hidden_size')}, batch {settings.get('batch')}, Adam lr {settings.get('lr')}, "
                 f"seeds {settings.get('seeds')}", fontsize=8)
    fig.tight_layout()
    return fig
