import json

import nbformat
import pytest
import torch

from helpers import bench, reference
from helpers.timing import TimingRecord
from helpers.validation import LabInputError

PARAMETERS = 'SCALE = "notebook"\nDEVICE = "auto"\nBENCH_OUT = None'
TIMING_CELL = """
import torch
from helpers.bench import bench_record
from helpers.device import pick_device
from helpers.timing import time_implementations
n = 8 if SCALE == "notebook" else 32
builders = {"one": lambda s, d: (lambda: torch.ones(s, device=d).tanh()),
            "two": lambda s, d: (lambda: torch.ones(s, device=d).tanh().tanh())}
records = time_implementations(builders, [n, 2 * n], device=str(pick_device(DEVICE)), threads=1, min_run_time=0.005)
bench_record(BENCH_OUT, "nb98.sweep", records, size_name="n", baseline="one", fixed={"batch": 1})
print("scale", SCALE)
"""


def _notebook(directory, name="98_fake.ipynb", cells=None):
    cells = cells if cells is not None else [
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(TIMING_CELL)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, directory / name)
    return directory / name


@pytest.fixture
def fake_course(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks)
    monkeypatch.setattr(bench, "NOTEBOOK_DIR", notebooks)
    return notebooks


def test_records_what_the_executed_notebook_measured(fake_course, tmp_path):
    out, kept = tmp_path / "ref" / "run.json", tmp_path / "kept"
    assert bench.main(["--scale", "reference", "--out", str(out), "--keep-executed", str(kept)]) == 0
    doc = json.loads(out.read_text())
    meta = doc["meta"]
    assert meta["device"] == "cpu" and meta["torch"] == torch.__version__ and meta["threads"] == 1
    assert meta["scale"] == "reference" and meta["notebooks"] == ["98_fake.ipynb"]
    assert meta["command"].startswith("python -m helpers.bench --scale reference") and meta["date"]
    entry = doc["experiments"]["nb98.sweep"]
    assert entry["sizes"] == [32, 64] and entry["fixed"] == {"batch": 1} and entry["baseline"] == "one"
    assert {(r["implementation"], r["size"]) for r in entry["records"]} == {
        (i, s) for i in ("one", "two") for s in (32, 64)}
    executed = nbformat.read(kept / "98_fake.ipynb", as_version=4)
    assert "SCALE = 'reference'" in executed.cells[0].source
    assert executed.cells[1].outputs[0]["text"] == "scale reference\n"
    assert not list(out.parent.glob("*.tmp"))  # the atomic write left no temporary file


def test_reference_loader_reads_what_bench_wrote(fake_course, tmp_path):
    out = tmp_path / "cpu.json"
    assert bench.main(["--scale", "notebook", "--out", str(out)]) == 0
    runs = reference.load_reference("nb98.sweep", "cpu", directory=tmp_path)
    assert len(runs) == 1 and len(runs[0].records) == 4 and "helpers.bench" in runs[0].caption


def test_a_failing_notebook_is_named_and_nothing_is_written(fake_course, tmp_path, capsys):
    _notebook(fake_course, "97_broken.ipynb", [
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise RuntimeError('boom')")])
    out = tmp_path / "x.json"
    assert bench.main(["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "97_broken.ipynb failed while recording" in err and "boom" in err and not out.exists()


def test_refuses_cuda_without_cuda(fake_course, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--device", "cuda", "--out", str(tmp_path / "x.json")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_refuses_a_cell_timeout_that_is_not_a_positive_finite_number(value, capsys):
    assert bench.main(["--cell-timeout", value, "--list"]) == 2
    assert "--cell-timeout" in capsys.readouterr().err


def test_unknown_notebook_and_list(fake_course, capsys):
    assert bench.main(["--notebooks", "42"]) == 2
    assert "98_fake.ipynb" in capsys.readouterr().err
    assert bench.main(["--list"]) == 0
    assert "98_fake.ipynb: nb98.sweep" in capsys.readouterr().out


def test_inject_parameters_needs_one_parameters_cell_declaring_the_names():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(LabInputError, match="tagged 'parameters'"):
        bench.inject_parameters(nb, SCALE="reference")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]})])
    with pytest.raises(LabInputError, match="does not declare"):
        bench.inject_parameters(nb, THREADS=4)
    assert bench.inject_parameters(nb, BENCH_OUT="/tmp/x").cells[0].source.endswith("BENCH_OUT = '/tmp/x'")


def test_bench_record_appends_lines_and_checks_its_input(tmp_path):
    out = tmp_path / "b.jsonl"
    recs = [TimingRecord("a", 8, "forward", 1e-3, 0.0, 3, 1, "cpu"), TimingRecord("b", 8, "forward", 2e-3, 0.0, 3, 1, "cpu")]
    bench.bench_record(out, "nb01.x", recs, size_name="T", baseline="a")
    bench.bench_record(out, "nb01.y", recs[:1], size_name="T", baseline="a", fixed={"B": 2})
    got = bench.read_records(out)
    assert list(got) == ["nb01.x", "nb01.y"] and got["nb01.y"]["fixed"] == {"B": 2}
    assert got["nb01.x"]["records"][1]["median_s"] == 2e-3
    for bad in [dict(name="bad name"), dict(records=[]), dict(records=[{"a": 1}]), dict(baseline="zzz")]:
        kwargs = dict(name="nb01.z", records=recs, baseline="a") | bad
        with pytest.raises(LabInputError):
            bench.bench_record(out, kwargs["name"], kwargs["records"], size_name="T", baseline=kwargs["baseline"])


def test_read_records_names_a_bad_line(tmp_path):
    out = tmp_path / "b.jsonl"
    out.write_text('{"name": "nb01.x", "records": [{"oops": 1}]}\n')
    with pytest.raises(LabInputError, match="line 1"):
        bench.read_records(out)


def test_default_output_names_device_and_date():
    path = bench.default_output({"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "date": "2026-11-21T10:00"})
    assert path.name == "cuda-nvidia-h100-80gb-hbm3-2026-11-21.json" and path.parent == reference.REFERENCE_DIR


def test_write_document_replaces_atomically(tmp_path):
    target = tmp_path / "ref.json"
    target.write_text("old")
    bench.write_document({"meta": {"a": 1}, "experiments": {}}, target)
    assert json.loads(target.read_text())["meta"] == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["ref.json"]


@pytest.mark.parametrize("out, named", [("folder", "is a folder"), ("run.csv", "must end in .json"),
                                        ("a-file/run.json", "cannot be written")])
def test_a_bad_out_is_refused_before_any_notebook_runs(fake_course, tmp_path, capsys, monkeypatch, out, named):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    ran = []
    monkeypatch.setattr(bench, "run_notebook", lambda *a, **k: ran.append(a))
    assert bench.main(["--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert named in err and ran == [] and len(err.strip().splitlines()) == 1


def test_a_fractional_cell_timeout_is_accepted(fake_course, tmp_path):
    out = tmp_path / "run.json"
    assert bench.main(["--scale", "notebook", "--cell-timeout", "120.5", "--out", str(out)]) == 0
    assert reference.load_reference("nb98.sweep", "cpu", directory=tmp_path)
