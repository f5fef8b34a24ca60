"""The adding problem, short training runs, the trivial baseline and the recorded long-run file."""
import importlib.util
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from helpers import tasks
from helpers.validation import LabInputError

ROOT = Path(__file__).resolve().parents[1]


def test_adding_problem_structure():
    x, y = tasks.adding_problem(64, 12, torch.Generator().manual_seed(0))
    assert x.shape == (64, 12, 2) and y.shape == (64, 1)
    markers, values = x[..., 1], x[..., 0]
    assert torch.equal(markers.sum(1), torch.full((64,), 2.0))
    assert torch.equal(markers[:, :6].sum(1), torch.ones(64))  # one marker in each half
    assert values.min() >= 0 and values.max() <= 1
    assert torch.allclose(y[:, 0], (values * markers).sum(1))


def test_adding_problem_is_reproducible_and_varies():
    a = tasks.adding_problem(8, 10, torch.Generator().manual_seed(1))
    b = tasks.adding_problem(8, 10, torch.Generator().manual_seed(1))
    c = tasks.adding_problem(8, 10, torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_adding_problem_rejects_bad_sizes():
    with pytest.raises(LabInputError, match="at least 2"):
        tasks.adding_problem(4, 1)
    with pytest.raises(LabInputError, match="positive integer"):
        tasks.adding_problem(0, 10)


def test_trivial_baseline_is_one_sixth_and_the_best_constant():
    _, y = tasks.adding_problem(40_000, 10, torch.Generator().manual_seed(3))
    assert abs(tasks.trivial_mse(y) - tasks.TRIVIAL_MSE) < 0.01
    assert abs(float(y.mean()) - 1.0) < 0.01  # the MSE-optimal constant is the mean, 1
    with pytest.raises(LabInputError, match="tensor"):
        tasks.trivial_mse([1.0])


class _Oracle(nn.Module):
    """Reads the answer off the input: what a perfect model would output."""

    def forward(self, x):
        return (x[..., 0] * x[..., 1]).sum(1, keepdim=True)


def test_evaluate_scores_a_perfect_model_zero_and_the_baseline_about_a_sixth():
    model_mse, base = tasks.evaluate(_Oracle(), seq_len=20, batch=2000)
    assert model_mse < 1e-10 and 0.12 < base < 0.22


def test_sequence_regressor_shape_and_input_check():
    model = tasks.SequenceRegressor("GRU", hidden_size=6)
    assert model(torch.zeros(3, 7, 2)).shape == (3, 1)
    with pytest.raises(LabInputError, match=r"\(batch, time, 2\)"):
        model(torch.zeros(3, 7))


def test_train_adding_is_seeded_restores_threads_and_reports_progress():
    before = torch.get_num_threads()
    seen = []
    a = tasks.train_adding("LSTM", 6, steps=5, hidden_size=4, batch=8, seed=1, progress=lambda *s: seen.append(s))
    b = tasks.train_adding("LSTM", 6, steps=5, hidden_size=4, batch=8, seed=1)
    c = tasks.train_adding("LSTM", 6, steps=5, hidden_size=4, batch=8, seed=2)
    assert torch.get_num_threads() == before
    assert a.losses == b.losses and a.losses != c.losses
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5] and seen[-1][2] == a.losses[-1]
    assert a.settings["threads"] == 1 and a.seconds > 0


def test_training_beats_the_trivial_baseline_on_a_short_sequence():
    result = tasks.train_adding("GRU", 4, steps=300, hidden_size=16, batch=32)
    assert result.eval_mse < 0.5 * result.baseline_mse


def test_train_adding_rejects_bad_settings():
    with pytest.raises(LabInputError, match="lr"):
        tasks.train_adding("GRU", 5, steps=1, lr=5.0)
    with pytest.raises(LabInputError, match="progress"):
        tasks.train_adding("GRU", 5, steps=1, progress="yes")
    with pytest.raises(LabInputError, match="layer_type"):
        tasks.train_adding("Mamba", 5, steps=1)
    with pytest.raises(LabInputError, match="limit"):
        tasks.train_adding("GRU", 5, steps=50_000)


def test_learned_threshold_and_tables():
    good = tasks.TrainResult("GRU", 10, 5, 0, [0.2] * 5, eval_mse=0.01, baseline_mse=0.16, seconds=1.0)
    bad = tasks.TrainResult("RNN", 10, 5, 0, [0.2] * 5, eval_mse=0.02, baseline_mse=0.16, seconds=1.0)
    assert good.learned and not bad.learned  # 0.02 > 0.1 × 0.16
    text = tasks.results_table([good, bad])
    assert len(text.splitlines()) == 3 and "True" in text and "False" in text


def test_compare_layers_order_and_empty():
    results = tasks.compare_layers([4, 6], steps=2, hidden_size=4, batch=4)
    assert [(r.layer_type, r.seq_len) for r in results] == [(k, t) for t in (4, 6) for k in ("RNN", "LSTM", "GRU")]
    with pytest.raises(LabInputError, match="empty"):
        tasks.compare_layers([])


def test_smooth_and_downsample():
    values = [float(v) for v in range(10)]
    assert tasks.smooth(values, 3)[5] == pytest.approx((3 + 4 + 5) / 3)
    steps, means = tasks.downsample(values, 5)
    assert steps == [2, 4, 6, 8, 10] and sum(means) / 5 == pytest.approx(sum(values) / 10)
    assert tasks.downsample(values, 50)[0] == list(range(1, 11))  # more points than values: one each
    with pytest.raises(LabInputError):
        tasks.downsample([], 3)


def test_plot_training_labels():
    result = tasks.train_adding("RNN", 4, steps=3, hidden_size=4, batch=4)
    ax = tasks.plot_training([result])
    assert ax.get_yscale() == "log" and ax.get_xlabel() and "MSE" in ax.get_ylabel() and "Live" in ax.get_title()
    with pytest.raises(LabInputError, match="no training"):
        tasks.plot_training([])


def _script():
    spec = importlib.util.spec_from_file_location("record_long_range", ROOT / "scripts" / "record_long_range.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_record_script_writes_metadata_it_measured(tmp_path):
    out = tmp_path / "long.json"
    assert _script().main(["--lengths", "4", "6", "--steps", "3", "--seeds", "0", "--hidden", "4", "--batch", "4",
                           "--points", "2", "--out", str(out)]) == 0
    data = tasks.load_recorded(out)
    meta = data["meta"]
    assert meta["torch"] == torch.__version__ and meta["threads"] == 1 and meta["complete"]
    assert "--lengths 4 6" in meta["command"] and meta["date"][:2] == "20" and meta["cpu"]
    assert len(data["runs"]) == 6 and data["runs"][0]["loss_steps"] == [2, 3]
    fig = tasks.plot_recorded(data)
    assert len(fig.axes) == 2 and all("RECORDED" in ax.get_title() for ax in fig.axes)
    assert "Recorded file" in fig._suptitle.get_text()
    assert len(tasks.recorded_table(data).splitlines()) == 7


def test_record_script_budget_skips_runs(tmp_path):
    out = tmp_path / "long.json"
    _script().main(["--lengths", "4", "--steps", "2", "--seeds", "0", "1", "--hidden", "4", "--batch", "4",
                    "--budget-s", "0", "--out", str(out)])
    data = json.loads(out.read_text())
    assert not data["meta"]["complete"] and len(data["skipped"]) + len(data["runs"]) == 6


def test_load_recorded_errors(tmp_path):
    with pytest.raises(LabInputError, match="record_long_range.py"):
        tasks.load_recorded(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(LabInputError, match="not readable"):
        tasks.load_recorded(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text("{}")
    with pytest.raises(LabInputError, match="lacks"):
        tasks.load_recorded(tmp_path / "partial.json")


def test_committed_recording_is_consistent_with_its_settings():
    if not tasks.RECORDED_PATH.exists():
        pytest.skip("data/recorded/long_range.json not recorded yet")
    data = tasks.load_recorded()
    settings, meta = data["settings"], data["meta"]
    for key in ("date", "torch", "cpu", "threads", "command"):
        assert meta.get(key), f"recorded file lacks meta[{key!r}]"
    for run in data["runs"]:
        assert run["seq_len"] in settings["lengths"] and run["seed"] in settings["seeds"]
        assert run["steps"] == settings["steps"] and run["loss_steps"][-1] == settings["steps"]
        assert run["learned"] == (run["eval_mse"] < settings["learned_fraction"] * run["baseline_mse"])
