"""Device choice, seeding, thread count and the environment report behind ``make check-env``."""
from __future__ import annotations

import numbers
import os
import platform
import random
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from helpers.pins import drift_notes, installed_versions, read_pins, version_drift
from helpers.validation import LabInputError, require_choice, require_positive_int

DEVICE_CHOICES = ("auto", "cpu", "cuda")
MAX_THREADS = 256  # more intra-op threads than any machine here has cores only adds contention
MAX_SEED = 2**32 - 1  # NumPy's generator takes seeds in 0..2**32 - 1


def pick_device(name: str = "auto") -> torch.device:
    """Return the device to run on.

    Args:
        name: ``"auto"`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda"``.

    Returns:
        A ``torch.device``.

    Raises:
        LabInputError: for an unknown name, or ``"cuda"`` on a machine without CUDA.

    Example:
        >>> pick_device("cpu")
        device(type='cpu')
    """
    require_choice(name, "device", DEVICE_CHOICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LabInputError("device='cuda' was asked for, but this PyTorch sees no CUDA GPU "
                            f"(torch {torch.__version__}, built with CUDA: {torch.version.cuda or 'no'}). "
                            "Use device='auto' or 'cpu'; the notebooks show recorded GPU figures instead.")
    return torch.device(name)


def available_devices() -> list[str]:
    """Names of the devices this machine can run on, CPU first.

    Example:
        >>> available_devices()[0]
        'cpu'
    """
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (all CUDA devices too).

    Args:
        seed: an integer in ``0..2**32 - 1`` (the range all three generators accept).

    Example:
        >>> seed_everything(0); a = torch.rand(2); seed_everything(0); torch.equal(a, torch.rand(2))
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise LabInputError(f"seed must be an integer in 0..{MAX_SEED} (NumPy's range); got {seed!r}.")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_threads(count: int = 2) -> int:
    """Fix the number of intra-op CPU threads so timings are comparable; returns the count now in force.

    Args:
        count: threads, ``1..MAX_THREADS``.

    Returns:
        ``torch.get_num_threads()`` after the change.

    Example:
        >>> set_threads(1)
        1
    """
    count = require_positive_int(count, "count", maximum=MAX_THREADS,
                                 reason="(more threads than any CPU here only adds contention)")
    torch.set_num_threads(count)
    return torch.get_num_threads()


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), or the architecture when unknown.

    Example:
        >>> isinstance(cpu_name(), str) and len(cpu_name()) > 0
        True
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextmanager
def using_threads(count: int) -> Iterator[int]:
    """Run a block on ``count`` intra-op CPU threads, then restore the previous count (also on error).

    Example:
        >>> before = torch.get_num_threads()
        >>> with using_threads(1) as n:
        ...     inside = torch.get_num_threads()
        >>> (n, inside, torch.get_num_threads() == before)
        (1, 1, True)
    """
    count = require_positive_int(count, "threads", maximum=MAX_THREADS,
                                 reason="(more threads than any CPU here only adds contention)")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment_report() -> dict[str, object]:
    """Collect what the course depends on: versions, device, threads, widgets and ``dot``.

    Returns:
        A dict with keys ``python``, ``torch``, ``cuda_available``, ``cuda_version``,
        ``cudnn_version``, ``device_name``, ``threads``, ``cpu_count``, ``ipywidgets``,
        ``jupyterlab_widgets``, ``jupyterlab``, ``dot`` (path or None) and ``problems``
        (a list of ``(problem, what to do)`` pairs, including torch, ipywidgets or JupyterLab versions
        that differ from the pins in ``constraints.txt``, see ``helpers.pins``).

    Example:
        >>> report = environment_report(); report["threads"] >= 1
        True
    """
    cuda = torch.cuda.is_available()
    report: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "device_name": torch.cuda.get_device_name(0) if cuda else cpu_name(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "ipywidgets": _version("ipywidgets"),
        "jupyterlab_widgets": _version("jupyterlab_widgets"),
        "jupyterlab": _version("jupyterlab"),
        "dot": shutil.which("dot"),
    }
    problems: list[tuple[str, str]] = []
    if report["dot"] is None:
        problems.append(("graphviz 'dot' program not found: graphs fall back to a simpler matplotlib drawing",
                         "install it: 'sudo apt-get install graphviz' (Debian/Ubuntu), "
                         "'brew install graphviz' (macOS) or 'conda install -c conda-forge graphviz'"))
    if report["ipywidgets"] is None or report["jupyterlab_widgets"] is None:
        problems.append(("ipywidgets or jupyterlab_widgets missing: panels will not display",
                         "run 'make lab' again, or 'pip install -c constraints.txt ipywidgets jupyterlab_widgets'"))
    if not cuda:
        problems.append(("no CUDA GPU visible: GPU sections show CPU results and recorded GPU figures",
                         "nothing to do for the course; on a GPU machine install a CUDA build of torch 2.13.0"))
    # versions that differ from constraints.txt: what that means for the outputs stored in the notebooks
    problems.extend(drift_notes(version_drift(installed_versions(), read_pins())))
    report["problems"] = problems
    return report


def format_report(report: dict[str, object]) -> str:
    """Render ``environment_report()`` as the text ``make check-env`` prints.

    Example:
        >>> "torch" in format_report(environment_report())
        True
    """
    if not isinstance(report, dict):
        raise LabInputError(f"report must be the dict environment_report() returns; got {type(report).__name__}.")
    keys = ["python", "torch", "cuda_available", "cuda_version", "cudnn_version", "device_name",
            "threads", "cpu_count", "jupyterlab", "ipywidgets", "jupyterlab_widgets", "dot"]
    width = max(map(len, keys))
    lines = [f"{key:<{width}}  {report.get(key) if report.get(key) is not None else '(none)'}" for key in keys]
    problems = report.get("problems") or []
    lines.append("")
    if problems:
        lines.append("Notes:")
        for problem, fix in problems:  # type: ignore[misc]
            lines.append(f"  - {problem}\n    what to do: {fix}")
    else:
        lines.append("Everything the course uses is present.")
    return "\n".join(lines)


def main() -> int:
    """Entry point of ``python -m helpers.device`` (``make check-env``)."""
    print(format_report(environment_report()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
