"""A restore given an empty path (a setting or a shell variable left empty) moved the backup into the
working directory when that was empty (``abspath("")`` is the working directory), and one given a path
holding a NUL character failed with a bare ValueError. Both are refused with a ConfigurationError, as
an open of a store given such a path is, before anything is read or written."""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend.backup import restore
from kv_backend.errors import ConfigurationError


@pytest.fixture
def backup_url(tmp_path):
    url = str(tmp_path / "bk")
    with DB(str(tmp_path / "store")) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
    return url


def test_empty_path_is_refused_not_the_working_directory(backup_url, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(ConfigurationError, match=r"the path to restore into is empty: name a new or empty"):
        restore(backup_url, "")
    assert os.listdir(cwd) == []
    assert sorted(os.listdir(tmp_path)) == ["bk", "cwd", "store"], "no temporary directory was made"


def test_nul_in_path_is_a_configuration_error(backup_url, tmp_path):
    with pytest.raises(ConfigurationError, match="holds a NUL character, which no path can"):
        restore(backup_url, str(tmp_path / "new\x00store"))
    assert sorted(os.listdir(tmp_path)) == ["bk", "store"]
