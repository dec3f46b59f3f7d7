"""The LOCK file that an open makes in a store copied without one (by hand, by rsync excluding it)
was created with 0o666 less the umask, while every other file a process adds to a store gets the
bits of the store's format file: under umask 000 (a container's default, a daemon that clears it)
a store of 0600 files got a world-writable LOCK from a writer's open, a read-only open, a merge or a
backup (kvb backup, manage.py kv_backup), and any local user could then take the store's write lock
and stop every writer. The LOCK now gets the format file's bits too, whatever the umask."""

from __future__ import annotations

import os
import stat

import pytest
from helpers import mode_of, store_of_mode
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB, locking


def _store_without_lock(path, file_mode: int) -> str:
    return store_of_mode(path, file_mode, without="LOCK")


def _lock_mode(store: str) -> int:
    return mode_of(store, "LOCK")


def _write(store: str, capsys) -> None:
    with DB(store) as db:
        db.put(b"k2", b"v2")


def _read(store: str, capsys) -> None:
    with DB(store, read_only=True) as db:
        assert db.get(b"k") == b"v"


def _merge(store: str, capsys) -> None:
    code, _out, err = run(capsys, "merge", store)
    assert code == 0, err


def _backup(store: str, capsys) -> None:
    code, _out, err = run(capsys, "backup", store, os.path.join(os.path.dirname(store), "backups"))
    assert code == 0, err


@pytest.mark.parametrize("file_mode", [0o600, 0o640])
@pytest.mark.parametrize("opening", [_write, _read, _merge, _backup])
def test_a_missing_lock_gets_the_bits_of_the_format_file_whatever_the_umask(
    tmp_path, capsys, umask_000, file_mode, opening
):
    store = _store_without_lock(tmp_path / "store", file_mode)
    opening(store, capsys)
    assert _lock_mode(store) == file_mode
    assert stat.S_IMODE(os.stat(os.path.join(store, "KVB_FORMAT")).st_mode) == file_mode


def test_without_unnamed_files_the_lock_gets_them_too(tmp_path, capsys, umask_000, monkeypatch):
    """Where the lock cannot be made unnamed (macOS, a file system without O_TMPFILE), the opener
    creates it by name: with the same bits."""
    monkeypatch.setattr(locking, "create_for_store_owner", lambda path, mode, size=0: None)
    for opening in (_write, _read):
        store = _store_without_lock(tmp_path / opening.__name__, 0o600)
        opening(store, capsys)
        assert _lock_mode(store) == 0o600, opening.__name__


def test_a_new_store_s_lock_still_follows_the_umask(tmp_path):
    """A store being made has no format file yet: its files follow the umask (docs/engine.md)."""
    old = os.umask(0o022)
    try:
        with DB(str(tmp_path / "new")) as db:
            db.put(b"k", b"v")
    finally:
        os.umask(old)
    assert _lock_mode(str(tmp_path / "new")) == 0o644
