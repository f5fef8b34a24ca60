"""The Panel's error path inside a real IPython kernel (helpers.execute, over nbclient), where ipywidgets' Output
area swallows exceptions: refusals and unexpected errors must become one status line, never a traceback or a
stale result."""
import json
from pathlib import Path

import nbformat
import pytest

from helpers.execute import execute_notebook

ROOT = Path(__file__).resolve().parents[1]

SETUP = '''
import ipywidgets as W
from IPython.display import display
from helpers.validation import LabInputError
from helpers.widgets import Panel

def windows(window, length):
    if window > length:
        raise LabInputError(f"window={window} must be at most length={length}; lower the window.")
    return window * 10

panel = Panel(windows, {"window": W.IntSlider(value=4, min=1, max=64), "length": W.IntSlider(value=8, min=1, max=64)})
display(panel)
first = panel.run()
assert (first, panel.status.value) == (40, "done"), (first, panel.status.value)
'''

REFUSAL = '''
refused = panel.set(window=40, length=8).run()
assert refused is None, f"a refused run returned {refused!r} (the previous result?)"
assert panel.result is None and isinstance(panel.error, LabInputError)
assert panel.status.value == "⚠ window=40 must be at most length=8; lower the window.", panel.status.value
assert not panel.button.disabled

stale = Panel(windows, {"window": W.IntSlider(value=4, min=1, max=64), "length": W.IntSlider(value=8, min=1, max=64)})
display(stale)
assert stale.run() == 40 and stale.set(window=9).run() is None
print("refused panel output:", stale.output.model_id)
'''

UNEXPECTED = '''
def parse_lengths(text):
    return [int(part) for part in text.split(",")]   # int() refuses "3²", which str.isdigit() accepts

lengths = Panel(parse_lengths, {"text": W.Text(value="5, 3")})
display(lengths)
assert lengths.run() == [5, 3]
failed = lengths.set(text="5, 3²").run()
status = lengths.status.value
assert failed is None and isinstance(lengths.error, ValueError), (failed, lengths.error)
assert status.startswith("⚠") and "ValueError" in status and "3²" in status, status
assert "parse_lengths" in status and "cell line 2" in status, status
assert "running" not in status and "\\n" not in status and "Traceback" not in status, status
'''

BUTTON_AND_RECOVERY = '''
panel.set(window=2, length=8).button.click()
assert (panel.result, panel.status.value) == (20, "done"), (panel.result, panel.status.value)

def bad_render(result):
    raise KeyError("no such column")

drawn = Panel(lambda n: n, {"n": W.IntSlider(value=1, min=1, max=3)}, render=bad_render)
display(drawn)
assert drawn.run() is None and "KeyError" in drawn.status.value and "bad_render" in drawn.status.value

budget = Panel(lambda n: n, {"n": W.IntSlider(value=3, min=1, max=9)}, memory_estimate=lambda n: n * 2**20,
               memory_budget=2**21)
assert budget.run() is None and budget.status.value.startswith("⚠ not run: needs about 3 MiB")
nan_estimate = Panel(lambda n: n, {"n": W.IntSlider(value=3, min=1, max=9)}, memory_estimate=lambda n: float("nan"))
assert nan_estimate.run() is None and "memory_estimate returned nan" in nan_estimate.status.value
print("kernel checks passed")
'''


def _error_outputs(nb) -> list:
    """Error outputs of cells and of Output widgets (nbclient stores what widgets captured in their state)."""
    found = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model in state.values():
        for output in model.get("state", {}).get("outputs", []) or []:
            if output.get("output_type") == "error" or "Traceback" in json.dumps(output):
                found.append(output)
    return found


@pytest.mark.timeout(180)
def test_panel_errors_inside_a_real_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source.strip()) for source in (SETUP, REFUSAL, UNEXPECTED,
                                                                           BUTTON_AND_RECOVERY)]
    execute_notebook(nb, cell_timeout=120, cwd=ROOT)  # a failing assert raises LabInputError naming the cell
    assert "kernel checks passed" in "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert _error_outputs(nb) == []
    # a refused run clears the panel's output: the result of the run before it does not stay on show
    refused = "".join(o.get("text", "") for o in nb.cells[1].outputs).split("refused panel output:")[1].strip()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert state[refused]["state"]["outputs"] == []
