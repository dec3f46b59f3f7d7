"""``kvb http --workers``: a worker that gets SIGTERM while it starts (before uvicorn's handlers are in
place) stops quietly and at once. Its handler raised its stop where Python drops exceptions (a
``__del__``, a weakref's callback), which printed an "Exception ignored in: ..." traceback on stderr,
and the worker went on starting until its store was open. Real processes: a worker's life
(``workers._child``) run in a child, its stderr in a file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import child_env

#: What runs a worker's life in the child: ``START`` (Python source, run as the worker starts) gets
#: SIGTERM somewhere; then, where the worker did not stop, it writes "served" on stdout.
_WORKER = """
import os, signal, sys, threading, time, weakref
from kv_backend.http import workers

def run_worker(ready):
{start}
    time.sleep(2)  # (the rest of a start: the store opening)
    print("served", flush=True)
    time.sleep(2)

report_r, report_w = os.pipe()
lifeline_r, lifeline_w = os.pipe()
workers._child(run_worker, report_w, lifeline_r, [], set())
"""

#: A SIGTERM whose handler runs inside a finalizer: a __del__, a weakref's callback.
STARTS = {
    "__del__": """
    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
    Finalized()
""",
    "weakref callback": """
    class Referent:
        pass
    referent = Referent()
    ref = weakref.ref(referent, lambda _: os.kill(os.getpid(), signal.SIGTERM))
    del referent
""",
}


def _worker(tmp_path: Path, start: str) -> tuple[int, str, str, float]:
    """Run a worker's life whose start is ``start``: its exit status, stdout, stderr and seconds."""
    code = _WORKER.format(start=start.strip("\n"))
    err_path = tmp_path / "stderr.txt"
    started = time.monotonic()
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=child_env(), stdout=subprocess.PIPE, stderr=err, text=True
        )
        try:
            out, _ = proc.communicate(timeout=10)
        finally:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err_path.read_text(), time.monotonic() - started


@pytest.mark.parametrize("where", STARTS)
def test_a_sigterm_landing_in_a_finalizer_as_a_worker_starts_stops_it_quietly_and_at_once(tmp_path, where):
    status, out, err, seconds = _worker(tmp_path, STARTS[where])
    assert "Exception ignored" not in err and "Traceback" not in err, err
    assert status == 0, err
    assert "served" not in out  # stopped where it got the signal, not once its start was done
    assert seconds < 1.5  # (the start would take 2 s more)


#: Forks ``CYCLES`` workers whose start keeps Python's finalizers running (weakref callbacks), each sent
#: SIGTERM after a few milliseconds: the exit status of each that ended within a second, "stuck" for one that
#: did not (killed then), one a line.
_CYCLES = """
import os, signal, sys, time, weakref
from kv_backend.http import workers

class Referent:
    pass

def run_worker(ready):
    cache = weakref.WeakValueDictionary()
    while True:  # (each dropped referent runs the dictionary's callback)
        for i in range(100):
            cache[i] = Referent()

for n in range({cycles}):
    report_r, report_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, workers._FORWARDED)  # (as the parent forks)
    pid = os.fork()
    if pid == 0:
        workers._child(run_worker, report_w, lifeline_r, [], mask)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for fd in (report_r, report_w, lifeline_r):
        os.close(fd)
    time.sleep(0.002 + 0.0003 * (n % 10))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 1
    while (ended := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:  # (it went on: killed, said so)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("stuck", flush=True)
            break
        time.sleep(0.001)
    else:
        print(os.waitstatus_to_exitcode(ended[1]), flush=True)
    os.close(lifeline_w)
"""


def test_quick_cycles_of_start_and_sigterm_print_nothing(tmp_path):
    cycles = 60
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CYCLES.format(cycles=cycles)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            out, _ = proc.communicate(timeout=20)
        finally:
            proc.kill()
            proc.wait()
    text = err_path.read_text()
    assert "Exception ignored" not in text and "Traceback" not in text, text
    assert out.split() == ["0"] * cycles, text
