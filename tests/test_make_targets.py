"""The README's commands, as make would run them (dry run): safe defaults for the lab server and CI."""
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def _dry_run(target: str) -> str:
    # -W marks the install stamp as fresh, so the dry run shows only the target's own commands
    return subprocess.run(["make", "-n", "-W", "pyproject.toml", target], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_lab_listens_on_loopback_with_its_token():
    command = [line for line in _dry_run("lab").splitlines() if "jupyter lab" in line][0]
    assert "--ip=127.0.0.1" in command and "--notebook-dir=notebooks" in command
    assert "token=''" not in command and "token=\"\"" not in command and "0.0.0.0" not in command
    assert ("--allow-root" in command) == (os.geteuid() == 0)


def test_test_runs_unit_tests_doctests_and_every_notebook():
    command = [line for line in _dry_run("test").splitlines() if "pytest" in line][0]
    assert "--doctest-modules helpers tests" in command
    for notebook in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        assert f"notebooks/{notebook.name}" in command


def test_strict_nbval_is_configured():
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert "--nbval " in addopts and "--nbval-lax" not in addopts and "--nbval-current-env" in addopts
    assert "--nbval-sanitize-with tests/nbval_sanitize.cfg" in addopts


def test_execute_has_finite_timeouts():
    commands = _dry_run("execute")
    for notebook in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        assert notebook.name in commands
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/run_with_timeout.py '$(NOTEBOOK_TIMEOUT)'" in makefile
    assert "-m helpers.execute --in-place --cell-timeout '$(CELL_TIMEOUT)'" in makefile


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make lab" in readme and "make test" in readme


def test_install_sets_the_course_jupyterlab_defaults():
    import json

    overrides = json.loads((ROOT / "lab-overrides.json").read_text())
    assert overrides["@jupyterlab/notebook-extension:tracker"]["codeCellConfig"]["lineWrap"] is True
    makefile = (ROOT / "Makefile").read_text()
    assert "cp lab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json" in makefile


def _path_without(tmp_path: Path, hidden: str) -> str:
    """A PATH with every program of this one except `hidden` (each program linked into one directory)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name != hidden and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(bin_dir)


def _notebook(path: Path, source: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def _make_execute(tmp_path: Path, notebook: Path, *variables: str) -> subprocess.CompletedProcess:
    import sys

    env = {**os.environ, "PATH": _path_without(tmp_path, "timeout")}
    assert shutil.which("timeout", path=env["PATH"]) is None
    # this environment's python and jupyter (VENV), the stamp taken as done (-o): only the recipe runs
    return subprocess.run(["make", "-o", f"{sys.prefix}/.installed", f"VENV={sys.prefix}", f"NOTEBOOKS={notebook}",
                           *variables, "execute"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_execute_runs_without_gnu_timeout(tmp_path):
    notebook = _notebook(tmp_path / "ok.ipynb", "print(6 * 7)")
    run = _make_execute(tmp_path, notebook)
    assert run.returncode == 0, run.stdout + run.stderr
    import nbformat

    outputs = nbformat.read(notebook, as_version=4).cells[0].outputs
    assert outputs and outputs[0]["text"] == "42\n"


@pytest.mark.slow
def test_execute_still_stops_a_notebook_that_runs_too_long(tmp_path):
    notebook = _notebook(tmp_path / "slow.ipynb", "import time; time.sleep(120)")
    run = _make_execute(tmp_path, notebook, "NOTEBOOK_TIMEOUT=20")
    assert run.returncode != 0
    assert "ran past 20 s" in run.stderr


@pytest.mark.parametrize("variable, named", [("CELL_TIMEOUT=abc", "--cell-timeout"),
                                             ("CELL_TIMEOUT=inf", "--cell-timeout"),
                                             ("NOTEBOOK_TIMEOUT=abc", "SECONDS"), ("NOTEBOOK_TIMEOUT=inf", "SECONDS")])
def test_execute_refuses_a_bad_timeout_in_one_line_before_running(tmp_path, variable, named):
    notebook = _notebook(tmp_path / "never.ipynb", "open('ran', 'w').write('yes')")
    run = _make_execute(tmp_path, notebook, variable)
    assert run.returncode != 0 and not (tmp_path / "ran").exists()
    assert "Traceback" not in run.stderr and named in run.stderr
    assert len([line for line in run.stderr.splitlines() if named in line]) == 1


def test_find_python_prefers_a_supported_version(tmp_path):
    found = subprocess.run(["sh", "scripts/find-python.sh"], cwd=ROOT, capture_output=True, text=True)
    if found.returncode == 0:
        version = subprocess.run([found.stdout.strip(), "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True).stdout.strip()
        assert version in ("(3, 11)", "(3, 12)")  # never 3.13: see test_find_python_never_picks_an_untested_version


def test_find_python_uses_python_312_when_it_is_the_only_one(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from compat import find_python

    real = find_python("3.12")
    if real is None:
        pytest.skip("no Python 3.12 on this machine")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3.12").symlink_to(real)
    env = {"PATH": str(tmp_path / "bin"), "PYENV_ROOT": str(tmp_path / "no-pyenv"), "HOME": str(tmp_path)}
    found = subprocess.run(["/bin/sh", "scripts/find-python.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert found.stdout.strip() == str(tmp_path / "bin" / "python3.12")


def test_lab_without_a_supported_python_says_how_to_get_one(tmp_path):
    run = subprocess.run(["make", "PYTHON=", f"VENV={tmp_path / 'venv'}", "lab"], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode != 0
    assert "No Python 3.11 or 3.12 found" in run.stdout
    assert "make lab PYTHON=/path/to/python3.11" in run.stdout and "environment.yml" in run.stdout
    assert not (tmp_path / "venv").exists()


def _first_install(tmp_path: Path, *variables: str) -> list[str]:
    """The commands `make lab` runs in a fresh clone (no .venv yet), as a dry run, without CI's settings."""
    env = {key: value for key, value in os.environ.items() if key not in ("TORCH_INDEX", "UNAME", "VENV")}
    run = subprocess.run(["make", "-n", f"VENV={tmp_path / 'venv'}", *variables, "lab"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


def _pip_commands(commands: list[str]) -> list[str]:
    return [line.split("/venv/bin/", 1)[1] for line in commands if " -m pip install " in line]


def test_lab_on_linux_installs_the_cpu_build_of_torch_from_pytorchs_cpu_index_only(tmp_path):
    # The exact commands a Linux learner's first `make lab` runs: torch alone from PyTorch's CPU index
    # (--index-url, --no-deps: no fallback to the package index's CUDA build), then the course, which
    # keeps that torch because it satisfies the pin.
    assert _pip_commands(_first_install(tmp_path, "UNAME=Linux")) == [
        "python -m pip install --disable-pip-version-check -c constraints.txt --no-deps "
        "--index-url https://download.pytorch.org/whl/cpu torch",
        "python -m pip install --disable-pip-version-check -c constraints.txt -e '.[lab,test]'",
    ]


def test_first_install_shows_pips_progress(tmp_path):
    commands = _first_install(tmp_path, "UNAME=Linux")
    assert not [line for line in commands if " -m pip install " in line and ("--quiet" in line or " -q" in line)]


def test_torch_index_chooses_another_build(tmp_path):
    cuda = _pip_commands(_first_install(tmp_path, "UNAME=Linux", "TORCH_INDEX=https://download.pytorch.org/whl/cu130"))
    assert "--no-deps --index-url https://download.pytorch.org/whl/cu130 torch" in cuda[0]
    # pypi: torch with everything else from pip's own configuration (what `make lab` did before)
    pypi = _pip_commands(_first_install(tmp_path, "UNAME=Linux", "TORCH_INDEX=pypi"))
    assert pypi == ["python -m pip install --disable-pip-version-check -c constraints.txt -e '.[lab,test]'"]


def test_macos_gets_torch_from_the_package_index(tmp_path):
    # the package index's macOS wheels are CPU-only (with MPS); PyTorch's CPU index adds nothing there
    assert not [line for line in _first_install(tmp_path, "UNAME=Darwin") if "--index-url" in line]


def test_cpu_index_agrees_with_environment_yml():
    makefile = (ROOT / "Makefile").read_text()
    environment = (ROOT / "environment.yml").read_text()
    index = "https://download.pytorch.org/whl/cpu"
    assert f"TORCH_INDEX ?= {index}" in makefile and f"--extra-index-url {index}" in environment


def test_first_install_checks_the_python_it_was_given(tmp_path):
    commands = _first_install(tmp_path, "UNAME=Linux")
    check = next(i for i, line in enumerate(commands) if "find-python.sh --check" in line)
    assert check < next(i for i, line in enumerate(commands) if " -m pip install " in line)


def _python(version: str) -> str | None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from compat import find_python

    return find_python(version)


@pytest.mark.parametrize("version", ["3.13", "3.10"])
def test_find_python_never_picks_an_untested_version(tmp_path, version):
    real = _python(version)
    if real is None:
        pytest.skip(f"no Python {version} on this machine")
    (tmp_path / "bin").mkdir()
    for name in (f"python{version}", "python3", "python"):
        (tmp_path / "bin" / name).symlink_to(real)
    env = {"PATH": str(tmp_path / "bin"), "PYENV_ROOT": str(tmp_path / "no-pyenv"),
           "HOME": str(tmp_path)}
    found = subprocess.run(["/bin/sh", "scripts/find-python.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == ""


def test_check_warns_about_python_313_and_refuses_310():
    newer, older = _python("3.13"), _python("3.10")
    if newer is None or older is None:
        pytest.skip("needs Python 3.13 and 3.10 on this machine")
    warned = subprocess.run(["sh", "scripts/find-python.sh", "--check", newer], cwd=ROOT, capture_output=True,
                            text=True)
    assert warned.returncode == 0 and "warning: Python 3.13" in warned.stderr and "not tested" in warned.stderr
    refused = subprocess.run(["sh", "scripts/find-python.sh", "--check", older], cwd=ROOT, capture_output=True,
                             text=True)
    assert refused.returncode == 1 and "too old" in refused.stderr
    import sys

    accepted = subprocess.run(["sh", "scripts/find-python.sh", "--check", sys.executable], cwd=ROOT,
                              capture_output=True, text=True)
    assert accepted.returncode == 0 and accepted.stderr == ""


def test_test_runs_ruff_first():
    commands = _dry_run("test").splitlines()
    ruff = next(i for i, line in enumerate(commands) if line.endswith("/ruff check ."))
    assert ruff < next(i for i, line in enumerate(commands) if "pytest" in line)


def test_ruff_is_pinned_alike_in_constraints_and_pre_commit():
    import re

    import yaml

    pin = re.search(r"^ruff==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)[1]
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert hooks["ruff"]["additional_dependencies"] == [f"ruff=={pin}"]
    assert "notebook-hygiene" in hooks


def test_compat_target_runs_the_compat_script():
    commands = _dry_run("test-compat")
    assert "scripts/compat.py" in commands and "COMPAT_COMMAND=" in commands
