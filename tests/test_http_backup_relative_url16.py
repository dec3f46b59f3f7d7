"""POST /v1/backup refused a relative path (``backups``, ``~/backups``), which the server takes
relative to its own working directory, but not the same path written as a URL (``file:backups``,
``file://~/backups``, ``local:backups``) or through a cache (``simplecache::backups``): those backups
landed under the server's working directory (or its home), out of the client's sight. They are
refused too; absolute ones, in every form, are taken."""

from __future__ import annotations

import os

import pytest

from kv_backend import DB


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
    "url",
    ["file:bk", "file:./bk", "file://~/bk", "local:bk", "simplecache::bk", "simplecache::file:bk", "dir::bk"],
)
def test_a_relative_path_as_a_url_is_refused(client, tmp_path, url):
    r = client.post("/v1/backup", json={"url": url})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_backup_target"), r.json()
    assert "relative" in r.json()["message"] and "absolute path" in r.json()["message"]
    assert sorted(os.listdir(tmp_path)) == ["s"]  # nothing written anywhere


@pytest.mark.parametrize("form", ["file://{}", "file:{}", "simplecache::file://{}", "{}"])
def test_an_absolute_path_in_every_form_is_taken(client, tmp_path, form):
    r = client.post("/v1/backup", json={"url": form.format(tmp_path / "bk"), "name": "one"})
    assert r.status_code == 200, r.json()
    assert os.listdir(tmp_path / "bk" / "backups") == ["one.json"]
