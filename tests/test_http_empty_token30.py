"""An empty KVB_HTTP_TOKEN is no token, as an unset one (and as an empty KVB_REQUIREPASS is no password
for kvb serve), where an empty --token is refused: docs/http.md says so."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from kv_backend.http import app_from_env

DOCS = Path(__file__).resolve().parent.parent / "docs" / "http.md"


def test_an_empty_token_variable_is_no_token(tmp_path, monkeypatch):
    monkeypatch.setenv("KVB_HTTP_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("KVB_HTTP_TOKEN", "")
    app = app_from_env()
    with TestClient(app) as c:
        assert c.put("/v1/keys/k", content=b"v").status_code == 201
        assert c.get("/v1/keys/k").content == b"v"
    app.state.db.close()
    assert "An empty `KVB_HTTP_TOKEN` is no token" in " ".join(DOCS.read_text().split())
