"""Root opens a store of another user's directory while another process creates it, and that creation's
fsync fails (it removes the format file again: see test_create_store_fsync27). Root's open read the format
file in its check, then, finding it gone under the lock, creates the store itself. A file root makes in a
store is given the store's owner, the owner of its format file: the state page root's open made while
there was none stayed root's, and the store's owner could no longer open it for writing (permission
denied) until root opened it again."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator

import pytest
from helpers import NOBODY, file_owners, reachable_dir, run_as_nobody

import kv_backend.db as db_module
from kv_backend import DB
from kv_backend.errors import StorageError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a store of another user's)")


@pytest.fixture
def base() -> Iterator[str]:
    yield from reachable_dir("kvb-create-owner-")


def test_a_store_root_creates_after_a_failed_creation_is_its_owners(base, monkeypatch):
    store = os.path.join(base, "s")
    os.mkdir(store, 0o755)
    os.chown(store, NOBODY, NOBODY)
    creator = threading.current_thread()
    checked, creator_done = threading.Event(), threading.Event()
    got: list[object] = []
    real_fsync, real_check = os.fsync, db_module.format_file_text

    def fsync(fd: int) -> None:
        if threading.current_thread() is creator and os.path.samestat(os.fstat(fd), os.stat(store)):
            if not checked.is_set():
                other.start()  # (the format file is in place: the other open's check reads it)
                assert checked.wait(30)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    def check(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return real_check(*args, **kwargs)
        finally:
            if threading.current_thread() is other:
                checked.set()
                assert creator_done.wait(30)  # (the rest of its open comes after the file's removal)

    def open_it() -> None:
        try:
            with DB(store) as db:
                db.put(b"k", b"v")
            got.append("ok")
        except BaseException as exc:  # pragma: no cover - reported by the test
            got.append(exc)

    other = threading.Thread(target=open_it)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(db_module, "format_file_text", check)
    try:
        with pytest.raises(StorageError, match="cannot create a store in"):
            DB(store)
    finally:
        checked.set()
        creator_done.set()
        if other.ident is not None:
            other.join(30)
    assert got == ["ok"]
    monkeypatch.undo()
    owners = file_owners(store)
    assert {name: owner for name, owner in owners.items() if owner != (NOBODY, NOBODY)} == {}, owners

    def write() -> bytes:
        with DB(store) as db:  # (before: permission denied on the state page)
            db.put(b"k2", b"v2")
            return db[b"k"]

    assert run_as_nobody(write) == b"v"
