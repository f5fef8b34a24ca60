"""Every notebook, live in JupyterLab in headless Chromium: runs clean, widgets render and react.

Run with ``make test-browser`` (excluded from ``make test``). For each ``notebooks/[0-9]*.ipynb`` the
test opens the notebook in JupyterLab, clears the stored outputs, runs all cells from the Run menu,
waits until every cell has run and the kernel is idle, and then checks:

- no cell has an error output (or a traceback on stderr), in the cell or inside a widget;
- every widget view rendered: no "Error displaying widget", "model not found" or a widget stuck on
  "Loading widget...";
- every autograd-graph cell and every cell stored with an image shows a decoded image (see
  ``expects_image``, and its cell tags ``browser-expect-image`` / ``browser-no-image``);
- every image in the outputs decoded;
- a panel (``helpers.widgets.Panel``) reacts: change a control, click Run, and its output changes
  (``PANELS`` says which panel and control; the default is the first control of the first panel).

A screenshot of the whole notebook goes to ``test-artifacts/browser/<notebook>.png`` (pass or fail),
with the browser console in ``<notebook>.console.log`` and the server log in ``jupyterlab.log``.
The fixture notebooks in ``tests/browser_fixtures/`` prove that the checks pass a healthy notebook
and fail, with a clear message and a screenshot, on one whose widgets cannot render.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"  # the same folder as conftest.ARTIFACTS
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
FIXTURES = ROOT / "tests" / "browser_fixtures"


@dataclass(frozen=True)
class PanelCheck:
    """Which panel to drive in a notebook, and how.

    Attributes:
        cell: text in the source of the cell that shows the panel; ``None``: the first cell with a
            Run button.
        control: the control's label as shown (its ``description``; a Panel labels a control with
            its argument name when it has none); ``None``: the panel's first slider, else its first
            dropdown, checkbox, toggle buttons or radio buttons.
        action: ``"auto"`` does what suits the control: ``"step"`` for a slider, ``"next"`` for a
            dropdown, toggle buttons or radio buttons, ``"toggle"`` for a checkbox.
            ``"step"`` moves a slider one step with the keyboard (right, or left at its maximum);
            ``"next"`` picks the next option; ``"set:VALUE"`` types VALUE into a slider's readout or
            a text/number box, or picks the option labelled VALUE in a dropdown; ``"toggle"`` clicks
            a checkbox or toggle button; ``"choose:LABEL"`` clicks the button or radio labelled LABEL.
        expect: optional text that must appear in the panel's output after Run.
        timeout: seconds the run may take.
    """

    cell: str | None = None
    control: str | None = None
    action: str = "auto"
    expect: str | None = None
    timeout: float = 60


# Per notebook: the panels to drive (an empty list: none). A notebook not listed gets [PanelCheck()]:
# the first control of the first panel (a slider: one step), then Run. Authors: name a panel whose result visibly
# depends on the control and that runs in a few seconds, e.g.
#   "02_lstm_without_loop.ipynb": [PanelCheck(cell="lstm_panel", control="seq_len", action="set:64")],
PANELS: dict[str, list[PanelCheck]] = {
    # Deterministic panels first (their output changes only if the control really took effect), then
    # one live timing panel, so the CPU/GPU timing path is exercised in the browser too.
    "01_time_distributed.ipynb": [PanelCheck(cell="graph_panel = Panel(draw_pair", control="time steps", action="step")],
    "02_lstm_without_loop.ipynb": [PanelCheck(cell="packing_panel = Panel", control="bidirectional", action="toggle"),
                                   PanelCheck(cell="lstm_timing_panel = Panel", control="hidden", action="next")],
    "03_autograd_in_loops.ipynb": [PanelCheck(cell="graph_panel = Panel(draw_detached_loop", control="loop iterations",
                                              action="step"),
                                   PanelCheck(cell="tbptt_panel.set(window=6", control="window (steps)", action="step",
                                              expect="window 7 of 48 steps")],
    "04_iterating_rnn_cells.ipynb": [PanelCheck(cell="forecast_panel = make_forecast_panel",
                                                control="teacher forcing", action="toggle")],
    "05_rnn_lstm_gru.ipynb": [PanelCheck(cell="flow_panel = make_gradient_flow_panel", control="layer", action="next"),
                              PanelCheck(cell="train_panel = make_training_panel", control="layer", action="next")],
    # fixtures
    "good_panel.ipynb": [PanelCheck(cell="Panel(square", control="n", action="step", expect="result = ")],
    "broken_widget.ipynb": [PanelCheck(cell="Panel(inverse", control="n", action="step")],
}
RUN_ALL_TIMEOUT = {}  # per notebook, seconds, where the default is not enough
DEFAULT_RUN_ALL_TIMEOUT = 180
WIDGET_SETTLE_TIMEOUT = 15  # seconds for "Loading widget..." to turn into a widget once the kernel is idle
SCREENSHOT_MAX_HEIGHT = 12000  # pixels per picture; taller notebooks are saved in parts

# An unindented line (a top-level statement, not a function body) that calls a graph helper.
GRAPH_CALL = re.compile(r"^(?!def |class |#)(?=\S).*?\b(draw_graph|side_by_side)\s*\(", re.MULTILINE)
# Text JupyterLab and its widget manager show in place of an output they could not render.
RENDER_FAILURES = ("Error displaying widget", "model not found", "Loading widget...",
                   "Click to show javascript error", "Failed to load model class")


class NotebookCheckFailed(AssertionError):
    """A notebook failed in the browser; the message lists every problem and the screenshot."""


def expects_image(source: str, tags: list[str], stored_outputs: list[dict] | None) -> bool:
    r"""Whether a cell must show an image in the browser.

    - tag ``browser-no-image``: never; tag ``browser-expect-image``: always;
    - a cell stored with an image output (``make execute``) must show one live too;
    - a cell stored without outputs that calls ``draw_graph``/``side_by_side`` in a top-level
      statement (not in a function body) must show one (the fixtures, a notebook not yet executed).

    Example:
        >>> expects_image("draw_graph(y.sum())", [], None)
        True
        >>> expects_image("def show(y):\n    return draw_graph(y)", [], None)
        False
        >>> expects_image("x = 1\nImage(side_by_side(views))", [], None)
        True
        >>> expects_image("view = draw_graph(y)", [], [{"output_type": "stream", "text": "ok"}])
        False
        >>> expects_image("plot(records)", [], [{"output_type": "display_data", "data": {"image/png": ""}}])
        True
    """
    if "browser-no-image" in tags:
        return False
    if "browser-expect-image" in tags:
        return True
    if stored_outputs:
        return any("image/png" in output.get("data", {}) for output in stored_outputs)
    return bool(GRAPH_CALL.search(source))


def stored_outputs(path: Path) -> list[list[dict] | None]:
    """Each cell's outputs as stored in the file (None for markdown), in notebook order."""
    cells = json.loads(path.read_text())["cells"]
    return [cell.get("outputs") if cell["cell_type"] == "code" else None for cell in cells]


# --- the page ---------------------------------------------------------------------------------------

JS_PANEL = "window.jupyterapp.shell.currentWidget"
JS_STATE = f"""() => {{
    const panel = {JS_PANEL};
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.widgets;
    const pending = [];
    cells.forEach((cell, i) => {{
        if (cell.model.type !== 'code') return;
        const prompt = cell.node.querySelector('.jp-InputArea-prompt');
        if (prompt && prompt.textContent.includes('*')) pending.push(i + 1);
    }});
    return {{kernel: kernel ? kernel.status : 'none', pending}};
}}"""
JS_CELLS = f"""() => {JS_PANEL}.content.widgets.map((cell, i) => {{
    const area = cell.node.querySelector('.jp-Cell-outputArea');
    const outputs = cell.model.type === 'code' ? cell.model.outputs.toJSON() : [];
    return {{
        index: i + 1,
        type: cell.model.type,
        source: cell.model.sharedModel.getSource(),
        tags: cell.model.getMetadata('tags') || [],
        count: cell.model.type === 'code' ? cell.model.executionCount : null,
        outputs: outputs.map(o => ({{
            type: o.output_type, name: o.name || '',
            text: (o.output_type === 'error' ? o.ename + ': ' + o.evalue
                   : [].concat(o.text || '').join('')).slice(0, 2000),
            mimes: Object.keys(o.data || {{}}),
        }})),
        text: area ? area.innerText : '',
        images: area ? [...area.querySelectorAll('img')].map(im => im.complete && im.naturalWidth > 0) : [],
        widgets: area ? area.querySelectorAll('.jupyter-widgets').length : 0,
        scales: area ? [...area.querySelectorAll('img')].filter(im => im.naturalWidth > 0)
                         .map(im => im.clientWidth / im.naturalWidth) : [],
        wide: area ? [...area.querySelectorAll('.jp-OutputArea-output')]
                         .some(el => el.scrollWidth > el.clientWidth + 2) : false,
    }};
}})"""
JS_SNAPSHOT = """el => el.innerText + ' | ' + [...el.querySelectorAll('img')]
    .map(im => im.src.length + ':' + im.src.slice(-80)).join(',')"""
JS_SCROLLER = f"() => {JS_PANEL}.content.node.querySelector('.jp-WindowedPanel-outer')"


def _first_line(source: str) -> str:
    line = next((line for line in source.splitlines() if line.strip() and not line.startswith("#")),
                source.strip().splitlines()[0] if source.strip() else "")
    return line if len(line) <= 70 else line[:67] + "..."


def _traceback(text: str) -> str:
    """The exception line of a traceback shown as text (its last non-empty line)."""
    lines = [line.strip() for line in text[text.index("Traceback"):].splitlines() if line.strip()]
    return lines[-1][:200] if lines else "?"


def _cell_name(cell: dict) -> str:
    """E.g. ``cell 5 (In [3]: 'panel = Panel(...')``: its place in the notebook, its prompt, its first line."""
    return f"cell {cell['index']} (In [{cell['count'] or ' '}]: {_first_line(cell['source'])!r})"


def open_notebook(page, path: Path) -> None:
    """Open the notebook (File > Open's command) and wait until its kernel is idle."""
    relative = path.relative_to(ROOT).as_posix()
    page.evaluate("async path => { await window.jupyterapp.commands.execute('docmanager:open', "
                  "{path, factory: 'Notebook'}); }", relative)
    page.wait_for_function(
        f"() => {JS_PANEL} && {JS_PANEL}.context && {JS_PANEL}.context.path === {relative!r}", timeout=60_000)
    # A kernel-choice dialog would leave the session waiting for a click: wait for either.
    page.wait_for_function(f"() => {JS_PANEL}.sessionContext.isReady || document.querySelector('.jp-Dialog')",
                           timeout=90_000)
    if page.locator(".jp-Dialog").count():
        raise NotebookCheckFailed(f"a dialog opened with the notebook: {page.locator('.jp-Dialog').inner_text()!r} "
                                  "(does its metadata name the python3 kernelspec?)")
    page.evaluate(f"""() => {{  // only the notebook on screen: no side panels, no Launcher tab
        const shell = window.jupyterapp.shell, panel = {JS_PANEL};
        shell.collapseLeft();
        shell.collapseRight();
        for (const widget of Array.from(shell.widgets('main'))) {{
            if (widget !== panel && !widget.context) widget.close();
        }}
    }}""")
    page.wait_for_function(f"() => ({JS_STATE})().kernel === 'idle'", timeout=90_000)


def close_notebook(page) -> None:
    """Close without the save dialog: the run made it dirty, and the file must stay as stored."""
    page.evaluate(f"() => {{ const panel = {JS_PANEL}; if (panel && panel.context) {{ "
                  "panel.context.model.dirty = false; panel.dispose(); } }")


def run_all(page, path: Path, timeout: float) -> list[str]:
    """Clear outputs, Run > Run All Cells, wait until no cell is pending and the kernel stays idle."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
    page.locator(".lm-Menu").get_by_role("menuitem", name="Run All Cells", exact=True).click()
    start, calm = time.monotonic(), 0
    while calm < 3:  # three quiet polls in a row: queued cells can leave the kernel idle for an instant
        time.sleep(0.5)
        state = page.evaluate(JS_STATE)
        calm = calm + 1 if state["kernel"] == "idle" and not state["pending"] else 0
        if time.monotonic() - start > timeout:
            return [f"Run All did not finish within {timeout:.0f} s: kernel {state['kernel']}, "
                    f"cells still pending: {state['pending']}"]
    return []


def wait_for_widgets(page, timeout: float) -> None:
    """Give widget views that still say "Loading widget..." a moment to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not page.locator(".jp-Notebook").get_by_text("Loading widget...").count():
            return
        time.sleep(0.5)


def check_cells(cells: list[dict], stored: list[list[dict] | None]) -> list[str]:
    problems = []
    for cell in cells:
        if cell["type"] != "code":
            continue
        name = _cell_name(cell)
        if cell["source"].strip() and cell["count"] is None:
            problems.append(f"{name} did not run (Run All stops after a cell that raises)")
        for output in cell["outputs"]:
            if output["type"] == "error":
                problems.append(f"{name} raised {output['text']}")
            elif output["name"] == "stderr" and "Traceback" in output["text"]:
                problems.append(f"{name} printed a traceback on stderr: {_traceback(output['text'])}")
        shown = cell["text"]
        for failure in RENDER_FAILURES:
            if failure in shown:
                line = next(line for line in shown.splitlines() if failure in line)
                problems.append(f"{name}: an output (widget) did not render: {line.strip()!r}")
                break
        if "Traceback (most recent call last)" in shown and not any(o["type"] == "error" for o in cell["outputs"]):
            problems.append(f"{name}: a widget shows a traceback: {_traceback(shown)}")
        if not all(cell["images"]):
            problems.append(f"{name}: {cell['images'].count(False)} image(s) did not load")
        kept = stored[cell["index"] - 1] if cell["index"] <= len(stored) else None
        if expects_image(cell["source"], cell["tags"], kept) and not any(cell["images"]):
            why = ("it is tagged browser-expect-image" if "browser-expect-image" in cell["tags"]
                   else "its stored output has one" if kept else "it calls draw_graph/side_by_side")
            problems.append(f"{name} shows no image, but {why}")
    return problems


CONTROL_KINDS = (  # what "auto" does to a control, by its ipywidgets class; the first match wins
    (".widget-slider", "step"), (".widget-dropdown", "next"), (".widget-checkbox", "toggle"),
    (".widget-toggle-buttons", "next"), (".widget-radio", "next"),
)


def _find_control(page, root, check: PanelCheck):
    if check.control is not None:
        # a checkbox shows its description in .widget-label-basic (its .widget-label stays empty)
        label = page.locator(".widget-label, .widget-label-basic",
                             has_text=re.compile(rf"^\s*{re.escape(check.control)}\s*$"))
        control = root.locator(".widget-inline-hbox", has=label).first
        if not control.count():
            raise NotebookCheckFailed(f"the panel has no control labelled {check.control!r}")
        return control
    controls = root.locator(", ".join(selector for selector, _ in CONTROL_KINDS))
    if not controls.count():
        raise NotebookCheckFailed("the panel has no slider, dropdown, checkbox or toggle buttons; "
                                  "name a control and an action in PANELS")
    return controls.first


def layout_notes(cells: list[dict]) -> list[str]:
    """What to look at in the screenshot: not failures, since a wider window can fix them."""
    notes = []
    for cell in cells:
        if cell["wide"]:
            notes.append(f"{_cell_name(cell)}: an output is wider than the notebook and scrolls sideways")
        shrunk = [scale for scale in cell["scales"] if scale < 0.6]
        if shrunk:
            notes.append(f"{_cell_name(cell)}: an image is shown at {min(shrunk):.0%} of its size "
                         "(JupyterLab fits images to the width; text in it may be hard to read)")
    return notes


def _change_control(page, root, check: PanelCheck) -> str:
    """Change one control of the panel under ``root`` as a person would; returns what was done."""
    control = _find_control(page, root, check)
    kind, _, value = check.action.partition(":")
    if kind == "auto":
        classes = f" {control.get_attribute('class')} "
        kind = next((k for selector, k in CONTROL_KINDS if f" {selector[1:]} " in classes), "")
        if not kind:
            raise NotebookCheckFailed(f"no automatic change for a control of class {classes.strip()!r}; "
                                      "give an action in PANELS")
    if kind == "step":
        handle = control.locator(".noUi-handle").first
        before, high = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
        handle.focus()
        handle.press("ArrowLeft" if before == high else "ArrowRight")
        page.wait_for_function("([h, v]) => h.getAttribute('aria-valuenow') !== v",
                               arg=[handle.element_handle(), before], timeout=5_000)
        readout = control.locator(".widget-readout").first
        now = readout.inner_text() if readout.count() else handle.get_attribute("aria-valuenow")
        return f"slider moved one step to {now}"
    if kind == "next":
        select = control.locator("select").first
        if select.count():
            options = select.locator("option").all_inner_texts()
            current = select.evaluate("el => el.selectedIndex")
            if len(options) < 2:
                raise NotebookCheckFailed("the dropdown has a single option")
            choice = options[(current + 1) % len(options)]
            select.select_option(label=choice)
            return f"dropdown set to {choice!r}"
        choices = control.locator("button:not(.mod-active), input[type=radio]:not(:checked)")
        if not choices.count():
            raise NotebookCheckFailed("the control offers no other choice")
        choice = choices.first
        label = choice.inner_text() or choice.evaluate("el => el.parentElement.innerText")
        choice.click()
        return f"chose {label.strip()!r}"
    if kind == "set":
        if control.locator("select").count():
            control.locator("select").first.select_option(label=value)
        elif control.locator(".widget-readout").count():
            readout = control.locator(".widget-readout").first
            readout.click()
            readout.press("ControlOrMeta+a")
            readout.type(value)
            readout.press("Enter")
        else:
            box = control.locator("input, textarea").first
            box.fill(value)
            box.press("Enter")
        return f"set to {value!r}"
    if kind == "toggle":
        control.locator("input[type=checkbox], button").first.click()
        return "toggled"
    if kind == "choose":
        control.locator("button, label", has_text=re.compile(rf"^\s*{re.escape(value)}\s*$")).first.click()
        return f"chose {value!r}"
    raise NotebookCheckFailed(f"unknown action {check.action!r} in PANELS")


def drive_panel(page, check: PanelCheck) -> list[str]:
    """Change a control of one panel, click Run, and check that the panel's output changed."""
    notebook = page.locator(".jp-Notebook")
    # Not get_by_role: the button's icon glyph is part of its accessible name.
    run_button = page.locator("button.widget-button", has_text=re.compile(r"^\s*Run\s*$"))
    if check.cell is None:
        cell = notebook.locator(".jp-Cell").filter(has=run_button).first
    else:  # by the model's source: the editor shows only the lines in view
        index = page.evaluate(f"text => {JS_PANEL}.content.widgets.findIndex("
                              "cell => cell.model.sharedModel.getSource().includes(text))", check.cell)
        cell = notebook.locator(".jp-Cell").nth(index) if index >= 0 else notebook.locator(".jp-Cell-none")
    where = f"panel in the cell containing {check.cell!r}" if check.cell else "first panel"
    if not cell.count():
        return [f"{where}: no such cell" if check.cell else "no panel (a cell with a Run button) found"]
    button = cell.locator(run_button).first
    if not button.count():
        return [f"{where}: the cell shows no Run button (did the panel render?)"]
    root = button.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' widget-vbox ')][1]")
    output = root.locator(".widget-output").first
    status = button.locator("xpath=..")
    button.scroll_into_view_if_needed()
    before = output.evaluate(JS_SNAPSHOT)
    try:
        did = _change_control(page, root, check)
    except NotebookCheckFailed as error:
        return [f"{where}: {error}"]
    except Exception as error:  # a Playwright timeout: the control did not react
        return [f"{where}: could not change {check.control or 'the first control'}: {type(error).__name__}: "
                f"{str(error).splitlines()[0]}"]
    button.click()
    deadline = time.monotonic() + check.timeout
    while True:
        time.sleep(0.3)
        after, text = output.evaluate(JS_SNAPSHOT), status.inner_text()
        finished = button.is_enabled() and "running" not in text
        if finished and (after != before or "⚠" in text):
            break
        if time.monotonic() > deadline:
            return [f"{where}: after {did} and Run, the output did not change within {check.timeout:.0f} s "
                    f"(status {text.strip()!r})"]
    problems = []
    if "⚠" in text:
        problems.append(f"{where}: after {did}, Run was refused: {text.strip()!r}")
    if "Traceback" in after:
        problems.append(f"{where}: after {did}, Run shows a traceback: {_traceback(after.rsplit(' | ', 1)[0])}")
    if check.expect and check.expect not in after:
        problems.append(f"{where}: after {did}, the output lacks {check.expect!r}: {after[:300]!r}")
    return problems


def screenshot(page, name: str) -> list[Path]:
    """The whole notebook, not just the window: grow the viewport to the notebook's height."""
    size = page.viewport_size
    scroller = page.evaluate_handle(JS_SCROLLER)
    full, visible = scroller.evaluate("el => [el.scrollHeight, el.clientHeight]")
    height = min(size["height"] + full - visible + 20, SCREENSHOT_MAX_HEIGHT)
    page.set_viewport_size({"width": size["width"], "height": height})
    time.sleep(0.5)  # let the layout settle
    paths = []
    full, visible = scroller.evaluate("el => [el.scrollHeight, el.clientHeight]")
    parts = max(1, -(-full // max(visible, 1)))
    for part in range(parts):
        scroller.evaluate("(el, top) => { el.scrollTop = top; }", part * visible)
        time.sleep(0.2)
        path = ARTIFACTS / (f"{name}.png" if parts == 1 else f"{name}.part{part + 1}.png")
        page.screenshot(path=str(path))
        paths.append(path)
    page.set_viewport_size(size)
    return paths


def check_notebook(lab, path: Path, panels: list[PanelCheck] | None = None) -> None:
    """Open, run and check one notebook; raises NotebookCheckFailed listing every problem."""
    panels = PANELS.get(path.name, [PanelCheck()]) if panels is None else panels
    console = []

    def on_console(message) -> None:
        console.append(f"{message.type}: {message.text}")

    def on_error(error) -> None:
        console.append(f"pageerror: {error}")

    page = lab.page()
    page.on("console", on_console)
    page.on("pageerror", on_error)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for old in ARTIFACTS.glob(f"{path.stem}.*png"):
        old.unlink()
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = time.monotonic() - started - sum(phases.values())

    problems: list[str] = []
    notes: list[str] = []
    try:
        open_notebook(page, path)
        phase("open")
        unfinished = run_all(page, path, RUN_ALL_TIMEOUT.get(path.name, DEFAULT_RUN_ALL_TIMEOUT))
        phase("run all")
        problems += unfinished
        wait_for_widgets(page, WIDGET_SETTLE_TIMEOUT)
        cells = page.evaluate(JS_CELLS)
        problems += check_cells(cells, stored_outputs(path))
        notes = layout_notes(cells)
        phase("check")
        if not unfinished:  # a busy kernel would not answer the panels
            for check in panels:
                problems += drive_panel(page, check)
        phase("panels")
    except NotebookCheckFailed as error:
        problems.append(str(error))
    except Exception as error:  # Playwright timeouts and the like: still screenshot and report
        problems.append(f"the page did not behave: {type(error).__name__}: {error}")
    finally:
        shots = []
        try:
            shots = screenshot(page, path.stem)
        except Exception as error:
            problems.append(f"could not take a screenshot: {error}")
        (ARTIFACTS / f"{path.stem}.console.log").write_text("\n".join(console) + "\n")
        phase("screenshot")
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_error)
        if problems:  # whatever went wrong must not spill into the next notebook
            lab.discard()
        else:
            close_notebook(page)
        lab.server.shutdown_kernels()
    if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        problems.append(f"{path.name} was modified on disk during the test (autosave must stay off)")
    split = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
    print(f"{path.name}: checked in {time.monotonic() - started:.0f} s ({split}); "
          f"screenshot {', '.join(map(str, shots))}")
    for note in notes:
        print(f"  look at: {note}")
    if problems:
        where = ", ".join(str(shot.relative_to(ROOT)) for shot in shots) or "(none)"
        errors = [line.splitlines()[0][:200] for line in console if line.startswith(("error:", "pageerror:"))]
        raise NotebookCheckFailed(
            f"{path.name} failed in JupyterLab ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems)
            + f"\nscreenshot: {where}\nbrowser console ({len(errors)} error(s), first ones below): "
            + f"{(ARTIFACTS / (path.stem + '.console.log')).relative_to(ROOT)}"
            + "".join(f"\n    {line}" for line in errors[:5]))


# --- the tests --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip(
    reason="no notebooks/[0-9]*.ipynb yet"))], ids=lambda path: path.name if path else "none")
@pytest.mark.browser
def test_notebook_runs_live(lab, path):
    try:
        check_notebook(lab, path)
    except NotebookCheckFailed as failure:
        pytest.fail(str(failure), pytrace=False)  # the message says it all; the harness's stack would not


@pytest.mark.browser
def test_healthy_fixture_passes(lab):
    try:
        check_notebook(lab, FIXTURES / "good_panel.ipynb")
    except NotebookCheckFailed as failure:
        pytest.fail(str(failure), pytrace=False)


@pytest.mark.browser
def test_missing_widget_model_fails_with_message_and_screenshot(lab):
    path = FIXTURES / "broken_widget.ipynb"
    with pytest.raises(NotebookCheckFailed) as failure:
        check_notebook(lab, path)
    message = str(failure.value)
    print(message)
    assert re.search(r"cell 3 \(In \[2\]: .display\(\{.*did not render: 'Error displaying widget: model not found'",
                     message), message
    assert re.search(r"cell 4 \(In \[3\]: 'class Ghost\(W.DOMWidget\):'\): an output \(widget\) did not render: "
                     r".*javascript error", message), message
    assert re.search(r"panel in the cell containing 'Panel\(inverse': after slider moved one step to 4, "
                     r"Run was refused: .*stopped by an error, ZeroDivisionError", message), message  # Panel's status line
    assert re.search(r"cell 6 \(In \[5\]: 'import torch'\) shows no image, but it calls draw_graph", message), message
    assert "did not run" not in message and " raised " not in message, message  # the cells themselves ran
    assert "No version of module no-such-widget-module is registered" in message, message  # the console's reason
    shot = ARTIFACTS / "broken_widget.png"
    assert shot.is_file() and shot.read_bytes()[:4] == b"\x89PNG" and f"screenshot: {shot.relative_to(ROOT)}" in message


# Without a browser (they run in make test): the harness's own logic.

def test_traceback_line_is_the_exception():
    shown = ("-----\nZeroDivisionError   Traceback (most recent call last)\nCell In[4]\n\n"
             "ZeroDivisionError: division by zero\n")
    assert _traceback(shown) == "ZeroDivisionError: division by zero"


def test_cell_name_shows_place_prompt_and_first_code_line():
    cell = {"index": 5, "count": 3, "source": "# NBVAL_IGNORE_OUTPUT\npanel = Panel(fn, controls)\npanel"}
    assert _cell_name(cell) == "cell 5 (In [3]: 'panel = Panel(fn, controls)')"


def test_fixture_notebooks_are_wired_up():
    good, broken = (json.loads((FIXTURES / name).read_text()) for name in ("good_panel.ipynb", "broken_widget.ipynb"))
    assert any("Panel(square" in "".join(cell["source"]) for cell in good["cells"])
    assert any("draw_graph(" in "".join(cell["source"]) for cell in good["cells"])
    assert any("0123456789abcdef" in "".join(cell["source"]) for cell in broken["cells"])


def test_panel_table_names_real_notebooks():
    known = {path.name for path in NOTEBOOKS} | {path.name for path in FIXTURES.glob("*.ipynb")}
    expected = {f"0{i}_{name}.ipynb" for i, name in enumerate(
        ["time_distributed", "lstm_without_loop", "autograd_in_loops", "iterating_rnn_cells", "rnn_lstm_gru"], 1)}
    unknown = set(PANELS) - known - expected
    assert not unknown, f"PANELS names notebooks that do not exist: {sorted(unknown)}"
