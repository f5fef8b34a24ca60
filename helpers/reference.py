"""Recorded reference timings in ``data/reference/``: loading them and showing them beside live runs.

Files are written by ``python -m helpers.bench`` (``make bench``) on the machine that measured them,
with that machine's metadata. Nothing here invents a figure: no file, no figures. A file that cannot be
read, was changed after ``make bench`` wrote it (its SHA-256, see ``helpers.integrity``), does not have the
expected layout, or whose metadata contradicts its records (a device word that is not the device measured)
is skipped with a one-line warning on stderr naming it, so one bad file never stops a notebook and no CPU
figure is shown as a GPU one.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from helpers.integrity import DataFileError, read_json_verified
from helpers.timing import MODES, TimingRecord
from helpers.validation import LabInputError

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"
NOT_TIMINGS = frozenset({"verdicts.json"})  # make verdicts' margins live beside the timings but are no timing file
REFERENCE_WRITER = "make bench"  # the command that records these files, named whenever one is refused
META_REQUIRED = ("device", "device_name", "date", "torch")  # other metadata keys are kept as they come
ENTRY_REQUIRED = ("size_name", "baseline", "records")
ENTRY_OPTIONAL = ("name", "sizes", "fixed", "modes")
RECORD_KEYS = tuple(f.name for f in fields(TimingRecord))


class BadReferenceFile(Exception):
    """Why one reference file cannot be used (reported as a warning line, never raised to the learner)."""


def _check_record(record: object, where: str) -> TimingRecord:
    if not isinstance(record, dict):
        raise BadReferenceFile(f"{where} is a {type(record).__name__}, not an object")
    missing = [k for k in RECORD_KEYS if k not in record]
    extra = sorted(set(record) - set(RECORD_KEYS))
    if missing or extra:
        raise BadReferenceFile(f"{where} has " + "; ".join(
            part for part in (f"missing keys {missing}" if missing else "", f"unknown keys {extra}" if extra else "")
            if part))
    for key in ("implementation", "mode", "device"):
        if not isinstance(record[key], str):
            raise BadReferenceFile(f"{where}.{key} is {record[key]!r}, not a string")
    if record["mode"] not in MODES:
        raise BadReferenceFile(f"{where}.mode is {record['mode']!r}, not one of {MODES}")
    for key in ("size", "runs", "threads"):
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadReferenceFile(f"{where}.{key} is {value!r}, not a positive integer")
    for key, low in (("median_s", 0.0), ("iqr_s", None)):
        value = record[key]
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not ok or (value <= low if low is not None else value < 0):
            raise BadReferenceFile(f"{where}.{key} is {value!r}, not a finite "
                                   f"{'positive' if low is not None else 'non-negative'} number of seconds")
    return TimingRecord(**record)


def _check_document(data: object) -> dict:
    """The document if it has a reference file's layout; raises ``BadReferenceFile`` saying what is wrong."""
    if not isinstance(data, dict):
        raise BadReferenceFile(f"the top level is a {type(data).__name__}, not an object with 'meta' and 'experiments'")
    missing = [k for k in ("meta", "experiments") if k not in data]
    if missing:
        raise BadReferenceFile(f"the top level lacks {missing} (it has {sorted(data)})")
    meta, experiments = data["meta"], data["experiments"]
    if not isinstance(meta, dict):
        raise BadReferenceFile(f"'meta' is a {type(meta).__name__}, not an object")
    missing = [k for k in META_REQUIRED if k not in meta]
    if missing:
        raise BadReferenceFile(f"'meta' lacks {missing}")
    for key in META_REQUIRED:
        if not isinstance(meta[key], str):
            raise BadReferenceFile(f"meta.{key} is {meta[key]!r}, not a string")
    if meta["device"] not in ("cuda", "cpu"):
        raise BadReferenceFile(f"meta.device is {meta['device']!r}, not 'cuda' or 'cpu'")
    if not isinstance(experiments, dict):
        raise BadReferenceFile(f"'experiments' is a {type(experiments).__name__}, not an object")
    if not experiments:
        raise BadReferenceFile("'experiments' is empty")
    for name, entry in experiments.items():
        where = f"experiments[{name!r}]"
        if not isinstance(entry, dict):
            raise BadReferenceFile(f"{where} is a {type(entry).__name__}, not an object")
        missing = [k for k in ENTRY_REQUIRED if k not in entry]
        extra = sorted(set(entry) - set(ENTRY_REQUIRED) - set(ENTRY_OPTIONAL))
        if missing or extra:
            raise BadReferenceFile(f"{where} has " + "; ".join(
                part for part in (f"missing keys {missing}" if missing else "",
                                  f"unknown keys {extra}" if extra else "") if part))
        for key in ("size_name", "baseline"):
            if not isinstance(entry[key], str):
                raise BadReferenceFile(f"{where}.{key} is {entry[key]!r}, not a string")
        if not isinstance(entry.get("fixed", {}), dict):
            raise BadReferenceFile(f"{where}.fixed is a {type(entry['fixed']).__name__}, not an object")
        records = entry["records"]
        if not isinstance(records, list):
            raise BadReferenceFile(f"{where}.records is a {type(records).__name__}, not a list")
        if not records:
            raise BadReferenceFile(f"{where}.records is empty")
        checked = [_check_record(r, f"{where}.records[{i}]") for i, r in enumerate(records)]
        if entry["baseline"] not in {r.implementation for r in checked}:
            raise BadReferenceFile(f"{where}.baseline {entry['baseline']!r} is not among its implementations")
    return data


def _check_consistency(data: dict) -> dict:
    """The metadata must describe the records: a device word that names what the figures were measured on."""
    meta = data["meta"]
    device = meta["device"]
    if device == "cpu" and (meta.get("cuda") or meta.get("cudnn")):
        raise BadReferenceFile(f"meta.device is 'cpu' but the file names CUDA {meta.get('cuda')!r} / cuDNN "
                               f"{meta.get('cudnn')!r}")
    if device == "cpu" and meta.get("cpu_name") and meta["device_name"] != meta["cpu_name"]:
        raise BadReferenceFile(f"meta.device is 'cpu' but device_name {meta['device_name']!r} is not the CPU "
                               f"{meta['cpu_name']!r}")
    if device == "cuda" and not (isinstance(meta.get("cuda"), str) and meta["cuda"]):
        raise BadReferenceFile("meta.device is 'cuda' but the file names no CUDA version (meta.cuda)")
    if device == "cuda" and meta.get("cpu_name") and meta["device_name"] == meta["cpu_name"]:
        raise BadReferenceFile(f"meta.device is 'cuda' but device_name {meta['device_name']!r} is the CPU")
    for name, entry in data["experiments"].items():
        devices = sorted({r["device"] for r in entry["records"]})
        if devices != [device]:
            raise BadReferenceFile(f"experiments[{name!r}] was measured on {devices}, but meta.device is {device!r}")
        for key, field in (("sizes", "size"), ("modes", "mode")):
            if key in entry and sorted(entry[key]) != sorted({r[field] for r in entry["records"]}):
                raise BadReferenceFile(f"experiments[{name!r}].{key} {entry[key]} does not match its records")
    return data


def _read(path: Path) -> dict:
    try:
        data = read_json_verified(path, REFERENCE_WRITER)
    except DataFileError as error:
        raise BadReferenceFile(error.reason) from None
    return _check_consistency(_check_document(data))


def _warn_skipped(path: Path, reason: str) -> None:
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    print(f"⚠ skipped reference file {shown}: {reason}. Delete it, or re-record it with {REFERENCE_WRITER}.",
          file=sys.stderr)


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

    A file that is not valid JSON, lacks a required key or has an unknown one, holds a value of the wrong
    type or an empty list of records is skipped, with one line on stderr naming it and what is wrong.

    Args:
        experiment: an ``Experiment.name``, e.g. ``"nb01.length_sweep"``.
        device: which kind of device the figures must come from.
        directory: where to look (default ``data/reference/``).

    Returns:
        A list of ``ReferenceRun``, newest file first; empty when none was recorded.

    Raises:
        LabInputError: for an experiment name that is not a string, an unknown device, or a directory
            argument that is not a path.

    Example:
        >>> load_reference("no-such-experiment")
        []
    """
    if not isinstance(experiment, str) or not experiment:
        raise LabInputError(f"experiment must be a name such as 'nb01.length_sweep'; got {experiment!r}.")
    if device not in ("cuda", "cpu"):
        raise LabInputError(f"device must be 'cuda' or 'cpu'; got {device!r}.")
    if directory is not None and not isinstance(directory, (str, os.PathLike)):
        raise LabInputError(f"directory must be a path; got {type(directory).__name__}.")
    runs = []
    for path in sorted(Path(directory or REFERENCE_DIR).glob("*.json"), reverse=True):
        if path.name in NOT_TIMINGS:
            continue
        try:
            data = _read(path)
        except BadReferenceFile as problem:
            _warn_skipped(path, str(problem))
            continue
        meta = data["meta"]
        if meta["device"] != device or experiment not in data["experiments"]:
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
