import pytest
import torch

from helpers.validation import (LabInputError, require_choice, require_positive_int, require_scalar_loss,
                                require_tensor)


def test_require_tensor_accepts_right_rank():
    x = torch.zeros(2, 3, 4)
    assert require_tensor(x, "x", ndim=3, layout="(batch, time, features)") is x


def test_require_tensor_names_expected_layout_and_got_shape():
    with pytest.raises(LabInputError, match=r"3-D tensor \(batch, time, features\); got shape \(4, 5\)"):
        require_tensor(torch.zeros(4, 5), "x", ndim=3, layout="(batch, time, features)")


def test_require_tensor_rejects_non_tensors_with_a_fix():
    with pytest.raises(LabInputError, match="torch.as_tensor"):
        require_tensor([1, 2], "x")


def test_non_scalar_loss_says_to_reduce():
    with pytest.raises(LabInputError, match=r"scalar.*\.sum\(\)"):
        require_scalar_loss(torch.ones(3, requires_grad=True) * 2)


def test_loss_without_graph_explains_no_grad():
    with pytest.raises(LabInputError, match="no_grad"):
        require_scalar_loss(torch.tensor(1.0))


def test_positive_int_bounds():
    assert require_positive_int(3, "n", maximum=3) == 3
    for bad in (0, -1, 2.5, True):
        with pytest.raises(LabInputError):
            require_positive_int(bad, "n")
    with pytest.raises(LabInputError, match="limit of 3"):
        require_positive_int(4, "n", maximum=3)


def test_choice():
    assert require_choice("a", "mode", ["a", "b"]) == "a"
    with pytest.raises(LabInputError, match="'a', 'b'"):
        require_choice("c", "mode", ["a", "b"])
