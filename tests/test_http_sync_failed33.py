"""kvb http answers a write the store refuses after a failed fsync (SyncFailedError, under
``KVB_HTTP_SYNC=always`` or seconds) ``503 sync_failed`` with ``Retry-After``, the message naming the
failed fsync and what to do, where it answered a generic ``500 storage_error``; reads are served, and
writes are accepted again once an fsync succeeds."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from test_fsync_failure_refuses_writes32 import FailingFsync

from kv_backend import DB
from kv_backend.http import create_app


def test_a_write_refused_after_a_failed_fsync_is_503_sync_failed(
    store_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync = FailingFsync(monkeypatch)
    db = DB(store_path, sync="always")
    try:
        with TestClient(create_app(db)) as client:
            assert client.put("/v1/keys/k", content=b"v").status_code == 201
            fsync.on = True
            # (its own fsync fails: written, perhaps not on disk)
            first = client.put("/v1/keys/k", content=b"first")
            assert first.status_code == 500 and first.json()["error"] == "storage_error"
            refused = client.put("/v1/keys/k", content=b"second")
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "1"
            body = refused.json()
            assert body["error"] == "sync_failed"
            assert "write refused: an fsync of the store at" in body["message"]
            assert "check the disk" in body["message"]
            assert client.post("/v1/keys/n/incr").status_code == 503  # (every write, not only PUT)
            assert client.get("/v1/keys/k").content == b"first"  # reads are served
            fsync.on = False
            assert client.put("/v1/keys/k", content=b"third").status_code == 204
            assert client.get("/v1/keys/k").content == b"third"
    finally:
        fsync.on = False
        db.close()
