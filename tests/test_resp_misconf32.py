"""kvb's Redis-protocol server answers a write the engine refuses after a failed background fsync (see
:class:`~kv_backend.errors.SyncFailedError`) as Redis does after its background fsync of the append-only
file failed: ``-MISCONF Errors writing to the AOF file: <the system's error>``. Reads are served."""

from __future__ import annotations

import errno
import os

import pytest
from test_fsync_failure_refuses_writes32 import INTERVAL, FailingFsync, timer_fails

from kv_backend import DB
from kv_backend.server import resp
from kv_backend.structures import Structures


@pytest.fixture
def fsync(monkeypatch: pytest.MonkeyPatch) -> FailingFsync:
    return FailingFsync(monkeypatch)


def test_a_redis_server_over_such_a_handle_answers_a_refused_write_misconf(
    store_path: str, fsync: FailingFsync
) -> None:
    # (kvb serve opens its store with sync="never", which has no timer; a server given a handle with
    # sync=<seconds> answers as Redis does after its background fsync of the append-only file failed.)
    server = resp.Server(store_path, loading=True)
    db = DB(store_path, sync=INTERVAL)
    try:
        server.loaded(db, Structures(db))
        conn = resp.Connection(server)
        assert conn.execute([b"SET", b"k", b"v"]) is not None
        timer_fails(db, fsync)
        reply = conn.execute([b"SET", b"k", b"changed"])
        assert reply.message == f"MISCONF Errors writing to the AOF file: {os.strerror(errno.EIO)}"
        assert conn.execute([b"GET", b"k"]) == b"v"  # reads are served
        fsync.on = False
        conn.execute([b"SET", b"k", b"changed"])
        assert conn.execute([b"GET", b"k"]) == b"changed"
    finally:
        fsync.on = False
        db.close()
