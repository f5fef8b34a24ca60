"""Tests for helpers.allocations, checked against sizes known from the tensors' shapes."""
import pytest
import torch
from torch import nn

from helpers.allocations import allocations_of, record_allocations
from helpers.validation import LabInputError

FLOAT = 4


def test_a_new_tensor_counts_its_bytes_once():
    with record_allocations() as seen:
        kept = torch.zeros(3, 100)
    assert (seen.count, seen.bytes, seen.peak_bytes, seen.live_bytes) == (1, 1200, 1200, 1200)
    del kept
    assert seen.live_bytes == 0 and seen.peak_bytes == 1200


def test_views_and_in_place_operators_allocate_nothing():
    x = torch.ones(10, 10)
    with record_allocations() as seen:
        x.view(100)
        x[:, 3]
        x.t()
        x.add_(1)
        x.unbind(0)
    assert seen.count == 0 and seen.bytes == 0 and seen.peak_bytes == 0


def test_freed_tensors_leave_the_peak_and_count_in_the_total():
    def churn():
        for _ in range(5):
            torch.ones(250) * 2          # two 1000-byte tensors alive at once, then both freed

    seen = allocations_of(churn)
    assert seen.count == 10 and seen.bytes == 10_000
    assert seen.peak_bytes == 2000 and seen.live_bytes == 0


def test_forward_and_backward_allocations_are_seen():
    layer = nn.Linear(8, 4)
    x = torch.randn(16, 8, requires_grad=True)
    with record_allocations() as forward:
        loss = layer(x).sum()
    with record_allocations() as backward:
        loss.backward()
    assert forward.count == 2 and forward.bytes == (16 * 4 + 1) * FLOAT    # the layer's output and the summed loss
    # the gradients of x, the weight and the bias are new tensors made by backward
    assert backward.at_least(x.numel() * FLOAT) >= 1 and backward.bytes >= (16 * 8 + 8 * 4 + 4) * FLOAT


def test_slice_writes_in_a_loop_allocate_full_size_buffers_in_backward():
    """The slice loop's backward makes a full-size buffer per step (what notebook 01 measures), unbind/stack does not."""
    batch, time, width = 2, 16, 4
    full = batch * time * width * FLOAT
    x = torch.randn(batch, time, width, requires_grad=True)

    def slice_loop():
        out = x.new_zeros(batch, time, width)
        for t in range(time):
            out[:, t] = x[:, t] * 2
        out.sum().backward()

    def unbind_stack():
        torch.stack([x_t * 2 for x_t in x.unbind(1)], dim=1).sum().backward()

    assert allocations_of(slice_loop).at_least(full) >= 2 * time
    assert allocations_of(unbind_stack).at_least(full) <= 3


def test_bad_input_is_explained():
    with pytest.raises(LabInputError, match="lambda"):
        allocations_of(3)


def test_a_failing_function_is_reported_with_its_error():
    def broken(x):
        return x @ torch.ones(3, 3)                # (2, 4) @ (3, 3): shapes do not match

    with pytest.raises(LabInputError, match="allocations_of's fn failed"):
        allocations_of(broken, torch.ones(2, 4))
