"""``kvb http`` (and an app of ``create_app(path)`` or ``app_from_env``) closed its store on shutdown
without an fsync: with the default ``KVB_HTTP_SYNC=never``, a power loss soon after a clean stop
("systemctl stop", then the machine off) could lose writes it had acknowledged. Now the store is
fsynced when the server stops, as ``kvb serve`` and redis-server (its append-only file) do."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from kv_backend.db import DB
from kv_backend.errors import StorageError
from kv_backend.http import create_app
from kv_backend.http.loading import OpenWhileListening


@pytest.fixture
def syncs(monkeypatch):
    """The stores DB.sync was called on, in order."""
    calls: list[str] = []
    real = DB.sync

    def sync(self):
        calls.append(self.path)
        return real(self)

    monkeypatch.setattr(DB, "sync", sync)
    return calls


def test_an_app_that_opened_its_store_fsyncs_it_at_shutdown(tmp_path, syncs):
    store = str(tmp_path / "store")
    app = create_app(store)
    with TestClient(app) as client:
        assert client.put("/v1/keys/k", content=b"v").status_code == 201
        assert syncs == []  # (the default policy: no fsync per write)
    assert syncs == [app.state.db.path]
    with DB(store) as db:
        assert db.get(b"k") == b"v"


def test_kvb_http_fsyncs_the_store_it_opened_when_it_stops(tmp_path, syncs):
    db = DB(str(tmp_path / "store"))
    server = OpenWhileListening(lambda: db, create_app, lambda: None)
    server.db = db  # (as once the background open has handed it over)
    server.close()
    assert syncs == [db.path]
    assert db.closed


def test_a_failed_fsync_at_the_stop_is_logged_and_the_store_closed(tmp_path, monkeypatch, caplog):
    db = DB(str(tmp_path / "store"))

    def failing() -> None:
        raise StorageError(5, "Input/output error")

    monkeypatch.setattr(db, "sync", failing)
    server = OpenWhileListening(lambda: db, create_app, lambda: None)
    server.db = db
    server.close()
    assert db.closed
    assert "cannot fsync the store" in caplog.text and "Input/output error" in caplog.text
