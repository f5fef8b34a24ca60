"""Input checks shared by every helper: one error type, messages that say what to do.

Helpers call these before touching torch so that a learner sees
``LabInputError: x must be a 3-D tensor (batch, time, features); got shape (4, 5)``
instead of a stack trace from deep inside an operator.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


class LabInputError(ValueError):
    """Raised when a helper gets input it cannot use; the message names the fix."""


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


def require_positive_int(value: object, name: str, maximum: int | None = None) -> int:
    """Check that ``value`` is an int >= 1 (and at most ``maximum`` when given).

    Example:
        >>> require_positive_int(4, "steps", maximum=8)
        4
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LabInputError(f"{name} must be a positive integer; got {value!r}.")
    if maximum is not None and value > maximum:
        raise LabInputError(f"{name}={value} is above the limit of {maximum} set to keep runs short; "
                            f"choose a value up to {maximum}.")
    return value


def require_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices``.

    Example:
        >>> require_choice("forward", "mode", ["forward", "backward"])
        'forward'
    """
    if value not in choices:
        raise LabInputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return str(value)
