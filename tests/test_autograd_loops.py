import pytest
import torch
from torch import nn

from helpers.autograd_loops import (
    AnomalyReport,
    BackwardCall,
    anomaly_report,
    backward_calls,
    check_sliding_window_training,
)
from helpers.validation import LabInputError


class TinyCellModel(nn.Module):
    """A stand-in for the notebook's SimpleRNN: one tanh per step, a linear read-out."""

    def __init__(self, hidden=4):
        super().__init__()
        self.i2h = nn.Linear(1 + hidden, hidden)
        self.h2o = nn.Linear(hidden, 1)

    def forward(self, x_t, hidden):
        hidden = torch.tanh(self.i2h(torch.cat((x_t, hidden), 1)))
        return self.h2o(hidden), hidden


def _zero(model, inputs):
    return torch.zeros(inputs.shape[1], model.i2h.out_features)


def _data(steps=8):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(steps, 2, 1, generator=gen), torch.randn(steps, 2, 1, generator=gen)


def sliding_window(model, inputs, targets, optimizer, reach):  # a right answer
    starts = [_zero(model, inputs)]
    for t in range(len(inputs)):
        first = max(0, t + 1 - reach)
        hidden = starts[first]
        for i in range(first, t + 1):
            output, hidden = model(inputs[i], hidden)
        optimizer.zero_grad()
        torch.mean((output - targets[t]) ** 2).backward()
        optimizer.step()
        starts.append(hidden.detach())


def article_loop(model, inputs, targets, optimizer, reach):  # crashes: the in-place error
    hidden = _zero(model, inputs)
    for x_t, y_t in zip(inputs, targets, strict=True):
        optimizer.zero_grad()
        output, hidden = model(x_t, hidden)
        torch.mean((output - y_t) ** 2).backward(retain_graph=True)
        optimizer.step()


def detach_every_step(model, inputs, targets, optimizer, reach):  # runs, but reaches one step only
    hidden = _zero(model, inputs)
    for x_t, y_t in zip(inputs, targets, strict=True):
        output, hidden = model(x_t, hidden.detach())
        optimizer.zero_grad()
        torch.mean((output - y_t) ** 2).backward()
        optimizer.step()


def retained_without_update(model, inputs, targets, optimizer, reach):  # reaches back with retain_graph
    hidden = _zero(model, inputs)
    for x_t, y_t in zip(inputs, targets, strict=True):
        output, hidden = model(x_t, hidden)
        torch.mean((output - y_t) ** 2).backward(retain_graph=True)
    for _ in inputs:
        optimizer.step()


def one_update_per_window(model, inputs, targets, optimizer, reach):  # truncated BPTT: too few updates
    hidden = _zero(model, inputs)
    for start in range(0, len(inputs), reach):
        hidden, loss = hidden.detach(), 0
        for x_t, y_t in zip(inputs[start:start + reach], targets[start:start + reach], strict=True):
            output, hidden = model(x_t, hidden)
            loss = loss + torch.mean((output - y_t) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_calls_record_retain_graph_and_restore_autograd():
    original = torch.autograd.backward
    w = torch.ones(2, requires_grad=True)
    with backward_calls() as calls:
        (w * w).sum().backward(retain_graph=True)
        (w * 3).sum().backward()
        torch.autograd.backward((w * w).sum(), create_graph=True)
    assert calls == [BackwardCall(True, False), BackwardCall(False, False), BackwardCall(True, True)]
    assert torch.autograd.backward is original
    w.grad = None  # break the cycle create_graph made


def test_backward_calls_restore_autograd_after_an_error():
    original = torch.autograd.backward
    w = torch.ones(2, requires_grad=True)
    y = (w * w).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        with backward_calls() as calls:
            y.backward()
    assert len(calls) == 1 and torch.autograd.backward is original


def test_anomaly_report_names_the_node_and_the_learners_line():
    torch.manual_seed(0)
    model, (inputs, targets) = TinyCellModel(), _data(4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    report = anomaly_report(lambda: article_loop(model, inputs, targets, optimizer, 1))
    assert "modified by an inplace operation" in report.error
    assert report.failed_node == "AddmmBackward0"
    assert report.forward_lines[-1] == "hidden = torch.tanh(self.i2h(torch.cat((x_t, hidden), 1)))"
    assert not any("pytest" in line or "pluggy" in line for line in report.forward_lines)  # the caller's frames
    assert "backward node that failed: AddmmBackward0" in str(report)


def test_anomaly_report_without_an_error():
    report = anomaly_report(lambda: (torch.ones(2, requires_grad=True) * 2).sum().backward())
    assert report == AnomalyReport(None, None, ())
    assert "without an error" in str(report)
    assert not torch.is_anomaly_enabled()


def test_anomaly_report_refuses_a_non_callable_and_names_other_bugs():
    with pytest.raises(LabInputError, match="callable"):
        anomaly_report(3)
    with pytest.raises(LabInputError, match="fn failed before autograd could: KeyError"):
        anomaly_report(lambda: {}["missing"])
    assert not torch.is_anomaly_enabled()


def test_sliding_window_check_accepts_a_right_answer_and_waits_for_one():
    inputs, targets = _data(8)
    result = check_sliding_window_training(sliding_window, TinyCellModel, inputs, targets, reach=3)
    assert result.passed, result
    assert "21 in total" in result.message  # 1 + 2 + 3 * 6
    waiting = check_sliding_window_training(None, TinyCellModel, inputs, targets, reach=3)
    assert not waiting.passed and not waiting.answered and "⏳" in repr(waiting)


@pytest.mark.parametrize("wrong, says", [
    (article_loop, "raised RuntimeError: one of the variables needed for gradient computation"),
    (detach_every_step, "walked 8 steps in total; a reach of 3 over 8 steps walks 21"),
    (retained_without_update, "retain_graph=True"),
    (one_update_per_window, "optimizer.step() ran 3 times"),
    (lambda model, inputs, targets, optimizer, reach: None, "optimizer.step() ran 0 times"),
    (lambda model, inputs, targets, optimizer: None, "raised TypeError"),
    (3, "expected a function"),
])
def test_sliding_window_check_catches_wrong_answers(wrong, says):
    inputs, targets = _data(8)
    result = check_sliding_window_training(wrong, TinyCellModel, inputs, targets, reach=3)
    assert not result.passed and result.answered is True
    assert says in result.message, result.message


def test_sliding_window_check_catches_updates_that_change_nothing():
    def zeroed_before_the_step(model, inputs, targets, optimizer, reach):
        hidden = _zero(model, inputs)
        for x_t, y_t in zip(inputs, targets, strict=True):
            output, hidden = model(x_t, hidden.detach())
            torch.mean((output - y_t) ** 2).backward()
            optimizer.zero_grad()
            optimizer.step()

    result = check_sliding_window_training(zeroed_before_the_step, TinyCellModel, *_data(4), reach=1)
    assert not result.passed and "did not change" in result.message


def test_sliding_window_check_refuses_bad_settings():
    inputs, targets = _data(4)
    with pytest.raises(LabInputError, match="reach"):
        check_sliding_window_training(sliding_window, TinyCellModel, inputs, targets, reach=0)
    with pytest.raises(LabInputError, match="make_model"):
        check_sliding_window_training(sliding_window, TinyCellModel(), inputs, targets, reach=2)
    with pytest.raises(LabInputError, match="3-D"):
        check_sliding_window_training(sliding_window, TinyCellModel, inputs[0], targets, reach=2)
    with pytest.raises(LabInputError, match="same number of time steps"):
        check_sliding_window_training(sliding_window, TinyCellModel, inputs, targets[:2], reach=2)


def no_zero_grad(model, inputs, targets, optimizer, reach):  # right structure, but gradients pile up
    starts = [_zero(model, inputs)]
    for t in range(len(inputs)):
        first = max(0, t + 1 - reach)
        hidden = starts[first]
        for i in range(first, t + 1):
            output, hidden = model(inputs[i], hidden)
        torch.mean((output - targets[t]) ** 2).backward()
        optimizer.step()
        starts.append(hidden.detach())


def window_sum_loss(model, inputs, targets, optimizer, reach):  # right structure, loss summed over the window
    starts = [_zero(model, inputs)]
    for t in range(len(inputs)):
        first = max(0, t + 1 - reach)
        hidden, loss = starts[first], 0
        for i in range(first, t + 1):
            output, hidden = model(inputs[i], hidden)
            loss = loss + torch.mean((output - targets[i]) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        starts.append(hidden.detach())


@pytest.mark.parametrize("wrong", [no_zero_grad, window_sum_loss])
def test_sliding_window_check_compares_weights_with_a_reference(wrong):
    inputs, targets = _data(8)
    torch.manual_seed(0)
    unchecked = check_sliding_window_training(wrong, TinyCellModel, inputs, targets, reach=3)
    assert unchecked.passed  # the counts alone cannot see these mistakes
    result = check_sliding_window_training(wrong, TinyCellModel, inputs, targets, reach=3, init_hidden=_zero)
    assert not result.passed and "final weights differ from the reference run" in result.message, result
    right = check_sliding_window_training(sliding_window, TinyCellModel, inputs, targets, reach=3, init_hidden=_zero)
    assert right.passed, right


def test_sliding_window_check_refuses_a_bad_init_hidden():
    with pytest.raises(LabInputError, match="init_hidden"):
        check_sliding_window_training(sliding_window, TinyCellModel, *_data(4), reach=2, init_hidden=3)
