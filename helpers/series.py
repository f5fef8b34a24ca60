"""A real time series for notebook 04: loading it safely, windowing it, a tiny next-step model, and generation.

The data are the yearly sunspot numbers 1700–2008 (public domain, from NOAA's NGDC, as shipped by
statsmodels); ``data/README.md`` gives their origin, licence and SHA-256, which ``load_sunspots`` checks.

Generation is where iterating a recurrent model step by step is unavoidable: in *free running* each
prediction becomes the next input, so step t+1 cannot start before step t has produced its output. With
*teacher forcing* the next input is the true value, known in advance, so one fused call does the same work.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as W
import torch
from torch import nn

from helpers.device import using_threads
from helpers.validation import LabInputError, require_positive_int, require_tensor
from helpers.widgets import Panel

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SUNSPOTS_PATH = DATA_DIR / "sunspots_yearly.csv"
SUNSPOTS_SHA256 = "f67889b1d9002cd5227f0e0ef54e35b419cdd85a31279adef6f73fb41e5c0a9b"


@dataclass(frozen=True)
class Series:
    """A yearly series: ``years`` (int64) and ``values`` (float32), both of shape ``(n,)``."""

    name: str
    years: torch.Tensor
    values: torch.Tensor
    unit: str

    def __len__(self) -> int:
        return int(self.values.shape[0])


def sha256_of(path: Path | str) -> str:
    """The SHA-256 of a file's bytes, as hex (what ``sha256sum`` prints).

    Example:
        >>> sha256_of(SUNSPOTS_PATH) == SUNSPOTS_SHA256
        True
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_sunspots(path: Path | str | None = None, expected_sha256: str = SUNSPOTS_SHA256) -> Series:
    """Load the yearly sunspot numbers after checking the file's SHA-256.

    Args:
        path: the CSV (default ``data/sunspots_yearly.csv``), columns ``YEAR``, ``SUNACTIVITY``.
        expected_sha256: the checksum the file must have (``data/README.md`` records it).

    Returns:
        ``Series`` with one value per year.

    Raises:
        LabInputError: if the file is missing, its checksum differs, or its content is not a yearly series.

    Example:
        >>> s = load_sunspots()
        >>> len(s), int(s.years[0]), int(s.years[-1])
        (309, 1700, 2008)
    """
    path = Path(path) if path is not None else SUNSPOTS_PATH
    if not path.is_file():
        raise LabInputError(f"{path} not found. It ships with the course in data/; restore it with "
                            "'git checkout -- data/sunspots_yearly.csv'.")
    digest = sha256_of(path)
    if digest != expected_sha256:
        raise LabInputError(f"{path.name} has SHA-256 {digest[:16]}… but {expected_sha256[:16]}… was expected "
                            "(data/README.md): the file was changed or damaged (an edit, a truncated copy, a "
                            "line-ending conversion). Restore it with 'git checkout -- data/sunspots_yearly.csv'.")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or [c.strip() for c in rows[0]] != ["YEAR", "SUNACTIVITY"]:
        raise LabInputError(f"{path.name} must start with the header YEAR,SUNACTIVITY.")
    try:
        years = [int(float(r[0])) for r in rows[1:]]
        values = [float(r[1]) for r in rows[1:]]
    except (ValueError, IndexError) as error:
        raise LabInputError(f"{path.name} has a row that is not 'year,number' ({error}).") from None
    if len(years) < 2 or years != list(range(years[0], years[0] + len(years))):
        raise LabInputError(f"{path.name} must hold consecutive years, one row each.")
    return Series("yearly sunspot number", torch.tensor(years), torch.tensor(values, dtype=torch.float32),
                  "mean sunspot number per year")


@dataclass(frozen=True)
class Scaler:
    """Standardisation ``(v - mean) / std`` with the statistics of the training part only."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: torch.Tensor) -> "Scaler":
        """Scaler with the mean and standard deviation of ``values``.

        Example:
            >>> Scaler.fit(torch.tensor([1.0, 3.0]))
            Scaler(mean=2.0, std=1.0)
        """
        values = require_tensor(values, "values", ndim=1, layout="(time,)")
        std = float(values.std(unbiased=False))
        if std == 0:
            raise LabInputError("values are constant: there is nothing to standardise.")
        return cls(float(values.mean()), std)

    def transform(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / self.std

    def inverse(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.std + self.mean


def make_windows(values: torch.Tensor, window: int, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a 1-D series into next-step training pairs: inputs ``v[s:s+w]``, targets ``v[s+1:s+w+1]``.

    Args:
        values: ``(time,)``.
        window: time steps per window.
        stride: steps between window starts.

    Returns:
        ``(inputs, targets)``, each ``(windows, window, 1)`` (batch, time, features).

    Example:
        >>> x, y = make_windows(torch.arange(6.0), window=3, stride=2)
        >>> x[:, :, 0].tolist(), y[:, :, 0].tolist()
        ([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]], [[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    """
    values = require_tensor(values, "values", ndim=1, layout="(time,)")
    require_positive_int(window, "window")
    require_positive_int(stride, "stride")
    if window + 1 > values.shape[0]:
        raise LabInputError(f"window={window} needs at least {window + 1} values (one more for the last target); "
                            f"the series has {values.shape[0]}. Choose a shorter window.")
    starts = range(0, values.shape[0] - window, stride)
    inputs = torch.stack([values[s:s + window] for s in starts])
    targets = torch.stack([values[s + 1:s + window + 1] for s in starts])
    return inputs[..., None], targets[..., None]


class NextStepModel(nn.Module):
    """A GRU reading one value per step and a linear read-out predicting the next value.

    ``forward(x, state)`` takes ``(batch, time, 1)`` and returns ``(predictions (batch, time, 1), state)``,
    so it can be called on a whole sequence or one step at a time with the state carried.

    Example:
        >>> model = NextStepModel(hidden_size=8)
        >>> pred, h = model(torch.randn(2, 5, 1))
        >>> tuple(pred.shape), tuple(h.shape)
        ((2, 5, 1), (1, 2, 8))
    """

    def __init__(self, hidden_size: int = 24, num_layers: int = 1):
        super().__init__()
        require_positive_int(hidden_size, "hidden_size", maximum=512)
        require_positive_int(num_layers, "num_layers", maximum=4)
        self.rnn = nn.GRU(1, hidden_size, num_layers=num_layers, batch_first=True)
        self.readout = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = require_tensor(x, "x", ndim=3, layout="(batch, time, 1)")
        if x.shape[-1] != 1:
            raise LabInputError(f"x must have one feature per step (batch, time, 1); got shape {tuple(x.shape)}.")
        out, state = self.rnn(x, state)
        return self.readout(out), state


@dataclass
class TrainResult:
    """A trained model with its loss curve and the scaler and split it was trained with."""

    model: NextStepModel
    losses: list[float]
    scaler: Scaler
    split: int          # index of the first value the model never saw
    seconds: float


def train_next_step(series: Series, split: int, window: int = 32, hidden_size: int = 24, epochs: int = 150,
                    lr: float = 0.02, seed: int = 0, threads: int = 1) -> TrainResult:
    """Train a ``NextStepModel`` on ``series.values[:split]`` (full batch, Adam, mean squared error).

    Args:
        series: the data; only the part before ``split`` is used (scaler statistics included).
        split: index of the first held-out value.
        window, hidden_size, epochs, lr: training settings; the defaults take a few seconds on a CPU.
        seed: seeds initialisation, so a rerun on the same machine gives the same model.
        threads: intra-op threads while training (restored afterwards). The model is tiny, so one thread
            is enough, and more can be far slower on a machine whose cores are busy with other work.

    Returns:
        ``TrainResult``; ``losses`` holds the training loss of every epoch (scaled units).

    Example:
        >>> r = train_next_step(load_sunspots(), split=100, window=16, hidden_size=4, epochs=3)
        >>> len(r.losses), r.split
        (3, 100)
    """
    import time

    require_positive_int(split, "split", maximum=len(series) - 1)
    require_positive_int(epochs, "epochs", maximum=5000)
    scaler = Scaler.fit(series.values[:split])
    inputs, targets = make_windows(scaler.transform(series.values[:split]), window)
    torch.manual_seed(seed)
    model = NextStepModel(hidden_size)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    start = time.perf_counter()
    with using_threads(threads):
        for _ in range(epochs):
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(model(inputs)[0], targets)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
    return TrainResult(model.eval(), losses, scaler, split, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------
# Generation (all in scaled units; 1-D tensors of values)
# ---------------------------------------------------------------------------------------------------

def _step_input(value: torch.Tensor) -> torch.Tensor:
    return value.reshape(1, 1, 1)


def warm_up(model: nn.Module, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Read all of ``context`` but its last value in one fused call; return (last value, state).

    The pair is the starting point of generation: feed the last value with the state to get the
    first prediction (``free_run`` or ``teacher_forced_loop`` do that).

    Example:
        >>> inp, h = warm_up(NextStepModel(4), torch.randn(10))
        >>> tuple(inp.shape), tuple(h.shape)
        ((), (1, 1, 4))
    """
    context = require_tensor(context, "context", ndim=1, layout="(time,)")
    if context.shape[0] < 2:
        raise LabInputError("context needs at least two values: all but the last warm the state up.")
    with torch.no_grad():
        _, state = model(context[:-1].reshape(1, -1, 1))
    return context[-1], state


def free_run(model: nn.Module, inp: torch.Tensor, state: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``steps`` values, feeding each prediction back in as the next input.

    Args:
        model: a ``NextStepModel``.
        inp: the next input, not yet fed (a scalar tensor).
        state: the state before ``inp``.
        steps: how many values to generate.

    Returns:
        ``(predictions (steps,), state)``. To continue, call again with ``predictions[-1]`` and this state:
        generating in chunks this way gives the same values as one long call.

    Example:
        >>> model = NextStepModel(4); inp, h = warm_up(model, torch.randn(10))
        >>> whole, _ = free_run(model, inp, h, 6)
        >>> first, h2 = free_run(model, inp, h, 4)
        >>> rest, _ = free_run(model, first[-1], h2, 2)
        >>> torch.equal(torch.cat([first, rest]), whole)
        True
    """
    require_positive_int(steps, "steps", maximum=10_000)
    predictions = []
    with torch.no_grad():
        for _ in range(steps):
            out, state = model(_step_input(inp), state)
            inp = out.reshape(())
            predictions.append(inp)
    return torch.stack(predictions), state


def teacher_forced_loop(model: nn.Module, context: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """One-step-ahead predictions of ``truth``, step by step: after each step the *true* value is fed in.

    Example:
        >>> teacher_forced_loop(NextStepModel(4), torch.randn(10), torch.randn(5)).shape
        torch.Size([5])
    """
    truth = require_tensor(truth, "truth", ndim=1, layout="(time,)")
    inp, state = warm_up(model, context)
    predictions = []
    with torch.no_grad():
        for value in truth:
            out, state = model(_step_input(inp), state)
            predictions.append(out.reshape(()))
            inp = value
    return torch.stack(predictions)


def teacher_forced_fused(model: nn.Module, context: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The same predictions as ``teacher_forced_loop`` in one fused call: every input is known in advance.

    Example:
        >>> m, c, t = NextStepModel(4), torch.randn(10), torch.randn(5)
        >>> bool((teacher_forced_fused(m, c, t) - teacher_forced_loop(m, c, t)).abs().max() < 1e-5)
        True
    """
    context = require_tensor(context, "context", ndim=1, layout="(time,)")
    truth = require_tensor(truth, "truth", ndim=1, layout="(time,)")
    with torch.no_grad():
        out, _ = model(torch.cat([context, truth[:-1]]).reshape(1, -1, 1))
    return out.reshape(-1)[-truth.shape[0]:]


def generate(model: nn.Module, context: torch.Tensor, steps: int, truth: torch.Tensor | None = None,
             teacher_forcing: bool = False) -> torch.Tensor:
    """Predict ``steps`` values after ``context``: free running, or teacher-forced with ``truth``.

    Example:
        >>> generate(NextStepModel(4), torch.randn(10), 3).shape
        torch.Size([3])
    """
    require_positive_int(steps, "steps", maximum=10_000)
    if teacher_forcing:
        if truth is None or truth.shape[0] < steps:
            raise LabInputError("teacher forcing feeds the true values: pass truth with at least `steps` values.")
        return teacher_forced_loop(model, context, truth[:steps])
    inp, state = warm_up(model, context)
    return free_run(model, inp, state, steps)[0]


@dataclass(frozen=True)
class GenerationResult:
    """Truth and predictions (original units) for the years after a split; ``None`` for a mode not run."""

    years: torch.Tensor
    truth: torch.Tensor
    teacher_forced: torch.Tensor | None
    free_running: torch.Tensor | None
    context_years: torch.Tensor
    context: torch.Tensor
    unit: str

    def rmse(self, mode: str) -> float:
        """Root-mean-square error of ``"teacher_forced"`` or ``"free_running"`` against the truth."""
        if mode not in ("teacher_forced", "free_running") or getattr(self, mode) is None:
            raise LabInputError(f"mode must be a mode that was run: 'teacher_forced' or 'free_running'; got {mode!r}.")
        return float(((getattr(self, mode) - self.truth) ** 2).mean().sqrt())


def run_generation(trained: TrainResult, series: Series, steps: int, teacher_forcing: bool | None = None,
                   context_shown: int = 40) -> GenerationResult:
    """Generate ``steps`` values after ``trained.split`` from all earlier values, in original units.

    Args:
        trained: from ``train_next_step``.
        series: the same series it was trained on.
        steps: how many years to predict (at most the held-out part).
        teacher_forcing: True or False for one mode; None for both.
        context_shown: how many years before the split to keep for plotting.

    Example:
        >>> s = load_sunspots(); r = train_next_step(s, split=250, window=16, hidden_size=4, epochs=2)
        >>> g = run_generation(r, s, steps=5)
        >>> tuple(g.truth.shape), g.free_running is not None, g.teacher_forced is not None
        ((5,), True, True)
    """
    held_out = len(series) - trained.split
    require_positive_int(steps, "steps", maximum=held_out)
    scaled = trained.scaler.transform(series.values)
    context, truth = scaled[:trained.split], scaled[trained.split:trained.split + steps]
    modes = {"teacher_forced": teacher_forcing in (None, True), "free_running": teacher_forcing in (None, False)}
    out = {mode: trained.scaler.inverse(generate(trained.model, context, steps, truth, mode == "teacher_forced"))
           if wanted else None for mode, wanted in modes.items()}
    shown = slice(max(trained.split - context_shown, 0), trained.split)
    return GenerationResult(series.years[trained.split:trained.split + steps], series.values[trained.split:][:steps],
                            out["teacher_forced"], out["free_running"], series.years[shown], series.values[shown],
                            series.unit)


def plot_generation(result: GenerationResult, ax=None):
    """Truth, teacher-forced and free-running predictions against the year.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
    ax.plot(result.context_years, result.context, color="0.6", label="context (read by the model)")
    ax.plot(result.years, result.truth, color="k", marker=".", label="truth (held out)")
    if result.teacher_forced is not None:
        ax.plot(result.years, result.teacher_forced, color="C0",
                label=f"teacher forcing (RMSE {result.rmse('teacher_forced'):.1f})")
    if result.free_running is not None:
        ax.plot(result.years, result.free_running, color="C3", ls="--",
                label=f"free running (RMSE {result.rmse('free_running'):.1f})")
    ax.axvline(float(result.years[0]) - 0.5, color="0.3", lw=0.8, ls=":")
    ax.set_xlabel("year")
    ax.set_ylabel(result.unit)
    ax.set_title(f"Generating {len(result.years)} years after {int(result.years[0]) - 1}")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def _show(result: GenerationResult) -> None:
    import matplotlib.pyplot as plt
    from IPython.display import display

    ax = plot_generation(result)
    display(ax.figure)
    plt.close(ax.figure)


def make_generation_panel(trained: TrainResult, series: Series, steps: int = 30) -> Panel:
    """A panel: how many years to generate, and teacher forcing on (true inputs) or off (own predictions).

    Example:
        >>> s = load_sunspots(); r = train_next_step(s, split=250, window=16, hidden_size=4, epochs=2)
        >>> panel = make_generation_panel(r, s)
        >>> panel.set(steps=4, teacher_forcing=False).run().free_running.shape
        torch.Size([4])
    """
    held_out = len(series) - trained.split
    controls = {"steps": W.IntSlider(value=min(steps, held_out), min=1, max=held_out, description="years to generate"),
                "teacher_forcing": W.Checkbox(value=False, description="teacher forcing")}
    return Panel(lambda steps, teacher_forcing: run_generation(trained, series, steps, teacher_forcing),
                 controls, render=_show, title="Generate after the training years")
