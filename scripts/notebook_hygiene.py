"""Keep the notebooks reviewable and tidy for learners: nbval tags, folded solutions, no run-to-run noise.

    python scripts/notebook_hygiene.py --check                 # exit 1 and say what --write would change
    python scripts/notebook_hygiene.py --write [--budget 60]   # fix the notebooks in place (make execute runs it)
    python scripts/notebook_hygiene.py --rerun-diff NOTEBOOK   # execute a copy twice, count the lines that differ

Without paths it acts on ``notebooks/[0-9]*.ipynb``. What ``--write`` does to each notebook:

1. **nbval markers become cell tags.** A comment line ``# NBVAL_IGNORE_OUTPUT`` (and nbval's other markers)
   is removed from the cell's code and the tag nbval reads instead (``nbval-ignore-output``) is added, so
   a learner no longer sees a line that means nothing to them, in JupyterLab or on Colab.
2. **Solutions are folded.** Every cell after the ``### Solutions`` heading (up to a heading of level 3 or
   higher) gets ``jupyter.source_hidden`` and, for code, ``jupyter.outputs_hidden``: JupyterLab shows each
   as a collapsed bar until it is clicked, as the website folds them.
3. **Run-to-run noise is normalised**, so re-executing an unchanged notebook changes only the outputs that
   really changed: per-cell execution timestamps are dropped, widget model ids (fresh random ids on every
   run) are renumbered deterministically in order of appearance (cell outputs first, then the models they
   refer to), the widget state is stored in that order, and the kernel metadata is reduced to what does
   not depend on the machine (the kernelspec JupyterLab writes; Python's major.minor version), and printed
   text the kernel happened to send in several chunks is stored as one output per stream.

``--budget SECONDS`` (with ``--write``) also reads each notebook's execution time from those timestamps
before dropping them (first cell started to last cell finished, as ``make execute`` ran it) and fails
when a notebook took longer: the course promises each notebook runs in under a minute.
"""
from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import shutil
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_GLOB = "notebooks/[0-9]*.ipynb"

# nbval's comment markers and the cell tags it reads for the same thing (nbval/plugin.py).
MARKER_TAGS = {
    "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "NBVAL_CHECK_OUTPUT": "nbval-check-output",
    "NBVAL_RAISES_EXCEPTION": "raises-exception",
    "NBVAL_SKIP": "nbval-skip",
}
IGNORE_TAG = MARKER_TAGS["NBVAL_IGNORE_OUTPUT"]
MARKER_LINE = re.compile(r"^\s*#\s*(NBVAL_[A-Z_]+)\s*$")
SOLUTIONS_HEADING = re.compile(r"^###\s+Solutions\s*$", re.MULTILINE)
HEADING_UP_TO_3 = re.compile(r"^#{1,3}\s", re.MULTILINE)

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MODEL_REF = "IPY_MODEL_"
# Cell metadata that records when a run happened, not what it produced (nbclient; jupyterlab-execute-time).
RUN_METADATA = ("execution", "ExecuteTime")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO_KEYS = ("codemirror_mode", "file_extension", "mimetype", "name", "nbconvert_exporter",
                      "pygments_lexer", "version")


# --- checks other code shares ------------------------------------------------------------------------

def ignores_output(cell: dict) -> bool:
    """Whether strict nbval skips comparing this cell's output: the ``nbval-ignore-output`` tag, or the
    older ``# NBVAL_IGNORE_OUTPUT`` comment line that nbval still honours.

    Example:
        >>> ignores_output({"cell_type": "code", "source": "x = 1", "metadata": {"tags": ["nbval-ignore-output"]}})
        True
        >>> ignores_output({"cell_type": "code", "source": "# NBVAL_IGNORE_OUTPUT\\nx = 1", "metadata": {}})
        True
        >>> ignores_output({"cell_type": "code", "source": "print('# NBVAL_IGNORE_OUTPUT')", "metadata": {}})
        False
    """
    if IGNORE_TAG in cell.get("metadata", {}).get("tags", []):
        return True
    return any((m := MARKER_LINE.match(line)) and m[1] == "NBVAL_IGNORE_OUTPUT"
               for line in _source(cell).splitlines())


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


# --- 1. nbval markers to tags ------------------------------------------------------------------------

def markers_to_tags(nb: dict) -> int:
    """Move whole-line ``# NBVAL_…`` comments of code cells into the cell's tags; returns cells changed.

    A blank line left at the top of the cell by the removal goes too.

    Example:
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\\n\\nprint(1)")])
        >>> markers_to_tags(nb), nb.cells[0].source, nb.cells[0].metadata["tags"]
        (1, 'print(1)', ['nbval-ignore-output'])
    """
    changed = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = _source(cell).split("\n")
        markers = [m[1] for line in lines if (m := MARKER_LINE.match(line)) and m[1] in MARKER_TAGS]
        if not markers:
            continue
        kept = [line for line in lines if not ((m := MARKER_LINE.match(line)) and m[1] in MARKER_TAGS)]
        while kept and not kept[0].strip():
            kept.pop(0)
        cell["source"] = "\n".join(kept)
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        tags.extend(MARKER_TAGS[m] for m in markers if MARKER_TAGS[m] not in tags)
        changed += 1
    return changed


# --- 2. folded solutions -----------------------------------------------------------------------------

def solution_cells(nb: dict) -> list[int]:
    """Indices of the cells under the ``### Solutions`` heading (up to a heading of level 1-3)."""
    cells = nb["cells"]
    start = next((i for i, c in enumerate(cells)
                  if c["cell_type"] == "markdown" and SOLUTIONS_HEADING.search(_source(c))), None)
    if start is None:
        return []
    found = []
    for i in range(start + 1, len(cells)):
        if cells[i]["cell_type"] == "markdown" and HEADING_UP_TO_3.search(_source(cells[i])):
            break
        found.append(i)
    return found


def fold_solutions(nb: dict) -> int:
    """Collapse every cell under ``### Solutions`` in JupyterLab; returns cells changed.

    Example:
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("### Solutions"),
        ...                                      nbformat.v4.new_code_cell("answer = 42")])
        >>> fold_solutions(nb), nb.cells[1].metadata["jupyter"]
        (1, {'source_hidden': True, 'outputs_hidden': True})
        >>> fold_solutions(nb)  # already folded
        0
    """
    changed = 0
    for i in solution_cells(nb):
        cell = nb["cells"][i]
        wanted = {"source_hidden": True}
        if cell["cell_type"] == "code":
            wanted["outputs_hidden"] = True
        jupyter = cell.setdefault("metadata", {}).setdefault("jupyter", {})
        if any(jupyter.get(key) is not value for key, value in wanted.items()):
            jupyter.update(wanted)
            changed += 1
    return changed


# --- 3. run-to-run noise -----------------------------------------------------------------------------

def _timestamp(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def execution_seconds(nb: dict) -> float | None:
    """Seconds from the first cell's start to the last cell's end of the run that stored ``nb``, from the
    timestamps nbclient writes into each cell's ``metadata.execution``; None when there are none.

    Example:
        >>> cell = nbformat.v4.new_code_cell("pass")
        >>> cell.metadata["execution"] = {"iopub.execute_input": "2026-12-01T10:00:00.000000Z",
        ...                               "shell.execute_reply": "2026-12-01T10:00:42.500000Z"}
        >>> execution_seconds(nbformat.v4.new_notebook(cells=[cell]))
        42.5
    """
    times = [t for cell in nb["cells"] for value in cell.get("metadata", {}).get("execution", {}).values()
             if (t := _timestamp(value)) is not None]
    return (max(times) - min(times)).total_seconds() if times else None


def _walk_strings(value, replace):
    """``value`` with every string ``s`` replaced by ``replace(s)`` (dicts and lists rebuilt)."""
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, dict):
        return {key: _walk_strings(item, replace) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk_strings(item, replace) for item in value]
    return value


def _refs(value, models: dict) -> list[str]:
    """Model ids ``value`` refers to, in a fixed order (dict keys sorted): ``IPY_MODEL_…`` strings and the
    ``model_id`` of widget views (an Output widget's stored outputs can hold views of other widgets)."""
    found = []
    if isinstance(value, str):
        if value.startswith(MODEL_REF) and value[len(MODEL_REF):] in models:
            found.append(value[len(MODEL_REF):])
    elif isinstance(value, dict):
        for key in sorted(value):
            if key == "model_id" and value[key] in models:
                found.append(value[key])
            else:
                found.extend(_refs(value[key], models))
    elif isinstance(value, list):
        for item in value:
            found.extend(_refs(item, models))
    return found


def renumber_widgets(nb: dict, name: str) -> int:
    """Give every stored widget model a deterministic id and store the state in that order; returns the
    number of ids that changed.

    The order is that of appearance: the views in the cells' outputs, top to bottom, each followed by the
    models it refers to (depth first); models nothing refers to come last, ordered by their content. The
    new id is the first 32 hex digits of sha1("<name>#<position>"): as long as a regular id, different
    between notebooks (``name``) and the same on every run.

    Example:
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("panel")])
        >>> nb.cells[0].outputs = [nbformat.v4.new_output("display_data",
        ...     {"application/vnd.jupyter.widget-view+json": {"model_id": "f00d", "version_major": 2}})]
        >>> nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {
        ...     "beef": {"model_name": "LayoutModel", "state": {}},
        ...     "f00d": {"model_name": "VBoxModel", "state": {"layout": "IPY_MODEL_beef"}}}}}
        >>> renumber_widgets(nb, "demo.ipynb")
        2
        >>> state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
        >>> [model["model_name"] for model in state.values()]  # the view first, then what it refers to
        ['VBoxModel', 'LayoutModel']
        >>> box, layout = state
        >>> state[box]["state"]["layout"] == "IPY_MODEL_" + layout and nb.cells[0].outputs[0]["data"][
        ...     "application/vnd.jupyter.widget-view+json"]["model_id"] == box
        True
    """
    widgets = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE)
    if not widgets or not widgets.get("state"):
        return 0
    models = widgets["state"]
    order: list[str] = []
    seen: set[str] = set()

    def visit(model_id: str) -> None:
        stack = [model_id]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            order.append(current)
            stack.extend(reversed(_refs(models[current], models)))

    for cell in nb["cells"]:
        for model_id in _refs(cell.get("outputs", []), models):
            visit(model_id)
    id_pattern = re.compile("|".join(re.escape(m) for m in sorted(models, key=len, reverse=True)))

    def masked(model_id: str) -> str:
        return id_pattern.sub("#", json.dumps(models[model_id], sort_keys=True))

    for model_id in sorted((m for m in models if m not in seen), key=masked):
        visit(model_id)
    mapping = {old: hashlib.sha1(f"{name}#{n}".encode()).hexdigest()[:32] for n, old in enumerate(order)}

    def replace(text: str) -> str:
        if text in mapping:
            return mapping[text]
        if text.startswith(MODEL_REF) and text[len(MODEL_REF):] in mapping:
            return MODEL_REF + mapping[text[len(MODEL_REF):]]
        return text

    widgets["state"] = nbformat.from_dict({mapping[old]: _walk_strings(models[old], replace) for old in order})
    for cell in nb["cells"]:
        if "outputs" in cell:
            cell["outputs"] = nbformat.from_dict(_walk_strings(cell["outputs"], replace))
    return sum(old != new for old, new in mapping.items())


def coalesce_streams(nb: dict) -> int:
    """Merge consecutive stream outputs of a cell into one per stream; returns outputs merged away.

    The kernel sends printed text in chunks as its buffer happens to flush, so one run stores two
    ``stdout`` outputs where the next stores one with the same text: a diff with no change in it. nbval
    compares the streams merged anyway; this stores them merged.

    Example:
        >>> cell = nbformat.v4.new_code_cell("print(1); print(2)", outputs=[
        ...     nbformat.v4.new_output("stream", name="stdout", text="1\\n"),
        ...     nbformat.v4.new_output("stream", name="stdout", text="2\\n")])
        >>> coalesce_streams(nbformat.v4.new_notebook(cells=[cell])), cell.outputs[0]["text"]
        (1, '1\\n2\\n')
    """
    merged = 0
    for cell in nb["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            previous = kept[-1] if kept else None
            if (output.get("output_type") == "stream" and previous is not None
                    and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
                previous["text"] = _text(previous["text"]) + _text(output["text"])
                merged += 1
            else:
                kept.append(output)
        if len(kept) != len(cell.get("outputs", [])):
            cell["outputs"] = kept
    return merged


def _text(value) -> str:
    return value if isinstance(value, str) else "".join(value)


def drop_run_noise(nb: dict) -> int:
    """Drop execution timestamps from cells and reduce the kernel metadata to what does not vary between
    machines and runs; returns the number of things changed.

    Example:
        >>> cell = nbformat.v4.new_code_cell("pass")
        >>> cell.metadata["execution"] = {"iopub.execute_input": "2026-12-01T10:00:00Z"}
        >>> nb = nbformat.v4.new_notebook(cells=[cell])
        >>> nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        >>> nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
        >>> drop_run_noise(nb), nb.cells[0].metadata, nb.metadata["language_info"]["version"]
        (3, {}, '3.11')
    """
    changed = 0
    for cell in nb["cells"]:
        for key in RUN_METADATA:
            if key in cell.get("metadata", {}):
                del cell["metadata"][key]
                changed += 1
    metadata = nb.setdefault("metadata", {})
    if metadata.get("kernelspec", KERNELSPEC) != KERNELSPEC or "kernelspec" not in metadata:
        metadata["kernelspec"] = dict(KERNELSPEC)
        changed += 1
    info = metadata.get("language_info")
    if info is not None:
        stable = {key: info[key] for key in LANGUAGE_INFO_KEYS if key in info}
        if "version" in stable:
            stable["version"] = ".".join(str(stable["version"]).split(".")[:2])
        if stable != info:
            metadata["language_info"] = stable
            changed += 1
    metadata.pop("papermill", None)
    return changed


# --- the whole pass ----------------------------------------------------------------------------------

def tidy(nb: dict, name: str) -> dict[str, int]:
    """All three steps on ``nb`` in place; returns what each changed (0 everywhere: already tidy)."""
    return {
        "nbval markers moved into tags": markers_to_tags(nb),
        "solution cells folded": fold_solutions(nb),
        "run metadata dropped": drop_run_noise(nb),
        "stream outputs merged": coalesce_streams(nb),
        "widget ids renumbered": renumber_widgets(nb, name),
    }


def tidy_text(text: str, name: str) -> tuple[str, dict[str, int]]:
    """The notebook file ``text`` tidied, written as nbformat writes it, and what changed."""
    nb = nbformat.reads(text, as_version=4)
    changes = tidy(nb, name)
    return nbformat.writes(nb) + "\n", changes


def changed_lines(before: str, after: str) -> int:
    """Lines a ``git diff`` of ``before`` → ``after`` would show as removed or added.

    Example:
        >>> changed_lines("a\\nb\\nc\\n", "a\\nB\\nc\\n")
        2
    """
    return sum(1 for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---")))


def without_ignored_outputs(text: str) -> str:
    """The notebook ``text`` with the outputs of output-ignored cells and the widget state blanked: what a
    re-run may legitimately change (timings, figures, panels). Used to count the lines changed elsewhere."""
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and ignores_output(cell):
            cell.outputs = []
    nb.metadata.pop("widgets", None)
    return nbformat.writes(nb) + "\n"


# --- command line ------------------------------------------------------------------------------------

def _paths(given: Iterable[str]) -> list[Path]:
    paths = [Path(p) for p in given] or sorted(ROOT.glob(NOTEBOOK_GLOB))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"no such notebook: {', '.join(missing)}")
    return paths


def _execute(path: Path, timeout: int) -> str:
    """``path`` executed as ``make execute`` does (widget state stored), in the notebook's folder."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nbformat.writes(nb) + "\n"


def rerun_diff(path: Path, timeout: int = 300) -> dict[str, int]:
    """Execute ``path`` twice (no source change) and count the lines that differ between the two stored
    results, raw and after ``tidy``, and how many of the tidied ones lie outside ignored outputs and panels.
    The Done-when of issue 26: that last number is 0."""
    first, second = _execute(path, timeout), _execute(path, timeout)
    tidy_first, tidy_second = (tidy_text(text, path.name)[0] for text in (first, second))
    return {
        "changed lines, raw": changed_lines(first, second),
        "changed lines, tidied": changed_lines(tidy_first, tidy_second),
        "of those outside ignored outputs and widget state": changed_lines(
            without_ignored_outputs(tidy_first), without_ignored_outputs(tidy_second)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 if --write would change a file")
    mode.add_argument("--write", action="store_true", help="tidy the notebooks in place")
    mode.add_argument("--rerun-diff", action="store_true",
                      help="execute each notebook twice (in a temporary copy) and count the changed lines")
    parser.add_argument("--budget", type=float, default=None,
                        help="with --write: fail when a notebook's stored run took longer than this many seconds")
    parser.add_argument("--timeout", type=int, default=300, help="with --rerun-diff: per-cell timeout (s)")
    parser.add_argument("paths", nargs="*", help=f"notebooks (default: {NOTEBOOK_GLOB})")
    args = parser.parse_args(argv)
    paths = _paths(args.paths)

    if args.rerun_diff:
        for path in paths:
            # a copy in the notebook's own folder, so relative paths to data/ resolve as in the original
            copy_path = path.parent / f".rerun-{path.name}"
            shutil.copyfile(path, copy_path)
            try:
                counts = rerun_diff(copy_path, args.timeout)
            finally:
                copy_path.unlink(missing_ok=True)
            print(f"{path.name}: " + "; ".join(f"{k}: {v}" for k, v in counts.items()))
        return 0

    untidy, over_budget = [], []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if args.budget is not None:
            seconds = execution_seconds(json.loads(text))
            if seconds is not None:
                print(f"{path.name}: ran in {seconds:.0f} s (budget {args.budget:.0f} s)")
                if seconds > args.budget:
                    over_budget.append(f"{path.name} ({seconds:.0f} s)")
        tidied, changes = tidy_text(text, path.name)
        if tidied == text:
            continue
        done = ", ".join(f"{what}: {n}" for what, n in changes.items() if n) or "formatting"
        if args.write:
            path.write_text(tidied, encoding="utf-8")
            print(f"{path.name}: tidied ({done})")
        else:
            untidy.append(f"{path.name}: {done}")
    if untidy:
        print("not tidy, run 'python scripts/notebook_hygiene.py --write':\n  " + "\n  ".join(untidy))
        return 1
    if over_budget:
        print(f"over the {args.budget:.0f} s budget per notebook: {', '.join(over_budget)}; make it faster "
              "(smaller sizes, a long run behind RUN_LONG) or say why in the README", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
