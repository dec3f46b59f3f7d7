"""Smoke test of benchmarks/soak_structures.py: a short soak of servers and in-process users of the Redis
data structures on one store, SIGKILLed at random, checks out."""

from __future__ import annotations

import pytest
from helpers import run_quick_soak

pytest.importorskip("redis")
pytest.importorskip("lupa")


def test_quick_structures_soak_passes(tmp_path):
    assert " 0 problems" in run_quick_soak("soak_structures.py", tmp_path)
