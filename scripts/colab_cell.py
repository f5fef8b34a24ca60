"""The notebooks' Colab cell and "Open in Colab" link: one source, written identically into every notebook.

    python scripts/colab_cell.py --write    # insert or update the cell and the link in notebooks/0*.ipynb
    python scripts/colab_cell.py --check    # exit 1 naming each notebook whose cell or link is missing/stale

The cell is the first code cell of each notebook. On Colab it clones the course (``helpers/`` and ``data/``)
at the release tag, installs it with pip while pinning Colab's own torch so pip cannot replace it, and
changes into ``notebooks/`` so the notebook runs as it does in a clone. Anywhere else it does nothing and
prints nothing. The repository address and the tag come from ``pyproject.toml`` (``[project.urls]
Repository`` and ``[tool.rnn-loops-lab] release-tag``), the one place to change them.

``--run-as-colab`` runs the cell in this process with Colab faked (a stand-in ``google.colab`` module),
then checks what it promises; ``scripts/compat.py`` uses it with a local clone as the repository.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_ID = "colab-setup"
# The cell and the tests decide "are we on Colab?" with this one expression (Colab's kernel imports
# google.colab at start; nothing else does).
COLAB_CHECK = '"google.colab" in sys.modules'
# Overrides for testing the cell against another clone (scripts/compat.py); unset on Colab.
REPO_ENV = "RNN_LOOPS_LAB_REPO"
DIR_ENV = "RNN_LOOPS_LAB_DIR"
BADGE_MARK = "colab.research.google.com/github/"
# nbval-ignore-output: on Colab the cell shows pip's messages, which vary by machine; off Colab it prints
# nothing, which tests/test_colab_cell.py checks. An exception in the cell still fails strict nbval.
CELL_TAGS = ("colab-setup", "nbval-ignore-output")

CELL_TEMPLATE = '''\
# Colab only (does nothing elsewhere): fetch the course (helpers/, data/) at this notebook's release,
# install it next to Colab's own torch (pinned, so pip cannot replace it), and run from notebooks/.
import os
import subprocess
import sys

if {check}:
    from importlib.metadata import version
    HOME = os.environ.get("{dir_env}", "/content/rnn-loops-lab")
    if not os.path.isdir(HOME):
        REPO = os.environ.get("{repo_env}", "{repo}")
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", "{tag}", REPO, HOME], check=True)
    with open("/tmp/rnn-loops-lab-keep-torch.txt", "w") as keep:
        keep.write(f"torch=={{version('torch')}}\\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-c", keep.name, "-e", HOME], check=True)
    sys.path.insert(0, HOME)
    os.chdir(os.path.join(HOME, "notebooks"))'''


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def repository_url() -> str:
    """The course repository's web address (``[project.urls] Repository`` in pyproject.toml)."""
    return _project()["project"]["urls"]["Repository"].rstrip("/")


def release_tag() -> str:
    """The git tag the Colab cell clones and the Colab links open (``[tool.rnn-loops-lab] release-tag``)."""
    return _project()["tool"]["rnn-loops-lab"]["release-tag"]


def in_colab(modules: dict | None = None) -> bool:
    """True on Colab, decided by the same expression the cell evaluates."""
    return eval(COLAB_CHECK, {"sys": types.SimpleNamespace(modules=sys.modules if modules is None else modules)})


def cell_source() -> str:
    return CELL_TEMPLATE.format(check=COLAB_CHECK, dir_env=DIR_ENV, repo_env=REPO_ENV,
                                repo=repository_url() + ".git", tag=release_tag())


def colab_url(notebook_name: str) -> str:
    owner_repo = repository_url().split("github.com/", 1)[1]
    return f"https://{BADGE_MARK}{owner_repo}/blob/{release_tag()}/notebooks/{notebook_name}"


def badge_line(notebook_name: str) -> str:
    # A text link, not the usual badge image: an image from the internet shows broken in an offline
    # classroom's JupyterLab and in the offline course website built from these notebooks.
    return f"[▶ Open in Colab]({colab_url(notebook_name)}) (no installation: the first code cell fetches the course)"


def _lines(text: str) -> list[str]:
    """nbformat's list-of-lines form of a cell source."""
    parts = text.split("\n")
    return [line + "\n" for line in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _with_badge(title: str, notebook_name: str) -> str:
    lines = title.split("\n")
    kept = [line for line in lines if BADGE_MARK not in line]
    heading, rest = kept[0], kept[1:]
    while rest and rest[0] == "":
        rest = rest[1:]
    return "\n".join([heading, "", badge_line(notebook_name), "", *rest])


def updated(notebook: dict, notebook_name: str) -> dict:
    """The notebook with the Colab link in its title cell and the Colab cell as its first code cell."""
    cells = [dict(c) for c in notebook["cells"]]
    title = cells[0]
    if title["cell_type"] != "markdown" or not _source(title).startswith("# "):
        raise SystemExit(f"{notebook_name}: the first cell must be the title (markdown starting with '# ')")
    title["source"] = _lines(_with_badge(_source(title), notebook_name))
    ours = [i for i, c in enumerate(cells) if c.get("id") == CELL_ID]
    cell = cells[ours[0]] if ours else {"cell_type": "code", "execution_count": None, "id": CELL_ID, "outputs": []}
    cell["source"] = _lines(cell_source())
    cell["metadata"] = {**cell.get("metadata", {}), "tags": list(CELL_TAGS)}
    if ours:
        cells.pop(ours[0])
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    cells.insert(first_code, cell)
    return {**notebook, "cells": cells}


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def _dump(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"  # nbformat's own layout


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def stale(path: Path) -> bool:
    notebook = json.loads(path.read_text())
    return updated(notebook, path.name) != notebook


def run_as_colab() -> int:
    """Run the cell with Colab faked, as a kernel would, then check the course imports and finds its data."""
    sys.modules.setdefault("google", types.ModuleType("google"))
    sys.modules["google.colab"] = types.ModuleType("google.colab")
    assert in_colab()
    exec(compile(cell_source(), "<colab cell>", "exec"), {"__name__": "__main__"})
    import helpers

    home = Path(os.environ.get(DIR_ENV, "/content/rnn-loops-lab")).resolve()
    package_home = Path(helpers.__file__).resolve().parents[1]
    checks = {
        "working directory is the clone's notebooks/": Path.cwd().resolve() == home / "notebooks",
        "helpers imported from the clone": package_home == home,
        "data/ found from helpers": (package_home / "data" / "sunspots_yearly.csv").is_file(),
        "data/reference/ found from helpers": (package_home / "data" / "reference").is_dir(),
    }
    for what, ok in checks.items():
        print(f"{'ok ' if ok else 'FAILED'} {what}")
    return 0 if all(checks.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="insert or update the cell and link in every notebook")
    mode.add_argument("--check", action="store_true", help="exit 1 if a notebook lacks the current cell or link")
    mode.add_argument("--run-as-colab", action="store_true", help="run the cell here with Colab faked (tests)")
    mode.add_argument("--print", action="store_true", help="print the cell's source")
    args = parser.parse_args(argv)
    if args.print:
        print(cell_source())
        return 0
    if args.run_as_colab:
        return run_as_colab()
    paths = [p for p in notebooks() if stale(p)]
    if args.check:
        for path in paths:
            print(f"{_shown(path)}: Colab cell or link missing or out of date; run "
                  "'python scripts/colab_cell.py --write', then 'make execute'")
        return 1 if paths else 0
    for path in paths:
        path.write_text(_dump(updated(json.loads(path.read_text()), path.name)))
        print(f"updated {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
