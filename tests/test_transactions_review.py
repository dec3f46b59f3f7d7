"""DB.transaction() and the Redis server's transactions, reviewed: fork and close inside a block,
and the other edge cases the first tests did not cover."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from helpers import exit_code, fork_child, note_waits

from kv_backend import DB, DatabaseClosedError, TransactionError
from kv_backend.check import check


def test_a_child_forked_inside_a_transaction_neither_joins_it_nor_overwrites_it(store_path):
    """A child forked in the block used to write "in the transaction" at the parent's unpublished
    tail, with no lock: it overwrote the parent's records, and recovery then cut writes that had
    been committed. Now the child's writes wait for the parent's block and go after it."""
    with DB(store_path) as db:
        db.put(b"base", b"0")
        with db.transaction():
            db.put(b"a", b"1" * 100)

            def child() -> None:
                assert db.get(b"a") == b"1" * 100  # waits for the parent's block, which commits it
                db.put(b"child", b"c")

            pid = fork_child(child)
            time.sleep(0.05)  # the child waits for the lock meanwhile
            db.put(b"b", b"2" * 100)
        assert exit_code(pid) == 0
        assert db.get(b"child") == b"c"
    with DB(store_path) as again:
        assert dict(again.items()) == {b"base": b"0", b"a": b"1" * 100, b"b": b"2" * 100, b"child": b"c"}
    assert check(store_path).ok


def test_a_child_forked_inside_a_transaction_is_told_when_it_leaves_the_block(store_path):
    """The block's end in the child (os.fork() with the child going on) raised AssertionError."""
    with DB(store_path) as db:
        block = db.transaction()
        block.__enter__()
        db.put(b"a", b"1")

        def child() -> None:
            db.put(b"c", b"2")
            with pytest.raises(TransactionError, match="forked inside a transaction"):
                block.__exit__(None, None, None)
            block.__exit__(ValueError, ValueError("x"), None)  # an exception in flight: left alone

        pid = fork_child(child)
        time.sleep(0.02)
        block.__exit__(None, None, None)
        assert exit_code(pid) == 0
        assert dict(db.items()) == {b"a": b"1", b"c": b"2"}


def test_close_inside_a_transaction_discards_it_with_a_clear_error(store_path):
    """close() in the block made its end raise a bare AssertionError; and the lock must be left
    for the other threads."""
    with DB(store_path) as db:
        db.put(b"keep", b"1")
        with pytest.raises(DatabaseClosedError, match="closed inside a transaction"), db.transaction():
            db.put(b"a", b"1")
            db.close()
    with DB(store_path) as db:
        assert dict(db.items()) == {b"keep": b"1"}
        done = []
        with pytest.raises(DatabaseClosedError), db.transaction():
            db.put(b"b", b"1")
            t = threading.Thread(target=lambda: done.append(db._lock.try_acquire()))
            db.close()
        t.start()
        t.join()
        assert done == [True]  # the thread lock was released
    with DB(store_path) as db:
        assert dict(db.items()) == {b"keep": b"1"}
        db.put(b"c", b"3")
    assert check(store_path).ok


@pytest.mark.parametrize("hold", ["transaction", "locked"])
def test_a_blocking_pop_inside_the_threads_own_block_answers_at_once(store_path, hold, monkeypatch):
    """Nobody else can write while the block holds the lock: a blocking pop with timeout 0 waited
    for ever (inside a transaction with writes, spinning on the CPU); now it answers None at once,
    as BLPOP inside MULTI/EXEC does in Redis: without waiting for a change at all."""
    from kv_backend.structures import Structures

    with DB(store_path) as db:
        st = Structures(db)
        waited = note_waits(monkeypatch, db)
        st.rpush("full", "1")
        with getattr(db, hold)():
            st.rpush("x", "1")
            assert st.blpop("empty", 0) is None
            assert st.bzpopmin("empty", 0) is None
            assert st.blmpop(["empty"], 0) is None
            assert st.xread({"stream": "$"}, block=0) == []
            assert st.blpop(["empty", "full"], 0) == (b"full", b"1")  # one that has data still pops
            assert not waited.is_set()
        assert st.lrange("x", 0, -1) == [b"1"] and st.llen("full") == 0


def test_wait_for_change_inside_the_threads_own_block_is_refused(store_path):
    """Inside the block nobody else can write: the wait returned True at once (no change since a
    token taken after the transaction's writes) or, without a timeout, never returned."""
    with DB(store_path) as db:
        with db.transaction():
            db.put(b"a", b"1")
            with pytest.raises(TransactionError, match="cannot wait"):
                db.wait_for_change(db.change_token(), 0.05)
            with pytest.raises(TransactionError, match="cannot wait"):
                db.wait_for_change(db.change_token())
        with db.locked(), pytest.raises(TransactionError, match="cannot wait"):
            db.wait_for_change(db.change_token())
        assert db.get(b"a") == b"1"
        token = db.change_token()
        assert db.wait_for_change(token, 0.01) is False  # outside a block: waits as before
        threading.Timer(0.02, db.put, (b"b", b"2")).start()  # another thread writes meanwhile
        assert db.wait_for_change(token, 5) is True


@pytest.mark.parametrize("torn", [False, True])
def test_salvage_of_a_store_with_a_transaction_cut_by_a_crash_is_clean(store_path, tmp_path, torn):
    """kvb salvage counted the records of a transaction killed before its COMMIT (and a torn last
    write) as skipped: exit 1, "damage was skipped", where kvb check and replay see no damage."""
    from kv_backend.cli import main
    from kv_backend.salvage import salvage

    with DB(store_path) as db:
        for i in range(10):
            db.put(b"t%d" % i, b"old")

    def child() -> None:
        from kv_backend import db_write

        with db2.transaction():
            for i in range(10):
                db2.put(b"t%d" % i, b"new")
            if torn:  # the last write reaches the file only in part
                real = db_write._pwrite
                db_write._pwrite = lambda fd, data, off: real(fd, data[:9], off)
                db_write.write_all = lambda *args: None  # the rest of it never comes
                db2.put(b"t0", b"newer")
            os.kill(os.getpid(), signal.SIGKILL)

    db2 = DB(store_path)
    pid = fork_child(child)
    assert exit_code(pid) == -signal.SIGKILL
    db2.close()
    assert check(store_path).ok
    report = salvage(store_path, str(tmp_path / "copy"))
    assert report.clean and not report.regions and report.records_skipped == 0, str(report)
    assert any("COMMIT never reached the file" in n for n in report.notes)
    assert main(["salvage", store_path, str(tmp_path / "copy2")]) == 0
    with DB(str(tmp_path / "copy")) as copy:
        assert dict(copy.items()) == {b"t%d" % i: b"old" for i in range(10)}
