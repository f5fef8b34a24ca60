"""Shared pytest setup: the doctest namespace for the helpers' docstring examples, and shared fixtures."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TypeVar

import pytest
import torch

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace.update(torch=torch, copy=copy)
    torch.manual_seed(0)


@pytest.fixture
def retry_timing() -> Callable[..., object]:
    """Check a timing *shape* (a growth ratio) robustly on a shared, loaded machine.

    ``retry_timing(measure, holds, attempts=4)`` calls ``measure()`` until ``holds(result)`` is true and
    returns that result; if no attempt shows the shape, the test fails listing every measurement. A stall
    on a busy 2-core CI box can spoil one measurement; a real regression spoils all of them.
    """

    def run(measure: Callable[[], T], holds: Callable[[T], bool], attempts: int = 4) -> T:
        seen = []
        for _ in range(attempts):
            result = measure()
            if holds(result):
                return result
            seen.append(result)
        pytest.fail(f"timing shape not seen in {attempts} attempts: {seen}")

    return run
