"""kvb http writes one key on its event loop when the store's write lock is free, and waits for a
lock held elsewhere in a worker thread, as before, without holding up the other connections.

A PUT (of at most QUICK_WRITE bytes), DELETE, incr or expire is made where the event loop runs if it
can take the write lock at once and the store does not fsync its writes; where another process or
another thread holds the lock, nothing has been written and the write goes to a worker thread.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from helpers import ROOT, child_env, trace_calls
from helpers import key_url as url
from starlette.testclient import TestClient

from kv_backend import DB
from kv_backend.errors import LockTimeoutError
from kv_backend.http import create_app
from kv_backend.http.app import QUICK_WRITE
from kv_backend.locking import NO_WAIT, waiting_until


def _trace(db: DB, monkeypatch) -> list[tuple[str, bool]]:
    """Record each write of ``db`` as (method, made on the event loop)."""
    return trace_calls(monkeypatch, db, ("put", "delete", "incr", "expire"))


class LockHolder:
    """Another process holding the store's write lock until :meth:`release`."""

    CODE = (
        "import sys\nfrom kv_backend import DB\n"
        "with DB(sys.argv[1]) as d, d.locked():\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n"
    )

    def __init__(self, path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.CODE, str(path)],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "held\n"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.wait(30) == 0


def test_writes_of_one_key_are_made_on_the_event_loop(db, monkeypatch):
    seen = _trace(db, monkeypatch)
    with TestClient(create_app(db)) as client:
        assert client.put(url(b"k"), content=b"v").status_code == 201
        assert client.put(url(b"k"), content=b"w", headers={"If-Match": "*"}).status_code == 204
        assert client.post(url(b"n", "/incr"), params={"delta": "2"}).json() == {"value": 2}
        assert client.post(url(b"k", "/expire"), params={"ttl": "60"}).status_code == 200
        assert client.delete(url(b"n")).status_code == 204
        assert client.delete(url(b"k"), headers={"If-Match": "*"}).status_code == 204
        assert client.delete(url(b"k")).status_code == 404
    assert seen == [(name, True) for name in ("put", "put", "incr", "expire", "delete", "delete", "delete")]
    assert list(db.keys()) == []


def test_a_lock_held_by_another_process_is_waited_for_in_a_thread(db, monkeypatch):
    """The write waits in a worker thread; meanwhile the event loop answers other requests."""
    seen = _trace(db, monkeypatch)
    with TestClient(create_app(db)) as client:
        db.put(b"other", b"1")
        seen.clear()
        holder = LockHolder(db.path)
        got: list[int] = []
        writer = threading.Thread(target=lambda: got.append(client.put(url(b"k"), content=b"v").status_code))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()  # waiting for the lock
        t = time.monotonic()
        assert client.get(url(b"other")).content == b"1"  # the loop is not held
        assert time.monotonic() - t < 2
        holder.release()
        writer.join(30)
        assert got == [201]
        assert db.get(b"k") == b"v"
    # The try on the loop stopped at the lock (a conditional write takes it before it calls put);
    # the worker thread then wrote.
    assert seen == [("put", False)]


def test_a_lock_held_by_another_thread_of_the_process_does_not_hold_up_the_loop(db, monkeypatch):
    seen = _trace(db, monkeypatch)
    with TestClient(create_app(db)) as client:
        db.put(b"other", b"1")
        seen.clear()
        held, release = threading.Event(), threading.Event()

        def hold():
            with db.locked():
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        got: list[int] = []
        writer = threading.Thread(target=lambda: got.append(client.delete(url(b"other")).status_code))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()
        t = time.monotonic()
        assert client.get(url(b"other")).content == b"1"
        assert time.monotonic() - t < 2
        release.set()
        holder.join(10)
        writer.join(30)
        assert got == [204]
        assert db.get(b"other") is None
    # DELETE without conditions calls delete, which stops at the lock on the loop, then in a thread.
    assert seen == [("delete", True), ("delete", False)]


def test_large_values_and_fsynced_stores_are_written_in_a_thread(db, tmp_path, monkeypatch):
    seen = _trace(db, monkeypatch)
    with TestClient(create_app(db)) as client:
        assert client.put(url(b"big"), content=b"x" * (QUICK_WRITE + 1)).status_code == 201
        assert client.put(url(b"small"), content=b"x" * QUICK_WRITE).status_code == 201
    assert seen == [("put", False), ("put", True)]
    with DB(tmp_path / "synced", sync="always") as synced:
        seen = _trace(synced, monkeypatch)
        with TestClient(create_app(synced)) as client:
            assert client.put(url(b"k"), content=b"v").status_code == 201
        assert seen == [("put", False)]
        assert synced.get(b"k") == b"v"


def test_a_write_that_may_not_wait_fails_at_once_and_writes_nothing(db):
    holder = LockHolder(db.path)
    try:
        t = time.monotonic()
        with pytest.raises(LockTimeoutError), waiting_until(NO_WAIT):
            db.put(b"k", b"v")
        assert time.monotonic() - t < 0.5
    finally:
        holder.release()
    assert db.get(b"k") is None
    with waiting_until(NO_WAIT):
        db.put(b"k", b"v")  # the lock free: taken at once
    assert db.get(b"k") == b"v"


def test_writes_on_the_loop_and_in_threads_together_lose_nothing(db):
    """Many clients at once, while another process writes too: every write acknowledged is there."""
    code = (
        "import sys\nfrom kv_backend import DB\n"
        "with DB(sys.argv[1]) as d:\n"
        "    for i in range(400):\n"
        "        d.put(b'p%d' % i, b'x')\n"
    )
    other = subprocess.Popen([sys.executable, "-c", code, str(db.path)], cwd=ROOT, env=child_env())
    with TestClient(create_app(db)) as client:

        def write(n: int) -> None:
            for i in range(100):
                assert client.put(url(b"c%d-%d" % (n, i)), content=b"%d" % i).status_code == 201
                assert client.post(url(b"count", "/incr")).status_code == 200

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
    assert other.wait(60) == 0
    assert db.get(b"count") == b"400"
    assert all(db.get(b"c%d-%d" % (n, i)) == b"%d" % i for n in range(4) for i in range(100))
    assert all(db.get(b"p%d" % i) == b"x" for i in range(400))
