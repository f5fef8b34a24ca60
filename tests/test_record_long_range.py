"""scripts/record_long_range.py runs notebook 05's own cells, and the committed recording came from them."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from helpers import recorded_runs as rr

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("record_long_range", ROOT / "scripts" / "record_long_range.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_runs_the_notebooks_cells_and_writes_what_it_measured(tmp_path):
    script = _script()
    namespace = script.notebook_functions(script.tagged_cells())
    assert all(callable(namespace[name]) for name in ("adding_problem", "train", "evaluate", "steps_to_learn"))
    out = tmp_path / "long.json"
    assert script.main(["--lengths", "4", "6", "--steps", "3", "--seeds", "0", "--hidden", "4", "--batch", "4",
                        "--points", "2", "--out", str(out)]) == 0
    data = rr.load_recorded(out)
    meta = data["meta"]
    assert meta["torch"] == torch.__version__ and meta["threads"] == 1 and meta["complete"]
    assert "--lengths 4 6" in meta["command"] and meta["date"][:2] == "20" and meta["cpu"]
    assert meta["cells_sha256"] == script.cells_digest(script.tagged_cells())
    assert meta["git_commit"] is None or len(meta["git_commit"]) == 40
    assert len(data["runs"]) == 6 and data["runs"][0]["loss_steps"] == [2, 3]
    # the same seed through the notebook's train() gives the same losses: the runs are deterministic
    _, losses, _ = namespace["train"]("GRU", 6, steps=3, seed=0, hidden_size=4, batch=4)
    recorded = [r for r in data["runs"] if (r["layer_type"], r["seq_len"]) == ("GRU", 6)][0]
    assert recorded["loss_curve"][-1] == pytest.approx(losses[-1])


def test_the_budget_skips_runs_but_keeps_the_file_honest(tmp_path, monkeypatch):
    script = _script()
    clock = iter(range(10**6))  # each reading of the CPU clock one second later: the budget ends after run 1
    monkeypatch.setattr(script.time, "process_time", lambda: float(next(clock)))
    out = tmp_path / "long.json"
    assert script.main(["--lengths", "4", "--steps", "2", "--seeds", "0", "1", "--hidden", "4", "--batch", "4",
                        "--points", "2", "--budget-s", "5", "--out", str(out)]) == 0
    data = rr.load_recorded(out)
    assert not data["meta"]["complete"] and len(data["skipped"]) + len(data["runs"]) == 6


def test_the_budget_stops_a_run_that_would_outlast_it(tmp_path, capsys):
    """--budget-s bounds one long run too: it is stopped, not recorded, and nothing partial is written."""
    import time

    out = tmp_path / "long.json"
    start = time.process_time()
    status = _script().main(["--lengths", "60", "--layers", "LSTM", "--steps", "20000", "--seeds", "0",
                             "--points", "2", "--budget-s", "1", "--out", str(out)])
    assert time.process_time() - start < 30
    assert status == 2 and not out.exists() and "nothing written" in capsys.readouterr().err


@pytest.mark.parametrize("argv, named", [
    (["--steps", "0"], "--steps"), (["--batch", "0"], "--batch"), (["--steps", "1000000"], "--steps=1000000"),
    (["--lengths", "1"], "--lengths"), (["--budget-s", "inf"], "--budget-s"), (["--budget-s", "0"], "--budget-s"),
    (["--lr", "nan"], "--lr"), (["--points", "500", "--steps", "100"], "--points"), (["--seeds", "0", "0"], "twice"),
    (["--steps", "2.5"], "whole number"), (["--out", "/"], "--out")])
def test_every_number_is_checked_before_anything_runs(tmp_path, argv, named, capsys):
    with pytest.raises(SystemExit) as stopped:
        _script().parse_args(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and named in err and "Traceback" not in err


def test_a_notebook_without_tagged_cells_is_refused(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}}]}))
    with pytest.raises(SystemExit, match="no code cell tagged"):
        _script().tagged_cells(notebook)


def test_committed_recording_came_from_the_notebooks_current_cells():
    data = rr.load_recorded()
    meta, settings = data["meta"], data["settings"]
    for key in ("date", "torch", "cpu", "threads", "command", "git_commit", "cells_sha256"):
        assert meta.get(key), f"recorded file lacks meta[{key!r}]"
    script = _script()
    assert meta["cells_sha256"] == script.cells_digest(script.tagged_cells()), (
        "notebook 05's long-range cells changed since data/recorded/long_range.json was recorded: re-record it "
        "with '.venv/bin/python scripts/record_long_range.py'")
    assert meta["complete"] and not data["skipped"]
    for run in data["runs"]:
        assert run["seq_len"] in settings["lengths"] and run["seed"] in settings["seeds"]
        assert run["steps"] == settings["steps"] and run["loss_steps"][-1] == settings["steps"]
        assert run["steps_to_learn"] is None or 20 <= run["steps_to_learn"] <= run["steps"]
