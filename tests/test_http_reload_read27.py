"""A SIGHUP reload of ``kvb http --workers N`` reads the TLS files again in the main process: a file whose
read never returns (on a network mount that no longer answers) left the main process there for ever,
heeding no SIGTERM and replacing no worker. The read now runs in a thread of its own, given
``--reload-timeout`` seconds: where it has not returned by then, the reload is refused (the workers serving
go on) and the next SIGHUP reads the files again; SIGTERM stops the server meanwhile. Real processes; the
read made to hang by a hook in the server's process while a flag file exists. At most one read runs: a
SIGHUP while one is stuck starts no other (one more thread each time, without bound) and is carried out
once it returns."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from test_http_workers25 import Server, _kill
from test_http_workers26 import _served_cert, _wait_for


def _stuck_reads_while(flag: Path, cert: str) -> tuple[str, ...]:
    """``python`` arguments running kvb's command line where a read of the TLS file ``cert`` waits while
    ``flag`` exists (``flag``.reading is made once one waits), and the stop bounds are short."""
    code = f"""
import os, sys, time
import kv_backend.http.server as s
import kv_backend.http.workers as w
s.SHUTDOWN_GRACE, s.FIRST_REQUEST_GRACE, w.STOP_MARGIN = 0.5, 0.25, 0.5
real_open = os.open

def stuck(path, *args, **kwargs):
    if os.fspath(path) == {cert!r} and os.path.exists({str(flag)!r}):
        open({str(flag) + ".reading"!r}, "w").close()
        while os.path.exists({str(flag)!r}):  # (the mount answers again once it is gone)
            time.sleep(0.01)
    return real_open(path, *args, **kwargs)

os.open = stuck
from kv_backend.cli import main
sys.exit(main())
"""
    return ("-c", code)


def _tls_server(tmp_path: Path, certs, *options: str) -> tuple[Server, Path]:
    flag = tmp_path / "stuck"
    tls = ("--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key)
    return Server(tmp_path, options=(*tls, *options), python=_stuck_reads_while(flag, str(certs.cert))), flag


def _started(server: Server) -> set[int]:
    _wait_for(server, "Application startup complete", 2)
    deadline = time.monotonic() + 30
    while len(server.children()) != 2:
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.01)
    return server.children()


def _reading(server: Server, flag: Path) -> None:
    """Send SIGHUP and wait until its read of the TLS files is stuck."""
    flag.touch()
    server.proc.send_signal(signal.SIGHUP)
    reading = Path(str(flag) + ".reading")
    deadline = time.monotonic() + 10
    while not reading.exists():
        assert server.proc.poll() is None and time.monotonic() < deadline, server.stderr()
        time.sleep(0.01)


def test_sigterm_stops_the_server_while_a_reloads_read_never_returns(tmp_path, certs):
    server, flag = _tls_server(tmp_path, certs)
    try:
        before = _started(server)
        _reading(server, flag)
        victim = min(before)
        _kill(victim)  # (a worker that dies meanwhile is still replaced)
        _wait_for(server, f"worker process [{victim}] was killed (SIGKILL): starting another at once")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0, server.stderr()
        assert time.monotonic() - started < 5
        assert "reloaded" not in server.stderr()
    finally:
        server.close()


def test_a_reload_whose_read_never_returns_is_refused_and_the_next_one_reads_again(tmp_path, certs):
    server, flag = _tls_server(tmp_path, certs, "--reload-timeout", "1")
    try:
        before = _started(server)
        started = time.monotonic()
        _reading(server, flag)
        refused = (
            "SIGHUP: cannot reload, the workers serving go on: the TLS files were not read within 1 s "
            f"(reading {certs.cert} (--ssl-certfile): a file on a mount that no longer answers?); a SIGHUP "
            "waits for this read to return, then reads them again"
        )
        _wait_for(server, refused)
        assert time.monotonic() - started >= 1 - 0.1
        assert server.children() == before  # no worker started, none stopped
        assert _served_cert(server.port, certs.client_context())  # they serve on
        flag.unlink()  # (the mount answers again)
        _wait_for(server, ", given up on, returned after ")  # (its result not used: the reload was refused)
        assert server.children() == before
        server.proc.send_signal(signal.SIGHUP)
        _wait_for(server, "reloaded: worker processes")
        assert server.stop() == 0
    finally:
        server.close()


def _threads(server: Server) -> int:
    return len(os.listdir(f"/proc/{server.proc.pid}/task"))


def test_sighups_during_a_stuck_read_start_no_other_read_and_reload_once_it_returns(tmp_path, certs):
    server, flag = _tls_server(tmp_path, certs)  # (--reload-timeout as shipped: 300 s)
    try:
        before = _started(server)
        _reading(server, flag)
        threads = _threads(server)
        for count in range(1, 4):  # (a config manager retrying its reload)
            server.proc.send_signal(signal.SIGHUP)
            deferred = (
                f"reading {certs.cert} (--ssl-certfile)): no second read is started: this reload follows"
            )
            deadline = time.monotonic() + 10
            while server.stderr().count(deferred) < count:
                assert time.monotonic() < deadline, server.stderr()
                time.sleep(0.01)
        assert _threads(server) == threads  # no thread more for each SIGHUP
        assert server.children() == before
        err = server.stderr()
        assert "SIGHUP while the TLS files of the reload asked at " in err, err
        flag.unlink()  # (the mount answers again)
        _wait_for(server, "reloaded: worker processes")
        err = server.stderr()
        assert "returned after " in err and "reading them again for the SIGHUP that came " in err, err
        assert err.count("SIGHUP: starting 2 new worker processes") == 1, err
        deadline = time.monotonic() + 30
        while server.children() & before or len(server.children()) != 2:  # the old ones stop
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.01)
        assert _served_cert(server.port, certs.client_context())
        assert server.stop() == 0
    finally:
        server.close()
