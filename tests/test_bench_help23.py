"""``python benchmarks/fuzz_power_loss.py --help`` describes the script in a whole sentence.

docs/protocol.md shows the command; its help took the docstring's first line as the description,
which ends mid-sentence ("... killed at a random point,"), dropping what the script does to the disk.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import child_env

ROOT = Path(__file__).resolve().parent.parent


def test_fuzzer_help_gives_the_whole_first_paragraph():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz_power_loss.py"), "--help"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    description = " ".join(done.stdout.split("\n\n")[1].split())
    assert description.startswith("A fuzzer of SIGKILLs and power failures")
    assert description.endswith("read by every reader.")
