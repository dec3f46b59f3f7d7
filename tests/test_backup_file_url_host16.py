"""``file://localhost/var/backups`` (the RFC 8089 form of ``/var/backups``, as urllib reads it) and
``file://backups/kv`` (a slash short of ``/backups/kv``) were backed up, listed and restored from
``./localhost/var/backups`` and ``./backups/kv``, directories under whatever the current directory
was: fsspec takes the host for the first directory of a relative path. Such URLs are refused with
the URL to write; ``file://~/x``, ``file://./x`` (what they say) still work."""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, prune_backups, restore
from kv_backend.errors import ConfigurationError


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "store")
    with DB(path) as db:
        db.put(b"k", b"v")
    return path


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("file://localhost/srv/bk", "write file:///srv/bk for /srv/bk, or ./localhost/srv/bk "),
        ("file://backups/kv", "write file:///backups/kv for /backups/kv, or ./backups/kv "),
        ("local://backups/kv", "write local:///backups/kv for"),
        ("simplecache::file://localhost/srv/bk", "write file:///srv/bk for"),
    ],
)
def test_a_file_url_with_a_host_is_refused(store, tmp_path, url, advice):
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ConfigurationError, match="names the host") as e:
        backup_store(store, url)
    assert advice in str(e.value)
    for call in (list_backups, lambda u: restore(u, str(tmp_path / "out")), lambda u: prune_backups(u, 1)):
        with pytest.raises(ConfigurationError, match="names the host"):
            call(url)
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize(("url", "where"), [("file://~/bk", "home/bk"), ("file://./bk", "bk")])
def test_home_and_current_directory_file_urls_still_work(store, tmp_path, monkeypatch, url, where):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    backup_store(store, url, name="one")
    assert os.listdir(tmp_path / where / "backups") == ["one.json"]
    assert [b.name for b in list_backups(url)] == ["one"]
    restore(url, str(tmp_path / "out"))
    with DB(str(tmp_path / "out"), read_only=True) as db:
        assert db.get(b"k") == b"v"
