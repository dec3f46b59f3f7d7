"""Unit-level tests of the HTTP app with Starlette's TestClient (in process), plus its helpers."""

from __future__ import annotations

import base64
import dataclasses
import errno
import math
import os
import re
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from helpers import ROOT, child_env
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from starlette.testclient import TestClient

from kv_backend import DB
from kv_backend.errors import (
    BackupError,
    ConfigurationError,
    CorruptionError,
    MergeInProgressError,
    NotAStoreError,
    StorageError,
)
from kv_backend.http import app_from_env, create_app, decode_key, encode_key, openapi_document
from kv_backend.http.app import engine_error, jsonable
from kv_backend.http.keys import parse_query
from kv_backend.http.openapi import openapi_json

TOKEN = "unit-token"


def key_url(key: bytes, suffix: str = "") -> str:
    return "/v1/keys/" + encode_key(key) + suffix


@pytest.fixture
def client(db):
    with TestClient(create_app(db, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


# ------------------------------------------------------------- key encoding


@given(st.binary(min_size=1, max_size=100))
def test_key_encoding_round_trips_and_is_one_segment(key):
    text = encode_key(key)
    assert decode_key(text) == key
    assert "/" not in text
    assert text not in (".", "..")
    assert text.isascii()


def test_dot_keys_are_escaped():
    assert encode_key(b".") == "%2E"
    assert encode_key(b"..") == "%2E%2E"
    assert encode_key(b"...") == "..."
    assert encode_key(b"a.b") == "a.b"


def test_parse_query_keeps_bytes_and_treats_plus_as_space():
    q = parse_query(b"prefix=a%2Bb+c&start=%FF%00&flag&x=1&&")
    assert q == {"prefix": b"a+b c", "start": b"\xff\x00", "flag": b"", "x": b"1"}


# ------------------------------------------------------------------ jsonable


def test_a_stray_percent_is_refused_not_guessed(client, db):
    from kv_backend.http.keys import PercentEncodingError

    for bad in ("%ZZ", "50%", "a%2", "%%41"):
        with pytest.raises(PercentEncodingError, match="%25"):
            decode_key(bad)
    with pytest.raises(PercentEncodingError, match="query parameter prefix"):
        parse_query(b"prefix=a%G1")
    assert decode_key("50%25%41") == b"50%A"
    db.put(b"%ZZ", b"literal")
    for url in ("/v1/keys/%ZZ", "/v1/keys/100%", "/v1/keys/%ZZ/incr", "/v1/keys?prefix=%Z"):
        method = "POST" if url.endswith("incr") else "GET"
        r = client.request(method, url)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"] == "invalid_encoding" and "%25" in r.json()["message"]
    assert client.get(key_url(b"%ZZ")).content == b"literal"  # sent encoded, as %25ZZ


def test_jsonable_turns_reports_into_json_data():
    @dataclasses.dataclass
    class Report:
        files: int
        seconds: float
        path: Path
        notes: list

    Pair = namedtuple("Pair", "a b")

    class Plain:
        def __init__(self):
            self.kept = (1, b"\xff")
            self._hidden = 1

    data = jsonable({"r": Report(2, math.nan, Path("/x"), [Pair(1, math.inf)]), "p": Plain(), 3: {4}})
    assert data == {
        "r": {"files": 2, "seconds": None, "path": "/x", "notes": [{"a": 1, "b": None}]},
        "p": {"kept": [1, "%FF"]},
        "3": [4],
    }


def test_engine_errors_map_to_statuses():
    assert engine_error(StorageError(errno.ENOSPC, "disk full")).status == 507
    assert engine_error(StorageError(errno.EACCES, "denied")).status == 500
    assert engine_error(CorruptionError("bad crc")).code == "corrupt_record"
    assert engine_error(MergeInProgressError("busy")).status == 409
    assert engine_error(BackupError("s3 down")).status == 502


# ------------------------------------------------------------------- the app


def test_round_trip_in_process(client, db):
    assert client.put(key_url(b"\x00k"), content=b"v", params={"ttl": "30"}).status_code == 201
    r = client.get(key_url(b"\x00k"))
    assert r.content == b"v"
    assert 20 < float(r.headers["x-kv-ttl"]) <= 30
    assert db.get(b"\x00k") == b"v"
    assert client.get("/v1/keys").json() == {"keys": ["%00k"], "next": None}


@pytest.mark.parametrize("value", [b"+0", b"01", b"-0", b" 1", b"1 "])
def test_incr_refuses_what_redis_reads_as_no_integer(client, value):
    assert client.put(key_url(b"n"), content=value).status_code in (200, 201)
    assert client.post(key_url(b"n", "/incr"), params={"delta": "1"}).status_code == 409


def test_create_app_rejects_bad_settings(store_path):
    with pytest.raises(ConfigurationError):
        create_app(store_path, max_value_size=-1)
    with pytest.raises(ConfigurationError):
        create_app(store_path, max_value_size=True)
    with pytest.raises(ConfigurationError):
        create_app(store_path, token="")


def test_create_app_on_a_path_that_is_not_a_store(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises((NotAStoreError, StorageError)):
        create_app(str(tmp_path / "file"))
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "junk.txt").write_text("not a store")
    with pytest.raises(NotAStoreError):
        create_app(str(tmp_path / "dir"))


def test_owned_db_is_closed_at_shutdown_and_a_given_one_is_not(store_path, db):
    app = create_app(store_path + "-own")
    with TestClient(app) as c:
        assert c.put(key_url(b"k"), content=b"v").status_code == 201
    assert app.state.db.closed
    app = create_app(db)
    with TestClient(app) as c:
        c.get("/healthz")
    assert not db.closed


def test_closed_store_answers_503(db):
    app = create_app(db)
    with TestClient(app) as c:
        db.close()
        r = c.get("/healthz")
        assert r.status_code == 503
        r = c.put(key_url(b"k"), content=b"v")
        assert r.status_code == 503
        assert r.json()["error"] == "store_closed"


def test_read_only_store_refuses_writes(store_path):
    DB(store_path).close()
    with DB(store_path, read_only=True) as ro, TestClient(create_app(ro)) as c:
        assert c.get(key_url(b"k")).status_code == 404
        r = c.put(key_url(b"k"), content=b"v")
        assert r.status_code == 403
        assert r.json()["error"] == "read_only"


def test_max_value_size_is_configurable(db):
    with TestClient(create_app(db, max_value_size=10)) as c:
        assert c.put(key_url(b"k"), content=b"0123456789").status_code == 201
        r = c.put(key_url(b"k"), content=b"0123456789a")
        assert r.status_code == 413
        assert "10" in r.json()["message"]
        assert c.get(key_url(b"k")).content == b"0123456789"


def test_merge_endpoint_reports_and_maps_errors(client, db, monkeypatch):
    @dataclasses.dataclass
    class MergeReport:
        files_before: int
        files_after: int
        reclaimed_bytes: int

    calls = []

    def fake_merge(progress=None, wait=False):
        calls.append((progress, wait))
        return MergeReport(3, 1, 4096)

    monkeypatch.setattr(db, "merge", fake_merge)
    r = client.post("/v1/merge")
    assert r.status_code == 200
    assert r.json() == {"files_before": 3, "files_after": 1, "reclaimed_bytes": 4096}
    assert calls == [(None, False)]
    assert client.post("/v1/merge?wait=true").status_code == 200
    assert calls[-1] == (None, True)

    def busy(progress=None, wait=False):
        raise MergeInProgressError("another process is merging this store; try again later")

    monkeypatch.setattr(db, "merge", busy)
    r = client.post("/v1/merge")
    assert r.status_code == 409
    assert r.json() == {
        "error": "merge_in_progress",
        "message": "another process is merging this store; try again later",
    }


def test_backup_endpoint_passes_its_arguments(client, db, monkeypatch):
    seen = {}

    def fake_backup(url, name=None, progress=None, **options):
        seen.update(url=url, name=name, options=options)
        return {"name": name or "auto", "files": 2, "bytes": 100}

    monkeypatch.setattr(db, "backup", fake_backup)
    body = {"url": "s3://bucket/kv", "name": "nightly", "storage_options": {"anon": False, "key": "k"}}
    r = client.post("/v1/backup", json=body)
    assert r.status_code == 200
    assert r.json() == {"name": "nightly", "files": 2, "bytes": 100}
    assert seen == {"url": "s3://bucket/kv", "name": "nightly", "options": {"anon": False, "key": "k"}}
    assert client.post("/v1/backup", json={"url": "file:///x"}).json()["name"] == "auto"

    for exc, status, code in [
        (BackupError("cannot write s3://bucket/kv/x: access denied"), 502, "backup_failed"),
        (PermissionError(13, "denied"), 502, "backup_failed"),
        (ValueError("Protocol not known: nope"), 400, "invalid_backup_target"),
    ]:

        def failing(url, name=None, progress=None, exc=exc, **options):
            raise exc

        monkeypatch.setattr(db, "backup", failing)
        r = client.post("/v1/backup", json={"url": "nope://x"})
        assert r.status_code == status
        assert r.json()["error"] == code


def test_corrupt_record_and_unexpected_errors_answer_json(db, monkeypatch):
    def corrupt(key, default=None):
        raise CorruptionError("record at offset 16 failed its checksum; run 'kvb check'", "f", 16)

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(db, "get", corrupt)
    monkeypatch.setattr(db, "get_with_tag", corrupt)
    monkeypatch.setattr(db, "stats", broken)
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        r = c.get(key_url(b"k"))
        assert r.status_code == 500
        assert r.json()["error"] == "corrupt_record"
        assert "kvb check" in r.json()["message"]
        r = c.get("/v1/stats")
        assert r.status_code == 500
        assert r.json() == {"error": "internal_error", "message": "RuntimeError: boom"}


def test_app_from_env(store_path, monkeypatch):
    monkeypatch.delenv("KVB_HTTP_DIR", raising=False)
    with pytest.raises(ConfigurationError):
        app_from_env()
    monkeypatch.setenv("KVB_HTTP_DIR", store_path)
    monkeypatch.setenv("KVB_HTTP_TOKEN", TOKEN)
    monkeypatch.setenv("KVB_HTTP_MAX_VALUE_SIZE", "nope")
    with pytest.raises(ConfigurationError):
        app_from_env()
    monkeypatch.setenv("KVB_HTTP_MAX_VALUE_SIZE", "4")
    monkeypatch.setenv("KVB_HTTP_SYNC", "sometimes")
    with pytest.raises(ConfigurationError):
        app_from_env()
    monkeypatch.setenv("KVB_HTTP_SYNC", "0.5")
    app = app_from_env()
    assert app.state.db.sync_mode == 0.5
    app.state.db.close()
    monkeypatch.setenv("KVB_HTTP_SYNC", "always")
    app = app_from_env()
    assert app.state.db.sync_mode == "always"
    with TestClient(app) as c:
        assert c.get("/v1/stats").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.put(key_url(b"k"), content=b"12345", headers=auth).status_code == 413
        assert c.put(key_url(b"k"), content=b"1234", headers=auth).status_code == 201


def test_checked_in_openapi_is_the_generated_one():
    text = (Path(ROOT) / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert text == openapi_json(), "regenerate: python -m kv_backend.http openapi docs/openapi.json"
    proc = subprocess.run(
        [sys.executable, "-m", "kv_backend.http", "openapi"], capture_output=True, text=True, env=child_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == text
    doc = openapi_document()
    doc["paths"].clear()  # a copy: the served document is unchanged
    assert openapi_document()["paths"]


def test_openapi_lists_the_errors_every_store_operation_can_answer():
    doc = openapi_document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters" or not path.startswith("/v1/"):
                continue
            codes = set(op["responses"])
            assert {"500", "503"} <= codes, (path, method)
            writes = method in ("put", "delete") or path.endswith(("/incr", "/expire", "/merge", "/txn"))
            assert ({"403", "507"} <= codes) == writes, (path, method)


def test_any_other_method_on_a_key_gets_405_with_the_methods_that_work(client):
    for method in ("PROPFIND", "MKCOL", "PATCH", "POST"):
        r = client.request(method, key_url(b"k"))
        assert r.status_code == 405, method
        assert r.headers["allow"] == "GET, HEAD, PUT, DELETE, OPTIONS", method
        assert r.json() == {
            "error": "method_not_allowed",
            "message": f"{method} is not allowed here; use GET, HEAD, PUT, DELETE, OPTIONS",
        }
    r = client.request("PROPFIND", key_url(b"k") + "/incr")
    assert r.status_code == 405 and r.headers["allow"] == "POST, OPTIONS"


def test_every_documented_operation_is_routed(client):
    doc = openapi_document()
    for path, item in doc["paths"].items():
        concrete = path.replace("{key}", "doc-key")
        for method in item:
            if method == "parameters":
                continue
            r = client.request(method.upper(), concrete, json={} if path == "/v1/backup" else None)
            assert r.status_code != 405, (method, path)
            assert str(r.status_code) in item[method]["responses"], (method, path, r.status_code, r.text)


# ------------------------------------------------- stateful model check


@settings(max_examples=8, stateful_step_count=20, deadline=None)
class HTTPAgainstDict(RuleBasedStateMachine):
    """Random PUT/DELETE/incr/conditional PUTs over the app must behave like a dict."""

    keys = st.sampled_from([b"a", b"b", b"a/b", b"\x00", b"\xff\xfe", b".", b"+", b"n"])

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.db = DB(os.path.join(self.tmp.name, "s"))
        self.client = TestClient(create_app(self.db)).__enter__()  # one event loop for the whole run
        self.model: dict[bytes, bytes] = {}

    @rule(key=keys, value=st.binary(max_size=20))
    def put(self, key, value):
        assert self.client.put(key_url(key), content=value).status_code == (204 if key in self.model else 201)
        self.model[key] = value

    @rule(key=keys, value=st.binary(max_size=20))
    def put_if_absent(self, key, value):
        r = self.client.put(key_url(key), content=value, headers={"If-None-Match": "*"})
        if key in self.model:
            assert r.status_code == 412
        else:
            assert r.status_code == 201
            self.model[key] = value

    @rule(key=keys, value=st.binary(max_size=20))
    def put_if_present(self, key, value):
        r = self.client.put(key_url(key), content=value, headers={"If-Match": "*"})
        assert r.status_code == (204 if key in self.model else 412)
        if key in self.model:
            self.model[key] = value

    @rule(key=keys)
    def delete(self, key):
        r = self.client.delete(key_url(key))
        assert r.status_code == (204 if key in self.model else 404)
        self.model.pop(key, None)

    @rule(key=keys, delta=st.integers(-1000, 1000))
    def incr(self, key, delta):
        r = self.client.post(key_url(key, "/incr"), params={"delta": str(delta)})
        old = self.model.get(key, b"0")
        # (an integer as Redis's INCR reads one: no sign but a leading minus, no leading zero, no "-0")
        expected = int(old) + delta if re.fullmatch(rb"0|-?[1-9][0-9]*", old) else None
        if expected is None:
            assert r.status_code == 409
        else:
            assert r.status_code == 200
            assert r.json() == {"value": expected}
            self.model[key] = str(expected).encode()

    @rule(key=keys)
    def get(self, key):
        r = self.client.get(key_url(key), params={"format": "json"})
        if key in self.model:
            assert base64.b64decode(r.json()["value_base64"]) == self.model[key]
        else:
            assert r.status_code == 404

    @invariant()
    def listing_matches(self):
        page = self.client.get("/v1/keys", params={"values": "true", "limit": "3"}).json()
        keys = [decode_key(k) for k in page["keys"]]
        assert keys == sorted(self.model)[:3]
        assert [base64.b64decode(v) for v in page["values_base64"]] == [self.model[k] for k in keys]
        assert (page["next"] is None) == (len(self.model) <= 3)

    def teardown(self):
        self.client.__exit__(None, None, None)
        self.db.close()
        self.tmp.cleanup()


TestHTTPAgainstDict = HTTPAgainstDict.TestCase


def test_mounted_under_a_prefix(db):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/kv", app=create_app(db, token=TOKEN))])
    with TestClient(outer) as c:
        assert c.get("/kv/healthz").status_code == 200
        assert c.get("/kv/v1/stats").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.put("/kv" + key_url(b"a/b\xff"), content=b"v", headers=auth).status_code == 201
        assert db.get(b"a/b\xff") == b"v"
        assert c.post("/kv" + key_url(b"n", "/incr"), headers=auth).json() == {"value": 1}
        assert c.get("/kv/v1/keys", headers=auth).json()["keys"] == ["a%2Fb%FF", "n"]


def test_loopback_detection_for_the_no_token_warning():
    from kv_backend.http.server import _is_loopback

    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"):
        assert _is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.4", "example.com"):
        assert not _is_loopback(host), host
