"""An open that creates a store writes its format file (``KVB_FORMAT.tmp``, fsynced, renamed into place,
the directory fsynced). Where the fsync of the file or of the directory failed, the open raised
StorageError but left what it made: ``KVB_FORMAT.tmp``, or ``KVB_FORMAT`` itself, a store whose id the disk
may not keep, which another process could open (and record the id of) meanwhile. It now removes them
before it lets the write lock go: the directory is as before the open, and the next open creates the store
(with an id of its own)."""

from __future__ import annotations

import errno
import os
import threading

import pytest
from helpers import fail_a_creation_while_another_opens, fail_fsync_of

from kv_backend import DB
from kv_backend.db_open import took_creation
from kv_backend.errors import StorageError
from kv_backend.files import FORMAT_FILE, TMP_SUFFIX
from kv_backend.store_id import read_store_id


def _fail_fsync_of_the_new_format_file(monkeypatch) -> list[str]:
    real = os.fsync
    failed: list[str] = []

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.basename(path) == FORMAT_FILE + TMP_SUFFIX:
            failed.append(path)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return failed


def _left(store: str) -> set[str]:
    return {FORMAT_FILE, FORMAT_FILE + TMP_SUFFIX} & set(os.listdir(store))


@pytest.mark.parametrize("fails", ["file", "directory"])
def test_a_creation_whose_fsync_fails_leaves_no_format_file(tmp_path, monkeypatch, fails):
    store = str(tmp_path / "s")
    if fails == "file":
        failed = _fail_fsync_of_the_new_format_file(monkeypatch)
    else:
        failed = fail_fsync_of(monkeypatch, store)
    with pytest.raises(StorageError, match="cannot create a store in"):
        DB(store)
    assert failed
    assert _left(store) == set()  # (before: KVB_FORMAT.tmp, or KVB_FORMAT)
    monkeypatch.undo()
    with DB(store) as db:  # the next open creates the store
        assert took_creation(db)
        db.put(b"k", b"v")
        given = db.store_id
    assert given is not None and read_store_id(store) == given
    with DB(store, read_only=True) as db:
        assert db[b"k"] == b"v"


def test_a_creation_whose_removal_fails_too_leaves_an_id_no_reader_records(tmp_path, monkeypatch):
    """Where the format file cannot be removed either, it stays, its id unconfirmed: the next open uses the
    store, and a reader records the id only once it has fsynced the directory (see
    test_store_id_unconfirmed27)."""
    store = str(tmp_path / "s")
    fail_fsync_of(monkeypatch, store)
    real = os.unlink

    def unlink(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.basename(str(path)) == FORMAT_FILE:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "unlink", unlink)
        with pytest.raises(StorageError, match="cannot create a store in"):
            DB(store)
    assert _left(store) == {FORMAT_FILE}
    with DB(store) as db:
        assert not took_creation(db)
        db.put(b"k", b"v")
        assert db.store_id is None  # (its directory still cannot be fsynced)
        monkeypatch.undo()
        given = db.store_id
    assert given is not None and read_store_id(store) == given


def test_an_open_that_found_the_format_file_its_creator_then_removed_creates_the_store(tmp_path, monkeypatch):
    """Another open read the new format file (its check, without the lock) before the creator, whose
    directory fsync failed, removed it: it waits for the lock, then finds the file gone, and creates the
    store itself rather than open a directory that is no store."""
    store = str(tmp_path / "s")
    other_done = threading.Event()
    got: list[object] = []

    def open_it() -> None:
        try:
            with DB(store) as db:
                got.append((took_creation(db), db.store_id))
                db.put(b"k", b"v")
        except BaseException as exc:  # pragma: no cover - reported by the test
            got.append(exc)
        finally:
            other_done.set()

    fail_a_creation_while_another_opens(monkeypatch, store, open_it)
    assert other_done.is_set() and len(got) == 1, got
    created, given = got[0]  # type: ignore[misc]
    assert created and given is not None  # (before: no format file, no id)
    assert read_store_id(store) == given
    with DB(store, read_only=True) as db:
        assert db[b"k"] == b"v"
