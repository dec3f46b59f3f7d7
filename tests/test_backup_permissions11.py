"""A backup the user may not read is a permission error, not 'no backup'."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from helpers import run_as_nobody

from kv_backend import DB
from kv_backend.backup import list_backups, restore
from kv_backend.errors import BackupError

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root, to run a child as the nobody user"
)


def test_restoring_from_an_unreadable_backup_says_permission_denied(tmp_path):
    base = tempfile.mkdtemp(prefix="kvb-bkperm-")
    try:
        os.chmod(base, 0o755)
        with DB(str(tmp_path / "s")) as db:
            db.put(b"k", b"v")
            db.backup(f"file://{base}/bk")
        os.chmod(f"{base}/bk", 0o700)  # root's alone

        def attempt() -> tuple[str, str]:
            out = []
            for call in (
                lambda: restore(f"file://{base}/bk", f"{base}/restored"),
                lambda: list_backups(f"file://{base}/bk"),
            ):
                try:
                    call()
                    out.append("no error")
                except BackupError as exc:
                    out.append(str(exc))
            return tuple(out)

        for message in run_as_nobody(attempt):
            assert "Permission denied" in message, message
            assert "no complete backup" not in message
        assert not os.path.exists(f"{base}/restored")
    finally:
        shutil.rmtree(base, ignore_errors=True)
