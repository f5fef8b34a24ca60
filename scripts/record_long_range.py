"""Train RNN / LSTM / GRU longer on the adding problem with notebook 05's own code, and record the runs.

One source: the script does not keep a copy of the task or the training loop. It executes the code cells of
``notebooks/05_rnn_lstm_gru.ipynb`` tagged ``long-range`` (the imports, ``adding_problem``, ``Regressor``,
``train``, ``steps_to_learn``, ``evaluate``) in a fresh namespace and calls those functions, so the recorded
runs come from exactly the code a learner reads and runs live. The file it writes,
``data/recorded/long_range.json``, carries the metadata of the run that produced it: date, torch, CPU,
threads, the exact command, the git commit, whether the notebook or helpers had uncommitted changes, and the
SHA-256 of the executed cells (``tests/test_record_long_range.py`` checks that it still matches the notebook).

Usage (from the repository root):
    .venv/bin/python scripts/record_long_range.py                     # the recorded defaults
    .venv/bin/python scripts/record_long_range.py --lengths 10 30 --steps 500 --seeds 0 --out /tmp/x.json

Runs go seed by seed (every length and layer for the first seed, then the next). The CPU budget
(``--budget-s``, process CPU seconds) bounds the whole invocation: a run still going when it is spent is
stopped, and it and every run not started are listed under ``"skipped"``. Every number on the command line is
checked before anything runs. The file is written with its SHA-256 (``helpers.integrity``), which the
notebook's loader verifies.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers.device import cpu_name  # noqa: E402
from helpers.integrity import write_json_signed  # noqa: E402
from helpers.recorded_runs import RECORDED_PATH, RECORDED_WRITER, downsample  # noqa: E402
from helpers.validation import (  # noqa: E402
    LabInputError,
    require_file,
    require_number,
    require_positive_int,
    require_writable,
)

NOTEBOOK = ROOT / "notebooks" / "05_rnn_lstm_gru.ipynb"
TAG = "long-range"
LAYERS = ("RNN", "LSTM", "GRU")


def tagged_cells(notebook: Path = NOTEBOOK, tag: str = TAG) -> list[str]:
    """The source of every code cell of ``notebook`` tagged ``tag``, in notebook order."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
               for c in cells if c["cell_type"] == "code" and tag in c.get("metadata", {}).get("tags", [])]
    if not sources:
        raise SystemExit(f"{notebook} has no code cell tagged {tag!r}; nothing to run.")
    return sources


def cells_digest(sources: list[str]) -> str:
    """SHA-256 of the executed cells (joined by NUL), to tie a recording to the code that made it."""
    return hashlib.sha256("\0".join(sources).encode()).hexdigest()


def notebook_functions(sources: list[str], notebook: Path = NOTEBOOK) -> dict:
    """Execute the cells in one fresh namespace (as the notebook's kernel does) and return it."""
    namespace: dict = {"__name__": "notebook_cells"}
    for i, source in enumerate(sources):
        exec(compile(source, f"{Path(notebook).name} [{TAG} cell {i + 1}]", "exec"), namespace)  # noqa: S102
    missing = [name for name in ("train", "evaluate", "steps_to_learn") if not callable(namespace.get(name))]
    if missing:
        raise SystemExit(f"the {TAG!r} cells of {notebook} no longer define {missing}.")
    return namespace


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# Bounds that keep one invocation within an afternoon on a laptop CPU; the recorded defaults are far below them.
LIMITS = {"lengths": 1000, "steps": 20_000, "seeds": 1000, "hidden": 1024, "batch": 4096, "points": 20_000}
MAX_BUDGET_S = 4 * 3600


def _positive_ints(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, every number checked before anything runs (one line per problem, exit status 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=_positive_ints, nargs="+", default=[10, 30, 60], help="sequence lengths T")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS)
    parser.add_argument("--steps", type=_positive_ints, default=1200, help="Adam steps per run, one fresh batch each")
    parser.add_argument("--seeds", type=_positive_ints, nargs="+", default=[0, 1])
    parser.add_argument("--hidden", type=_positive_ints, default=32)
    parser.add_argument("--batch", type=_positive_ints, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--points", type=_positive_ints, default=120, help="points kept per loss curve (interval means)")
    parser.add_argument("--budget-s", type=float, default=900.0,
                        help="CPU seconds for all runs; a run still going when they are spent is stopped and skipped")
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    parser.add_argument("--out", type=Path, default=RECORDED_PATH)
    args = parser.parse_args(argv)
    try:
        for name in ("steps", "hidden", "batch", "points"):
            require_positive_int(getattr(args, name), f"--{name}", maximum=LIMITS[name], reason="(this script's bound)")
        for name, low in (("lengths", 2), ("seeds", 0)):
            for value in getattr(args, name):
                if not low <= value <= LIMITS[name]:
                    raise LabInputError(f"--{name} values must be whole numbers in {low}..{LIMITS[name]}; got {value}.")
        for name in ("lengths", "seeds", "layers"):
            if len(set(getattr(args, name))) != len(getattr(args, name)):
                raise LabInputError(f"--{name} lists a value twice: {getattr(args, name)}.")
        if args.points > args.steps:
            raise LabInputError(f"--points {args.points} is more than --steps {args.steps}; keep at most one point a step.")
        require_number(args.lr, "--lr", low=0, high=10, low_inclusive=False)
        require_number(args.budget_s, "--budget-s", low=0, high=MAX_BUDGET_S, low_inclusive=False, unit="CPU seconds")
        require_file(args.notebook, "--notebook")
        require_writable(args.out, "--out", suffix=".json")
    except LabInputError as error:
        parser.exit(2, f"record_long_range: {error}\n")
    return args


class _BudgetSpent(Exception):
    """Raised inside a run when the process has used up --budget-s of CPU time."""


@contextmanager
def cpu_budget(seconds: float) -> Iterator[None]:
    """Stop the block with ``_BudgetSpent`` once this process has used ``seconds`` more CPU time (POSIX timers;
    elsewhere the budget is only checked between runs)."""
    if seconds <= 0:
        raise _BudgetSpent
    if not hasattr(signal, "setitimer"):
        yield
        return

    def spent(_signum, _frame):
        raise _BudgetSpent

    previous = signal.signal(signal.SIGPROF, spent)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = os.path.relpath(sys.executable) if not os.path.relpath(sys.executable).startswith("..") else "python"
    command = " ".join(shlex.quote(a) for a in [python, *(sys.argv if argv is None else [sys.argv[0], *argv])])
    sources = tagged_cells(args.notebook)
    cells = notebook_functions(sources, args.notebook)
    train, evaluate, steps_to_learn = cells["train"], cells["evaluate"], cells["steps_to_learn"]
    relative_notebook = os.path.relpath(args.notebook.resolve(), ROOT)
    commit = _git("rev-parse", "HEAD")  # the code as it is when the runs start
    dirty = bool(_git("status", "--porcelain", "--", relative_notebook, "helpers", "scripts"))
    started = dt.datetime.now(dt.UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    runs, skipped = [], []
    for seed in args.seeds:
        for length in args.lengths:
            for layer in args.layers:
                try:
                    with cpu_budget(args.budget_s - (time.process_time() - cpu_start)):
                        model, losses, seconds_per_step = train(layer, length, steps=args.steps, seed=seed,
                                                                hidden_size=args.hidden, batch=args.batch, lr=args.lr)
                except _BudgetSpent:  # a run cut short is not recorded: the file keeps complete runs only
                    skipped.append({"layer_type": layer, "seq_len": length, "seed": seed})
                    continue
                relative_mse = evaluate(model, length)
                learned_at = steps_to_learn(losses)
                steps, curve = downsample(losses, args.points)
                runs.append({"layer_type": layer, "seq_len": length, "seed": seed, "steps": args.steps,
                             "steps_to_learn": learned_at, "relative_mse": relative_mse,
                             "seconds_per_step": seconds_per_step, "loss_steps": steps, "loss_curve": curve})
                print(f"{layer:<5} T={length:<4} seed={seed}  steps to learn {learned_at}  "
                      f"eval MSE ÷ trivial {relative_mse:.3f}  {seconds_per_step * 1e3:.1f} ms/step", flush=True)
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": 1,  # train() in the notebook runs on one thread
        "device": "cpu",
        "command": command,
        "git_commit": commit,
        "git_dirty": dirty,
        "notebook": relative_notebook,
        "cells_tag": TAG,
        "cells_sha256": cells_digest(sources),
        "wall_seconds": round(time.perf_counter() - wall_start, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "complete": not skipped,
    }
    settings = {"task": "adding problem, Le et al. (2015) variant: values U(0, 1), one marker in each half, "
                        "target = sum of the two marked values",
                "lengths": args.lengths, "layers": args.layers, "steps": args.steps, "seeds": args.seeds,
                "hidden_size": args.hidden, "batch": args.batch, "lr": args.lr, "optimiser": "Adam",
                "learned": "steps_to_learn: first step whose last-20 mean training loss is below 1/10 of 1/6",
                "loss_points": args.points, "budget_s": args.budget_s}
    if not runs:
        print(f"record_long_range: the budget of {args.budget_s:g} CPU s ended before one run finished; nothing "
              "written. Raise --budget-s.", file=sys.stderr)
        return 2
    write_json_signed(args.out, {"meta": meta, "settings": settings, "runs": runs, "skipped": skipped},
                      writer=RECORDED_WRITER)
    print(f"wrote {args.out} ({len(runs)} runs, {len(skipped)} skipped, {meta['cpu_seconds']} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
