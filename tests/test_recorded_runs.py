"""The recorded-runs reader: errors that say what to do, a caption from the file's own metadata, the figure."""
import json

import matplotlib

matplotlib.use("Agg")

import pytest

from helpers import recorded_runs as rr
from helpers.integrity import canonical_digest, write_json_signed
from helpers.validation import LabInputError


def _run(kind, t, seed, learned_at):
    return {"layer_type": kind, "seq_len": t, "seed": seed, "steps": 4, "steps_to_learn": learned_at,
            "relative_mse": 0.5, "seconds_per_step": 0.01, "loss_steps": [2, 4], "loss_curve": [0.3, 0.1]}


DATA = {"meta": {"date": "2026-01-01T00:00:00+00:00", "cpu": "cpu", "threads": 1, "torch": "2.13.0", "device": "cpu",
                 "git_commit": "0123abc", "git_dirty": True, "command": "python scripts/record_long_range.py"},
        "settings": {"hidden_size": 4, "batch": 4, "lr": 0.01, "seeds": [0], "lengths": [5, 9], "steps": 4,
                     "layers": ["RNN", "LSTM", "GRU"], "loss_points": 2},
        "runs": [_run(k, t, 0, None) for t in (5, 9) for k in ("RNN", "LSTM", "GRU")]}


def test_load_recorded_round_trip_and_errors(tmp_path):
    write_json_signed(tmp_path / "ok.json", DATA, writer=rr.RECORDED_WRITER)
    assert rr.load_recorded(tmp_path / "ok.json")["runs"][0]["layer_type"] == "RNN"
    with pytest.raises(LabInputError, match="record_long_range.py"):
        rr.load_recorded(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(LabInputError, match="not valid JSON"):
        rr.load_recorded(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text("{}")
    with pytest.raises(LabInputError, match="no SHA-256"):
        rr.load_recorded(tmp_path / "partial.json")


def _signed_with(change):
    data = json.loads(json.dumps(DATA))
    change(data)
    return {**data, "integrity": {"sha256": canonical_digest(data)}}


def _edited_after(change):
    data = json.loads(json.dumps({**DATA, "integrity": {"sha256": canonical_digest(DATA)}}))
    change(data)
    return data


CORRUPTED = {
    "a changed digit": (_edited_after(lambda d: d["runs"][0].update(relative_mse=0.4)), "changed after it was recorded"),
    "a renamed column": (_edited_after(lambda d: d["runs"][0].update(curve=d["runs"][0].pop("loss_curve"))),
                         "changed after it was recorded"),
    "a changed sequence length": (_edited_after(lambda d: d["runs"][0].update(seq_len=7)), "changed after"),
    "unsigned": (dict(DATA), "no SHA-256"),
    # signed by a (buggy) writer, yet inconsistent: the layout checks still refuse it
    "a run of a length not recorded": (_signed_with(lambda d: d["runs"][0].update(seq_len=7)),
                                       "seq_len 7 is not among settings.lengths"),
    "a missing column": (_signed_with(lambda d: d["runs"][1].pop("loss_curve")), "lacks ['loss_curve']"),
    "curve and steps of different lengths": (_signed_with(lambda d: d["runs"][0].update(loss_curve=[0.3])),
                                             "same length"),
    "a negative loss": (_signed_with(lambda d: d["runs"][0].update(loss_curve=[0.3, -1.0])), "loss_curve[1]"),
    "a GPU device word": (_signed_with(lambda d: d["meta"].update(device="cuda")), "meta.device is 'cuda'"),
    "a run twice": (_signed_with(lambda d: d["runs"].append(dict(d["runs"][0]))), "repeats the run"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTED))
def test_a_corrupted_recording_is_refused_in_one_line_naming_the_command(tmp_path, case):
    document, reason = CORRUPTED[case]
    path = tmp_path / "long_range.json"
    path.write_text(json.dumps(document))
    with pytest.raises(LabInputError) as refused:
        rr.load_recorded(path)
    message = str(refused.value)
    assert reason in message and "re-record it with python scripts/record_long_range.py" in message
    assert "\n" not in message and str(path) in message


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
