"""Truncated vs full BPTT: checked against one backward over the whole sequence, in float64 where it matters."""
import pytest
import torch
from torch import nn

from helpers.exercises import CheckResult
from helpers.tbptt import (TinyRNN, WindowResult, backward_calls, check_sequence, check_targets,
                           check_tbptt_exercise, parameter_grads,
                           compare_window, full_bptt_gradients, make_echo_task, make_tbptt_panel,
                           plot_window_sweep, relative_difference, sequence_loss, step_loss, tbptt_gradients,
                           tbptt_pass, window_graph_bytes, window_sweep, windows)
from helpers.validation import LabInputError


def _setup(length=12, hidden=6, batch=3, dtype=torch.float64):
    torch.manual_seed(0)
    model = TinyRNN(1, hidden, 1).to(dtype)
    x, y = make_echo_task(batch, length, delay=2, seed=3, dtype=dtype)
    return model, x, y


def test_tiny_rnn_matches_torch_rnn():
    model, x, _ = _setup()
    rnn = nn.RNN(1, 6, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(rnn, f"{name}_l0").copy_(getattr(model.cell, name))
    out, h = model(x)
    states, h_ref = rnn(x)
    assert torch.allclose(h, h_ref[0])
    assert torch.allclose(out, model.head(states))


def test_tiny_rnn_and_sequence_check_reject_bad_input():
    with pytest.raises(LabInputError, match="3-D"):
        TinyRNN()(torch.zeros(4, 5))
    with pytest.raises(LabInputError, match="features per step"):
        check_sequence(torch.zeros(2, 3, 4), TinyRNN(1, 4, 1))
    with pytest.raises(LabInputError, match="hidden_size"):
        TinyRNN(1, 0, 1)
    x = torch.zeros(2, 3, 1)
    with pytest.raises(LabInputError, match="targets"):
        check_targets(torch.zeros(2, 4, 1), x, TinyRNN(1, 4, 1))
    with pytest.raises(LabInputError, match="3-D"):
        tbptt_pass(TinyRNN(1, 4, 1), x, torch.zeros(2, 3), window=2)


def test_parameter_grads_copies_only_set_grads():
    model = TinyRNN(1, 4, 1)
    assert parameter_grads(model) == {}
    model(torch.ones(1, 2, 1))[0].sum().backward()
    grads = parameter_grads(model)
    assert set(grads) == {n for n, _ in model.named_parameters()}
    grads["head.bias"].add_(1)
    assert not torch.equal(grads["head.bias"], model.head.bias.grad)


def test_echo_task_is_a_delayed_copy_and_seeded():
    x, y = make_echo_task(batch=2, length=7, delay=3, seed=5)
    assert torch.equal(y[:, 3:], x[:, :4]) and torch.all(y[:, :3] == 0)
    assert torch.equal(make_echo_task(2, 7, 3, seed=5)[0], x)
    assert not torch.equal(make_echo_task(2, 7, 3, seed=6)[0], x)
    with pytest.raises(LabInputError, match="delay"):
        make_echo_task(length=4, delay=4)
    with pytest.raises(LabInputError, match="limit"):
        make_echo_task(length=10_000)


def test_step_losses_sum_to_the_sequence_loss():
    model, x, y = _setup()
    out, _ = model(x)
    total = sum(step_loss(out[:, t], y[:, t], x.shape[1]) for t in range(x.shape[1]))
    assert torch.allclose(total, sequence_loss(model, x, y))
    with pytest.raises(LabInputError, match="targets"):
        sequence_loss(model, x, y[:, :-1])


def test_windows_cover_the_sequence():
    assert windows(6, 6) == [(0, 6)]
    assert windows(6, 10) == [(0, 6)]
    assert windows(7, 3) == [(0, 3), (3, 6), (6, 7)]
    with pytest.raises(LabInputError):
        windows(6, 0)


def test_window_equal_to_length_is_full_bptt():
    model, x, y = _setup()
    full = full_bptt_gradients(model, x, y)
    for window in (x.shape[1], 100):
        trunc = tbptt_gradients(model, x, y, window)
        assert set(trunc) == set(full)
        for name in full:
            assert torch.allclose(trunc[name], full[name], atol=1e-12), name
    assert relative_difference(tbptt_gradients(model, x, y, x.shape[1]), full) < 1e-12


def test_truncation_changes_the_gradient_and_only_short_windows_differ_much():
    model, x, y = _setup(length=16)
    full = full_bptt_gradients(model, x, y)
    d1 = relative_difference(tbptt_gradients(model, x, y, 1), full)
    d8 = relative_difference(tbptt_gradients(model, x, y, 8), full)
    assert d1 > 1e-3 and d8 > 1e-6
    assert d8 < d1


def test_tbptt_pass_matches_a_manual_detached_loop():
    model, x, y = _setup(length=6)
    tbptt_pass(model, x, y, window=3)
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    h = model.init_hidden(x.shape[0])
    out1, h1 = model(x[:, :3], h)
    out2, _ = model(x[:, 3:], h1.detach())
    loss = (nn.functional.mse_loss(out1, y[:, :3], reduction="sum")
            + nn.functional.mse_loss(out2, y[:, 3:], reduction="sum")) / y.numel()
    loss.backward()
    for name, p in model.named_parameters():
        assert torch.allclose(got[name], p.grad, atol=1e-12), name


def test_tbptt_pass_trains_with_optimizer_and_no_retain_graph():
    torch.manual_seed(0)
    model = TinyRNN(1, 8, 1)
    x, y = make_echo_task(8, 24, 2, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    before = sequence_loss(model, x, y).item()
    with backward_calls() as calls:
        for _ in range(10):
            tbptt_pass(model, x, y, 4, opt)
    assert len(calls) == 10 * 6 and not any(c["retain_graph"] for c in calls)
    assert sequence_loss(model, x, y).item() < before


def test_relative_difference():
    a = {"w": torch.tensor([3.0, 4.0])}
    assert relative_difference(a, a) == 0.0
    assert relative_difference({"w": torch.zeros(2)}, a) == pytest.approx(1.0)
    with pytest.raises(LabInputError, match="names differ"):
        relative_difference({"v": torch.zeros(2)}, a)


def test_window_graph_bytes_grows_linearly_with_window():
    model, x, y = _setup(length=16, dtype=torch.float32)
    b = {w: window_graph_bytes(model, x, y, w) for w in (2, 4, 8, 16)}
    assert b[2] < b[4] < b[8] < b[16]
    step = b[4] - b[2]
    assert b[8] - b[4] == pytest.approx(2 * step, rel=0.1)
    assert window_graph_bytes(model, x, y, 64) == b[16]


def test_compare_window_and_sweep():
    model, x, y = _setup(length=8, dtype=torch.float32)
    result = compare_window(model, x, y, 8)
    assert result.graph_bytes == result.full_graph_bytes and result.relative_grad_difference < 1e-6
    assert "window" in str(result)
    sweep = window_sweep([1, 2, 8], length=8, hidden=4, batch=2)
    assert [r.window for r in sweep] == [1, 2, 8]
    assert sweep[0].graph_bytes < sweep[-1].graph_bytes
    assert sweep[0].relative_grad_difference > sweep[-1].relative_grad_difference
    with pytest.raises(LabInputError):
        window_sweep([])
    with pytest.raises(LabInputError):
        window_sweep([9], length=8)


def test_plot_window_sweep_has_labelled_axes():
    import matplotlib.pyplot as plt

    fig = plot_window_sweep(window_sweep([1, 4], length=4, hidden=3, batch=2), highlight=1)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    plt.close(fig)
    with pytest.raises(LabInputError):
        plot_window_sweep([])


def test_tbptt_panel_responds_to_its_controls():
    panel = make_tbptt_panel(length=8, hidden=4, batch=2)
    first = panel.set(window=2, length=8).run()
    assert all(isinstance(r, WindowResult) for r in first) and first[-1].window == 8
    second = panel.set(window=5, length=16).run()
    assert [r.window for r in second] == [1, 2, 4, 5, 8, 16] and second[0].length == 16
    assert panel.set(window=10, length=8).run() is None  # window longer than the sequence: refused, not raised
    assert "longer than the sequence" in panel.status.value
    with pytest.raises(LabInputError):
        panel.set(window=10_000)


def test_backward_calls_restores_autograd_and_sees_retain_graph():
    original = torch.autograd.backward
    w = torch.ones(2, requires_grad=True)
    with backward_calls() as calls:
        y = (w * w).sum()
        y.backward(retain_graph=True)
        y.backward()
        torch.autograd.backward((w * 3).sum())
    assert [c["retain_graph"] for c in calls] == [True, False, False]
    assert torch.autograd.backward is original
    assert torch.equal(w.grad, torch.full((2,), 7.0))


def _no_detach(model, x, y, window, optimizer=None):
    h = model.init_hidden(x.shape[0])
    model.zero_grad()
    for start, stop in windows(x.shape[1], window):
        if optimizer:
            optimizer.zero_grad()
        loss = 0
        for t in range(start, stop):
            out, h = model.step(x[:, t], h)
            loss = loss + step_loss(out, y[:, t], x.shape[1])
        loss.backward(retain_graph=True)
        if optimizer:
            optimizer.step()


def _retain_no_step(model, x, y, window, optimizer=None):
    h = model.init_hidden(x.shape[0])
    model.zero_grad()
    for start, stop in windows(x.shape[1], window):
        h = h.detach()
        loss = 0
        for t in range(start, stop):
            out, h = model.step(x[:, t], h)
            loss = loss + step_loss(out, y[:, t], x.shape[1])
        loss.backward(retain_graph=True)


def _summed(model, x, y, window, optimizer=None):
    h = model.init_hidden(x.shape[0])
    model.zero_grad()
    for start, stop in windows(x.shape[1], window):
        if optimizer:
            optimizer.zero_grad()
        h = h.detach()
        out, h = model(x[:, start:stop], h)
        nn.functional.mse_loss(out, y[:, start:stop], reduction="sum").backward()
        if optimizer:
            optimizer.step()


def test_exercise_check_accepts_the_reference_and_rejects_wrong_loops():
    assert check_tbptt_exercise(None).answered is False
    assert "⏳" in repr(check_tbptt_exercise(None))
    assert check_tbptt_exercise(tbptt_pass).passed
    no_detach = check_tbptt_exercise(_no_detach)
    assert not no_detach.passed and "RuntimeError" in no_detach.message
    retained = check_tbptt_exercise(_retain_no_step)
    assert not retained.passed and "retain_graph" in retained.message
    summed = check_tbptt_exercise(_summed)
    assert not summed.passed and "differ from full BPTT" in summed.message
    assert isinstance(check_tbptt_exercise(3), CheckResult) and not check_tbptt_exercise(3).passed
    typo = check_tbptt_exercise(lambda model, x, y, window, optimizer=None: model.stepp(x, None))
    assert not typo.passed and "AttributeError" in typo.message
    assert torch.autograd.backward.__name__ == "backward"
