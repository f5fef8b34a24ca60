"""Run backward through several implementations of the same computation and compare every gradient."""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from helpers.lines import HATCHES, PALETTE
from helpers.validation import (
    LabInputError,
    require_callable,
    require_finite,
    require_number,
    require_scalar_loss,
    require_tensor,
    run_specimen,
)

FLOAT64_REFERENCE = "float64 reference"


@dataclass(frozen=True)
class GradientRow:
    """One gradient of one implementation, compared with the baseline's."""

    implementation: str
    quantity: str
    max_abs_diff: float
    max_rel_diff: float
    bitwise_equal: bool
    allclose: bool


@dataclass(frozen=True)
class GradientComparison:
    """The result of ``compare_gradients``: rows plus the settings they were judged by."""

    rows: tuple[GradientRow, ...]
    baseline: str
    atol: float
    rtol: float

    @property
    def all_close(self) -> bool:
        """True when every gradient of every implementation is allclose to the baseline's."""
        return all(row.allclose for row in self.rows)

    def row(self, implementation: str, quantity: str) -> GradientRow:
        """The row for one implementation and one gradient, e.g. ``("loop", "input")``."""
        for row in self.rows:
            if (row.implementation, row.quantity) == (implementation, quantity):
                return row
        raise LabInputError(f"no row for ({implementation!r}, {quantity!r}); rows exist for "
                            f"{sorted({(r.implementation, r.quantity) for r in self.rows})}.")

    def max_abs_diff(self, implementation: str | None = None) -> float:
        """The largest absolute difference over all rows (of one implementation, when named)."""
        rows = [r for r in self.rows if implementation in (None, r.implementation)]
        if not rows:
            raise LabInputError(f"no rows for implementation {implementation!r}; compared: "
                                f"{sorted({r.implementation for r in self.rows})}.")
        return max(r.max_abs_diff for r in rows)

    def __str__(self) -> str:
        header = f"{'implementation':<18} {'gradient':<16} {'max |diff|':>11} {'max rel':>10} {'bitwise':>8} {'allclose':>8}"
        lines = [f"baseline: {self.baseline}; allclose at atol={self.atol:g}, rtol={self.rtol:g}", header]
        for r in self.rows:
            lines.append(f"{r.implementation:<18} {r.quantity:<16} {r.max_abs_diff:>11.2e} {r.max_rel_diff:>10.2e} "
                         f"{str(r.bitwise_equal):>8} {str(r.allclose):>8}")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Bar chart of the max absolute difference per gradient and implementation (log scale).

        Returns:
            The matplotlib ``Axes``.
        """
        import matplotlib.pyplot as plt
        import numpy as np

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        quantities = list(dict.fromkeys(r.quantity for r in self.rows))
        impls = list(dict.fromkeys(r.implementation for r in self.rows))
        width = 0.8 / len(impls)
        for k, impl in enumerate(impls):
            values = [self.row(impl, q).max_abs_diff for q in quantities]
            # exact zeros have no place on a log axis; draw them at a floor and say so in the label
            shown = [max(v, 1e-18) for v in values]
            # colour and hatch: the bars stay apart without colour vision (helpers.lines)
            ax.bar(np.arange(len(quantities)) + k * width, shown, width, label=impl,
                   color=PALETTE[k % len(PALETTE)], hatch=HATCHES[k % len(HATCHES)], edgecolor="white")
        ax.set_yscale("log")
        ax.set_xticks(np.arange(len(quantities)) + width * (len(impls) - 1) / 2, quantities)
        ax.set_ylabel("max |gradient − baseline| (1e-18 = exactly equal)")
        ax.set_title(f"Gradient differences against {self.baseline}")
        ax.legend()
        return ax


def _gradients(model: nn.Module, inputs: Sequence[torch.Tensor], loss_fn: Callable, name: str) -> dict:
    leaves = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    model.zero_grad(set_to_none=True)
    try:
        output = run_specimen(model, f"models[{name!r}]", *leaves)
    except LabInputError as error:
        if not any(word in str(error.__context__) for word in ("shape", "size", "dimension", "mat1")):
            raise
        refusal = error
    else:
        refusal = None
    if refusal is not None:  # a layout mistake: add the likely fix, keep the learner's error reachable
        hinted = LabInputError(f"{refusal} Pass inputs in the layout the models expect (e.g. (batch, time, "
                               "features) for batch_first modules).")
        hinted.__context__ = refusal.__context__
        raise hinted
    loss = run_specimen(loss_fn, f"loss_fn on the output of {name!r}", output)
    try:
        require_scalar_loss(loss, f"loss of {name!r}")
    except LabInputError as error:
        raise LabInputError(f"{error} (loss_fn turns the model's output into the loss.)") from None
    run_specimen(loss.backward, f"backward through models[{name!r}]")
    grads = {}
    for i, leaf in enumerate(leaves):
        if leaf.grad is not None:  # None: the model does not use this input (then it has no gradient to compare)
            grads["input" if len(leaves) == 1 else f"input[{i}]"] = leaf.grad
    for pname, param in model.named_parameters():
        if param.grad is not None:
            grads[pname] = param.grad.detach().clone()
    for quantity, grad in grads.items():
        if not bool(torch.isfinite(grad).all()):
            raise LabInputError(f"the {quantity!r} gradient of {name!r} holds NaN or infinity, so no comparison "
                                "would mean anything; look for an overflow (large inputs or weights, exp, log of 0) "
                                "in the model or the loss.")
    return grads


def _diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    a64, b64 = a.double(), b.to(a.device).double()
    abs_diff = (a64 - b64).abs()
    rel = abs_diff / b64.abs().clamp_min(torch.finfo(torch.float64).tiny)
    return float(abs_diff.max()), float(rel.max())


def default_loss(output: object) -> torch.Tensor:
    """Sum every tensor in the output (a tensor, or a tuple such as ``(out, (h, c))``) after a fixed
    random projection, so no gradient is trivially all ones."""
    tensors = [t for t in _flatten(output) if t.is_floating_point()]
    if not tensors:
        raise LabInputError("the model returned no floating-point tensor to build a loss from; pass loss_fn.")
    total = 0
    for t in tensors:
        gen = torch.Generator().manual_seed(t.numel())
        # drawn in float32 whatever t's dtype, so a float64 reference gets the very same loss
        weights = torch.randn(t.shape, generator=gen).to(device=t.device, dtype=t.dtype)
        total = total + (t * weights).sum()
    return total


def _flatten(output: object) -> list:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _flatten(item)]
    return []


def compare_gradients(models: Mapping[str, nn.Module], inputs: Sequence[torch.Tensor] | torch.Tensor,
                      loss_fn: Callable[[object], torch.Tensor] = default_loss,
                      float64_reference: bool = False, atol: float = 1e-6, rtol: float = 1e-5) -> GradientComparison:
    """Backpropagate the same loss through each implementation and compare every gradient.

    All models must have the same parameter names (copy the weights across first). Each gets
    fresh copies of ``inputs``, so the input gradient is compared too.

    Args:
        models: ``{name: module}``; the first one is the baseline unless ``float64_reference``.
        inputs: one tensor or a sequence of tensors passed positionally to every model.
        loss_fn: turns a model's output into a scalar loss (default: a fixed random projection of
            every output tensor, summed).
        float64_reference: compare against a float64 copy of the first model run on float64 inputs.
        atol, rtol: the tolerance for the ``allclose`` column (finite, at least 0).

    Returns:
        ``GradientComparison``; ``str()`` of it is a table, ``.plot()`` draws it.

    Raises:
        LabInputError: for anything but modules, empty or non-finite inputs, a model that fails on the
            inputs (the message names it and the shapes), a non-scalar loss, a NaN/infinite gradient
            (nothing to compare), or a tolerance that is not a finite number >= 0.

    Example:
        >>> _ = torch.manual_seed(0); a = torch.nn.Linear(3, 2); b = copy.deepcopy(a)
        >>> compare_gradients({"a": a, "b": b}, torch.randn(4, 3)).all_close
        True
    """
    if not isinstance(models, Mapping) or len(models) < (1 if float64_reference else 2):
        raise LabInputError("models must be a dict {name: module} with at least two entries "
                            "(or one, with float64_reference=True).")
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise LabInputError(f"models[{name!r}] must be an nn.Module; wrap a function in a small Module.")
    if isinstance(inputs, torch.Tensor):
        inputs = [inputs]
    elif isinstance(inputs, (list, tuple)):
        inputs = list(inputs)
    else:
        raise LabInputError(f"inputs must be a tensor or a list of tensors; got {type(inputs).__name__}.")
    if not inputs:
        raise LabInputError("inputs is empty: pass the tensor(s) every model is called with, e.g. torch.randn(4, 3).")
    for i, x in enumerate(inputs):
        require_finite(x, f"inputs[{i}]")
        if x.numel() == 0:
            raise LabInputError(f"inputs[{i}] is empty (shape {tuple(x.shape)}); its gradients would be empty "
                                "and every comparison trivially equal. Pass at least one element.")
    require_callable(loss_fn, "loss_fn", "a function output -> scalar loss")
    atol = require_number(atol, "atol", low=0)
    rtol = require_number(rtol, "rtol", low=0)
    names = [set(dict(m.named_parameters())) for m in models.values()]
    for name, pnames in zip(models, names, strict=True):
        if pnames != names[0]:
            first = next(iter(models))
            raise LabInputError(f"parameter names differ between {first!r} and {name!r}: only in {first!r}: "
                                f"{sorted(names[0] - pnames)}, only in {name!r}: {sorted(pnames - names[0])}. "
                                "Build them so the names match (same attribute names) and copy the weights.")
    results = {name: _gradients(model, inputs, loss_fn, name) for name, model in models.items()}
    if float64_reference:
        first_name, first = next(iter(models.items()))
        ref_model = copy.deepcopy(first).double()
        baseline_grads = _gradients(ref_model, [x.double() if x.is_floating_point() else x for x in inputs],
                                    loss_fn, FLOAT64_REFERENCE)
        baseline, compared = FLOAT64_REFERENCE, results
    else:
        baseline = next(iter(models))
        baseline_grads = results[baseline]
        compared = {k: v for k, v in results.items() if k != baseline}
    rows = []
    for impl, grads in compared.items():
        for quantity, ref in baseline_grads.items():
            if quantity not in grads:
                raise LabInputError(f"{impl!r} produced no gradient for {quantity!r}; is it used in the forward pass?")
            got = grads[quantity]
            abs_d, rel_d = _diff(got, ref)
            rows.append(GradientRow(impl, quantity, abs_d, rel_d,
                                    bool(got.dtype == ref.dtype and torch.equal(got, ref.to(got.device))),
                                    bool(torch.allclose(got.double(), ref.double().to(got.device), atol=atol, rtol=rtol))))
    return GradientComparison(tuple(rows), baseline, atol, rtol)


def collect_gradients(model: nn.Module, backward: Callable[[], object]) -> dict[str, torch.Tensor]:
    """Zero ``model``'s gradients, run ``backward()`` (any code that calls ``.backward()``), return copies of them.

    Use it to compare the gradients that different training loops leave in ``.grad`` (one backward, a
    backward per step, truncated windows, checkpointing) on the same model and data.

    Args:
        model: the module whose parameters' ``.grad`` are read.
        backward: a zero-argument callable, e.g. ``lambda: full_bptt(model, x, y)``.

    Returns:
        ``{parameter name: gradient}`` for every parameter that received one (copies).

    Example:
        >>> layer = nn.Linear(2, 1)
        >>> grads = collect_gradients(layer, lambda: layer(torch.ones(4, 2)).sum().backward())
        >>> grads["bias"]
        tensor([4.])
    """
    if not isinstance(model, nn.Module):
        raise LabInputError(f"model must be an nn.Module; got {type(model).__name__}.")
    require_callable(backward, "backward", "a zero-argument callable, e.g. lambda: full_bptt(model, x, y)")
    model.zero_grad(set_to_none=True)
    run_specimen(backward, "the callable collect_gradients runs")
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    if not grads:
        raise LabInputError("no parameter received a gradient: did the callable call .backward() on a loss "
                            "computed with this model?")
    return grads


def relative_error(grads: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]) -> float:
    """``‖grads − reference‖ / ‖reference‖`` over all parameters together (L2, in float64); 0 means identical.

    Args:
        grads: ``{name: gradient}``, e.g. from ``collect_gradients``.
        reference: the same names, e.g. full BPTT's gradients.

    Returns:
        The relative L2 error (a float; 0.1 means the difference is 10% of the reference's size).

    Example:
        >>> relative_error({"w": torch.tensor([1.0, 1.0])}, {"w": torch.tensor([1.0, 0.0])})
        1.0
    """
    if set(grads) != set(reference):
        raise LabInputError(f"gradient names differ: only in grads {sorted(set(grads) - set(reference))}, "
                            f"only in reference {sorted(set(reference) - set(grads))}.")
    for name in reference:
        if grads[name].shape != reference[name].shape:
            raise LabInputError(f"{name}: shape {tuple(grads[name].shape)} but the reference has "
                                f"{tuple(reference[name].shape)}.")
    diff = sum(float((grads[k].double() - reference[k].double().to(grads[k].device)).pow(2).sum()) for k in reference)
    norm = sum(float(reference[k].double().pow(2).sum()) for k in reference)
    return (diff / norm) ** 0.5 if norm > 0 else diff ** 0.5


def max_abs_diff(a: object, b: object) -> float:
    """The largest absolute difference between two tensors, or two (nested) tuples or lists of tensors.

    Computed in float64, so the comparison itself adds no rounding. Use it for checked cells such as
    ``print("max |diff| < 1e-6:", max_abs_diff(loop_out, fused_out) < 1e-6)``.

    Args:
        a, b: tensors of the same shape, or sequences of them with the same structure (e.g. ``(out, (h, c))``).

    Returns:
        The largest ``|a - b|`` over every element (0.0 for empty tensors).

    Raises:
        LabInputError: for different shapes or structures, or a NaN or infinity in either (the message says
            which side and where).

    Example:
        >>> max_abs_diff((torch.ones(2), torch.zeros(3)), (torch.ones(2), torch.full((3,), 0.5)))
        0.5
    """
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        require_tensor(a, "the first tensor")
        require_tensor(b, "the second tensor")
        if a.shape != b.shape:
            raise LabInputError(f"cannot compare shapes {tuple(a.shape)} and {tuple(b.shape)}.")
        for side, tensor in (("first", a), ("second", b)):  # NaN - NaN is NaN, and NaN < 1e-6 prints a bare False
            bad = ~torch.isfinite(tensor.detach()) if tensor.is_floating_point() or tensor.is_complex() else None
            if bad is not None and bool(bad.any()):
                where = tuple(int(i) for i in bad.nonzero()[0].tolist())
                raise LabInputError(f"the {side} tensor holds NaN or infinity ({int(bad.sum())} of {tensor.numel()} "
                                    f"values, the first at index {where}), so no difference can be measured; find "
                                    "where it comes from (e.g. torch.isnan(x).nonzero()).")
        return float((a.detach().double() - b.detach().double().to(a.device)).abs().max()) if a.numel() else 0.0
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        return max((max_abs_diff(p, q) for p, q in zip(a, b, strict=True)), default=0.0)
    raise LabInputError(f"compare tensors, or tuples of tensors with the same structure; got {type(a).__name__} "
                        f"and {type(b).__name__}" + (f" of lengths {len(a)} and {len(b)}."
                                                     if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list))
                                                     else "."))
