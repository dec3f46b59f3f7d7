"""A restore (or a salvage) into a symbolic link to nothing (a volume not mounted yet), or into a path
under one, said "it exists and is not a directory" for the link and "File exists" for a path under it,
while ls shows the link and no such file. Both now name the link and its missing target, before any
work is done, and nothing is made."""

from __future__ import annotations

import os
import re

import pytest

from kv_backend import DB, BackupError
from kv_backend.backup import restore
from kv_backend.salvage import SalvageError, salvage


@pytest.fixture
def site(tmp_path):
    store = str(tmp_path / "store")
    with DB(store) as db:
        db.put(b"k", b"v")
        db.backup(str(tmp_path / "bk"), name="one")
    os.symlink(str(tmp_path / "volume"), str(tmp_path / "link"))
    return tmp_path


@pytest.mark.parametrize("under", ["", "sub"])
@pytest.mark.parametrize("action", ["restore", "salvage"])
def test_a_link_to_nothing_is_named(site, under, action):
    dest = os.path.join(str(site / "link"), under) if under else str(site / "link")
    link, volume = str(site / "link"), str(site / "volume")
    expected = re.escape(
        f"cannot {action} into {dest}: {link} is a symbolic link to {volume}, which does not exist"
    )
    if action == "restore":
        with pytest.raises(BackupError, match=expected):
            restore(str(site / "bk"), dest)
    else:
        with pytest.raises(SalvageError, match=expected):
            salvage(str(site / "store"), dest)
    assert sorted(os.listdir(site)) == ["bk", "link", "store"]
    assert not os.path.lexists(volume)
