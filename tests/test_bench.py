import json
import sys
import types

import pytest
import torch

from helpers import bench, reference
from helpers.timing import Experiment
from helpers.validation import LabInputError


@pytest.fixture
def fake_module(monkeypatch):
    module = types.ModuleType("fake_bench_module")

    def standard_experiments(scale="notebook"):
        n = 8 if scale == "notebook" else 16
        builders = {"one": lambda s, d: (lambda: torch.ones(s, device=d, requires_grad=True).tanh()),
                    "two": lambda s, d: (lambda: torch.ones(s, device=d, requires_grad=True).tanh().tanh())}
        return [Experiment("fake.sweep", builders, (n, 2 * n), "n", "one", fixed={"batch": 1})]

    module.standard_experiments = standard_experiments
    monkeypatch.setitem(sys.modules, "fake_bench_module", module)
    monkeypatch.setattr(bench, "EXPERIMENT_MODULES", ("fake_bench_module",))
    return module


def test_writes_records_with_its_own_metadata(fake_module, tmp_path):
    out = tmp_path / "run.json"
    assert bench.main(["--scale", "notebook", "--min-run-time", "0.005", "--threads", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    meta = doc["meta"]
    assert meta["device"] == "cpu" and meta["torch"] == torch.__version__ and meta["threads"] == 1
    assert meta["command"].startswith("python -m helpers.bench --scale notebook") and meta["date"]
    entry = doc["experiments"]["fake.sweep"]
    assert entry["sizes"] == [8, 16] and entry["fixed"] == {"batch": 1}
    assert {(r["implementation"], r["size"], r["mode"]) for r in entry["records"]} == {
        (i, s, m) for i in ("one", "two") for s in (8, 16) for m in ("forward", "forward+backward")}


def test_reference_loader_reads_what_bench_wrote(fake_module, tmp_path):
    out = tmp_path / "cpu.json"
    bench.main(["--scale", "notebook", "--min-run-time", "0.005", "--out", str(out)])
    runs = reference.load_reference("fake.sweep", "cpu", directory=tmp_path)
    assert len(runs) == 1 and len(runs[0].records) == 8 and "helpers.bench" in runs[0].caption


def test_refuses_cuda_without_cuda(fake_module, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--device", "cuda", "--out", str(tmp_path / "x.json")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_unknown_experiment_and_list(fake_module, capsys):
    assert bench.main(["--only", "nope"]) == 2
    assert "fake.sweep" in capsys.readouterr().err
    assert bench.main(["--list"]) == 0
    assert "fake.sweep" in capsys.readouterr().out


def test_scale_is_checked():
    with pytest.raises(LabInputError):
        bench.collect_experiments("huge", modules=[])


def test_default_output_names_device_and_date():
    path = bench.default_output({"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "date": "2026-11-21T10:00"})
    assert path.name == "cuda-nvidia-h100-80gb-hbm3-2026-11-21.json" and path.parent == reference.REFERENCE_DIR
