"""kv_backend.dbm.open(path, "c", mode) with a mode that denies the owner the access it needs (#4).

As a user other than root, ``mode`` 0, 0o400, 0o200 or 0o100 (anything without
owner read and write) made the store directory with that mode, then failed to
open it with a PermissionDeniedError about a lock file or a listing. The empty
directory stayed, and every later open of the path failed, whatever its mode,
since the process could not even search it. A failed create now removes the
directory it made and says that the mode is the cause; the path can then be
created with a usable mode. As root, whom permissions do not bind, such a mode
still works, as before.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile

import pytest
from helpers import NOBODY, run_as_nobody

import kv_backend.dbm as kv_dbm

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork, to run as nobody")


@pytest.fixture
def parent() -> str:
    """A directory the user the test runs as (``nobody`` under root) may create in."""
    path = tempfile.mkdtemp(prefix="kvb-dbm-denied-")
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path)


def _create_then_reopen(path: str, mode: int) -> tuple[int, str, bool, list[bytes]]:
    old = os.umask(0o022)
    try:
        with pytest.raises(kv_dbm.PermissionDeniedError) as info:
            kv_dbm.open(path, "c", mode)
        left = os.path.lexists(path)
        with kv_dbm.open(path, "c") as db:  # the path is free again
            db[b"k"] = b"v"
        with kv_dbm.open(path, "r") as db:
            return info.value.errno, str(info.value), left, db.keys()
    finally:
        os.umask(old)


@pytest.mark.parametrize("mode", [0, 0o400, 0o200, 0o100, 0o500, 0o300], ids=oct)
def test_a_create_the_mode_denies_leaves_nothing_behind(parent, mode):
    kv_dbm._umask()  # read /proc/self/status once here: the child (nobody) may not load the codec
    path = os.path.join(parent, "db")
    code, message, left, keys = run_as_nobody(lambda: _create_then_reopen(path, mode))
    assert code == errno.EACCES
    assert f"with mode {mode:#o}" in message and "0o600 at least" in message
    assert "nothing was created" in message
    assert not left
    assert keys == [b"k"]


def test_a_usable_mode_still_creates(parent):
    kv_dbm._umask()
    path = os.path.join(parent, "db")

    def create() -> list[bytes]:
        with kv_dbm.open(path, "c", 0o600) as db:
            db[b"k"] = b"v"
            return db.keys()

    assert run_as_nobody(create) == [b"k"]


@pytest.mark.skipif(os.geteuid() != 0, reason="root only: permissions bind every other user")
def test_root_still_creates_with_such_a_mode(parent):
    path = os.path.join(parent, "db")
    with kv_dbm.open(path, "c", 0o400) as db:
        db[b"k"] = b"v"
    with kv_dbm.open(path, "r") as db:
        assert db[b"k"] == b"v"
