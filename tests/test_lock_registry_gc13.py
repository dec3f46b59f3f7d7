"""A store collected by the garbage collector while this thread opens another (#2).

The cyclic garbage collector runs at any allocation and calls ``DB.__del__`` (close) of an
unreachable store. It once ran inside the lock registry's update in ``WriteLock.__init__`` (the
allocation of its weak set), and that close waited for the registry's guard, which this very
thread held: the process hung for ever (seen in a Celery test opening its shared store).
"""

from __future__ import annotations

import gc
import threading

import pytest

import kv_backend.locking as locking
from kv_backend import DB


@pytest.mark.parametrize("same_path", [True, False])
def test_a_store_collected_inside_the_lock_registry_update_does_not_hang(tmp_path, monkeypatch, same_path):
    real = locking.weakref.WeakSet
    collected = []

    def collecting(*args):
        collected.append(gc.collect())  # what an allocation here may set off
        return real(*args)

    first = str(tmp_path / "a")
    second = first if same_path else str(tmp_path / "b")
    DB(second).close()  # both stores exist
    was_enabled = gc.isenabled()
    gc.disable()  # the cycle below waits for the collection the patched WeakSet makes
    try:
        garbage = DB(first)
        garbage.put(b"k", b"v")
        garbage.cycle = garbage  # type: ignore[attr-defined]
        del garbage
        monkeypatch.setattr(locking.weakref, "WeakSet", collecting)
        opened: list[DB] = []
        opener = threading.Thread(target=lambda: opened.append(DB(second)), daemon=True)
        opener.start()
        opener.join(10)
        monkeypatch.undo()
        assert not opener.is_alive(), "opening a store hung while the collector closed another"
        assert collected and collected[0] > 0  # the unreachable store was collected there
        with opened[0] as db:
            db.put(b"k2", b"v2")
            assert db.get(b"k2") == b"v2"
            if same_path:
                assert db.get(b"k") == b"v"
    finally:
        if was_enabled:
            gc.enable()


def test_a_closed_store_left_registered_by_the_collector_is_no_holder(tmp_path):
    """A lock the collector closed inside the registry stays registered until it is freed;
    the same-thread check skips it (its descriptor is gone), so it blocks no write."""
    path = str(tmp_path / "kv")
    with DB(path) as a:
        lock = locking.WriteLock(a._lock.path, create=False)
        locking._registry_thread.inside = True
        try:
            lock.close()  # as from DB.__del__ inside the registry: left registered
        finally:
            locking._registry_thread.inside = False
        assert lock in locking._LOCKS[a._lock.path]
        with a.transaction():
            a.put(b"k", b"v")
        with DB(path) as b:
            b.put(b"k2", b"v2")  # contended or not, no false TransactionError
        assert a.get(b"k2") == b"v2"
