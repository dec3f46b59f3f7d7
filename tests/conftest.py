"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def store_path(tmp_path):
    """A path for a new store (the directory does not exist yet)."""
    return str(tmp_path / "store")


def require_tool(name: str) -> str:
    """Return the path of an external program, or skip (fail under CI) if it is missing."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (Debian: redis-server / redis-tools; `make test` installs them)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires {name}: {message}")
    pytest.skip(message)
