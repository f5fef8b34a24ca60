"""`make test-compat`: the course's tests in separate environments, one per supported combination.

Each case builds a fresh virtual environment under ``build/compat/<case>/``, installs one combination of
Python, PyTorch and the other dependencies, and runs there what ``make test`` runs here: the helpers' unit
tests, their doctests and strict nbval over the notebooks, in a fresh clone of the current commit. It then writes
``compat/records/<case>.json``: versions, date, machine, the exact commands, and pass/fail per test. The
tested matrix in CONTRIBUTING.md is read from those files (``tests/test_compat.py`` checks that they agree).

    python scripts/compat.py                  # the cases installable from this machine's disk (make test-compat)
    python scripts/compat.py --case colab-like-py312   # one case by name
    python scripts/compat.py --list

Cases:
- ``torch-2.14.1-py311``: the CUDA build of torch 2.14.1 that lies on local disk, with every other pin of
  constraints.txt. On a machine with a CUDA toolkit and no GPU, this build logs one line when
  ``torch.utils.benchmark`` is imported; the notebook kernel drops exactly that line (see
  ``scripts/compat_kernel_startup.py``) and nothing else.
- ``colab-like-py312``: what a Colab runtime offers (Python 3.12, the newest torch the package index offers
  within this machine's cap, ipywidgets 7.7.1, current numpy and matplotlib), then the notebooks' own Colab
  cell (``scripts/colab_cell.py``) run with Colab faked and a local clone as the repository: it must install
  the course without touching torch. torch for Python 3.12 is a download of about 3 GB, so this case is not
  in the default set; its committed record says when it ran.
- ``floor-py311``: the lowest versions ``pyproject.toml`` declares (``compat/floors.txt``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "compat" / "records"
BUILD = ROOT / "build" / "compat"
FLOORS = ROOT / "compat" / "floors.txt"
KERNEL_STARTUP = ROOT / "scripts" / "compat_kernel_startup.py"
DIR_ENV = "RNN_LOOPS_LAB_DIR"  # where the Colab cell keeps its clone (scripts/colab_cell.py)
# Wheels downloaded once for cases whose torch is not on local disk; reused by later runs.
WHEELHOUSE = Path(os.environ.get("COMPAT_WHEELHOUSE", Path.home() / ".cache" / "rnn-loops-lab" / "compat"))
# Packages whose installed versions every record lists.
REPORTED = ["torch", "numpy", "matplotlib", "ipywidgets", "widgetsnbextension", "jupyterlab_widgets",
            "jupyterlab", "torchviz", "graphviz", "ipykernel", "nbval", "nbclient", "pytest"]


@dataclass
class Case:
    name: str
    python: str                       # "3.11"
    description: str
    default: bool                     # in `make test-compat` (everything it needs is on disk or small)
    torch: str
    # extra pins over constraints.txt (name -> version); packages listed in `unpin` drop their pin
    pins: dict[str, str] = field(default_factory=dict)
    unpin: tuple[str, ...] = ()
    colab: bool = False               # install the way the notebooks' Colab cell does
    extras: str = "lab,test"          # as make installs; the floor case leaves out JupyterLab (needs ipywidgets 8)


def _floor_pins() -> dict[str, str]:
    pins = {}
    for line in FLOORS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def cases() -> dict[str, Case]:
    floors = _floor_pins()
    return {case.name: case for case in [
        Case("torch-2.14.1-py311", "3.11",
             "torch 2.14.1 (CUDA build from local disk, run without a GPU), every other pin from constraints.txt",
             default=True, torch="2.14.1"),
        Case("floor-py311", "3.11",
             "the lowest versions pyproject.toml declares (compat/floors.txt), test tools from constraints.txt",
             default=True, torch=floors["torch"], pins=floors, extras="test",
             unpin=("widgetsnbextension", "jupyterlab_widgets", "jupyterlab", "contourpy", "fonttools", "kiwisolver",
                    "pillow", "pyparsing", "packaging")),
        Case("colab-like-py312", "3.12",
             "a Colab-like runtime: Python 3.12, the newest torch within this machine's cap, ipywidgets 7.7.1, "
             "current numpy and matplotlib; the course installed by the notebooks' own Colab cell",
             default=False, torch="2.14.1", colab=True,
             pins={"ipywidgets": "7.7.1"}),
    ]}


def find_python(version: str) -> str | None:
    """An interpreter for ``version`` ("3.12"): on PATH, or installed by pyenv, checked by running it."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(str(pyenv_root / "versions" / f"{version}.*" / "bin" / f"python{version}")),
                         reverse=True)
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _constraints_for(case: Case, path: Path) -> None:
    """constraints.txt with the case's torch and pins swapped in (a constraints file may name a package once)."""
    override = {"torch": case.torch, **case.pins}
    dropped = {_norm(n) for n in (*override, *case.unpin)}
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines()
             if not line.strip() or line.startswith("#") or _norm(re.split(r"[=<>]", line)[0]) not in dropped]
    lines += [f"{name}=={version}" for name, version in override.items()]
    path.write_text("\n".join(lines) + "\n")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


class Runner:
    """Runs a case's commands, logging each to build/compat/<case>/log.txt and keeping them for the record."""

    def __init__(self, workdir: Path):
        self.log = (workdir / "log.txt").open("w")
        self.steps: list[dict[str, object]] = []

    def run(self, argv: list[str], what: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
            check: bool = True, timeout: int = 3600) -> subprocess.CompletedProcess:
        shown = " ".join(shlex.quote(str(a)).replace(str(ROOT), ".") for a in argv)
        print(f"  {what}: {shown}", flush=True)
        self.log.write(f"\n$ {shown}\n")
        self.log.flush()
        start = time.monotonic()
        proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
        seconds = round(time.monotonic() - start, 1)
        self.log.write(proc.stdout)
        self.log.flush()
        self.steps.append({"what": what, "command": shown, "seconds": seconds, "exit_code": proc.returncode})
        if check and proc.returncode != 0:
            raise StepFailed(what, proc.stdout)
        return proc


class StepFailed(Exception):
    def __init__(self, what: str, output: str):
        super().__init__(what)
        self.what, self.output = what, output


def _install(case: Case, runner: Runner, workdir: Path, python: str, commit: str) -> tuple[Path, Path]:
    """Create the case's environment and install the course into it; returns (python, the course's clone)."""
    venv = workdir / "venv"
    runner.run([python, "-m", "venv", venv], "create the environment")
    py = venv / "bin" / "python"
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    constraints = workdir / "constraints.txt"
    _constraints_for(case, constraints)
    if not case.colab:
        source = workdir / "src"
        runner.run(["git", "clone", "--quiet", ROOT, source], "a fresh clone of this repository")
        runner.run(["git", "checkout", "--quiet", commit], "at the recorded commit", cwd=source)
        runner.run([*pip, "-c", constraints, "-e", f".[{case.extras}]"], "install the course with the case's versions",
                   cwd=source)
        return py, source
    # Colab-like: first what a Colab runtime already has, then the notebooks' own Colab cell installs the course.
    wheels = WHEELHOUSE / f"wheels-py{case.python.replace('.', '')}"
    wheels.mkdir(parents=True, exist_ok=True)
    runner.run([py, "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off",
                "--only-binary=:all:", "--dest", wheels, f"torch=={case.torch}"],
               "fetch torch into the wheelhouse (a download of about 3 GB the first time)")
    preinstalled = [f"torch=={case.torch}", f"ipywidgets=={case.pins['ipywidgets']}", "numpy", "matplotlib",
                    "ipykernel", "pytest", "pytest-timeout", "nbval", "nbclient", "pyyaml", "hypothesis"]
    runner.run([*pip, "--find-links", wheels, *preinstalled], "install what a Colab runtime already has")
    return py, _run_colab_cell(runner, workdir, py, commit)


def _run_colab_cell(runner: Runner, workdir: Path, py: Path, commit: str) -> Path:
    """Clone this commit into the case and run the notebooks' Colab cell with Colab faked, from /content-like cwd."""
    content = workdir / "content"
    content.mkdir()
    origin = workdir / "origin.git"
    runner.run(["git", "clone", "--quiet", "--bare", ROOT, origin], "a local stand-in for the course repository")
    sys.path.insert(0, str(ROOT / "scripts"))
    import colab_cell  # the cell's source is defined there, once

    tag = colab_cell.release_tag()
    runner.run(["git", "--git-dir", origin, "tag", "-f", tag, commit], f"tag the recorded commit as {tag}")
    env = {**os.environ, colab_cell.REPO_ENV: origin.as_uri(), colab_cell.DIR_ENV: str(content / "rnn-loops-lab")}
    before = _versions(py)["torch"]
    runner.run([py, ROOT / "scripts" / "colab_cell.py", "--run-as-colab"], "run the notebooks' Colab cell",
               env=env, cwd=content)
    after = _versions(py)["torch"]
    if before != after:
        raise StepFailed("the Colab cell kept torch", f"torch was {before}, is {after} after the Colab cell")
    return content / "rnn-loops-lab"


def _versions(py: Path) -> dict[str, str | None]:
    code = ("import json, importlib.metadata as m\n"
            "def v(n):\n    try: return m.version(n)\n    except m.PackageNotFoundError: return None\n"
            f"print(json.dumps({{n: v(n) for n in {REPORTED!r}}}))")
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# For the Colab-like case, a second kernel startup file: the kernel looks like Colab's (google.colab imported,
# working directory /content-like, not notebooks/), so each notebook's Colab cell runs for real and the
# notebooks must find helpers/ and data/ from anywhere.
FAKE_COLAB_STARTUP = """\
import os, sys, types
sys.modules.setdefault("google", types.ModuleType("google"))
sys.modules["google.colab"] = types.ModuleType("google.colab")
os.chdir({content!r})
"""


def _test(runner: Runner, workdir: Path, py: Path, source: Path, colab: bool = False
          ) -> tuple[Path, subprocess.CompletedProcess]:
    junit = workdir / "junit.xml"
    notebooks = sorted(str(p.relative_to(source)) for p in (source / "notebooks").glob("[0-9]*.ipynb"))
    # The same command as `make test`, in the case's environment. The kernel gets an IPython directory whose
    # one startup file drops torch's "No CUDA runtime is found" line and nothing else.
    ipython_dir = workdir / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    shutil.copy(KERNEL_STARTUP, startup / "00-compat-kernel-startup.py")
    if colab:
        (startup / "01-fake-colab.py").write_text(FAKE_COLAB_STARTUP.format(content=str(source.parent)))
    argv = [py, "-m", "pytest", "-p", "no:cacheprovider", "--doctest-modules", "helpers", "tests", *notebooks,
            f"--junitxml={junit}", "-o", "junit_family=xunit1"]
    env = {**os.environ, "IPYTHONDIR": str(ipython_dir), "MPLBACKEND": "Agg"}
    if colab:
        env[DIR_ENV] = str(source)
    env.pop("VIRTUAL_ENV", None)
    proc = runner.run(argv, "unit tests, doctests and strict nbval", env=env, cwd=source, check=False,
                      timeout=5400)
    return junit, proc


def _outcomes(junit: Path) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('file') or case.get('classname')}::{case.get('name')}"
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                status = "failed"
            elif child.tag == "skipped":
                status = "skipped"
        outcomes[name] = status
    return outcomes


def run_case(case: Case, command: str) -> dict[str, object]:
    workdir = BUILD / case.name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    runner = Runner(workdir)
    started = dt.datetime.now(dt.UTC)
    record: dict[str, object] = {
        "case": case.name,
        "description": case.description,
        "command": command,
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git("rev-parse", "HEAD"),
        # each case tests a clone of this commit: uncommitted changes are not part of the record
        "kernel_filter": "scripts/compat_kernel_startup.py drops torch's 'No CUDA runtime is found' log line, "
                         "nothing else",
        "machine": {"system": platform.system(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
                    "gpu": _gpu()},
    }
    print(f"[{case.name}] {case.description}", flush=True)
    python = find_python(case.python)
    if python is None:
        record.update(outcome="not run", reason=f"no Python {case.python} found on PATH or in pyenv")
        return record
    try:
        py, source = _install(case, runner, workdir, python, str(record["git_commit"]))
    except StepFailed as failure:
        record.update(outcome="install failed", failed_step=failure.what, steps=runner.steps,
                      output_tail=failure.output[-4000:])
        return record
    record["python"] = subprocess.run([py, "-c", "import platform; print(platform.python_version())"],
                                      capture_output=True, text=True).stdout.strip()
    record["versions"] = _versions(py)
    junit, proc = _test(runner, workdir, py, source, colab=case.colab)
    outcomes = _outcomes(junit) if junit.exists() else {}
    counts = {status: sum(1 for s in outcomes.values() if s == status) for status in ("passed", "failed", "skipped")}
    record.update(
        outcome="passed" if proc.returncode == 0 and outcomes else "failed",
        steps=runner.steps,
        counts=counts,
        summary=(proc.stdout.strip().splitlines() or [""])[-1],
        failed=[name for name, status in outcomes.items() if status == "failed"],
        tests=outcomes,
    )
    if proc.returncode != 0:
        record["output_tail"] = proc.stdout[-6000:]
    return record


def _gpu() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    return out.stdout.strip() or None


def write_record(record: dict[str, object]) -> Path:
    RECORDS.mkdir(parents=True, exist_ok=True)
    path = RECORDS / f"{record['case']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    return path


# The tested matrix lives in the maintainers' guide (the README links it).
README = ROOT / "CONTRIBUTING.md"
MATRIX_START, MATRIX_END = "<!-- compat-matrix:start -->", "<!-- compat-matrix:end -->"


def load_records() -> list[dict[str, object]]:
    known = list(cases())
    records = [json.loads(p.read_text()) for p in sorted(RECORDS.glob("*.json"))]
    return sorted(records, key=lambda r: known.index(r["case"]) if r["case"] in known else len(known))


def _tally(tests: dict[str, str], notebooks: bool) -> str:
    chosen = [status for name, status in tests.items() if (".ipynb::" in name) == notebooks]
    text = f"{chosen.count('passed')} passed, {chosen.count('failed')} failed"
    return text + (f", {chosen.count('skipped')} skipped" if chosen.count("skipped") else "")


def matrix_markdown(records: list[dict[str, object]]) -> str:
    """The README's tested matrix, one row per record: notebook cells (strict nbval) apart from the other tests."""
    rows = ["| case | Python | torch | numpy | matplotlib | ipywidgets | notebook cells, strict nbval | "
            "unit tests and doctests | run on |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for record in records:
        versions = record.get("versions") or {}
        tests = record.get("tests") or {}
        if record["outcome"] in ("passed", "failed"):
            results = [_tally(tests, notebooks=True), _tally(tests, notebooks=False)]
        else:
            results = [f"{record['outcome']} ({record.get('reason') or record.get('failed_step')})", "-"]
        cells = [f"`{record['case']}`", record.get("python", "-")] + [
            versions.get(name) or "-" for name in ("torch", "numpy", "matplotlib", "ipywidgets")]
        cells += [*results, f"{record['date'][:10]}, commit {str(record['git_commit'])[:7]}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_readme_matrix() -> None:
    text = README.read_text()
    if MATRIX_START not in text:
        return
    head, rest = text.split(MATRIX_START, 1)
    _, tail = rest.split(MATRIX_END, 1)
    README.write_text(f"{head}{MATRIX_START}\n{matrix_markdown(load_records())}\n{MATRIX_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    known = cases()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=sorted(known),
                        help="run this case (repeatable); default: the cases marked default")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--readme", action="store_true", help="only rewrite CONTRIBUTING.md's matrix from compat/records/")
    args = parser.parse_args(argv)
    if args.readme:
        write_readme_matrix()
        return 0
    if args.list:
        for case in known.values():
            print(f"{case.name:<22} {'default ' if case.default else 'on demand'}  {case.description}")
        return 0
    chosen = [known[name] for name in args.case] if args.case else [c for c in known.values() if c.default]
    command = os.environ.get("COMPAT_COMMAND", "").strip() or " ".join(["python", "scripts/compat.py", *(argv or sys.argv[1:])])
    failures = 0
    for case in chosen:
        record = run_case(case, command)
        path = write_record(record)
        print(f"[{case.name}] {record['outcome']}: {record.get('summary') or record.get('reason') or record.get('failed_step')}"
              f" -> {path.relative_to(ROOT)}", flush=True)
        failures += record["outcome"] != "passed"
    write_readme_matrix()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
