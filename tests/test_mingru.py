"""The log-space scan must give the step loop's states and gradients, at every length, including 1 and 2."""
import pytest
import torch

from helpers.exercises import check_raises
from helpers.mingru import (SCAN, STEP_LOOP, MinGRU, agreement, float32_errors, g, log_g, mingru_builders, scan_log_space,
                            speedups_by_length)
from helpers.timing import TimingRecord, time_implementations
from helpers.validation import LabInputError


def _loop(log_a, log_b, h0=None):
    a, b = log_a.exp(), log_b.exp()
    h = torch.zeros_like(a[:, 0]) if h0 is None else h0
    states = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, 1)


@pytest.mark.parametrize("length", [1, 2, 3, 17, 64])
@pytest.mark.parametrize("with_h0", [False, True])
def test_scan_equals_the_recurrence_in_float64(length, with_h0):
    gen = torch.Generator().manual_seed(length)
    log_a = -torch.rand(2, length, 3, generator=gen, dtype=torch.float64) * 2
    log_b = torch.randn(2, length, 3, generator=gen, dtype=torch.float64)
    h0 = torch.rand(2, 3, generator=gen, dtype=torch.float64) + 0.1 if with_h0 else None
    got = scan_log_space(log_a, log_b, None if h0 is None else h0.log())
    want = _loop(log_a, log_b, h0)
    assert torch.allclose(got, want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("batch,length,inp,hidden", [(1, 1, 1, 1), (3, 2, 5, 7), (2, 33, 3, 5), (1, 257, 2, 3)])
def test_model_scan_and_loop_agree_with_gradients(batch, length, inp, hidden):
    torch.manual_seed(length)
    model = MinGRU(inp, hidden).double()
    x = torch.randn(batch, length, inp, dtype=torch.float64)
    diffs = agreement(model, x)
    assert set(diffs) == {"output", "grad x", "grad linear.weight", "grad linear.bias"}
    # log-space rounding grows with |log A_T| (about T): ~1e-14 per step, relative to the largest entry
    tol = 1e-14 * (10 + 10 * length)
    assert max(diffs.values()) < tol, diffs
    h0 = g(torch.randn(batch, hidden, dtype=torch.float64))
    assert max(agreement(model, x, h0).values()) < tol


def test_float32_scan_is_less_accurate_than_the_loop_at_long_lengths():
    torch.manual_seed(0)
    model = MinGRU(4, 8)
    x = torch.randn(2, 1024, 4)
    errors = float32_errors(model, x)
    assert errors["scan"]["output"] < 1e-3 and max(errors["sequential"].values()) < 1e-4, errors
    # log-space sums of size ~T cancel in float32; the loop has no such cancellation
    assert max(errors["scan"].values()) > 10 * max(errors["sequential"].values()), errors
    scan, h_last = model(x)
    assert torch.equal(scan[:, -1], h_last) and bool((scan > 0).all())


def test_agreement_detects_a_different_model():
    torch.manual_seed(0)
    model = MinGRU(2, 3).double()
    x = torch.randn(1, 6, 2, dtype=torch.float64)
    scan, _ = model(x, mode="scan")
    with torch.no_grad():
        model.linear.bias[0] += 1.0
    loop, _ = model(x, mode="sequential")
    assert (scan - loop).abs().max() > 1e-3


def test_g_and_log_g():
    v = torch.linspace(-30, 30, 61, dtype=torch.float64)
    assert bool((g(v) > 0).all())
    assert torch.allclose(log_g(v), g(v).log(), rtol=1e-12)
    assert g(torch.tensor([2.0])).item() == 2.5


def test_bad_input_is_explained():
    model = MinGRU(3, 4)
    assert check_raises(lambda: model(torch.randn(5, 3)), LabInputError, match="3-D")
    assert check_raises(lambda: model(torch.randn(2, 5, 4)), LabInputError, match="(batch, time >= 1, 3)")
    assert check_raises(lambda: model(torch.randn(2, 5, 3), mode="parallel"), LabInputError, match="mode")
    assert check_raises(lambda: model(torch.randn(2, 5, 3), h0=torch.zeros(2, 4)), LabInputError, match="positive")
    assert check_raises(lambda: model(torch.randn(2, 5, 3), h0=torch.ones(3, 4)), LabInputError, match="h0")
    assert check_raises(lambda: scan_log_space(torch.zeros(1, 2, 3), torch.zeros(1, 3, 3)), LabInputError,
                        match="same shape")
    assert check_raises(lambda: MinGRU(3, 0), LabInputError, match="hidden_size")


def test_scan_speedup_grows_with_length(retry_timing):
    def measure():
        recs = time_implementations(mingru_builders(2, 4, 4), [8, 512], threads=1, min_run_time=0.02, progress=False)
        return recs, speedups_by_length(recs)

    recs, _ = retry_timing(measure, lambda m: m[1][(512, "forward")] > 2 * m[1][(8, "forward")])
    assert check_raises(lambda: speedups_by_length(recs[:1]), LabInputError, match="both")


def test_builders_give_equal_outputs():
    builders = mingru_builders(2, 3, 4)
    loop = builders[STEP_LOOP](9, torch.device("cpu"))()[0]
    scan = builders[SCAN](9, torch.device("cpu"))()[0]
    assert torch.allclose(loop, scan, rtol=1e-4, atol=1e-6)
    assert speedups_by_length([TimingRecord(STEP_LOOP, 4, "forward", 2.0, 0, 1, 1, "cpu"),
                               TimingRecord(SCAN, 4, "forward", 0.5, 0, 1, 1, "cpu")]) == {(4, "forward"): 4.0}


def test_scan_primitives_are_timeable():
    from helpers.mingru import scan_primitive_builders

    builders = scan_primitive_builders(2, 3)
    x_cumsum = builders["cumsum over T"](4, torch.device("cpu"))()
    assert x_cumsum.shape == (2, 4, 3)
    assert check_raises(lambda: scan_primitive_builders(0, 3), LabInputError, match="batch")
