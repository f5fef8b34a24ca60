"""``python -m helpers.bench`` (``make bench``): record the notebooks' standard timing experiments to JSON.

It runs the same ``Experiment`` objects the notebooks' panels use (``standard_experiments`` in
``helpers.timedist``, ``helpers.autograd_loops``, ``helpers.cells`` and
``helpers.rnn_compare``) and writes one file of
records whose metadata (versions, device, threads, date, exact command) is collected here, on the
machine that measured. ``helpers.reference`` reads these files back for the notebooks.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from helpers.device import cpu_name, pick_device
from helpers.reference import REFERENCE_DIR
from helpers.timing import Experiment, TimingRecord, run_experiment
from helpers.validation import LabInputError

EXPERIMENT_MODULES = ("helpers.timedist", "helpers.autograd_loops", "helpers.cells",
                      "helpers.rnn_compare")
SCALES = ("notebook", "reference")


def collect_experiments(scale: str = "reference", modules: Sequence[str] | None = None) -> list[Experiment]:
    """The standard experiments of every notebook module that defines ``standard_experiments(scale)``.

    Args:
        scale: ``"notebook"`` (the small sizes the notebooks run live) or ``"reference"`` (larger).
        modules: module names to ask (default: ``EXPERIMENT_MODULES``).

    Returns:
        The experiments, in module order.

    Example:
        >>> collect_experiments("notebook", modules=[])
        []
    """
    if scale not in SCALES:
        raise LabInputError(f"scale must be one of {SCALES}; got {scale!r}.")
    experiments = []
    for name in EXPERIMENT_MODULES if modules is None else modules:
        module = importlib.import_module(name)
        experiments += module.standard_experiments(scale)
    return experiments


def machine_metadata(device: torch.device, threads: int) -> dict[str, object]:
    """What was measured on: versions, device name, threads, date; read from this machine now.

    Example:
        >>> machine_metadata(torch.device("cpu"), 2)["device"]
        'cpu'
    """
    cuda = device.type == "cuda"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
    }


def run_bench(experiments: Sequence[Experiment], device: str, threads: int, min_run_time: float,
              command: str) -> dict:
    """Run the experiments and return the JSON-ready document (``meta`` + ``experiments``)."""
    dev = pick_device(device)
    document = {"meta": {**machine_metadata(dev, threads), "command": command, "min_run_time_s": min_run_time},
                "experiments": {}}
    for i, experiment in enumerate(experiments, 1):
        start = time.perf_counter()
        print(f"[{i}/{len(experiments)}] {experiment.name}: sizes {list(experiment.sizes)}, "
              f"{', '.join(experiment.builders)}", file=sys.stderr, flush=True)
        records = run_experiment(experiment, str(dev), threads, min_run_time, progress=True)
        document["experiments"][experiment.name] = {
            "size_name": experiment.size_name, "baseline": experiment.baseline,
            "sizes": list(experiment.sizes), "fixed": dict(experiment.fixed), "modes": list(experiment.modes),
            "records": [r.as_dict() for r in records]}
        print(f"    done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return document


def bench_record(out: str | os.PathLike | None, name: str, records: Sequence[TimingRecord], *, size_name: str,
                 baseline: str, fixed: dict | None = None) -> None:
    """Hand a notebook's timing records to ``make bench``; does nothing when ``out`` is None.

    ``make bench`` executes each notebook with ``BENCH_OUT`` set in its parameters cell, so the figures it
    records come from the code the notebook shows. Each call appends one JSON line to ``out``.

    Args:
        out: the notebook's ``BENCH_OUT`` (None during a lesson: nothing is written).
        name: a stable experiment name, ``"nb0N.what"``; reference files are keyed by it.
        records: ``TimingRecord`` s from ``helpers.timing``.
        size_name: the swept size's label, e.g. ``"sequence length T"``.
        baseline: the implementation ratios are taken against.
        fixed: the other sizes (batch, width, ...).

    Example:
        >>> bench_record(None, "nb00.demo", [], size_name="T", baseline="loop")  # a lesson run: no file
    """
    if out is None:
        return
    if not re.fullmatch(r"nb\d\d\.[A-Za-z0-9_.-]+", str(name)):
        raise LabInputError(f"experiment name must look like 'nb01.length_sweep'; got {name!r}.")
    records = list(records)
    if not records or not all(isinstance(r, TimingRecord) for r in records):
        raise LabInputError(f"{name}: records must be a non-empty list of helpers.timing.TimingRecord.")
    if baseline not in {r.implementation for r in records}:
        raise LabInputError(f"{name}: baseline {baseline!r} is not among the timed implementations "
                            f"{sorted({r.implementation for r in records})}.")
    entry = {"name": name, "size_name": size_name, "baseline": baseline,
             "sizes": sorted({r.size for r in records}), "fixed": dict(fixed or {}),
             "modes": sorted({r.mode for r in records}), "records": [r.as_dict() for r in records]}
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def default_output(meta: dict) -> Path:
    """``data/reference/<device>-<device name>-<date>.json``."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(meta["device_name"]).lower()).strip("-")[:40]
    return REFERENCE_DIR / f"{meta['device']}-{slug}-{str(meta['date'])[:10]}.json"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--scale", default="reference", choices=SCALES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds of measurement per point")
    parser.add_argument("--only", nargs="*", default=None, help="experiment names to run (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: data/reference/...)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    args = parser.parse_args(argv)
    command = "python -m helpers.bench " + " ".join(map(shlex.quote, argv if argv is not None else sys.argv[1:]))
    try:
        experiments = collect_experiments(args.scale)
        if args.only:
            unknown = set(args.only) - {e.name for e in experiments}
            if unknown:
                raise LabInputError(f"unknown experiment(s) {sorted(unknown)}; known: {[e.name for e in experiments]}")
            experiments = [e for e in experiments if e.name in args.only]
        if args.list:
            for e in experiments:
                print(f"{e.name}: {e.size_name} in {list(e.sizes)}; {', '.join(e.builders)}; fixed {dict(e.fixed)}")
            return 0
        document = run_bench(experiments, args.device, args.threads, args.min_run_time, command)
    except LabInputError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    out = args.out or default_output(document["meta"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
