"""minGRU: a recurrence whose gates read only x, so h_t = a_t * h_{t-1} + b_t is linear in h and the time
loop can be replaced by a scan (here in log space: ``cumsum`` and ``logcumsumexp``).

From Feng et al., "Were RNNs All We Needed?" (2024): ``z_t = sigmoid(W_z x_t)``, ``h~_t = g(W_h x_t)`` and
``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``, with ``g(v) = v + 0.5`` for v >= 0 and ``sigmoid(v)`` below, so
every h~_t > 0 and the whole recurrence can run on logarithms.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from helpers.timing import Builder
from helpers.validation import LabInputError, require_choice, require_positive_int, require_tensor

STEP_LOOP, SCAN = "minGRU step loop", "minGRU log-space scan"
MODES = ("scan", "sequential")


def g(v: torch.Tensor) -> torch.Tensor:
    """The positive activation of minGRU's candidate state: ``v + 0.5`` for v >= 0, ``sigmoid(v)`` below.

    Example:
        >>> g(torch.tensor([-100.0, 0.0, 1.0])).tolist()
        [0.0, 0.5, 1.5]
    """
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_g(v: torch.Tensor) -> torch.Tensor:
    """``log(g(v))`` computed without forming ``g(v)``: ``log(v + 0.5)`` or ``-softplus(-v)``.

    Example:
        >>> v = torch.linspace(-5, 5, 11, dtype=torch.float64)
        >>> torch.allclose(log_g(v), g(v).log())
        True
    """
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


def scan_log_space(log_a: torch.Tensor, log_b: torch.Tensor, log_h0: torch.Tensor | None = None) -> torch.Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (positive a, b, h0) without a loop over t.

    With ``A_t = a_1 ... a_t``: ``h_t = A_t * (h_0 + sum_{s<=t} b_s / A_s)``, so
    ``log h_t = log A_t + logcumsumexp_s(log b_s - log A_s)`` (the h_0 term joins the sum when given).

    Args:
        log_a, log_b: (batch, time, hidden) logarithms of the coefficients and inputs.
        log_h0: (batch, hidden) logarithm of the initial state, or None for h_0 = 0.

    Returns:
        h: (batch, time, hidden).

    Example:
        >>> a, b = torch.full((1, 3, 1), 0.5, dtype=torch.float64), torch.ones(1, 3, 1, dtype=torch.float64)
        >>> scan_log_space(a.log(), b.log()).flatten().tolist()   # 1, 0.5*1+1, 0.5*1.5+1
        [1.0, 1.5, 1.75]
    """
    require_tensor(log_a, "log_a", ndim=3, layout="(batch, time, hidden)")
    require_tensor(log_b, "log_b", ndim=3, layout="(batch, time, hidden)")
    if log_a.shape != log_b.shape:
        raise LabInputError(f"log_a and log_b must have the same shape; got {tuple(log_a.shape)} and {tuple(log_b.shape)}.")
    log_big_a = torch.cumsum(log_a, dim=1)
    terms = log_b - log_big_a
    if log_h0 is not None:
        require_tensor(log_h0, "log_h0", ndim=2, layout="(batch, hidden)")
        terms = torch.cat([log_h0.unsqueeze(1), terms], dim=1)
        log_big_a = torch.cat([torch.zeros_like(log_h0).unsqueeze(1), log_big_a], dim=1)
        return torch.exp(log_big_a + torch.logcumsumexp(terms, dim=1))[:, 1:]
    return torch.exp(log_big_a + torch.logcumsumexp(terms, dim=1))


class MinGRU(nn.Module):
    """A one-layer minGRU that can run its recurrence as a Python step loop or as a log-space scan.

    Both modes share the input projection (one matrix multiply for all steps); only the recurrence differs.

    Args:
        input_size: features per step.
        hidden_size: size of h.

    Example:
        >>> model = MinGRU(3, 4).double(); x = torch.randn(2, 9, 3, dtype=torch.float64)
        >>> scan, _ = model(x, mode="scan"); loop, _ = model(x, mode="sequential")
        >>> bool((scan - loop).abs().max() < 1e-12)
        True
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = require_positive_int(input_size, "input_size")
        self.hidden_size = require_positive_int(hidden_size, "hidden_size")
        self.linear = nn.Linear(input_size, 2 * hidden_size)  # gate pre-activation and candidate, from x only

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, mode: str = "scan"):
        """Run the layer.

        Args:
            x: (batch, time, input_size).
            h0: (batch, hidden_size) with every entry > 0, or None for zeros.
            mode: ``"scan"`` (no time loop) or ``"sequential"`` (one step per Python iteration).

        Returns:
            ``(out, h_T)``: all states (batch, time, hidden) and the last one (batch, hidden).
        """
        require_choice(mode, "mode", MODES)
        x = require_tensor(x, "x", ndim=3, layout="(batch, time, features)")
        if x.shape[2] != self.input_size or x.shape[1] < 1:
            raise LabInputError(f"x must be (batch, time >= 1, {self.input_size}); got {tuple(x.shape)}.")
        if h0 is not None:
            require_tensor(h0, "h0", ndim=2, layout="(batch, hidden)")
            if tuple(h0.shape) != (x.shape[0], self.hidden_size):
                raise LabInputError(f"h0 must be (batch, hidden) = {(x.shape[0], self.hidden_size)}; got {tuple(h0.shape)}.")
            if not bool((h0 > 0).all()):
                raise LabInputError("h0 must be positive everywhere: the scan works on log(h). Pass g(v) of any v.")
        k, v = self.linear(x).chunk(2, dim=-1)
        if mode == "scan":
            # log(1 - z) = -softplus(k), log z = -softplus(-k)
            out = scan_log_space(-F.softplus(k), -F.softplus(-k) + log_g(v), None if h0 is None else h0.log())
        else:
            z, h_tilde = torch.sigmoid(k), g(v)
            h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0
            states = []
            for z_t, h_tilde_t in zip(z.unbind(1), h_tilde.unbind(1)):
                h = torch.lerp(h, h_tilde_t, z_t)  # (1 - z) * h + z * h~: one fused op per step
                states.append(h)
            out = torch.stack(states, 1)
        return out, out[:, -1]


def mingru_builders(batch: int, input_size: int, hidden_size: int) -> dict[str, Builder]:
    """Timing builders over sequence length T: the step loop and the scan, same weights and input.

    Example:
        >>> b = mingru_builders(2, 3, 4)
        >>> [tuple(b[k](5, torch.device("cpu"))()[0].shape) for k in (STEP_LOOP, SCAN)]
        [(2, 5, 4), (2, 5, 4)]
    """
    require_positive_int(batch, "batch")

    def build(mode: str) -> Builder:
        def builder(length: int, device: torch.device) -> Callable[[], object]:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = MinGRU(input_size, hidden_size).to(device)
                x = torch.randn(batch, length, input_size).to(device)
            return lambda: model(x, mode=mode)
        return builder

    MinGRU(input_size, hidden_size)  # validates the sizes now
    return {STEP_LOOP: build("sequential"), SCAN: build("scan")}


def _output_and_grads(model: MinGRU, x: torch.Tensor, h0: torch.Tensor | None, mode: str) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    xin = x.detach().clone().requires_grad_()
    out, _ = model(xin, h0, mode=mode)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).reshape(out.shape)
    (out * weights).sum().backward()  # a fixed, sign-mixed projection so no gradient is trivial
    grads = {"output": out.detach(), "grad x": xin.grad}
    grads.update({f"grad {n}": p.grad.clone() for n, p in model.named_parameters()})
    return grads


def _relative(got: dict, want: dict) -> dict[str, float]:
    return {k: float((got[k].double() - want[k].double()).abs().max() / want[k].double().abs().max().clamp_min(1e-300))
            for k in want}


def agreement(model: MinGRU, x: torch.Tensor, h0: torch.Tensor | None = None) -> dict[str, float]:
    """How closely scan and step loop agree on one input: outputs and every gradient.

    Returns:
        ``{"output": max relative difference, "grad <name>": ...}`` (relative to the largest magnitude
        in the step loop's tensor, so values near zero do not inflate it).

    Example:
        >>> model = MinGRU(2, 3).double()
        >>> max(agreement(model, torch.randn(1, 5, 2, dtype=torch.float64)).values()) < 1e-12
        True
    """
    return _relative(_output_and_grads(model, x, h0, "scan"), _output_and_grads(model, x, h0, "sequential"))


def float32_errors(model: MinGRU, x: torch.Tensor) -> dict[str, dict[str, float]]:
    """Error of each float32 mode against a float64 step loop with the same weights and input.

    Returns:
        ``{"scan": {quantity: relative error}, "sequential": {...}}``, quantities as in ``agreement``.

    Example:
        >>> errors = float32_errors(MinGRU(2, 3), torch.randn(1, 6, 2))
        >>> sorted(errors), max(errors["sequential"].values()) < 1e-4
        (['scan', 'sequential'], True)
    """
    reference = copy.deepcopy(model).double()
    want = _output_and_grads(reference, x.double(), None, "sequential")
    model = model.float()
    return {mode: _relative(_output_and_grads(model, x.float(), None, mode), want) for mode in MODES}


def speedups_by_length(records: Sequence, fast: str = SCAN, slow: str = STEP_LOOP) -> dict[tuple[int, str], float]:
    """``{(T, mode): time of the step loop / time of the scan}`` from one run.

    Example:
        >>> from helpers.timing import TimingRecord
        >>> recs = [TimingRecord(STEP_LOOP, 8, "forward", 4.0, 0, 1, 1, "cpu"), TimingRecord(SCAN, 8, "forward", 1.0, 0, 1, 1, "cpu")]
        >>> speedups_by_length(recs)
        {(8, 'forward'): 4.0}
    """
    times = {(r.implementation, r.size, r.mode): r.median_s for r in records}
    out = {}
    for (impl, size, mode), t in sorted(times.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if impl == slow and (fast, size, mode) in times:
            out[(size, mode)] = t / times[(fast, size, mode)]
    if not out:
        raise LabInputError(f"no records with both {slow!r} and {fast!r} at the same length and mode.")
    return out


def scan_primitive_builders(batch: int, hidden: int) -> dict[str, Builder]:
    """Builders over T timing the scan's building blocks on a (batch, T, hidden) tensor against one
    element-wise op (``exp``): what each costs per element shows where the scan's time goes.

    Example:
        >>> sorted(scan_primitive_builders(2, 3))
        ['cumsum over T', 'exp (element-wise)', 'logcumsumexp over T']
    """
    require_positive_int(batch, "batch")
    require_positive_int(hidden, "hidden")

    def build(op: Callable[[torch.Tensor], torch.Tensor]) -> Builder:
        def builder(length: int, device: torch.device) -> Callable[[], object]:
            x = torch.randn(batch, length, hidden, generator=torch.Generator().manual_seed(0)).to(device)
            return lambda: op(x)
        return builder

    return {"exp (element-wise)": build(torch.exp), "cumsum over T": build(lambda x: torch.cumsum(x, 1)),
            "logcumsumexp over T": build(lambda x: torch.logcumsumexp(x, 1))}
