"""Root opens a store of another user's directory while another process creates it, and that creation's
fsync fails (it removes the format file again: see test_create_store_fsync27). Root's open read the format
file in its check, then, finding it gone under the lock, creates the store itself. A file root makes in a
store is given the store's owner, the owner of its format file: the state page root's open made while
there was none stayed root's, and the store's owner could no longer open it for writing (permission
denied) until root opened it again."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from helpers import NOBODY, fail_a_creation_while_another_opens, file_owners, reachable_dir, run_as_nobody

from kv_backend import DB

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a store of another user's)")


@pytest.fixture
def base() -> Iterator[str]:
    yield from reachable_dir("kvb-create-owner-")


def test_a_store_root_creates_after_a_failed_creation_is_its_owners(base, monkeypatch):
    store = os.path.join(base, "s")
    os.mkdir(store, 0o755)
    os.chown(store, NOBODY, NOBODY)
    got: list[object] = []

    def open_it() -> None:
        try:
            with DB(store) as db:
                db.put(b"k", b"v")
            got.append("ok")
        except BaseException as exc:  # pragma: no cover - reported by the test
            got.append(exc)

    fail_a_creation_while_another_opens(monkeypatch, store, open_it, other_waits=True)
    assert got == ["ok"]
    monkeypatch.undo()
    owners = file_owners(store)
    assert {name: owner for name, owner in owners.items() if owner != (NOBODY, NOBODY)} == {}, owners

    def write() -> bytes:
        with DB(store) as db:  # (before: permission denied on the state page)
            db.put(b"k2", b"v2")
            return db[b"k"]

    assert run_as_nobody(write) == b"v"
