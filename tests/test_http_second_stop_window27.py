"""``kvb http`` without ``--workers``: a second SIGTERM or SIGINT that came once uvicorn had shut down
but before the bounded close of the store began (between uvicorn's return and the close's wait) raised
its stop there: kvb http exited with status 0, the store's close never begun. From the first stop
signal on, a second one now leads to the close's bound as one during the close does: status 3 and the
line saying so (or a close that finished). Real processes; the second signal sent by a hook in the
server's process, in that window."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import child_env, free_port
from test_http_close_stuck27 import _acked_write_kept, _says_status_3


def _kvb_http(tmp_path: Path, second: int) -> tuple[subprocess.Popen, int]:
    """One ``kvb http`` whose close of the store never returns, and which sends itself ``second`` once
    uvicorn has shut down, just before the close begins; stderr in tmp_path/stderr.txt."""
    port = free_port()
    code = f"""
import os, sys, threading
import kv_backend.http.loading as loading
import kv_backend.http.server as s
import kv_backend.http.workers as w
s.SHUTDOWN_GRACE, s.FIRST_REQUEST_GRACE, w.STOP_MARGIN = 0.5, 0.25, 60.0
loading.close_synced = lambda db, warn: threading.Event().wait()
close_within = s._close_within

def in_the_window(*args):
    os.kill(os.getpid(), {int(second)})  # (its handler runs here, before the close begins)
    close_within(*args)

s._close_within = in_the_window
from kv_backend.cli import main
sys.exit(main())
"""
    cmd = [sys.executable, "-c", code, "http", "--dir", str(tmp_path / "store"), "--port", str(port)]
    cmd.append("--no-access-log")
    with (tmp_path / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=err)
    return proc, port


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_before_the_close_begins_ends_in_status_3(tmp_path, second):
    proc, port = _kvb_http(tmp_path, second)
    with _acked_write_kept(proc, port, tmp_path):
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            status = proc.wait(10)  # (at once: the close's own bound is 60 s here)
        except subprocess.TimeoutExpired:
            pytest.fail((tmp_path / "stderr.txt").read_text())
        assert status == 3, (tmp_path / "stderr.txt").read_text()
        assert time.monotonic() - started < 5
        _says_status_3(tmp_path, "kvb: the store's close did not finish at a second SIGTERM or SIGINT (")
