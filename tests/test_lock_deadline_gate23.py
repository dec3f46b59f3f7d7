"""A write lock's acquire reads its thread's deadline (``waiting_until``) only while some thread of the
process has a ``waiting_until`` block open: the thread-local lookup and reset it skips otherwise were 4%
of a Store set's instructions. These tests hold the gate to what the deadline promises: one thread's
block ending leaves another's deadline in force, and a block ended by an exception leaves no gate open."""

from __future__ import annotations

import threading
import time

import pytest

from kv_backend import locking
from kv_backend.db import DB
from kv_backend.errors import LockTimeoutError
from kv_backend.locking import waiting_until


def test_a_deadline_holds_after_another_threads_block_ends(tmp_path):
    with DB(str(tmp_path / "store")) as db:
        held, release = threading.Event(), threading.Event()
        inside, may_leave = threading.Event(), threading.Event()

        def hold() -> None:
            with db.locked():
                held.set()
                release.wait(10)

        def other_block() -> None:
            with waiting_until(time.monotonic() + 60):
                inside.set()
                may_leave.wait(10)

        holder = threading.Thread(target=hold)
        other = threading.Thread(target=other_block)
        holder.start()
        other.start()
        try:
            assert held.wait(5) and inside.wait(5)
            limit = waiting_until(time.monotonic() + 0.2)
            with pytest.raises(LockTimeoutError, match="nothing was written"), limit:
                may_leave.set()
                other.join(10)  # its block is over; this thread's is still open
                assert not other.is_alive()
                db.put(b"k", b"v")
        finally:
            may_leave.set()
            release.set()
            holder.join(10)
            other.join(10)
        assert db.get(b"k") is None  # nothing was written
        db.put(b"k", b"v")  # outside any block: the free lock is taken as usual
        assert db.get(b"k") == b"v"


def test_blocks_ended_by_an_error_or_in_any_order_leave_no_gate_open():
    with pytest.raises(ZeroDivisionError), waiting_until(time.monotonic() - 1):
        1 / 0  # noqa: B018 - the block ends with an error
    assert not locking._limits_open and locking._wait_limit.deadline is None
    inside, may_leave = threading.Event(), threading.Event()

    def other_block() -> None:
        with waiting_until(time.monotonic() + 60):
            inside.set()
            may_leave.wait(10)

    other = threading.Thread(target=other_block)
    other.start()
    try:
        assert inside.wait(5)
        with waiting_until(time.monotonic() + 60):
            assert len(locking._limits_open) == 2
        assert len(locking._limits_open) == 1  # the other thread's block is still open
    finally:
        may_leave.set()
        other.join(10)
    assert not locking._limits_open


class _Watched(threading.local):
    """A stand-in for the deadline's thread-local that counts every look at it."""

    looks = 0

    def __getattribute__(self, name: str) -> object:
        type(self).looks += 1
        return super().__getattribute__(name)

    def __setattr__(self, name: str, value: object) -> None:
        type(self).looks += 1
        super().__setattr__(name, value)


def test_writes_outside_any_block_leave_the_thread_local_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(locking, "_wait_limit", _Watched())
    with DB(str(tmp_path / "store")) as db:
        _Watched.looks = 0
        for i in range(20):
            db.put(b"k%d" % i, b"v")
        db.delete(b"k0")
        with db.locked():
            db.put(b"k0", b"v")
        assert _Watched.looks == 0
        with waiting_until(time.monotonic() + 60):
            db.put(b"k1", b"w")  # inside a block the deadline is read, and cleared once the lock is taken
        assert _Watched.looks > 0
        assert db.get(b"k0") == b"v" and db.get(b"k1") == b"w"
