"""Swapping out a store that has no ``STATE`` page yet (restored, or copied, and not opened by a writer
since) while a process starts to open it.

``kv_restore --replace`` holds the page's in-use lock from its last "nobody has it open" check through the
swap, so that an open coming in between waits and then opens the restored store. Without a page there was
nothing to hold: an open in between made the page, locked it and opened the old store, which the restore
then deleted with every write that process acknowledged. The page is now made first, and held.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from kv_backend import DB
from kv_backend.files import STATE_FILE, exchange_paths
from kv_backend.state import in_use, kept_unopened


def test_an_open_waits_for_the_swap_of_a_store_without_a_page(tmp_path):
    loc, restored = str(tmp_path / "cache"), str(tmp_path / "cache.restoring-1")
    with DB(loc) as db:
        db.put(b"old", b"o")
    os.unlink(os.path.join(loc, STATE_FILE))
    with DB(restored) as db:
        db.put(b"new", b"n")
    assert not in_use(loc) and not os.path.exists(os.path.join(loc, STATE_FILE))  # (asking makes none)
    opened = []
    with kept_unopened(loc) as unused:
        assert unused
        thread = threading.Thread(target=lambda: opened.append(DB(loc)))
        thread.start()
        thread.join(0.3)
        assert not opened  # waiting for the swap
        if not exchange_paths(restored, loc):
            pytest.skip("this file system cannot exchange two directories in one step")
    thread.join(30)
    shutil.rmtree(restored)  # the old store
    (db,) = opened
    with db:
        assert db.get(b"new") == b"n" and b"old" not in db
        db.put(b"after", b"a")
    with DB(loc, read_only=True) as db:
        assert db.get(b"after") == b"a"
