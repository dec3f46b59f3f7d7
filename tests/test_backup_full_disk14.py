"""Backups to a target that fills up, and restores onto a disk that fills up.

A backup that ran out of space left the unfinished object it was writing (on a local disk, every
byte that fit) and said only "No space left on device"; a retry after freeing some space failed
again on the space that object still held.
"""

from __future__ import annotations

import errno
import io
import os
import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

import kv_backend.backup as kvbackup
from kv_backend import DB, BackupError
from kv_backend.backup import list_backups, prune_backups, restore


class _FullFile(MemoryFile):
    def write(self, data):
        self.fs.spend(len(data))
        return super().write(data)


class FullMemoryFileSystem(MemoryFileSystem):
    """fsspec's memory filesystem with room for ``budget`` bytes (None: no limit): a write past it
    raises OSError(ENOSPC), as a full disk or bucket quota does; deleting gives the room back."""

    protocol = ("kvbfull14",)
    store: dict = {}  # (its own, not the memory filesystem's)
    pseudo_dirs = [""]
    budget: int | None = None

    def spend(self, n: int) -> None:
        cls = type(self)
        if cls.budget is not None:
            if n > cls.budget:
                cls.budget = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            cls.budget -= n

    def _open(self, path, mode="rb", **kwargs):
        if mode == "wb":
            data = kwargs.get("data")
            self.spend(len(data or b""))
            f = _FullFile(self, self._strip_protocol(path), data)
            f.commit()
            return f
        return super()._open(path, mode, **kwargs)

    def _rm(self, path):
        size = self.store[self._strip_protocol(path)].size if self.isfile(path) else 0
        super()._rm(path)
        if type(self).budget is not None:
            type(self).budget += size


fsspec.register_implementation("kvbfull14", FullMemoryFileSystem, clobber=True)


@pytest.fixture
def full_url():
    FullMemoryFileSystem.budget = None
    yield f"kvbfull14://bk-{uuid.uuid4().hex}"
    FullMemoryFileSystem.store.clear()
    FullMemoryFileSystem.pseudo_dirs[:] = [""]
    FullMemoryFileSystem.budget = None


def _objects(url: str) -> dict[str, int]:
    fs, root = fsspec.core.url_to_fs(url)
    return {os.path.basename(p): fs.size(p) for p in fs.find(f"{root}/files")}


def test_a_backup_that_fills_the_target_leaves_no_partial_object_and_says_what_to_do(store_path, full_url):
    with DB(store_path, max_file_size=16384) as db:
        for i in range(400):
            db.put(b"k%04d" % i, os.urandom(150))
        snapshot = db.snapshot_files()
        sizes = {f.name: f.length for f in snapshot}  # (the active file: up to its published end)
        for f in snapshot:
            f.close()
        total = sum(sizes.values())
        for budget in (0, 5000, total // 2, total - 10):
            FullMemoryFileSystem.budget = budget
            with pytest.raises(BackupError) as info:
                db.backup(full_url, name=f"b{budget}")
            msg = str(info.value)
            assert "No space left on device" in msg and "the backup target is full" in msg, msg
            assert "--keep" in msg
            assert list_backups(full_url) == []
            # Only whole copies stay (prune collects them): the one cut short was removed.
            for obj, size in _objects(full_url).items():
                assert size == sizes[obj.rsplit(".", 1)[0]], (budget, obj, size)
            prune_backups(full_url, keep=1)  # what the message says: collects what the failed one left
            assert _objects(full_url) == {}
        FullMemoryFileSystem.budget = total + 100_000  # room for the store and its manifest
        report = db.backup(full_url, name="after")
        assert report.files_copied == len(sizes)
    FullMemoryFileSystem.budget = None
    assert [b.name for b in list_backups(full_url)] == ["after"]


def test_a_restore_that_fills_the_disk_says_so_and_leaves_nothing(store_path, tmp_path, monkeypatch):
    url = str(tmp_path / "bk")
    with DB(store_path, max_file_size=16384) as db:
        for i in range(300):
            db.put(b"k%04d" % i, os.urandom(150))
        db.backup(url, name="b")
    room = [30_000]

    class FullDiskFile(io.FileIO):
        def write(self, data):
            if len(data) > room[0]:
                room[0] = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            room[0] -= len(data)
            return super().write(data)

    def full_open(path, mode="r", *args, **kwargs):
        if mode == "wb":
            return io.BufferedWriter(FullDiskFile(path, "wb"))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(kvbackup, "open", full_open, raising=False)
    dest = tmp_path / "restored"
    with pytest.raises(BackupError) as info:
        restore(url, dest)
    msg = str(info.value)
    assert "No space left on device" in msg and f"the disk of {tmp_path} is full" in msg, msg
    assert sorted(os.listdir(tmp_path)) == ["bk", "store"]  # no temporary copy, no store
    monkeypatch.undo()
    assert restore(url, dest).records == 300
