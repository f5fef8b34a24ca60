"""helpers.pins: versions that differ from constraints.txt, and what make check-env says about them."""
import pytest

from helpers import device as dev
from helpers import pins


def test_read_pins_takes_exact_pins_and_normalises_names(tmp_path):
    path = tmp_path / "constraints.txt"
    path.write_text("# comment\nJupyterLab==4.6.6  # the lab\ntyping_extensions==4.16.0\nnot-a-pin>=1\n\n")
    assert pins.read_pins(path) == {"jupyterlab": "4.6.6", "typing-extensions": "4.16.0"}


def test_read_pins_without_the_file_is_empty(tmp_path):
    assert pins.read_pins(tmp_path / "missing.txt") == {}


def test_the_course_pins_name_every_tracked_package():
    assert set(pins.TRACKED) <= set(pins.read_pins())


@pytest.mark.parametrize("installed, expected", [
    ({"torch": "2.13.0+cpu", "ipywidgets": "8.1.9", "jupyterlab": "4.6.6"}, []),
    ({"torch": "2.14.1", "ipywidgets": "8.1.9", "jupyterlab": "4.6.6"}, [("torch", "2.14.1")]),
    ({"torch": "2.13.0", "ipywidgets": "7.7.1", "jupyterlab": None}, [("ipywidgets", "7.7.1"), ("jupyterlab", None)]),
])
def test_version_drift_compares_releases(installed, expected):
    course = {"torch": "2.13.0", "ipywidgets": "8.1.9", "jupyterlab": "4.6.6"}
    drifts = pins.version_drift(installed, course)
    assert [(d.package, d.installed) for d in drifts] == expected
    assert all(d.pinned == course[d.package] for d in drifts)


def test_packages_without_a_pin_are_not_compared():
    assert pins.version_drift({"torch": "9.9"}, {}) == []


def test_notes_say_what_the_difference_means_and_how_to_get_the_pin():
    notes = pins.drift_notes([pins.Drift("torch", "2.13.0", "2.14.1"), pins.Drift("ipywidgets", "8.1.9", "7.7.1"),
                              pins.Drift("jupyterlab", "4.6.6", None)])
    (torch_problem, torch_fix), (widgets_problem, _), (lab_problem, lab_fix) = notes
    assert "torch 2.14.1 differs from the tested pin 2.13.0" in torch_problem
    assert "stored outputs" in torch_problem and "strict nbval" in torch_problem
    assert "pip install -c constraints.txt torch==2.13.0" in torch_fix and "make lab" in torch_fix
    assert "JupyterLab 4 renders widgets only with ipywidgets 8" in widgets_problem
    assert lab_problem.startswith("jupyterlab is not installed (tested with 4.6.6)")
    assert "jupyterlab==4.6.6" in lab_fix


def test_check_env_reports_a_version_that_differs_from_its_pin(monkeypatch):
    monkeypatch.setattr(dev, "installed_versions",
                        lambda: {"torch": "2.14.1", "ipywidgets": "8.1.9", "jupyterlab": "4.6.6"})
    monkeypatch.setattr(dev, "read_pins", lambda: {"torch": "2.13.0", "ipywidgets": "8.1.9", "jupyterlab": "4.6.6"})
    text = dev.format_report(dev.environment_report())
    assert "torch 2.14.1 differs from the tested pin 2.13.0" in text
    assert "ipywidgets" not in text.split("Notes:")[1] or "ipywidgets 8.1.9 differs" not in text


def test_check_env_is_quiet_about_versions_that_match(monkeypatch):
    monkeypatch.setattr(dev, "installed_versions",
                        lambda: {"torch": "2.13.0+cpu", "ipywidgets": "8.1.9", "jupyterlab": "4.6.6"})
    monkeypatch.setattr(dev, "read_pins", lambda: {"torch": "2.13.0", "ipywidgets": "8.1.9", "jupyterlab": "4.6.6"})
    assert not any("tested pin" in problem for problem, _ in dev.environment_report()["problems"])
