"""A LOCK file an open finds keeps its mode, widened to the store's bits where an earlier version
made it narrower, and is never narrowed: inside a files_granting block (manage.py kv_merge) a found
LOCK was treated as one the open had added, and a LOCK of 0666 became 0640 in a store of 0660
files, which the group's other writers could then no longer open for writing (#2, #3)."""

from __future__ import annotations

import os

from helpers import mode_of, store_of_mode

from kv_backend import DB
from kv_backend.files import files_granting


def _store(path, file_mode: int, lock_mode: int | None) -> str:
    store = store_of_mode(path, file_mode, without="LOCK" if lock_mode is None else None, dir_mode=0o770)
    if lock_mode is not None:
        os.chmod(os.path.join(store, "LOCK"), lock_mode)
    return store


def _lock_mode(store: str) -> int:
    return mode_of(store, "LOCK")


def test_a_found_lock_is_not_narrowed_in_a_files_granting_block(tmp_path):
    store = _store(tmp_path / "s", 0o660, 0o666)
    with files_granting(0o750), DB(store) as db:
        db.merge()
    assert _lock_mode(store) == 0o666
    with DB(store) as db:
        assert db.get(b"k") == b"v"


def test_a_found_lock_narrower_than_the_store_gets_its_bits(tmp_path):
    store = _store(tmp_path / "s", 0o660, 0o600)
    DB(store).close()
    assert _lock_mode(store) == 0o660


def test_a_lock_the_open_makes_in_a_files_granting_block_is_capped(tmp_path):
    store = _store(tmp_path / "s", 0o660, None)
    old = os.umask(0)
    try:
        with files_granting(0o750), DB(store):
            pass
    finally:
        os.umask(old)
    assert _lock_mode(store) == 0o640
