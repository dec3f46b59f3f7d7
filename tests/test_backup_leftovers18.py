"""Backup URLs and the HTTP backup route, made to agree with the rest.

``in_process_url("/x::memory://y")`` took a local path with ``::`` in it for a chain ending in fsspec's
memory filesystem, so ``kvb backup`` refused a directory that backup, listing, restore and prune take
as one (a path without ``scheme://`` in front is a path). It is now a directory there too.

``POST /v1/backup`` refused an unusable target with two codes: its own checks (a relative path, a
``memory://`` URL) answered ``400 invalid_backup_target``, a refusal by the backup itself (a ``zip::``
archive, a doubled ``dir::``, ``memory::`` chained in front of a URL) ``400 invalid_request``. Every
refusal of the URL or its storage options is now ``invalid_backup_target``; a bad backup name, which is
no fault of the target, stays ``invalid_request``."""

from __future__ import annotations

import os

import pytest
from test_backup_chained_urls16 import needs_dir_chains
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import in_process_url, list_backups


@pytest.mark.parametrize("url", ["/x::memory://y", "./a::memory://y", "/srv/memory::/y", "/x/memory://y"])
def test_a_path_with_double_colons_is_not_in_memory(url):
    assert not in_process_url(url)


@pytest.mark.parametrize("url", ["memory://y", "MEMORY://y", "simplecache::memory://y", "dir::memory://y"])
def test_memory_urls_are_in_memory(url):
    assert in_process_url(url)


def test_kvb_backup_takes_a_directory_named_like_a_memory_chain(tmp_path, capsys):
    store = str(tmp_path / "store")
    with DB(store) as db:
        db.put(b"k", b"v")
    target = f"{tmp_path}/x::memory://y"  # the directory y in x::memory: (fsspec would read a chain)
    code, _, err = run(capsys, "backup", store, target, "--name", "one")
    assert code == 0, err
    assert os.path.isfile(os.path.join(target, "backups", "one.json"))
    assert [b.name for b in list_backups(target)] == ["one"]


@pytest.fixture
def client(tmp_path):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    with DB(str(tmp_path / "s")) as db, TestClient(create_app(db)) as c:
        yield c


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("zip::file:///ABS/x.zip", "archive"),
        pytest.param("dir::file:///ABS/bk", "twice", marks=needs_dir_chains),
        ("memory::file:///ABS/bk", "wraps no other filesystem"),
        ("file:///ABS/bk", "storage option protocol="),
        ("bk", "relative path"),
        ("memory://bk", "memory of the server"),
    ],
)
def test_every_refusal_of_the_target_is_invalid_backup_target(client, tmp_path, url, says):
    body = {"url": url.replace("/ABS", str(tmp_path)), "name": "one"}
    if "protocol=" in says:
        body["storage_options"] = {"protocol": "memory"}
    r = client.post("/v1/backup", json=body)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_backup_target"), r.json()
    assert says in r.json()["message"] and "cannot back up to" in r.json()["message"]
    assert sorted(os.listdir(tmp_path)) == ["s"]  # nothing written anywhere


@pytest.mark.parametrize("name", ["../x", "a b", ".hidden", "x" * 129])
def test_a_bad_backup_name_is_invalid_request(client, tmp_path, name):
    r = client.post("/v1/backup", json={"url": str(tmp_path / "bk"), "name": name})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request"), r.json()
    assert "bad backup name" in r.json()["message"]
    assert not os.path.exists(tmp_path / "bk")
