"""Recorded reference timings in ``data/reference/``: loading them and showing them beside live runs.

Files are written by ``python -m helpers.bench`` (``make bench``) on the machine that measured them,
with that machine's metadata. Nothing here invents a figure: no file, no figures.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from helpers.timing import TimingRecord
from helpers.validation import LabInputError

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"


@dataclass(frozen=True)
class ReferenceRun:
    """One experiment's records from one reference file, with the file's metadata."""

    experiment: str
    meta: dict
    size_name: str
    baseline: str
    fixed: dict
    records: tuple[TimingRecord, ...]
    path: Path

    @property
    def caption(self) -> str:
        """Where, when and on what the figures were measured."""
        m = self.meta
        where = m.get("device_name", "unknown device")
        extra = f", CUDA {m['cuda']}, cuDNN {m['cudnn']}" if m.get("cuda") else f", {m.get('threads')} threads"
        return (f"recorded on {where} ({m.get('device', '?')}{extra}), torch {m.get('torch')}, "
                f"{m.get('date', 'unknown date')}, by `{m.get('command', '?')}`")


def load_reference(experiment: str, device: str = "cuda", directory: Path | None = None) -> list[ReferenceRun]:
    """All recorded runs of ``experiment`` measured on ``device`` (``"cuda"`` or ``"cpu"``).

    Args:
        experiment: an ``Experiment.name``, e.g. ``"nb01.length_sweep"``.
        device: which kind of device the figures must come from.
        directory: where to look (default ``data/reference/``).

    Returns:
        A list of ``ReferenceRun``, newest file first; empty when none was recorded.

    Example:
        >>> load_reference("no-such-experiment")
        []
    """
    if device not in ("cuda", "cpu"):
        raise LabInputError(f"device must be 'cuda' or 'cpu'; got {device!r}.")
    runs = []
    for path in sorted((directory or REFERENCE_DIR).glob("*.json"), reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise LabInputError(f"{path} is not a readable reference file ({error}); regenerate it with make bench.")
        meta = data.get("meta", {})
        if meta.get("device") != device or experiment not in data.get("experiments", {}):
            continue
        entry = data["experiments"][experiment]
        records = tuple(TimingRecord(**r) for r in entry["records"])
        runs.append(ReferenceRun(experiment, meta, entry.get("size_name", "size"), entry.get("baseline", ""),
                                 entry.get("fixed", {}), records, path))
    return runs


def describe_reference(experiment: str, device: str = "cuda") -> str:
    """A short text for a notebook: the caption of the newest recorded run, or that there is none.

    Example:
        >>> describe_reference("no-such-experiment").startswith("No recorded")
        True
    """
    runs = load_reference(experiment, device)
    if not runs:
        return (f"No recorded {device.upper()} reference figures for {experiment!r} in data/reference/ "
                "(none were measured yet; nothing is estimated in their place).")
    return f"{experiment}: {runs[0].caption}"


def plot_reference(experiment: str, device: str = "cuda", ax=None):
    """Plot the newest recorded run of ``experiment`` (log-log), titled with where and when it was measured.

    Returns:
        The matplotlib ``Axes``, or None when nothing was recorded (a sentence is printed instead).
    """
    from helpers.timing import plot_timings

    runs = load_reference(experiment, device)
    if not runs:
        print(describe_reference(experiment, device))
        return None
    run = runs[0]
    ax = plot_timings(run.records, size_label=run.size_name, ax=ax)
    ax.set_title(f"recorded: {run.meta.get('device_name')}, {run.meta.get('date', '')[:10]}", fontsize=9)
    return ax
