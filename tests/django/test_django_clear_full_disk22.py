"""``cache.clear()`` on a full disk (and a Store's, a dbm database's, a DB's).

A clear writes a delete record for every key, so on a full disk it failed with a bare "No space left on
device", where Django's file-based cache empties itself by removing files. It still needs that room
(its deletes are one atomic batch), and now says so: how many keys, about how many bytes, that
nothing was removed, and what to do. Reads go on meanwhile, and once there is room it clears.
"""

from __future__ import annotations

import errno
import os

import pytest
from helpers import patch_engine
from kv_backend_django.cache import KVCache

import kv_backend.dbm
from kv_backend import DB, Store
from kv_backend.errors import StorageError


@pytest.fixture
def full_disk(monkeypatch):
    """Every write of a record refused with ENOSPC, as on a full disk, until undone."""

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    def fill():
        monkeypatch.setattr(os, "pwrite", no_space)
        monkeypatch.setattr(os, "posix_fallocate", no_space)
        patch_engine(monkeypatch, "_pwrite", no_space)

    return fill


def _check_refusal(info, path: str, keys: int) -> None:
    said = str(info.value)
    assert info.value.errno == errno.ENOSPC, said
    assert f"cannot clear {path}" in said and f"each of its {keys} keys" in said, said
    assert "nothing was removed" in said and "bytes" in said, said


def test_a_full_disk_clear_says_what_it_needs_and_clears_once_there_is_room(tmp_path, full_disk, monkeypatch):
    path = str(tmp_path / "kv")
    cache = KVCache(path, {})
    cache.set_many({f"k{i}": i for i in range(50)})
    full_disk()
    with pytest.raises(StorageError) as info:
        cache.clear()
    _check_refusal(info, path, 50)
    assert cache.get("k7") == 7 and cache.has_key("k49")  # reads go on, nothing lost
    monkeypatch.undo()
    cache.clear()  # the same cache object: no reopening
    assert cache.get("k7") is None
    cache.close()


@pytest.mark.parametrize("front_end", ["DB", "Store", "dbm"])
def test_every_front_ends_clear_says_the_same(tmp_path, full_disk, monkeypatch, front_end):
    path = str(tmp_path / "s")
    if front_end == "DB":
        handle = DB(path)
        for i in range(10):
            handle.put(b"k%d" % i, b"v")
    elif front_end == "Store":
        handle = Store(path)
        handle.update({f"k{i}": i for i in range(10)})
    else:
        handle = kv_backend.dbm.open(path, "c")
        for i in range(10):
            handle[f"k{i}"] = b"v"
    full_disk()
    error = kv_backend.dbm.error if front_end == "dbm" else StorageError
    with pytest.raises(error) as info:
        handle.clear()
    _check_refusal(info, path, 10)
    assert len(handle) == 10
    monkeypatch.undo()
    handle.clear()
    assert len(handle) == 0
    handle.close()
