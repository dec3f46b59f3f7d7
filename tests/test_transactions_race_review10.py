"""Review of the fixes for reads racing another thread's transaction (#2) and close() racing
merge() (#5): the windows that were left, each paused deterministically."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import random
import sys
import threading
import time
from collections.abc import Callable

import pytest
from helpers import thread_reporting
from test_merge_review10 import _store_with_garbage
from test_transactions_race10 import _pause_lookups, _PausingLock, _race

import kv_backend.locking as locking
import kv_backend.merge as merge_mod
import kv_backend.threads as threads_mod
from kv_backend import DB
from kv_backend.check import check
from kv_backend.errors import DatabaseClosedError
from kv_backend.structures import Structures
from kv_backend.structures.layout import META


class _ReleasePausingLock(_PausingLock):
    """Like ``_PausingLock``, but the reader thread pauses right after its next release."""

    def acquire(self, *args: object) -> bool:
        return self._lock.acquire(*args)

    __enter__ = acquire

    def release(self) -> None:
        self._lock.release()
        if threading.current_thread() is self.reader and not self.paused.is_set():
            self.paused.set()
            self.resume.wait(5)


def _block(db: DB) -> None:
    db.put(b"k", b"new")
    db.delete(b"gone")
    db.put(b"f1", b"1")
    db.put(b"f2", b"2", ttl=60)


_READS: dict[str, tuple[Callable[[DB], object], object, object]] = {
    # name: (read, result if the block is discarded, result once it commits)
    "get": (lambda db: db.get(b"k"), b"old", b"new"),
    "getitem": (lambda db: db[b"gone"], b"v", KeyError),
    "get_with_expiry": (lambda db: db.get_with_expiry(b"k"), (b"old", None), (b"new", None)),
    "ttl": (lambda db: db.ttl(b"f2") is not None, KeyError, True),
    "size_with_expiry": (lambda db: db.size_with_expiry(b"gone"), (1, None), None),
    "contains": (lambda db: b"f1" in db, False, True),
    "len": (len, 3, 4),
    "index_size": (lambda db: db.index_size(), 3, 4),
    "peek_value": (lambda db: db._peek_value(b"k"), b"o", b"n"),
    "stats": (lambda db: db.stats()["keys"], 3, 4),
}


@pytest.mark.parametrize("pauser", [_PausingLock, _ReleasePausingLock], ids=["before", "after"])
@pytest.mark.parametrize("commit", [False, True], ids=["discard", "commit"])
@pytest.mark.parametrize("name", list(_READS))
def test_a_read_that_catches_up_as_a_block_begins_never_sees_its_writes(store_path, name, commit, pauser):
    """A read that had to catch up with another process's write first, and took the view after
    its catch-up (paused before or after it takes the view lock), while another thread's
    transaction began and wrote, returned that block's unpublished writes, even those of a block
    then discarded. It now sees the store as before the block or after it."""
    read, discarded, committed = _READS[name]

    def reading() -> object:
        try:
            got = read(db)
        except KeyError:
            got = KeyError
        return got, db._txn is None  # (what it read, whether the block had ended by then)

    with DB(store_path) as db, DB(store_path) as other:
        db.put(b"k", b"old")
        db.put(b"gone", b"v")
        other.put(b"o", b"1")  # another process wrote: db's next read catches up first
        lock = pauser()
        db._rlock = lock
        got = _race(db, lock, reading, lambda: _block(db), commit)
        assert got == (committed if commit else discarded, True)
        db._rlock = threading.Lock()
        assert reading() == got


@pytest.mark.parametrize("commit", [False, True], ids=["discard", "commit"])
def test_the_type_tag_read_never_sees_an_open_block(store_path, commit):
    """The one-byte read the structures layer chooses SET's path with had neither the check after
    its lookup nor the wait: paused in its lookup while another thread's block overwrote the key,
    it gave the block's unpublished type tag."""
    with DB(store_path) as db:
        db.put(b"k", b"hash")
        pauser = _pause_lookups(db, b"k")
        got = _race(
            db,
            pauser,
            lambda: (db._peek_value(b"k"), db._txn is None),
            lambda: db.put(b"k", b"s"),
            commit,
        )
        assert got == (b"s" if commit else b"h", True)


@pytest.mark.parametrize(
    "read",
    [
        lambda db: db.get(b"k"),
        lambda db: db[b"k"],
        lambda db: db.get_with_expiry(b"k"),
        lambda db: db.ttl(b"k"),
        lambda db: list(db.items()),
        lambda db: db._peek_value(b"k"),
        lambda db: db.size_with_expiry(b"k"),
    ],
    ids=["get", "getitem", "get_with_expiry", "ttl", "items", "peek_value", "size_with_expiry"],
)
def test_a_read_that_close_overtakes_raises_database_closed_error(store_path, read):
    """A read that had looked its key up when another thread closed the DB read a mapping close()
    had closed and raised a bare ValueError ("mmap closed or invalid"); it now raises
    DatabaseClosedError, as any call after close() does."""
    db = DB(store_path)
    db.put(b"k", b"v")
    pauser = _pause_lookups(db, b"k")
    reader, got = thread_reporting(lambda: read(db))
    pauser.reader = reader
    reader.start()
    assert pauser.paused.wait(5)
    db.close()
    pauser.resume.set()
    reader.join(5)
    assert len(got) == 1 and isinstance(got[0], DatabaseClosedError), got


def test_close_that_looked_for_a_merge_just_before_it_began_is_not_overtaken(store_path, monkeypatch):
    """close() waits for a merge of another thread, but one that registered just after close() had
    looked (it waited for the merge lock, or was the auto-merge thread starting) ran on: close()
    closed the write lock and the state page in the middle of its switch-over, which died with a
    bare AttributeError. Such a merge now gives up at once with DatabaseClosedError."""
    db = DB(store_path, max_file_size=4096)
    model = _store_with_garbage(db)
    close_paused, close_go = threading.Event(), threading.Event()
    sync_on_close = db._sync_on_close

    def pausing_sync_on_close() -> None:  # close() has looked for a merge and found none
        close_paused.set()
        close_go.wait(5)
        sync_on_close()

    db._sync_on_close = pausing_sync_on_close  # type: ignore[method-assign]
    real_fsync_dir = merge_mod.fsync_dir
    calls: list[str] = []
    merge_paused, merge_go = threading.Event(), threading.Event()

    def pausing_fsync_dir(path: str) -> None:
        if threading.current_thread() is merging:
            calls.append(path)
            if len(calls) == 2:  # in the switch-over, the write lock held, the outputs renamed
                merge_paused.set()
                merge_go.wait(5)
        real_fsync_dir(path)

    monkeypatch.setattr(merge_mod, "fsync_dir", pausing_fsync_dir)
    errors: list[BaseException] = []

    def run_merge() -> None:
        try:
            db.merge()
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        merge_paused.set()

    closing = threading.Thread(target=db.close)
    closing.start()
    assert close_paused.wait(5)
    merging = threading.Thread(target=run_merge)
    merging.start()
    assert merge_paused.wait(5)
    close_go.set()
    closing.join(0.3)
    merge_go.set()
    merging.join(5)
    closing.join(5)
    assert not closing.is_alive() and not merging.is_alive() and db.closed
    assert len(errors) == 1 and isinstance(errors[0], DatabaseClosedError), errors
    monkeypatch.undo()
    with DB(store_path) as again:
        assert dict(again.items()) == model
    assert check(store_path).ok


def test_threads_never_see_a_discarded_or_half_done_block_under_stress(store_path):
    """Transactions of two threads that commit or raise, another process writing (so reads catch up
    often), three reader threads: no read returns a value of a discarded block, and no snapshot
    holds one key of a block's pair without the other. (Before the fix a run of this length
    saw a discarded value about every other time.)"""
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    db, other = DB(store_path), DB(store_path)
    db.put(b"a", b"0")
    doomed: set[bytes] = set()
    bad: list[object] = []
    stop = time.monotonic() + 0.6

    def guarded(fn: Callable[[int], None]) -> Callable[[int], None]:
        def run(n: int) -> None:
            try:
                fn(n)
            except BaseException as exc:  # reported to the test
                bad.append(exc)

        return run

    @guarded
    def writer(n: int) -> None:
        rnd = random.Random(n)
        for i in itertools.count():
            if time.monotonic() > stop:
                return
            tag = b"%d-%d" % (n, i)
            discard = rnd.random() < 0.5
            if discard:
                doomed.add(tag)
            with contextlib.suppress(_Discard), db.transaction():
                db.put(b"a", tag)
                db.put(b"x" + tag, b"1")
                db.put(b"y" + tag, b"1")
                for key in [k for k in db.unordered_keys() if k[:1] == b"x"][: rnd.randrange(3)]:
                    db.delete(key)
                    db.delete(b"y" + key[1:])
                if discard:
                    raise _Discard

    @guarded
    def other_process(n: int) -> None:
        while time.monotonic() < stop:
            other.put(b"o", b"%f" % time.monotonic())
            time.sleep(0.0005)

    @guarded
    def reader(n: int) -> None:
        rnd = random.Random(100 + n)
        while time.monotonic() < stop:
            op = rnd.randrange(3)
            if op == 0:
                value = db.get(b"a")
                if value in doomed:
                    bad.append(("get", value))
            elif op == 1:
                found = db.get_with_expiry(b"a")
                if found is not None and found[0] in doomed:
                    bad.append(("get_with_expiry", found))
            else:
                keys = db.unordered_keys()
                xs = {k[1:] for k in keys if k[:1] == b"x"}
                ys = {k[1:] for k in keys if k[:1] == b"y"}
                if xs != ys or xs & doomed:
                    bad.append(("unordered_keys", xs ^ ys, xs & doomed))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=other_process, args=(0,)))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(switch)
        db.close()
        other.close()
    assert not any(t.is_alive() for t in threads)
    assert bad == []


class _Discard(Exception):
    pass


def test_close_while_the_auto_merge_thread_is_starting(store_path, monkeypatch):
    """close() joins the auto-merge thread, but it found the thread already published while it was
    still starting, and raised RuntimeError ("cannot join thread before it is started") without
    closing anything. It now closes; the merge, once started, finds the store closed and gives up."""
    db = DB(store_path, max_file_size=4096)
    model = _store_with_garbage(db)
    db.auto_merge = 0.1
    monkeypatch.setattr(merge_mod, "AUTO_MERGE_MIN_BYTES", 1)
    starting, go = threading.Event(), threading.Event()

    class _SlowStartThread(threading.Thread):
        def start(self) -> None:
            starting.set()
            go.wait(5)
            super().start()

    class _Threading:  # the threading module as kv_backend.threads sees it, with that Thread
        Thread = _SlowStartThread

        def __getattr__(self, name: str) -> object:
            return getattr(threading, name)

    monkeypatch.setattr(threads_mod, "threading", _Threading())  # where the auto-merge thread is made
    trigger = threading.Thread(target=merge_mod.maybe_auto_merge, args=(db,))
    trigger.start()
    assert starting.wait(5)
    errors: list[BaseException] = []
    try:
        db.close()
    except BaseException as exc:  # reported below, once the thread is let go
        errors.append(exc)
    go.set()
    trigger.join(5)
    merging = db._merge_thread
    if merging is not None:
        merging.join(5)
    monkeypatch.undo()
    assert errors == [] and db.closed
    with DB(store_path) as again:
        assert dict(again.items()) == model
    assert check(store_path).ok


@pytest.mark.parametrize("commit", [False, True], ids=["discard", "commit"])
def test_info_expires_count_never_sees_an_open_block(store_path, commit):
    """The structures layer's count of keys with a TTL (INFO's expires and avg_ttl) read the index
    of expiries after a catch-up, unchecked: a block of another thread that began meanwhile was
    counted, even if it was then discarded."""
    with DB(store_path) as db, DB(store_path) as other:
        keyspace = Structures(db)
        other.put(b"o", b"1")  # another process wrote: db's next read catches up first
        lock = _PausingLock()
        db._rlock = lock
        got = _race(
            db,
            lock,
            lambda: (keyspace.expiring()[0], db._txn is None),
            lambda: db.put(META + b"t", b"sv", ttl=60),
            commit,
        )
        assert got == (1 if commit else 0, True)


def test_a_write_lock_released_as_another_thread_closes_the_store_does_not_hang_the_next_writer(
    store_path, monkeypatch
):
    """close() in another thread closed the lock file just as a writer released the lock: the unlock
    failed with a bare OSError (EBADF) before the thread lock was released, so the writer's block
    raised it and every thread waiting to write hung for ever. The release now always lets the
    thread lock go (closing the lock file released the file lock anyway); and close() now waits for
    the release (see tests/test_close_review10.py): the waiting writer writes before close() or
    gets DatabaseClosedError, whichever takes the lock first."""
    db = DB(store_path)
    real_flock = locking._flock
    holding, waiting = threading.Event(), threading.Event()
    closings: list[threading.Thread] = []

    def flock_racing_close(fd: int, op: int) -> None:
        if op == fcntl.LOCK_UN and threading.current_thread() is holder:
            closing = threading.Thread(target=db.close)  # lands between reading the fd and unlocking
            closings.append(closing)
            closing.start()
            closing.join(0.05)
            assert closing.is_alive() and not db.closed  # it waits for the lock to be released
        real_flock(fd, op)

    monkeypatch.setattr(locking, "_flock", flock_racing_close)
    outcome: dict[str, object] = {}

    def hold() -> None:
        try:
            with db.locked():
                holding.set()
                waiting.wait(5)
                time.sleep(0.05)  # the other writer is blocked on the lock now
            outcome["holder"] = "released"
        except Exception as exc:  # reported to the test
            outcome["holder"] = exc

    def write() -> None:
        try:
            waiting.set()
            db.put(b"k", b"v")
            outcome["writer"] = "wrote"
        except Exception as exc:  # reported to the test
            outcome["writer"] = exc

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert holding.wait(5)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    holder.join(5)
    writer.join(5)
    assert not writer.is_alive(), "the next writer hung on the thread lock"
    assert outcome["holder"] == "released"
    assert outcome["writer"] == "wrote" or isinstance(outcome["writer"], DatabaseClosedError)
    closings[0].join(5)
    assert db.closed


@pytest.mark.parametrize("write", ["put", "put with ttl", "delete"])
def test_a_write_that_close_overtakes_raises_database_closed_error(store_path, write):
    """A write of one thread that another thread's close() overtook after its record was appended
    published its tail into the closed stand-in of the tail word and raised a bare AttributeError
    ("property 'value' of '_ClosedWord' object has no setter"). close() now waits for a write that
    holds the write lock (see tests/test_close_review10.py): the write completes, and the store
    stays sound."""
    db = DB(store_path)
    db.put(b"k", b"old")
    lock = _PausingLock()
    db._rlock = lock  # the writer pauses before it takes the view lock to publish its record

    def act() -> object:
        if write == "delete":
            db.delete(b"k")
        else:
            db.put(b"k", b"new", ttl=60 if write == "put with ttl" else None)
        return "written"

    writer, got = thread_reporting(act)
    lock.reader = writer
    writer.start()
    assert lock.paused.wait(5)
    closing = threading.Thread(target=db.close, daemon=True)
    closing.start()
    closing.join(0.05)
    assert closing.is_alive() and not db.closed  # waits for the write
    lock.resume.set()
    writer.join(5)
    closing.join(5)
    assert not closing.is_alive() and db.closed
    assert got == ["written"], got
    with DB(store_path) as again:
        assert again.get(b"k") == (None if write == "delete" else b"new")
    assert check(store_path).ok
