import pytest
import torch

from helpers import timing
from helpers.timing import TimingRecord
from helpers.validation import LabInputError


def _builders():
    def small(n, dev):
        x = torch.randn(n, device=dev, requires_grad=True)
        return lambda: x.tanh()

    def slow(n, dev):
        x = torch.randn(n, device=dev, requires_grad=True)
        return lambda: sum(x.tanh() for _ in range(20))

    return {"small": small, "slow": slow}


def test_records_cover_every_implementation_and_size():
    records = timing.time_implementations(_builders(), [16, 64], min_run_time=0.01, threads=1)
    assert {(r.implementation, r.size) for r in records} == {(i, s) for i in ("small", "slow") for s in (16, 64)}
    assert all(r.median_s > 0 and r.iqr_s >= 0 and r.runs >= 1 and r.threads == 1 for r in records)


def test_more_work_takes_longer_within_one_run(retry_timing):
    # 20 tanh calls (and 19 adds) against 1: about 20x idle; 2x leaves room for both cores being busy
    retry_timing(lambda: timing.speedups(timing.time_implementations(_builders(), [256], min_run_time=0.05,
                                                                     threads=1), "small"),
                 lambda ratios: ratios[("slow", 256, "forward")] > 2)


def test_forward_backward_mode_runs_backward():
    calls = []

    def builder(n, dev):
        x = torch.randn(n, requires_grad=True)

        def fn():
            calls.append(1)
            return x * 2

        fn.x = x
        builder.x = x
        return fn

    timing.time_implementations({"b": builder}, [4], mode="forward+backward", min_run_time=0.001, threads=1)
    assert builder.x.grad is not None and builder.x.grad[0] > 0


def test_threads_are_set_for_the_measurement():
    seen = []

    def builder(n, dev):
        return lambda: seen.append(torch.get_num_threads()) or torch.ones(1)

    timing.time_implementations({"t": builder}, [1], threads=1, min_run_time=0.001)
    assert set(seen) == {1}


def test_bad_arguments_are_explained():
    with pytest.raises(LabInputError, match="'forward', 'forward\\+backward'"):
        timing.time_implementations(_builders(), [4], mode="backward")
    with pytest.raises(LabInputError):
        timing.time_implementations({}, [4])
    with pytest.raises(LabInputError):
        timing.time_implementations(_builders(), [0])
    with pytest.raises(LabInputError, match="tensor"):
        timing.time_implementations({"x": lambda n, d: (lambda: "text")}, [1], mode="forward+backward")


def test_slope_fit_recovers_exponents():
    sizes = [8, 16, 32, 64]
    assert timing.fit_loglog_slope(sizes, list(sizes)) == pytest.approx(1.0)
    assert timing.fit_loglog_slope(sizes, [3 * s * s for s in sizes]) == pytest.approx(2.0)
    with pytest.raises(LabInputError):
        timing.fit_loglog_slope([1], [1])
    with pytest.raises(LabInputError):
        timing.fit_loglog_slope([1, 2], [0, 1])


def _rec(impl, size, t):
    return TimingRecord(impl, size, "forward", t, 0.0, 5, 2, "cpu")


def test_speedups_and_table():
    records = [_rec("a", 1, 3e-3), _rec("b", 1, 1e-3), _rec("a", 2, 8e-3), _rec("b", 2, 2e-3)]
    ratios = timing.speedups(records, "b")
    assert ratios[("a", 1, "forward")] == pytest.approx(3) and ratios[("a", 2, "forward")] == pytest.approx(4)
    table = timing.ratio_table(records, "b", size_name="T")
    assert "T" in table.splitlines()[0] and "4.00" in table
    with pytest.raises(LabInputError, match="baseline"):
        timing.speedups(records, "c")


def test_plot_is_loglog_with_units_and_slopes():
    records = [_rec("a", 1, 1e-3), _rec("a", 2, 4e-3), _rec("a", 4, 16e-3)]
    ax = timing.plot_timings(records, size_label="sequence length T")
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "sequence length T" and "ms" in ax.get_ylabel()
    assert "slope 2.00" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(LabInputError):
        timing.plot_timings([])


def test_cuda_refused_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LabInputError, match="CUDA"):
        timing.time_implementations(_builders(), [4], device="cuda")


def test_plot_labels_the_measured_sizes_only():
    records = [_rec("a", 8, 1e-3), _rec("a", 64, 4e-3), _rec("a", 512, 16e-3)]
    ax = timing.plot_timings(records)
    assert list(ax.get_xticks()) == [8, 64, 512]
    assert all(label.get_text() == "" for label in ax.get_xaxis().get_minorticklabels())
    assert "2 threads" in ax.get_title()


def test_interleaved_records_label_the_mode_and_count_rounds():
    calls = []

    def step():
        calls.append(1)
        return torch.ones(8).sum()

    records = timing.interleaved_records({"a": step, "b": lambda: torch.ones(8).sum()}, size=8,
                                         mode="forward+backward", rounds=3, min_run_time=0.005)
    assert [(r.implementation, r.size, r.mode, r.runs, r.threads, r.device) for r in records] == [
        ("a", 8, "forward+backward", 3, 1, "cpu"), ("b", 8, "forward+backward", 3, 1, "cpu")]
    assert all(r.median_s > 0 and r.iqr_s >= 0 for r in records)
    assert len(calls) >= 6  # each round warms up and measures


def test_interleaved_records_rank_more_work_slower(retry_timing):
    records = retry_timing(
        lambda: timing.interleaved_records({"small": lambda: torch.ones(64).tanh(),
                                            "large": lambda: sum(torch.ones(64).tanh() for _ in range(50))},
                                           size=64, mode="forward", rounds=3, min_run_time=0.01),
        lambda rs: rs[1].median_s > 5 * rs[0].median_s)
    assert records[1].implementation == "large"


def test_interleaved_records_refuse_bad_input():
    with pytest.raises(LabInputError, match="mode"):
        timing.interleaved_records({"a": lambda: None}, size=8, mode="backward")
    with pytest.raises(LabInputError, match="empty"):
        timing.interleaved_records({}, size=8, mode="forward")
    with pytest.raises(LabInputError, match="callable"):
        timing.interleaved_records({"a": 3}, size=8, mode="forward")
    with pytest.raises(LabInputError, match="size"):
        timing.interleaved_records({"a": lambda: None}, size=0, mode="forward")


def test_interleaved_sweep_gives_medians_over_rounds_for_every_point(retry_timing):
    records = retry_timing(  # 20 tanh calls against 1; measured 2.97 once with both cores busy, hence 2 and retries
        lambda: timing.interleaved_sweep(_builders(), [16, 64], mode="forward+backward", rounds=3, min_run_time=0.005),
        lambda rs: timing.speedups(rs, "small")[("slow", 64, "forward+backward")] > 2)
    assert {(r.implementation, r.size) for r in records} == {(i, s) for i in ("small", "slow") for s in (16, 64)}
    assert all(r.runs == 3 and r.threads == 1 and r.mode == "forward+backward" and r.iqr_s >= 0 for r in records)


def test_interleaved_sweep_times_each_point_once_per_round():
    calls = {"a": 0, "b": 0}

    def counting(name):
        def builder(n, dev):
            def fn():
                calls[name] += 1
                return torch.ones(n)
            return fn
        return builder

    timing.interleaved_sweep({"a": counting("a"), "b": counting("b")}, [4], rounds=4, min_run_time=0.001)
    assert calls["a"] >= 8 and calls["b"] >= 8   # per round: a warm-up and at least one measured run


@pytest.mark.parametrize("kwargs, match", [({"builders": {}}, "empty"), ({"rounds": 0}, "rounds"),
                                           ({"min_run_time": -1}, "min_run_time"), ({"mode": "train"}, "mode"),
                                           ({"builders": {"a": 3}}, "builder"), ({"sizes": [0]}, "sizes"),
                                           ({"rounds": 700, "min_run_time": 1}, "limit")])
def test_interleaved_sweep_bad_arguments(kwargs, match):
    arguments = {"builders": _builders(), "sizes": [4], **kwargs}
    with pytest.raises(LabInputError, match=match):
        timing.interleaved_sweep(**arguments)


def test_sizes_may_come_from_numpy_and_slopes_from_arrays():
    import numpy as np

    records = timing.time_implementations(_builders(), np.array([8, 16]), min_run_time=0.001, threads=1)
    assert [r.size for r in records if r.implementation == "small"] == [8, 16]
    assert all(type(r.size) is int for r in records)
    assert timing.fit_loglog_slope(np.array([1, 2, 4]), np.array([2.0, 4.0, 8.0])) == pytest.approx(1.0)


def test_the_longest_allowed_measurement_is_accepted_but_not_beyond():
    with pytest.raises(LabInputError, match=r"in \(0, 60\] seconds; got 60.5"):
        timing.time_callable(lambda: torch.ones(1), min_run_time=60.5)
    with pytest.raises(LabInputError, match="at least 601 s"):  # 601 rounds × 1 s, refused before any timing
        timing.interleaved_medians({"a": lambda: torch.ones(1)}, rounds=601, min_run_time=1)
    with pytest.raises(LabInputError, match="at least 640 s"):  # 2 builders × 32 sizes × 10 s
        timing.time_implementations(_builders(), list(range(1, 33)), min_run_time=10)
