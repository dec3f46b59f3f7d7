"""A failed background fsync reaches the callers of ``sync=<seconds>``, as Redis's ``appendfsync everysec``
does with ``-MISCONF``: the handle records it, and each of its writes first fsyncs the active file itself,
raising :class:`~kv_backend.errors.SyncFailedError` and writing nothing where that fails too, going on
(the record cleared) where it succeeds. Any fsync of the handle that succeeds (``sync()``, the timer's
retry, about every interval, a write's own) clears the record. It is per handle: other processes, and a
forked child, write on. See docs/engine.md ("sync")."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from helpers import child_env, fork_child, reap, wait_for

from kv_backend import DB, db_write
from kv_backend.errors import StorageError, SyncFailedError

INTERVAL = 0.1


class FailingFsync:
    """The engine's fsync of data files (``fsync_file``, as db_write calls it), failing (EIO) while ``on``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on = False
        self.failed = 0
        self.real = db_write.fsync_file
        monkeypatch.setattr(db_write, "fsync_file", self)

    def __call__(self, fd: int) -> None:
        if self.on:
            self.failed += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.real(fd)


@pytest.fixture
def fsync(monkeypatch: pytest.MonkeyPatch) -> FailingFsync:
    return FailingFsync(monkeypatch)


def failed(db: DB) -> bool:
    return db._syncer.failure is not None


def timer_fails(db: DB, fsync: FailingFsync) -> None:
    """Make the timer of ``db`` (``sync=INTERVAL``) fail its fsync, and wait until it is recorded."""
    for _ in range(50):
        fsync.on = False
        db.sync()  # (the last fsync is now: the next write returns unsynced, if it comes within INTERVAL)
        fsync.on = True
        try:
            db.put(b"unsynced", b"v")
            break
        except StorageError:  # (a loaded machine: past the interval, fsynced on its path, which failed)
            continue
    wait_for(lambda: failed(db), timeout=5, what="the timer's failed fsync")


@pytest.fixture
def failed_db(store_path: str, fsync: FailingFsync) -> Iterator[DB]:
    """A DB whose timer's fsync failed (and fsyncs still fail)."""
    with DB(store_path, sync=INTERVAL) as db:
        db.put(b"k", b"0")
        db.put(b"n", b"1")
        timer_fails(db, fsync)
        yield db
        fsync.on = False


def _batch(db: DB) -> None:
    with db.batch() as b:
        b.put(b"new", b"v")


def _transaction(db: DB) -> None:
    with db.transaction():
        db.put(b"new", b"v")


WRITES: dict[str, Callable[[DB], object]] = {
    "put": lambda db: db.put(b"new", b"v"),
    "put with ttl": lambda db: db.put(b"new", b"v", ttl=100),
    "setitem": lambda db: db.__setitem__(b"new", b"v"),
    "delete": lambda db: db.delete(b"k"),
    "put_if_absent": lambda db: db.put_if_absent(b"new", b"v"),
    "setdefault": lambda db: db.setdefault(b"new", b"v"),
    "incr": lambda db: db.incr(b"n"),
    "update(key, fn)": lambda db: db.update(b"k", lambda old: b"changed"),
    "update(mapping)": lambda db: db.update({b"new": b"v"}),
    "expire": lambda db: db.expire(b"k", 100),
    "pop": lambda db: db.pop(b"k"),
    "clear": lambda db: db.clear(),
    "batch": _batch,
    "transaction": _transaction,
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_after_a_failed_timer_fsync_is_refused_when_its_own_fsync_fails_and_writes_nothing(
    failed_db: DB, write: str
) -> None:
    db = failed_db
    token = db.change_token()
    before = dict(db.items())
    with pytest.raises(SyncFailedError) as info:
        WRITES[write](db)
    assert isinstance(info.value, StorageError) and info.value.errno == errno.EIO
    said = str(info.value)
    assert "an fsync of the store" in said and "failed at" in said and os.strerror(errno.EIO) in said
    assert "refused until an fsync succeeds" in said
    assert "kvb check" in said and "kernel log" in said and "space" in said
    assert info.value.failed_at <= time.time() and info.value.reason == os.strerror(errno.EIO)
    assert db.change_token() == token  # nothing written, not even unpublished
    assert dict(db.items()) == before
    with DB(db.path) as other:
        assert dict(other.items()) == before
    assert failed(db)  # still recorded


def test_reads_and_a_read_only_locked_block_are_not_refused(failed_db: DB) -> None:
    assert failed_db[b"k"] == b"0"
    with failed_db.locked():
        assert failed_db.get(b"n") == b"1"


def test_when_the_disk_recovers_the_write_s_own_fsync_succeeds_and_the_write_goes_on(
    store_path: str, fsync: FailingFsync
) -> None:
    with DB(store_path, sync=60) as db:  # (no timer retry within the test: the write's fsync clears it)
        db.put(b"first", b"v")
        fsync.on = True
        db._syncer.record_failure(time.time(), OSError(errno.EIO, os.strerror(errno.EIO)))
        with pytest.raises(SyncFailedError):
            db.put(b"k", b"v")
        fsync.on = False
        db.put(b"k", b"v")
        assert not failed(db) and db[b"k"] == b"v"
        db.put(b"k2", b"v")  # and the next write pays no fsync of its own for it
        assert db[b"k2"] == b"v"


def test_the_timer_retries_about_every_interval_and_its_success_clears_the_record(
    store_path: str, fsync: FailingFsync
) -> None:
    with DB(store_path, sync=INTERVAL) as db:
        timer_fails(db, fsync)
        first = fsync.failed
        wait_for(lambda: fsync.failed >= first + 2, timeout=5, what="the timer's retries")
        assert failed(db)
        fsync.on = False
        wait_for(lambda: not failed(db), timeout=5, what="the timer's successful retry")
        db.put(b"after", b"v")
        assert db[b"after"] == b"v"


def test_sync_raises_while_the_fsync_fails_and_clears_the_record_once_it_succeeds(
    failed_db: DB, fsync: FailingFsync
) -> None:
    with pytest.raises(StorageError):
        failed_db.sync()
    assert failed(failed_db)
    fsync.on = False
    failed_db._syncer.stop()  # (no timer retry meanwhile: the sync() is what clears it)
    failed_db.sync()
    assert not failed(failed_db)
    failed_db.put(b"after", b"v")
    assert failed_db[b"after"] == b"v"


def test_close_works_while_a_failure_is_recorded(store_path: str, fsync: FailingFsync) -> None:
    db = DB(store_path, sync=INTERVAL)
    timer_fails(db, fsync)
    db.close()  # its fsync fails too: closed all the same
    assert db.closed
    fsync.on = False
    with DB(store_path) as again:
        assert again[b"unsynced"] == b"v"  # (the process lives: the page cache holds it)


def test_a_forked_child_does_not_inherit_the_parent_s_record(failed_db: DB, fsync: FailingFsync) -> None:
    def child() -> None:
        assert not failed(failed_db)
        # Not refused: written, then fsynced on its path (the interval has passed since the last fsync
        # that succeeded), which fails and says so, as a write's own fsync did before any record.
        with pytest.raises(StorageError) as info:
            failed_db.put(b"child", b"v")
        assert not isinstance(info.value, SyncFailedError)
        assert failed_db[b"child"] == b"v"

    assert reap(fork_child(child)) == 0
    assert failed(failed_db)
    with pytest.raises(SyncFailedError):
        failed_db.put(b"parent", b"v")
    assert failed_db[b"child"] == b"v"


def test_another_process_s_writes_are_unaffected(failed_db: DB) -> None:
    code = (
        f"from kv_backend import DB\nwith DB({failed_db.path!r}, sync=1) as db:\n    db.put(b'other', b'v')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=child_env(), check=True, timeout=60)
    assert failed_db[b"other"] == b"v"
    with pytest.raises(SyncFailedError):
        failed_db.put(b"mine", b"v")


def test_concurrent_writers_lose_nothing_and_apply_nothing_twice_while_the_failure_comes_and_goes(
    store_path: str, fsync: FailingFsync
) -> None:
    with DB(store_path, sync=0.05) as db:
        db.put(b"n", b"0")
        stop = threading.Event()
        done: list[list[bytes]] = [[] for _ in range(4)]
        refused: list[list[bytes]] = [[] for _ in range(4)]
        increments = [0] * 4
        errors: list[BaseException] = []

        def writer(w: int) -> None:
            i = 0
            try:
                while not stop.is_set():
                    key = b"w%d-%d" % (w, i)
                    i += 1
                    try:
                        if i % 3:
                            db.put(key, key)
                        else:
                            db.incr(b"n")
                            increments[w] += 1
                    except SyncFailedError:
                        refused[w].append(key)
                        continue
                    except StorageError:
                        # The first fsync to fail was this write's own, past the interval: it took
                        # effect (published before its fsync), and said so by raising.
                        if not i % 3:
                            increments[w] += 1
                    if i % 3:
                        done[w].append(key)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(2):
                time.sleep(0.05)
                fsync.on = True
                wait_for(lambda: failed(db), timeout=5, what="a failed fsync")
                wait_for(lambda: any(refused), timeout=5, what="a refused write")
                time.sleep(0.05)
                fsync.on = False
                wait_for(lambda: not failed(db), timeout=5, what="the record cleared")
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert errors == []
        assert sum(map(len, refused)) > 0 and sum(map(len, done)) > 0
        with DB(store_path) as again:
            for keys in done:
                for key in keys:
                    assert again[key] == key
            for keys in refused:
                for key in keys:
                    assert key not in again
            assert int(again[b"n"]) == sum(increments)


def test_the_failure_is_logged_once_while_the_retries_fail_and_the_recovery_once(
    store_path: str, fsync: FailingFsync, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kv_backend.db")
    with DB(store_path, sync=INTERVAL) as db:
        timer_fails(db, fsync)
        first = fsync.failed
        wait_for(lambda: fsync.failed >= first + 3, timeout=5, what="the timer's retries")
        fsync.on = False
        wait_for(lambda: not failed(db), timeout=5, what="the timer's successful retry")
    said = [r.getMessage() for r in caplog.records if r.name == "kv_backend.db"]
    assert sum(m.startswith(f"the sync timer of {db.path} could not fsync") for m in said) == 1, said
    assert sum(m.startswith(f"the store at {db.path} was fsynced again") for m in said) == 1, said


def test_a_transaction_whose_commit_meets_a_failure_recorded_meanwhile_is_discarded(
    store_path: str, fsync: FailingFsync
) -> None:
    with DB(store_path, sync=60) as db:  # (no timer retry within the test)
        db.put(b"k", b"0")
        with pytest.raises(SyncFailedError), db.transaction():
            db.put(b"a", b"1")
            db.incr(b"k")
            fsync.on = True
            db._syncer.record_failure(time.time(), OSError(errno.EIO, os.strerror(errno.EIO)))
        assert db.get(b"a") is None and db[b"k"] == b"0"
        with DB(store_path) as other:
            assert other.get(b"a") is None and other[b"k"] == b"0"
        fsync.on = False
        with db.transaction():
            db.put(b"a", b"1")
        assert db[b"a"] == b"1" and not failed(db)


@pytest.mark.parametrize("sync", ["always", 60.0])
def test_a_write_whose_own_fsync_failed_raises_and_the_next_writes_are_refused_before_writing(
    store_path: str, fsync: FailingFsync, sync: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A write that fsyncs on its own path (sync="always", or past the interval) and fails raises
    StorageError, its record published; the handle then refuses writes, writing nothing, as after the
    timer's failure, until an fsync succeeds: an incr raised and retried is applied once more at most."""
    with DB(store_path, sync=sync) as db:  # type: ignore[arg-type]
        db.incr(b"n")
        if sync != "always":
            db._state.last_sync.value = 1.0  # (the last fsync long ago: the next write fsyncs itself)
        fsync.on = True
        with caplog.at_level(logging.WARNING, "kv_backend.db"), pytest.raises(StorageError) as first:
            db.incr(b"n")
        assert not isinstance(first.value, SyncFailedError)  # (its own failure: it wrote)
        assert db.get(b"n") == b"2" and failed(db)
        logged = [r.getMessage() for r in caplog.records]
        assert [m for m in logged if m.startswith(f"a write to {db.path} could not fsync")], logged
        token = db.change_token()
        for _ in range(3):
            with pytest.raises(SyncFailedError) as refused:
                db.incr(b"n")
            assert db.change_token() == token  # nothing written
        said = str(refused.value)
        assert "refused until an fsync succeeds" in said and "nothing was written" in said
        assert ("the sync timer tries" in said) == (sync != "always")
        assert db.get(b"n") == b"2"
        fsync.on = False
        assert db.incr(b"n") == 3 and not failed(db)
    with DB(store_path) as db:
        assert db.get(b"n") == b"3"


def test_a_failed_sync_call_makes_the_handle_refuse_writes_under_a_sync_policy_only(
    tmp_path, fsync: FailingFsync
) -> None:
    """sync() that fails raises, as ever; under a sync policy the handle refuses writes until an fsync
    succeeds, under sync="never" (no durability asked of writes) it writes on."""
    for sync, refuses in (("always", True), ("never", False)):
        with DB(str(tmp_path / sync), sync=sync) as db:  # type: ignore[arg-type]
            db.put(b"k", b"v")
            fsync.on = True
            with pytest.raises(StorageError):
                db.sync()
            if refuses:
                with pytest.raises(SyncFailedError):
                    db.put(b"k", b"w")
            else:
                db.put(b"k", b"w")
            fsync.on = False
            db.put(b"k", b"x")
            assert db.get(b"k") == b"x" and not failed(db)
