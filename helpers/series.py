"""Instruments for notebook 04's forecasting sections: the sunspot data, scaling, windows, errors, plots, a panel.

The model, its training loop and the generation loops are the notebook's own code; this module only loads
the data safely (``load_sunspots`` checks the file's SHA-256, recorded in ``data/README.md``), standardises
it, cuts training windows, scores forecasts (``rmse``, ``rmse_by_horizon``) and draws them.

The series is the *version 1* yearly mean sunspot number, 1700–2008 (public domain, NOAA's NGDC, as shipped
by statsmodels). The sunspot index was recalibrated in 2015 (version 2); version 2 values are larger (the
factor between the versions is not constant over the years, and this course does not measure it), so numbers
here are not comparable with today's SILSO series.
"""
from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as W
import torch

from helpers.lines import line_style
from helpers.validation import LabInputError, require_file, require_positive_int, require_tensor, run_specimen
from helpers.widgets import Panel

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SUNSPOTS_PATH = DATA_DIR / "sunspots_yearly.csv"
SUNSPOTS_SHA256 = "f67889b1d9002cd5227f0e0ef54e35b419cdd85a31279adef6f73fb41e5c0a9b"
RESTORE = "Restore it with 'git checkout -- data/sunspots_yearly.csv'."


@dataclass(frozen=True)
class Series:
    """A yearly series: ``years`` (int64) and ``values`` (float32), both of shape ``(n,)``."""

    name: str
    years: torch.Tensor
    values: torch.Tensor
    unit: str

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def index_of(self, year: int) -> int:
        """The position of ``year`` in the series.

        Example:
            >>> load_sunspots().index_of(1930)
            230
        """
        first, last = int(self.years[0]), int(self.years[-1])
        if isinstance(year, bool) or not isinstance(year, int) or not first <= year <= last:
            raise LabInputError(f"year must be an int in {first}..{last}; got {year!r}.")
        return year - first


def sha256_of(path: Path | str) -> str:
    """The SHA-256 of a file's bytes, as hex (what ``sha256sum`` prints).

    Example:
        >>> sha256_of(SUNSPOTS_PATH) == SUNSPOTS_SHA256
        True
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_sunspots(path: Path | str | None = None, expected_sha256: str = SUNSPOTS_SHA256) -> Series:
    """Load the yearly sunspot numbers (version 1 series, 1700–2008) after checking the file's SHA-256.

    Args:
        path: the CSV (default ``data/sunspots_yearly.csv``), columns ``YEAR``, ``SUNACTIVITY``.
        expected_sha256: the checksum the file must have (``data/README.md`` records it).

    Returns:
        ``Series`` with one value per year.

    Raises:
        LabInputError: if the path is missing or a folder, its checksum differs, or its content is not
            a yearly series.

    Example:
        >>> s = load_sunspots()
        >>> len(s), int(s.years[0]), int(s.years[-1]), round(float(s.values[s.index_of(1957)]), 1)
        (309, 1700, 2008, 190.2)
    """
    path = require_file(path if path is not None else SUNSPOTS_PATH, "path",
                        f"The course ships it as {SUNSPOTS_PATH.name} in data/. {RESTORE}")
    digest = sha256_of(path)
    if digest != expected_sha256:
        raise LabInputError(f"{path.name} has SHA-256 {digest[:16]}… but {expected_sha256[:16]}… was expected "
                            "(data/README.md): the file was changed or damaged (an edit, a truncated copy, a "
                            f"line-ending conversion). {RESTORE}")
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
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise LabInputError(f"{path.name} holds a value that is negative, NaN or infinite; sunspot numbers are not.")
    return Series("yearly mean sunspot number (version 1)", torch.tensor(years),
                  torch.tensor(values, dtype=torch.float32), "sunspot number (v1)")


@dataclass(frozen=True)
class Scaler:
    """Standardisation ``(v - mean) / std``. Fit it on the training part only, then apply it to everything."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: torch.Tensor) -> Scaler:
        """Scaler with the mean and (population) standard deviation of ``values``.

        Example:
            >>> Scaler.fit(torch.tensor([1.0, 3.0]))
            Scaler(mean=2.0, std=1.0)
        """
        values = require_tensor(values, "values", ndim=1, layout="(time,)")
        if values.shape[0] < 2 or not bool(torch.isfinite(values).all()):
            raise LabInputError("values must hold at least two finite numbers to fit a scaler.")
        std = float(values.std(unbiased=False))
        if std == 0:
            raise LabInputError("values are constant: there is nothing to standardise.")
        return cls(float(values.mean()), std)

    def transform(self, values: torch.Tensor) -> torch.Tensor:
        """``(values - mean) / std``.

        Example:
            >>> Scaler(2.0, 1.0).transform(torch.tensor([3.0]))
            tensor([1.])
        """
        return (values - self.mean) / self.std

    def inverse(self, values: torch.Tensor) -> torch.Tensor:
        """``values * std + mean``: back to the original units.

        Example:
            >>> Scaler(2.0, 1.0).inverse(torch.tensor([1.0]))
            tensor([3.])
        """
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
    require_positive_int(window, "window", maximum=100_000)
    require_positive_int(stride, "stride", maximum=100_000)
    if window + 1 > values.shape[0]:
        raise LabInputError(f"window={window} needs at least {window + 1} values (one more for the last target); "
                            f"the series has {values.shape[0]}. Choose a shorter window.")
    starts = range(0, values.shape[0] - window, stride)
    inputs = torch.stack([values[s:s + window] for s in starts])
    targets = torch.stack([values[s + 1:s + window + 1] for s in starts])
    return inputs[..., None], targets[..., None]


def rmse(predictions: torch.Tensor, truth: torch.Tensor) -> float:
    """Root-mean-square error of ``predictions`` against ``truth`` (same shape), as a float.

    Example:
        >>> round(rmse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])), 4)
        2.2361
    """
    predictions = require_tensor(predictions, "predictions")
    truth = require_tensor(truth, "truth")
    if predictions.shape != truth.shape or predictions.numel() == 0:
        raise LabInputError(f"predictions {tuple(predictions.shape)} and truth {tuple(truth.shape)} must have the "
                            "same, non-empty shape.")
    return float(((predictions.double() - truth.double()) ** 2).mean().sqrt())


def rmse_by_horizon(forecasts: torch.Tensor, series: torch.Tensor, origins: torch.Tensor | list[int]) -> torch.Tensor:
    """RMSE at each forecast horizon, over many forecast origins.

    Args:
        forecasts: ``(origins, horizons)``; row ``i`` holds the forecasts of ``series[o]``, ``series[o+1]``, ...
            made from the values before ``o = origins[i]`` only.
        series: the true values, ``(time,)``, in the forecasts' units.
        origins: the index of each row's first forecast value.

    Returns:
        ``(horizons,)``: entry ``h - 1`` is the RMSE of all ``h``-step-ahead forecasts.

    Example:
        >>> rmse_by_horizon(torch.tensor([[1.0, 2.0], [2.0, 3.0]]), torch.tensor([0.0, 1.0, 2.0, 4.0]), [1, 2])
        tensor([0.0000, 0.7071], dtype=torch.float64)
    """
    forecasts = require_tensor(forecasts, "forecasts", ndim=2, layout="(origins, horizons)")
    series = require_tensor(series, "series", ndim=1, layout="(time,)")
    origins = [int(o) for o in origins]
    if len(origins) != forecasts.shape[0]:
        raise LabInputError(f"{len(origins)} origins for {forecasts.shape[0]} rows of forecasts; give one per row.")
    horizons = forecasts.shape[1]
    if min(origins) < 0 or max(origins) + horizons > series.shape[0]:
        raise LabInputError(f"origins + {horizons} horizons run past the series ({series.shape[0]} values).")
    truth = torch.stack([series[o:o + horizons] for o in origins])
    return ((forecasts.double() - truth.double()) ** 2).mean(dim=0).sqrt()


def plot_forecasts(series: Series, split: int, predictions: Mapping[str, torch.Tensor], context: int = 40, ax=None):
    """The truth around ``split`` and named predictions of the years from ``split`` on, with their RMSE.

    Args:
        series: the data (original units).
        split: index of the first predicted year.
        predictions: ``{label: (steps,) values in original units}``.
        context: how many years before ``split`` to show.
        ax: an existing matplotlib ``Axes`` or None.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
    start = max(split - context, 0)
    ax.plot(series.years[start:split], series.values[start:split], color="0.6", label="context (read by the model)")
    steps = max((p.shape[0] for p in predictions.values()), default=1)
    years, truth = series.years[split:split + steps], series.values[split:split + steps]
    ax.plot(years, truth, color="k", marker=".", label="truth (held out)")
    for i, (label, values) in enumerate(predictions.items()):
        n = values.shape[0]
        ax.plot(years[:n], values, **line_style(i, n),
                label=f"{label} (RMSE {rmse(values, truth[:n]):.1f})")
    ax.axvline(float(series.years[split]) - 0.5, color="0.3", lw=0.8, ls=":")
    ax.set_xlabel("year")
    ax.set_ylabel(series.unit)
    ax.set_title(f"{steps} years after {int(series.years[split]) - 1}")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_rmse_by_horizon(curves: Mapping[str, torch.Tensor], unit: str = "", ax=None):
    """RMSE against forecast horizon (years ahead), one line per forecaster.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.4), constrained_layout=True)
    for k, (label, curve) in enumerate(curves.items()):
        curve = torch.as_tensor(curve)
        horizons = range(1, curve.shape[0] + 1)
        ax.plot(horizons, curve, label=label, **line_style(k, curve.shape[0]))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("forecast horizon (years ahead)")
    ax.set_ylabel(f"RMSE ({unit})" if unit else "RMSE")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def make_forecast_panel(forecast: Callable[[int, bool], torch.Tensor], series: Series, split: int,
                        steps: int = 30) -> Panel:
    """A panel over the notebook's forecaster: how many years, and teacher forcing on or off.

    Args:
        forecast: ``forecast(steps, teacher_forcing) -> (steps,)`` predictions of the years from ``split`` on, in
            original units; the notebook passes its own generation functions.
        series: the data, for the truth and the plot.
        split: index of the first predicted year.
        steps: the starting number of years.

    Returns:
        ``Panel``; ``panel.run()`` returns the predictions.

    Example:
        >>> s = load_sunspots()
        >>> panel = make_forecast_panel(lambda steps, teacher_forcing: s.values[200:200 + steps], s, split=200)
        >>> panel.set(steps=4, teacher_forcing=True).run().shape
        torch.Size([4])
    """
    if not callable(forecast):
        raise LabInputError(f"forecast must be a function (steps, teacher_forcing) -> predictions; "
                            f"got {type(forecast).__name__}.")
    held_out = len(series) - require_positive_int(split, "split", maximum=len(series) - 1)
    controls = {"steps": W.IntSlider(value=min(steps, held_out), min=1, max=held_out, description="years ahead"),
                "teacher_forcing": W.Checkbox(value=False, description="teacher forcing")}

    def run(steps: int, teacher_forcing: bool) -> torch.Tensor:
        predictions = run_specimen(forecast, "the forecast function", steps, teacher_forcing)
        if not isinstance(predictions, torch.Tensor) or predictions.shape != (steps,):
            raise LabInputError(f"forecast({steps}, {teacher_forcing}) must return a tensor of shape ({steps},).")
        return predictions

    def render(predictions: torch.Tensor) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        label = "one step ahead (teacher forcing)" if controls["teacher_forcing"].value else "closed loop"
        ax = plot_forecasts(series, split, {label: predictions})
        display(ax.figure)
        plt.close(ax.figure)

    return Panel(run, controls, render=render, title="Forecast the years after the training data")
