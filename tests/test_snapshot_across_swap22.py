"""A backup of a store that is not open (``kvb backup PATH``, ``backup_store``) while another store
directory is swapped in at its path (``kv_restore --replace``).

Its snapshot took the old store's LOCK and STATE page, then listed the files of the store now at the path:
the write lock it snapshots under kept no writer of that store out, and the in-use lock it holds for the
whole backup was on a page no longer there, so a ``kv_restore --replace`` found the store unused and could
replace and delete it under the backup. It now opens the lock file and page of the store at the path
again, as an open does, before it lists the files.
"""

from __future__ import annotations

import pytest

import kv_backend.state as state_module
from kv_backend import DB, StorageError
from kv_backend.files import exchange_paths
from kv_backend.snapshot import store_snapshot
from kv_backend.state import in_use


def _stores(tmp_path):
    loc, restored = str(tmp_path / "cache"), str(tmp_path / "cache.restoring-1")
    with DB(loc) as db:
        db.put(b"old", b"o")
    with DB(restored) as db:
        for i in range(300):
            db.put(b"new%03d" % i, b"n" * 100)
    return loc, restored


def _swap_after_the_page_opens(monkeypatch, loc, restored, times):
    real = state_module.SharedState
    swaps = []

    def page(*args, **kwargs):
        st = real(*args, **kwargs)
        if len(swaps) < times:
            swaps.append(exchange_paths(restored, loc))
            if not swaps[-1]:
                pytest.skip("this file system cannot exchange two directories in one step")
        return st

    monkeypatch.setattr(state_module, "SharedState", page)  # (the snapshot maps it through page_for_reading)


def test_a_snapshot_straddling_the_swap_holds_the_store_at_the_path(tmp_path, monkeypatch):
    loc, restored = _stores(tmp_path)
    _swap_after_the_page_opens(monkeypatch, loc, restored, 1)
    with store_snapshot(loc) as snapshot:
        assert in_use(loc) and not in_use(restored)  # a restore sees the backup, and waits for it
        (data,) = [s for s in snapshot if s.name.endswith(".data")]
        with DB(loc, read_only=True) as db:  # the restored store's records, all of them
            assert data.length == db.stats()["active_end"] and len(db) == 300
    assert not in_use(loc)


def test_a_path_replaced_at_every_snapshot_is_a_clear_error(tmp_path, monkeypatch):
    loc, restored = _stores(tmp_path)
    _swap_after_the_page_opens(monkeypatch, loc, restored, 100)
    with pytest.raises(StorageError) as info, store_snapshot(loc):
        pass
    assert "another directory took its place while it was being opened, 5 times" in str(info.value)
    assert not in_use(loc) and not in_use(restored)
