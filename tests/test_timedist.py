"""Tests for helpers.timedist, checked against PyTorch's own modules, autograd and float64."""
import copy

import matplotlib
import pytest
import torch
from torch.utils import benchmark
from torch import nn

matplotlib.use("Agg")

from helpers import timedist as td
from helpers.exercises import check_raises
from helpers.gradients import compare_gradients
from helpers.timing import time_callable
from helpers.validation import LabInputError


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("method", td.METHODS)
def test_every_method_matches_linear_on_3d_input(method):
    layer = nn.Linear(5, 3)
    x = torch.randn(4, 7, 5)
    # nn.Linear handles (B, T, F) itself; at odd widths the BLAS may round the last bit differently per row count
    assert torch.allclose(td.time_distributed(layer, x, method), layer(x), atol=1e-6)


@pytest.mark.parametrize("method", td.LOOPS)
def test_loops_equal_reshape_forward_and_input_gradient_bitwise(method):
    layer, x = td.make_mlp(16, 32), torch.randn(3, 9, 16)   # the notebook's widths
    g = td.per_step_weights((3, 9, 16))
    assert torch.equal(td.apply_reshape(layer, x), td.time_distributed(layer, x, method))
    assert torch.equal(td.full_backward(layer, x, g, td.RESHAPE), td.full_backward(layer, x, g, method))


def test_trailing_dimensions_conv2d_and_embedding():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    frames = torch.randn(2, 5, 3, 8, 8)
    expected = torch.stack([conv(frames[:, t]) for t in range(5)], dim=1)
    for method in td.METHODS:
        assert torch.allclose(td.TimeDistributed(conv, method)(frames), expected, atol=1e-6)
    embed = nn.Embedding(10, 4)
    tokens = torch.randint(0, 10, (2, 6))
    for method in td.METHODS:
        assert torch.equal(td.time_distributed(embed, tokens, method), embed(tokens))


@pytest.mark.parametrize("bad, match", [(torch.zeros(5), "at least 2 dimensions"), ([1, 2], "torch.Tensor"),
                                        (torch.zeros(2, 0, 3), "no time steps")])
def test_bad_input_is_named(bad, match):
    with pytest.raises(LabInputError, match=match):
        td.apply_reshape(nn.Linear(3, 3), bad)


def test_stateful_cell_and_batch_mixing_layers_are_refused():
    with pytest.raises(LabInputError, match="LSTMCell"):
        td.TimeDistributed(nn.LSTMCell(3, 4))(torch.zeros(2, 5, 3))
    with pytest.raises(LabInputError, match="leading"):
        td.time_distributed(lambda rows: rows.sum(0), torch.zeros(2, 5, 3))
    with pytest.raises(LabInputError, match="method"):
        td.TimeDistributed(nn.Linear(3, 3), "scan")
    with pytest.raises(LabInputError, match="nn.Module"):
        td.TimeDistributed(lambda x: x)
    with pytest.raises(LabInputError, match="function"):
        td.time_distributed(3, torch.zeros(2, 2, 2))


def test_wrappers_share_parameter_names_and_weights():
    models = td.wrappers(td.make_mlp(4, 8))
    names = [sorted(dict(m.named_parameters())) for m in models.values()]
    assert names[0] == names[1] == names[2]
    weights = [m.layer[0].weight for m in models.values()]
    assert torch.equal(weights[0], weights[2]) and weights[0] is not weights[2]


def test_gradients_float32_close_float64_near_exact():
    x = torch.randn(4, 16, 8)
    g32 = compare_gradients(td.wrappers(td.make_mlp(8, 16)), x)
    assert g32.all_close and g32.row("slice loop", "input").bitwise_equal
    assert g32.max_abs_diff() > 0  # float32 weight gradients are summed in another order
    g64 = compare_gradients(td.wrappers(td.make_mlp(8, 16, dtype=torch.float64)), x.double())
    assert 0 < g64.max_abs_diff() < 1e-12 < g32.max_abs_diff()


def test_float32_error_by_length_is_positive_and_small():
    rows = td.float32_error_by_length([4, 32], seeds=2)
    assert [r.length for r in rows] == [4, 32]
    assert all(0 < e < 1e-3 for r in rows for e in r.errors.values())


def test_saved_bytes_equal_and_loop_saves_t_times_the_tensors():
    rows = td.saved_by_length(td.make_mlp(4, 8), [2, 5], batch=3)
    for length in (2, 5):
        mine = {r.method: r for r in rows if r.length == length}
        assert len({r.bytes for r in mine.values()}) == 1
        for loop in td.LOOPS:
            assert mine[loop].tensors == length * mine["reshape"].tensors
    bigger = [r.bytes for r in rows if r.method == "reshape"]
    assert bigger[1] > bigger[0]


def test_stepwise_backward_matches_full_and_keeps_peak_flat():
    layer = td.make_mlp(4, 8)
    x, g = torch.randn(3, 6, 4), td.per_step_weights((3, 6, 4))
    full_layer = copy.deepcopy(layer)
    assert torch.allclose(td.stepwise_backward(layer, x, g), td.full_backward(full_layer, x, g), atol=1e-6)
    for a, b in zip(layer.parameters(), full_layer.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)
    rows = td.peak_saved_by_length(td.make_mlp(4, 8), [2, 8], batch=3)
    peak = {(r.strategy, r.length): r.peak_bytes for r in rows}
    assert peak[("stepwise backward", 2)] == peak[("stepwise backward", 8)]
    assert peak[("reshape", 8)] == 4 * peak[("reshape", 2)] == 4 * peak[("unbind-stack loop", 2)]
    with pytest.raises(LabInputError, match="shape"):
        td.stepwise_backward(layer, x, torch.zeros(3, 5, 4))


def test_lstm_cell_reshape_is_wrong_loop_matches_nn_lstm():
    cell, x = nn.LSTMCell(3, 5), torch.randn(4, 6, 3)
    loop, (h, c) = td.lstm_cell_loop(cell, x)
    reference, (h_n, c_n) = td.lstm_like_cell(cell)(x)
    assert torch.allclose(loop, reference, atol=1e-6) and torch.allclose(c, c_n[0], atol=1e-6)
    wrong = td.lstm_cell_by_reshape(cell, x)
    assert torch.allclose(wrong[:, 0], loop[:, 0], atol=1e-6)      # the first step has zero state either way
    assert not torch.allclose(wrong[:, 1:], loop[:, 1:], atol=1e-3)
    assert check_raises(lambda: td.lstm_cell_popular_snippet(cell, x), ValueError, match="unpack")
    with pytest.raises(LabInputError):
        td.lstm_like_cell(nn.GRUCell(3, 5))


def test_graph_stats_grow_with_steps_for_loops_only():
    for steps in (1, 4):
        assert td.graph_stats_at("slice loop", steps).node_types["SelectBackward0"] == steps
    assert td.graph_stats_at("reshape", 1).nodes == td.graph_stats_at("reshape", 5).nodes
    assert td.graph_stats_at("unbind-stack loop", 5).nodes > td.graph_stats_at("unbind-stack loop", 1).nodes


def test_graph_pair_and_panel():
    pair = td.graph_pair(2, "slice loop")
    assert pair.png[:4] == b"\x89PNG" and pair.nodes["slice loop"] > pair.nodes["reshape"]
    panel = td.make_graph_panel()
    one = panel.set(steps=1).run().nodes
    four = panel.set(steps=4).run().nodes
    assert four["unbind-stack loop"] > one["unbind-stack loop"] and four["reshape"] == one["reshape"]
    with pytest.raises(LabInputError):
        panel.set(steps=7)


def _fastest_backward_s(fn) -> float:
    """Minimum over timed blocks: the least disturbed measurement when other work shares the cores."""
    fn().sum().backward()
    timer = benchmark.Timer(stmt="fn().sum().backward()", globals={"fn": fn}, num_threads=1)
    return min(timer.blocked_autorange(min_run_time=0.1).times)


def _backward_growth(lengths: tuple[int, int]) -> dict[str, float]:
    growth = {}
    for method in td.LOOPS:
        build = td.make_builder(method, batch=64, width=32)
        short, long = (_fastest_backward_s(build(length, torch.device("cpu"))) for length in lengths)
        growth[method] = long / short
    return growth


def test_slice_loop_backward_grows_quadratically_unbind_linearly(retry_timing):
    """Timing shape at small sizes, asserted as a ratio of growth factors measured in one run.

    8× the length: about 8× for a linear backward, far more for a quadratic one (the recorded CPU
    reference shows about 23× against 7.5×).
    """
    retry_timing(lambda: _backward_growth((32, 256)),
                 lambda growth: growth["slice loop"] > 1.8 * growth["unbind-stack loop"])


def _gradient_elements_in_backward(method: str, length: int) -> int:
    """Elements of every gradient tensor backward produces: the work behind the timing, counted exactly."""
    out = td.make_builder(method, batch=2, width=3)(length, torch.device("cpu"))()
    total = 0

    def count(grad_inputs, grad_outputs):
        nonlocal total
        total += sum(g.numel() for g in grad_inputs if g is not None)

    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        node.register_hook(count)
        stack.extend(child for child, _ in node.next_functions)
    out.sum().backward()
    return total


def test_slice_loop_backward_materialises_quadratic_gradients():
    """Why the slice loop is quadratic: each x[:, t] / out[:, t] = ... step's backward writes a full (B, T, F) gradient."""
    growth = {m: _gradient_elements_in_backward(m, 64) / _gradient_elements_in_backward(m, 8) for m in td.LOOPS}
    assert growth["unbind-stack loop"] < 9  # 8× the length, about 8× the elements: linear
    assert growth["slice loop"] > 40  # close to 64×: quadratic


def test_standard_experiments():
    for scale in td.SCALES:
        (exp,) = td.standard_experiments(scale)
        assert exp.name == "nb01.length_sweep" and exp.baseline == "reshape"
        assert list(exp.builders) == list(td.METHODS) and exp.modes == ("forward", "forward+backward")
    assert td.standard_experiments("reference")[0].sizes[-1] > td.standard_experiments()[0].sizes[-1]
    with pytest.raises(LabInputError, match="scale"):
        td.standard_experiments("huge")


def test_timing_panel_runs_and_reacts():
    panel = td.make_timing_panel()
    heading = panel.widget.children[0].value
    assert ("CUDA" in heading) and (torch.cuda.is_available() or "runs on the CPU" in heading)
    panel.set(length=8, batch=2, width=4, slice_loop=False, mode="forward")
    first = panel.run()
    assert {r.implementation for r in first} == {"reshape", "unbind-stack loop"} and {r.size for r in first} == {8}
    second = panel.set(length=16, slice_loop=True).run()
    assert {r.size for r in second} == {8, 16} and "slice loop" in {r.implementation for r in second}
    assert panel.set(reshape=False, slice_loop=False, unbind_stack_loop=False).run() is None
    assert "at least one" in panel.status.value
    with pytest.raises(LabInputError):
        panel.set(length=10_000)


def test_tail_slopes_and_plots_are_labelled():
    records = td.run_timing_panel(length=16, batch=2, width=4, min_run_time=0.01)
    assert set(td.tail_slopes(records)) == {(m, "forward+backward") for m in td.METHODS}
    fig = td.plot_length_sweep(records)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("sequence length") and "ms" in ax.get_ylabel()
    fig = td.plot_saved_by_length(td.saved_by_length(td.make_mlp(4, 8), [2, 4], batch=2))
    assert all(a.get_xlabel() and a.get_ylabel() and a.get_title() for a in fig.axes)
    ax = td.plot_error_by_length(td.float32_error_by_length([2, 4], seeds=1))
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    with pytest.raises(LabInputError):
        td.plot_length_sweep([])
