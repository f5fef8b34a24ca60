"""Notebook 05's instruments: smoothing, the two figures and the two panels over functions the notebook defines."""
import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from helpers import rnn_compare as rc
from helpers.validation import LabInputError


def test_smooth_is_a_trailing_mean_with_a_short_start():
    values = [float(v) for v in range(10)]
    smoothed = rc.smooth(values, 3)
    assert smoothed[:2] == [0.0, 0.5] and smoothed[5] == pytest.approx((3 + 4 + 5) / 3)
    assert rc.smooth(values, 1) == values
    with pytest.raises(LabInputError, match="window"):
        rc.smooth(values, 0)


def test_plot_gradient_flow_draws_each_curve_from_min_distance():
    ratios = torch.tensor([1.0, 0.1, 0.01, 0.0])      # an underflowed zero must not break the log scale
    ax = rc.plot_gradient_flow({"a": ratios, "b": [1.0, 0.5, 0.25, 0.125]}, min_distance=1)
    assert ax.get_yscale() == "log" and "distance" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    xs, ys = ax.get_lines()[1].get_data()
    assert list(xs) == [1, 2, 3] and list(ys) == [0.5, 0.25, 0.125]


@pytest.mark.parametrize("bad, match", [({}, "is empty"), ([1.0], "must be a dict"), ({"a": torch.ones(2, 2)}, "1-D"),
                                        ({"a": []}, "empty"), ({"a": ["x"]}, "numbers")])
def test_plots_reject_what_is_not_curves(bad, match):
    with pytest.raises(LabInputError, match=match):
        rc.plot_gradient_flow(bad)
    with pytest.raises(LabInputError, match=match):
        rc.plot_losses(bad)


def test_plot_losses_smooths_and_draws_reference_lines():
    ax = rc.plot_losses({"GRU": [4.0, 2.0, 0.0 + 1.0]}, window=2, lines={"trivial": 1 / 6, "learned": 1 / 60})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["GRU", "trivial", "learned"]
    assert list(ax.get_lines()[0].get_ydata()) == [4.0, 3.0, 1.5]
    assert ax.get_lines()[1].get_ydata()[0] == pytest.approx(1 / 6)


def _measure_calls():
    calls = []

    def measure(layer_type, hidden_size, steps, control):
        calls.append((layer_type, hidden_size, steps, control))
        return torch.full((steps,), 0.5 if control else 0.1)

    return measure, calls


def test_gradient_flow_panel_runs_the_given_function_plain_and_controlled():
    measure, calls = _measure_calls()
    panel = rc.make_gradient_flow_panel(measure, {"LSTM": "forget bias 3"})
    curves, low = panel.set(layer_type="LSTM", hidden_size=16, distance=(10, 40)).run()
    assert calls == [("LSTM", 16, 41, False), ("LSTM", 16, 41, True)] and low == 10
    assert list(curves) == ["LSTM, default init", "LSTM, forget bias 3"]
    assert curves["LSTM, forget bias 3"][0] == 0.5
    panel.set(layer_type="RNN").run()
    assert calls[-1][0] == "RNN"                                  # the panel reacts to its controls


def test_gradient_flow_panel_is_bounded_and_reports_bad_results():
    measure, _ = _measure_calls()
    panel = rc.make_gradient_flow_panel(measure)
    assert max(panel.controls["hidden_size"].options) <= 64 and panel.controls["distance"].max <= 150
    with pytest.raises(LabInputError, match="outside the allowed range|refused"):
        panel.set(hidden_size=4096)
    broken = rc.make_gradient_flow_panel(lambda layer_type, hidden_size, steps, control: torch.ones(2, 2))
    assert broken.run() is None and "1-D" in broken.status.value      # shown in the panel, not raised
    with pytest.raises(LabInputError, match="function defined in the notebook"):
        rc.make_gradient_flow_panel("flow")


def test_training_panel_runs_the_given_loop_and_is_bounded():
    seen = []

    def train(layer_type, seq_len, steps, progress):
        seen.append((layer_type, seq_len, steps, progress))
        return [1.0 / (k + 1) for k in range(steps)]

    panel = rc.make_training_panel(train, lines={"trivial": 1 / 6})
    assert panel.controls["seq_len"].max <= 40 and panel.controls["steps"].max <= 400
    kind, seq_len, losses = panel.set(layer_type="LSTM", seq_len=15, steps=50).run()
    assert (kind, seq_len, len(losses)) == ("LSTM", 15, 50) and seen[-1][:3] == ("LSTM", 15, 50)
    assert seen[-1][3] is None                                    # no progress bar outside a kernel
    with pytest.raises(LabInputError, match="outside the allowed range"):
        panel.set(steps=10_000)
    with pytest.raises(LabInputError, match="function defined in the notebook"):
        rc.make_training_panel(None)
