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

Runs go seed by seed (every length and layer for the first seed, then the next), so when the CPU budget
(``--budget-s``, process CPU seconds) runs out, the file still holds complete seeds; runs not started are
listed under ``"skipped"``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers.device import cpu_name  # noqa: E402
from helpers.recorded_runs import RECORDED_PATH, downsample  # noqa: E402

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 30, 60], help="sequence lengths T")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS)
    parser.add_argument("--steps", type=int, default=1200, help="Adam steps per run, one fresh batch each")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--points", type=int, default=120, help="points kept per loss curve (interval means)")
    parser.add_argument("--budget-s", type=float, default=900.0, help="stop starting runs after this much CPU time")
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    parser.add_argument("--out", type=Path, default=RECORDED_PATH)
    return parser.parse_args(argv)


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
                if time.process_time() - cpu_start > args.budget_s:
                    skipped.append({"layer_type": layer, "seq_len": length, "seed": seed})
                    continue
                model, losses, seconds_per_step = train(layer, length, steps=args.steps, seed=seed,
                                                        hidden_size=args.hidden, batch=args.batch, lr=args.lr)
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "settings": settings, "runs": runs, "skipped": skipped},
                                   indent=1) + "\n")
    print(f"wrote {args.out} ({len(runs)} runs, {len(skipped)} skipped, {meta['cpu_seconds']} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
