import json

import pytest

from helpers import reference
from helpers.integrity import canonical_digest
from helpers.timing import TimingRecord
from helpers.validation import LabInputError


def _signed(payload) -> str:
    """The file as make bench writes it: the payload with its SHA-256 (the layout checks run after that one)."""
    return json.dumps({**payload, "integrity": {"sha256": canonical_digest(payload)}})


def _write(directory, name, device, records):
    cuda = device == "cuda"
    payload = {"meta": {"device": device, "device_name": "Test GPU" if cuda else "Test CPU", "cpu_name": "Test CPU",
                        "date": "2026-11-21T10:00:00Z", "torch": "2.13.0", "cuda": "12.8" if cuda else None,
                        "cudnn": 90100 if cuda else None, "threads": 2, "command": "python -m helpers.bench"},
               "experiments": {"exp": {"size_name": "T", "baseline": "a", "fixed": {"batch": 4},
                                       "records": [{**r.as_dict(), "device": device} for r in records]}}}
    (directory / name).write_text(_signed(payload))


def test_loads_only_the_requested_device(tmp_path):
    recs = [TimingRecord("a", 8, "forward", 1e-3, 1e-5, 10, 2, "cuda")]
    _write(tmp_path, "gpu.json", "cuda", recs)
    _write(tmp_path, "cpu.json", "cpu", recs)
    runs = reference.load_reference("exp", "cuda", directory=tmp_path)
    assert len(runs) == 1 and runs[0].records == tuple(recs) and runs[0].fixed == {"batch": 4}
    assert "Test GPU" in runs[0].caption and "2026-11-21" in runs[0].caption
    assert reference.load_reference("other", "cuda", directory=tmp_path) == []


def _good_payload():
    recs = [TimingRecord("a", 8, "forward", 1e-3, 1e-5, 10, 2, "cuda")]
    return {"meta": {"device": "cuda", "device_name": "Test GPU", "date": "2026-11-21T10:00:00Z", "torch": "2.13.0",
                     "cuda": "12.8", "cpu_name": "Test CPU", "command": "python -m helpers.bench"},
            "experiments": {"exp": {"size_name": "T", "baseline": "a", "records": [r.as_dict() for r in recs]}}}


def _broken(change):
    payload = _good_payload()
    change(payload)
    return _signed(payload)


def _edited(change):
    """A file make bench wrote, then changed by hand (its stored SHA-256 is the original one)."""
    payload = json.loads(_signed(_good_payload()))
    change(payload)
    return json.dumps(payload)


BAD_FILES = {
    "truncated JSON": ('{"meta": {', "not valid JSON"),
    "not UTF-8": (b"\xff\xfe{}", "not UTF-8"),
    "top level a list": ("[1, 2]", "not an object"),
    "missing meta": (_broken(lambda p: p.pop("meta")), "lacks ['meta']"),
    "meta a list": (_broken(lambda p: p.update(meta=[1])), "'meta' is a list"),
    "meta without device": (_broken(lambda p: p["meta"].pop("device")), "'meta' lacks ['device']"),
    "device unknown": (_broken(lambda p: p["meta"].update(device="tpu")), "meta.device"),
    "experiments a list": (_broken(lambda p: p.update(experiments=[])), "'experiments' is a list"),
    "no experiments": (_broken(lambda p: p.update(experiments={})), "'experiments' is empty"),
    "entry without records": (_broken(lambda p: p["experiments"]["exp"].pop("records")), "missing keys ['records']"),
    "entry with an extra key": (_broken(lambda p: p["experiments"]["exp"].update(colour="red")),
                                "unknown keys ['colour']"),
    "empty records": (_broken(lambda p: p["experiments"]["exp"].update(records=[])), "records is empty"),
    "records a dict": (_broken(lambda p: p["experiments"]["exp"].update(records={})), "not a list"),
    "record missing a key": (_broken(lambda p: p["experiments"]["exp"]["records"][0].pop("median_s")),
                             "missing keys ['median_s']"),
    "record with an extra key": (_broken(lambda p: p["experiments"]["exp"]["records"][0].update(gpu="x")),
                                 "unknown keys ['gpu']"),
    "record size a string": (_broken(lambda p: p["experiments"]["exp"]["records"][0].update(size="8")),
                             "size is '8', not a positive integer"),
    "record median negative": (_broken(lambda p: p["experiments"]["exp"]["records"][0].update(median_s=-1)),
                               "median_s is -1"),
    "record mode unknown": (_broken(lambda p: p["experiments"]["exp"]["records"][0].update(mode="sideways")),
                            "mode is 'sideways'"),
    "baseline not timed": (_broken(lambda p: p["experiments"]["exp"].update(baseline="zz")), "baseline 'zz'"),
    "fixed a list": (_broken(lambda p: p["experiments"]["exp"].update(fixed=[4])), "fixed is a list"),
    # written by hand, or changed after make bench wrote it
    "unsigned": (json.dumps(_good_payload()), "no SHA-256"),
    "device word edited": (_edited(lambda p: p["meta"].update(device="cpu")), "changed after it was recorded"),
    "one digit edited": (_edited(lambda p: p["experiments"]["exp"]["records"][0].update(median_s=2e-3)),
                         "changed after it was recorded"),
    "key renamed": (_edited(lambda p: p["experiments"]["exp"].update(base=p["experiments"]["exp"].pop("baseline"))),
                    "changed after it was recorded"),
    "NaN written in": ('{"meta": {"x": NaN}}', "holds NaN"),
    # signed, yet the metadata contradicts itself: the device word must name what was measured
    "cuda word without a CUDA version": (_broken(lambda p: p["meta"].update(cuda=None)), "names no CUDA version"),
    "cuda word on the CPU's name": (_broken(lambda p: p["meta"].update(device_name="Test CPU")), "is the CPU"),
    "cpu word with a CUDA version": (_broken(lambda p: p["meta"].update(device="cpu")), "names CUDA '12.8'"),
    "records from another device": (_broken(lambda p: p["experiments"]["exp"]["records"][0].update(device="cpu")),
                                    "measured on ['cpu'], but meta.device is 'cuda'"),
    "sizes not the records'": (_broken(lambda p: p["experiments"]["exp"].update(sizes=[8, 16])), "does not match"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_skipped_with_one_line_naming_it(tmp_path, capsys, case):
    content, reason = BAD_FILES[case]
    (tmp_path / "a-good.json").write_text(_signed(_good_payload()))
    bad = tmp_path / "zz-bad.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    runs = reference.load_reference("exp", "cuda", directory=tmp_path)
    assert [run.path.name for run in runs] == ["a-good.json"]  # the good file still counts
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "zz-bad.json" in lines[0] and reason in lines[0] and "make bench" in lines[0]


def test_the_good_payload_used_above_is_accepted(tmp_path, capsys):
    (tmp_path / "good.json").write_text(_signed(_good_payload()))
    assert len(reference.load_reference("exp", "cuda", directory=tmp_path)) == 1
    assert capsys.readouterr().err == ""


def test_a_directory_named_json_is_skipped(tmp_path, capsys):
    (tmp_path / "odd.json").mkdir()
    assert reference.load_reference("exp", directory=tmp_path) == []
    assert "odd.json" in capsys.readouterr().err


def test_describe_and_plot_survive_a_bad_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "zz.json").write_text('{"meta": {')
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path)
    assert reference.describe_reference("exp").startswith("No recorded")
    assert reference.plot_reference("exp") is None
    assert "zz.json" in capsys.readouterr().err


def test_bad_arguments_are_explained(tmp_path):
    with pytest.raises(LabInputError, match="'cuda' or 'cpu'"):
        reference.load_reference("exp", device="tpu")
    with pytest.raises(LabInputError, match="nb01.length_sweep"):
        reference.load_reference(3)
    with pytest.raises(LabInputError, match="path"):
        reference.load_reference("exp", directory=3)


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


def test_a_file_as_make_bench_writes_it_is_accepted_without_warning(tmp_path, capsys):
    import torch

    from helpers import bench

    records = [TimingRecord(impl, size, "forward", t, 1e-6, 5, 1, "cpu")
               for impl, size, t in [("loop", 8, 2e-3), ("reshape", 8, 1e-3)]]
    lines = tmp_path / "bench.jsonl"
    bench.bench_record(lines, "nb01.demo", records, size_name="T", baseline="reshape", fixed={"batch": 4})
    meta = {**bench.machine_metadata(torch.device("cpu")), "threads": 1, "scale": "reference", "command": "make bench"}
    bench.write_document({"meta": meta, "experiments": bench.read_records(lines)}, tmp_path / "ref" / "cpu.json")
    runs = reference.load_reference("nb01.demo", "cpu", directory=tmp_path / "ref")
    assert len(runs) == 1 and runs[0].records == tuple(records) and runs[0].baseline == "reshape"
    assert capsys.readouterr().err == ""


def test_the_committed_reference_files_verify():
    files = sorted(p for p in reference.REFERENCE_DIR.glob("*.json") if p.name not in reference.NOT_TIMINGS)
    assert files, "data/reference/ holds no recorded timing file"
    for path in files:
        data = reference._read(path)
        assert data["meta"]["device"] in ("cpu", "cuda")
