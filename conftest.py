"""Doctest namespace for the examples in the helpers' docstrings."""
import copy

import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace.update(torch=torch, copy=copy)
    torch.manual_seed(0)
