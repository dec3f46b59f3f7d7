"""A shelf's close (and sync) fsyncs what the shelf wrote, and nothing when it wrote nothing.

Every close of a ``"c"`` or ``"w"`` shelf called fdatasync, read-only use included: an open, a
read and a close paid a flush of the disk's cache (milliseconds on a virtual disk), and a ``"cs"``
shelf, whose writes were each fsynced already, paid two more at close.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from helpers import FsyncSpy, run_python

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend import DB, Store


@pytest.fixture
def shelf_path(tmp_path):
    path = str(tmp_path / "shelf")
    with kv_shelve.open(path, "c") as shelf:
        for i in range(20):
            shelf[f"k{i}"] = [i]
    return path


def _read(shelf: Any) -> None:
    assert shelf["k1"] == [1]
    assert shelf.get("k2") == [2] and shelf.get("absent") is None
    assert "k3" in shelf and len(shelf) == 20
    assert sorted(shelf) == sorted(f"k{i}" for i in range(20))
    assert dict(shelf.items())["k4"] == [4]


@pytest.mark.parametrize("writeback", [False, True])
@pytest.mark.parametrize("flag", ["c", "w", "cs", "r"])
def test_a_shelf_that_wrote_nothing_flushes_nothing(shelf_path, monkeypatch, flag, writeback):
    spy = FsyncSpy(monkeypatch)
    with kv_shelve.open(shelf_path, flag, writeback=writeback) as shelf:
        _read(shelf)
        shelf.sync()
        _read(shelf)
    assert spy.calls == []


def test_a_dbm_database_or_store_that_wrote_nothing_flushes_nothing(shelf_path, monkeypatch):
    spy = FsyncSpy(monkeypatch)
    for flag in ("c", "w", "cs"):
        with kv_dbm.open(shelf_path, flag) as db:
            assert db[b"k1"]
            db.sync()
    for sync in ("never", "always", 60.0):
        with Store(shelf_path, sync=sync) as store:
            assert store["k1"] == [1]
    assert spy.calls == []


def _mutate_cached(shelf: Any) -> None:
    shelf["k5"].append("MARK-cached")


#: Each write a shelf can make, and bytes its record holds (a delete's: the key's).
WRITES: dict[str, tuple[Callable[[Any], object], bytes]] = {
    "setitem": (lambda s: s.__setitem__("new", "MARK-set"), b"MARK-set"),
    "update": (lambda s: s.update({"a": "MARK-upd", "b": 2}), b"MARK-upd"),
    "setdefault": (lambda s: s.setdefault("fresh", "MARK-default"), b"MARK-default"),
    "delitem": (lambda s: s.__delitem__("k7"), b"k7"),
    "pop": (lambda s: s.pop("k7"), b"k7"),
    "popitem": (lambda s: s.popitem(), b"k0"),  # (the smallest key)
    "clear": (lambda s: s.clear(), b"k0"),
    "writeback": (_mutate_cached, b"MARK-cached"),
}


@pytest.mark.parametrize("how", ["close", "sync"])
@pytest.mark.parametrize("write", sorted(WRITES))
def test_what_a_shelf_wrote_is_flushed_by_its_close_and_its_sync(shelf_path, monkeypatch, write, how):
    op, marker = WRITES[write]
    shelf = kv_shelve.open(shelf_path, "c", writeback=write == "writeback")
    with open(_active_file(shelf_path), "rb") as f:
        before = f.read().count(marker)
    spy = FsyncSpy(monkeypatch)
    op(shelf)
    assert spy.calls == []  # ("c": no fsync per write)
    shelf.sync() if how == "sync" else shelf.close()
    assert spy.calls, "nothing was flushed"
    assert spy.contents[-1].count(marker) > before
    n = len(spy.calls)
    shelf.close()  # (after sync(): nothing more to flush)
    assert len(spy.calls) == n


def _active_file(path: str) -> str:
    names = sorted(n for n in os.listdir(path) if n.endswith(".data"))
    return os.path.join(path, names[-1])


def test_a_cs_shelf_fsyncs_each_write_once_and_nothing_more_at_close(shelf_path, monkeypatch):
    spy = FsyncSpy(monkeypatch)
    with kv_shelve.open(shelf_path, "cs") as shelf:
        shelf["a"] = "MARK-a"
        assert len(spy.calls) == 1 and b"MARK-a" in spy.contents[0]
    assert len(spy.calls) == 1


def test_a_write_left_to_the_interval_is_flushed_at_close(shelf_path, monkeypatch):
    store = Store(shelf_path, sync=3600)
    store["a"] = "first"  # (fsynced: none for an hour before)
    spy = FsyncSpy(monkeypatch)
    store["b"] = "MARK-b"
    assert spy.calls == []  # within the interval
    store.close()
    assert len(spy.calls) == 1 and b"MARK-b" in spy.contents[0]


def test_records_written_before_another_process_rotated_are_flushed_at_close(shelf_path, monkeypatch):
    """The close fsynced the active file only: records the shelf had written to the file another
    handle's rotation then closed (without an fsync: no sync policy) were left unflushed."""
    shelf = kv_shelve.open(shelf_path, "c")
    shelf["mine"] = "MARK-before-rotation"
    rotated_file = _active_file(shelf_path)
    with DB(shelf_path, max_file_size=4096) as other:
        other.put(b"big", b"x" * 8000)
    assert _active_file(shelf_path) != rotated_file
    assert shelf["mine"] == "MARK-before-rotation"  # (a read catches up: its active file is the new one)
    assert shelf.dict.db._active.path != rotated_file
    spy = FsyncSpy(monkeypatch)
    shelf.close()
    assert any(b"MARK-before-rotation" in content for content in spy.contents), len(spy.calls)


def test_a_reload_of_the_key_directory_keeps_what_is_left_to_flush(shelf_path, monkeypatch):
    """A full reload (after a merge or a recovery of another process) opens the data files anew:
    the mark of what the shelf still had to flush stays on the file it wrote to."""
    shelf = kv_shelve.open(shelf_path, "c")
    shelf["mine"] = "MARK-reloaded"
    shelf.dict.db._full_reload()
    spy = FsyncSpy(monkeypatch)
    shelf.close()
    assert len(spy.calls) == 1 and b"MARK-reloaded" in spy.contents[0]


def test_what_a_closed_shelf_wrote_outlives_a_sigkill(shelf_path):
    child = run_python(
        f"""
        import os, signal
        import kv_backend.shelve as kv_shelve

        with kv_shelve.open({shelf_path!r}, "c", writeback=True) as shelf:
            shelf["k1"].append("changed in the cache")
            shelf["written"] = {{"n": 1}}
            del shelf["k2"]
        with kv_shelve.open({shelf_path!r}, "w") as shelf:  # only read
            assert shelf["written"] == {{"n": 1}}
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with kv_shelve.open(shelf_path, "r") as shelf:
        assert shelf["k1"] == [1, "changed in the cache"]
        assert shelf["written"] == {"n": 1}
        assert "k2" not in shelf and len(shelf) == 20


def test_sync_of_a_closed_database_still_raises(shelf_path):
    db = kv_dbm.open(shelf_path, "c")
    db.close()
    with pytest.raises(kv_dbm.ClosedError):
        db.sync()
