"""Tests for helpers.series: checksummed loading, scaling, windows, forecast errors, plots and the panel."""
import matplotlib

matplotlib.use("Agg")

import shutil

import pytest
import torch

from helpers.series import (
    SUNSPOTS_PATH,
    SUNSPOTS_SHA256,
    Scaler,
    load_sunspots,
    make_forecast_panel,
    make_windows,
    plot_forecasts,
    plot_rmse_by_horizon,
    rmse,
    rmse_by_horizon,
    sha256_of,
)
from helpers.validation import LabInputError


@pytest.fixture(scope="module")
def series():
    return load_sunspots()


# --- loading ------------------------------------------------------------------------------------------

def test_shipped_file_matches_its_recorded_checksum(series):
    assert sha256_of(SUNSPOTS_PATH) == SUNSPOTS_SHA256
    readme = (SUNSPOTS_PATH.parent / "README.md").read_text()
    assert SUNSPOTS_SHA256 in readme, "data/README.md must record the checksum the loader verifies"
    assert len(series) == 309 and series.values.dtype == torch.float32
    assert torch.equal(series.years, torch.arange(1700, 2009))
    assert float(series.values.min()) >= 0


def test_it_is_the_version_1_series(series):
    # The 2015 recalibration (version 2) raised the values; 1957's yearly mean is 190.2 in version 1.
    assert "version 1" in series.name and round(float(series.values[series.index_of(1957)]), 1) == 190.2


def test_index_of_and_its_refusals(series):
    assert series.index_of(1700) == 0 and series.index_of(2008) == 308
    for bad in (1699, 2009, 1930.0, True, "1930"):
        with pytest.raises(LabInputError, match="year must be an int in 1700..2008"):
            series.index_of(bad)


def test_loader_refuses_a_changed_file(tmp_path):
    copy = tmp_path / "sunspots_yearly.csv"
    shutil.copy(SUNSPOTS_PATH, copy)
    assert len(load_sunspots(copy)) == 309  # an exact copy passes
    copy.write_bytes(copy.read_bytes().replace(b"\n", b"\r\n"))  # a line-ending conversion
    with pytest.raises(LabInputError, match="SHA-256.*git checkout"):
        load_sunspots(copy)


def test_loader_reports_a_missing_file_a_directory_and_a_bad_layout(tmp_path):
    with pytest.raises(LabInputError, match="does not exist.*git checkout"):
        load_sunspots(tmp_path / "nothing.csv")
    with pytest.raises(LabInputError, match="is a folder, not a file"):
        load_sunspots(tmp_path)
    bad_layouts = {"year,value\n1,2\n": "header YEAR,SUNACTIVITY",
                   "YEAR,SUNACTIVITY\n1700,5\n1702,6\n": "consecutive years",
                   "YEAR,SUNACTIVITY\n1700,five\n1701,6\n": "not 'year,number'",
                   "YEAR,SUNACTIVITY\n1700,nan\n1701,6\n": "negative, NaN or infinite"}
    for text, message in bad_layouts.items():
        path = tmp_path / "bad.csv"
        path.write_text(text)
        with pytest.raises(LabInputError, match=message):
            load_sunspots(path, expected_sha256=sha256_of(path))


# --- scaler and windows ---------------------------------------------------------------------------------

def test_scaler_round_trips_and_refuses_constants_and_nan():
    values = torch.tensor([1.0, 5.0, 9.0, 2.0])
    scaler = Scaler.fit(values)
    z = scaler.transform(values)
    assert abs(float(z.mean())) < 1e-6 and abs(float(z.std(unbiased=False)) - 1) < 1e-6
    assert torch.allclose(scaler.inverse(z), values)
    with pytest.raises(LabInputError, match="constant"):
        Scaler.fit(torch.ones(4))
    with pytest.raises(LabInputError, match="two finite numbers"):
        Scaler.fit(torch.tensor([1.0, float("nan")]))
    with pytest.raises(LabInputError, match="two finite numbers"):
        Scaler.fit(torch.tensor([1.0]))


def test_scaler_fitted_on_training_years_differs_from_one_fitted_on_all(series):
    # What the notebook relies on: the held-out years change the statistics, so fitting on all leaks them.
    split = series.index_of(1930)
    train, everything = Scaler.fit(series.values[:split]), Scaler.fit(series.values)
    assert abs(train.mean - everything.mean) > 1 and abs(train.std - everything.std) > 1


def test_make_windows_targets_are_inputs_shifted_by_one():
    values = torch.arange(20.0)
    x, y = make_windows(values, window=5)
    assert x.shape == y.shape == (15, 5, 1)
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y[:, -1, 0], torch.arange(5.0, 20.0))
    with pytest.raises(LabInputError, match="needs at least 21 values"):
        make_windows(values, window=20)
    with pytest.raises(LabInputError, match=r"1-D tensor \(time,\)"):
        make_windows(values[None], window=3)
    with pytest.raises(LabInputError, match="window"):
        make_windows(values, window=10**9)


# --- errors ----------------------------------------------------------------------------------------------

def test_rmse_against_a_hand_computation_and_its_refusals():
    assert rmse(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0])) == pytest.approx((12.5) ** 0.5)
    assert rmse(torch.ones(3), torch.ones(3)) == 0.0
    with pytest.raises(LabInputError, match="same, non-empty shape"):
        rmse(torch.ones(3), torch.ones(4))
    with pytest.raises(LabInputError, match="same, non-empty shape"):
        rmse(torch.ones(0), torch.ones(0))


def test_rmse_by_horizon_aligns_each_row_with_its_origin():
    series = torch.arange(10.0)
    origins = [2, 5]
    perfect = torch.stack([series[o:o + 3] for o in origins])
    assert torch.equal(rmse_by_horizon(perfect, series, origins), torch.zeros(3, dtype=torch.float64))
    shifted = perfect + torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])      # errors 0, 1, 2 at horizons 1, 2, 3
    assert rmse_by_horizon(shifted, series, origins).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(LabInputError, match="one per row"):
        rmse_by_horizon(perfect, series, [2])
    with pytest.raises(LabInputError, match="run past the series"):
        rmse_by_horizon(perfect, series, [2, 8])


# --- plots and panel ---------------------------------------------------------------------------------------

def test_plot_forecasts_labels_each_prediction_with_its_rmse(series):
    split = series.index_of(1930)
    truth = series.values[split:split + 5]
    ax = plot_forecasts(series, split, {"perfect": truth.clone(), "zero": torch.zeros(5)}, context=10)
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert "perfect (RMSE 0.0)" in labels and any(label.startswith("zero (RMSE ") for label in labels)
    assert ax.get_xlabel() == "year" and ax.get_ylabel() == series.unit
    matplotlib.pyplot.close(ax.figure)


def test_plot_rmse_by_horizon_draws_one_line_per_forecaster():
    ax = plot_rmse_by_horizon({"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([2.0, 2.0])}, unit="u")
    assert len(ax.get_lines()) == 2 and ax.get_ylabel() == "RMSE (u)"
    matplotlib.pyplot.close(ax.figure)


def test_forecast_panel_runs_the_function_it_is_given(series):
    calls = []

    def forecast(steps, teacher_forcing):
        calls.append((steps, teacher_forcing))
        return torch.full((steps,), 1.0 if teacher_forcing else 2.0)

    panel = make_forecast_panel(forecast, series, split=series.index_of(1930), steps=10)
    assert float(panel.run()[0]) == 2.0
    assert float(panel.set(steps=3, teacher_forcing=True).run()[0]) == 1.0
    assert calls == [(10, False), (3, True)]
    with pytest.raises(LabInputError, match="outside the allowed range"):
        panel.set(steps=80)


def test_forecast_panel_refuses_bad_functions(series):
    with pytest.raises(LabInputError, match="forecast must be a function"):
        make_forecast_panel("closed_loop", series, split=200)
    panel = make_forecast_panel(lambda steps, teacher_forcing: torch.zeros(steps + 1), series, split=200)
    assert panel.run() is None and "must return a tensor of shape" in panel.status.value
    failing = make_forecast_panel(lambda steps, teacher_forcing: 1 / 0, series, split=200)
    assert failing.run() is None and "the forecast function failed" in failing.status.value
