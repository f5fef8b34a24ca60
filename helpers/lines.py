"""How the course's figures tell lines apart without relying on colour alone.

Each line gets a colour from the Okabe–Ito palette (distinguishable with the common colour-vision
deficiencies, and never green against red) *and* its own marker and dash pattern, so a figure still
reads in greyscale, on a washed-out projector or printed. Every multi-line plot in ``helpers`` draws
its k-th line with ``line_style(k)``.
"""
from __future__ import annotations

# Okabe & Ito (2008), "Color Universal Design": blue, orange, bluish green, vermillion, reddish purple,
# sky blue, black. Their yellow is left out: too pale for a line on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
# Solid, dashed, dash-dot, dotted, then two longer patterns: seven lines, seven different looks.
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 3)))
# For bars, which have no marker or dash: a fill pattern per bar group.
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--")


def line_style(k: int, points: int | None = None) -> dict:
    """Keyword arguments for ``ax.plot`` (or ``errorbar``) that draw the ``k``-th line of a figure.

    Args:
        k: the line's position in the legend, from 0; after seven the styles repeat.
        points: how many points the line has; for long curves markers go on about 12 of them
            (``markevery``), so they label the line without hiding it.

    Returns:
        ``{"color", "marker", "linestyle"}`` (and ``"markevery"`` for a long curve).

    Example:
        >>> line_style(0)
        {'color': '#0072B2', 'marker': 'o', 'linestyle': '-'}
        >>> line_style(1, points=600)["markevery"]
        50
        >>> len({(s["color"], s["marker"]) for s in map(line_style, range(7))})
        7
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f"k is the line's position from 0; got {k!r}")
    i = k % len(PALETTE)
    style = {"color": PALETTE[i], "marker": MARKERS[i], "linestyle": LINESTYLES[i]}
    if points is not None and points > 24:
        style["markevery"] = max(points // 12, 1)
    return style
