"""Experiment panels: controls + Run button + output over a plain function, testable without a browser."""
from __future__ import annotations

import html
from collections.abc import Callable, Mapping

import ipywidgets as W
from IPython.display import display

from helpers.validation import LabInputError

def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes; a run needing more is refused so no setting can exhaust a laptop


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

    Example:
        >>> largest_within_budget(lambda n: n * 1000, upper=10**6, budget_bytes=50_000)
        50
    """
    if estimate_bytes(1) > budget_bytes:
        raise LabInputError(f"even size 1 needs {estimate_bytes(1):,} bytes, over the budget of {budget_bytes:,}.")
    low, high = 1, upper
    while low < high:
        mid = (low + high + 1) // 2
        if estimate_bytes(mid) <= budget_bytes:
            low = mid
        else:
            high = mid - 1
    return low


class Panel:
    """Controls, a Run button and an output area over a plain function ``fn(**control_values)``.

    The panel holds no experiment logic: ``fn`` computes a result, ``render`` shows it. Tests drive
    it from Python with ``set(...)`` and ``run()``; a learner uses the same path through the button.

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
    """

    def __init__(self, fn: Callable[..., object], controls: Mapping[str, W.ValueWidget],
                 render: Callable[[object], None] | None = None, title: str = "",
                 memory_estimate: Callable[..., int] | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET):
        if not callable(fn):
            raise LabInputError(f"fn must be callable; got {type(fn).__name__}.")
        for name, control in controls.items():
            if not isinstance(control, W.ValueWidget):
                raise LabInputError(f"control {name!r} must be an ipywidgets value widget (IntSlider, Checkbox, ...).")
        self.fn, self.controls, self.render = fn, dict(controls), render
        self.memory_estimate, self.memory_budget = memory_estimate, memory_budget
        self.result: object = None
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

    def set(self, **values: object) -> "Panel":
        """Set control values from Python (as a learner would by hand); returns the panel.

        Raises:
            LabInputError: for an unknown control or a value the control does not accept (out of range).
        """
        for name, value in values.items():
            if name not in self.controls:
                raise LabInputError(f"no control named {name!r}; controls: {sorted(self.controls)}.")
            control = self.controls[name]
            try:
                control.value = value
            except Exception as error:
                raise LabInputError(f"{name}={value!r} was refused by its control: {error}") from None
            if control.value != value and not isinstance(value, (list, tuple)):
                low, high = getattr(control, "min", None), getattr(control, "max", None)
                raise LabInputError(f"{name}={value!r} is outside the allowed range [{low}, {high}]; "
                                    "the range is bounded to keep each run short.")
        return self

    def run(self) -> object:
        """Run ``fn`` with the current values, render the result into the output area and return it.

        A run whose memory estimate exceeds the budget, or whose function rejects its input, is not
        raised: the reason is shown in the panel's status line and ``None`` is returned.
        """
        values = self.values()
        if self.memory_estimate is not None:
            need = self.memory_estimate(**values)
            if need > self.memory_budget:
                self.status.value = (f"⚠ not run: needs about {need / 2**20:.0f} MiB, over the panel's "
                                     f"{self.memory_budget / 2**20:.0f} MiB budget; choose smaller sizes.")
                return None
        self.button.disabled = True
        self.status.value = "running…"
        try:
            if _in_kernel():
                with self.output:
                    self.output.clear_output(wait=True)
                    self.result = self.fn(**values)
                    (self.render or display)(self.result)
            else:  # plain Python (tests): compute only; render functions are tested on their own
                self.result = self.fn(**values)
            self.status.value = "done"
        except LabInputError as error:
            self.status.value = f"⚠ {html.escape(str(error))}"
            return None
        finally:
            self.button.disabled = False
        return self.result

    def _ipython_display_(self) -> None:
        display(self.widget)
