"""``kvb http`` times the first read of a request body too (#7).

The 60 s body timeout (408 request_timeout) started only once the first part of the body had come:
a client that sent a PUT's headers with a Content-Length and then nothing held its connection, and a
slot of ``--max-connections``, for as long as it kept the socket open. Now the clock starts when the
request first asks for its body, and restarts at each part that arrives.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess

import pytest
from helpers import connect_when_listening, free_port, read_until_closed, spawn_python, start_own_server
from resp_helpers import stop_process
from test_http_review11 import _scope

from kv_backend.http import app as http_app
from kv_backend.http import create_app

pytest.importorskip("uvicorn", reason="uvicorn is not installed (it comes with the server extra)")

_BODIES = {
    "/v1/keys/k": b"abc",
    "/v1/txn": b'{"ops": [{"op": "put", "key": "k", "value": "v"}]}',
    "/v1/backup": b'{"url": "memory://never"}',
}


def _request(
    app, path: str, parts: list[bytes], gap: float | None, cancel: bool = False, chunked: bool = False
):
    """Run one request of ``app`` (a PUT of a key, else a POST) whose body, of the length ``_BODIES``
    gives or ``chunked``, comes as ``parts``, ``gap`` seconds apart (None: at once), and then nothing
    more; with ``cancel``, cancel it (as a server's shutdown does) once it asks for its body.
    Return (task, status, headers, JSON answer)."""
    method = "PUT" if path == "/v1/keys/k" else "POST"
    framing = (
        (b"transfer-encoding", b"chunked")
        if chunked
        else (b"content-length", str(len(_BODIES[path])).encode())
    )
    sent: list[dict] = []
    asked = asyncio.Event()

    async def main() -> asyncio.Task:
        queue = list(parts)

        async def receive() -> dict:
            asked.set()
            if queue:
                if gap:
                    await asyncio.sleep(gap)  # the client's pace, the behaviour under test
                chunk = queue.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(queue)}
            await asyncio.Event().wait()  # the rest of the body never comes
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        task = asyncio.ensure_future(app(_scope(method, path, [framing]), receive, send))
        if cancel:
            await asyncio.wait_for(asked.wait(), 5)
            task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        return task

    task = asyncio.run(main())
    return task, sent[0]["status"], sent[0]["headers"], json.loads(sent[1]["body"] or b"null")


@pytest.mark.parametrize("path", sorted(_BODIES))
def test_a_request_whose_body_never_starts_is_answered_408(db, path, monkeypatch):
    """Headers with a Content-Length, then no byte: the request waited for ever (the test's 10 s)."""
    monkeypatch.setattr(http_app, "BODY_TIMEOUT", 0.05)
    task, status, headers, payload = _request(create_app(db), path, [], None)
    assert not task.cancelled()
    assert status == 408 and (b"connection", b"close") in headers
    assert payload["error"] == "request_timeout"
    assert "after 0 bytes" in payload["message"] and "nothing was stored" in payload["message"]
    assert db.get(b"k") is None


@pytest.mark.parametrize("path", ["/v1/keys/k/incr", "/v1/keys/k/expire", "/v1/merge"])
def test_a_chunked_body_that_never_starts_on_an_endpoint_taking_none_is_answered_408(db, path, monkeypatch):
    """Such a body is read to be refused (400 if any byte of it comes): it waited for ever too."""
    monkeypatch.setattr(http_app, "BODY_TIMEOUT", 0.05)
    db.put(b"k", b"1")
    _, status, headers, payload = _request(create_app(db), path, [], None, chunked=True)
    assert status == 408 and (b"connection", b"close") in headers
    assert payload["error"] == "request_timeout"
    assert db.get(b"k") == b"1" and db.ttl(b"k") is None  # nothing was done


@pytest.mark.parametrize("path", ["/v1/keys/k", "/v1/txn"])
def test_a_shutdown_before_the_body_starts_is_still_503_store_closed(db, path):
    """The server's own cancellation (its shutdown) is told from the timer's."""
    task, status, headers, payload = _request(create_app(db), path, [], None, cancel=True)
    assert not task.cancelled()
    assert status == 503 and (b"connection", b"close") in headers
    assert payload["error"] == "store_closed"
    assert db.get(b"k") is None


def test_a_slow_body_whose_parts_each_come_in_time_is_stored(db, monkeypatch):
    """The timeout is between parts, not for the whole body: six parts 0.25 s apart take longer than
    the 1 s timeout in all, and none waits for it."""
    monkeypatch.setattr(http_app, "BODY_TIMEOUT", 1.0)
    value = b"abcdef"
    monkeypatch.setitem(_BODIES, "/v1/keys/k", value)
    parts = [value[i : i + 1] for i in range(len(value))]
    _, status, _, _ = _request(create_app(db), "/v1/keys/k", parts, 0.25)
    assert status == 201
    assert db.get(b"k") == value


_SERVER = """
import sys
import kv_backend.http.app as http_app
from kv_backend.http.server import serve
http_app.BODY_TIMEOUT = 0.5
serve(sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]))
"""


def test_kvb_http_answers_and_closes_a_connection_that_sends_no_body(tmp_path):
    """Over a real socket: the server answers 408 and closes the connection, and goes on serving."""

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        out = subprocess.DEVNULL
        return spawn_python(_SERVER, str(tmp_path / "store"), str(port), stdout=out, stderr=out), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    try:
        conn = connect_when_listening(port, wait=30)
        conn.settimeout(20)
        conn.sendall(b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        answer = read_until_closed(conn)  # (a hang fails with the socket's timeout)
        conn.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request_timeout" in answer
        with socket.create_connection(("127.0.0.1", port), timeout=20) as again:
            again.sendall(
                b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
            )
            assert read_until_closed(again).startswith(b"HTTP/1.1 201 ")
    finally:
        stop_process(proc)
