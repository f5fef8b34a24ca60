import pytest
import torch

from helpers.memory import record_saved_tensors, saved_for_backward, track_live_saved
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


def test_live_tracker_sees_graphs_freed_by_backward_and_by_del():
    w = torch.ones(10, requires_grad=True)
    with track_live_saved() as held:
        a = (w.exp() * 2).sum()  # exp saves its 40-byte result
        b = w.sin().sum()  # sin saves its 40-byte input w
        both = held.live_bytes
        del b  # nothing refers to b's graph any more: freed
        one = held.live_bytes
        a.backward()
    assert both == 2 * one == 80 and held.live_bytes == 0 and held.live_tensors == 0 and held.peak_bytes == 80


def test_live_tracker_peak_is_what_is_held_at_once():
    w = torch.randn(4, 4, requires_grad=True)
    with track_live_saved(ignore=[w]) as held:
        for _ in range(3):
            (torch.randn(2, 4, requires_grad=True) @ w).tanh().sum().backward()
    assert held.peak_bytes == 2 * 2 * 4 * 4  # one iteration's input and tanh output, never three iterations' worth
    assert held.live_bytes == 0 and held.ignored_bytes == w.numel() * 4


def test_live_tracker_ignores_storages_alive_anyway():
    w = torch.ones(5, requires_grad=True)
    with track_live_saved(ignore=[w]) as held:
        c = (w * w).sum()  # saves w twice
        assert held.live_bytes == 0 and held.ignored_bytes == 20
    del c


def test_live_tracker_accepts_a_single_tensor_or_a_generator_to_ignore():
    layer = torch.nn.Linear(3, 3)
    x = torch.ones(2, 3, requires_grad=True)  # so the weight is saved too (for x's gradient)
    with track_live_saved(ignore=layer.parameters()) as by_generator:
        layer(x).sum()
    with track_live_saved(ignore=x) as by_tensor:
        layer(x).sum()
    assert by_generator.ignored_bytes == layer.weight.untyped_storage().nbytes()
    assert by_tensor.ignored_bytes == x.untyped_storage().nbytes()
