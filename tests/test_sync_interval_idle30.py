"""sync=<seconds> fsyncs at most that often on the path of a write, and a timer fsyncs the writes that
came after the last fsync once the store goes idle, about that many seconds after it; sync() counts as
an fsync for the interval, as docs/engine.md and docs/protocol.md ("What is not promised") say."""

from __future__ import annotations

import time

from helpers import FsyncSpy, patch_engine, wait_for

from kv_backend import DB


def test_writes_fsync_on_their_path_at_most_once_an_interval(store_path, monkeypatch):
    now = [time.time()]
    patch_engine(monkeypatch, "_time", lambda: now[0])
    # (The write path alone: patch_engine keeps the timer out, which could not follow the fake clock.)
    with DB(store_path, sync=5) as db:
        db.put(b"first", b"v")  # the interval has passed since the open: fsynced now
        spy = FsyncSpy(monkeypatch)
        now[0] += 1
        db.put(b"second", b"v")  # within the interval: not fsynced on its path (the timer is due later)
        assert spy.calls == []
        now[0] += 10
        db.put(b"third", b"v")  # past the interval: fsynced on its own path, with what came before it
        assert len(spy.calls) == 1 and b"second" in spy.contents[-1] and b"third" in spy.contents[-1]
        db.sync()  # what a caller may still do before a pause: fsynced now, and counted as the last fsync
        assert len(spy.calls) == 2
        now[0] += 1
        db.put(b"fourth", b"v")  # a second after the sync(): within the interval
        assert len(spy.calls) == 2
    assert len(spy.calls) == 3 and b"fourth" in spy.contents[-1]  # close() fsyncs it


def test_the_last_writes_before_a_pause_are_fsynced_by_the_timer(store_path, monkeypatch):
    with DB(store_path, sync=1) as db:  # (long enough for the puts below to fall within it on a busy machine)
        db.put(b"first", b"v")
        spy = FsyncSpy(monkeypatch)
        db.put(b"second", b"v")
        db.put(b"third", b"v")
        assert spy.calls == []
        last_sync = db._state.last_sync.value
        # Idle from now: no write, sync() or close() comes, and the timer fsyncs them.
        wait_for(lambda: spy.calls, timeout=3, what="the timer's fsync")
        assert len(spy.calls) == 1 and b"third" in spy.contents[0]
        # Once it returned (a write that comes during it fsyncs on its own path), the shared last fsync
        # is the timer's, and the next write, within the interval, does not fsync.
        wait_for(lambda: db._state.last_sync.value != last_sync, timeout=5, what="the timer's fsync's end")
        db.put(b"fourth", b"v")
        assert len(spy.calls) == 1
    assert len(spy.calls) == 2 and b"fourth" in spy.contents[-1]
