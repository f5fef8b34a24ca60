"""RNN / LSTM / GRU comparison helpers, checked against PyTorch's own cells, parameters and autograd."""
import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from helpers import rnn_compare as rc
from helpers.timing import MODES, run_experiment
from helpers.validation import LabInputError
from helpers.widgets import DEFAULT_MEMORY_BUDGET

CELLS = {"RNN": nn.RNNCell, "LSTM": nn.LSTMCell, "GRU": nn.GRUCell}


# ----------------------------------------------------------------- gate equations

@pytest.mark.parametrize("kind", rc.LAYER_TYPES)
def test_manual_step_matches_pytorch_cell_in_float64(kind):
    torch.manual_seed(1)
    cell = CELLS[kind](6, 5).double()
    x, h, c = torch.randn(4, 6).double(), torch.randn(4, 5).double(), torch.randn(4, 5).double()
    state = (h, c) if kind == "LSTM" else h
    with torch.no_grad():
        mine, theirs = rc.manual_step(cell, x, state), cell(x, state)
    if kind == "LSTM":
        assert torch.allclose(mine[0], theirs[0], atol=1e-12) and torch.allclose(mine[1], theirs[1], atol=1e-12)
    else:
        assert torch.allclose(mine, theirs, atol=1e-12)


def test_manual_step_gradients_match_the_cell():
    torch.manual_seed(2)
    cell = nn.LSTMCell(3, 4).double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h, c = torch.randn(2, 4).double(), torch.randn(2, 4).double()
    g_mine = torch.autograd.grad(rc.manual_step(cell, x, (h, c))[0].sum(), x)[0]
    g_cell = torch.autograd.grad(cell(x, (h, c))[0].sum(), x)[0]
    assert torch.allclose(g_mine, g_cell, atol=1e-12)


def test_a_wrong_gate_order_would_be_caught():
    # swapping GRU's r and z blocks changes the output, so the comparison can fail
    torch.manual_seed(3)
    cell = nn.GRUCell(3, 4)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    swapped = nn.GRUCell(3, 4)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            r, z, n = getattr(cell, name).chunk(3, dim=0)
            getattr(swapped, name).copy_(torch.cat([z, r, n]))
        assert not torch.allclose(rc.manual_step(swapped, x, h), cell(x, h), atol=1e-4)


@pytest.mark.parametrize("kind", rc.LAYER_TYPES)
def test_manual_step_difference_is_float32_small(kind):
    assert rc.manual_step_difference(kind, seed=4) < 1e-6


def test_manual_step_rejects_bad_input():
    lstm, gru = nn.LSTMCell(3, 4), nn.GRUCell(3, 4)
    with pytest.raises(LabInputError, match="nn.RNNCell, nn.LSTMCell or nn.GRUCell"):
        rc.manual_step(nn.Linear(3, 4), torch.zeros(1, 3), torch.zeros(1, 4))
    with pytest.raises(LabInputError, match=r"\(h, c\)"):
        rc.manual_step(lstm, torch.zeros(1, 3), torch.zeros(1, 4))
    with pytest.raises(LabInputError, match="2-D tensor"):
        rc.manual_step(gru, torch.zeros(3), torch.zeros(1, 4))
    with pytest.raises(LabInputError, match="x must be"):
        rc.manual_step(gru, torch.zeros(1, 5), torch.zeros(1, 4))
    with pytest.raises(LabInputError, match="bias=True"):
        rc.manual_step(nn.GRUCell(3, 4, bias=False), torch.zeros(1, 3), torch.zeros(1, 4))
    with pytest.raises(LabInputError, match="tanh"):
        rc.manual_step(nn.RNNCell(3, 4, nonlinearity="relu"), torch.zeros(1, 3), torch.zeros(1, 4))
    with pytest.raises(LabInputError, match="layer_type must be one of"):
        rc.manual_step_difference("Transformer")


# ----------------------------------------------------------------- parameters

@pytest.mark.parametrize("kind", rc.LAYER_TYPES)
@pytest.mark.parametrize("sizes", [(1, 1), (3, 7), (10, 20), (64, 128)])
def test_formula_matches_layer_and_cell(kind, sizes):
    i, h = sizes
    formula = rc.parameter_count_formula(kind, i, h)
    assert formula == rc.parameter_count(getattr(nn, kind)(i, h))
    assert formula == rc.parameter_count(CELLS[kind](i, h))


def test_gate_ratios_and_table():
    rows = rc.parameter_table([(8, 16), (16, 8)])
    assert len(rows) == 6 and all(r["match"] for r in rows)
    by = {(r["input_size"], r["layer"]): r["measured"] for r in rows}
    assert by[(8, "LSTM")] == 4 * by[(8, "RNN")] and by[(8, "GRU")] == 3 * by[(8, "RNN")]
    text = rc.format_parameter_table(rows)
    assert len(text.splitlines()) == 7 and "4.0" in text and "3.0" in text


def test_parameter_helpers_reject_bad_input():
    with pytest.raises(LabInputError, match="positive integer"):
        rc.parameter_count_formula("GRU", 0, 4)
    with pytest.raises(LabInputError, match="nn.Module"):
        rc.parameter_count([torch.zeros(2)])
    with pytest.raises(LabInputError, match="empty"):
        rc.parameter_table([])
    with pytest.raises(LabInputError, match="pair"):
        rc.parameter_table([(1, 2, 3)])


# ----------------------------------------------------------------- layers and timing

def test_forget_bias_sets_only_the_forget_gate():
    torch.manual_seed(5)
    default = rc.make_layer("LSTM", 3, 4)
    torch.manual_seed(5)
    biased = rc.make_layer("LSTM", 3, 4, forget_bias=1.0)
    total = biased.bias_ih_l0 + biased.bias_hh_l0
    assert torch.equal(total[4:8], torch.ones(4))
    for block in (slice(0, 4), slice(8, 16)):  # input, cell and output gates untouched
        assert torch.equal(biased.bias_ih_l0[block], default.bias_ih_l0[block])
    assert torch.equal(biased.weight_hh_l0, default.weight_hh_l0)


def test_make_layer_rejects_forget_bias_without_forget_gate():
    with pytest.raises(LabInputError, match="LSTM only"):
        rc.make_layer("GRU", 3, 4, forget_bias=1.0)
    with pytest.raises(LabInputError, match="finite number"):
        rc.make_layer("LSTM", 3, 4, forget_bias=float("nan"))


def test_layer_builder_runs_forward_and_backward():
    fn = rc.layer_builder("LSTM", batch=2, seq_len=3, input_size=4)(6, torch.device("cpu"))
    out = fn()
    assert out.shape == (2, 3, 6)
    out.sum().backward()  # parameters require grad, so forward+backward timing has a graph


def test_standard_experiments_scales():
    small, large = rc.standard_experiments("notebook")[0], rc.standard_experiments("reference")[0]
    assert small.name == large.name == "nb05.size_sweep"
    assert set(small.builders) == set(rc.LAYER_TYPES) and small.baseline in small.builders
    assert max(large.sizes) > max(small.sizes) and large.fixed["seq_len"] > small.fixed["seq_len"]
    assert small.modes == MODES
    with pytest.raises(LabInputError, match="scale"):
        rc.standard_experiments("huge")


def test_size_sweep_runs_through_timing_at_tiny_size():
    exp = rc.standard_experiments()[0]
    tiny = type(exp)(exp.name, {k: rc.layer_builder(k, 2, 3, 4) for k in exp.builders}, (4, 8), exp.size_name,
                     exp.baseline)
    records = run_experiment(tiny, threads=1, min_run_time=0.005, progress=False)
    assert len(records) == 3 * 2 * 2 and all(r.median_s > 0 for r in records)


# ----------------------------------------------------------------- gradient flow

def _jacobian_norms(kind, hidden, distance, seed, input_size=3, samples=2, forget_bias=None):
    torch.manual_seed(seed)
    layer = rc.make_layer(kind, input_size, hidden, forget_bias=forget_bias)
    x = torch.randn(samples, distance + 1, input_size, generator=torch.Generator().manual_seed(10_000 + seed))
    per_sample = []
    for s in range(samples):
        jac = torch.autograd.functional.jacobian(lambda seq: layer(seq[None])[0][0, -1], x[s])  # (H, T, I)
        per_sample.append(jac.double().pow(2).sum(dim=(0, 2)).sqrt())
    return torch.stack(per_sample).mean(0).flip(0)


@pytest.mark.parametrize("kind", rc.LAYER_TYPES)
def test_gradient_flow_equals_full_autograd_jacobian(kind):
    flow = rc.gradient_flow(kind, hidden_size=5, max_distance=6, seeds=(7,), input_size=3)
    expected = _jacobian_norms(kind, 5, 6, 7)
    assert torch.allclose(flow.norms[0], expected, rtol=1e-4, atol=1e-10)


def test_gradient_flow_forget_bias_matches_autograd_too():
    flow = rc.gradient_flow("LSTM", hidden_size=4, max_distance=5, seeds=(3,), input_size=3, forget_bias=3.0)
    assert torch.allclose(flow.norms[0], _jacobian_norms("LSTM", 4, 5, 3, forget_bias=3.0), rtol=1e-4)


def test_forget_bias_keeps_lstm_gradient_alive_over_distance():
    default = rc.gradient_flow("LSTM", hidden_size=16, max_distance=30, seeds=(0, 1))
    biased = rc.gradient_flow("LSTM", hidden_size=16, max_distance=30, seeds=(0, 1), forget_bias=3.0)
    assert biased.ratio(30) > 100 * default.ratio(30)
    assert biased.decay_per_step() > default.decay_per_step()
    rnn = rc.gradient_flow("RNN", hidden_size=16, max_distance=30, seeds=(0, 1))
    assert rnn.decay_per_step() < 1 and rnn.ratio(30) < rnn.ratio(10) < 1


def test_gradient_flow_shape_label_and_seeds_differ():
    flow = rc.gradient_flow("GRU", hidden_size=8, max_distance=10, seeds=(0, 1, 2))
    assert flow.norms.shape == (3, 11) and flow.distances == list(range(11))
    assert not torch.equal(flow.norms[0], flow.norms[1])
    assert "GRU" in flow.label and "forget" not in flow.label
    assert "forget bias 3" in rc.gradient_flow("LSTM", 4, 3, seeds=(0,), forget_bias=3.0).label


def test_gradient_flow_rejects_bad_input():
    with pytest.raises(LabInputError, match="limit"):
        rc.gradient_flow("RNN", hidden_size=rc.MAX_FLOW_HIDDEN + 1)
    with pytest.raises(LabInputError, match="limit"):
        rc.gradient_flow("RNN", max_distance=rc.MAX_FLOW_DISTANCE + 1)
    with pytest.raises(LabInputError, match="seeds is empty"):
        rc.gradient_flow("RNN", seeds=())
    with pytest.raises(LabInputError, match="LSTM only"):
        rc.gradient_flow("GRU", forget_bias=1.0)
    flow = rc.gradient_flow("RNN", 4, 3, seeds=(0,))
    with pytest.raises(LabInputError, match="distance must be within"):
        flow.ratio(4)
    with pytest.raises(LabInputError, match="two distances"):
        rc.gradient_flow("RNN", 4, 1, seeds=(0,)).decay_per_step()


def test_gradient_flow_memory_grows_and_panel_maximum_fits_the_budget():
    assert rc.gradient_flow_memory("RNN", 32, 100) < rc.gradient_flow_memory("RNN", 64, 100)
    assert rc.gradient_flow_memory("GRU", 32, 50) < rc.gradient_flow_memory("GRU", 32, 100)
    panel = rc.make_gradient_flow_panel()
    biggest = max(panel.controls["hidden_size"].options)
    far = panel.controls["distance"].max
    assert rc.gradient_flow_memory("LSTM", biggest, far, samples=rc.PANEL_FLOW_SAMPLES) <= DEFAULT_MEMORY_BUDGET


def test_plot_gradient_flow_labels():
    flows = [rc.gradient_flow(k, 4, 5, seeds=(0, 1)) for k in ("RNN", "GRU")]
    ax = rc.plot_gradient_flow(flows, min_distance=1)
    assert ax.get_yscale() == "log" and "distance" in ax.get_xlabel() and "∂h_T" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f.label for f in flows]
    with pytest.raises(LabInputError, match="no gradient-flow"):
        rc.plot_gradient_flow([])


# ----------------------------------------------------------------- panels

def test_gradient_flow_panel_runs_and_reacts():
    panel = rc.make_gradient_flow_panel()
    flows, low = panel.set(layer_type="RNN", hidden_size=16, distance=(0, 20)).run()
    assert low == 0 and len(flows) == 1 and flows[0].layer_type == "RNN" and flows[0].norms.shape[1] == 21
    flows2, low2 = panel.set(layer_type="LSTM", forget_bias=3.0, distance=(10, 30)).run()
    assert low2 == 10 and [f.forget_bias for f in flows2] == [None, 3.0]  # default LSTM drawn beside
    assert flows2[1].ratio(30) > flows2[0].ratio(30)
    with pytest.raises(LabInputError):
        panel.set(hidden_size=4096)


def test_training_panel_runs_and_reacts():
    panel = rc.make_training_panel()
    assert panel.controls["seq_len"].max <= 50 and panel.controls["steps"].max <= 500
    first = panel.set(layer_type="RNN", seq_len=5, steps=50).run()
    assert first.layer_type == "RNN" and first.steps == 50 and len(first.losses) == 50
    second = panel.set(layer_type="GRU").run()
    assert second.layer_type == "GRU" and second.losses != first.losses
    with pytest.raises(LabInputError, match="outside the allowed range"):
        panel.set(steps=10_000)
