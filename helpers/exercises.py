"""Self-checks for exercises: they say whether an answer is right and, if not, how it differs."""
from __future__ import annotations

from dataclasses import dataclass

import torch


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


def _not_answered(name: str) -> CheckResult:
    return CheckResult(name, False, "not answered yet: replace the None / ... placeholder with your code and re-run.",
                       answered=False)


def check_close(answer: object, expected: object, name: str = "answer",
                atol: float = 1e-6, rtol: float = 1e-5) -> CheckResult:
    """Check a numeric answer (tensor, number or nested tuple) against the expected value.

    Args:
        answer: the learner's value; None or ``...`` means "not answered yet".
        expected: the correct value.
        name: what is being checked, for the message.
        atol, rtol: tolerances as in ``torch.allclose``.

    Returns:
        ``CheckResult``; on failure its message gives the shape/dtype mismatch or the largest
        difference and where it is.

    Example:
        >>> check_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))
        ❌ answer: 1 of 2 elements differ; largest |difference| 0.5 at index (1,) (got 2, expected 2.5)
    """
    if answer is None or answer is Ellipsis:
        return _not_answered(name)
    if isinstance(expected, (tuple, list)):
        if not isinstance(answer, (tuple, list)) or len(answer) != len(expected):
            return CheckResult(name, False, f"expected a sequence of {len(expected)} items; got {type(answer).__name__}"
                               + (f" of {len(answer)}" if isinstance(answer, (tuple, list)) else "") + ".")
        for i, (a, e) in enumerate(zip(answer, expected)):
            part = check_close(a, e, f"{name}[{i}]", atol, rtol)
            if not part.passed:
                return CheckResult(name, False, f"item {i}: {part.message}")
        return CheckResult(name, True, f"correct (all {len(expected)} items within atol={atol:g}, rtol={rtol:g}).")
    try:
        got = torch.as_tensor(answer)
    except Exception:
        return CheckResult(name, False, f"expected a tensor or number; got {type(answer).__name__}.")
    want = torch.as_tensor(expected)
    if got.shape != want.shape:
        return CheckResult(name, False, f"shape {tuple(got.shape)} but expected {tuple(want.shape)}.")
    got64, want64 = got.detach().double().cpu(), want.detach().double().cpu()
    close = torch.isclose(got64, want64, atol=atol, rtol=rtol)
    if bool(close.all()):
        return CheckResult(name, True, f"correct (within atol={atol:g}, rtol={rtol:g}).")
    diff = (got64 - want64).abs()
    flat = int(diff.reshape(-1).argmax()) if diff.numel() else 0
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)) if diff.dim() else ()
    return CheckResult(name, False, f"{int((~close).sum())} of {close.numel()} elements differ; largest |difference| "
                       f"{float(diff.max()):.3g} at index {index} (got {float(got64[index]):.6g}, "
                       f"expected {float(want64[index]):.6g})")


def check_equal(answer: object, expected: object, name: str = "answer") -> CheckResult:
    """Check an exact answer (an int, a string, a shape, a bool).

    Example:
        >>> check_equal(12, 12, "x.grad")
        ✅ x.grad: correct (12).
    """
    if answer is None or answer is Ellipsis:
        return _not_answered(name)
    if answer == expected:
        return CheckResult(name, True, f"correct ({expected!r}).")
    hint = ""
    if isinstance(answer, (int, float)) and isinstance(expected, (int, float)) and expected:
        hint = f" Your value is {answer / expected:.3g}× the expected one."
    return CheckResult(name, False, f"got {answer!r}, expected {expected!r}.{hint}")


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

    Example:
        >>> check_raises(lambda: 1 / 0, ZeroDivisionError, "1 / 0")
        ✅ 1 / 0: raised ZeroDivisionError: division by zero
    """
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
