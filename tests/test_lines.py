"""helpers.lines, and every multi-line plot in helpers telling its lines apart by more than colour."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from helpers import lines  # noqa: E402
from helpers.rnn_compare import plot_gradient_flow, plot_losses  # noqa: E402
from helpers.series import plot_rmse_by_horizon  # noqa: E402
from helpers.timing import TimingRecord, plot_timings  # noqa: E402


def _looks(ax):
    """(marker, dash pattern) of each data line in the legend order."""
    return [(line.get_marker(), str(line.get_linestyle())) for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_every_style_differs_in_colour_marker_and_dash():
    styles = [lines.line_style(k) for k in range(len(lines.PALETTE))]
    for key in ("color", "marker", "linestyle"):
        assert len({str(s[key]) for s in styles}) == len(styles), key


def test_palette_has_no_red_green_pair():
    # the pure-green-against-red pair the issue saw: no colour whose green dominates next to a red one
    rgb = [to_rgb(c) for c in lines.PALETTE]
    assert not any(g > 0.6 and r < 0.3 and b < 0.3 for r, g, b in rgb)


def test_long_curves_get_sparse_markers():
    assert "markevery" not in lines.line_style(0, points=10)
    assert lines.line_style(0, points=1200)["markevery"] == 100


@pytest.mark.parametrize("bad", [-1, 1.5, True, "0"])
def test_line_style_refuses_a_bad_position(bad):
    with pytest.raises(ValueError, match="position"):
        lines.line_style(bad)


def test_plot_losses_and_gradient_flow_distinguish_lines_without_colour():
    curves = {name: [1 / (k + 1 + s) for s in range(60)] for k, name in enumerate(["RNN", "LSTM", "GRU"])}
    for ax in (plot_losses(curves, window=5), plot_gradient_flow({k: torch.tensor(v) for k, v in curves.items()})):
        looks = _looks(ax)
        assert len(looks) == 3 and len(set(looks)) == 3, looks
        plt.close(ax.figure)


def test_plot_timings_distinguishes_lines_without_colour():
    records = [TimingRecord(impl, size, "forward", 1e-3 * size * (k + 1), 1e-5, 7, 1, "cpu")
               for k, impl in enumerate(["loop", "reshape"]) for size in (8, 16, 32)]
    ax = plot_timings(records)
    looks = [(c.lines[0].get_marker(), str(c.lines[0].get_linestyle())) for c in ax.containers]
    assert len(set(looks)) == 2, looks
    plt.close(ax.figure)


def test_rmse_by_horizon_distinguishes_lines_without_colour():
    ax = plot_rmse_by_horizon({"GRU": torch.arange(1.0, 6.0), "persistence": torch.arange(2.0, 7.0)})
    assert len(set(_looks(ax))) == 2
    plt.close(ax.figure)
