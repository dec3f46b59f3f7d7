"""benchmarks/fuzz_power_loss.py runs: a few seeds of plain kills and of power failures, each checked by every
reader, so that the fuzzer keeps working as the engine changes (docs/protocol.md, "Power-failure fuzzer")."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import ROOT, child_env


@pytest.mark.parametrize("mode", [[], ["--damage"]], ids=["kills", "power-failures"])
def test_the_fuzzer_finds_nothing_in_twenty_seeds(tmp_path, mode):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "fuzz_power_loss.py"), "--seeds", "20", *mode],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=240,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(
        "20 seeds (%s, from 0): 0 bad" % ("power failures" if mode else "plain kills")
    )


def test_a_bad_seed_is_reported(tmp_path):
    """The checks bite: with the engine's test of a STATE page whose end lies inside a batch turned off (a
    defect of an earlier version, tests/test_page_inside_batch20.py), the seed that moves a page's end there
    is reported, with a one-line reason. (Seed 3 as the fuzzer and the engine stand: a change to what it
    draws per seed, or to the files it damages, such as the space a writer reserves, may move it.)"""
    benchmarks = os.path.join(ROOT, "benchmarks")
    code = (
        f"import sys; sys.path.insert(0, {benchmarks!r})\n"
        "import fuzz_power_loss as f\n"
        "import kv_backend.unpublished as u\n"
        "u._inside_a_batch = lambda *args: False\n"
        "sys.exit(f.main(['--seeds', '1', '--start', '3', '--damage']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("seed 3: ") and "the tail's end moved back" in lines[0]
    assert lines[-1] == "1 seeds (power failures, from 3): 1 bad"
