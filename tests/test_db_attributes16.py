"""A DB keeps few enough attributes for CPython to keep them inline, which its hot paths rely on.

CPython 3.11 stores an instance's attributes in an inline array, read by the specialized
``LOAD_ATTR_INSTANCE_VALUE`` and ``LOAD_METHOD_WITH_VALUES``, only while the class's shared key
table holds fewer than 30 names; the 30th turns every instance's attributes into a plain dict,
read more slowly by every ``self.x`` of DB.get and DB.put (31 attributes against 29: 1.6% more
instructions per Store set, about 1% of its time interleaved with the benchmark's peers, and up to
1% of a get). Whatever a DB goes
through (writes, reads, expiry, a transaction, followed changes, a merge, a fork), it stays
within 29. The merge state and the lost-changes mark, which used to take three attributes,
must keep working: they are checked here too.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest

from kv_backend import DB, Store
from kv_backend.locking import MergeLock

LIMIT = 29  # at most this many attributes: the 30th makes CPython 3.11 materialize the dict


def _exercise(db: DB) -> None:
    db.put(b"a", b"1")
    db.put(b"b", b"2", ttl=100)
    assert db.get(b"a") == b"1"
    assert db.ttl(b"b") is not None
    list(db.keys())
    with db.batch() as b:
        b.put(b"c", b"3")
    with db.transaction():
        db.put(b"d", b"4")
    db.follow_changes()
    db.put(b"e", b"5")
    assert db.take_changes() == [b"e"]
    db.merge()
    db.follow_changes(False)


def test_a_db_keeps_its_attributes_inline_through_its_life(tmp_path: str) -> None:
    with DB(str(tmp_path / "s")) as db:
        _exercise(db)
        assert len(vars(db)) <= LIMIT, sorted(vars(db))


def test_a_store_s_db_keeps_its_attributes_inline(tmp_path: str) -> None:
    with Store(str(tmp_path / "s")) as s:
        s["k"] = {"v": 1}
        assert s["k"] == {"v": 1}
        assert len(vars(s.db)) <= LIMIT, sorted(vars(s.db))


def test_a_merge_is_registered_while_it_runs_and_forgotten_after(tmp_path: str) -> None:
    seen: list[tuple[int, bool, object]] = []

    def note(done: int, total: int) -> None:
        merging = db._merging
        assert merging is not None
        seen.append((merging[0], merging[1].is_set(), merging[2]))

    with DB(str(tmp_path / "s")) as db:
        for i in range(50):
            db.put(b"k", str(i).encode())
        db.merge(progress=note)
        assert db._merging is None
        assert db.get(b"k") == b"49"
    assert seen, "the merge reported no progress"
    ident, done, lock = seen[0]
    assert ident == threading.get_ident() and not done
    assert isinstance(lock, MergeLock)


def test_changes_are_lost_across_a_reload_of_the_index(tmp_path: str) -> None:
    path = str(tmp_path / "s")
    with DB(path) as db, DB(path) as other:
        db.put(b"a", b"1")
        db.follow_changes()
        other.put(b"b", b"2")
        other.merge()  # another process's merge: this one reloads its whole index
        assert db.get(b"b") == b"2"
        assert db.take_changes() is None  # which keys changed is not known
        assert db.take_changes() == []
        db.put(b"c", b"3")
        assert db.take_changes() == [b"c"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_during_a_merge_forgets_the_parent_s_merge(tmp_path: str) -> None:
    with DB(str(tmp_path / "s")) as db:
        db.put(b"k", b"v")
        pids: list[int] = []

        def fork_once(done: int, total: int) -> None:
            if pids:
                return
            pid = os.fork()
            if pid == 0:  # the child: the parent's merge is not its own, nor is its merge lock
                code = 0 if db._merging is None else 1
                os._exit(code)
            pids.append(pid)

        db.merge(progress=fork_once)
        assert pids
        _, status = os.waitpid(pids[0], 0)
        assert os.waitstatus_to_exitcode(status) == 0
        db.merge()  # the merge lock was let go: a second merge takes it at once
        assert db.get(b"k") == b"v"


if sys.implementation.name != "cpython":  # the limit is CPython's
    pytestmark = pytest.mark.skip(reason="the inline-attribute limit is CPython's")
