"""Self-checks for exercises: they say whether an answer is right and, if not, how it differs."""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import torch

from helpers.validation import LabInputError, require_number


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a self-check; truthy when the answer is right. Prints as one or two lines."""

    name: str
    passed: bool
    message: str
    answered: bool = True

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = "✅" if self.passed else ("⏳" if not self.answered else "❌")
        return f"{mark} {self.name}: {self.message}"


def _require_name(name: object) -> str:
    if not isinstance(name, str):
        raise LabInputError(f"name must be a string saying what is checked, e.g. 'x.grad'; got {type(name).__name__}.")
    return name


def _expected_tensor(expected: object, name: str) -> torch.Tensor:
    """The expected value as a tensor; a check whose expected value is unusable can never pass, so refuse it."""
    try:
        want = torch.as_tensor(expected)
    except Exception:
        raise LabInputError(f"expected for {name!r} must be a tensor, a number or a nested tuple of them; got "
                            f"{type(expected).__name__}.") from None
    if want.device.type == "meta":
        raise LabInputError(f"expected for {name!r} is a meta tensor, which holds no values to compare with.")
    if not (want.is_floating_point() or want.is_complex() or want.dtype in
            (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise LabInputError(f"expected for {name!r} has dtype {want.dtype}, which check_close cannot compare.")
    if (want.is_floating_point() or want.is_complex()) and not bool(torch.isfinite(want).all()):
        raise LabInputError(f"expected for {name!r} holds NaN or infinity, so no answer could ever match it; "
                            "compute the expected value from finite inputs.")
    return want


def _not_answered(name: str) -> CheckResult:
    return CheckResult(name, False, "not answered yet: replace the None / ... placeholder with your code and re-run.",
                       answered=False)


def check_close(answer: object, expected: object, name: str = "answer",
                atol: float = 1e-6, rtol: float = 1e-5) -> CheckResult:
    """Check a numeric answer (tensor, number or nested tuple) against the expected value.

    Tensors, NumPy arrays, numbers and nested lists of numbers holding the same values pass against each other
    (an expected ``[1.0, 2.0]`` accepts ``torch.tensor([1.0, 2.0])``); a sequence that is not one rectangular
    array, such as ``(out, (h, c))``, is checked item by item. Complex values are compared as complex numbers,
    so an imaginary part is never dropped.

    Args:
        answer: the learner's value; None or ``...`` means "not answered yet".
        expected: the correct value.
        name: what is being checked, for the message.
        atol, rtol: tolerances as in ``torch.allclose``.

    Returns:
        ``CheckResult``; on failure its message gives the shape/dtype mismatch or the largest
        difference and where it is.

    Raises:
        LabInputError: when the check itself is unusable (an expected value that is not numeric or holds
            NaN, an empty expected sequence, a tolerance that is not a finite number >= 0); a wrong answer
            is never raised, it fails the check.

    Example:
        >>> check_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))
        ❌ answer: 1 of 2 elements differ; largest |difference| 0.5 at index (1,) (got 2, expected 2.5)
    """
    name = _require_name(name)
    atol = require_number(atol, "atol", low=0)
    rtol = require_number(rtol, "rtol", low=0)
    if isinstance(expected, (tuple, list)) and not expected:
        raise LabInputError(f"expected for {name!r} is an empty sequence, so any empty answer would pass; give "
                            "the values the answer must match.")
    # A list of numbers is one array of values: a tensor answer is compared with it as a tensor. Only a
    # sequence that is not one rectangular array (e.g. (out, (h, c))) is compared item by item.
    itemwise = isinstance(expected, (tuple, list)) and (
        isinstance(answer, (tuple, list)) or _as_array(expected) is None)
    if not itemwise:
        want = _expected_tensor(expected, name)
    if answer is None or answer is Ellipsis:
        return _not_answered(name)
    if itemwise:
        if not isinstance(answer, (tuple, list)) or len(answer) != len(expected):
            return CheckResult(name, False, f"expected a sequence of {len(expected)} items; got {type(answer).__name__}"
                               + (f" of {len(answer)}" if isinstance(answer, (tuple, list)) else "") + ".")
        for i, (a, e) in enumerate(zip(answer, expected, strict=True)):
            part = check_close(a, e, f"{name}[{i}]", atol, rtol)
            if not part.passed:
                return CheckResult(name, False, f"item {i}: {part.message}")
        return CheckResult(name, True, f"correct (all {len(expected)} items within atol={atol:g}, rtol={rtol:g}).")
    got = _as_array(answer)
    if got is None:
        return CheckResult(name, False, f"expected a tensor or number; got {type(answer).__name__}.")
    if got.device.type == "meta":
        return CheckResult(name, False, "the answer is a meta tensor, which has a shape but no values; compute it on "
                           "the CPU or GPU.")
    if got.shape != want.shape:
        return CheckResult(name, False, f"shape {tuple(got.shape)} but expected {tuple(want.shape)}.")
    # complex128 whenever either side is complex: a float comparison would drop an imaginary part (1+5j ~ 1.0)
    wide = torch.complex128 if (got.is_complex() or want.is_complex()) else torch.float64
    got64, want64 = _dense(got).to(wide), _dense(want).to(wide)
    close = torch.isclose(got64, want64, atol=atol, rtol=rtol)
    if bool(close.all()):
        return CheckResult(name, True, f"correct (within atol={atol:g}, rtol={rtol:g}).")
    diff = (got64 - want64).abs()
    flat = int(diff.reshape(-1).argmax()) if diff.numel() else 0
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)) if diff.dim() else ()
    return CheckResult(name, False, f"{int((~close).sum())} of {close.numel()} elements differ; largest |difference| "
                       f"{float(diff.max()):.3g} at index {index} (got {_show(got64[index])}, "
                       f"expected {_show(want64[index])})")


def _show(value: torch.Tensor) -> str:
    number = value.item()
    return f"{number:.6g}" if not isinstance(number, complex) else f"{number.real:.6g}{number.imag:+.6g}j"


def _dense(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach()
    return (tensor.to_dense() if tensor.layout != torch.strided else tensor).cpu()


def _only_numbers(value: object) -> bool:
    """Whether a nested list/tuple holds plain numbers only (no tensors, arrays or other objects)."""
    if isinstance(value, (list, tuple)):
        return all(_only_numbers(item) for item in value)
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _as_array(value: object) -> torch.Tensor | None:
    """``value`` as a numeric tensor (tensors, NumPy arrays, numbers, nested lists of numbers), or None."""
    if isinstance(value, (str, bytes)) or value is None:
        return None
    if isinstance(value, (list, tuple)) and not _only_numbers(value):
        return None  # a sequence of tensors, e.g. (out, h): compared item by item, never merged into one
    try:
        with warnings.catch_warnings():  # converting is a probe here; its warnings are not the learner's business
            warnings.simplefilter("ignore")
            tensor = torch.as_tensor(value)
    except Exception:
        return None
    if tensor.dtype == torch.bool or not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype in
                                          (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        return None
    return tensor


def check_equal(answer: object, expected: object, name: str = "answer") -> CheckResult:
    """Check an exact answer (an int, a string, a shape, a bool, a NumPy array of integers).

    A tensor answer passes when it equals the expected value exactly (``torch.tensor(12) == 12``); arrays are
    equal when every element is; ``True`` does not count as ``1``. For tensors compared with a tolerance use
    ``check_close``.

    Raises:
        LabInputError: when ``expected`` is a tensor (use ``check_close``) or None.

    Example:
        >>> check_equal(12, 12, "x.grad")
        ✅ x.grad: correct (12).
    """
    name = _require_name(name)
    if isinstance(expected, torch.Tensor):
        raise LabInputError(f"expected for {name!r} is a tensor; check tensors with check_close (exact: atol=0, "
                            "rtol=0), or pass a plain value such as tuple(t.shape) or t.item().")
    if expected is None or expected is Ellipsis:
        raise LabInputError(f"expected for {name!r} is {expected!r}, the placeholder for 'not answered'; "
                            "give the right answer.")
    if answer is None or answer is Ellipsis:
        return _not_answered(name)
    equal = _exactly_equal(answer, expected)
    if equal:
        return CheckResult(name, True, f"correct ({expected!r}).")
    if isinstance(answer, torch.Tensor):
        return CheckResult(name, False, f"got a tensor of shape {tuple(answer.shape)}, expected {expected!r}.")
    hint = ""
    if (isinstance(answer, (int, float)) and isinstance(expected, (int, float)) and expected
            and not isinstance(answer, bool) and not isinstance(expected, bool)):
        hint = f" Your value is {answer / expected:.3g}× the expected one."
    return CheckResult(name, False, f"got {answer!r}, expected {expected!r}.{hint}")


def _exactly_equal(answer: object, expected: object) -> bool:
    """Exact equality that arrays answer as one verdict (NumPy's ``==`` gives an array, ``bool`` of it raises)."""
    if isinstance(answer, bool) != isinstance(expected, bool):
        return False  # True is not the count 1, nor 1 a yes
    if hasattr(answer, "shape") or hasattr(expected, "shape"):  # NumPy arrays and scalars, tensors
        import numpy as np

        try:
            got = answer.detach().cpu().numpy() if isinstance(answer, torch.Tensor) else np.asarray(answer)
            want = np.asarray(expected)
        except Exception:
            return False
        if got.dtype.kind in "OUSV" or want.dtype.kind in "OUSV":  # objects or text: compare as Python values
            return got.shape == want.shape and got.tolist() == want.tolist()
        return got.size == want.size and (got.shape == want.shape or want.ndim == 0) and bool(np.array_equal(
            got.reshape(want.shape), want))
    try:
        return bool(answer == expected)
    except Exception:  # an answer that cannot be compared with it is not equal to it
        return False


def check_raises(fn: object, expected: type[BaseException] = Exception, name: str = "call",
                 match: str = "") -> CheckResult:
    """Run ``fn()`` and check that it raises ``expected``; the message is kept for the learner to read.

    Lessons that show a popular snippet crashing run it through this, so the notebook still runs
    top to bottom and the printed outcome (error type and message) is checked.

    Args:
        fn: a zero-argument callable expected to fail.
        expected: the exception type it should raise.
        name: what is being run, for the message.
        match: a substring the error message must contain.

    Returns:
        ``CheckResult`` whose message is ``"raised <Type>: <first line of the error>"``.

    Raises:
        LabInputError: when ``expected`` is not an exception class or ``match`` is not a string.

    Example:
        >>> check_raises(lambda: 1 / 0, ZeroDivisionError, "1 / 0")
        ✅ 1 / 0: raised ZeroDivisionError: division by zero
    """
    name = _require_name(name)
    if not (isinstance(expected, type) and issubclass(expected, BaseException)):
        raise LabInputError(f"expected must be an exception class such as RuntimeError; got {expected!r}.")
    if not isinstance(match, str):
        raise LabInputError(f"match must be a substring of the error message; got {type(match).__name__}.")
    if not callable(fn):
        return CheckResult(name, False, f"expected a zero-argument callable (e.g. lambda: ...); got {type(fn).__name__}.")
    try:
        fn()
    except BaseException as error:  # the point is to catch what the snippet raises
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        ok = isinstance(error, expected) and match in str(error)
        return CheckResult(name, ok, f"raised {type(error).__name__}: {first_line}")
    return CheckResult(name, False, f"ran without raising; expected {expected.__name__}.")
