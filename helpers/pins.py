"""The tested pins in ``constraints.txt`` and what it means when this environment differs from them.

The stored notebook outputs were produced with the versions pinned in ``constraints.txt``. ``make
check-env`` (``helpers.device``) lists every tracked package whose installed version differs, with what
that means for the stored outputs and what to do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")

# What a difference in each tracked package means for the outputs stored in the notebooks.
MEANING = {
    "torch": ("printed numbers, timings, operator names and tensor reprs in the stored outputs come from "
              "torch {pinned}; yours may differ slightly, and strict nbval (make test) may flag cells whose "
              "text depends on the torch version. The verdicts should hold: README lists the versions tested"),
    "ipywidgets": ("the stored panels were saved by ipywidgets {pinned}; with {installed} they may show as "
                   "text until you run their cells, and JupyterLab 4 renders widgets only with ipywidgets 8"),
    "jupyterlab": ("the notebooks were checked in JupyterLab {pinned}; with {installed} the panels and the "
                   "course's editor settings (lab-overrides.json) may look or behave differently"),
}
TRACKED = tuple(MEANING)


@dataclass(frozen=True)
class Drift:
    """One tracked package whose installed version differs from its pin (``installed`` None: missing)."""

    package: str
    pinned: str
    installed: str | None


def read_pins(path: Path | str = CONSTRAINTS) -> dict[str, str]:
    """Exact pins (``name==version``) of a constraints file, names lower-cased with ``-`` for ``_`` and ``.``.

    Args:
        path: the constraints file (default: the course's ``constraints.txt``).

    Returns:
        ``{name: version}``; empty when the file does not exist (helpers installed without the clone).

    Example:
        >>> read_pins()["torch"]
        '2.13.0'
    """
    path = Path(path)
    if not path.is_file():
        return {}
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[_norm(match[1])] = match[2]
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _release(version: str) -> str:
    """The version without a local build label: ``2.13.0+cpu`` is the release ``2.13.0``."""
    return version.split("+", 1)[0]


def installed_versions(packages: tuple[str, ...] = TRACKED) -> dict[str, str | None]:
    """Installed versions of ``packages`` (None for a package that is not installed).

    Example:
        >>> installed_versions(("torch",))["torch"].split("+")[0] == torch.__version__.split("+")[0]
        True
    """
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def version_drift(installed: dict[str, str | None], pins: dict[str, str],
                  packages: tuple[str, ...] = TRACKED) -> list[Drift]:
    """The tracked packages whose installed release differs from the pinned one.

    A local build label does not count as a difference (``2.13.0+cpu`` matches the pin ``2.13.0``); a
    package without a pin is not compared.

    Args:
        installed: ``{package: version or None}``, e.g. from ``installed_versions()``.
        pins: ``{package: version}``, e.g. from ``read_pins()``.
        packages: the packages to compare.

    Returns:
        One ``Drift`` per differing package, in the order of ``packages``.

    Example:
        >>> version_drift({"torch": "2.14.1", "ipywidgets": "8.1.9"}, {"torch": "2.13.0", "ipywidgets": "8.1.9"})
        [Drift(package='torch', pinned='2.13.0', installed='2.14.1')]
    """
    drifts = []
    for package in packages:
        pinned = pins.get(_norm(package))
        if pinned is None:
            continue
        version = installed.get(package)
        if version is None or _release(version) != _release(pinned):
            drifts.append(Drift(package, pinned, version))
    return drifts


def drift_notes(drifts: list[Drift]) -> list[tuple[str, str]]:
    """``(problem, what to do)`` pairs for ``make check-env``, one per drift.

    Example:
        >>> problem, fix = drift_notes([Drift("torch", "2.13.0", "2.14.1")])[0]
        >>> problem.startswith("torch 2.14.1 differs from the tested pin 2.13.0")
        True
    """
    notes = []
    for drift in drifts:
        installed = drift.installed or "none"
        meaning = MEANING.get(drift.package, "the stored outputs were produced with {pinned}").format(
            pinned=drift.pinned, installed=installed)
        lead = (f"{drift.package} is not installed (tested with {drift.pinned})" if drift.installed is None
                else f"{drift.package} {drift.installed} differs from the tested pin {drift.pinned}")
        notes.append((f"{lead}: {meaning}",
                      f"to reproduce the stored outputs exactly, use 'make lab' (a .venv with the pins), or "
                      f"'pip install -c constraints.txt {drift.package}=={drift.pinned}'"))
    return notes
