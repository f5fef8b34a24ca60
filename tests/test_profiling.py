import pytest
import torch
from torch.utils.checkpoint import checkpoint

from helpers.exercises import check_raises
from helpers.profiling import OpCount, count_calls, describe_gemms, dispatch_counts, gemm_counts, profile_ops
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


# --- dispatch_counts: operators counted by a dispatch mode, backward and recomputation included ---

def _rnn_loss(cell, xs, h):
    for x_t in xs:
        h = cell(x_t, h)
    return h.sum()


def test_counts_forward_and_backward_operators():
    w = torch.ones(4, requires_grad=True)
    counts = dispatch_counts(lambda: (torch.tanh(w) * 3).sum().backward())
    assert counts["aten::tanh"] == 1 and counts["aten::tanh_backward"] == 1 and counts["aten::sum"] == 1


def test_backward_walks_each_recurrent_step_once():
    torch.manual_seed(0)
    cell, xs = torch.nn.RNNCell(2, 3), torch.randn(5, 4, 2)
    counts = dispatch_counts(lambda: _rnn_loss(cell, xs, torch.zeros(4, 3)).backward())
    assert counts["aten::tanh"] == 5 and counts["aten::tanh_backward"] == 5


def test_checkpointing_shows_as_a_second_forward():
    torch.manual_seed(0)
    cell, xs = torch.nn.RNNCell(2, 3), torch.randn(6, 4, 2)
    counts = dispatch_counts(lambda: checkpoint(_rnn_loss, cell, xs, torch.zeros(4, 3), use_reentrant=False).backward())
    assert counts["aten::tanh"] == 12 and counts["aten::tanh_backward"] == 6


def test_passes_arguments_and_counts_nothing_for_pure_python():
    assert dispatch_counts(lambda a, b=0: a + b, 1, b=2) == {}


def test_not_callable_is_explained():
    with pytest.raises(LabInputError, match="fn must be a function"):
        dispatch_counts(42)


def test_a_failing_function_becomes_one_lab_input_error():
    def broken():
        return torch.ones(2) @ torch.ones(3)

    with pytest.raises(LabInputError, match="dispatch_counts runs.*RuntimeError"):
        dispatch_counts(broken)
