"""Waits added today that can last for ever, or fail where nothing needs to wait (review of the lock takes
added with store ids: DB.store_id's look under the write lock).

Each call runs in a thread joined with a bound, so a wait for ever fails the test instead of hanging it."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from kv_backend import DB
from kv_backend.files import LOCK_FILE
from kv_backend.store_id import read_store_id

#: Seconds a call that takes no lock held elsewhere is given to return (far more than it needs).
BOUND = 5.0


def _within(fn: Callable[[], Any], seconds: float = BOUND) -> tuple[bool, Any]:
    """Run ``fn()`` in a daemon thread for ``seconds`` at most: (whether it returned or raised, what)."""
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # (reported to the test)
            out.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), (out[0] if out else None)


def test_store_id_inside_another_objects_locked_block_on_the_same_store(tmp_path):
    """A program that holds the store's write lock through one DB (a locked() or transaction() block) and
    asks another DB on the same store for its id: no other process can be adding the id meanwhile, so the
    id read is the one on disk. It raised TransactionError (a take of the lock through the second DB would
    wait for this very thread for ever, which it refuses); it now answers the id."""
    store = str(tmp_path / "s")
    with DB(store) as first, DB(store) as second:
        first.put(b"k", b"v")
        expected = read_store_id(store)
        assert expected is not None
        with first.locked():  # (in this thread: the one holding the lock)
            assert second.store_id == expected  # (before: TransactionError)
        with first.transaction():
            assert second.store_id == expected
        assert second.store_id == expected  # (outside the blocks: read under its own take, as before)


def test_store_id_under_this_processs_own_flock_of_the_lock_file(tmp_path):
    """The shape of the salvage hang fixed in 1aaef90, in DB.store_id: a program keeping writers out with a
    flock of its own on LOCK (as docs/engine.md suggests around kvb salvage) reads a DB's id."""
    store = str(tmp_path / "s")
    with DB(store) as db:
        db.put(b"k", b"v")
        fd = os.open(os.path.join(store, LOCK_FILE), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            done, _ = _within(lambda: db.store_id, 2.0)
        finally:
            os.close(fd)  # (lets the waiting thread go on)
        assert done, "DB.store_id waited for this process's own flock of LOCK"


def test_a_reload_whose_tls_key_never_reads_leaves_the_stop_working(tmp_path, certs):
    """A SIGHUP reload whose key file is a FIFO, whose read would wait for a writer for ever (the main
    process then heeded no SIGTERM): the file is refused at once, as kvb serve refuses one, the workers
    serving go on, and SIGTERM stops the server. (A file on a dead network mount: test_http_reload_read27.)"""
    from test_http_stop26 import _with_short_stop
    from test_http_workers25 import Server

    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(certs.cert, live / "server.pem")
    shutil.copy(certs.key, live / "server.key")
    options = ("--ssl-certfile", str(live / "server.pem"), "--ssl-keyfile", str(live / "server.key"))
    server = Server(tmp_path, options=options, python=_with_short_stop())
    try:
        deadline = time.monotonic() + 30
        while server.stderr().count("Application startup complete") < 2:
            assert server.proc.poll() is None and time.monotonic() < deadline, server.stderr()
            time.sleep(0.02)
        os.mkfifo(live / ".fifo")
        os.replace(live / ".fifo", live / "server.key")
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "SIGHUP: cannot reload" not in server.stderr():  # (refused at once: the old workers serve)
            assert server.proc.poll() is None and time.monotonic() < deadline, server.stderr()
            time.sleep(0.02)
        assert "not a regular file" in server.stderr(), server.stderr()
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(10)  # (a stuck worker would be killed within 2.5 s)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, server.stderr()
    finally:
        server.close()
