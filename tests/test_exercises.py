import torch

from helpers.exercises import check_close, check_equal, check_raises


def test_right_answers_pass():
    assert check_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-8]))
    assert check_close(3.0, 3.0) and check_equal(12, 12)
    assert repr(check_equal(12, 12, "x.grad")).startswith("✅")


def test_placeholder_means_not_answered_yet():
    for placeholder in (None, ...):
        result = check_close(placeholder, torch.ones(2), "h")
        assert not result and not result.answered and repr(result).startswith("⏳")
    assert not check_equal(None, 1).answered


def test_wrong_values_report_where_and_how_much():
    result = check_close(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.5]]))
    assert not result and "1 of 4" in result.message and "(1, 1)" in result.message and "0.5" in result.message


def test_shape_mismatch_is_reported_before_values():
    result = check_close(torch.ones(2, 3), torch.ones(3, 2))
    assert not result and "shape (2, 3) but expected (3, 2)" in result.message


def test_sequences_are_checked_item_by_item():
    good = (torch.ones(2), torch.zeros(2))
    assert check_close(good, good)
    result = check_close((torch.ones(2), torch.ones(2)), good, "(h, c)")
    assert not result and result.message.startswith("item 1")
    assert not check_close(torch.ones(2), good)


def test_check_equal_gives_the_ratio_for_numbers():
    result = check_equal(4, 12)
    assert not result and "0.333×" in result.message


def test_check_raises():
    assert check_raises(lambda: [][1], IndexError, "index")  # noqa: PLE0643 (the IndexError is the point)
    wrong_type = check_raises(lambda: [][1], KeyError)  # noqa: PLE0643 (the IndexError is the point)
    assert not wrong_type and "IndexError" in wrong_type.message
    assert not check_raises(lambda: None, ValueError)
    assert not check_raises(lambda: 1 / 0, ZeroDivisionError, match="modulo")
    assert not check_raises("not callable")


def test_unusual_answers_fail_the_check_instead_of_raising():
    assert not check_equal(torch.tensor([12.0, 12.0]), 12)  # several values cannot equal one number
    assert "shape (2,)" in check_equal(torch.tensor([12.0, 12.0]), 12).message
    assert check_equal(torch.tensor(12.0), 12)  # one value equal to it is right
    assert not check_close(torch.tensor([float("nan")]), torch.tensor([1.0]))  # a NaN answer is wrong
    assert not check_close("text", 1.0) and not check_close(object(), 1.0)


def test_a_sequence_of_tensors_is_checked_item_by_item_without_warnings(recwarn):
    import warnings

    warnings.simplefilter("always")
    expected = (torch.randn(3, 7, 10, requires_grad=True) * 1, torch.randn(3, 10))
    assert check_close((expected[0].detach(), expected[1]), expected)
    assert not check_close(None, expected).answered
    assert [str(w.message) for w in recwarn] == []  # a stored notebook cell would show it as stderr
