"""A prune by a user who may not delete in the backups' directories (made by root) said that user
"may not use .../backups/NAME.json (root's, mode 0644)": the mode of the manifest, which does not
decide whether it can be deleted. It now names the directory that refused, with its owner and mode."""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import pytest
from helpers import run_as_nobody

from kv_backend import DB, BackupError
from kv_backend.backup import list_backups, prune_backups

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to make files another user may not delete"
)


def test_prune_names_the_directory_that_refused():
    base = tempfile.mkdtemp(prefix="kvb-prune-denied-")
    try:
        os.chmod(base, 0o755)
        url = os.path.join(base, "bk")
        with DB(os.path.join(base, "store")) as db:
            db.put(b"k", b"v")
            db.backup(url, name="one")
            db.backup(url, name="two")

        def prune() -> str:
            try:
                prune_backups(url, keep=1)
            except BackupError as exc:
                return str(exc)
            return "no error"

        message = run_as_nobody(prune)
        backups = os.path.join(url, "backups")
        mode = f"{os.stat(backups).st_mode & 0o7777:04o}"
        assert re.search(
            rf"cannot delete {re.escape(backups)}/one\.json: Permission denied\. User \S+ may not use "
            rf"{re.escape(backups)} \(root's, mode {mode}\)",
            message,
        ), message
        assert [b.name for b in list_backups(url)] == ["one", "two"]
    finally:
        shutil.rmtree(base, ignore_errors=True)
