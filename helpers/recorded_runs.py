"""Recorded long training runs (``data/recorded/``): read the file, say where it came from, plot it.

``scripts/record_long_range.py`` writes ``data/recorded/long_range.json`` by running notebook 05's own
training cells for longer than a lesson can wait; the notebook shows the file beside its live run.
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from helpers.lines import line_style
from helpers.validation import LabInputError

RECORDED_PATH = Path(__file__).resolve().parents[1] / "data" / "recorded" / "long_range.json"
LAYER_ORDER = ("RNN", "LSTM", "GRU")


def load_recorded(path: Path | str | None = None) -> dict:
    """The file ``scripts/record_long_range.py`` wrote: ``{"meta": ..., "settings": ..., "runs": [...]}``.

    Raises:
        LabInputError: when the file is missing or unreadable (with the command that writes it).

    Example:
        >>> sorted(load_recorded())[:3]
        ['meta', 'runs', 'settings']
    """
    path = Path(path) if path is not None else RECORDED_PATH
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabInputError(f"{path} does not exist; write it with 'python scripts/record_long_range.py'.") from None
    except (OSError, json.JSONDecodeError) as error:
        raise LabInputError(f"{path} is not readable JSON ({error}); rewrite it with scripts/record_long_range.py.") from error
    for key in ("meta", "settings", "runs"):
        if key not in data:
            raise LabInputError(f"{path} lacks {key!r}; rewrite it with scripts/record_long_range.py.")
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
