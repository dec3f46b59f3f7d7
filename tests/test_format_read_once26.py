"""A writable open read the store's format file (``KVB_FORMAT``) twice: once to check the format, then again
under the write lock to give the store an id if it had none. A store's id never changes once written, so
where the first read found one the second is skipped: one read per open. Only a store without an id (made
before ids) is read again under the lock, where concurrent openers agree on the one id they add."""

from __future__ import annotations

import builtins
import os
import threading
from pathlib import Path

import pytest

from kv_backend import DB, db_open
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT
from kv_backend.store_id import read_store_id


def _reads_of_the_format_file(monkeypatch) -> list[str]:
    """Note every ``open`` of a format file from now on (its path)."""
    seen: list[str] = []
    real = builtins.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, str) and os.path.basename(file) == FORMAT_FILE:
            seen.append(file)
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return seen


def _old_store(path: Path) -> str:
    with DB(str(path)) as db:
        db.put(b"k", b"v")
    (path / FORMAT_FILE).write_text(FORMAT_TEXT)  # (as versions before ids left it)
    return str(path)


@pytest.mark.parametrize("read_only", [False, True])
def test_an_open_of_a_store_with_an_id_reads_its_format_file_once(tmp_path, monkeypatch, read_only):
    path = str(tmp_path / "s")
    with DB(path) as db:
        db.put(b"k", b"v")
    first = read_store_id(path)
    reads = _reads_of_the_format_file(monkeypatch)
    with DB(path, read_only=read_only) as db:
        assert db[b"k"] == b"v"
    assert len(reads) == 1, reads
    assert read_store_id(path) == first


def test_an_old_store_is_read_again_under_the_lock_and_gets_its_id(tmp_path, monkeypatch):
    path = _old_store(tmp_path / "s")
    reads = _reads_of_the_format_file(monkeypatch)
    with DB(path) as db:
        added = db.store_id
    assert added is not None and read_store_id(path) == added
    assert len(reads) >= 2  # (the check, then the read under the lock that adds the id)
    reads.clear()
    with DB(path):
        pass
    assert len(reads) == 1 and read_store_id(path) == added  # (from now on, one read; the same id)


def test_an_id_another_process_added_after_the_check_is_kept(tmp_path, monkeypatch):
    """The read under the lock sees the id an opener added between this open's check and its take of the
    lock (another process, here another DB object of this one), and keeps it."""
    path = _old_store(tmp_path / "s")
    real = db_open.WriteLock
    other: list[str | None] = []

    class LockAfterAnotherOpen(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            if not other:
                other.append(None)
                done = threading.Event()

                def open_elsewhere() -> None:
                    with DB(path) as db:
                        other[0] = db.store_id
                    done.set()

                threading.Thread(target=open_elsewhere).start()
                assert done.wait(30)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(db_open, "WriteLock", LockAfterAnotherOpen)
    monkeypatch.setattr("kv_backend.db.WriteLock", LockAfterAnotherOpen)
    with DB(path) as db:
        assert other[0] is not None
        assert db.store_id == other[0] == read_store_id(path)
