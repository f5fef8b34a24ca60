"""The notebooks' Colab cell (scripts/colab_cell.py): present everywhere, inert off Colab, and a working bootstrap.

If the first test fails, run `python scripts/colab_cell.py --write`, then `make execute`.
"""
import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import colab_cell  # noqa: E402

NOTEBOOKS = colab_cell.notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_the_current_colab_cell_and_link(path):
    assert not colab_cell.stale(path), (
        f"{path.name}: the Colab cell or the 'Open in Colab' link is missing or out of date. "
        "Run 'python scripts/colab_cell.py --write', then 'make execute'.")
    cells = json.loads(path.read_text())["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert first_code["id"] == colab_cell.CELL_ID
    assert colab_cell.colab_url(path.name) in "".join(cells[0]["source"])


def test_the_cell_is_identical_in_every_notebook():
    sources = {p.name: "".join(c["source"]) for p in NOTEBOOKS for c in json.loads(p.read_text())["cells"]
               if c.get("id") == colab_cell.CELL_ID}
    assert len(set(sources.values())) <= 1, sources.keys()


def test_write_inserts_once_and_check_then_passes(tmp_path, monkeypatch):
    notebook = {"cells": [
        {"cell_type": "markdown", "id": "t", "metadata": {}, "source": ["# 09 · Title\n", "\n", "Intro."]},
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["## What you will learn"]},
        {"cell_type": "code", "id": "s", "metadata": {}, "execution_count": 1, "outputs": [], "source": ["x = 1"]},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "09_title.ipynb").write_text(json.dumps(notebook))
    monkeypatch.setattr(colab_cell, "NOTEBOOKS", tmp_path)
    assert colab_cell.main(["--check"]) == 1
    assert colab_cell.main(["--write"]) == 0
    assert colab_cell.main(["--check"]) == 0
    written = json.loads((tmp_path / "09_title.ipynb").read_text())
    assert [c["id"] for c in written["cells"]] == ["t", "m", colab_cell.CELL_ID, "s"]
    assert written["cells"][2]["metadata"]["tags"] == ["colab-setup", "nbval-ignore-output"]
    title = "".join(written["cells"][0]["source"])
    assert title.count("Open in Colab") == 1 and title.startswith("# 09 · Title\n\n[▶ Open in Colab](")
    assert title.endswith("\n\nIntro.")
    assert colab_cell.updated(written, "09_title.ipynb") == written  # a second --write changes nothing


def test_detection_is_the_expression_the_cell_evaluates():
    assert f"if {colab_cell.COLAB_CHECK}:" in colab_cell.cell_source()
    assert colab_cell.in_colab({"google.colab": object()}) is True
    assert colab_cell.in_colab({"google": object()}) is False
    assert colab_cell.in_colab() is ("google.colab" in sys.modules)


def test_repository_and_tag_come_from_pyproject():
    source = colab_cell.cell_source()
    assert f'"{colab_cell.repository_url()}.git"' in source and f'"{colab_cell.release_tag()}"' in source
    assert colab_cell.colab_url("01_x.ipynb").endswith(f"/blob/{colab_cell.release_tag()}/notebooks/01_x.ipynb")


def test_off_colab_the_cell_does_nothing(tmp_path):
    probe = textwrap.dedent(f"""
        import os, sys
        before = (os.getcwd(), list(sys.path))
        exec(compile({colab_cell.cell_source()!r}, "<colab cell>", "exec"), {{}})
        assert (os.getcwd(), list(sys.path)) == before
        assert not os.listdir(".")
    """)
    env = {**os.environ, colab_cell.REPO_ENV: "file:///nonexistent", colab_cell.DIR_ENV: str(tmp_path / "clone")}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""


def _shadow_site_packages(tmp_path: Path) -> Path:
    """This environment's packages without the course itself: what a Colab runtime has before the cell."""
    import sysconfig

    shadow = tmp_path / "preinstalled"
    shadow.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "rnn_loops_lab" not in entry.name and not entry.name.endswith(".pth"):
            (shadow / entry.name).symlink_to(entry)
    return shadow


@pytest.mark.slow
def test_bootstrap_in_a_fresh_environment_from_a_local_clone(tmp_path):
    """The cell with Colab faked: clone at the tag, install without touching torch, run from notebooks/."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", ROOT, origin], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "--git-dir", origin, "tag", "-f", colab_cell.release_tag(), head], check=True)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "preinstalled.pth").write_text(str(_shadow_site_packages(tmp_path)) + "\n")
    content = tmp_path / "content"
    content.mkdir()
    clean_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    missing = subprocess.run([python, "-c", "import helpers"], cwd=content, env=clean_env, capture_output=True)
    assert missing.returncode != 0, "the fresh environment must not have the course yet"
    env = {**clean_env, colab_cell.REPO_ENV: origin.as_uri(), colab_cell.DIR_ENV: str(content / "rnn-loops-lab")}
    run = subprocess.run([python, ROOT / "scripts" / "colab_cell.py", "--run-as-colab"], cwd=content, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FAILED" not in run.stdout and run.stdout.count("ok ") == 4
    assert not list(site.glob("torch*")), "the cell installed a torch next to the one already there"
    assert (content / "rnn-loops-lab" / "notebooks").is_dir()
    # a later session (kernel restart) imports the course from the clone without the cell's sys.path entry
    later = subprocess.run([python, "-c", "import helpers, pathlib; print(pathlib.Path(helpers.__file__).parent)"],
                           cwd=tmp_path, env=clean_env, capture_output=True, text=True)
    assert later.stdout.strip() == str(content / "rnn-loops-lab" / "helpers"), later.stderr
