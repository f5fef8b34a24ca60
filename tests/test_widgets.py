import ipywidgets as W
import pytest

from helpers.validation import LabInputError
from helpers.widgets import Panel, largest_within_budget


def _panel(**kwargs):
    return Panel(lambda n, square: n * n if square else n,
                 {"n": W.IntSlider(value=3, min=1, max=10), "square": W.Checkbox(value=True)}, **kwargs)


def test_set_and_run_from_python_changes_the_result():
    panel = _panel()
    first = panel.run()
    second = panel.set(n=5).run()
    assert (first, second) == (9, 25) and panel.result == 25
    assert panel.set(square=False).run() == 5


def test_button_click_runs_the_same_path():
    panel = _panel()
    panel.set(n=4)
    panel.button.click()
    assert panel.result == 16 and panel.status.value == "done"


def test_out_of_range_and_unknown_controls_are_refused():
    panel = _panel()
    with pytest.raises(LabInputError, match=r"outside the allowed range \[1, 10\]"):
        panel.set(n=50)
    with pytest.raises(LabInputError, match="no control named 'm'"):
        panel.set(m=1)


def test_memory_budget_refuses_big_runs_without_raising():
    panel = _panel(memory_estimate=lambda n, square: n * 2**20, memory_budget=4 * 2**20)
    assert panel.set(n=4).run() == 16
    assert panel.set(n=5).run() is None and "budget" in panel.status.value


def test_bad_input_inside_fn_shows_in_status():
    def fn(n):
        raise LabInputError("n must be even")

    panel = Panel(fn, {"n": W.IntSlider(value=1, min=1, max=3)})
    assert panel.run() is None and "n must be even" in panel.status.value
    assert not panel.button.disabled


def test_controls_get_descriptions_and_layout():
    panel = _panel(title="Demo")
    assert panel.controls["n"].description == "n"
    assert isinstance(panel.widget, W.VBox) and "Demo" in panel.widget.children[0].value


def test_constructor_checks():
    with pytest.raises(LabInputError):
        Panel(3, {})
    with pytest.raises(LabInputError, match="ipywidgets"):
        Panel(lambda: 1, {"n": 3})


def test_largest_within_budget_is_the_exact_bound():
    assert largest_within_budget(lambda n: n * n, upper=1000, budget_bytes=100) == 10
    assert largest_within_budget(lambda n: n, upper=7, budget_bytes=100) == 7
    with pytest.raises(LabInputError):
        largest_within_budget(lambda n: 10**9, upper=5, budget_bytes=100)
