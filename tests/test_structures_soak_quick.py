"""Smoke test of benchmarks/soak_structures.py: a short soak of servers and in-process users of the Redis
data structures on one store, SIGKILLed at random, checks out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import child_env

pytest.importorskip("redis")
pytest.importorskip("lupa")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOAK = os.path.join(ROOT, "benchmarks", "soak_structures.py")


def test_quick_structures_soak_passes(tmp_path):
    proc = subprocess.run(
        [sys.executable, SOAK, "run", "--quick", "--seed", "1", "--dir", str(tmp_path / "soak")],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checked:" in proc.stdout and "unexpected exits 0" in proc.stdout and " 0 problems" in proc.stdout
