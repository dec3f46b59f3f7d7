"""DB.transaction() and the other threads sharing the DB object: they wait for the block to end,
and whatever way it ends (commit, discard, an exception half-way) they read a published state."""

from __future__ import annotations

import contextlib
import threading

import pytest

from kv_backend import DB, TransactionError


class _InterruptingLock:
    """Stands in for ``db._rlock``: raises KeyboardInterrupt (as a signal handler would) right
    after the first release at which ``when()`` holds, the lock itself released as usual."""

    def __init__(self, when) -> None:
        self._lock = threading.Lock()
        self._when = when
        self.fired = False

    def acquire(self, *args: object) -> bool:
        return self._lock.acquire(*args)

    def release(self) -> None:
        self._lock.release()
        if not self.fired and self._when():
            self.fired = True
            raise KeyboardInterrupt

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_in_thread(db: DB, key: bytes, timeout: float = 5.0) -> list[object]:
    """Read ``key`` from another thread; what it got (a value or an exception), or [] if it hung."""
    got: list[object] = []

    def run() -> None:
        try:
            got.append(db.get(key))
        except Exception as exc:  # reported to the test
            got.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return got


@pytest.mark.parametrize("caught", [False, True])
def test_an_interrupt_between_the_first_write_and_its_count_leaves_no_trace(store_path, caught):
    """Ctrl-C after the block's first record was indexed, before it was counted: the block wrote
    nothing as far as it knew, so it skipped the discard's reload, and the view kept the record and
    a tail past the published one; every later read of the process then failed with a raw OSError."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
        db._rlock = _InterruptingLock(lambda: b"k" in db._ix.kd)
        # (caught inside the block, the write that raised dooms the transaction: see the last test)
        with pytest.raises(TransactionError if caught else KeyboardInterrupt), db.transaction():
            try:
                db.put(b"k", b"never committed")
            except KeyboardInterrupt:
                if not caught:
                    raise
        assert db._rlock.fired
        assert db.get(b"k") is None and db.get(b"a") == b"1"
        assert _read_in_thread(db, b"k") == [None]
        db.put(b"b", b"2")
        with DB(store_path) as other:
            assert dict(other.items()) == {b"a": b"1", b"b": b"2"}
        assert dict(db.items()) == {b"a": b"1", b"b": b"2"}


def test_an_interrupt_in_the_commit_does_not_leave_other_threads_waiting(store_path):
    """Ctrl-C right after the COMMIT was published, before the transaction was ended: other
    threads' reads waited for it for ever, and this thread's later writes joined the dead one."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
        lock = _InterruptingLock(lambda: db._txn is not None and db._seen == db._tailw.value)
        with pytest.raises(KeyboardInterrupt), db.transaction():
            db.put(b"k", b"v")
            db._rlock = lock  # armed after the block's first write, when the mark is set
        assert lock.fired
        assert db._txn is None
        assert _read_in_thread(db, b"k") == [b"v"]
        db.put(b"b", b"2")
        with DB(store_path) as other:
            assert dict(other.items()) == {b"a": b"1", b"b": b"2", b"k": b"v"}


def test_other_threads_do_not_wait_for_a_block_that_has_not_written(store_path):
    """A read woken by the end of one transaction went on waiting when the next one had begun, even
    though it had not written (a read-only block, or one that reads first): reads wait only for a
    block that has written, so this one, which waits for a read in another thread, does not hang."""
    with DB(store_path) as db:
        db.put(b"a", b"0")
        first = db.transaction()
        first.__enter__()
        db.put(b"a", b"1")
        reader: list[object] = []
        b = threading.Thread(target=lambda: reader.append(db.get(b"a")), daemon=True)
        b.start()
        while not db._txn_cond._waiters:  # type: ignore[attr-defined]
            b.join(0.001)
        with db._txn_cond:  # the reader looks again only once the second block has begun
            first.__exit__(None, None, None)
            second = db.transaction()
            second.__enter__()
        try:
            b.join(5)
            assert reader == [b"1"]
            assert db.get(b"a") == b"1"
        finally:
            second.__exit__(None, None, None)
            b.join(5)


def test_an_interrupt_caught_inside_the_block_after_a_write_reached_the_file_discards_it(store_path):
    """Ctrl-C caught inside the block after a write's record was in the file but before it was
    counted: the COMMIT counted one record fewer than the batch held, so other processes dropped the
    block's first write while this one kept it; the transaction is now discarded, as after a nested
    block that raised."""
    from kv_backend.check import check

    with DB(store_path) as db:
        db.put(b"x", b"0")
        with pytest.raises(TransactionError, match="one of its writes"), db.transaction():
            db.put(b"a", b"1")
            db._rlock = _InterruptingLock(lambda: b"b" in db._ix.kd)
            with contextlib.suppress(KeyboardInterrupt):
                db.put(b"b", b"2")
            db.put(b"c", b"3")
        assert db._rlock.fired
        assert dict(db.items()) == {b"x": b"0"}
        with DB(store_path) as other:
            assert dict(other.items()) == {b"x": b"0"}
    assert check(store_path).ok


def test_close_wakes_the_reads_waiting_for_a_transaction(store_path):
    """close() (here inside the block, as the docs allow) left the other threads' reads waiting for
    the block to end, though the store was closed: a block that then waited for them hung for ever.
    They now fail at once with DatabaseClosedError, as any call on a closed store does."""
    from kv_backend import DatabaseClosedError

    db = DB(store_path)
    db.put(b"a", b"0")
    with pytest.raises(DatabaseClosedError), db.transaction():
        db.put(b"a", b"1")
        got: list[object] = []

        def read() -> None:
            try:
                got.append(db.get(b"a"))
            except Exception as exc:  # reported to the test
                got.append(exc)

        b = threading.Thread(target=read, daemon=True)
        b.start()
        while not db._txn_cond._waiters:  # type: ignore[attr-defined]
            b.join(0.001)
        db.close()
        b.join(5)
        assert len(got) == 1 and isinstance(got[0], DatabaseClosedError)


def test_a_read_under_way_when_a_discarded_block_wrote_neither_crashes_nor_sees_it(store_path):
    """A read that looked a key up just before a block first wrote it (the window docs/protocol.md
    describes) and read the record after the block was discarded: the discard's tail recovery had
    cut the file under the mapping, and the process died of SIGBUS. The discard now zeroes the batch
    in place, and the read, finding it damaged while the view changed, reads again: the key is
    absent. In a child process, since the failure kills it."""
    from helpers import spawn_python

    code = """
        import sys, threading
        from kv_backend import DB

        looked, discarded = threading.Event(), threading.Event()

        class Paused(DB):
            # Pauses thread B's read after its check, with the view it took (before the block).
            @property
            def _view(self):
                view = self.__dict__["_view"]
                if threading.current_thread().name == "B" and not looked.is_set():
                    looked.set()
                    discarded.wait(5)
                return view

            @_view.setter
            def _view(self, view):
                self.__dict__["_view"] = view

        db = Paused(sys.argv[1])
        db.put(b"x", b"old")
        got = []
        b = threading.Thread(target=lambda: got.append(db.get(b"y")), name="B")
        b.start()
        looked.wait(5)
        try:
            with db.transaction():
                db.put(b"y", b"new" * 10000)
                raise RuntimeError("discard it")
        except RuntimeError:
            pass
        discarded.set()
        b.join(5)
        assert got == [None], got
        assert dict(db.items()) == {b"x": b"old"}
        db.put(b"z", b"1")
        db.close()
        with DB(sys.argv[1]) as again:
            assert dict(again.items()) == {b"x": b"old", b"z": b"1"}
    """
    assert spawn_python(code, store_path).wait(30) == 0


def test_a_discarded_block_larger_than_a_file_is_zeroed_in_pieces(store_path):
    """The discard zeroes the batch a piece at a time (a block may be far larger than a file), and
    the store reads as before the block, here and in another process, and checks clean."""
    from kv_backend.check import check

    with DB(store_path, max_file_size=1 << 20) as db:
        db.put(b"x", b"0")
        with pytest.raises(RuntimeError), db.transaction():
            for i in range(300):
                db.put(b"k%d" % i, bytes([i % 251]) * 10_000)
            raise RuntimeError("discard it")
        assert dict(db.items()) == {b"x": b"0"}
        db.put(b"z", b"1")
        with DB(store_path) as other:
            assert dict(other.items()) == {b"x": b"0", b"z": b"1"}
    assert check(store_path).ok
