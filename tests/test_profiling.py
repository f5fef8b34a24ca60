import pytest
import torch

from helpers.exercises import check_raises
from helpers.profiling import OpCount, count_calls, describe_gemms, gemm_counts, profile_ops
from helpers.validation import LabInputError


def _loop_of_products(x, w):
    return [torch.addmm(w[0, :1], x_t, w.T) for x_t in x.unbind(0)]


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_counts_one_matrix_multiply_per_step(steps):
    x, w = torch.randn(steps, 4, 2), torch.randn(3, 2)
    ops = profile_ops(lambda: _loop_of_products(x, w))
    assert count_calls(ops, "aten::addmm") == steps
    assert gemm_counts(ops) == {(4, 2, 3): steps}
    assert describe_gemms(ops) == f"{steps} matrix multiplies: {steps} × (4×2 @ 2×3)"


def test_prefixes_filter_and_empty_prefixes_keep_everything():
    x = torch.randn(4, 3)
    only_tanh = profile_ops(lambda: x.tanh().sum(), prefixes=("aten::tanh",))
    assert [op.name for op in only_tanh] == ["aten::tanh"]
    everything = {op.name for op in profile_ops(lambda: x.tanh().sum(), prefixes=())}
    assert {"aten::tanh", "aten::sum"} <= everything


def test_counts_do_not_include_the_warm_up_call():
    calls = []
    x = torch.randn(3)
    profile_ops(lambda: calls.append(x.exp()), prefixes=("aten::exp",))
    assert len(calls) == 2  # one warm-up outside the profile, one profiled
    assert count_calls(profile_ops(lambda: x.exp(), prefixes=("aten::exp",)), "aten::exp") == 1


def test_op_count_prints_name_shapes_and_count():
    assert str(OpCount("aten::mm", ((2, 3), (3, 1)), 4)) == "aten::mm on (2, 3) (3, 1) ×4"
    assert str(OpCount("kernel", (), 2)) == "kernel ×2"


def test_bad_input_is_explained():
    assert check_raises(lambda: profile_ops(42), LabInputError, match="callable")
    if not torch.cuda.is_available():
        assert check_raises(lambda: profile_ops(lambda: None, kernels=True), LabInputError, match="cuda")
    assert describe_gemms([]) == "0 matrix multiplies"
