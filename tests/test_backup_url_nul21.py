"""A backup URL holding a NUL character failed only when the storage was first listed, with
"cannot list ...: ValueError: embedded null byte", a BackupError that took it for a failing target.
Backup, listing, restore and prune now refuse it at once with a ConfigurationError."""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, prune_backups, restore
from kv_backend.errors import ConfigurationError


@pytest.mark.parametrize("form", ["path", "file", "memory"])
@pytest.mark.parametrize("call", ["backup", "list", "restore", "prune"])
def test_nul_in_the_url_is_a_configuration_error(tmp_path, form, call):
    store = str(tmp_path / "store")
    with DB(store) as db:
        db.put(b"k", b"v")
    url = {
        "path": str(tmp_path / "bk\x00"),
        "file": f"file://{tmp_path}/b\x00k",
        "memory": "memory://b\x00k",
    }[form]
    with pytest.raises(ConfigurationError, match=r"the backup URL .* holds a NUL character"):
        if call == "backup":
            backup_store(store, url)
        elif call == "list":
            list_backups(url)
        elif call == "restore":
            restore(url, str(tmp_path / "new"))
        else:
            prune_backups(url, keep=1)
    assert sorted(os.listdir(tmp_path)) == ["store"]
