import pytest
import torch

from helpers.memory import record_saved_tensors, saved_for_backward
from helpers.validation import LabInputError


def test_counts_each_saved_tensor_and_storage_bytes():
    x = torch.randn(4, 8, requires_grad=True)
    with record_saved_tensors() as saved:
        y = torch.tanh(x)  # tanh saves its output: one float32 4×8 tensor
    assert saved.count == 1 and saved.storages == 1 and saved.bytes == 4 * 8 * 4
    y.sum().backward()  # the recorded graph is still usable


def test_shared_storage_counted_once():
    w = torch.randn(16, 16, requires_grad=True)
    x = torch.randn(2, 16)
    with record_saved_tensors() as saved:
        for _ in range(5):
            (x @ w).sum()  # each product saves x (for w's gradient): same storage five times
    assert saved.count == 5 and saved.storages == 1 and saved.bytes == x.numel() * 4


def test_matches_what_backward_needs_for_linear():
    layer = torch.nn.Linear(8, 4)
    without_input_grad = saved_for_backward(layer, torch.randn(3, 8))
    with_input_grad = saved_for_backward(layer, torch.randn(3, 8, requires_grad=True))
    # grad of the weight needs the input; grad of the input also needs the weight
    assert without_input_grad.count == 1 and with_input_grad.count == 2
    assert with_input_grad.bytes == without_input_grad.bytes + 8 * 4 * 4


def test_nothing_saved_without_grad():
    x = torch.randn(3, requires_grad=False)
    assert saved_for_backward(torch.tanh, x).count == 0


def test_bad_input():
    with pytest.raises(LabInputError, match="callable"):
        saved_for_backward(3)
    with torch.no_grad(), pytest.raises(LabInputError, match="no_grad"):
        saved_for_backward(torch.tanh, torch.ones(2))
