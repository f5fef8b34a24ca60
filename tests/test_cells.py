"""Tests for helpers.cells: every hand iteration is checked against PyTorch's own fused modules."""
import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from helpers.cells import (KINDS, HandRecurrent, StepTrace, bidirectional_chunk_gap, cell_from_layer, fused_builder,
                           gru_step, kind_of, loop_builder, loop_vs_fused_experiment, lstm_step, make_recurrent,
                           make_step_panel, make_timing_panel, max_abs_diff, plot_loop_vs_fused, plot_step_trace,
                           popular_multilayer_snippet, rnn_step, run_cell_loop, run_in_chunks, run_timing,
                           standard_experiments, step_through, timing_memory_estimate)
from helpers.gradients import compare_gradients
from helpers.validation import LabInputError

TOL = 1e-5


def _x(batch=3, length=7, features=4, seed=0):
    return torch.randn(batch, length, features, generator=torch.Generator().manual_seed(seed))


def _state(kind, layers, batch, hidden, seed=1):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(layers, batch, hidden, generator=gen)
    return (h, torch.randn(layers, batch, hidden, generator=gen)) if kind == "LSTM" else h


# --- kind_of / make_recurrent ----------------------------------------------------------------------

def test_kind_of_names_modules_and_cells_and_rejects_others():
    assert [kind_of(make_recurrent(k, 2, 3)) for k in KINDS] == list(KINDS)
    assert kind_of(torch.nn.RNNCell(2, 3)) == "RNN"
    with pytest.raises(LabInputError, match="nn.RNN, nn.LSTM or nn.GRU"):
        kind_of(torch.nn.Linear(2, 3))


def test_make_recurrent_is_seeded_and_batch_first():
    a, b = make_recurrent("GRU", 2, 3, seed=5), make_recurrent("GRU", 2, 3, seed=5)
    assert a.batch_first and torch.equal(a.weight_hh_l0, b.weight_hh_l0)
    assert not torch.equal(a.weight_hh_l0, make_recurrent("GRU", 2, 3, seed=6).weight_hh_l0)
    with pytest.raises(LabInputError, match="kind must be one of"):
        make_recurrent("Transformer", 2, 3)
    with pytest.raises(LabInputError, match="hidden_size must be a positive integer"):
        make_recurrent("RNN", 2, 0)


# --- belief 1: a loop over the cell equals the fused module ----------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_cell_loop_equals_fused_single_layer(kind):
    module = make_recurrent(kind, 4, 5)
    x, state = _x(), _state(kind, 1, 3, 5)
    out_f, state_f = module(x, state)
    cell_state = tuple(s[0] for s in state) if kind == "LSTM" else state[0]
    out_l, state_l = run_cell_loop(cell_from_layer(module), x, cell_state)
    assert out_l.shape == out_f.shape
    assert max_abs_diff(out_l, out_f) < TOL
    final_f = tuple(s[0] for s in state_f) if kind == "LSTM" else state_f[0]
    assert max_abs_diff(state_l, final_f) < TOL


def test_cell_from_layer_copies_the_requested_layer_and_is_independent():
    rnn = make_recurrent("RNN", 3, 4, num_layers=2)
    cell = cell_from_layer(rnn, layer=1)
    assert cell.input_size == 4 and torch.equal(cell.bias_hh, rnn.bias_hh_l1)
    with torch.no_grad():
        cell.weight_hh.add_(1.0)
    assert not torch.equal(cell.weight_hh, rnn.weight_hh_l1), "the cell must hold a copy, not a view"


def test_cell_from_layer_keeps_relu_and_no_bias():
    rnn = torch.nn.RNN(3, 4, nonlinearity="relu", bias=False, batch_first=True)
    cell = cell_from_layer(rnn)
    assert cell.nonlinearity == "relu" and cell.bias_ih is None
    x = _x(features=3)
    assert max_abs_diff(run_cell_loop(cell, x)[0], rnn(x)[0]) < TOL


@pytest.mark.parametrize("bad, message", [
    (lambda: cell_from_layer(make_recurrent("RNN", 3, 4), layer=1), "layer must be an int in 0..0"),
    (lambda: cell_from_layer(make_recurrent("GRU", 3, 4, bidirectional=True)), "bidirectional"),
    (lambda: cell_from_layer(torch.nn.LSTM(3, 4, proj_size=2)), "proj_size"),
    (lambda: cell_from_layer(torch.nn.GRUCell(3, 4)), "already a cell"),
])
def test_cell_from_layer_rejects_what_it_cannot_copy(bad, message):
    with pytest.raises(LabInputError, match=message):
        bad()


def test_run_cell_loop_rejects_bad_input():
    cell = torch.nn.RNNCell(4, 5)
    with pytest.raises(LabInputError, match=r"3-D tensor \(batch, time, features\)"):
        run_cell_loop(cell, torch.randn(7, 4))
    with pytest.raises(LabInputError, match="input_size=4"):
        run_cell_loop(cell, torch.randn(2, 7, 3))
    with pytest.raises(LabInputError, match="no time steps"):
        run_cell_loop(cell, torch.randn(2, 0, 4))
    with pytest.raises(LabInputError, match="cell_from_layer"):
        run_cell_loop(make_recurrent("RNN", 4, 5), _x())
    with pytest.raises(LabInputError, match=r"tuple \(h, c\)"):
        run_cell_loop(torch.nn.LSTMCell(4, 5), _x(), torch.zeros(3, 5))


# --- the step equations -----------------------------------------------------------------------------

def test_step_functions_equal_torch_cells_in_float64():
    x, h, c = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64), torch.randn(
        3, 5, dtype=torch.float64)
    for cell_type, step, state in ((torch.nn.RNNCell, rnn_step, h), (torch.nn.GRUCell, gru_step, h),
                                   (torch.nn.LSTMCell, lstm_step, (h, c))):
        cell = cell_type(4, 5).double()
        ours = step(x, state, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        assert max_abs_diff(ours, cell(x, state)) < 1e-12, cell_type.__name__


def test_gru_step_keeps_the_hidden_bias_inside_the_reset_gate():
    cell = torch.nn.GRUCell(2, 3)
    x, h = torch.randn(4, 2), torch.randn(4, 3)
    with torch.no_grad():
        cell.bias_hh.normal_()
    # moving b_hn outside r * (...) gives a different (wrong) cell: the test would catch that mistake
    xr, xz, xn = (x @ cell.weight_ih.T + cell.bias_ih).chunk(3, -1)
    hr, hz, hn = (h @ cell.weight_hh.T).chunk(3, -1)
    br, bz, bn = cell.bias_hh.chunk(3)
    r, z = torch.sigmoid(xr + hr + br), torch.sigmoid(xz + hz + bz)
    wrong = (1 - z) * torch.tanh(xn + bn + r * hn) + z * h
    assert max_abs_diff(wrong, cell(x, h)) > 1e-4
    assert max_abs_diff(gru_step(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh), cell(x, h)) < TOL


# --- belief 2: multi-layer by hand, outputs and gradients ------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_hand_recurrent_equals_fused_outputs(kind, layers):
    fused = make_recurrent(kind, 4, 5, num_layers=layers)
    hand = HandRecurrent.from_module(fused)
    x, state = _x(), _state(kind, layers, 3, 5)
    assert max_abs_diff(hand(x, state), fused(x, state)) < TOL
    assert max_abs_diff(hand(x), fused(x)) < TOL


@pytest.mark.parametrize("kind", KINDS)
def test_hand_recurrent_equals_fused_gradients(kind):
    fused = make_recurrent(kind, 4, 5, num_layers=2)
    comparison = compare_gradients({"fused": fused, "hand": HandRecurrent.from_module(fused)}, _x(),
                                   atol=1e-5, rtol=1e-4)
    assert comparison.all_close, str(comparison)
    quantities = {row.quantity for row in comparison.rows}
    assert "input" in quantities and "weight_hh_l1" in quantities and len(quantities) == 9


def test_hand_recurrent_gradients_are_not_vacuous():
    fused = make_recurrent("GRU", 4, 5, num_layers=2)
    hand = HandRecurrent.from_module(fused)
    with torch.no_grad():
        hand.weight_hh_l1.mul_(1.5)  # a different model must be told apart
    assert not compare_gradients({"fused": fused, "hand": hand}, _x()).all_close


def test_hand_recurrent_relu_and_no_bias():
    fused = torch.nn.RNN(4, 5, num_layers=2, nonlinearity="relu", bias=False, batch_first=True)
    hand = HandRecurrent.from_module(fused)
    assert sorted(dict(hand.named_parameters())) == sorted(dict(fused.named_parameters()))
    assert max_abs_diff(hand(_x()), fused(_x())) < TOL


def test_hand_recurrent_float64_matches_closely():
    fused = make_recurrent("LSTM", 4, 5, num_layers=2).double()
    hand = HandRecurrent.from_module(fused)
    x = _x().double()
    assert max_abs_diff(hand(x), fused(x)) < 1e-12


def test_hand_recurrent_rejects_bad_modules_and_states():
    with pytest.raises(LabInputError, match="unidirectional"):
        HandRecurrent.from_module(make_recurrent("RNN", 3, 4, bidirectional=True))
    with pytest.raises(LabInputError, match="batch_first=True"):
        HandRecurrent.from_module(torch.nn.GRU(3, 4))
    hand = HandRecurrent("GRU", 4, 5, num_layers=2)
    with pytest.raises(LabInputError, match="num_layers=2"):
        hand(_x(), torch.zeros(1, 3, 5))
    with pytest.raises(LabInputError, match="kind must be one of"):
        HandRecurrent("Conv", 4, 5)


def test_popular_snippet_crashes_calling_a_parameter():
    rnn = make_recurrent("RNN", 4, 5, num_layers=2)
    assert isinstance(rnn.weight_ih_l0, torch.nn.Parameter)
    with pytest.raises(TypeError, match="'Parameter' object is not callable"):
        popular_multilayer_snippet(rnn, _x())


# --- belief 4: streaming -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
def test_chunks_with_carried_state_equal_the_whole_run(kind, chunk):
    module = make_recurrent(kind, 4, 5, num_layers=2)
    x = _x(length=13)
    with torch.no_grad():
        whole = module(x)
        chunked = run_in_chunks(module, x, chunk)
    assert max_abs_diff(chunked, whole) < TOL


def test_chunks_without_carried_state_differ():
    module = make_recurrent("GRU", 4, 5)
    x = _x(length=12)
    with torch.no_grad():
        reset = torch.cat([module(x[:, s:s + 4])[0] for s in range(0, 12, 4)], dim=1)
        assert max_abs_diff(reset, module(x)[0]) > 1e-3


def test_bidirectional_chunk_gap_shows_only_the_backward_half_differs():
    for kind in KINDS:
        gap = bidirectional_chunk_gap(kind=kind)
        assert gap["forward"] < TOL and gap["backward"] > 1e-3, (kind, gap)
    with pytest.raises(LabInputError, match="shorter than length"):
        bidirectional_chunk_gap(length=4, chunk=4)


def test_run_in_chunks_rejects_bad_input():
    with pytest.raises(LabInputError, match="positive integer"):
        run_in_chunks(make_recurrent("RNN", 4, 5), _x(), 0)
    with pytest.raises(LabInputError, match="batch_first=True"):
        run_in_chunks(torch.nn.RNN(4, 5), _x(), 2)
    with pytest.raises(LabInputError, match="run_cell_loop"):
        run_in_chunks(torch.nn.RNNCell(4, 5), _x(), 2)


def test_max_abs_diff_checks_shapes():
    assert max_abs_diff(torch.zeros(2), torch.ones(2)) == 1.0
    with pytest.raises(LabInputError, match="cannot compare shapes"):
        max_abs_diff(torch.zeros(2), torch.zeros(3))
    with pytest.raises(LabInputError, match="same length"):
        max_abs_diff((torch.zeros(2),), torch.zeros(2))


# --- step-through panel ------------------------------------------------------------------------------

def test_step_through_matches_the_cell_loop_prefix():
    cell = torch.nn.GRUCell(1, 6)
    seq = torch.randn(10, 1)
    full, _ = run_cell_loop(cell, seq[None])
    trace = step_through(cell, seq, 4)
    assert trace.hidden.shape == (4, 6) and max_abs_diff(trace.hidden, full[0, :4]) < 1e-6
    assert torch.equal(trace.current, trace.hidden[-1])
    empty = step_through(cell, seq, 0)
    assert empty.hidden.shape == (0, 6) and torch.equal(empty.current, torch.zeros(6))
    with pytest.raises(LabInputError, match="step must be an int in 0..10"):
        step_through(cell, seq, 11)
    with pytest.raises(LabInputError, match=r"\(time, features\)"):
        step_through(cell, torch.randn(10), 2)


def test_step_panel_runs_changes_and_wraps():
    panel = make_step_panel(torch.nn.RNNCell(1, 4), torch.randn(5, 1), step=2)
    first = panel.run()
    second = panel.set(step=4).run()
    assert isinstance(first, StepTrace) and (first.step, second.step) == (2, 4)
    assert not torch.equal(first.current, second.current)
    assert panel.next_step().step == 5 and panel.next_step().step == 0
    with pytest.raises(LabInputError, match="outside the allowed range"):
        panel.set(step=6)


def test_plot_step_trace_has_labelled_axes():
    fig = plot_step_trace(step_through(torch.nn.RNNCell(1, 4), torch.randn(8, 1), 3))
    ax_in, ax_h = fig.axes[:2]
    assert ax_in.get_ylabel() and ax_h.get_xlabel() and ax_h.get_ylabel() == "hidden unit"
    assert "3 of 8" in ax_in.get_title()
    matplotlib.pyplot.close(fig)


# --- timing -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_builders_compute_the_same_thing(kind):
    dev = torch.device("cpu")
    fused = fused_builder(kind, 6, 2, 3)(9, dev)()
    loop = loop_builder(kind, 6, 2, 3)(9, dev)()
    assert max_abs_diff(loop[0], fused[0]) < TOL


def test_experiment_and_memory_estimate():
    exp = loop_vs_fused_experiment("LSTM", sizes=(4, 8), hidden_size=6)
    assert exp.name == "nb04.loop_vs_fused.LSTM" and exp.sizes == (4, 8) and exp.fixed["hidden_size"] == 6
    small, large = timing_memory_estimate("RNN", 100, 8), timing_memory_estimate("RNN", 200, 8)
    assert large == 2 * small and timing_memory_estimate("LSTM", 100, 8) > small


def test_cell_loop_grows_with_length_and_is_slower_than_fused_at_small_sizes():
    # The loop pays Python overhead per step: 4x the steps costs well over 1.5x the time, and at a tiny width
    # it is slower than the fused module's loop in C++. Generous margins for a loaded 2-core machine.
    recs = run_timing("RNN", 64, 8, "forward", "cpu", min_run_time=0.02, batch=2)
    times = {(r.implementation, r.size): r.median_s for r in recs}
    assert sorted(times) == [("cell loop", 16), ("cell loop", 64), ("fused", 16), ("fused", 64)]
    assert times[("cell loop", 64)] / times[("cell loop", 16)] > 1.5
    assert times[("cell loop", 64)] / times[("fused", 64)] > 1.5


def test_timing_panel_runs_and_changes():
    panel = make_timing_panel()
    first = panel.set(max_length=16, hidden_size=8, kind="RNN").run()
    second = panel.set(kind="GRU", mode="forward+backward").run()
    assert {r.mode for r in first} == {"forward"} and {r.mode for r in second} == {"forward+backward"}
    assert len(first) == len(second) == 2
    assert {r.threads for r in first} == {1}
    with pytest.raises(LabInputError, match="outside the allowed range"):
        panel.set(max_length=10**6)


def test_plot_loop_vs_fused_labels_the_measured_lengths():
    recs = run_timing("RNN", 64, 8, "forward", "cpu", min_run_time=0.01, batch=2)
    ax = plot_loop_vs_fused(recs)
    assert ax.get_xlabel() == "sequence length T (steps)" and "ms" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "64"]
    assert len(ax.get_legend().texts) == 2
    matplotlib.pyplot.close(ax.figure)


def test_standard_experiments_for_make_bench():
    from helpers.bench import collect_experiments

    notebook = collect_experiments("notebook", modules=["helpers.cells"])
    assert [e.name for e in notebook] == ["nb04.loop_vs_fused.RNN"] and notebook[0].sizes == (16, 64, 256)
    reference = standard_experiments("reference")
    assert [e.fixed["kind"] for e in reference] == list(KINDS) and max(reference[0].sizes) > 256
    with pytest.raises(LabInputError, match="scale must be one of"):
        standard_experiments("huge")
