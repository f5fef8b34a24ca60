"""Input checks shared by every helper: one error type, messages that say what to do.

Helpers call these before touching torch so that a learner sees
``LabInputError: x must be a 3-D tensor (batch, time, features); got shape (4, 5)``
instead of a stack trace from deep inside an operator.
"""
from __future__ import annotations

import itertools
import math
import numbers
import os
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch


class LabInputError(ValueError):
    """Raised when a helper gets input it cannot use; the message names the fix."""


MAX_TENSOR_ELEMENTS = 2**28  # 1 GiB of float32: far above any size in the course, far below an exhausted laptop


def require_tensor(value: object, name: str, ndim: int | None = None, layout: str = "") -> torch.Tensor:
    """Check that ``value`` is a tensor, optionally of a given number of dimensions.

    Args:
        value: the object to check.
        name: the argument's name, used in the message.
        ndim: required number of dimensions, or None for any.
        layout: a description of the dimensions, e.g. ``"(batch, time, features)"``.

    Returns:
        ``value`` itself, typed as a tensor.

    Example:
        >>> require_tensor(torch.zeros(2, 3, 4), "x", ndim=3).shape
        torch.Size([2, 3, 4])
    """
    if not isinstance(value, torch.Tensor):
        raise LabInputError(f"{name} must be a torch.Tensor; got {type(value).__name__}. "
                            f"Convert it with torch.as_tensor({name}).")
    # tensors every instrument refuses alike: no values to measure, a layout operators mishandle, or a size
    # that would exhaust memory once an instrument copies it
    if value.is_meta:
        raise LabInputError(f"{name} is a meta tensor: it has a shape but no values. Create it on 'cpu' or 'cuda'.")
    if value.layout != torch.strided:
        raise LabInputError(f"{name} is a sparse tensor ({value.layout}); pass {name}.to_dense().")
    if value.numel() > MAX_TENSOR_ELEMENTS:
        raise LabInputError(f"{name} has {value.numel():,} elements, over the {MAX_TENSOR_ELEMENTS:,} the instruments "
                            "handle (copies of it would need gigabytes); use smaller sizes.")
    if ndim is not None and value.dim() != ndim:
        hint = f" {layout}" if layout else ""
        raise LabInputError(f"{name} must be a {ndim}-D tensor{hint}; got shape {tuple(value.shape)}.")
    return value


def require_scalar_loss(value: object, name: str = "loss") -> torch.Tensor:
    """Check that ``value`` is a one-element tensor that backward can start from.

    Args:
        value: the candidate loss.
        name: the argument's name, used in the message.

    Returns:
        ``value`` itself.

    Example:
        >>> require_scalar_loss(torch.ones(3, requires_grad=True).sum()).shape
        torch.Size([])
    """
    tensor = require_tensor(value, name)
    if tensor.numel() != 1:
        raise LabInputError(f"{name} must be a scalar to call backward(); got shape {tuple(tensor.shape)}. "
                            f"Reduce it first, e.g. {name}.sum() or {name}.mean().")
    if not tensor.requires_grad:
        raise LabInputError(f"{name} does not require grad, so it has no graph to differentiate. "
                            "Make sure an input or parameter has requires_grad=True and that no "
                            "torch.no_grad() block surrounds the computation.")
    return tensor


def require_positive_int(value: object, name: str, maximum: int | None = None,
                         reason: str = "set to keep runs short") -> int:
    """Check that ``value`` is an integer >= 1 (and at most ``maximum`` when given).

    NumPy integers are accepted; floats (even ``2.0``), bools and strings are refused rather than truncated.

    Args:
        value: the object to check.
        name: the argument's name, used in the message.
        maximum: the largest value allowed, or None for no limit.
        reason: why the limit exists, completing "above the limit of N ...", e.g. "(the data's length)".

    Returns:
        ``value`` as a Python int.

    Example:
        >>> require_positive_int(4, "steps", maximum=8)
        4
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise LabInputError(f"{name} must be a positive integer; got {value!r}.")
    value = int(value)
    if maximum is not None and value > maximum:
        raise LabInputError(f"{name}={value} is above the limit of {maximum} {reason}; "
                            f"choose a value up to {maximum}.")
    return value


def require_number(value: object, name: str, low: float | None = None, high: float | None = None,
                   low_inclusive: bool = True, unit: str = "") -> float:
    """Check that ``value`` is a finite real number within ``[low, high]`` (NaN and infinity refused).

    Args:
        value: the object to check.
        name: the argument's name, used in the message.
        low, high: the bounds, or None for none.
        low_inclusive: whether ``low`` itself is allowed (False for "must be above 0").
        unit: a word shown after the bounds, e.g. ``"seconds"``.

    Returns:
        ``value`` as a float.

    Example:
        >>> require_number(0.5, "min_run_time", low=0, high=60, low_inclusive=False, unit="seconds")
        0.5
    """
    unit_text = f" {unit}" if unit else ""
    if low is not None and high is not None:
        wanted = f"in {'[' if low_inclusive else '('}{low:g}, {high:g}]{unit_text}"
    elif low is not None:
        wanted = f"{'at least' if low_inclusive else 'above'} {low:g}{unit_text}"
    elif high is not None:
        wanted = f"at most {high:g}{unit_text}"
    else:
        wanted = "finite"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LabInputError(f"{name} must be a number {wanted}; got {type(value).__name__} {value!r}.")
    number = float(value)
    if not math.isfinite(number):
        raise LabInputError(f"{name} must be a finite number {wanted}; got {value!r}.")
    too_low = low is not None and (number < low if low_inclusive else number <= low)
    if too_low or (high is not None and number > high):
        raise LabInputError(f"{name} must be {wanted}; got {value!r}.")
    return number


def require_finite(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Check that a floating-point tensor holds no NaN or infinity (integer tensors always pass).

    A NaN that enters a comparison or a timing silently turns every result into NaN or ``False``;
    refusing it at the door names where it came from.

    Args:
        tensor: the tensor to check.
        name: the argument's name, used in the message.

    Returns:
        ``tensor`` itself.

    Example:
        >>> require_finite(torch.ones(2), "x").tolist()
        [1.0, 1.0]
    """
    tensor = require_tensor(tensor, name)
    if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise LabInputError(f"{name} contains {bad} NaN or infinite value(s) of {tensor.numel()}; results computed "
                            "from it would be meaningless. Find where they come from (e.g. torch.isnan(x).any()) "
                            "or pass finite values.")
    return tensor


def require_callable(value: object, name: str, what: str = "a function") -> object:
    """Check that ``value`` can be called.

    Args:
        value: the object to check.
        name: the argument's name, used in the message.
        what: what is expected, e.g. ``"a zero-argument callable (lambda: ...)"``.

    Returns:
        ``value`` itself.

    Example:
        >>> require_callable(len, "fn") is len
        True
    """
    if not callable(value):
        raise LabInputError(f"{name} must be {what}; got {type(value).__name__} {value!r:.60}.")
    return value


def require_sizes(values: object, name: str, maximum: int | None = None, max_count: int = 64,
                  reason: str = "set to keep runs short") -> list[int]:
    """Check a non-empty collection of positive integers (sizes to sweep), each at most ``maximum``.

    Lists, tuples, ranges, NumPy arrays and other iterables are accepted; a float with a whole value
    (``64.0``, as ``np.geomspace`` gives) counts as that integer, any other float (``2.7``) is refused
    rather than truncated.

    Args:
        values: the candidate sizes, e.g. ``[64, 256, 1024]``.
        name: the argument's name, used in the message.
        maximum: the largest size allowed, or None.
        max_count: the most sizes allowed in one sweep.
        reason: why ``maximum`` exists, for the message.

    Returns:
        The sizes as a list of Python ints, in the given order.

    Example:
        >>> require_sizes((16, 64.0), "sizes", maximum=1024)
        [16, 64]
    """
    if hasattr(values, "tolist") and not isinstance(values, (str, bytes)):
        values = values.tolist()  # NumPy arrays and tensors
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise LabInputError(f"{name} must be a list of positive integers, e.g. [64, 256]; "
                            f"got {type(values).__name__} {values!r:.60}.")
    values = list(itertools.islice(values, max_count + 1))  # islice: an endless generator must not hang
    if len(values) == 0:
        raise LabInputError(f"{name} is empty: pass at least one size, e.g. [64, 256].")
    if len(values) > max_count:
        raise LabInputError(f"{name} has more than {max_count} entries, above the limit {reason}; "
                            "sweep fewer sizes.")
    whole = [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    return [require_positive_int(v, f"{name}[{i}]", maximum, reason) for i, v in enumerate(whole)]


def require_series(values: object, name: str, length: int | None = None, index: str = "step") -> list[float]:
    """Check a 1-D sequence of finite real numbers (a list, tuple, NumPy array or 1-D tensor), e.g. losses per step.

    What a learner's function returns goes through here before it is drawn or judged, so a NaN or a short
    result is said where it happened instead of ending as a blank plot or a panel that says "done".

    Args:
        values: the candidate values.
        name: who produced them, used in the message, e.g. ``"train"``.
        length: the number of values required, or None for any (at least one).
        index: what one position is called in the message, e.g. ``"step"`` or ``"distance"``.

    Returns:
        The values as a list of Python floats.

    Example:
        >>> require_series(torch.tensor([0.5, 0.25]), "train", length=2)
        [0.5, 0.25]
        >>> require_series([0.5, float("nan")], "train")
        Traceback (most recent call last):
        ...
        helpers.validation.LabInputError: train returned NaN at step 1 (counting from 0); look for a division by zero, a log of 0 or a learning rate that is too high there.
    """
    if isinstance(values, torch.Tensor):
        if values.dim() != 1:
            raise LabInputError(f"{name} must return a 1-D sequence (one value per {index}); got a tensor of shape "
                                f"{tuple(values.shape)}.")
        values = values.detach().double().cpu().tolist()
    elif hasattr(values, "tolist") and not isinstance(values, (str, bytes)):
        values = values.tolist()  # NumPy arrays
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise LabInputError(f"{name} must return a list of numbers (one per {index}); got {type(values).__name__}.")
    out = []
    for k, value in enumerate(values):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise LabInputError(f"{name} returned {type(value).__name__} {value!r:.40} at {index} {k}; it must "
                                "return numbers (use loss.item() for a tensor).")
        if not math.isfinite(value):
            word = "NaN" if value != value else "infinity"
            raise LabInputError(f"{name} returned {word} at {index} {k} (counting from 0); look for a division by "
                                "zero, a log of 0 or a learning rate that is too high there.")
        out.append(float(value))
    if length is not None and len(out) != length:
        raise LabInputError(f"{name} returned {len(out)} values, expected {length} (one per {index}).")
    if not out:
        raise LabInputError(f"{name} is empty: it returned no values; it must return one per {index}.")
    return out


def require_mapping(value: object, name: str, what: str, allow_empty: bool = False) -> dict:
    """Check a dict-like argument: a list, a string or a single object where ``{name: thing}`` is expected is
    refused here, once for every helper, rather than failing later on ``.items()``.

    Args:
        value: the object to check.
        name: the argument's name, used in the message.
        what: the expected shape, e.g. ``"{name: zero-argument callable}"``.
        allow_empty: whether ``{}`` is acceptable.

    Returns:
        ``value`` as a dict (same order).

    Example:
        >>> require_mapping({"loop": 1}, "fns", "{name: callable}")
        {'loop': 1}
        >>> require_mapping([len], "fns", "{name: callable}")
        Traceback (most recent call last):
        ...
        helpers.validation.LabInputError: fns must be a dict {name: callable}; got list. Give each item a name: {'a': ..., 'b': ...}.
    """
    if not isinstance(value, Mapping):
        hint = (" Give each item a name: {'a': ..., 'b': ...}." if isinstance(value, (list, tuple, set)) else "")
        raise LabInputError(f"{name} must be a dict {what}; got {type(value).__name__}.{hint}")
    if not value and not allow_empty:
        raise LabInputError(f"{name} is empty: pass at least one entry {what}.")
    return dict(value)


def require_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices``.

    Example:
        >>> require_choice("forward", "mode", ["forward", "backward"])
        'forward'
    """
    if value not in choices:
        raise LabInputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return str(value)


def require_choices(values: object, name: str, choices: Sequence[str]) -> list[str]:
    """Check a non-empty list whose every item is one of ``choices`` (a bare string is refused, not split).

    Args:
        values: the candidate list, e.g. ``["RNN", "GRU"]``.
        name: the argument's name, used in the message.
        choices: the allowed items.

    Returns:
        The items as a list, in the given order.

    Example:
        >>> require_choices(("GRU", "RNN"), "layer_types", ["RNN", "LSTM", "GRU"])
        ['GRU', 'RNN']
    """
    if isinstance(values, str):
        raise LabInputError(f"{name} must be a list of names; got the string {values!r}. Write [{values!r}].")
    if isinstance(values, Mapping) or not isinstance(values, Iterable):
        raise LabInputError(f"{name} must be a list of names from {', '.join(map(repr, choices))}; "
                            f"got {type(values).__name__}.")
    items = list(itertools.islice(values, len(choices) * 4 + 1))
    if not items:
        raise LabInputError(f"{name} is empty: pick at least one of {', '.join(map(repr, choices))}.")
    return [require_choice(item, f"{name}[{i}]", choices) for i, item in enumerate(items)]


def require_file(path: object, name: str, hint: str = "") -> Path:
    """Check that ``path`` names an existing regular file, telling a missing path from a folder.

    Args:
        path: a ``str`` or ``os.PathLike``.
        name: the argument's name, used in the message.
        hint: what to do when it is missing, e.g. ``"the course ships it in data/"``.

    Returns:
        The path as a ``pathlib.Path``.

    Example:
        >>> require_file(__file__, "module").suffix
        '.py'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise LabInputError(f"{name} must be a path (a str or pathlib.Path); got {type(path).__name__}.")
    file = Path(path)
    extra = f" {hint}" if hint else ""
    if file.is_dir():
        raise LabInputError(f"{name}={str(file)!r} is a folder, not a file; pass the file inside it.{extra}")
    if not file.exists():
        raise LabInputError(f"{name}={str(file)!r} does not exist.{extra}")
    if not file.is_file():
        raise LabInputError(f"{name}={str(file)!r} is not a regular file.{extra}")
    return file


def require_writable(path: object, name: str, suffix: str = "") -> Path:
    """Check, before any work, that ``path`` can be written: not a folder, the right suffix, a writable folder.

    Commands call it on their output first, so a bad path never costs a long run.

    Args:
        path: a ``str`` or ``os.PathLike`` naming the file to (over)write; missing folders may be created.
        name: the argument's name, used in the message (e.g. ``"--out"``).
        suffix: the required ending, e.g. ``".json"``, or "" for any.

    Returns:
        The path as a ``pathlib.Path``.

    Example:
        >>> import tempfile, pathlib
        >>> require_writable(pathlib.Path(tempfile.mkdtemp()) / "new" / "ref.json", "--out", ".json").name
        'ref.json'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise LabInputError(f"{name} must be a path (a str or pathlib.Path); got {type(path).__name__}.")
    path = Path(path)
    if path.is_dir():
        raise LabInputError(f"{name} {str(path)!r} is a folder; name the file to write, e.g. {path / 'run.json'}.")
    if suffix and path.suffix != suffix:
        raise LabInputError(f"{name} {str(path)!r} must end in {suffix}.")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the nearest existing folder must let us create it
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise LabInputError(f"{name} {str(path)!r} cannot be written: {str(folder)!r} is not a writable folder.")
    if path.exists() and not os.access(path, os.W_OK):
        raise LabInputError(f"{name} {str(path)!r} exists and is not writable.")
    return path


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters.

    Example:
        >>> one_line("first   second", limit=10)
        'first sec…'
    """
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def describe_error(error: BaseException, limit: int = 300) -> str:
    """One line for the learner: the error's type and message, and where it was raised in their own code.

    The place is the innermost frame outside installed packages (a notebook cell shows as its cell line),
    so a failure deep inside torch points at the line of the notebook that called it.

    Args:
        error: a caught exception (with its traceback).
        limit: the longest message kept, in characters.

    Returns:
        ``"<Type>: <message> (in <function>, cell line <n>)"``, or without the place when none is known.

    Example:
        >>> def parse(text):
        ...     return int(text)
        >>> try:
        ...     parse("3²")
        ... except ValueError as error:
        ...     print(describe_error(error).split(" (in ")[0])
        ValueError: invalid literal for int() with base 10: '3²'
    """
    text = one_line(f"{type(error).__name__}: {error}", limit)
    library = ("site-packages", "dist-packages", "/lib/python")
    instruments = str(Path(__file__).resolve().parent) + os.sep  # this package: the learner did not write it
    comprehensions = ("<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>")
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if not any(part in f.filename for part in library)
           and not f.filename.startswith(instruments) and f.name not in comprehensions]
    if not own:
        return text
    frame = own[-1]
    if "ipykernel_" in frame.filename or frame.filename.startswith("<"):
        return f"{text} (in {frame.name}, cell line {frame.lineno})"
    return f"{text} (in {frame.name}, {frame.filename.rsplit('/', 1)[-1]} line {frame.lineno})"


def run_specimen(fn: Callable[..., object], what: str, *args: object, **kwargs: object) -> object:
    """Call the learner's ``fn(*args, **kwargs)`` for an instrument; a failure becomes a ``LabInputError``.

    The message names the instrument's use (``what``), the error and the line of the learner's code where it
    happened, instead of a stack trace through the instrument. The original exception stays reachable as
    the error's ``__context__``. ``LabInputError`` and ``KeyboardInterrupt`` pass through unchanged.

    Args:
        fn: the learner's function or module.
        what: what the call was for, e.g. ``"the timed function (warm-up call)"``.
        *args, **kwargs: its arguments.

    Returns:
        What ``fn`` returned.

    Example:
        >>> run_specimen(lambda x: x + 1, "the model", 1)
        2
    """
    try:
        return fn(*args, **kwargs)
    except LabInputError:
        raise
    except Exception as error:
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        given = f" on inputs of shape {', '.join(map(str, shapes))}" if shapes else ""
        raise LabInputError(f"{what} failed{given}: {describe_error(error)}. Fix that code or its inputs, "
                            "then run this again.") from None
