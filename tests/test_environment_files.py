"""environment.yml (conda, Binder) and constraints.txt (make) must install the same tested versions."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = PIN.match(line)
            assert match, f"constraints.txt line is not an exact pin: {line!r}"
            pins[_norm(match[1])] = match[2]
    return pins


def _environment_pip() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    return pip_sections[0]


def test_environment_pins_equal_constraints():
    pins = _constraints()
    for line in _environment_pip():
        match = PIN.match(line)
        if match:
            assert pins.get(_norm(match[1])) == match[2], f"{line} disagrees with constraints.txt"


def test_environment_uses_constraints_and_installs_the_package():
    lines = _environment_pip()
    assert "-c constraints.txt" in lines
    assert any(line.startswith("-e .") for line in lines)


def test_every_direct_dependency_is_pinned_in_both_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = project["dependencies"] + extras["lab"] + extras["test"]
    names = {_norm(re.split(r"[<>=!~\[ ]", spec)[0]) for spec in wanted}
    env_pins = {_norm(PIN.match(line)[1]) for line in _environment_pip() if PIN.match(line)}
    pins = _constraints()
    assert names <= set(pins), f"not pinned in constraints.txt: {names - set(pins)}"
    assert names <= env_pins, f"not pinned in environment.yml: {names - env_pins}"


def test_torch_is_pinned_to_the_tested_cpu_release():
    assert _constraints()["torch"] == "2.13.0"


def test_environment_has_python_311_and_graphviz():
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    assert "python=3.11" in deps and "graphviz" in deps
