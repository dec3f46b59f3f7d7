"""A backup to a local directory that is, or lies under, a symbolic link to nothing (a backup disk not
mounted yet) failed with "cannot create .../files: not found", of a path that ls shows. It now names
the link and its missing target, before the store's files are read, and makes nothing."""

from __future__ import annotations

import os
import re

import pytest

from kv_backend import DB, BackupError
from kv_backend.backup import backup_store


@pytest.mark.parametrize("under", ["", "kv"])
@pytest.mark.parametrize("how", ["backup_store", "db.backup", "file url"])
def test_a_link_to_nothing_is_named(tmp_path, under, how):
    store = str(tmp_path / "store")
    with DB(store) as db:
        db.put(b"k", b"v")
    link, volume = str(tmp_path / "link"), str(tmp_path / "volume")
    os.symlink(volume, link)
    url = os.path.join(link, under) if under else link
    expected = f"{link} is a symbolic link to {volume}, which does not exist"
    if under:
        expected += f" (the backup directory {url} is under it)"
    with pytest.raises(BackupError, match=re.escape(expected)):
        if how == "db.backup":
            with DB(store) as db:
                db.backup(url)
        else:
            backup_store(store, f"file://{url}" if how == "file url" else url)
    assert sorted(os.listdir(tmp_path)) == ["link", "store"]
