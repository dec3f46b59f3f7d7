"""Merging a store whose disk is full (docs/protocol.md, "Merge").

A merge began by closing the active file, which makes the next one: on a full disk that failed, and
the merge with it, though the closed files held mostly overwritten and deleted records and merging
them needed room only for the few live ones. It now merges the closed files all the same. Where even
the record that tells the other processes of the merge finds no room, the merge is undone before
any input goes: a process that never looked would hold the inputs (and their space) on.
"""

from __future__ import annotations

import errno
import os

import pytest
from helpers import data_files, patch_engine

import kv_backend.db_write
from kv_backend import DB
from kv_backend.check import check
from kv_backend.errors import StorageError


def _fill(db: DB) -> dict[bytes, bytes]:
    kept = {}
    for round_ in range(4):
        for i in range(40):
            db.put(b"k%02d" % i, b"%d" % round_ * 150)
    for i in range(40):
        if i % 10:
            db.delete(b"k%02d" % i)
        else:
            kept[b"k%02d" % i] = b"3" * 150
    db.put(b"active", b"in the active file")
    kept[b"active"] = b"in the active file"
    return kept


def _no_room_for_headers(monkeypatch) -> None:
    real_write_all = kv_backend.db_write.write_all

    def no_room(fd, data, offset):
        if offset == 0:  # the header of a new data file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_all(fd, data, offset)

    patch_engine(monkeypatch, "write_all", no_room)


def test_a_merge_on_a_full_disk_merges_the_closed_files(store_path, monkeypatch):
    with DB(store_path, max_file_size=4096) as db, DB(store_path) as other:
        kept = _fill(db)
        assert dict(other.items()) == kept
        active = db._tail[0]
        before = sum(db._sizes.values())
        _no_room_for_headers(monkeypatch)
        report = db.merge()
        assert report.files_before > 5 and report.files_after < report.files_before, report
        assert report.bytes_before - report.bytes_after > before // 2, report
        assert db._tail[0] == active  # the active file stayed as it was
        assert dict(db.items()) == dict(other.items()) == kept
        assert other._gen == db._gen  # the other process looked, and holds the merged files
        # Room again: writes go on without reopening.
        monkeypatch.undo()
        other.put(b"more", b"x")
        kept[b"more"] = b"x"
        assert dict(db.items()) == dict(other.items()) == kept
    with DB(store_path) as db:
        assert dict(db.items()) == kept
    assert check(store_path).ok


def test_a_full_disk_with_nothing_closed_to_merge_says_so(store_path, monkeypatch):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        _no_room_for_headers(monkeypatch)
        with pytest.raises(StorageError) as info:
            db.merge()
        assert info.value.errno == errno.ENOSPC
        assert db[b"k"] == b"v"


def test_no_room_to_tell_the_others_undoes_the_merge(store_path, monkeypatch):
    def no_room(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    with DB(store_path, max_file_size=4096) as db, DB(store_path) as other:
        kept = _fill(db)
        db._rotate()
        files = data_files(store_path)
        _no_room_for_headers(monkeypatch)
        monkeypatch.setattr(os, "posix_fallocate", no_room)
        with pytest.raises(StorageError) as info:
            db.merge()
        assert info.value.errno == errno.ENOSPC
        assert "nothing was changed" in str(info.value) and db.path in str(info.value)
        assert data_files(store_path) == files
        assert not [n for n in os.listdir(store_path) if n.endswith((".hint", ".tmp"))]
        assert dict(db.items()) == dict(other.items()) == kept
        monkeypatch.undo()
        db.merge()
        assert len(data_files(store_path)) < len(files)
        assert dict(db.items()) == dict(other.items()) == kept
    with DB(store_path) as db:
        assert dict(db.items()) == kept
    assert check(store_path).ok


def test_a_refused_write_says_what_a_merge_would_reclaim(store_path, monkeypatch):
    def no_room(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    with DB(store_path, max_file_size=4096) as db:
        kept = _fill(db)
        monkeypatch.setattr(os, "posix_fallocate", no_room)
        db._alloc = db._tail[1]
        with pytest.raises(StorageError) as info:
            db.put(b"one more", b"x" * 100)
        said = str(info.value)
        assert info.value.errno == errno.ENOSPC and "disk is full" in said, said
        assert f"`kvb merge {store_path}`" in said and "bytes free for the live records" in said, said
        words = (" bytes free", " bytes of overwritten")
        live, dead = (int(said.split(word)[0].split()[-1]) for word in words)
        assert 0 < live < dead, said
        assert dict(db.items()) == kept
