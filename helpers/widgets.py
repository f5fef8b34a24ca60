"""Experiment panels: controls + Run button + output over a plain function, testable without a browser."""
from __future__ import annotations

import html
import inspect
import math
import numbers
import sys
from collections.abc import Callable, Mapping

import ipywidgets as W
from IPython.display import display

from helpers.validation import (
    LabInputError,
    describe_error,
    one_line,
    require_callable,
    require_positive_int,
    run_specimen,
)


def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes; a run needing more is refused so no setting can exhaust a laptop
STATUS_MAX_CHARS = 300  # the status is one line; a longer message is cut


def largest_within_budget(estimate_bytes: Callable[[int], int], upper: int,
                          budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> int:
    """The largest ``n`` in ``1..upper`` whose memory estimate fits the budget (estimate must grow with n).

    Use it to set a slider's maximum from a memory estimate.

    Args:
        estimate_bytes: ``n -> bytes`` needed at size n.
        upper: the largest value worth offering at all.
        budget_bytes: the memory budget.

    Returns:
        The bound, at least 1.

    Raises:
        LabInputError: for a non-callable estimate, a non-positive ``upper`` or budget, an estimate that is
            not a finite number of bytes, or a budget that even size 1 exceeds.

    Example:
        >>> largest_within_budget(lambda n: n * 1000, upper=10**6, budget_bytes=50_000)
        50
    """
    require_callable(estimate_bytes, "estimate_bytes", "a function n -> bytes")
    upper = require_positive_int(upper, "upper")
    budget_bytes = require_positive_int(budget_bytes, "budget_bytes")

    def estimate(n: int) -> float:
        need = run_specimen(estimate_bytes, f"estimate_bytes({n})", n)
        if isinstance(need, bool) or not isinstance(need, numbers.Real) or not math.isfinite(need) or need < 0:
            raise LabInputError(f"estimate_bytes({n}) returned {need!r}; it must return a finite number of bytes.")
        return need

    if estimate(1) > budget_bytes:
        raise LabInputError(f"even size 1 needs {estimate(1):,} bytes, over the budget of {budget_bytes:,}; "
                            "raise budget_bytes or shrink the other sizes.")
    low, high = 1, upper
    while low < high:
        mid = (low + high + 1) // 2
        if estimate(mid) <= budget_bytes:
            low = mid
        else:
            high = mid - 1
    return low


def _refuse_non_finite(result: object, fn: Callable[..., object]) -> None:
    """A panel never says "done" over a NaN: a number or a tensor that the function returned is checked here."""
    name = getattr(fn, "__name__", "the panel's function")
    if isinstance(result, numbers.Real) and not isinstance(result, bool) and not math.isfinite(result):
        raise LabInputError(f"your function {name} returned {result!r}; look for a division by zero or an "
                            "overflow in it.")
    torch = sys.modules.get("torch")  # only a tensor can hold one, and then torch is loaded
    if torch is not None and isinstance(result, torch.Tensor) and (result.is_floating_point() or result.is_complex()):
        bad = ~torch.isfinite(result.detach())
        if bool(bad.any()):
            where = tuple(int(i) for i in bad.nonzero()[0].tolist())
            raise LabInputError(f"your function {name} returned NaN or infinity in {int(bad.sum())} of "
                                f"{result.numel()} values, the first at index {where}; look at what it computes there.")


def _range_of(control: W.ValueWidget) -> tuple[float, float] | None:
    low, high = getattr(control, "min", None), getattr(control, "max", None)
    if low is None or high is None:
        return None
    if isinstance(control, W.FloatLogSlider):  # its min and max are exponents of its base
        return control.base ** low, control.base ** high
    return low, high


def _refuse_out_of_range(name: str, control: W.ValueWidget, value: object) -> None:
    bounds = _range_of(control)
    if bounds is None:
        return
    low, high = bounds
    parts = list(value) if isinstance(value, (list, tuple)) else [value]
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, numbers.Real):
            continue  # not a number: the control itself refuses it below, with its own reason
        if not math.isfinite(part):
            raise LabInputError(f"{name}={value!r}: the value must be a finite number in [{low}, {high}].")
        if not low <= part <= high:
            raise LabInputError(f"{name}={value!r} is outside the allowed range [{low}, {high}]; "
                                "the range is bounded to keep each run short.")


class Panel:
    """Controls, a Run button and an output area over a plain function ``fn(**control_values)``.

    The panel holds no experiment logic: ``fn`` computes a result, ``render`` shows it. Tests drive
    it from Python with ``set(...)`` and ``run()``; a learner uses the same path through the button.
    A run raises no ``Exception`` and leaves no traceback in the panel: a refusal (``LabInputError``) or
    any other error becomes one status line starting with "⚠", ``run()`` returns None, and ``error`` keeps
    the exception for whoever wants the full traceback (``raise panel.error``).

    Args:
        fn: called with the controls' values as keyword arguments; returns a result.
        controls: ``{argument name: ipywidgets control}``.
        render: shows a result inside the output area (default: ``display(result)``).
        title: a heading shown above the controls.
        memory_estimate: optional ``(**values) -> bytes``; runs over ``memory_budget`` are refused.
        memory_budget: bytes allowed per run.

    Example:
        >>> panel = Panel(lambda n: n * n, {"n": W.IntSlider(value=3, min=1, max=10)})
        >>> panel.set(n=4).run()
        16
        >>> def parse(n):
        ...     return int("3²")
        >>> Panel(parse, {"n": W.IntSlider(value=3, min=1, max=10)}).run() is None
        True
    """

    def __init__(self, fn: Callable[..., object], controls: Mapping[str, W.ValueWidget],
                 render: Callable[[object], None] | None = None, title: str = "",
                 memory_estimate: Callable[..., int] | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET):
        require_callable(fn, "fn", "a function of the controls' values")
        if not isinstance(controls, Mapping):
            raise LabInputError(f"controls must be a dict {{argument name: ipywidgets control}}; "
                                f"got {type(controls).__name__}.")
        for name, control in controls.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise LabInputError(f"control names must be fn's argument names; got {name!r}.")
            if not isinstance(control, W.ValueWidget):
                raise LabInputError(f"control {name!r} must be an ipywidgets value widget (IntSlider, Checkbox, ...).")
        try:
            inspect.signature(fn).bind(**dict.fromkeys(controls))
        except TypeError as error:
            raise LabInputError(f"fn cannot take the controls as keyword arguments ({error}); name each control "
                                f"after one of fn's arguments. Controls: {sorted(controls)}.") from None
        except ValueError:  # no signature to inspect (some builtins): the first run will tell
            pass
        if render is not None:
            require_callable(render, "render", "a function result -> None that displays it")
        if memory_estimate is not None:
            require_callable(memory_estimate, "memory_estimate", "a function (**values) -> bytes")
        memory_budget = require_positive_int(memory_budget, "memory_budget")
        if not isinstance(title, str):
            raise LabInputError(f"title must be a string; got {type(title).__name__}.")
        self.fn, self.controls, self.render = fn, dict(controls), render
        self.memory_estimate, self.memory_budget = memory_estimate, memory_budget
        self.result: object = None
        self.error: BaseException | None = None
        self.button = W.Button(description="Run", button_style="primary", icon="play")
        self.status = W.HTML()
        self.output = W.Output()
        self.button.on_click(lambda _button: self.run())
        for name, control in self.controls.items():
            if not control.description:
                control.description = name
            control.style = {"description_width": "initial"}
        heading = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.widget = W.VBox(heading + [W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")),
                                        W.HBox([self.button, self.status]), self.output])

    def values(self) -> dict[str, object]:
        """The controls' current values, as ``fn`` will receive them."""
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **values: object) -> Panel:
        """Set control values from Python (as a learner would by hand); returns the panel.

        A value is checked before it is assigned, so a refused value leaves the control as it was; range
        sliders are checked like scalar ones (nothing is silently clamped).

        Raises:
            LabInputError: for an unknown control or a value the control does not accept (out of range,
                not finite, or changed by the control, e.g. 2.5 for an integer slider).
        """
        for name, value in values.items():
            if name not in self.controls:
                raise LabInputError(f"no control named {name!r}; controls: {sorted(self.controls)}.")
            control = self.controls[name]
            _refuse_out_of_range(name, control, value)
            previous = control.value
            try:
                control.value = value
            except Exception as error:
                raise LabInputError(f"{name}={value!r} was refused by its {type(control).__name__}: "
                                    f"{one_line(str(error))}") from None
            got = control.value
            same = (tuple(got) == tuple(value) if isinstance(value, (list, tuple)) and isinstance(got, (list, tuple))
                    else got == value)
            if not same:
                control.value = previous
                raise LabInputError(f"{name}={value!r} would become {got!r} in its {type(control).__name__}; "
                                    "pass a value it holds exactly (e.g. an int for an IntSlider, one of a "
                                    "Dropdown's options).")
        return self

    def _check_memory(self, values: dict[str, object]) -> str:
        """Empty when the run fits the memory budget, else the refusal to show."""
        if self.memory_estimate is None:
            return ""
        need = self.memory_estimate(**values)
        if isinstance(need, bool) or not isinstance(need, numbers.Real) or not math.isfinite(need) or need < 0:
            raise LabInputError(f"memory_estimate returned {need!r} for {values}; it must return a finite number "
                                "of bytes, so the panel can tell whether the run fits.")
        if need > self.memory_budget:
            return (f"not run: needs about {need / 2**20:.0f} MiB, over the panel's "
                    f"{self.memory_budget / 2**20:.0f} MiB budget; choose smaller sizes.")
        return ""

    def _attempt(self, values: dict[str, object], show: bool) -> bool:
        """Check, compute and (in a kernel) render; True when it worked. Never raises an ``Exception``."""
        try:
            refusal = self._check_memory(values)
            if refusal:
                self.status.value = f"⚠ {html.escape(refusal)}"
                return False
            result = self.fn(**values)
            _refuse_non_finite(result, self.fn)
            if show:
                (self.render or display)(result)
            self.result = result
            return True
        except LabInputError as error:
            self.error = error
            self.status.value = f"⚠ {html.escape(one_line(str(error), STATUS_MAX_CHARS))}"
        except Exception as error:  # the learner's code failed: say what and where, in one line
            self.error = error
            self.status.value = (f"⚠ stopped by an error, {html.escape(describe_error(error, STATUS_MAX_CHARS))}. "
                                 "The panel's .error holds the full exception.")
        return False

    def run(self) -> object:
        """Run ``fn`` with the current values, render the result into the output area and return it.

        No ``Exception`` is raised (inside a kernel ipywidgets' output area would swallow it and print a
        traceback instead):
        a run over the memory budget, a refusal of its input (``LabInputError``) or any other error is shown
        in the panel's status line as one line starting with "⚠", the output area is cleared, ``error``
        keeps the exception and None is returned. ``KeyboardInterrupt`` (the kernel's stop button) still
        interrupts, after the status says so.

        Returns:
            The result of ``fn``, or None when the run did not complete.
        """
        values = self.values()
        self.button.disabled = True
        self.status.value = "running…"
        self.error, self.result = None, None
        interrupted: BaseException | None = None
        in_kernel = _in_kernel()
        try:
            if in_kernel:
                with self.output:
                    self.output.clear_output(wait=True)
                    try:
                        ok = self._attempt(values, show=True)
                    except BaseException as error:  # KeyboardInterrupt: re-raised below, outside the output
                        interrupted, ok = error, False
                if not ok:
                    self.output.clear_output()
            else:  # plain Python (tests): compute only; render functions are tested on their own
                ok = self._attempt(values, show=False)
        except BaseException as error:
            interrupted, ok = error, False
        finally:
            self.button.disabled = False
        if interrupted is not None:
            self.error = interrupted
            self.status.value = f"⚠ interrupted ({type(interrupted).__name__}); press Run to start again."
            raise interrupted
        if not ok:
            return None
        self.status.value = "done"
        return self.result

    def _ipython_display_(self) -> None:
        display(self.widget)
