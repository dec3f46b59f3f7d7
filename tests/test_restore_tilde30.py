"""A restore's path is taken as given, as DB's is (a leading ~ is not expanded), while fsspec expands
one in a local backup URL: docs/backup.md, "How a restore works", says both."""

from __future__ import annotations

import os

from kv_backend import DB
from kv_backend.backup import restore


def test_a_tilde_in_the_url_is_the_home_directory_and_in_the_path_is_a_name(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    with DB(str(work / "s")) as db:
        db.put(b"k", b"v")
        db.backup("~/bk")
    assert os.listdir(home) == ["bk"]
    report = restore("~/bk", "~/restored")
    assert report.path == str(work / "~" / "restored")
    with DB(report.path, read_only=True) as copy:
        assert copy[b"k"] == b"v"
    assert os.listdir(home) == ["bk"]
