"""Property-based tests of the exercise checks (hypothesis): over dtypes, containers and shapes, a check never
passes a wrong answer and never fails a right one."""
import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis (the test extra)")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from helpers.exercises import check_close, check_equal  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)  # derandomized: the same cases every run
REAL_DTYPES = [np.float32, np.float64, np.int32, np.int64]
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
finite = {"allow_nan": False, "allow_infinity": False, "min_value": -1e6, "max_value": 1e6}


def _arrays(dtype):
    elements = st.floats(width=32 if dtype == np.float32 else 64, **finite) if np.dtype(dtype).kind == "f" \
        else st.integers(-1000, 1000)
    return hnp.arrays(dtype, shapes, elements=elements)


real_arrays = st.sampled_from(REAL_DTYPES).flatmap(_arrays)
CONTAINERS = {
    "tensor": torch.from_numpy,
    "numpy": lambda a: a,
    "nested list": lambda a: a.tolist(),
    "tensor in float64": lambda a: torch.from_numpy(a).double(),
}


@SETTINGS
@given(values=real_arrays, answer_kind=st.sampled_from(sorted(CONTAINERS)),
       expected_kind=st.sampled_from(sorted(CONTAINERS)))
def test_check_close_passes_the_same_values_in_any_container(values, answer_kind, expected_kind):
    result = check_close(CONTAINERS[answer_kind](values.copy()), CONTAINERS[expected_kind](values.copy()))
    assert result.passed, result


@SETTINGS
@given(values=real_arrays, data=st.data())
def test_check_close_fails_one_value_moved_past_the_tolerance(values, data):
    wrong = values.astype(np.float64)
    index = tuple(data.draw(st.integers(0, side - 1)) for side in wrong.shape)
    atol, rtol = 1e-6, 1e-5
    wrong[index] += data.draw(st.sampled_from([1, -1])) * (10 * (atol + rtol * abs(wrong[index])) + 1e-3)
    for answer in (torch.from_numpy(wrong), wrong.tolist(), wrong):
        result = check_close(answer, torch.from_numpy(values.astype(np.float64)))
        assert not result.passed and "1 of" in result.message, result


@SETTINGS
@given(real=st.floats(**finite), size=st.floats(min_value=1e-3, max_value=1e6), sign=st.sampled_from([1, -1]))
def test_check_close_never_drops_an_imaginary_part(real, size, sign):
    imaginary = sign * (10 * (1e-6 + 1e-5 * abs(real)) + size)  # beyond the default tolerance around `real`
    assert not check_close(complex(real, imaginary), real)
    assert not check_close(torch.tensor([complex(real, imaginary)]), [real])
    assert check_close(complex(real, 0.0), real) and check_close(torch.tensor([real], dtype=torch.complex128), [real])


@SETTINGS
@given(values=real_arrays, extra=st.integers(1, 3))
def test_check_close_fails_a_wrong_shape(values, extra):
    longer = np.concatenate([values.reshape(-1), np.zeros(extra, values.dtype)])
    assert not check_close(torch.from_numpy(longer), torch.from_numpy(values))


@SETTINGS
@given(values=hnp.arrays(st.sampled_from([np.int32, np.int64, np.float64]), shapes,
                         elements=st.integers(-1000, 1000)), data=st.data())
def test_check_equal_agrees_with_exact_equality_for_arrays(values, data):
    assert check_equal(values.copy(), values.copy()).passed
    assert check_equal(torch.from_numpy(values.copy()), values.copy()).passed
    changed = values.copy()
    index = tuple(data.draw(st.integers(0, side - 1)) for side in changed.shape)
    changed[index] += 1
    assert not check_equal(changed, values).passed
    assert not check_equal(torch.from_numpy(changed), values).passed


plain = st.recursive(st.integers(-100, 100) | st.text(max_size=4) | st.booleans(),
                     lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3), max_leaves=6)


@SETTINGS
@given(expected=plain, answer=plain)
def test_check_equal_passes_exactly_the_equal_plain_values(expected, answer):
    def same(a, b):  # equality without bool == int (True is not the count 1)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return type(a) is type(b) and a == b

    if same(answer, expected):
        assert check_equal(answer, expected).passed
    if not (answer == expected):
        assert not check_equal(answer, expected).passed
