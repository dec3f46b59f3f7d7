"""Storage options given as they are for ``s3://`` (``endpoint_url=``, ``key=``, ``secret=``) to a
chained URL (``simplecache::s3://bucket/kv``, ``zip::s3://bucket/x.zip``) went to the first
filesystem of the chain, as fsspec gives top-level options, and a cache or an archive drops what it
does not take: S3 was reached without them, at AWS with the default credentials rather than the
server named ("NoCredentialsError", or another bucket of that name). Such an option is now refused,
saying to give it under the protocol of the storage behind (``s3={...}``); options the first
filesystem takes, and per-protocol ones, go on as before."""

from __future__ import annotations

import zipfile

import pytest
from test_backup_s3 import s3, s3_server  # noqa: F401 - the moto server and a fresh bucket

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, restore
from kv_backend.errors import ConfigurationError


@pytest.mark.parametrize("first", ["simplecache", "filecache", "blockcache", "zip"])
def test_an_s3_option_at_the_top_of_a_chain_is_refused_naming_where_it_goes(first, store_path, tmp_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    url = f"{first}::s3://bucket/kv"
    with pytest.raises(ConfigurationError) as e:
        list_backups(url, endpoint_url="http://127.0.0.1:9", key="k")
    message = str(e.value)
    assert f"would go to {first!r}" in message and "s3={'endpoint_url': ...}" in message, message
    assert """--storage-option 's3={"endpoint_url": ...}'""" in message
    with pytest.raises(ConfigurationError, match="reads only" if first == "zip" else "s3="):
        backup_store(store_path, url, endpoint_url="http://127.0.0.1:9")


def test_the_storage_behind_a_local_chain_is_named_file(tmp_path):
    with pytest.raises(ConfigurationError, match=r"file=\{'auto_mkdir': \.\.\.\}"):
        list_backups(f"simplecache::{tmp_path}/bk", auto_mkdir=True)


def test_options_the_first_filesystem_takes_are_passed_on(store_path, tmp_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    url = f"simplecache::file://{tmp_path}/bk"
    backup_store(store_path, url, name="one", cache_storage=str(tmp_path / "cache"), skip_instance_cache=True)
    assert [b.name for b in list_backups(url, file={"auto_mkdir": True})] == ["one"]


def test_options_under_the_s3_protocol_reach_it_through_a_cache_and_an_archive(
    s3,  # noqa: F811
    store_path,
    tmp_path,
):
    url, options, fs = s3
    with DB(store_path) as db:
        db.put(b"k", b"v")
    backup_store(store_path, f"simplecache::{url}", name="one", s3=options)
    assert [b.name for b in list_backups(url, **options)] == ["one"]
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in fs.find(url):
            z.writestr(path.split("/backups/prod/", 1)[1], fs.cat_file(path))
    fs.put_file(str(archive), f"{url}.zip")
    with pytest.raises(ConfigurationError, match="s3="):
        list_backups(f"zip::{url}.zip", **options)
    restore(f"zip::{url}.zip", str(tmp_path / "r"), s3=options)
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert db.get(b"k") == b"v"


def test_an_option_for_a_middle_filesystem_is_named_with_each_it_may_be_for(tmp_path):
    with pytest.raises(ConfigurationError, match=r"dir=\{'path': \.\.\.\} or file=\{'path'"):
        list_backups("simplecache::dir::file:///sub", path=str(tmp_path))
