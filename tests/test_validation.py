import pytest
import torch

from helpers.validation import LabInputError, require_choice, require_positive_int, require_scalar_loss, require_tensor


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


def test_positive_int_accepts_numpy_integers_and_names_the_reason():
    import numpy as np

    value = require_positive_int(np.int64(5), "n")
    assert value == 5 and type(value) is int
    with pytest.raises(LabInputError, match=r"limit of 308 \(the length of the data\)"):
        require_positive_int(400, "length", maximum=308, reason="(the length of the data)")


def test_number_bounds_are_inclusive_or_exclusive_as_asked():
    from helpers.validation import require_number

    assert require_number(0, "atol", low=0) == 0.0
    with pytest.raises(LabInputError, match=r"in \(0, 60\] seconds"):
        require_number(0, "t", low=0, high=60, low_inclusive=False, unit="seconds")
    assert require_number(60, "t", low=0, high=60, low_inclusive=False) == 60.0
    for bad in (float("nan"), float("inf"), -float("inf"), "1", None, True):
        with pytest.raises(LabInputError):
            require_number(bad, "x")


def test_finite_passes_integers_and_finite_floats_only():
    from helpers.validation import require_finite

    assert require_finite(torch.arange(3), "i").dtype == torch.int64
    with pytest.raises(LabInputError, match="2 NaN or infinite value"):
        require_finite(torch.tensor([float("nan"), 1.0, -float("inf")]), "x")


def test_sizes_are_checked_in_order_without_truncation():
    import numpy as np

    from helpers.validation import require_sizes

    assert require_sizes((16, 64, 16), "T", maximum=64) == [16, 64, 16]
    assert require_sizes(np.geomspace(16, 64, 2), "T") == [16, 64] and require_sizes(range(1, 3), "T") == [1, 2]
    assert require_sizes(torch.tensor([8, 4]), "T") == [8, 4] and require_sizes(iter([3]), "T") == [3]
    with pytest.raises(LabInputError, match=r"T\[1\] must be a positive integer; got 2\.7"):
        require_sizes([4, 2.7], "T")
    with pytest.raises(LabInputError, match=r"T\[0\]=65 is above the limit of 64"):
        require_sizes([65], "T", maximum=64)


def test_choices_keep_order_and_file_returns_a_path(tmp_path):
    from helpers.validation import require_choices, require_file

    assert require_choices(iter(["GRU", "RNN", "GRU"]), "kinds", ["RNN", "GRU"]) == ["GRU", "RNN", "GRU"]
    data = tmp_path / "series.csv"
    data.write_text("1\n")
    assert require_file(str(data), "path") == data
    with pytest.raises(LabInputError, match="is a folder"):
        require_file(tmp_path, "path")


def test_describe_error_points_at_the_callers_line():
    from helpers.validation import describe_error

    def parse(text):
        return [int(part) for part in text.split(",")]

    try:
        parse("1,x")
    except ValueError as error:
        text = describe_error(error)
    assert text.startswith("ValueError: invalid literal") and "(in parse, test_validation.py line" in text
