"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import require_tool  # re-exported for tests that import it from here

__all__ = ["require_tool"]


@pytest.fixture
def store_path(tmp_path):
    """A path for a new store (the directory does not exist yet)."""
    return str(tmp_path / "store")
