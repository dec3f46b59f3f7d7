"""A store opened while another store directory is swapped in at its path (``kv_restore --replace``
exchanges the restored store with the old one).

An open that straddled the swap held the old store's LOCK and STATE but listed and read the restored
store's data files: its write lock excluded no one (every other process locks the restored store's
LOCK), it published to a page nobody else reads, and once the old store was deleted every write it
acknowledged was lost (0 of 200 kept, while a worker that opened normally kept 200 of 200). An open now
checks that the LOCK and STATE files it holds are still the ones at their paths, and opens again if
not; a swap holds the old page's in-use lock (``kept_unopened``) so that an open in between waits for it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

import kv_backend.db as db_module
from kv_backend import DB, StorageError
from kv_backend.files import exchange_paths
from kv_backend.state import in_use, kept_unopened


def _stores(tmp_path):
    """An old store at ``cache`` and a restored one beside it, as kv_restore --replace leaves them."""
    loc, restored = str(tmp_path / "cache"), str(tmp_path / "cache.restoring-1")
    with DB(loc) as db:
        for i in range(10):
            db.put(b"old%d" % i, b"o" * 10)
    with DB(restored) as db:
        for i in range(500):
            db.put(b"new%03d" % i, b"n" * 100)
    return loc, restored


def _swap(a: str, b: str) -> None:
    if not exchange_paths(a, b):  # (not Linux, or a file system that cannot exchange)
        pytest.skip("this file system cannot exchange two directories in one step")


def _swap_once_while_opening(monkeypatch, loc, restored, when):
    """Make the next open of a store swap ``restored`` in at ``loc``: before it opens the page (it holds
    the old LOCK), or just after (the old LOCK and STATE)."""
    real = db_module.DB._open_state
    swaps = []

    def open_state(self):
        if when == "before" and not swaps:
            swaps.append(_swap(restored, loc))
        real(self)
        if when == "after" and not swaps:
            swaps.append(_swap(restored, loc))

    monkeypatch.setattr(db_module.DB, "_open_state", open_state)
    return swaps


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_open_straddling_the_swap_opens_the_restored_store(tmp_path, monkeypatch, when):
    loc, restored = _stores(tmp_path)
    swaps = _swap_once_while_opening(monkeypatch, loc, restored, when)
    a = DB(loc)
    monkeypatch.undo()
    assert swaps
    shutil.rmtree(restored)  # kv_restore drops the old store, now beside LOCATION
    b = DB(loc)  # a worker that opens normally
    try:
        assert len(a) == 500 and b"old0" not in a
        with a.locked():  # its write lock keeps the other writer out
            other = threading.Thread(target=b.put, args=(b"waited", b"w"))
            other.start()
            other.join(0.3)
            assert other.is_alive()
        other.join(30)
        assert a.get(b"waited") == b"w"
        for i in range(200):
            a.put(b"a%03d" % i, b"A" * 50)
            b.put(b"b%03d" % i, b"B" * 50)
        assert a.get(b"b199") == b"B" * 50 and b.get(b"a199") == b"A" * 50  # one store, both see it
    finally:
        a.close()
        b.close()
    with DB(loc, read_only=True) as db:
        assert all(db.get(b"a%03d" % i) == b"A" * 50 for i in range(200))
        assert all(db.get(b"b%03d" % i) == b"B" * 50 for i in range(200))
        assert sum(1 for k in db if k.startswith(b"new")) == 500
        assert len(db) == 901


def test_a_path_swapped_at_every_open_is_a_clear_error(tmp_path, monkeypatch):
    loc, restored = _stores(tmp_path)
    real = db_module.DB._open_state

    def open_state(self):
        real(self)
        _swap(restored, loc)

    monkeypatch.setattr(db_module.DB, "_open_state", open_state)
    with pytest.raises(StorageError) as info:
        DB(loc)
    monkeypatch.undo()
    msg = str(info.value)
    assert f"cannot open {loc}: another directory took its place while it was being opened" in msg, msg
    assert "open it again once nothing replaces it" in msg, msg
    assert not in_use(loc) and not in_use(restored)  # nothing left held
    with DB(loc) as db:  # and each store is whole
        assert len(db) in (10, 500)


def test_an_open_waits_for_a_swap_then_opens_the_restored_store(tmp_path):
    loc, restored = _stores(tmp_path)
    opened = []

    def worker():
        db = DB(loc)
        opened.append(db)

    with kept_unopened(loc) as unused:
        assert unused
        thread = threading.Thread(target=worker)
        thread.start()
        time.sleep(0.3)
        assert not opened  # waiting for the swap
        _swap(restored, loc)
    thread.join(30)
    (db,) = opened
    try:
        shutil.rmtree(restored)
        assert len(db) == 500
        db.put(b"after", b"x")
    finally:
        db.close()
    with DB(loc, read_only=True) as db:
        assert db.get(b"after") == b"x" and len(db) == 501


def test_kept_unopened_holds_nothing_while_a_store_is_open(tmp_path):
    loc, _ = _stores(tmp_path)
    with DB(loc, read_only=True), kept_unopened(loc) as unused:
        assert not unused
        with DB(loc) as db:  # (nothing held: an open goes on)
            assert len(db) == 10
    with kept_unopened(str(tmp_path / "nothing")) as unused:
        assert unused
    assert not os.path.exists(tmp_path / "nothing")  # (nothing made)
