"""Smoke test of benchmarks/soak.py: a 3-second soak (processes SIGKILLed at random) checks out."""

from __future__ import annotations

from helpers import run_quick_soak


def test_quick_soak_passes(tmp_path):
    run_quick_soak("soak.py", tmp_path)
