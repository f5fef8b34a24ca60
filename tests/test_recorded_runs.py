"""The recorded-runs reader: errors that say what to do, a caption from the file's own metadata, the figure."""
import json

import matplotlib

matplotlib.use("Agg")

import pytest

from helpers import recorded_runs as rr
from helpers.validation import LabInputError


def _run(kind, t, seed, learned_at):
    return {"layer_type": kind, "seq_len": t, "seed": seed, "steps": 4, "steps_to_learn": learned_at,
            "relative_mse": 0.5, "seconds_per_step": 0.01, "loss_steps": [2, 4], "loss_curve": [0.3, 0.1]}


DATA = {"meta": {"date": "2026-01-01T00:00:00+00:00", "cpu": "cpu", "threads": 1, "torch": "2.13.0",
                 "git_commit": "0123abc", "git_dirty": True, "command": "python scripts/record_long_range.py"},
        "settings": {"hidden_size": 4, "batch": 4, "lr": 0.01, "seeds": [0]},
        "runs": [_run(k, t, 0, None) for t in (5, 9) for k in ("RNN", "LSTM", "GRU")]}


def test_load_recorded_round_trip_and_errors(tmp_path):
    (tmp_path / "ok.json").write_text(json.dumps(DATA))
    assert rr.load_recorded(tmp_path / "ok.json")["runs"][0]["layer_type"] == "RNN"
    with pytest.raises(LabInputError, match="record_long_range.py"):
        rr.load_recorded(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(LabInputError, match="not readable"):
        rr.load_recorded(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text("{}")
    with pytest.raises(LabInputError, match="lacks"):
        rr.load_recorded(tmp_path / "partial.json")


def test_caption_names_commit_and_uncommitted_changes():
    caption = rr.recorded_caption(DATA)
    assert "commit 0123abc with uncommitted changes" in caption and "python scripts/record_long_range.py" in caption
    assert "commit unknown" in rr.recorded_caption({"meta": {}})


def test_downsample_keeps_means_and_last_steps():
    values = [float(v) for v in range(10)]
    steps, means = rr.downsample(values, 5)
    assert steps == [2, 4, 6, 8, 10] and sum(means) / 5 == pytest.approx(sum(values) / 10)
    assert rr.downsample(values, 50)[0] == list(range(1, 11))    # more points than values: one each
    with pytest.raises(LabInputError):
        rr.downsample([], 3)
    with pytest.raises(LabInputError):
        rr.downsample(values, 0)


def test_plot_recorded_one_panel_per_length_labelled_as_recorded():
    fig = rr.plot_recorded(DATA, lines={"trivial": 1 / 6})
    assert len(fig.axes) == 2 and all("RECORDED" in ax.get_title() for ax in fig.axes)
    assert "Recorded file, not this run" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["RNN", "LSTM", "GRU", "trivial"]
    with pytest.raises(LabInputError, match="no runs"):
        rr.plot_recorded({"runs": []})
