"""``POST /v1/backup`` whose backup is complete but not durable answers ``backup_not_durable``.

A backup to a local directory whose last directory fsync (``backups/``, naming the manifest) fails
raises ``BackupNotDurableError``: the backup is there and restores, but a power failure may lose it.
The server answered it ``502 backup_failed``, which tells a client the backup failed: it would make
another one under another name (this one being ``backup_exists``), which a disk that cannot fsync
leaves no more durable. It is now ``502 backup_not_durable``, with the backup's report in the body
and the message saying the backup is in place and what to do.
"""

from __future__ import annotations

import json
import os

import pytest
from helpers import fail_fsync_of
from starlette.testclient import TestClient

from kv_backend import DB
from kv_backend.backup import list_backups, restore
from kv_backend.http import create_app, openapi_document

TOKEN = "durable-token"


@pytest.fixture
def client(db):
    with TestClient(create_app(db, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def test_a_backup_whose_directory_fsync_fails_is_backup_not_durable_with_its_report(
    db, client, tmp_path, monkeypatch
):
    db.put(b"k", b"v")
    root = tmp_path / "bk"
    failed = fail_fsync_of(monkeypatch, root / "backups")
    r = client.post("/v1/backup", json={"url": str(root), "name": "nightly"})
    assert failed == [os.path.realpath(root / "backups")]
    assert r.status_code == 502, r.text
    body = r.json()
    assert body["error"] == "backup_not_durable"
    message = body["message"]
    assert message.startswith(
        f"backup nightly of {db.path} was written to {root}, but cannot make it durable: "
    )
    assert "The backup is complete and restores" in message
    assert f"run `sync {root / 'backups'}`" in message and "check the disk" in message
    report = body["report"]
    assert report["name"] == "nightly" and report["url"] == str(root)
    assert report["files_copied"] >= 1 and report["damaged_records"] == 0
    assert set(report) == set(openapi_document()["components"]["schemas"]["BackupReport"]["properties"])
    monkeypatch.undo()
    # As the message says: it is in place, and restores
    assert [b.name for b in list_backups(str(root))] == ["nightly"]
    restore(str(root), str(tmp_path / "restored"), name="nightly")
    with DB(str(tmp_path / "restored"), read_only=True) as restored:
        assert restored.get(b"k") == b"v"


def test_a_backup_that_fails_before_its_manifest_stays_backup_failed(db, client, tmp_path, monkeypatch):
    """A failed fsync of files/ fails the backup (no manifest): that is backup_failed, no report."""
    db.put(b"k", b"v")
    root = tmp_path / "bk"
    fail_fsync_of(monkeypatch, root / "files")
    r = client.post("/v1/backup", json={"url": str(root), "name": "nightly"})
    assert r.status_code == 502, r.text
    body = r.json()
    assert body["error"] == "backup_failed" and "report" not in body
    monkeypatch.undo()
    assert list_backups(str(root)) == []


def test_the_openapi_document_and_docs_name_it():
    doc = openapi_document()
    answer = doc["paths"]["/v1/backup"]["post"]["responses"]["502"]["description"]
    assert "backup_not_durable" in answer and "backup_failed" in answer
    error = doc["components"]["schemas"]["Error"]["properties"]
    assert error["report"]["$ref"] == "#/components/schemas/BackupReport"
    json.dumps(doc)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, os.pardir, "docs", "http.md"), encoding="utf-8") as f:
        text = f.read()
    assert "| 502 | `backup_not_durable` |" in text
