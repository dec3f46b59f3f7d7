"""POST /v1/backup to a target that is full answered 502 backup_failed, as if the target could not be
reached: a full target is its own condition (507, with what to do), an unreachable one stays 502."""

from __future__ import annotations

import errno
import os

import pytest
from starlette.testclient import TestClient
from test_backup_full_disk14 import FullMemoryFileSystem, full_url  # noqa: F401 - a fixture

from kv_backend.backup import BackupTargetFullError, list_backups
from kv_backend.errors import BackupError
from kv_backend.http import create_app, openapi_document

TOKEN = "full-token"


@pytest.fixture
def client(db):
    with TestClient(create_app(db, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def test_a_full_target_answers_507_with_what_to_do_and_a_later_backup_succeeds(db, client, full_url):  # noqa: F811
    for i in range(50):
        db.put(b"k%03d" % i, os.urandom(200))
    FullMemoryFileSystem.budget = 1000
    r = client.post("/v1/backup", json={"url": full_url, "name": "nightly"})
    assert r.status_code == 507, r.text
    body = r.json()
    assert body["error"] == "backup_target_full"
    # The same message as kvb backup gives (the BackupTargetFullError's): the cause and what to do.
    FullMemoryFileSystem.budget = 1000
    with pytest.raises(BackupTargetFullError) as info:
        db.backup(full_url, name="nightly")
    # (the object named at the start has this backup's own token)
    assert body["message"].partition(": No space")[2] == str(info.value).partition(": No space")[2]
    assert "No space left on device" in body["message"]
    assert "the backup target is full: free space there" in body["message"]
    assert "--keep N" in body["message"]
    assert list_backups(full_url) == []
    FullMemoryFileSystem.budget = None
    r = client.post("/v1/backup", json={"url": full_url, "name": "nightly"})
    assert r.status_code == 200, r.text
    assert [b.name for b in list_backups(full_url)] == ["nightly"]


def test_over_quota_is_507_but_a_target_that_fails_otherwise_stays_502(db, client, monkeypatch, tmp_path):
    db.put(b"k", b"v")
    for exc, status, code in [
        (OSError(errno.EDQUOT, "Disk quota exceeded"), 507, "backup_target_full"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), 502, "backup_failed"),
        (OSError(errno.EIO, "Input/output error"), 502, "backup_failed"),
        (TimeoutError("the server did not answer"), 502, "backup_failed"),
    ]:

        def failing(self, rel, data, *, exclusive=False, exc=exc):
            raise BackupError(f"cannot write {rel}: {exc}") from exc

        # (_Target.write_bytes wraps what the storage raises in a BackupError, as here)
        monkeypatch.setattr("kv_backend.backup._Target.write_bytes", failing)
        r = client.post("/v1/backup", json={"url": (tmp_path / "backups").as_uri()})
        assert (r.status_code, r.json()["error"]) == (status, code), r.text


def test_the_openapi_document_lists_507_for_a_backup():
    responses = openapi_document()["paths"]["/v1/backup"]["post"]["responses"]
    assert "backup_target_full" in responses["507"]["description"]
