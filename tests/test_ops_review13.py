"""Operations tooling, review 13: kvb http's shutdown and Host check, backup/restore, kvb's --json output."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest
from helpers import free_port

from kv_backend import DB

# ------------------------------------------------------------------ kvb http


def test_http_second_ctrl_c_exits_at_once_without_a_traceback(tmp_path, capfd):
    """A second Ctrl-C during the graceful shutdown (a client stalled mid-body) made uvicorn skip the
    app's shutdown; asyncio then cancelled the lifespan task and Starlette logged it as a traceback.
    It now ends as the grace period does: the stalled upload is answered 503, the store closed, status 0."""
    pytest.importorskip("uvicorn")
    from kv_backend.cli import main

    port = free_port()
    answer: list[bytes] = []
    done = threading.Event()

    def stalled_client() -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        with conn:  # a PUT whose body never comes: the shutdown waits for it (up to 10 s)
            conn.sendall(b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)  # the impatient operator's second Ctrl-C
            conn.settimeout(10)
            answer.append(conn.recv(4096))
            done.wait(10)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    client = threading.Thread(target=stalled_client, daemon=True)
    started = time.monotonic()
    try:
        client.start()
        code = main(["http", "--dir", str(tmp_path / "s"), "--port", str(port)])
        stopped = time.monotonic()
    finally:
        done.set()
        signal.signal(signal.SIGINT, previous)
    client.join(5)
    err = capfd.readouterr().err
    assert code == 0 and stopped - started < 5  # not the 10 s grace
    assert "Traceback" not in err and "Exception in" not in err, err
    assert "Application shutdown complete" in err
    assert answer and answer[0].startswith(b"HTTP/1.1 503") and b"store_closed" in answer[0]
    with DB(str(tmp_path / "s"), read_only=True) as db:
        assert b"k" not in db
