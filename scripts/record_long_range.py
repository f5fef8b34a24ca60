"""Train RNN / LSTM / GRU longer on the adding problem and record the loss curves for notebook 05.

The notebook trains each layer for a few seconds live; this script trains longer, on the CPU, and
writes ``data/recorded/long_range.json`` with the metadata of the run that produced it (date, torch
version, CPU, threads, the exact command, every setting). Nothing in the file is typed by hand.

Usage (from the repository root):
    .venv/bin/python scripts/record_long_range.py                     # the recorded defaults
    .venv/bin/python scripts/record_long_range.py --lengths 10 30 --steps 500 --seeds 0 --out /tmp/x.json

Runs go seed by seed (every length and layer for the first seed, then the next), so when the CPU
budget (``--budget-s``, process CPU seconds) runs out, the file still holds complete seeds; runs not
started are listed under ``"skipped"``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers.device import cpu_name  # noqa: E402
from helpers.rnn_compare import LAYER_TYPES  # noqa: E402
from helpers.tasks import LEARNED_FRACTION, RECORDED_PATH, downsample, train_adding  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 30, 60], help="sequence lengths T")
    parser.add_argument("--layers", nargs="+", default=list(LAYER_TYPES), choices=LAYER_TYPES)
    parser.add_argument("--steps", type=int, default=1200, help="Adam steps per run, one fresh batch each")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--points", type=int, default=120, help="points kept per loss curve (interval means)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="stop starting runs after this much CPU time")
    parser.add_argument("--out", type=Path, default=RECORDED_PATH)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = os.path.relpath(sys.executable) if not os.path.relpath(sys.executable).startswith("..") else "python"
    command = " ".join(shlex.quote(a) for a in [python, *(sys.argv if argv is None else [sys.argv[0], *argv])])
    started = dt.datetime.now(dt.timezone.utc)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    runs, skipped = [], []
    for seed in args.seeds:
        for length in args.lengths:
            for layer in args.layers:
                if time.process_time() - cpu_start > args.budget_s:
                    skipped.append({"layer_type": layer, "seq_len": length, "seed": seed})
                    continue
                result = train_adding(layer, length, steps=args.steps, hidden_size=args.hidden, batch=args.batch,
                                      lr=args.lr, seed=seed, threads=args.threads)
                steps, curve = downsample(result.losses, args.points)
                runs.append({"layer_type": layer, "seq_len": length, "seed": seed, "steps": args.steps,
                             "loss_steps": steps, "loss_curve": curve, "eval_mse": result.eval_mse,
                             "baseline_mse": result.baseline_mse, "learned": result.learned,
                             "seconds": result.seconds})
                print(f"{layer:<5} T={length:<4} seed={seed}  eval/trivial {result.relative_mse:.3f}  "
                      f"learned {result.learned}  {result.seconds:.1f} s", flush=True)
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "device": "cpu",
        "command": command,
        "wall_seconds": round(time.perf_counter() - wall_start, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "complete": not skipped,
    }
    settings = {"task": "adding problem (one marker in each half; target = sum of the two marked values)",
                "lengths": args.lengths, "layers": args.layers, "steps": args.steps, "seeds": args.seeds,
                "hidden_size": args.hidden, "batch": args.batch, "lr": args.lr, "optimiser": "Adam",
                "learned_fraction": LEARNED_FRACTION, "eval_batch": 1000, "loss_points": args.points,
                "budget_s": args.budget_s}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "settings": settings, "runs": runs, "skipped": skipped},
                                   indent=1) + "\n")
    print(f"wrote {args.out} ({len(runs)} runs, {len(skipped)} skipped, {meta['cpu_seconds']} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
