"""make test-compat (scripts/compat.py): declared floors, the kernel's one-line filter, records and README."""
import json
import logging
import re
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import compat  # noqa: E402


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_floor_is_the_version_the_floor_case_installs():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {_norm(name): version for name, version in compat._floor_pins().items()}
    declared = {}
    for spec in dependencies:
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*>=\s*([^,\s]+)", spec)
        assert match, f"{spec!r}: every runtime dependency declares a tested floor (>=)"
        declared[_norm(match[1])] = match[2]
    assert set(declared) == set(floors)
    for name, floor in declared.items():
        assert floors[name] == floor or floors[name].startswith(floor + "."), (name, floor, floors[name])


def test_case_constraints_swap_in_the_case_versions_once(tmp_path):
    case = compat.Case("x", "3.11", "", default=False, torch="2.14.1", pins={"ipywidgets": "7.7.1"},
                       unpin=("jupyterlab_widgets",))
    path = tmp_path / "c.txt"
    compat._constraints_for(case, path)
    pins = [line for line in path.read_text().splitlines() if "==" in line and not line.startswith("#")]
    names = [_norm(line.split("==")[0]) for line in pins]
    assert len(names) == len(set(names))
    assert "torch==2.14.1" in pins and "ipywidgets==7.7.1" in pins
    assert "jupyterlab-widgets" not in names and "nbval" in names


@pytest.fixture
def kernel_filter():
    logger = logging.getLogger("torch.utils.cpp_extension")
    before = list(logger.filters)
    runpy.run_path(str(compat.KERNEL_STARTUP))
    yield logger
    logger.filters[:] = before


def test_kernel_filter_drops_exactly_the_no_cuda_runtime_line(kernel_filter, caplog):
    with caplog.at_level(logging.WARNING):
        kernel_filter.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
        kernel_filter.warning("No CUDA runtime is found, using CUDA_HOME='%s' (and something new)", "/x")
        kernel_filter.warning("Error checking compiler version for %s", "c++")
        logging.getLogger("torch.other").warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
    assert [r.getMessage() for r in caplog.records] == [
        "No CUDA runtime is found, using CUDA_HOME='/x' (and something new)",
        "Error checking compiler version for c++",
        "No CUDA runtime is found, using CUDA_HOME='/usr/local/cuda'",
    ]


def test_kernel_filter_keeps_other_stderr_output_in_a_fresh_interpreter():
    code = (f"import runpy, logging, warnings; runpy.run_path({str(compat.KERNEL_STARTUP)!r}); "
            "log = logging.getLogger('torch.utils.cpp_extension'); "
            "log.warning(\"No CUDA runtime is found, using CUDA_HOME='%s'\", '/usr/local/cuda'); "
            "log.warning('a real warning'); warnings.warn('a user warning')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "No CUDA runtime" not in out.stderr
    assert "a real warning" in out.stderr and "a user warning" in out.stderr


def test_find_python_checks_the_version_it_runs():
    found = compat.find_python("3.11")
    if found is not None:
        out = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
        assert out.stdout.strip() == "(3, 11)"
    assert compat.find_python("2.1") is None


RECORDS = sorted(compat.RECORDS.glob("*.json"))


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.stem)
def test_each_record_says_what_ran_where_and_what_passed(path):
    record = json.loads(path.read_text())
    assert record["case"] == path.stem and record["case"] in compat.cases()
    assert record["command"].startswith(("make test-compat", "python scripts/compat.py"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["date"])
    assert re.fullmatch(r"[0-9a-f]{40}", record["git_commit"])
    assert record["outcome"] in ("passed", "failed", "install failed", "not run")
    if record["outcome"] in ("passed", "failed"):
        statuses = list(record["tests"].values())
        assert record["counts"] == {s: statuses.count(s) for s in ("passed", "failed", "skipped")}
        assert (record["outcome"] == "passed") == (record["counts"]["failed"] == 0 and statuses != [])
        assert sorted(record["failed"]) == sorted(n for n, s in record["tests"].items() if s == "failed")
        assert record["versions"]["torch"] and record["python"]
        assert any(name.endswith(".ipynb") or ".ipynb::" in name for name in record["tests"]), "nbval ran"


def test_readme_matrix_is_the_one_the_records_give():
    readme = (ROOT / "CONTRIBUTING.md").read_text()
    assert compat.MATRIX_START in readme and compat.MATRIX_END in readme
    block = readme.split(compat.MATRIX_START, 1)[1].split(compat.MATRIX_END, 1)[0].strip()
    assert block == compat.matrix_markdown(compat.load_records()), (
        "CONTRIBUTING.md's tested matrix differs from compat/records/: run make test-compat (it rewrites the matrix)")
