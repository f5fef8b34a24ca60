"""Autograd through loops: checked against analytic derivatives, one backward over the summed loss, and big batches."""
import pytest
import torch

from helpers.autograd_loops import (backward_step_executions, grads_after_repeated_backward,
                                    loop_graph_loss, loop_graph_view, loop_sum_gradients, loop_sum_loss,
                                    make_graph_panel, micro_batch_gradients, per_step_backward,
                                    per_step_experiment, per_step_without_retain_graph, standard_experiments,
                                    retain_graph_with_optimizer_step, rnn_setup, running_loss_growth,
                                    trace_per_step_training, while_loop_gradient)
from helpers.exercises import check_raises
from helpers.graphs import GraphView, graph_stats
from helpers.tbptt import full_bptt_gradients, sequence_loss
from helpers.timing import run_experiment
from helpers.validation import LabInputError


def test_loop_sum_keeps_every_iteration():
    result = loop_sum_gradients(2.0, 3)
    assert result.loop == 12.0 and result.stacked == 12.0 and result.last_only == 4.0
    for x_value, n in ((0.5, 1), (-1.5, 5)):
        r = loop_sum_gradients(x_value, n)
        assert r.loop == pytest.approx(n * 2 * x_value) == r.stacked
        assert r.last_only == pytest.approx(2 * x_value)
    with pytest.raises(LabInputError):
        loop_sum_gradients(2.0, 0)


def test_loop_sum_loss_matches_closed_form_and_its_graph_grows():
    x = torch.tensor(2.0, requires_grad=True)
    assert loop_sum_loss(x, 3).item() == 3 * 4 + 0 + 1 + 2
    assert graph_stats(loop_sum_loss(x, 4)).nodes > graph_stats(loop_sum_loss(x, 2)).nodes


def test_while_loop_gradient_matches_analytic_and_torch_pow():
    for x_value, limit in ((1.5, 10.0), (1.1, 3.0), (3.0, 100.0)):
        r = while_loop_gradient(x_value, limit)
        assert r.value >= limit and r.value / x_value < limit  # the loop stopped at the first value past the limit
        assert r.autograd == pytest.approx(r.analytic, rel=1e-12)
        x = torch.tensor(x_value, dtype=torch.float64, requires_grad=True)
        (x ** (r.steps + 1)).backward()
        assert r.autograd == pytest.approx(float(x.grad), rel=1e-12)
    assert while_loop_gradient(1.5, 2.0).steps < while_loop_gradient(1.5, 20.0).steps
    with pytest.raises(LabInputError, match="above 1"):
        while_loop_gradient(0.9)
    with pytest.raises(LabInputError, match="limit"):
        while_loop_gradient(1.0 + 1e-9, 1e6)


def test_per_step_backward_with_retain_graph_equals_one_backward():
    model, x, y = rnn_setup(batch=3, length=7, dtype=torch.float64)
    per_step = per_step_backward(model, x, y, retain_graph=True)
    full = full_bptt_gradients(model, x, y)
    assert set(per_step) == set(full)
    for name in full:
        assert torch.allclose(per_step[name], full[name], atol=1e-12), name


def test_the_two_failing_loops_raise_pytorchs_own_errors():
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        retain_graph_with_optimizer_step()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        per_step_without_retain_graph()
    assert check_raises(retain_graph_with_optimizer_step, RuntimeError, match="inplace").passed
    assert check_raises(per_step_without_retain_graph, RuntimeError, match="second time").passed
    # one step only: nothing earlier to reach, so neither fails
    model, x, y = rnn_setup(length=1)
    per_step_backward(model, x, y, retain_graph=False)
    with pytest.raises(LabInputError, match="targets"):
        per_step_backward(model, x, y[:, :0], retain_graph=True)


def test_trace_reports_versions_and_first_failing_step():
    trace = trace_per_step_training(steps=5)
    assert trace.failed_at_step is not None and trace.failed_at_step >= 1
    assert "inplace" in str(trace.error)
    versions = trace.weight_hh_versions
    assert len(versions) == trace.failed_at_step + 1
    assert list(versions) == sorted(versions) and versions[-1] > versions[0]  # each optimizer.step() bumps it
    assert "failed at step" in str(trace)
    # the stale saved weight is the one an earlier step used, with the version it had then
    assert trace.stale_step is not None and trace.stale_step < trace.failed_at_step
    assert f"expected version {versions[trace.stale_step]}" in str(trace.error)
    assert trace_per_step_training(steps=1).stale_step is None
    one = trace_per_step_training(steps=1)
    assert one.failed_at_step is None and one.error is None and "ran all steps" in str(one)


def test_backward_work_is_quadratic_per_step_and_linear_once():
    for n in (1, 4, 9):
        assert backward_step_executions(n, per_step=False) == n
        assert backward_step_executions(n, per_step=True) == n * (n + 1) // 2


def test_per_step_backward_time_grows_faster_than_single_backward(retry_timing):
    exp = per_step_experiment(sizes=(8, 32))

    def growth():
        records = run_experiment(exp, min_run_time=0.05, threads=1, progress=False)
        t = {(r.implementation, r.size): r.median_s for r in records}
        single = t["single backward", 32] / t["single backward", 8]
        per_step = t["per-step retain_graph", 32] / t["per-step retain_graph", 8]
        return single, per_step

    # work grows 4x for one backward and ~15x per step; a generous margin for a loaded machine
    retry_timing(growth, lambda g: g[1] > 1.5 * g[0])
    with pytest.raises(LabInputError):
        per_step_experiment(sizes=(0,))


def test_gradients_accumulate_until_zeroed():
    assert grads_after_repeated_backward(3, 2.0) == [4.0, 8.0, 12.0]
    assert grads_after_repeated_backward(2, -1.0) == [-2.0, -4.0]


def test_micro_batches_equal_the_big_batch_only_with_scaling():
    model, x, y = rnn_setup(batch=8, length=5, dtype=torch.float64)
    model.zero_grad()
    sequence_loss(model, x, y).backward()
    big = {n: p.grad.clone() for n, p in model.named_parameters()}
    for parts in (2, 4, 8):
        scaled = micro_batch_gradients(model, x, y, parts)
        unscaled = micro_batch_gradients(model, x, y, parts, scale=False)
        for name in big:
            assert torch.allclose(scaled[name], big[name], atol=1e-12), (parts, name)
            assert torch.allclose(unscaled[name], parts * big[name], atol=1e-12), (parts, name)
    with pytest.raises(LabInputError, match="does not divide"):
        micro_batch_gradients(model, x, y, 3)


def test_running_total_loss_keeps_graphs_alive_only_as_a_tensor():
    steps = 5
    tensor_eval = running_loss_growth(steps, "tensor", train=False, length=6)
    bytes_eval = [r.live_saved_bytes for r in tensor_eval]
    nodes = [r.graph_nodes for r in tensor_eval]
    assert all(b2 > b1 for b1, b2 in zip(bytes_eval, bytes_eval[1:]))  # every iteration adds its activations
    assert bytes_eval[-1] == pytest.approx(steps * bytes_eval[0], rel=0.05)
    assert all(n2 > n1 for n1, n2 in zip(nodes, nodes[1:]))
    tensor_train = running_loss_growth(steps, "tensor", train=True, length=6)
    assert all(r.live_saved_bytes == 0 for r in tensor_train)  # backward freed the saved tensors ...
    assert [r.graph_nodes for r in tensor_train] == nodes       # ... but the nodes stay reachable
    for mode in ("item", "detach"):
        for train in (True, False):
            rows = running_loss_growth(steps, mode, train=train, length=6)
            assert all(r.graph_nodes == 0 and r.live_saved_bytes == 0 for r in rows), (mode, train)
    with pytest.raises(LabInputError, match="mode"):
        running_loss_growth(2, "float")


def test_loop_graph_grows_with_iterations_and_is_cut_by_detach():
    nodes = {n: graph_stats(loop_graph_loss(n)[0]).nodes for n in range(1, 7)}
    step = nodes[2] - nodes[1]
    assert step > 0 and all(nodes[n + 1] - nodes[n] == step for n in range(1, 6))
    for k in (1, 2, 3):
        for n in range(1, 7):
            last_window = n - k * ((n - 1) // k)
            assert graph_stats(loop_graph_loss(n, k)[0]).nodes == nodes[last_window], (n, k)
    loss, params = loop_graph_loss(3)
    loss.backward()
    assert params["x"].grad is not None and params["w"].grad is not None
    with pytest.raises(LabInputError, match="detach_every"):
        loop_graph_loss(3, -1)


def test_loop_graph_view_and_panel():
    view = loop_graph_view(3, 0)
    assert isinstance(view, GraphView) and view.png[:4] == b"\x89PNG"
    panel = make_graph_panel()
    grown = panel.set(iterations=6, detach_every=0).run()
    cut = panel.set(detach_every=2).run()
    small = panel.set(iterations=1, detach_every=0).run()
    assert small.stats.nodes < cut.stats.nodes < grown.stats.nodes
    with pytest.raises(LabInputError):
        panel.set(iterations=7)


def test_plot_running_loss_has_labelled_axes():
    import matplotlib.pyplot as plt

    from helpers.autograd_loops import plot_running_loss

    fig = plot_running_loss({"tensor": running_loss_growth(2, length=3), "item": running_loss_growth(2, "item", length=3)})
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert len(ax.get_lines()) == 2
    plt.close(fig)
    with pytest.raises(LabInputError):
        plot_running_loss({})


def test_standard_experiments_for_bench():
    from helpers.bench import collect_experiments

    notebook = collect_experiments("notebook", modules=["helpers.autograd_loops"])
    assert [e.name for e in notebook] == ["nb03.per_step_backward"]
    assert max(standard_experiments("reference")[0].sizes) > max(notebook[0].sizes)
    with pytest.raises(LabInputError, match="scale"):
        standard_experiments("huge")
