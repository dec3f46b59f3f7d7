"""A store still open when the interpreter tears its modules down closes without "Exception ignored".

A store dropped that late (a module-level Store of a script whose globals outlive the first
collection of the teardown, as a hypothesis test's do) was closed after the engine's modules had
lost their globals: the data file's and the state page's ``__del__`` called ``os.close`` through a
module global that was None by then, and the interpreter printed "Exception ignored in:
DataFile.__del__ ... 'NoneType' object has no attribute 'close'" (and the same for SharedState)
on every such run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import child_env

pytest.importorskip("hypothesis")

LEFT_OPEN_IN_A_HYPOTHESIS_SCRIPT = """
import sys
from kv_backend import Store
from hypothesis import given, strategies as st

store = Store(sys.argv[1])

@given(st.integers())
def check(n):
    store["n"] = n
    assert store["n"] == n

check()
print("done", flush=True)
"""


def test_a_store_dropped_during_the_teardown_closes_quietly(tmp_path):
    script = tmp_path / "script.py"  # (a file: run with -c, the script's globals die earlier)
    script.write_text(LEFT_OPEN_IN_A_HYPOTHESIS_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")],
        env=child_env(),
        cwd=tmp_path,  # (hypothesis keeps its example database in the working directory)
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stdout + proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
