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
    """The checks bite: told that every acknowledged write is durable (which only sync='always' promises), the
    fuzzer reports the seeds whose power failure lost one that was not, with the seed and a reason."""
    benchmarks = os.path.join(ROOT, "benchmarks")
    code = (
        f"import sys; sys.path.insert(0, {benchmarks!r})\n"
        "import fuzz_power_loss as f\n"
        "f.History.durable = lambda self, sync: len(self.ops)\n"
        "sys.exit(f.main(['--seeds', '20', '--damage']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("seed ") and "operations or more" in proc.stdout
    assert lines[-1].startswith("20 seeds (power failures, from 0): ") and not lines[-1].endswith(" 0 bad")
