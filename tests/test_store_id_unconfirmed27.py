"""An id left on disk unconfirmed is never recorded before it is durable.

A process giving a store made before ids its id (``store_id.add_store_id``) renames the new format file
into place, then fsyncs the directory; where that fsync fails it puts the old file back. Where putting it
back fails too, the new file stays, its id not durable: a power failure may take it back, and a later open
give the store another. The readers that record an id (a backup's manifest, a salvage's copy,
``DB.store_id``) read it under the write lock all the same, and recorded it. They now fsync the store's
directory themselves before they trust a format file that names an id: where that fails, they record
none; once it succeeds, the id is the store's for good."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from helpers import fail_fsync_of

import kv_backend.store_id as store_id_module
from kv_backend import DB
from kv_backend.backup import backup_store, list_backups
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT
from kv_backend.salvage import salvage
from kv_backend.store_id import read_store_id


def _old_store(path: Path) -> str:
    with DB(str(path)) as db:
        db.put(b"k", b"v")
    (path / FORMAT_FILE).write_text(FORMAT_TEXT)  # (as versions before ids left it)
    return str(path)


def _id_left_unconfirmed(store: str, monkeypatch) -> str:
    """Open ``store`` for writing while its directory's fsyncs fail and the rename putting the old format
    file back fails: the id it added stays on disk, unconfirmed. Returns it; the directory's fsyncs keep
    failing (until the monkeypatch is undone)."""
    failed = fail_fsync_of(monkeypatch, store)
    real = os.replace
    renames: list[str] = []

    def replace(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.basename(str(dst)) == FORMAT_FILE:
            renames.append(str(dst))
            if len(renames) == 2:  # (the put back)
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(src, dst, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace)
        with DB(store) as db:
            assert db[b"k"] == b"v"
    assert len(renames) == 2 and failed  # (renamed into place, fsync failed, put back failed)
    left = read_store_id(store)
    assert left is not None
    return left


def test_a_backup_names_no_id_whose_directory_cannot_be_fsynced(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    left = _id_left_unconfirmed(store, monkeypatch)
    backup_store(store, str(tmp_path / "bk"), name="b1")
    with DB(store, read_only=True) as db:
        db.backup(str(tmp_path / "bk"), name="b2")
    assert [i.store_id for i in list_backups(str(tmp_path / "bk"))] == [None, None]  # (before: left)
    monkeypatch.undo()
    backup_store(store, str(tmp_path / "bk"), name="b3")  # (its fsync succeeds: the id is durable now)
    assert [i.store_id for i in list_backups(str(tmp_path / "bk"))] == [None, None, left]


def test_a_salvage_gives_no_id_whose_directory_cannot_be_fsynced(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    left = _id_left_unconfirmed(store, monkeypatch)
    report = salvage(store, str(tmp_path / "copy"))
    assert report.keys_copied == 1
    copied = read_store_id(str(tmp_path / "copy"))
    assert copied != left  # (before: left, an id its source may lose)
    monkeypatch.undo()
    salvage(store, str(tmp_path / "copy2"))
    assert read_store_id(str(tmp_path / "copy2")) == left


def test_store_id_is_none_until_the_directory_can_be_fsynced(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    left = _id_left_unconfirmed(store, monkeypatch)
    with DB(store, read_only=True) as db:
        assert db.store_id is None  # (before: left)
        monkeypatch.undo()
        assert db.store_id == left


def test_store_id_fsyncs_the_directory_once(tmp_path, monkeypatch):
    """The reader's own fsync: one of the store's directory per look, none of any file."""
    with DB(str(tmp_path / "s")) as db:
        synced: list[str] = []
        real = store_id_module.fsync_dir
        monkeypatch.setattr(store_id_module, "fsync_dir", lambda path: (synced.append(path), real(path)))
        assert db.store_id == read_store_id(db.path) is not None
    assert synced == [db.path]


def test_an_id_on_a_read_only_filesystem_whose_directory_takes_no_fsync_is_trusted(tmp_path, monkeypatch):
    """(squashfs, an ISO image: fsync of a directory there fails with EINVAL; nothing there changes.)"""
    with DB(str(tmp_path / "s")) as db:
        given = db.store_id
    assert given is not None
    fail_fsync_of(monkeypatch, str(tmp_path / "s"), errno.EINVAL)
    real = os.statvfs

    def statvfs(path):  # type: ignore[no-untyped-def]
        st = real(path)
        flags = st.f_flag | (os.ST_RDONLY if read_only else 0)
        return os.statvfs_result((*st[:8], flags, *st[9:]))

    read_only = False
    monkeypatch.setattr(os, "statvfs", statvfs)
    with DB(str(tmp_path / "s"), read_only=True) as db:
        assert db.store_id is None  # (a writable filesystem whose directory cannot be fsynced)
        read_only = True
        assert db.store_id == given
