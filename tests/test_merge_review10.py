"""Merge: defects found by the tenth review (failures while writing the outputs)."""

from __future__ import annotations

import errno
import os
import threading

import pytest

import kv_backend.merge as merge_mod
from kv_backend import DB, StorageError, TransactionError
from kv_backend.check import check


def _store_with_garbage(db: DB) -> dict[bytes, bytes]:
    for i in range(200):
        db.put(b"k%03d" % i, b"v%d" % i * 20)
    for i in range(0, 200, 2):
        db.delete(b"k%03d" % i)
    return {b"k%03d" % i: b"v%d" % i * 20 for i in range(1, 200, 2)}


def _no_temporaries(path: str) -> bool:
    return not [n for n in os.listdir(path) if n.endswith(".tmp")]


@pytest.mark.parametrize("where", ["hint file", "fsync", "switch-over"])
def test_a_disk_error_while_merging_is_a_storage_error_and_changes_nothing(store_path, monkeypatch, where):
    """Disk full while writing a hint file, an fsync that fails, a directory that cannot be synced at
    the switch-over: the merge used to end with a bare OSError (a traceback from `kvb merge`); it is
    now a StorageError that says what failed, and the store reads as before."""
    if where == "hint file":

        def fail(path, *args):
            with open(path, "wb") as f:
                f.write(b"KVBHINT")  # part of it, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(merge_mod, "write_hints", fail)
        code = errno.ENOSPC
    else:

        def fail(*args):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(merge_mod, "fsync_file" if where == "fsync" else "fsync_dir", fail)
        code = errno.EIO
    with DB(store_path, max_file_size=4096) as db:
        model = _store_with_garbage(db)
        with pytest.raises(StorageError) as info:
            db.merge()
        assert info.value.errno == code
        assert "cannot" in str(info.value) and store_path in str(info.value)
        if code == errno.ENOSPC:
            assert "disk is full" in str(info.value)
        assert dict(db.items()) == model
        assert _no_temporaries(store_path)
        monkeypatch.undo()
        db.merge()
        assert dict(db.items()) == model
    with DB(store_path) as db:
        assert dict(db.items()) == model
    assert check(store_path).ok


def test_a_failed_hint_file_does_not_close_a_descriptor_twice(store_path, monkeypatch):
    """When the hint file could not be written, the output's descriptor, already closed by finish(),
    was closed again by abandon(): by then the number may belong to a file another thread opened
    (auto-merge runs in a background thread of a busy process), which lost its descriptor."""
    others: list[int] = []

    def fail(path, *args):
        # Another thread opens a file in the meantime: it gets the lowest free number, the output's.
        others.append(os.open(os.devnull, os.O_RDONLY))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(merge_mod, "write_hints", fail)
    with DB(store_path, max_file_size=4096) as db:
        model = _store_with_garbage(db)
        with pytest.raises(StorageError):
            db.merge()
        assert others
        try:
            os.fstat(others[0])  # still open: nobody else closed it
        finally:
            os.close(others[0])
        assert dict(db.items()) == model


def test_merge_waiting_inside_locked_is_refused(store_path):
    """merge(wait=True) inside locked() waited for a running merge (another process's, or this
    process's auto-merge thread) that needs the write lock the block holds to finish: both waited
    forever, and with them every writer of the store. It is now refused at once, whether or not
    another merge runs, and a merge after the block (or without wait) goes through."""
    with DB(store_path, max_file_size=4096) as db:
        model = _store_with_garbage(db)
        with db.locked():
            with pytest.raises(TransactionError, match="locked"):
                db.merge(wait=True)
            db.put(b"in-block", b"1")
        model[b"in-block"] = b"1"
        assert db.merge(wait=True).files_before > 0
        assert dict(db.items()) == model


@pytest.mark.parametrize("wait", [False, True])
def test_a_merge_lock_that_cannot_be_opened_is_a_storage_error(store_path, monkeypatch, wait):
    """Out of file descriptors (a store of many files, which is what a merge is for), opening
    MERGE.lock raised a bare OSError; it is now a StorageError with the ulimit/merge advice."""
    real_open = os.open

    def no_more_descriptors(path, *args, **kwargs):
        if str(path).endswith("MERGE.lock"):
            raise OSError(errno.EMFILE, "Too many open files", path)
        return real_open(path, *args, **kwargs)

    with DB(store_path, max_file_size=4096) as db:
        model = _store_with_garbage(db)
        monkeypatch.setattr(os, "open", no_more_descriptors)
        with pytest.raises(StorageError) as info:
            db.merge(wait=wait)
        monkeypatch.undo()
        assert info.value.errno == errno.EMFILE
        assert "MERGE.lock" in str(info.value) and "ulimit" in str(info.value)
        assert dict(db.items()) == model


def test_a_progress_that_cannot_be_called_is_refused_before_anything_changes(store_path):
    """merge(progress="bar") failed with TypeError ('str' object is not callable) from the middle
    of the merge, after it had rotated the active file; it is now refused first, as backup() does."""
    from kv_backend import ConfigurationError

    with DB(store_path, max_file_size=4096) as db:
        _store_with_garbage(db)
        before = sorted(os.listdir(store_path))
        with pytest.raises(ConfigurationError, match="progress must be a callable") as info:
            db.merge(progress="bar")
        assert isinstance(info.value, TypeError)
        assert sorted(os.listdir(store_path)) == before


def test_close_waits_for_a_merge_running_in_another_thread(store_path, monkeypatch):
    """close() while another thread's merge() was in its switch-over closed the write lock under it:
    the merge died with a bare AttributeError and another process could write mid switch-over. It
    now waits for the merge, which completes."""
    real = merge_mod.fsync_dir
    paused, go = threading.Event(), threading.Event()

    def slow_fsync_dir(path):
        paused.set()
        go.wait(5)
        return real(path)

    db = DB(store_path, max_file_size=4096)
    model = _store_with_garbage(db)
    monkeypatch.setattr(merge_mod, "fsync_dir", slow_fsync_dir)
    errors: list[BaseException] = []

    def run_merge():
        try:
            db.merge()
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    merging = threading.Thread(target=run_merge)
    merging.start()
    assert paused.wait(5)
    closing = threading.Thread(target=db.close)
    closing.start()
    closing.join(0.3)
    assert closing.is_alive(), "close() did not wait for the merge"
    go.set()
    merging.join(5)
    closing.join(5)
    assert not closing.is_alive() and not merging.is_alive()
    assert errors == [] and db.closed
    monkeypatch.undo()
    with DB(store_path) as again:
        assert dict(again.items()) == model
    assert check(store_path).ok
