"""operator_counts / operator_calls (helpers.profiling): exact, and growing with a Python loop's length."""
import pytest
import torch

from helpers.profiling import operator_calls, operator_counts
from helpers.validation import LabInputError


def test_counts_each_operator_once_per_call():
    x = torch.ones(3)
    counts = operator_counts(lambda: x.add(1).mul(2).sum())
    assert (counts["aten::add"], counts["aten::mul"], counts["aten::sum"]) == (1, 1, 1)


def test_a_python_loop_scales_the_count_and_setup_is_excluded():
    x = torch.ones(3)

    def loop(n):
        y = x
        for _ in range(n):
            y = y + 1
        return y

    assert operator_counts(lambda: loop(8))["aten::add"] == 8
    assert operator_calls(lambda: loop(8)) == 2 * operator_calls(lambda: loop(4)) > 0


def test_prefix_filters_and_no_profiler_lines_reach_stderr(capfd):
    counts = operator_counts(lambda: torch.ones(2).add(1), prefix="aten::add")
    assert set(counts) == {"aten::add"}
    assert "profiler" not in capfd.readouterr().err


def test_bad_input_is_refused():
    with pytest.raises(LabInputError, match="zero-argument callable"):
        operator_counts(42)
    with pytest.raises(LabInputError, match="prefix must be a string"):
        operator_counts(lambda: None, prefix=None)
