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
    assert "timeout $(NOTEBOOK_TIMEOUT)" in makefile and "--ExecutePreprocessor.timeout=$(CELL_TIMEOUT)" in makefile


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
