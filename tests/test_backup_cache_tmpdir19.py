"""A backup URL that chains one of fsspec's caches (``simplecache::``, ``filecache::``, ``blockcache::``)
without a ``cache_storage`` made fsspec create a temporary directory for the cache (``tmpXXXXXXXX`` in
TMPDIR), which a backup never uses (it writes and reads past the caches): fsspec before 2023.9.1 (the
oldest release line supported, 2023.3, among them) never removed it, and later releases only when the
process exits normally, so every backup, restore or listing through such a URL left an empty directory
behind (the test suite's session directory collected them on the oldest line). Such a cache now gets a
directory of the backup's own, removed as soon as the filesystem is made (#5)."""

from __future__ import annotations

import os
import tempfile

import pytest

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, prune_backups, restore
from kv_backend.backup_urls import cache_storage_options


@pytest.fixture
def tmpdir_of_process(tmp_path, monkeypatch):
    path = tmp_path / "TMPDIR"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.mark.parametrize("cache", ["simplecache", "filecache", "blockcache"])
def test_a_backup_through_a_cache_leaves_no_temporary_directory(
    store_path, tmp_path, tmpdir_of_process, cache
):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        report = db.backup(f"{cache}::file://{tmp_path}/bk", name="one")
    backup_store(store_path, f"{cache}::file://{tmp_path}/bk", name="two")
    assert [b.name for b in list_backups(f"{cache}::file://{tmp_path}/bk")] == ["one", "two"]
    prune_backups(f"{cache}::file://{tmp_path}/bk", keep=2)
    restore(f"{cache}::file://{tmp_path}/bk", str(tmp_path / "restored"), name=report.name)
    with DB(str(tmp_path / "restored"), read_only=True) as copy:
        assert dict(copy.items()) == {b"k": b"v"}
    assert os.listdir(tmpdir_of_process) == []


def test_a_cache_storage_given_is_the_callers(store_path, tmp_path, tmpdir_of_process):
    mine = tmp_path / "mine"
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(f"simplecache::file://{tmp_path}/bk", name="one", simplecache={"cache_storage": str(mine)})
    assert [b.name for b in list_backups(f"simplecache::file://{tmp_path}/bk", cache_storage=str(mine))] == [
        "one"
    ]
    assert mine.is_dir() and os.listdir(tmpdir_of_process) == []


def test_which_caches_get_a_directory():
    spare = "/spare"
    assert cache_storage_options("s3://bucket/kv", {"key": "k"}, spare) is None
    assert (
        cache_storage_options("simplecache::s3://b/kv", {"simplecache": {"cache_storage": "/c"}}, spare)
        is None
    )
    assert cache_storage_options("simplecache::s3://b/kv", {"cache_storage": "/c"}, spare) is None
    got = cache_storage_options("dir::filecache::s3://b/kv", {"s3": {"anon": True}}, spare)
    assert got == {
        "s3": {"anon": True},
        "filecache": {"cache_storage": "/spare/filecache", "skip_instance_cache": True},
    }
    for tmp in (
        {"cache_storage": "TMP"},
        {"simplecache": {"cache_storage": "TMP"}},
    ):  # (fsspec's temporary one)
        got = cache_storage_options("simplecache::s3://b/kv", tmp, spare)
        assert got == {"simplecache": {"cache_storage": "/spare/simplecache", "skip_instance_cache": True}}
    # (a top-level cache_storage is the first filesystem's, dir:: here: the cache still gets one)
    got = cache_storage_options("dir::simplecache::s3://b/kv", {"cache_storage": "/c"}, spare)
    assert got is not None and got["simplecache"]["cache_storage"] == "/spare/simplecache"
