"""An iterator over a Store's, a DB's or a dbm database's keys made before close() raises the closed
error at its next step, as any use after close() does, instead of yielding what is left of the chunk of
keys the engine had taken (8 to 512 keys)."""

from __future__ import annotations

import gc
import threading

import pytest

import kv_backend
from kv_backend import DB, db_read, dbm
from kv_backend.errors import DatabaseClosedError

N = 2000  # past the largest chunk (512 keys)


@pytest.fixture
def store(store_path):
    s = kv_backend.Store(store_path)
    s.update({f"k{i:05d}": i for i in range(N)})
    yield s
    s.close()


@pytest.mark.parametrize("steps", [1, 7, 8, 9, 600])
def test_store_iterator_raises_at_next_step(store, steps):
    it = iter(store)
    for _ in range(steps):
        next(it)
    store.close()
    with pytest.raises(DatabaseClosedError):
        next(it)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: reversed(s),
        lambda s: iter(s.keys(prefix="k0")),
        lambda s: reversed(s.keys(start="k00100")),
        lambda s: iter(s.items()),
        lambda s: iter(s.values(reverse=True)),
        lambda s: s.db.keys(prefix=b"k"),
    ],
)
def test_views_and_engine_iterators_raise(store, make):
    it = make(store)
    next(it)
    store.close()
    with pytest.raises(DatabaseClosedError):
        next(it)


def test_dbm_iterator_raises_dbm_error(store_path):
    with dbm.open(store_path, "c") as d:
        d.update({b"k%05d" % i: b"v" for i in range(N)})
    d = dbm.open(store_path, "w")
    it = iter(d)
    assert next(it) == b"k00000"
    d.close()
    with pytest.raises(dbm.error):
        next(it)


def test_other_stores_iterators_go_on(store_path, tmp_path):
    """Closing one store leaves an iteration over another (of the same path too) alone."""
    other = DB(str(tmp_path / "other"))
    same = DB(store_path)
    try:
        for i in range(N):
            other.put(b"o%05d" % i, b"")
        s = kv_backend.Store(store_path)
        s.update({f"k{i:05d}": i for i in range(N)})
        it_other, it_same = other.keys(), same.keys()
        next(it_other), next(it_same)
        s.close()
        assert sum(1 for _ in it_other) == N - 1
        assert sum(1 for _ in it_same) == N - 1
    finally:
        other.close()
        same.close()


def test_close_in_another_thread_while_iterating(store):
    seen: list[str] = []
    started, closed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def walk() -> None:
        try:
            for k in store:
                seen.append(k)
                if len(seen) == 3:
                    started.set()
                    closed.wait(5)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=walk)
    t.start()
    assert started.wait(5)
    store.close()
    closed.set()
    t.join(5)
    assert len(seen) == 3
    assert len(errors) == 1 and isinstance(errors[0], DatabaseClosedError)


def test_iterations_leave_nothing_behind(store):
    """Finished, abandoned and failed iterations leave no chunk registered for close()."""
    gc.collect()  # (iterations other tests left in reference cycles)
    before = len(db_read._walked)
    assert sum(1 for _ in store) == N
    it = iter(store)
    next(it)
    del it  # abandoned
    it = iter(store.db.keys(prefix=b"k"))
    next(it)
    it.close()
    assert len(db_read._walked) == before
    it = iter(store)
    next(it)
    store.close()
    with pytest.raises(DatabaseClosedError):
        next(it)
    assert len(db_read._walked) == before


def test_close_racing_the_next_chunk_raises(store):
    """A walk whose next chunk is taken just as another thread closes the store finds the empty key
    directory close() leaves: it raises the closed error, rather than ending as if all keys were seen."""
    db = store.db
    real = db._key_chunk
    calls = []

    def chunk_as_close_wins(*args):
        calls.append(args)
        if len(calls) == 2:  # the second chunk: the close ran between the check and the lock
            store.close()
            return []
        return real(*args)

    db._key_chunk = chunk_as_close_wins
    it = iter(store)
    assert [next(it) for _ in range(8)] == [f"k{i:05d}" for i in range(8)]
    with pytest.raises(DatabaseClosedError):
        next(it)


class _WordReadBeforeClose:
    """The state word as a reader saw it just before another thread's close() replaced it."""

    def __init__(self, value: int) -> None:
        self.value = value


@pytest.mark.parametrize(
    "read",
    [
        lambda db: list(db.keys()),
        lambda db: db.unordered_keys(),
        lambda db: db.count(prefix=b"k"),
        lambda db: db._expiry_snapshot(),
        lambda db: db.purge_expired(),
    ],
)
def test_reads_of_the_key_directory_racing_close_raise(store, read):
    """A read that checked the store was current, then took the lock after another thread's close(),
    found the empty key directory close() leaves: [] or 0, no error. It raises the closed error."""
    db = store.db
    seen = db._seen
    store.close()
    db._tailw = _WordReadBeforeClose(seen)  # the check passes, as it did before the close
    with pytest.raises(DatabaseClosedError):
        read(db)
