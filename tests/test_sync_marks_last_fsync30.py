"""sync() counts as the store's last fsync for sync=<seconds> (the shared last_sync word of the state
page): a write that comes within the interval after it does not fsync again, as after a write's fsync."""

from __future__ import annotations

import time

from helpers import FsyncSpy, patch_engine

from kv_backend import DB


def test_sync_marks_the_shared_last_fsync_so_the_next_write_does_not_fsync_again(store_path, monkeypatch):
    now = [time.time()]
    patch_engine(monkeypatch, "_time", lambda: now[0])
    with DB(store_path, sync=5) as db:
        db.put(b"first", b"v")
        spy = FsyncSpy(monkeypatch)
        now[0] += 10
        db.sync()
        assert len(spy.calls) == 1
        now[0] += 1
        db.put(b"second", b"v")  # one second after the sync(): within the interval, no fsync
        assert len(spy.calls) == 1
