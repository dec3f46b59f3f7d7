"""sync=<seconds> fsyncs at most that often, on the path of a write: no timer fsyncs the writes that
came after the last fsync, which wait for the next write past the interval, sync() or close(), as
docs/engine.md and docs/protocol.md ("What is not promised") say."""

from __future__ import annotations

import time

from helpers import FsyncSpy, patch_engine

from kv_backend import DB


def test_the_last_writes_before_a_pause_wait_for_the_next_write_sync_or_close(store_path, monkeypatch):
    now = [time.time()]
    patch_engine(monkeypatch, "_time", lambda: now[0])
    with DB(store_path, sync=5) as db:
        db.put(b"first", b"v")  # the interval has passed since the open: fsynced now
        spy = FsyncSpy(monkeypatch)
        now[0] += 1
        db.put(b"second", b"v")  # within the interval: not fsynced
        assert spy.calls == []
        now[0] += 3600  # an hour idle: the interval is long past, and still nothing fsynced it
        assert db.get(b"second") == b"v" and spy.calls == []
        db.sync()  # what the docs tell a caller to do before such a pause
        assert len(spy.calls) == 1 and b"second" in spy.contents[-1]
        now[0] += 10
        db.put(b"third", b"v")  # past the interval: fsynced on its own path
        assert len(spy.calls) == 2 and b"third" in spy.contents[-1]
        now[0] += 1
        db.put(b"fourth", b"v")
        assert len(spy.calls) == 2
        now[0] += 10
        db.put(b"fifth", b"v")  # the next write past the interval fsyncs what came before it too
        assert len(spy.calls) == 3 and b"fourth" in spy.contents[-1]
        now[0] += 1
        db.put(b"sixth", b"v")
        assert len(spy.calls) == 3
    assert len(spy.calls) == 4 and b"sixth" in spy.contents[-1]  # close() fsyncs it
