import time

import torch

from helpers.exercises import check_raises
from helpers.timing import interleaved_cpu_medians
from helpers.validation import LabInputError


def test_cpu_time_leaves_out_time_the_thread_did_not_run(retry_timing):
    retry_timing(lambda: interleaved_cpu_medians({"sleep": lambda: time.sleep(0.004)}, rounds=3, min_run_time=0.001),
                 lambda medians: medians["sleep"] < 0.002)  # 4 ms of wall clock each, almost no CPU


def test_more_work_takes_more_cpu_time_and_threads_are_restored(retry_timing):
    before = torch.get_num_threads()
    x = torch.randn(256, 256)
    retry_timing(lambda: interleaved_cpu_medians({"one": lambda: x @ x, "eight": lambda: [x @ x for _ in range(8)]},
                                                 rounds=3),
                 lambda medians: medians["eight"] > 3 * medians["one"] > 0)  # about 8x; cache contention costs some
    assert torch.get_num_threads() == before


def test_every_callable_runs_once_to_warm_up_then_once_per_round_at_least():
    calls = []
    interleaved_cpu_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2,
                            min_run_time=1e-9)
    assert calls == ["a", "b", "a", "b", "a", "b"]


def test_bad_input_is_explained():
    assert check_raises(lambda: interleaved_cpu_medians({}), LabInputError, match="empty")
    assert check_raises(lambda: interleaved_cpu_medians({"x": 3}), LabInputError, match="callable")
    assert check_raises(lambda: interleaved_cpu_medians({"x": lambda: None}, rounds=0), LabInputError)
    assert check_raises(lambda: interleaved_cpu_medians({"x": lambda: None}, min_run_time=-1), LabInputError,
                        match="min_run_time")
    assert check_raises(lambda: interleaved_cpu_medians([lambda: None]), LabInputError, match="dict")
    assert check_raises(lambda: interleaved_cpu_medians({"x": lambda: None}, rounds=1000, min_run_time=60),
                        LabInputError)


def test_a_failing_function_is_reported_as_a_lab_input_error():
    def broken():
        return torch.ones(2) @ torch.ones(3)

    assert check_raises(lambda: interleaved_cpu_medians({"broken": broken}), LabInputError, match="broken")
