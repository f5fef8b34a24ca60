"""Packing facts, checked against nn.LSTM run one sequence at a time (no padding at all)."""
import pytest
import torch
from torch import nn

from helpers.exercises import check_raises
from helpers.packing import (MAX_LENGTH, explore_from_text, explore_packing, last_valid, make_packing_panel,
                             padded_batch, padding_mask, parse_lengths, plot_packing, run_packed)
from helpers.validation import LabInputError


def test_padding_mask_and_padded_batch():
    assert padding_mask([2, 3, 1]).tolist() == [[False, False, True], [False, False, False], [False, True, True]]
    assert padding_mask([1], total_length=3).tolist() == [[False, True, True]]
    x = padded_batch([3, 1, 2], input_size=4)
    assert x.shape == (3, 3, 4) and bool((x[padding_mask([3, 1, 2])] == 0).all()) and bool((x[0] != 0).all())
    assert check_raises(lambda: padding_mask([3], total_length=2), LabInputError, match="shorter")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_run_equals_each_sequence_alone(bidirectional):
    torch.manual_seed(0)
    lengths = [4, 1, 3, 2]
    lstm = nn.LSTM(2, 3, batch_first=True, bidirectional=bidirectional)
    x = padded_batch(lengths)
    out, (h_n, _) = run_packed(lstm, x, lengths)
    H = 3
    for b, n in enumerate(lengths):
        alone, (h_alone, _) = lstm(x[b:b + 1, :n])
        assert torch.allclose(out[b, :n], alone[0], atol=1e-6)
        assert torch.allclose(h_n[:, b], h_alone[:, 0], atol=1e-6)
        assert bool((out[b, n:] == 0).all())
    assert torch.allclose(h_n[0], last_valid(out, lengths)[:, :H], atol=1e-6)
    if bidirectional:
        assert torch.allclose(h_n[1], out[:, 0, H:], atol=1e-6)


def test_report_shows_the_pitfalls():
    report = explore_packing([5, 3, 5, 1])
    assert report.padding_is_zero
    assert report.hn_is_last_valid == (True,) * 4
    assert report.out_last_is_hn == (True, False, True, False)  # only full-length rows are right
    assert report.unpacked_hn_matches == (True, False, True, False)  # unpacked: padding steps change h_n
    bi = explore_packing([5, 3, 5, 1], bidirectional=True)
    assert bi.backward_hn_at_t0 == (True,) * 4
    assert bi.backward_hn_at_last == (False,) * 4  # even full-length rows: out[:, -1, H:] saw only one step
    assert "backward h_n" in str(bi) and "backward" not in str(report)
    assert explore_packing([1]).out_last_is_hn == (True,)


def test_last_valid_and_its_checks():
    out = torch.arange(12.0).reshape(2, 3, 2)
    assert last_valid(out, [1, 3]).tolist() == [[0.0, 1.0], [10.0, 11.0]]
    assert check_raises(lambda: last_valid(out, [1, 4]), LabInputError, match="does not fit")
    assert check_raises(lambda: last_valid(out, [0, 1]), LabInputError, match="positive")


def test_bad_input_is_explained():
    assert check_raises(lambda: parse_lengths("5, x"), LabInputError, match="whole numbers")
    assert check_raises(lambda: parse_lengths(""), LabInputError, match="whole numbers")
    assert check_raises(lambda: parse_lengths("3, 0"), LabInputError, match="positive")
    assert check_raises(lambda: explore_packing([MAX_LENGTH + 1]), LabInputError, match="up to")
    assert check_raises(lambda: explore_packing([]), LabInputError, match="non-empty")
    lstm = nn.LSTM(2, 3)  # not batch_first
    assert check_raises(lambda: run_packed(lstm, padded_batch([2]), [2]), LabInputError, match="batch_first")
    lstm = nn.LSTM(2, 3, batch_first=True)
    assert check_raises(lambda: run_packed(lstm, padded_batch([2, 1]), [3, 1]), LabInputError, match="does not fit")


def test_packing_panel_runs_and_changes():
    panel = make_packing_panel()
    first = panel.set(lengths="4, 2").run()
    assert first.lengths == (4, 2) and not first.bidirectional
    second = panel.set(lengths="3, 3, 1", bidirectional=True).run()
    assert second.lengths == (3, 3, 1) and second.backward_hn_at_t0 == (True, True, True)
    assert panel.set(lengths="3, -1").run() is None and "whole numbers" in panel.status.value
    assert explore_from_text("2 1").lengths == (2, 1)


def test_plot_has_labelled_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot_packing(explore_packing([3, 1], bidirectional=True))
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    plt.close("all")
