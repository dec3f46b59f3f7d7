"""A store's KVB_FORMAT or LOCK that is a FIFO (a named pipe: ``mkfifo`` by mistake, a file restored
wrongly) held every reader of it for ever: opening a FIFO for reading waits for a writer. The format
file's readers (files.read_format: the open's check, read_store_id, a backup's snapshot, salvage, and
DB.store_id) and the look at the lock under which a store id is read (locking.lock_file_taken) now open
without waiting, and take only a regular file: the open fails with a StorageError that names the file,
an id reader finds no id, and salvage copies the store."""

from __future__ import annotations

import os
import pickle
import select
import signal
from collections.abc import Callable
from typing import Any

import pytest
from helpers import exit_code, one_key_store

from kv_backend import DB
from kv_backend.errors import StorageError
from kv_backend.files import FORMAT_FILE, LOCK_FILE
from kv_backend.salvage import salvage
from kv_backend.store_id import read_store_id

#: Seconds a call may take (it waited for ever before).
BOUND = 20.0


def _within(fn: Callable[[], Any]) -> Any:
    """What ``fn()`` returns (or the name and text of what it raises), run in a forked child that is
    killed where it has not answered within :data:`BOUND` seconds."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            try:
                out: Any = ("returned", fn())
            except Exception as exc:
                out = ("raised", type(exc).__name__, str(exc))
            os.write(w, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], BOUND)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"no answer within {BOUND} s: it waits on the FIFO")
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        exit_code(pid)
    return pickle.loads(data)


def test_a_format_file_that_is_a_fifo(tmp_path):
    store = one_key_store(tmp_path)
    os.unlink(os.path.join(store, FORMAT_FILE))
    os.mkfifo(os.path.join(store, FORMAT_FILE))
    outcome = _within(lambda: DB(store, read_only=True))
    assert outcome[:2] == ("raised", StorageError.__name__), outcome
    assert FORMAT_FILE in outcome[2] and "not a regular file" in outcome[2], outcome
    assert _within(lambda: read_store_id(store)) == ("returned", None)


def test_salvage_of_a_store_whose_lock_file_is_a_fifo(tmp_path):
    store = one_key_store(tmp_path)
    given = read_store_id(store)
    os.unlink(os.path.join(store, LOCK_FILE))
    os.mkfifo(os.path.join(store, LOCK_FILE))
    dst = str(tmp_path / "copy")

    def copy() -> tuple[bytes, str | None]:
        salvage(store, dst)
        with DB(dst, read_only=True) as db:
            return db[b"k"], read_store_id(dst)

    assert _within(copy) == ("returned", (b"v", given))
