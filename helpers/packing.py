"""Variable-length batches: which positions are padding, where ``h_n`` comes from, and why ``out[:, -1]``
is the wrong "last output" for every sequence shorter than the longest one.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from helpers.validation import LabInputError, require_positive_int, require_tensor
from helpers.widgets import Panel

MAX_SEQUENCES, MAX_LENGTH = 8, 16  # the explorer draws every position, so keep it small


def _check_lengths(lengths: object) -> list[int]:
    if isinstance(lengths, torch.Tensor):
        lengths = lengths.tolist()
    if not isinstance(lengths, (list, tuple)) or not lengths:
        raise LabInputError(f"lengths must be a non-empty list of positive integers, e.g. [5, 3, 2]; got {lengths!r}.")
    return [require_positive_int(n, "each length") for n in lengths]


def padding_mask(lengths: Sequence[int], total_length: int | None = None) -> torch.Tensor:
    """(batch, time) booleans, True where a position is padding.

    Example:
        >>> padding_mask([3, 1]).int().tolist()
        [[0, 0, 0], [0, 1, 1]]
    """
    lengths = _check_lengths(lengths)
    total = max(lengths) if total_length is None else require_positive_int(total_length, "total_length")
    if total < max(lengths):
        raise LabInputError(f"total_length={total} is shorter than the longest sequence ({max(lengths)}).")
    return torch.arange(total).unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)


def padded_batch(lengths: Sequence[int], input_size: int = 2, seed: int = 0) -> torch.Tensor:
    """A (batch, max length, input_size) batch of random steps, zero at the padded positions.

    Example:
        >>> x = padded_batch([3, 1]); tuple(x.shape), bool((x[1, 1:] == 0).all())
        ((2, 3, 2), True)
    """
    lengths = _check_lengths(lengths)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), require_positive_int(input_size, "input_size"), generator=gen)
    return x.masked_fill(padding_mask(lengths).unsqueeze(-1), 0.0)


def run_packed(lstm: nn.LSTM, x: torch.Tensor, lengths: Sequence[int]):
    """Run a ``batch_first`` LSTM on a padded batch through ``pack_padded_sequence``.

    Returns:
        ``(out, (h_n, c_n))`` with ``out`` padded back to x's length (zeros at padded positions) and
        ``h_n`` taken at each sequence's own last valid step.

    Example:
        >>> lstm = torch.nn.LSTM(2, 3, batch_first=True)
        >>> out, (h_n, _) = run_packed(lstm, padded_batch([4, 2]), [4, 2])
        >>> torch.equal(out[1, 1], h_n[0, 1]), bool((out[1, 2:] == 0).all())
        (True, True)
    """
    lengths = _check_lengths(lengths)
    if not isinstance(lstm, nn.LSTM) or not lstm.batch_first:
        raise LabInputError("lstm must be an nn.LSTM built with batch_first=True.")
    require_tensor(x, "x", ndim=3, layout="(batch, time, features)")
    if x.shape[0] != len(lengths) or x.shape[1] < max(lengths):
        raise LabInputError(f"x of shape {tuple(x.shape)} does not fit lengths {lengths}: need batch "
                            f"{len(lengths)} and at least {max(lengths)} steps.")
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, state = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, state


def last_valid(out: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Each sequence's output at its own last valid step, ``out[b, lengths[b] - 1]``: the fix for ``out[:, -1]``.

    Example:
        >>> out = torch.arange(6.0).reshape(2, 3, 1)
        >>> last_valid(out, [3, 1]).flatten().tolist()
        [2.0, 3.0]
    """
    lengths = _check_lengths(lengths)
    require_tensor(out, "out", ndim=3, layout="(batch, time, features)")
    if out.shape[0] != len(lengths) or max(lengths) > out.shape[1]:
        raise LabInputError(f"out of shape {tuple(out.shape)} does not fit lengths {lengths}.")
    index = torch.tensor(lengths, device=out.device) - 1
    return out[torch.arange(out.shape[0], device=out.device), index]


@dataclass(frozen=True)
class PackingReport:
    """What one packed run shows, sequence by sequence (``True`` = the claim holds for that row).

    Attributes:
        lengths: the sequence lengths.
        mask: (batch, time) True at padding.
        out, h_n: the LSTM's padded outputs and final hidden states.
        bidirectional: whether the LSTM ran both directions.
        padding_is_zero: the outputs at every padded position are exactly 0.
        hn_is_last_valid: forward ``h_n`` equals ``out[b, len_b - 1]`` (first H features).
        out_last_is_hn: ``out[b, -1]`` (first H features) equals forward ``h_n``: the pitfall.
        unpacked_hn_matches: running the padded batch without packing gives the same forward ``h_n``.
        backward_hn_at_t0: (bidirectional) backward ``h_n`` equals ``out[b, 0, H:]``.
        backward_hn_at_last: (bidirectional) backward ``h_n`` equals ``out[b, -1, H:]``.
    """

    lengths: tuple[int, ...]
    mask: torch.Tensor
    out: torch.Tensor
    h_n: torch.Tensor
    bidirectional: bool
    padding_is_zero: bool
    hn_is_last_valid: tuple[bool, ...]
    out_last_is_hn: tuple[bool, ...]
    unpacked_hn_matches: tuple[bool, ...]
    backward_hn_at_t0: tuple[bool, ...] = ()
    backward_hn_at_last: tuple[bool, ...] = ()

    def __str__(self) -> str:
        lines = [f"lengths {list(self.lengths)}; padded positions per row: {self.mask.sum(1).tolist()}",
                 f"outputs at padded positions are all zero: {self.padding_is_zero}",
                 f"h_n == out[b, len_b - 1]   per row: {list(self.hn_is_last_valid)}",
                 f"h_n == out[b, -1]          per row: {list(self.out_last_is_hn)}",
                 f"h_n without packing == h_n per row: {list(self.unpacked_hn_matches)}"]
        if self.bidirectional:
            lines += [f"backward h_n == out[b, 0, H:]  per row: {list(self.backward_hn_at_t0)}",
                      f"backward h_n == out[b, -1, H:] per row: {list(self.backward_hn_at_last)}"]
        return "\n".join(lines)


def _rows_equal(a: torch.Tensor, b: torch.Tensor) -> tuple[bool, ...]:
    return tuple(bool(torch.allclose(x, y, atol=1e-6, rtol=1e-5)) for x, y in zip(a, b))


def explore_packing(lengths: Sequence[int], hidden_size: int = 3, input_size: int = 2,
                    bidirectional: bool = False, seed: int = 0) -> PackingReport:
    """Run a small LSTM on a padded batch with the given lengths, packed and unpacked, and report.

    Args:
        lengths: up to ``MAX_SEQUENCES`` lengths, each at most ``MAX_LENGTH``.
        hidden_size, input_size: the LSTM's sizes.
        bidirectional: run both directions.
        seed: seeds the weights and the inputs.

    Returns:
        ``PackingReport``.

    Example:
        >>> report = explore_packing([4, 2])
        >>> report.hn_is_last_valid, report.out_last_is_hn
        ((True, True), (True, False))
    """
    lengths = _check_lengths(lengths)
    if len(lengths) > MAX_SEQUENCES or max(lengths) > MAX_LENGTH:
        raise LabInputError(f"the explorer takes up to {MAX_SEQUENCES} sequences of length up to {MAX_LENGTH}; "
                            f"got {len(lengths)} sequences, longest {max(lengths)}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lstm = nn.LSTM(input_size, require_positive_int(hidden_size, "hidden_size"), batch_first=True,
                       bidirectional=bool(bidirectional))
    x = padded_batch(lengths, input_size, seed)
    H = hidden_size
    with torch.no_grad():
        out, (h_n, _) = run_packed(lstm, x, lengths)
        _, (h_unpacked, _) = lstm(x)
    mask = padding_mask(lengths)
    extra = {}
    if bidirectional:
        extra = {"backward_hn_at_t0": _rows_equal(h_n[1], out[:, 0, H:]),
                 "backward_hn_at_last": _rows_equal(h_n[1], out[:, -1, H:])}
    return PackingReport(tuple(lengths), mask, out, h_n, bool(bidirectional),
                         bool((out[mask] == 0).all()), _rows_equal(h_n[0], last_valid(out, lengths)[:, :H]),
                         _rows_equal(h_n[0], out[:, -1, :H]), _rows_equal(h_n[0], h_unpacked[0]), **extra)


def plot_packing(report: PackingReport, ax=None):
    """Draw the batch as a grid: valid steps, padding, where ``h_n`` comes from and what ``out[:, -1]`` reads.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    batch, total = report.mask.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(min(1.2 + 0.55 * total, 11), 1.4 + 0.5 * batch))
    ax.imshow(report.mask.int().numpy(), cmap=ListedColormap(["#cfe3f5", "#d9d9d9"]), vmin=0, vmax=1, aspect="auto")
    for b in range(batch):
        for t in range(total):
            if report.mask[b, t]:
                ax.text(t, b, "pad", ha="center", va="center", fontsize=7, color="0.35")
        ax.plot(report.lengths[b] - 1, b, "*", color="tab:green", ms=13,
                label="forward h_n comes from here" if b == 0 else None)
        if report.bidirectional:
            ax.plot(0, b, "D", color="tab:purple", ms=8, label="backward h_n = out[b, 0, H:]" if b == 0 else None)
    ax.add_patch(Rectangle((total - 1.5, -0.5), 1, batch, fill=False, ec="tab:red", lw=2.5, ls="--",
                           label="out[:, -1] reads this column"))
    ax.set_xticks(range(total))
    ax.set_yticks(range(batch), [f"seq {b} (len {n})" for b, n in enumerate(report.lengths)])
    ax.set_xlabel("time step t (blue: real step, grey: padding)")
    ax.set_ylabel("sequence in the batch")
    ax.set_title("padded batch: where h_n comes from, and what out[:, -1] reads", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return ax


def parse_lengths(text: str) -> list[int]:
    """Parse "5, 3, 2" into ``[5, 3, 2]``.

    Example:
        >>> parse_lengths(" 5, 3 2 ")
        [5, 3, 2]
    """
    if not isinstance(text, str):
        raise LabInputError(f"lengths must be text like '5, 3, 2'; got {type(text).__name__}.")
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise LabInputError(f"lengths must be positive whole numbers separated by commas, e.g. '5, 3, 2'; got {text!r}.")
    return _check_lengths([int(p) for p in parts])


def explore_from_text(lengths: str = "5, 3, 2", bidirectional: bool = False) -> PackingReport:
    """What the packing panel runs: ``explore_packing(parse_lengths(lengths), bidirectional=...)``.

    Example:
        >>> explore_from_text("2, 1").lengths
        (2, 1)
    """
    return explore_packing(parse_lengths(lengths), bidirectional=bidirectional)


def render_packing(report: PackingReport) -> None:
    """Show a packing report: the grid and the per-row checks."""
    import matplotlib.pyplot as plt

    plot_packing(report)
    plt.show()
    print(report)


def make_packing_panel() -> Panel:
    """A panel: type a few lengths, tick bidirectional, Run, and see padding and where ``h_n`` comes from.

    Example:
        >>> make_packing_panel().set(lengths="3, 1").run().out_last_is_hn
        (True, False)
    """
    import ipywidgets as W

    controls = {"lengths": W.Text(value="5, 3, 2", description="lengths", continuous_update=False),
                "bidirectional": W.Checkbox(value=False, description="bidirectional")}
    return Panel(explore_from_text, controls, render=render_packing,
                 title=f"Packing explorer (up to {MAX_SEQUENCES} sequences of length up to {MAX_LENGTH})")
