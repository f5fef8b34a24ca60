"""Strict nbval passes trivially on a notebook stored unexecuted, so check how each one is stored."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
STORED_OUTPUT_LIMIT = 3_000_000  # bytes of outputs per notebook; figures are PNG, kept modest


def _code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _ids(path):
    return path.name


pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks yet")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_stored_executed_top_to_bottom(path):
    counts = [c["execution_count"] for c in _code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name} is not stored as one top-to-bottom run (execution counts {counts}); run 'make execute'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_no_stored_errors(path):
    for i, cell in enumerate(_code_cells(path)):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name} code cell {i} stores an error"
            assert output.get("name") != "stderr" or "Traceback" not in "".join(output.get("text", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_figures_are_png_and_outputs_lean(path):
    size = 0
    for cell in _code_cells(path):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert "image/svg+xml" not in data, f"{path.name}: store figures as PNG (SVG embeds object ids)"
            size += len(json.dumps(output))
    assert size < STORED_OUTPUT_LIMIT, f"{path.name} stores {size / 1e6:.1f} MB of outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_follows_the_course_skeleton(path):
    cells = json.loads(path.read_text())["cells"]
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for heading in ("What you will learn", "Prerequisites", "Summary", "Exercises"):
        assert heading in markdown, f"{path.name} lacks the '{heading}' section of the shared skeleton"
    # the Colab cell (scripts/colab_cell.py) and a parameters cell may come before the setup cell
    first_code = "".join(next(c for c in _code_cells(path) if c.get("id") != "colab-setup"
                              and "parameters" not in c.get("metadata", {}).get("tags", []))["source"])
    assert "seed_everything" in first_code and "set_threads" in first_code, (
        f"{path.name}: the first code cell must be the setup cell (seed, threads, device, versions)")
