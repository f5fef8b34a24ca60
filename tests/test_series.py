"""Tests for helpers.series: checksummed loading, windows, training, and generation modes."""
import matplotlib

matplotlib.use("Agg")

import shutil

import pytest
import torch

from helpers.series import (SUNSPOTS_PATH, SUNSPOTS_SHA256, GenerationResult, NextStepModel, Scaler, free_run,
                            generate, load_sunspots, make_generation_panel, make_windows, plot_generation,
                            run_generation, sha256_of, teacher_forced_fused, teacher_forced_loop, train_next_step,
                            warm_up)
from helpers.validation import LabInputError


@pytest.fixture(scope="module")
def series():
    return load_sunspots()


@pytest.fixture(scope="module")
def trained(series):
    return train_next_step(series, split=260, window=12, hidden_size=8, epochs=20, seed=0)


# --- loading ------------------------------------------------------------------------------------------

def test_shipped_file_matches_its_recorded_checksum(series):
    assert sha256_of(SUNSPOTS_PATH) == SUNSPOTS_SHA256
    readme = (SUNSPOTS_PATH.parent / "README.md").read_text()
    assert SUNSPOTS_SHA256 in readme, "data/README.md must record the checksum the loader verifies"
    assert len(series) == 309 and series.values.dtype == torch.float32
    assert torch.equal(series.years, torch.arange(1700, 2009))
    assert float(series.values.min()) >= 0


def test_loader_refuses_a_changed_file(tmp_path):
    copy = tmp_path / "sunspots_yearly.csv"
    shutil.copy(SUNSPOTS_PATH, copy)
    assert len(load_sunspots(copy)) == 309  # an exact copy passes
    copy.write_bytes(copy.read_bytes().replace(b"\n", b"\r\n"))  # a line-ending conversion
    with pytest.raises(LabInputError, match="SHA-256.*git checkout"):
        load_sunspots(copy)


def test_loader_reports_a_missing_file_and_a_bad_layout(tmp_path):
    with pytest.raises(LabInputError, match="not found"):
        load_sunspots(tmp_path / "nothing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("year,value\n1,2\n")
    with pytest.raises(LabInputError, match="header YEAR,SUNACTIVITY"):
        load_sunspots(bad, expected_sha256=sha256_of(bad))
    gap = tmp_path / "gap.csv"
    gap.write_text("YEAR,SUNACTIVITY\n1700,5\n1702,6\n")
    with pytest.raises(LabInputError, match="consecutive years"):
        load_sunspots(gap, expected_sha256=sha256_of(gap))


# --- scaler and windows ---------------------------------------------------------------------------------

def test_scaler_round_trips_and_refuses_constants():
    values = torch.tensor([1.0, 5.0, 9.0, 2.0])
    scaler = Scaler.fit(values)
    z = scaler.transform(values)
    assert abs(float(z.mean())) < 1e-6 and abs(float(z.std(unbiased=False)) - 1) < 1e-6
    assert torch.allclose(scaler.inverse(z), values)
    with pytest.raises(LabInputError, match="constant"):
        Scaler.fit(torch.ones(4))


def test_make_windows_targets_are_inputs_shifted_by_one():
    values = torch.arange(20.0)
    x, y = make_windows(values, window=5)
    assert x.shape == y.shape == (15, 5, 1)
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y[:, -1, 0], torch.arange(5.0, 20.0))
    with pytest.raises(LabInputError, match="needs at least 21 values"):
        make_windows(values, window=20)
    with pytest.raises(LabInputError, match=r"1-D tensor \(time,\)"):
        make_windows(values[None], window=3)


# --- model and training -----------------------------------------------------------------------------------

def test_model_rejects_wrong_feature_count():
    with pytest.raises(LabInputError, match=r"one feature per step"):
        NextStepModel(4)(torch.randn(2, 5, 3))


def test_training_lowers_the_loss_and_uses_only_the_training_part(series, trained):
    assert len(trained.losses) == 20 and trained.losses[-1] < 0.5 * trained.losses[0]
    assert trained.scaler == Scaler.fit(series.values[:260])
    assert not trained.model.training


def test_training_is_repeatable_with_a_seed(series):
    a = train_next_step(series, split=100, window=8, hidden_size=4, epochs=3, seed=3)
    b = train_next_step(series, split=100, window=8, hidden_size=4, epochs=3, seed=3)
    assert a.losses == b.losses


# --- generation -------------------------------------------------------------------------------------------

def test_teacher_forcing_loop_equals_one_fused_call(trained, series):
    scaled = trained.scaler.transform(series.values)
    context, truth = scaled[:260], scaled[260:290]
    loop, fused = teacher_forced_loop(trained.model, context, truth), teacher_forced_fused(trained.model, context, truth)
    assert loop.shape == (30,) and float((loop - fused).abs().max()) < 1e-5


def test_first_prediction_is_the_same_in_both_modes_and_later_ones_differ(trained, series):
    scaled = trained.scaler.transform(series.values)
    context, truth = scaled[:260], scaled[260:290]
    forced = generate(trained.model, context, 30, truth, teacher_forcing=True)
    free = generate(trained.model, context, 30)
    assert torch.equal(forced[0], free[0])  # both read the same context before the first prediction
    assert float((forced[1:] - free[1:]).abs().max()) > 1e-3


def test_free_running_in_chunks_equals_one_call(trained, series):
    context = trained.scaler.transform(series.values)[:260]
    whole = generate(trained.model, context, 12)
    inp, state = warm_up(trained.model, context)
    parts = []
    for size in (5, 5, 2):
        values, state = free_run(trained.model, inp, state, size)
        parts.append(values)
        inp = values[-1]
    assert torch.equal(torch.cat(parts), whole)


def test_free_running_feeds_back_its_own_predictions(trained, series):
    context = trained.scaler.transform(series.values)[:260]
    free = generate(trained.model, context, 6)
    # the same numbers come out of a teacher-forced run whose "truth" is the free run itself
    forced_on_own = teacher_forced_fused(trained.model, context, free)
    assert float((forced_on_own - free).abs().max()) < 1e-5


def test_generation_rejects_bad_requests(trained, series):
    with pytest.raises(LabInputError, match="pass truth"):
        generate(trained.model, torch.randn(10), 5, teacher_forcing=True)
    with pytest.raises(LabInputError, match="at least two values"):
        warm_up(trained.model, torch.randn(1))
    with pytest.raises(LabInputError, match="above the limit of 49"):
        run_generation(trained, series, steps=50)


def test_run_generation_and_plot(trained, series):
    result = run_generation(trained, series, steps=20)
    assert isinstance(result, GenerationResult) and torch.equal(result.years, torch.arange(1960, 1980))
    assert torch.equal(result.truth, series.values[260:280])
    assert result.rmse("teacher_forced") >= 0 and result.rmse("free_running") >= 0
    only_free = run_generation(trained, series, steps=20, teacher_forcing=False)
    assert only_free.teacher_forced is None and torch.equal(only_free.free_running, result.free_running)
    with pytest.raises(LabInputError, match="mode must be"):
        only_free.rmse("teacher_forced")
    ax = plot_generation(result)
    assert ax.get_xlabel() == "year" and ax.get_ylabel() and ax.get_title() and len(ax.get_legend().texts) == 4
    matplotlib.pyplot.close(ax.figure)


def test_generation_panel_runs_and_changes(trained, series):
    panel = make_generation_panel(trained, series, steps=10)
    free = panel.run()
    forced = panel.set(teacher_forcing=True, steps=12).run()
    assert free.teacher_forced is None and free.free_running.shape == (10,)
    assert forced.free_running is None and forced.teacher_forced.shape == (12,)
    with pytest.raises(LabInputError, match="outside the allowed range"):
        panel.set(steps=500)


def test_training_restores_the_thread_count(series):
    before = torch.get_num_threads()
    train_next_step(series, split=100, window=8, hidden_size=4, epochs=1, threads=1)
    assert torch.get_num_threads() == before
    with pytest.raises(LabInputError, match="threads must be a positive integer"):
        train_next_step(series, split=100, window=8, hidden_size=4, epochs=1, threads=0)
