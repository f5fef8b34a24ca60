import copy

import pytest
import torch
from torch import nn

from helpers.gradients import FLOAT64_REFERENCE, compare_gradients, default_loss, max_abs_diff
from helpers.validation import LabInputError


class Twice(nn.Module):
    """Same parameters as nn.Linear, but applies the product as two half-products: same maths, other rounding."""

    def __init__(self, linear: nn.Linear, scale: float = 1.0):
        super().__init__()
        self.weight, self.bias, self.scale = linear.weight, linear.bias, scale

    def forward(self, x):
        half = x @ (self.weight.t() * 0.5)
        return (half + half) * self.scale + self.bias


def _pair(scale=1.0):
    torch.manual_seed(0)
    a = nn.Linear(5, 3)
    return a, Twice(copy.deepcopy(a), scale)


def test_identical_models_are_bitwise_equal():
    a, _ = _pair()
    result = compare_gradients({"a": a, "b": copy.deepcopy(a)}, torch.randn(4, 5))
    assert result.all_close and all(row.bitwise_equal for row in result.rows)
    assert {row.quantity for row in result.rows} == {"input", "weight", "bias"}


def test_detects_a_wrong_implementation_with_its_size():
    a, wrong = _pair(scale=1.01)
    result = compare_gradients({"ref": a, "wrong": wrong}, torch.randn(4, 5))
    assert not result.all_close
    row = result.row("wrong", "weight")
    assert not row.allclose and row.max_abs_diff > 1e-3 and row.max_rel_diff == pytest.approx(0.01, rel=0.05)
    assert result.row("wrong", "bias").bitwise_equal  # the bias path is untouched by the scale


def test_gradients_match_autograd_by_hand():
    a, _ = _pair()
    x = torch.randn(4, 5)
    result = compare_gradients({"a": a, "b": copy.deepcopy(a)}, x, loss_fn=lambda out: out.pow(2).sum())
    x_leaf = x.clone().requires_grad_()
    (a(x_leaf).pow(2).sum()).backward()
    expected = 2 * a(x) @ a.weight
    assert torch.allclose(x_leaf.grad, expected.detach(), atol=1e-6)
    assert result.all_close


def test_float64_reference_shows_float32_rounding_only():
    a, b = _pair()
    result = compare_gradients({"a": a, "b": b}, torch.randn(64, 5), float64_reference=True)
    assert result.baseline == FLOAT64_REFERENCE
    assert {row.implementation for row in result.rows} == {"a", "b"}
    assert 0 < result.max_abs_diff() < 1e-4  # float32 against float64: small but not zero


def test_float64_models_agree_to_1e_12():
    a, b = _pair()
    result = compare_gradients({"a": a.double(), "b": b.double()}, torch.randn(8, 5, dtype=torch.float64))
    assert result.max_abs_diff() < 1e-12


def test_tuple_outputs_and_multiple_inputs():
    torch.manual_seed(1)
    cell = nn.LSTMCell(3, 4)
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)

    class Wrapped(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.cell = cell

        def forward(self, x, h, c):
            return self.cell(x, (h, c))

    result = compare_gradients({"a": Wrapped(cell), "b": Wrapped(copy.deepcopy(cell))}, [x, h, c])
    assert {"input[0]", "input[1]", "input[2]", "cell.weight_ih"} <= {r.quantity for r in result.rows}
    assert result.all_close


def test_default_loss_weights_outputs_deterministically():
    out = torch.ones(3, 2)
    assert torch.equal(default_loss(out), default_loss(out.clone()))
    assert default_loss(out) != out.sum()


def test_mismatched_parameter_names_are_named():
    with pytest.raises(LabInputError, match=r"only in 'b': \['0.bias', '0.weight'\]"):
        compare_gradients({"a": nn.Linear(2, 2), "b": nn.Sequential(nn.Linear(2, 2))}, torch.ones(1, 2))


def test_non_scalar_loss_is_explained():
    with pytest.raises(LabInputError, match="loss_fn"):
        compare_gradients({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)}, torch.ones(1, 2), loss_fn=lambda out: out)


def test_needs_two_models_and_tensor_inputs():
    with pytest.raises(LabInputError):
        compare_gradients({"a": nn.Linear(2, 2)}, torch.ones(1, 2))
    with pytest.raises(LabInputError, match="torch.Tensor"):
        compare_gradients({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)}, [[1.0, 2.0]])


def test_table_and_plot():
    a, b = _pair()
    result = compare_gradients({"a": a, "b": b}, torch.randn(4, 5))
    text = str(result)
    assert "weight" in text and "allclose" in text and "baseline: a" in text
    ax = result.plot()
    assert ax.get_yscale() == "log" and ax.get_ylabel()
    with pytest.raises(LabInputError):
        result.row("b", "nothing")


def test_default_loss_is_the_same_function_in_float32_and_float64():
    out = torch.randn(4, 3)
    assert torch.allclose(default_loss(out).double(), default_loss(out.double()), atol=1e-5)


def test_max_abs_diff_of_tensors_and_nested_tuples():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert max_abs_diff(a, a.clone()) == 0.0
    assert max_abs_diff(a, torch.tensor([1.0, 2.5, 3.0])) == 0.5
    assert max_abs_diff((a, (a, torch.zeros(2))), (a, (a + 0.25, torch.zeros(2)))) == 0.25
    assert max_abs_diff(torch.ones(0), torch.ones(0)) == 0.0
    # computed in float64: a float32 difference below float32's resolution near 1 is still seen
    assert max_abs_diff(torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0 + 1e-12], dtype=torch.float64)) > 0


def test_max_abs_diff_refuses_different_shapes_and_structures():
    with pytest.raises(LabInputError, match=r"cannot compare shapes \(2,\) and \(3,\)"):
        max_abs_diff(torch.ones(2), torch.ones(3))
    with pytest.raises(LabInputError, match="lengths 1 and 2"):
        max_abs_diff((torch.ones(2),), (torch.ones(2), torch.ones(2)))
    with pytest.raises(LabInputError, match="same structure"):
        max_abs_diff(torch.ones(2), (torch.ones(2),))
