"""A backup of a store opened read-only whose open found no ``LOCK`` file (its lock keeps no writer out)
reads the store's id under the ``LOCK`` file a writer made since, where there is one: it waited for that
lock as long as another process held it (a program keeping writers out with ``flock``, a long
transaction), so the backup never ended. It now waits a second at most (``store_id.ID_LOCK_WAIT``), as
salvage and ``DB.store_id`` do; where it could not take it, the backup names no id (see
``store_id.trusted_format``)."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path

from helpers import spawn_python, stop_process

from kv_backend import DB, locking
from kv_backend.backup import list_backups, restore
from kv_backend.files import LOCK_FILE, STATE_FILE
from kv_backend.locking import WriteLock
from kv_backend.store_id import read_store_id

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()  # (until the test ends: its stdin closes)
"""


def _store_without_lock_file(path: Path) -> str:
    with DB(str(path)) as db:
        db.put(b"k", b"v")
    for name in (LOCK_FILE, STATE_FILE):
        os.unlink(path / name)
    return str(path)


def _open_without_lock_file(store: str, monkeypatch) -> DB:
    """``store`` opened read-only by a process that may not create its LOCK file (as one of another user
    in a directory it cannot write; this test may run as root, who may)."""
    real = WriteLock._open_noting

    def no_creation(self: WriteLock, flags: int, mode: int) -> int:
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), self.path)
        return real(self, flags, mode)

    with monkeypatch.context() as patch:
        patch.setattr(WriteLock, "_open_noting", no_creation)
        patch.setattr(locking, "create_for_store_owner", lambda path, mode: None)  # (root's own way)
        db = DB(store, read_only=True)
    assert not db._lock.excludes_writers
    return db


def test_a_backup_of_a_reader_without_lock_file_ends_while_another_holds_the_lock(tmp_path, monkeypatch):
    store = _store_without_lock_file(tmp_path / "s")
    sid = read_store_id(store)
    assert sid is not None
    target = str(tmp_path / "bk")
    done, errors = threading.Event(), []
    with _open_without_lock_file(store, monkeypatch) as db:
        holder = spawn_python(
            HOLDER, os.path.join(store, LOCK_FILE), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

        def back_up() -> None:
            try:
                db.backup(target, name="b1")
            except BaseException as exc:  # pragma: no cover - reported by the test
                errors.append(exc)
            finally:
                done.set()

        worker = threading.Thread(target=back_up, daemon=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            started = time.monotonic()
            worker.start()
            ended = done.wait(20)
            took = time.monotonic() - started
        finally:
            stop_process(holder)  # (lets a backup still waiting go on, so that the DB closes)
            worker.join(30)
    assert ended, "the backup waited for the lock another process holds"
    assert not errors, errors
    assert took < 10, took  # (about the second it waits)
    # (Not looked at under the lock: the backup names no id, as a manifest never names one that another
    # process may be adding and take back; the backup itself is whole.)
    assert [i.store_id for i in list_backups(target)] == [None]
    restored = str(tmp_path / "r")
    restore(target, restored)
    with DB(restored, read_only=True) as db:
        assert db[b"k"] == b"v"
    assert read_store_id(store) == sid  # (the store keeps its id: a later backup names it)
    db = DB(store, read_only=True)
    try:
        db.backup(target, name="b2")
    finally:
        db.close()
    assert sorted((i.name, i.store_id) for i in list_backups(target)) == [("b1", None), ("b2", sid)]
