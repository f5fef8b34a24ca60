"""``python -m helpers.bench`` (``make bench``): record the notebooks' timing experiments to JSON.

There is one source for every recorded figure: the notebooks themselves. The command executes each notebook
(with nbclient, in a fresh kernel) after replacing its ``parameters`` cell with ``SCALE``, ``DEVICE`` and
``BENCH_OUT`` values, as papermill does. The notebook's timing cells hand their records to ``bench_record``,
which appends them to ``BENCH_OUT``; the command then adds the metadata it collects on the machine that
measured (versions, device, date, git commit, the exact command) and writes one JSON file atomically.
``helpers.reference`` reads these files back for the notebooks.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from helpers.device import cpu_name, pick_device
from helpers.execute import MAX_CELL_TIMEOUT_S, execute_notebook, inject_parameters  # noqa: F401 (re-exported)
from helpers.integrity import write_json_signed
from helpers.reference import REFERENCE_DIR, REFERENCE_WRITER
from helpers.timing import TimingRecord
from helpers.validation import LabInputError, one_line, require_choice, require_writable

SCALES = ("notebook", "reference")
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
_RECORD_CALL = re.compile(r"bench_record\(\s*BENCH_OUT\s*,\s*[fr]?[\"'](nb\d\d\.[^\"']+)[\"']")


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


def read_records(path: str | os.PathLike) -> dict[str, dict]:
    """The experiments a notebook run handed over through ``bench_record``, keyed by name (last one wins).

    Args:
        path: the ``BENCH_OUT`` file (JSON lines); a missing file means nothing was recorded.

    Returns:
        ``{name: entry}`` with ``size_name``, ``baseline``, ``sizes``, ``fixed``, ``modes``, ``records``.

    Example:
        >>> read_records("/nonexistent/bench.jsonl")
        {}
    """
    path = Path(path)
    if not path.exists():
        return {}
    experiments = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            name = entry.pop("name")
            entry["records"] = [TimingRecord(**r).as_dict() for r in entry["records"]]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise LabInputError(f"{path}, line {number}: not a bench_record entry ({error}).") from None
        experiments[name] = entry
    return experiments


def find_notebooks(selection: Sequence[str] | None = None, directory: Path | None = None) -> list[Path]:
    """The course notebooks to execute, in order: all of them, or those named by number or file name.

    Example:
        >>> [p.name[:2] for p in find_notebooks(["01", "03"])]
        ['01', '03']
    """
    notebooks = sorted((directory or NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return notebooks
    chosen = []
    for item in selection:
        matches = [p for p in notebooks if p.name == item or p.name[:2] == str(item).zfill(2)]
        if not matches:
            raise LabInputError(f"no notebook {item!r}; choose from {[p.name for p in notebooks]} "
                                "(a number such as 01 is enough).")
        chosen += [p for p in matches if p not in chosen]
    return chosen


def recorded_names(notebook: Path) -> list[str]:
    """The experiment names a notebook hands to ``bench_record`` (read from its code cells).

    Example:
        >>> all(name.startswith("nb") for p in find_notebooks() for name in recorded_names(p))
        True
    """
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    return list(dict.fromkeys(_RECORD_CALL.findall(source)))


def run_notebook(path: Path, *, scale: str, device: str, out: Path, cell_timeout: float,
                 keep_executed: Path | None = None) -> None:
    """Execute one notebook in a fresh kernel with the bench's parameters; its records go to ``out``.

    Goes through ``helpers.execute.execute_notebook`` (bounded shell polling: no nbclient#312 stall).

    Raises:
        LabInputError: when the notebook has no parameters cell or a cell fails (the cell's error is named).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    try:
        execute_notebook(nb, cell_timeout=cell_timeout, cwd=path.parent,
                         parameters={"SCALE": scale, "DEVICE": device, "BENCH_OUT": str(out)})
    except LabInputError as error:
        raise LabInputError(f"{path.name} failed while recording: {error} (--cell-timeout sets a cell's limit)"
                            ) from None
    finally:
        if keep_executed is not None:
            keep_executed.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, keep_executed / path.name)


def machine_metadata(device: torch.device) -> dict[str, object]:
    """What was measured on: versions, device name, date, git commit; read from this machine now.

    Example:
        >>> machine_metadata(torch.device("cpu"))["device"]
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
        "driver": _nvidia_driver() if cuda else None,
        "cpu_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
    }


def _nvidia_driver() -> str | None:
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10)
        return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def default_output(meta: dict) -> Path:
    """``data/reference/<device>-<device name>-<date>.json``.

    Example:
        >>> default_output({"device": "cpu", "device_name": "Some CPU @ 2GHz", "date": "2026-12-01T00:00"}).name
        'cpu-some-cpu-2ghz-2026-12-01.json'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", str(meta["device_name"]).lower()).strip("-")[:40]
    return REFERENCE_DIR / f"{meta['device']}-{slug}-{str(meta['date'])[:10]}.json"


def write_document(document: dict, out: Path) -> Path:
    """Write the JSON document atomically with its SHA-256 (``helpers.integrity.write_json_signed``).

    A run that is interrupted never leaves a truncated file where the notebooks would read it, and a file
    edited afterwards is refused when it is loaded.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "ref.json"
        >>> write_document({"meta": {}, "experiments": {}}, target).read_text().startswith("{")
        True
    """
    return write_json_signed(out, document, writer=REFERENCE_WRITER)


def _thread_summary(experiments: dict[str, dict]) -> int | str | None:
    threads = sorted({r["threads"] for e in experiments.values() for r in e["records"]})
    return threads[0] if len(threads) == 1 else (" and ".join(map(str, threads)) if threads else None)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--scale", default="reference", choices=SCALES)
    parser.add_argument("--notebooks", nargs="*", default=None, help="notebooks to run, e.g. 01 02 (default: all)")
    parser.add_argument("--cell-timeout", type=float, default=1800.0, help="seconds one cell may run")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: data/reference/...)")
    parser.add_argument("--keep-executed", type=Path, default=None,
                        help="folder to save the executed notebooks in, to inspect a run")
    parser.add_argument("--list", action="store_true", help="list the notebooks and what they record, then exit")
    args = parser.parse_args(argv)
    command = "python -m helpers.bench " + " ".join(map(shlex.quote, argv if argv is not None else sys.argv[1:]))
    try:
        require_choice(args.scale, "scale", SCALES)
        if not (math.isfinite(args.cell_timeout) and 0 < args.cell_timeout <= MAX_CELL_TIMEOUT_S):
            raise LabInputError(f"--cell-timeout must be a number of seconds in (0, {MAX_CELL_TIMEOUT_S}]; "
                                f"got {args.cell_timeout}.")
        notebooks = find_notebooks(args.notebooks)
        if not args.list:  # before any notebook runs: a bad --out must not cost a whole recording
            require_writable(args.out if args.out is not None else REFERENCE_DIR / "new.json", "--out", suffix=".json")
            if args.keep_executed is not None and args.keep_executed.exists() and not args.keep_executed.is_dir():
                raise LabInputError(f"--keep-executed {str(args.keep_executed)!r} is a file; name a folder.")
        if args.list:
            for path in notebooks:
                print(f"{path.name}: {', '.join(recorded_names(path)) or '(records nothing)'}")
            return 0
        dev = pick_device(args.device)
        meta = machine_metadata(dev)
        experiments: dict[str, dict] = {}
        with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
            for i, path in enumerate(notebooks, 1):
                out = Path(scratch) / f"{path.stem}.jsonl"
                print(f"[{i}/{len(notebooks)}] {path.name} (scale {args.scale}, device {dev.type})",
                      file=sys.stderr, flush=True)
                start = time.perf_counter()
                run_notebook(path, scale=args.scale, device=dev.type, out=out, cell_timeout=args.cell_timeout,
                             keep_executed=args.keep_executed)
                recorded = read_records(out)
                experiments.update(recorded)
                print(f"    {len(recorded)} experiment(s) in {time.perf_counter() - start:.0f} s: "
                      f"{', '.join(recorded) or 'none'}", file=sys.stderr, flush=True)
        if not experiments:
            raise LabInputError("no notebook recorded anything; timing cells call bench_record(BENCH_OUT, ...).")
    except LabInputError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    meta.update(threads=_thread_summary(experiments), scale=args.scale, command=command,
                notebooks=[p.name for p in notebooks])
    try:
        out = write_document({"meta": meta, "experiments": experiments}, args.out or default_output(meta))
    except (OSError, LabInputError) as error:
        print(f"bench: could not write the recording ({one_line(str(error), 200)}).", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
