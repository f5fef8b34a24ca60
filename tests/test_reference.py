import json

import pytest

from helpers import reference
from helpers.timing import TimingRecord
from helpers.validation import LabInputError


def _write(directory, name, device, records):
    payload = {"meta": {"device": device, "device_name": "Test GPU", "date": "2026-11-21T10:00:00Z",
                        "torch": "2.13.0", "cuda": "12.8" if device == "cuda" else None, "cudnn": 90100,
                        "threads": 2, "command": "python -m helpers.bench"},
               "experiments": {"exp": {"size_name": "T", "baseline": "a", "fixed": {"batch": 4},
                                       "records": [r.as_dict() for r in records]}}}
    (directory / name).write_text(json.dumps(payload))


def test_loads_only_the_requested_device(tmp_path):
    recs = [TimingRecord("a", 8, "forward", 1e-3, 1e-5, 10, 2, "cuda")]
    _write(tmp_path, "gpu.json", "cuda", recs)
    _write(tmp_path, "cpu.json", "cpu", recs)
    runs = reference.load_reference("exp", "cuda", directory=tmp_path)
    assert len(runs) == 1 and runs[0].records == tuple(recs) and runs[0].fixed == {"batch": 4}
    assert "Test GPU" in runs[0].caption and "2026-11-21" in runs[0].caption
    assert reference.load_reference("other", "cuda", directory=tmp_path) == []


def test_bad_files_and_devices_are_explained(tmp_path):
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(LabInputError, match="make bench"):
        reference.load_reference("exp", directory=tmp_path)
    with pytest.raises(LabInputError):
        reference.load_reference("exp", device="tpu")


def test_nothing_recorded_says_so_and_plots_nothing(capsys):
    assert reference.plot_reference("no-such-experiment") is None
    assert "No recorded CUDA reference figures" in capsys.readouterr().out


def test_plot_and_describe_a_recorded_gpu_run(tmp_path, monkeypatch):
    recs = [TimingRecord(impl, size, "forward", t, 0.0, 10, 2, "cuda")
            for impl, size, t in [("a", 8, 1e-3), ("a", 16, 2e-3), ("b", 8, 3e-3), ("b", 16, 5e-3)]]
    _write(tmp_path, "cuda-test-gpu-2026-11-21.json", "cuda", recs)
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path)
    ax = reference.plot_reference("exp")
    assert "Test GPU" in ax.get_title() and "2026-11-21" in ax.get_title() and ax.get_xlabel() == "T"
    assert len(ax.get_legend().get_texts()) == 2
    text = reference.describe_reference("exp")
    assert "Test GPU" in text and "CUDA 12.8" in text and "helpers.bench" in text
