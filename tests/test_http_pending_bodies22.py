"""``kvb http`` bounds the bytes of request bodies it holds at once (``--max-pending-bytes``).

Each PUT's value was read whole into memory before its write ran, and only the writes were limited
(20 at once), not the uploads: a dozen clients uploading 60 MiB values at once took the server past
1.6 GB of resident memory, and more would exhaust the machine's. Now a body that would take the bytes
held past the total is answered ``503 too_many_uploads`` (``Retry-After: 1``, ``Connection: close``)
before any of it is read where Content-Length tells, and as soon as it crosses for a chunked one; a body
larger than the total alone is ``413``. What a request held is released when it ends, however it ends.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from helpers import child_env, free_port, run_kvb, start_own_server

from kv_backend.db import DB
from kv_backend.errors import ConfigurationError
from kv_backend.http import create_app

pytest.importorskip("uvicorn", reason="uvicorn is not installed (it comes with the server extra)")

TOTAL = 1000


@pytest.fixture
def server(tmp_path):
    args = [sys.executable, "-m", "kv_backend", "http", "--dir", str(tmp_path / "s"), "--port"]
    env = {**child_env(), "KVB_HTTP_MAX_VALUE_SIZE": "800"}
    with open(tmp_path / "log", "wb") as log:

        def launch() -> tuple[subprocess.Popen, list[int]]:
            port = free_port()
            options = [str(port), "--max-pending-bytes", str(TOTAL)]
            return subprocess.Popen([*args, *options], env=env, stdout=log, stderr=log), [port]

        proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, "kvb http did not start"
                try:
                    if _answer(_put_head(port, "/healthz", None, "GET"))[0] == 200:
                        break
                except OSError:
                    time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(30)


def _put_head(port: int, path: str, length: int | None, method: str = "PUT") -> socket.socket:
    """A connection that sent the head of a request (Content-Length ``length``, chunked if None)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    if method == "GET":
        framing = ""
    else:
        framing = "Transfer-Encoding: chunked\r\n" if length is None else f"Content-Length: {length}\r\n"
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n".encode())
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, f"the connection closed without an answer: {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    sock.close()
    return int(lines[0].split()[1]), headers, json.loads(body) if body else {}


def _put(port: int, key: str, size: int) -> int:
    sock = _put_head(port, f"/v1/keys/{key}", size)
    sock.sendall(b"v" * size)
    return _answer(sock)[0]


def test_an_upload_past_the_total_held_is_refused_before_its_body_is_read(server):
    port = server
    stalled = _put_head(port, "/v1/keys/a", 601)
    stalled.sendall(b"a" * 600)  # holds 600 of the 1000 bytes
    time.sleep(0.3)
    # 600 more would pass 1000: refused from its head alone (no byte of the body is sent)
    status, headers, body = _answer(_put_head(port, "/v1/keys/b", 600))
    assert (status, body["error"]) == (503, "too_many_uploads")
    assert headers["retry-after"] == "1" and headers["connection"] == "close"
    assert "--max-pending-bytes" in body["message"] and "nothing was stored" in body["message"]
    assert _put(port, "c", 400) == 201  # what fits is served meanwhile
    stalled.sendall(b"a")
    assert _answer(stalled)[0] == 201
    assert _put(port, "b", 600) == 201  # released once answered
    assert _put(port, "d", 800) == 201


def test_a_declared_length_holds_nothing_until_its_bytes_arrive(server):
    """A client that declares a length and then sends nothing (the first read of a body has no timer)
    must not keep the others out for good: only the bytes received are held."""
    silent = [_put_head(server, f"/v1/keys/s{i}", 800) for i in range(3)]
    time.sleep(0.3)
    assert _put(server, "a", 800) == 201
    for sock in silent:
        sock.close()


def test_a_chunked_upload_is_stopped_when_it_crosses_the_total(server):
    port = server
    stalled = _put_head(port, "/v1/keys/a", 701)
    stalled.sendall(b"a" * 700)
    time.sleep(0.3)
    chunked = _put_head(port, "/v1/keys/b", None)
    chunked.sendall(b"c8\r\n" + b"b" * 200 + b"\r\n")  # 200: 900 held
    time.sleep(0.3)
    chunked.sendall(b"c8\r\n" + b"b" * 200 + b"\r\n")  # 400 would take it to 1100
    status, headers, body = _answer(chunked)
    assert (status, body["error"], headers["connection"]) == (503, "too_many_uploads", "close")
    stalled.close()  # a client gone mid-body releases what it held too
    time.sleep(0.3)
    assert _put(port, "c", 800) == 201


def test_the_total_alone_too_small_for_a_body_is_413(tmp_path):
    from starlette.testclient import TestClient

    with DB(str(tmp_path / "s")) as db, TestClient(create_app(db, max_pending_bytes=10)) as client:
        response = client.put("/v1/keys/k", content=b"x" * 11)
        assert response.status_code == 413
        assert response.json()["error"] == "value_too_large"
        assert "--max-pending-bytes" in response.json()["message"]
        assert client.put("/v1/keys/k", content=b"x" * 10).status_code == 201
        assert client.put("/v1/keys/k", content=b"y" * 10).status_code == 204  # nothing left held


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_a_total_that_cannot_be_used_is_refused(tmp_path, bad):
    with DB(str(tmp_path / "s")) as db, pytest.raises(ConfigurationError, match="max_pending_bytes"):
        create_app(db, max_pending_bytes=bad)


def test_kvb_http_refuses_a_total_of_zero_at_start(tmp_path):
    done = run_kvb("http", "--dir", str(tmp_path / "s"), "--max-pending-bytes", "0", timeout=60)
    assert done.returncode == 2 and "--max-pending-bytes" in done.stderr
    env_run = subprocess.run(
        [sys.executable, "-m", "kv_backend", "http", "--dir", str(tmp_path / "s"), "--port", "0"],
        env={**child_env(), "KVB_HTTP_MAX_PENDING_BYTES": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_run.returncode == 2 and "KVB_HTTP_MAX_PENDING_BYTES" in env_run.stderr


def test_the_openapi_document_lists_the_servers_own_503s():
    from kv_backend.http import openapi_document

    uploads = {("/v1/keys/{key}", "put"), ("/v1/txn", "post"), ("/v1/backup", "post")}
    seen = set()
    for path, item in openapi_document()["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            unavailable = op["responses"]["503"]["description"]
            assert "too_many_connections" in unavailable, (path, method)
            assert ("too_many_uploads" in unavailable) == ((path, method) in uploads), (path, method)
            if (path, method) in uploads:
                assert "--max-pending-bytes" in op["responses"]["413"]["description"]
            seen.add((path, method))
    assert uploads <= seen and ("/openapi.json", "get") in seen


def test_app_from_env_reads_the_total_from_its_variable(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from kv_backend.http import app_from_env

    monkeypatch.setenv("KVB_HTTP_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("KVB_HTTP_MAX_PENDING_BYTES", "10")
    with TestClient(app_from_env(), base_url="http://localhost") as client:
        response = client.put("/v1/keys/k", content=b"x" * 11)
        assert response.status_code == 413 and "--max-pending-bytes" in response.json()["message"]
        assert client.put("/v1/keys/k", content=b"x" * 10).status_code == 201
    monkeypatch.setenv("KVB_HTTP_MAX_PENDING_BYTES", "0")
    with pytest.raises(ConfigurationError, match="KVB_HTTP_MAX_PENDING_BYTES"):
        app_from_env()
