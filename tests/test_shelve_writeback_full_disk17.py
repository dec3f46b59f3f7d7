"""A writeback shelf whose write-back finds the disk full raises kv_backend.dbm.error, as every write.

sync() and close() let the engine's StorageError through, which 'except kv_backend.dbm.error:' (and
the stdlib's 'except dbm.error:') missed, although every other write of a shelf raises the module's
error. After a failed sync() the cache stays, so a later one writes the changes back.
"""

from __future__ import annotations

import errno

import pytest
from helpers import patch_engine

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve


def _full(fd: int, data: bytes, offset: int) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_sync_on_a_full_disk_raises_the_dbm_error_and_keeps_the_changes(tmp_path, monkeypatch):
    path = str(tmp_path / "s")
    with kv_shelve.open(path, writeback=True) as shelf:
        shelf["list"] = [1]
        shelf["list"].append(2)
        patch_engine(monkeypatch, "_pwrite", _full)
        with pytest.raises(kv_dbm.error) as info:
            shelf.sync()
        assert info.value.errno == errno.ENOSPC
        assert "disk is full" in str(info.value)
        monkeypatch.undo()
        assert shelf["list"] == [1, 2]  # still cached
        shelf.sync()
    with kv_shelve.open(path, "r") as shelf:
        assert shelf["list"] == [1, 2]


def test_close_on_a_full_disk_raises_the_dbm_error_and_closes(tmp_path, monkeypatch):
    path = str(tmp_path / "s")
    shelf = kv_shelve.open(path, writeback=True)
    shelf["list"] = [1]
    shelf["list"].append(2)
    patch_engine(monkeypatch, "_pwrite", _full)
    with pytest.raises(kv_dbm.error) as info:
        shelf.close()
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    with pytest.raises(ValueError, match="closed shelf"):
        shelf["list"]
    with kv_shelve.open(path, "r") as reopened:
        assert reopened["list"] == [1]  # the assignment was stored; the cached change was dropped
