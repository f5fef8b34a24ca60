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


def test_range_sliders_refuse_out_of_range_instead_of_clamping():
    panel = Panel(lambda distance: distance, {"distance": W.IntRangeSlider(value=(2, 50), min=0, max=150)})
    with pytest.raises(LabInputError, match=r"distance=\(0, 1000000\) is outside the allowed range \[0, 150\]"):
        panel.set(distance=(0, 10**6))
    assert panel.values()["distance"] == (2, 50)  # a refused value leaves the control as it was
    assert panel.set(distance=[10, 150]).run() == (10, 150)
    floats = Panel(lambda r: r, {"r": W.FloatRangeSlider(value=(0.1, 0.5), min=0.0, max=1.0)})
    with pytest.raises(LabInputError, match="outside the allowed range"):
        floats.set(r=(-0.5, 0.5))
    with pytest.raises(LabInputError, match="finite"):
        floats.set(r=(0.1, float("nan")))


def test_values_a_control_would_change_are_refused_and_undone():
    panel = _panel()
    with pytest.raises(LabInputError, match="would become 2"):
        panel.set(n=2.5)  # an IntSlider would silently truncate it
    assert panel.values()["n"] == 3
    with pytest.raises(LabInputError, match="finite"):
        Panel(lambda x: x, {"x": W.FloatSlider(value=1.0, min=0.0, max=2.0)}).set(x=float("nan"))
    with pytest.raises(LabInputError, match="refused by its Dropdown"):
        Panel(lambda m: m, {"m": W.Dropdown(options=["a", "b"], value="a")}).set(m="c")


def test_unexpected_errors_become_one_status_line_and_none():
    def parse(text):
        return int(text)

    panel = Panel(parse, {"text": W.Text(value="5")})
    assert panel.run() == 5
    assert panel.set(text="3²").run() is None
    status = panel.status.value
    assert status.startswith("⚠ stopped by an error, ValueError") and "in parse" in status and "\n" not in status
    assert isinstance(panel.error, ValueError) and panel.result is None and not panel.button.disabled
    assert panel.set(text="7").run() == 7 and panel.status.value == "done" and panel.error is None


def test_long_messages_are_cut_to_one_line():
    def fn(n):
        raise LabInputError("first line\nsecond line " + "x" * 1000)

    panel = Panel(fn, {"n": W.IntSlider(value=1, min=1, max=3)})
    assert panel.run() is None
    assert "\n" not in panel.status.value and len(panel.status.value) < 400 and "first line second line" in panel.status.value


def test_memory_estimate_errors_are_shown_not_raised():
    def estimate(n):
        raise LabInputError("n too odd to estimate")

    panel = Panel(lambda n: n, {"n": W.IntSlider(value=1, min=1, max=3)}, memory_estimate=estimate)
    assert panel.run() is None and "n too odd to estimate" in panel.status.value
    nan = Panel(lambda n: n, {"n": W.IntSlider(value=1, min=1, max=3)}, memory_estimate=lambda n: float("nan"))
    assert nan.run() is None and "finite number of bytes" in nan.status.value


def test_keyboard_interrupt_still_interrupts_but_never_leaves_running():
    def fn(n):
        raise KeyboardInterrupt

    panel = Panel(fn, {"n": W.IntSlider(value=1, min=1, max=3)})
    with pytest.raises(KeyboardInterrupt):
        panel.run()
    assert panel.status.value.startswith("⚠ interrupted") and not panel.button.disabled


def test_constructor_refuses_controls_fn_cannot_take():
    with pytest.raises(LabInputError, match="keyword arguments"):
        Panel(lambda n: n, {"m": W.IntSlider()})
    with pytest.raises(LabInputError, match="dict"):
        Panel(lambda n: n, [W.IntSlider()])
    with pytest.raises(LabInputError, match="memory_budget"):
        Panel(lambda n: n, {"n": W.IntSlider()}, memory_budget=0)
