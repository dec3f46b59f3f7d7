"""A writer killed inside a transaction leaves its records past the published end; the next writer's tail
recovery cuts them. Under sync="never" the cut was not fsynced, so a power failure could undo it: the
records came back after the end that the file later kept, once a rotation had closed it there, and in a
closed file a batch followed by zeros is read as published (rule 3: a damaged header, the batch being read
applied), so every reader returned the transaction's values, never committed (the power-failure fuzzer,
--damage seed 4247). Now recovery fsyncs every cut, whatever sync says: a writer that relies on no fsync
may lose writes to a power failure, but does not bring back a transaction that never committed.
"""

from __future__ import annotations

import os
import signal

import pytest
from helpers import FsyncSpy, exit_code, fork_child

from kv_backend import DB
from kv_backend.files import data_name
from kv_backend.state import published_tail


def _killed_in_a_transaction(path: str) -> tuple[str, int]:
    """A put, then a transaction whose writer is killed before its COMMIT: the data file's path and the
    published end (where the transaction starts)."""
    with DB(path) as db:
        db.put(b"a", b"acknowledged")

    def child() -> None:
        with DB(path) as db, db.transaction():
            db.put(b"t", b"never committed")
            os.kill(os.getpid(), signal.SIGKILL)

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    major, end = published_tail(path)
    name = os.path.join(path, data_name((major, 0)))
    with open(name, "rb") as f:
        assert b"never committed" in f.read()
    return name, end


@pytest.mark.parametrize("sync", ["never", 30.0, "always"])
def test_a_recovery_cut_is_fsynced(store_path, monkeypatch, sync):
    name, end = _killed_in_a_transaction(store_path)
    spy = FsyncSpy(monkeypatch)
    with DB(store_path, sync=sync) as db:
        assert db.get(b"t") is None
        assert any(
            path == name and len(held) == end and b"never committed" not in held
            for path, held in zip(spy.paths, spy.contents, strict=True)
        )
        assert db.get(b"a") == b"acknowledged"
