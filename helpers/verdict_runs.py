"""``python -m helpers.verdict_runs`` (``make verdicts``): how firmly does each checked verdict hold?

Strict nbval re-checks every verdict on every run, so a verdict that sits close to its threshold makes a
test flaky and, worse, lets a live workshop print a conclusion that contradicts the prose. This command
executes every notebook several times (default 3), one run with every core kept busy by spinning processes
it starts and stops itself, collects each run's verdict records (``helpers.verdicts`` hands them over
through ``RNN_LAB_VERDICTS_OUT``), and writes one entry per verdict to ``data/reference/verdicts.json``:
``notebook``, ``section``, ``claim``, ``evidence``, ``threshold``, ``measured`` (one value per run),
``outcomes`` (one bool per run) and ``worst_margin`` (the smallest measured/threshold ratio on the deciding
side). It prints the table and exits 1 when an outcome changed between runs, a verdict is missing from a
run, or a timing verdict's worst margin is below :data:`TIMING_MARGIN`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from helpers.bench import find_notebooks, machine_metadata
from helpers.execute import execute_notebook
from helpers.integrity import write_json_signed
from helpers.reference import REFERENCE_DIR
from helpers.validation import LabInputError
from helpers.verdicts import OUT_VARIABLE

TIMING_MARGIN = 1.5
DEFAULT_OUT = REFERENCE_DIR / "verdicts.json"


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[list[subprocess.Popen]]:
    """Keep ``count`` cores busy with spinning processes for the duration of the block, then stop them.

    Example:
        >>> with busy_cores(1) as spinners:
        ...     alive = [p.poll() is None for p in spinners]
        >>> alive, [p.poll() is not None for p in spinners]
        ([True], [True])
    """
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield spinners
    finally:
        for process in spinners:
            process.kill()
        for process in spinners:
            process.wait()


def execute(path: Path, out: Path, cell_timeout: float) -> None:
    """Execute one notebook in a fresh kernel whose verdict records go to ``out``; outputs are not stored."""
    execute_notebook(path, cell_timeout=cell_timeout, env={OUT_VARIABLE: str(out)}, store_widget_state=False)


def read_run(path: Path) -> dict[str, dict]:
    """The records one execution handed over, keyed ``"NN §S: claim"`` (a re-run cell's last record wins)."""
    records = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                records[f"{entry['notebook']} §{entry['section']}: {entry['claim']}"] = entry
    return records


def combine(runs: Sequence[dict[str, dict]]) -> list[dict]:
    """One entry per verdict over all runs, with its measurements, outcomes, worst margin and problems.

    Example:
        >>> a = {"k": {"notebook": "01", "section": 5, "claim": "c", "evidence": "timing", "basis": "b",
        ...            "quantity": "q", "comparison": ">", "threshold": 2, "measured": 4.0, "holds": True,
        ...            "margin": 2.0}}
        >>> b = {"k": dict(a["k"], measured=2.5, margin=1.25)}
        >>> entry = combine([a, b])[0]
        >>> entry["outcomes"], entry["worst_margin"], entry["problems"]
        ([True, True], 1.25, ['timing margin below 1.5'])
    """
    keys = list(dict.fromkeys(k for run in runs for k in run))
    entries = []
    for key in keys:
        seen = [run.get(key) for run in runs]
        first = next(r for r in seen if r is not None)
        present = [r for r in seen if r is not None]
        margins = [r["margin"] for r in present if r["margin"] is not None]
        entry = {"notebook": first["notebook"], "section": first["section"], "claim": first["claim"],
                 "evidence": first["evidence"], "basis": first["basis"], "quantity": first["quantity"],
                 "comparison": first["comparison"], "threshold": first["threshold"],
                 "measured": [r["measured"] if r else None for r in seen],
                 "outcomes": [r["holds"] if r else None for r in seen],
                 "worst_margin": min(margins) if len(margins) == len(present) and margins else None}
        problems = []
        if len(present) < len(runs):
            problems.append(f"missing from {len(runs) - len(present)} run(s)")
        if len({r["holds"] for r in present}) > 1:
            problems.append("outcome changed between runs")
        if entry["evidence"] == "timing" and (entry["worst_margin"] is None or entry["worst_margin"] < TIMING_MARGIN):
            problems.append(f"timing margin below {TIMING_MARGIN}")
        entry["problems"] = problems
        entries.append(entry)
    return entries


def format_table(entries: Sequence[dict]) -> str:
    """The margins as a text table, worst first within each notebook; problems flagged with ✗."""
    lines = [f"{'':2}{'verdict':<78} {'evidence':<13} {'outcomes':<10} {'worst margin':>12}"]
    for entry in entries:
        outcomes = "".join("?" if o is None else ("T" if o else "F") for o in entry["outcomes"])
        margin = "-" if entry["worst_margin"] is None else f"{entry['worst_margin']:.2f}"
        name = f"{entry['notebook']} §{entry['section']}: {entry['claim']}"
        name = name if len(name) <= 78 else name[:75] + "..."
        mark = "✗" if entry["problems"] else " "
        lines.append(f"{mark} {name:<78} {entry['evidence']:<13} {outcomes:<10} {margin:>12}"
                     + (f"   ← {', '.join(entry['problems'])}" if entry["problems"] else ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.verdict_runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="*", help="numbers such as 01 03 (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="executions of each notebook (default 3)")
    parser.add_argument("--loaded-run", type=int, default=2,
                        help="which run (1-based) keeps every core busy; 0 for none (default 2)")
    parser.add_argument("--cell-timeout", type=float, default=600.0, help="seconds per cell (default 600)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        if not 1 <= args.runs <= 10:
            raise LabInputError(f"--runs must be between 1 and 10; got {args.runs}.")
        if not 0 <= args.loaded_run <= args.runs:
            raise LabInputError(f"--loaded-run must be between 0 (none) and --runs ({args.runs}); got {args.loaded_run}.")
        if not 10 <= args.cell_timeout <= 3600:
            raise LabInputError(f"--cell-timeout must be between 10 and 3600 seconds; got {args.cell_timeout}.")
        if not args.out.parent.is_dir():
            raise LabInputError(f"--out's folder {args.out.parent} does not exist.")
        notebooks = find_notebooks(args.notebooks)
    except LabInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 2
    runs: list[dict[str, dict]] = []
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(1, args.runs + 1):
            loaded = run == args.loaded_run
            out = Path(scratch) / f"run{run}.jsonl"
            with busy_cores(cores) if loaded else contextlib.nullcontext():
                for path in notebooks:
                    tick = time.time()
                    print(f"run {run}/{args.runs}{' (all cores busy)' if loaded else ''}: {path.name}", flush=True)
                    try:
                        execute(path, out, args.cell_timeout)
                    except LabInputError as error:
                        print(f"error: {error}", file=sys.stderr)
                        return 1
                    print(f"  {time.time() - tick:.0f} s", flush=True)
            runs.append(read_run(out))
    entries = combine(runs)
    print(format_table(entries))
    failed = [e for e in entries if e["problems"]]
    command = "make verdicts" if os.environ.get("MAKELEVEL") else shlex.join(
        ["python", "-m", "helpers.verdict_runs", *(argv if argv is not None else sys.argv[1:])])
    document = {
        # the same machine description make bench records, plus how these runs were made
        "meta": machine_metadata(torch.device("cpu")) | {
            "command": command, "runs": args.runs, "loaded_run": args.loaded_run or None,
            "notebooks": [p.name for p in notebooks], "seconds": round(time.time() - started),
            "timing_margin_required": TIMING_MARGIN},
        "verdicts": entries,
    }
    write_json_signed(args.out, document, writer="make verdicts")
    print(f"\n{len(entries)} verdicts, {len(failed)} with problems; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
