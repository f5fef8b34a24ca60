import pytest
import torch
from torch.utils.checkpoint import checkpoint

from helpers.ops import count_ops
from helpers.validation import LabInputError


def _rnn_loss(cell, xs, h):
    for x_t in xs:
        h = cell(x_t, h)
    return h.sum()


def test_counts_forward_and_backward_operators():
    w = torch.ones(4, requires_grad=True)
    counts = count_ops(lambda: (torch.tanh(w) * 3).sum().backward())
    assert counts["tanh"] == 1 and counts["tanh_backward"] == 1 and counts["sum"] == 1


def test_backward_walks_each_recurrent_step_once():
    torch.manual_seed(0)
    cell, xs = torch.nn.RNNCell(2, 3), torch.randn(5, 4, 2)
    counts = count_ops(lambda: _rnn_loss(cell, xs, torch.zeros(4, 3)).backward())
    assert counts["tanh"] == 5 and counts["tanh_backward"] == 5


def test_checkpointing_shows_as_a_second_forward():
    torch.manual_seed(0)
    cell, xs = torch.nn.RNNCell(2, 3), torch.randn(6, 4, 2)
    counts = count_ops(lambda: checkpoint(_rnn_loss, cell, xs, torch.zeros(4, 3), use_reentrant=False).backward())
    assert counts["tanh"] == 12 and counts["tanh_backward"] == 6


def test_passes_arguments_and_counts_nothing_for_pure_python():
    assert count_ops(lambda a, b=0: a + b, 1, b=2) == {}


def test_not_callable_is_explained():
    with pytest.raises(LabInputError, match="fn must be a function"):
        count_ops(42)


def test_a_failing_function_becomes_one_lab_input_error():
    def broken():
        return torch.ones(2) @ torch.ones(3)

    with pytest.raises(LabInputError, match="count_ops runs.*RuntimeError"):
        count_ops(broken)
