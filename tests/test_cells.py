"""Tests for helpers.cells: the step-through and timing panels run the functions they are given."""
import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from helpers.cells import (
    LONGEST_CHOICES,
    StepTrace,
    make_step_panel,
    make_timing_panel,
    plot_loop_vs_fused,
    plot_step_trace,
    step_through,
    sweep_lengths,
    timing_memory_estimate,
)
from helpers.timing import time_implementations
from helpers.validation import LabInputError


def cell_loop(cell, x, state=None):
    """A loop like the notebook's (the panels take it as an argument)."""
    outputs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        outputs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outputs, dim=1), state


def builders_for(kind, hidden_size, batch, input_size):
    module = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[kind](input_size, hidden_size, batch_first=True)
    return {"fused": lambda length, device: (lambda: module(torch.randn(batch, length, input_size))),
            "doubled": lambda length, device: (lambda: module(torch.randn(batch, 2 * length, input_size)))}


# --- step-through panel ------------------------------------------------------------------------------

def test_step_through_keeps_the_loops_first_states():
    cell = torch.nn.GRUCell(1, 6)
    seq = torch.randn(10, 1)
    full, _ = cell_loop(cell, seq[None])
    trace = step_through(cell_loop, cell, seq, 4)
    assert trace.hidden.shape == (4, 6) and torch.allclose(trace.hidden, full[0, :4])
    assert step_through(cell_loop, cell, seq, 0).hidden.shape == (0, 6)
    lstm_trace = step_through(cell_loop, torch.nn.LSTMCell(1, 3), seq, 2)
    assert lstm_trace.hidden.shape == (2, 3)


def test_step_through_runs_an_edited_loop():
    # The panel must show what the notebook's loop computes, so a changed loop changes the trace.
    def doubled(cell, x):
        out, state = cell_loop(cell, x)
        return 2 * out, state

    cell, seq = torch.nn.RNNCell(1, 4), torch.randn(6, 1)
    assert torch.allclose(step_through(doubled, cell, seq, 3).hidden, 2 * step_through(cell_loop, cell, seq, 3).hidden)


def test_step_through_refuses_bad_input():
    cell, seq = torch.nn.RNNCell(1, 4), torch.randn(10, 1)
    with pytest.raises(LabInputError, match="step must be an int in 0..10"):
        step_through(cell_loop, cell, seq, 11)
    with pytest.raises(LabInputError, match=r"\(time, features\)"):
        step_through(cell_loop, cell, torch.randn(10), 2)
    with pytest.raises(LabInputError, match="run_loop must be the notebook's loop"):
        step_through("cell_loop", cell, seq, 2)
    with pytest.raises(LabInputError, match="hidden_size"):
        step_through(cell_loop, torch.nn.Linear(1, 4), seq, 2)
    with pytest.raises(LabInputError, match=r"outputs of shape \(1, 2, 4\)"):
        step_through(lambda cell, x: (torch.zeros(3), None), cell, seq, 2)
    with pytest.raises(LabInputError, match="the cell loop failed.*ZeroDivisionError"):
        step_through(lambda cell, x: 1 / 0, cell, seq, 2)


def test_step_panel_runs_changes_and_wraps():
    panel = make_step_panel(cell_loop, torch.nn.RNNCell(1, 4), torch.randn(5, 1), step=2)
    first = panel.run()
    second = panel.set(step=4).run()
    assert isinstance(first, StepTrace) and (first.step, second.step) == (2, 4)
    assert not torch.equal(first.hidden[-1], second.hidden[-1])
    assert panel.next_step().step == 5 and panel.next_step().step == 0
    with pytest.raises(LabInputError, match="outside the allowed range"):
        panel.set(step=6)


def test_plot_step_trace_has_labelled_axes():
    fig = plot_step_trace(step_through(cell_loop, torch.nn.RNNCell(1, 4), torch.randn(8, 1), 3))
    ax_in, ax_h = fig.axes[:2]
    assert ax_in.get_ylabel() and ax_h.get_xlabel() and ax_h.get_ylabel() == "hidden unit"
    assert "3 of 8" in ax_in.get_title()
    matplotlib.pyplot.close(fig)


# --- timing panel --------------------------------------------------------------------------------------

def test_sweep_lengths_always_ends_at_the_chosen_length():
    for longest in LONGEST_CHOICES:
        lengths = sweep_lengths(longest)
        assert lengths[-1] == longest and list(lengths) == sorted(set(lengths)) and len(lengths) >= 2
    assert sweep_lengths(256) == (16, 64, 256) and sweep_lengths(512) == (32, 128, 512)
    # every choice times a different set of lengths: no setting of the slider is inert
    assert len({sweep_lengths(n) for n in LONGEST_CHOICES}) == len(LONGEST_CHOICES)
    with pytest.raises(LabInputError, match="longest"):
        sweep_lengths(0)


def test_memory_estimate_grows_with_length_and_gates():
    small, large = timing_memory_estimate("RNN", 100, 8), timing_memory_estimate("RNN", 200, 8)
    assert large == 2 * small and timing_memory_estimate("LSTM", 100, 8) > small
    with pytest.raises(LabInputError, match="kind"):
        timing_memory_estimate("TRANSFORMER", 100, 8)


def test_timing_panel_times_the_chosen_longest_length():
    panel = make_timing_panel(builders_for, "fused", batch=2, input_size=3, longest=32, min_run_time=0.005)
    first = panel.set(hidden_size=8, kind="RNN").run()
    assert sorted({r.size for r in first}) == [8, 32]
    second = panel.set(longest=64, kind="GRU", mode="forward+backward").run()
    assert sorted({r.size for r in second}) == [4, 16, 64] and {r.mode for r in second} == {"forward+backward"}
    assert {r.implementation for r in second} == {"fused", "doubled"} and {r.threads for r in first} == {1}
    with pytest.raises(LabInputError, match="longest=100 was refused"):
        panel.set(longest=100)


def test_timing_panel_refuses_bad_builders():
    with pytest.raises(LabInputError, match="builders_for must be the notebook's function"):
        make_timing_panel(None, "fused")
    with pytest.raises(LabInputError, match="longest must be one of"):
        make_timing_panel(builders_for, "fused", longest=100)
    panel = make_timing_panel(builders_for, "loop", batch=2, input_size=3, longest=16, min_run_time=0.005)
    assert panel.set(hidden_size=8).run() is None and "without the baseline" in panel.status.value
    failing = make_timing_panel(lambda *sizes: {}["fused"], "fused", batch=2, input_size=3, longest=16)
    assert failing.run() is None and "builders_for failed" in failing.status.value


def test_plot_loop_vs_fused_labels_the_measured_lengths():
    records = time_implementations(builders_for("RNN", 8, 2, 3), (16, 64), min_run_time=0.005, progress=False)
    ax = plot_loop_vs_fused(records)
    assert ax.get_xlabel() == "sequence length T (steps)" and "ms" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "64"]
    assert len(ax.get_legend().texts) == 2
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels(which="both") if t.get_text()]
    assert labels and not any("e-" in label or "^" in label for label in labels), labels
    matplotlib.pyplot.close(ax.figure)


def test_cpu_time_sweep_times_every_point_in_both_modes():
    from helpers.cells import cpu_time_sweep
    layer = nn.Linear(4, 4)
    builders = {"small": lambda n, dev: (lambda: layer(torch.ones(n, 4))),
                "large": lambda n, dev: (lambda: layer(torch.ones(50 * n, 4)))}
    for mode in ("forward", "forward+backward"):
        records = cpu_time_sweep(builders, (2, 8), mode=mode, rounds=2, min_run_time=0.001)
        assert [(r.implementation, r.size, r.mode) for r in records] == [
            ("small", 2, mode), ("large", 2, mode), ("small", 8, mode), ("large", 8, mode)]
        assert all(r.median_s > 0 and r.iqr_s >= 0 and r.threads == 1 for r in records)


@pytest.mark.parametrize("kwargs, match", [
    (dict(builders={}), "non-empty dict"),
    (dict(sizes=()), "sizes"),
    (dict(mode="backward"), "mode"),
    (dict(rounds=0), "rounds"),
    (dict(min_run_time=5), "min_run_time"),
])
def test_cpu_time_sweep_refuses_bad_input(kwargs, match):
    from helpers.cells import cpu_time_sweep
    arguments = dict(builders={"a": lambda n, dev: (lambda: torch.ones(n))}, sizes=(2,)) | kwargs
    with pytest.raises(LabInputError, match=match):
        cpu_time_sweep(**arguments)
