"""A read of another thread that passed its check just before a transaction's first write must
not return that transaction's unpublished writes: it reads again and waits for the block (#2)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from helpers import thread_reporting

from kv_backend import DB


class _Discard(Exception):
    pass


class _PausingDict(dict):
    """Stands in for the key directory: the reader thread's lookup of ``key`` waits, once, until
    the test lets it go on, as if the thread had been switched out right before it."""

    def __init__(self, data: dict, key: bytes) -> None:
        super().__init__(data)
        self.key = key
        self.reader: threading.Thread | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()

    def _pause(self, key: object) -> None:
        if key == self.key and threading.current_thread() is self.reader and not self.paused.is_set():
            self.paused.set()
            self.resume.wait(5)

    def __getitem__(self, key: bytes) -> int:
        self._pause(key)
        return dict.__getitem__(self, key)

    def get(self, key: bytes, default: object = None) -> object:  # type: ignore[override]
        self._pause(key)
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        self._pause(key)
        return dict.__contains__(self, key)


class _PausingLock:
    """Stands in for ``db._rlock``: the reader thread's next acquire waits until the test lets it go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reader: threading.Thread | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()

    def acquire(self, *args: object) -> bool:
        if threading.current_thread() is self.reader and not self.paused.is_set():
            self.paused.set()
            self.resume.wait(5)
        return self._lock.acquire(*args)

    def release(self) -> None:
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()


def _race(db: DB, pauser, read: Callable[[], object], write: Callable[[], None], commit: bool) -> object:
    """Start ``read`` in a thread, pause it at its lookup, run a transaction doing ``write`` while it
    is paused, let the read go on while the block is still open, then commit or discard."""
    reader, got = thread_reporting(lambda: read())
    pauser.reader = reader
    reader.start()
    assert pauser.paused.wait(5), "the read never reached its lookup"
    try:
        with db.transaction():
            write()
            pauser.resume.set()
            _let_the_read_go_on(db, reader)  # now, with the block's write in the index
            if not commit:
                raise _Discard
    except _Discard:
        pass
    reader.join(5)
    assert not reader.is_alive(), "the read hung"
    assert len(got) == 1
    return got[0]


def _let_the_read_go_on(db: DB, reader: threading.Thread, limit: float = 0.2) -> None:
    """Give the resumed read up to ``limit`` seconds while the block is open: over as soon as it
    has returned (whatever it read is what the test checks) or waits for the block to end (on
    ``db._txn_cond``, which nothing but the block's end or close() wakes), after which the rest of
    the window could show nothing more."""
    deadline = time.monotonic() + limit
    while reader.is_alive() and not db._txn_cond._waiters and time.monotonic() < deadline:
        time.sleep(0.001)


def _pause_lookups(db: DB, key: bytes) -> _PausingDict:
    kd = _PausingDict(db._ix.kd, key)
    db._ix.kd = kd
    db._view = (kd, db._view[1])
    return kd


@pytest.mark.parametrize("commit", [False, True])
def test_get_never_returns_a_discarded_or_unfinished_write(store_path, commit):
    with DB(store_path) as db:
        db.put(b"k", b"old")
        pauser = _pause_lookups(db, b"k")
        got = _race(db, pauser, lambda: db.get(b"k"), lambda: db.put(b"k", b"new"), commit)
        assert got == (b"new" if commit else b"old")
        assert db.get(b"k") == got


@pytest.mark.parametrize("commit", [False, True])
def test_a_key_created_or_deleted_by_an_open_block_is_not_seen(store_path, commit):
    with DB(store_path) as db:
        db.put(b"gone", b"v")
        pauser = _pause_lookups(db, b"gone")
        got = _race(db, pauser, lambda: db.get(b"gone"), lambda: db.delete(b"gone"), commit)
        assert got == (None if commit else b"v")
    with DB(store_path) as db:
        pauser = _pause_lookups(db, b"new")
        got = _race(db, pauser, lambda: b"new" in db, lambda: db.put(b"new", b"v"), commit)
        assert got is commit
    with DB(store_path) as db:
        db.put(b"t", b"v", ttl=60)
        pauser = _pause_lookups(db, b"t")
        got = _race(db, pauser, lambda: db.ttl(b"t"), lambda: db.put(b"t", b"w"), commit)
        assert (got is None) is commit  # the write removed the expiry


@pytest.mark.parametrize("commit", [False, True])
def test_a_key_scan_never_shows_part_of_an_open_block(store_path, commit):
    with DB(store_path) as db:
        db.put(b"a", b"1")
        list(db.keys())  # the sorted index exists
        lock = _PausingLock()
        db._rlock = lock

        def write() -> None:
            db.put(b"b", b"2")
            db.delete(b"a")

        got = _race(db, lock, lambda: list(db.keys()), write, commit)
        assert got == ([b"b"] if commit else [b"a"])
        lock.paused.clear()  # the same with the unordered snapshot
        lock.resume.clear()
        got = _race(db, lock, lambda: sorted(db.unordered_keys()), lambda: db.put(b"c", b"3"), commit)
        assert got == ([b"b", b"c"] if commit else [b"a"])
