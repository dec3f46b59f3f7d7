"""kv_backend.dbm.open's ``mode`` beyond the permission bits (#4).

A ``mode`` with the sticky bit (``0o1777``, or ``-1``) used to reach the new
store directory through mkdir: the directory came out sticky, so another user's
process sharing the database could write to it but its merge could not replace
the data files the first user's process had written. A mode above the C int
range raised a bare ``OverflowError``. Only the permission bits of ``mode`` count
now, for the directory as for the files.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest
from helpers import run_as_nobody

import kv_backend.dbm as kv_dbm


def _open_with_umask(path: str, mode: int, umask: int) -> None:
    old = os.umask(umask)
    try:
        kv_dbm.open(path, "c", mode).close()
    finally:
        os.umask(old)


@pytest.mark.parametrize("mode", [0o1777, 0o7777, -1, 0o4755 | (1 << 40)])
def test_only_permission_bits_reach_the_directory(tmp_path, mode):
    path = str(tmp_path / "db")
    _open_with_umask(path, mode, 0o022)
    expected = mode & 0o777 & ~0o022
    st = os.stat(path)
    assert not st.st_mode & (stat.S_ISVTX | stat.S_ISUID)
    assert stat.S_IMODE(st.st_mode) & 0o777 == expected | ((expected & 0o444) >> 2)
    for name in os.listdir(path):
        assert stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) == expected, name


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root, to run as nobody")
def test_another_user_can_merge_a_database_made_with_mode_0o1777():
    base = tempfile.mkdtemp(prefix="kvb-dbm-mode-")  # under the session's directory, which nobody may search
    try:
        os.chmod(base, 0o755)
        _shared_database_merged_by_another_user(f"{base}/shared")
    finally:
        shutil.rmtree(base)


def _shared_database_merged_by_another_user(path: str) -> None:
    _open_with_umask(path, 0o1777, 0)
    with kv_dbm.open(path, "w") as db:
        for i in range(50):
            db[f"k{i}"] = b"x" * 100

    def other_user() -> int:
        with kv_dbm.open(path, "w") as db:
            for i in range(50):
                db[f"k{i}"] = b"y" * 100
            db.reorganize()
            return len(db)

    assert run_as_nobody(other_user) == 50
    with kv_dbm.open(path, "r") as db:
        assert db["k7"] == b"y" * 100
