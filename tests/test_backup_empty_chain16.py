"""A chained URL with an empty part (``::file:///x``, ``simplecache::``, ``file:///x::``, a ``::``
too many) was backed up to a directory named ``:`` under the current one (fsspec took the empty part
for its path), and listed and restored from there. Such URLs are refused."""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, restore
from kv_backend.errors import ConfigurationError


@pytest.mark.parametrize("form", ["::file://{}", "simplecache::", "file://{}::", "simplecache::::file://{}"])
def test_a_chained_url_with_an_empty_part_is_refused(tmp_path, monkeypatch, form):
    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "store")
    with DB(store) as db:
        db.put(b"k", b"v")
    url = form.format(tmp_path / "bk")
    with pytest.raises(ConfigurationError, match="empty part where '::' chains filesystems"):
        backup_store(store, url)
    for call in (list_backups, lambda u: restore(u, str(tmp_path / "out"))):
        with pytest.raises(ConfigurationError, match="empty part"):
            call(url)
    assert sorted(os.listdir(tmp_path)) == ["store"]
