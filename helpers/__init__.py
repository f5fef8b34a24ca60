"""Helpers for the RNN Loops Lab notebooks: one concern per module.

- ``device``: device choice, seeding, threads, environment report (``make check-env``)
- ``validation``: input checks and ``LabInputError``, the one error type helpers raise for bad input
- ``graphs``: autograd graph statistics and drawings (torchviz, or matplotlib without ``dot``)
- ``memory``: what a computation saves for backward
- ``allocations``: operators run and tensor memory allocated (total, peak), forward and backward
- ``profiling``: which operators a computation runs (``torch.profiler`` counts)
- ``gradients``: compare gradients across implementations
- ``timing``: ``torch.utils.benchmark`` timings, interleaved wall-clock and CPU-time medians, ratios, log-log plots
- ``widgets``: experiment panels over plain functions
- ``exercises``: self-checks for exercises
- ``reference``: recorded reference timings in data/reference/
- ``bench``: ``python -m helpers.bench`` (``make bench``), which records them
- ``integrity``: recorded JSON files under data/ signed by their recording command, verified on load
- ``execute``: ``python -m helpers.execute`` (``make execute``): a notebook in a fresh kernel, no nbclient#312 stall
"""
from helpers.validation import LabInputError

__all__ = ["LabInputError"]
__version__ = "0.1.0"
