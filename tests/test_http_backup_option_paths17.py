"""POST /v1/backup refused a relative URL (taken relative to the server's working directory, which the
client does not know), but not a relative path named by a storage option: ``dir::file:///sub`` with
``{"dir": {"path": "bk"}}`` backed up under the server's ``./bk/sub``, and a cache's relative
``cache_storage`` made its directories there. Such options are refused like relative URLs (400
invalid_backup_target, naming the option), before anything is written; absolute ones are taken. A
local path with ``::`` in its name is one directory, not a chain whose last part is relative."""

from __future__ import annotations

import os

import pytest
from test_backup_chained_urls16 import needs_dir_chains

from kv_backend import DB
from kv_backend.backup import list_backups


@pytest.fixture
def client(tmp_path, monkeypatch):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with DB(str(tmp_path / "s")) as db, TestClient(create_app(db)) as c:
        yield c


@pytest.mark.parametrize(
    ("url", "options", "named"),
    [
        ("dir::file:///sub", {"dir": {"path": "bk"}}, "dir.path='bk'"),
        ("dir::file:///sub", {"path": "./bk"}, "path='./bk'"),
        ("dir::file:///sub", {"dir": {"path": "~/bk"}}, "dir.path='~/bk'"),
        ("dir::file:///sub", {"dir": {"path": "file:bk"}}, "dir.path='file:bk'"),
        ("filecache::file:///ABS/bk", {"filecache": {"cache_storage": "cache"}}, "cache_storage='cache'"),
        ("simplecache::file:///ABS/bk", {"simplecache": {"cache_storage": ["/ABS/c", "c2"]}}, "'c2'"),
        ("simplecache::dir::file:///sub", {"dir": {"path": "rel"}}, "dir.path='rel'"),
    ],
)
def test_a_relative_path_in_a_storage_option_is_refused(client, tmp_path, url, options, named):
    url = url.replace("/ABS", str(tmp_path))
    options = eval(repr(options).replace("/ABS", str(tmp_path)))  # (a copy with the path in it)
    r = client.post("/v1/backup", json={"url": url, "storage_options": options})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_backup_target"), r.json()
    message = r.json()["message"]
    assert named in message and "relative" in message and "absolute path" in message, message
    assert sorted(os.listdir(tmp_path)) == ["s"]  # nothing written, no cache directory made


@needs_dir_chains
def test_an_absolute_dir_path_option_is_taken(client, tmp_path):
    r = client.post(
        "/v1/backup",
        json={
            "url": "dir::file:///sub",
            "name": "one",
            "storage_options": {"dir": {"path": str(tmp_path / "bk")}},
        },
    )
    assert r.status_code == 200, r.json()
    assert [b.name for b in list_backups(str(tmp_path / "bk" / "sub"))] == ["one"]


def test_the_caches_temporary_directory_is_taken(client, tmp_path):
    url = f"simplecache::file://{tmp_path}/bk"
    r = client.post(
        "/v1/backup", json={"url": url, "name": "one", "storage_options": {"cache_storage": "TMP"}}
    )
    assert r.status_code == 200, r.json()
    assert sorted(os.listdir(tmp_path)) == ["bk", "s"]


def test_options_that_are_no_paths_are_passed_on(client, tmp_path):
    # (auto_mkdir is LocalFileSystem's; "bk" as the value of another option is no path)
    r = client.post(
        "/v1/backup",
        json={"url": str(tmp_path / "bk"), "name": "one", "storage_options": {"auto_mkdir": True}},
    )
    assert r.status_code == 200, r.json()
    r = client.post(
        "/v1/backup",
        json={"url": str(tmp_path / "bk"), "name": "two", "storage_options": {"profile": "bk"}},
    )
    assert r.status_code != 400 or "relative" not in r.json()["message"], r.json()


def test_a_local_path_with_double_colons_is_taken_whole(client, tmp_path):
    url = str(tmp_path / "a::b" / "bk")
    r = client.post("/v1/backup", json={"url": url, "name": "one"})
    assert r.status_code == 200, r.json()
    assert [b.name for b in list_backups(url)] == ["one"]
    r = client.post("/v1/backup", json={"url": "a::b/bk"})  # relative, whatever '::' would make of it
    assert (r.status_code, r.json()["error"]) == (400, "invalid_backup_target"), r.json()


def test_a_backup_into_an_archive_is_a_bad_target(client, tmp_path):
    r = client.post("/v1/backup", json={"url": f"zip::file://{tmp_path}/x.zip"})
    assert r.status_code == 400, r.json()  # (a ConfigurationError of the backup, as for memory::file://)
    assert "reads only" in r.json()["message"]
    assert not os.path.exists(tmp_path / "x.zip")
