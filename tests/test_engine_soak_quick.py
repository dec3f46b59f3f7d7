"""Smoke test of benchmarks/soak.py: a 3-second soak (processes SIGKILLed at random) checks out."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import child_env

SOAK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "soak.py")


def test_quick_soak_passes(tmp_path):
    proc = subprocess.run(
        [sys.executable, SOAK, "run", "--quick", "--seed", "1", "--dir", str(tmp_path / "soak")],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checked:" in proc.stdout and "unexpected exits 0" in proc.stdout
