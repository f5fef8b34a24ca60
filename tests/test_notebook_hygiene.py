"""scripts/notebook_hygiene.py on small notebooks built here: tags, folded solutions, stable re-runs."""
import copy
import doctest
import json
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import notebook_hygiene as hygiene  # noqa: E402

VIEW, STATE = hygiene.WIDGET_VIEW, hygiene.WIDGET_STATE


def test_docstring_examples():
    failures, attempted = doctest.testmod(hygiene, verbose=False)
    assert attempted and not failures


def _course_like(ids=("a" * 32, "b" * 32, "c" * 32), started="2026-12-01T10:00:00.000000Z", timing="12.3 ms",
                 kernel_name="Python 3", python="3.11.7") -> nbformat.NotebookNode:
    """A notebook shaped like the course's, as one run stores it: timestamps, a panel, solutions."""
    panel, layout, orphan = ids
    cells = [
        new_markdown_cell("# 01 · Demo"),
        new_code_cell("# NBVAL_IGNORE_OUTPUT\n\nprint(f'{elapsed} ms')", execution_count=1,
                      outputs=[new_output("stream", name="stdout", text=f"{timing}\n")]),
        new_code_cell("print('Verdict: loops are slow: True')", execution_count=2,
                      outputs=[new_output("stream", name="stdout", text="Verdict: loops are slow: True\n")]),
        new_code_cell("# NBVAL_IGNORE_OUTPUT\npanel", execution_count=3, outputs=[new_output(
            "display_data", {VIEW: {"model_id": panel, "version_major": 2, "version_minor": 0},
                             "text/plain": "VBox()"})]),
        new_markdown_cell("## Exercises\n\n1. Make it faster."),
        new_markdown_cell("### Solutions"),
        new_markdown_cell("#### Exercise 1"),
        new_code_cell("check(answer)", execution_count=4,
                      outputs=[new_output("stream", name="stdout", text="✅ exercise 1\n")]),
    ]
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number}"  # a re-run keeps the cell ids the notebook was saved with
        if cell.cell_type == "code":
            cell.metadata["execution"] = {"iopub.execute_input": started, "shell.execute_reply": started}
    # the kernel lists models in whatever order it created them; a re-run may differ
    state = {
        orphan: {"model_name": "LayoutModel", "state": {"width": "10px"}},
        layout: {"model_name": "LayoutModel", "state": {}},
        panel: {"model_name": "VBoxModel", "state": {"layout": f"IPY_MODEL_{layout}", "children": []}},
    }
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": kernel_name, "language": "python", "name": "python3"},
                   "language_info": {"name": "python", "version": python, "file_extension": ".py"},
                   "widgets": {STATE: {"state": state, "version_major": 2, "version_minor": 0}}}
    return nb


def _write(path: Path, nb) -> Path:
    nbformat.write(nb, path)
    return path


def test_markers_become_tags_and_leave_the_code():
    nb = _course_like()
    assert hygiene.markers_to_tags(nb) == 2
    assert nb.cells[1].source == "print(f'{elapsed} ms')"  # the blank line after the marker went too
    assert nb.cells[1].metadata.tags == ["nbval-ignore-output"] and nb.cells[3].source == "panel"
    assert "tags" not in nb.cells[2].metadata  # a checked cell stays checked
    assert hygiene.markers_to_tags(nb) == 0


def test_every_nbval_marker_maps_to_the_tag_nbval_reads():
    from nbval.plugin import metadata_tags

    nb = new_notebook(cells=[new_code_cell(f"x = 1\n# {marker}") for marker in hygiene.MARKER_TAGS])
    hygiene.markers_to_tags(nb)
    for cell, marker in zip(nb.cells, hygiene.MARKER_TAGS, strict=True):
        (tag,) = cell.metadata.tags
        assert tag in metadata_tags and cell.source == "x = 1", marker


def test_a_marker_inside_a_string_is_code_not_a_marker():
    nb = new_notebook(cells=[new_code_cell("print('# NBVAL_IGNORE_OUTPUT')")])
    assert hygiene.markers_to_tags(nb) == 0 and not hygiene.ignores_output(nb.cells[0])


def test_ignores_output_reads_the_tag_and_the_old_comment():
    tagged, commented, checked = (new_code_cell("x"), new_code_cell("# NBVAL_IGNORE_OUTPUT\nx"), new_code_cell("x"))
    tagged.metadata["tags"] = ["nbval-ignore-output"]
    assert hygiene.ignores_output(tagged) and hygiene.ignores_output(commented)
    assert not hygiene.ignores_output(checked)


def test_solutions_fold_and_nothing_before_them():
    nb = _course_like()
    assert hygiene.fold_solutions(nb) == 2
    folded = [i for i, c in enumerate(nb.cells) if c.metadata.get("jupyter")]
    assert folded == [6, 7]
    assert nb.cells[6].metadata.jupyter == {"source_hidden": True}  # markdown has no outputs
    assert nb.cells[7].metadata.jupyter == {"source_hidden": True, "outputs_hidden": True}


def test_folding_stops_at_the_next_section():
    nb = new_notebook(cells=[new_markdown_cell("### Solutions"), new_code_cell("a"),
                             new_markdown_cell("## Further reading"), new_code_cell("b")])
    assert hygiene.solution_cells(nb) == [1]
    assert hygiene.solution_cells(new_notebook(cells=[new_code_cell("a")])) == []


def test_two_runs_differ_only_in_the_outputs_that_changed():
    # The same notebook run twice: other timestamps, other widget ids in another order, another
    # kernel display name and Python patch release, and one ignored timing that changed.
    first = _course_like()
    second = _course_like(ids=tuple(uuid.uuid4().hex for _ in range(3)), started="2026-12-02T09:30:00.000000Z",
                          timing="14.1 ms", kernel_name="Python 3 (ipykernel)", python="3.11.9")
    state = second.metadata.widgets[STATE]["state"]
    second.metadata.widgets[STATE]["state"] = dict(reversed(list(state.items())))
    raw = [nbformat.writes(nb) + "\n" for nb in (first, second)]
    tidied = [hygiene.tidy_text(text, "01_demo.ipynb")[0] for text in raw]
    assert hygiene.changed_lines(*raw) > 10
    assert hygiene.changed_lines(*tidied) == 2  # the timing line, before and after
    assert hygiene.changed_lines(*(hygiene.without_ignored_outputs(t) for t in tidied)) == 0


def test_widget_references_follow_the_new_ids():
    nb = _course_like()
    hygiene.renumber_widgets(nb, "01_demo.ipynb")
    state = nb.metadata.widgets[STATE]["state"]
    panel_id = nb.cells[3].outputs[0]["data"][VIEW]["model_id"]
    assert list(state)[0] == panel_id and state[panel_id]["model_name"] == "VBoxModel"
    layout_id = state[panel_id]["state"]["layout"].removeprefix("IPY_MODEL_")
    assert list(state)[1] == layout_id and state[layout_id]["state"] == {}
    assert state[list(state)[2]]["state"] == {"width": "10px"}  # nothing refers to it: last
    assert all(len(key) == 32 and int(key, 16) >= 0 for key in state)
    assert "a" * 32 not in json.dumps(nb)


def test_widget_ids_differ_between_notebooks():
    one, two = _course_like(), _course_like()
    hygiene.renumber_widgets(one, "01_demo.ipynb")
    hygiene.renumber_widgets(two, "02_demo.ipynb")
    assert not set(one.metadata.widgets[STATE]["state"]) & set(two.metadata.widgets[STATE]["state"])


def test_views_inside_an_output_widget_are_followed():
    outer, inner = "1" * 32, "2" * 32
    nb = new_notebook(cells=[new_code_cell("out", outputs=[new_output("display_data", {VIEW: {"model_id": outer}})])])
    nb.metadata["widgets"] = {STATE: {"state": {
        inner: {"model_name": "IntSliderModel", "state": {}},
        outer: {"model_name": "OutputModel", "state": {"outputs": [{"output_type": "display_data",
                                                                    "data": {VIEW: {"model_id": inner}}}]}}}}}
    hygiene.renumber_widgets(nb, "x.ipynb")
    state = nb.metadata.widgets[STATE]["state"]
    first, second = state
    assert state[first]["model_name"] == "OutputModel"
    assert state[first]["state"]["outputs"][0]["data"][VIEW]["model_id"] == second


def test_printed_text_in_chunks_is_stored_as_one_output_per_stream():
    cell = new_code_cell("...", outputs=[new_output("stream", name="stdout", text="a\n"),
                                         new_output("stream", name="stdout", text="b\n"),
                                         new_output("stream", name="stderr", text="warning\n"),
                                         new_output("stream", name="stdout", text="c\n")])
    nb = new_notebook(cells=[cell])
    assert hygiene.coalesce_streams(nb) == 1
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [("stdout", "a\nb\n"), ("stderr", "warning\n"),
                                                               ("stdout", "c\n")]  # order across streams kept
    assert hygiene.coalesce_streams(nb) == 0


def test_check_reports_and_write_fixes(tmp_path, capsys):
    path = _write(tmp_path / "01_demo.ipynb", _course_like())
    before = path.read_text()
    assert hygiene.main(["--check", str(path)]) == 1
    assert path.read_text() == before and "01_demo.ipynb: nbval markers moved into tags: 2" in capsys.readouterr().out
    assert hygiene.main(["--write", str(path)]) == 0
    assert hygiene.main(["--check", str(path)]) == 0
    stored = nbformat.read(path, as_version=4)
    assert "NBVAL" not in path.read_text() and not any("execution" in c.metadata for c in stored.cells)
    nbformat.validate(stored)


def test_budget_fails_a_notebook_that_ran_too_long(tmp_path, capsys):
    nb = _course_like()
    nb.cells[-1].metadata["execution"]["shell.execute_reply"] = "2026-12-01T10:01:05.000000Z"  # 65 s after start
    path = _write(tmp_path / "slow.ipynb", nb)
    fast = _write(tmp_path / "fast.ipynb", _course_like())
    assert hygiene.main(["--write", "--budget", "60", str(fast)]) == 0
    assert hygiene.main(["--write", "--budget", "60", str(path)]) == 2
    captured = capsys.readouterr()
    assert "slow.ipynb: ran in 65 s (budget 60 s)" in captured.out and "slow.ipynb (65 s)" in captured.err
    assert "execution" not in nbformat.read(path, as_version=4).cells[1].metadata  # still tidied


def test_tidy_does_not_touch_a_notebook_twice():
    text = nbformat.writes(_course_like()) + "\n"
    once = hygiene.tidy_text(text, "n.ipynb")[0]
    twice, changes = hygiene.tidy_text(once, "n.ipynb")
    assert twice == once and not any(changes.values())


def test_tidy_leaves_the_notebook_it_was_given_valid_for_nbval():
    nb = _course_like()
    original = copy.deepcopy(nb)
    hygiene.tidy(nb, "n.ipynb")
    assert [c.cell_type for c in nb.cells] == [c.cell_type for c in original.cells]
    assert [c.get("outputs") and len(c.outputs) for c in nb.cells] == [c.get("outputs") and len(c.outputs)
                                                                        for c in original.cells]
    nbformat.validate(nb)


@pytest.mark.slow
def test_a_real_rerun_changes_no_line_outside_ignored_outputs(tmp_path):
    """Execute a small notebook with a widget and a timing twice in a real kernel (as make execute does)."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    nb = new_notebook(cells=[
        new_code_cell("# NBVAL_IGNORE_OUTPUT\nimport time\nprint(time.perf_counter())"),
        new_code_cell("print(6 * 7)"),
        new_code_cell("# NBVAL_IGNORE_OUTPUT\nimport ipywidgets as W\nW.VBox([W.IntSlider(3), W.Label('panel')])"),
    ])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    counts = hygiene.rerun_diff(_write(tmp_path / "demo.ipynb", nb), timeout=120)
    assert counts["changed lines, raw"] > counts["changed lines, tidied"]
    assert counts["changed lines, tidied"] == 2  # the perf_counter line, before and after
    assert counts["of those outside ignored outputs and widget state"] == 0
