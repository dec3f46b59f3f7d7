"""Expect: 100-continue answered from the headers alone closes the connection (the body never comes)."""

from __future__ import annotations

import asyncio

import pytest
from test_http_review11 import _scope  # a request's ASGI scope

from kv_backend.http.app import create_app


def _call(
    app, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, list]:
    sent: list[dict] = []

    async def main() -> None:
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        scope = _scope(method, path, headers)
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(main())
    return sent[0]["status"], sent[0]["headers"]


CLOSE = (b"connection", b"close")
EXPECT = (b"expect", b"100-continue")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"content-length", b"999999999999")], 413),
        ([(b"content-length", b"3"), (b"content-encoding", b"gzip")], 415),
        ([(b"content-length", b"3"), (b"if-none-match", b"*")], 412),
    ],
)
def test_an_answer_before_the_body_was_asked_for_closes(tmp_path, headers, status):
    if status == 412:
        first = create_app(str(tmp_path / "s"))
        assert _call(first, "PUT", "/v1/keys/k", [(b"content-length", b"1")], b"v")[0] == 201
    got, sent_headers = _call(create_app(str(tmp_path / "s")), "PUT", "/v1/keys/k", [EXPECT, *headers])
    assert got == status and CLOSE in sent_headers


def test_a_body_asked_for_keeps_the_connection(tmp_path):
    got, headers = _call(
        create_app(str(tmp_path / "s")), "PUT", "/v1/keys/k", [EXPECT, (b"content-length", b"3")], b"abc"
    )
    assert got == 201 and CLOSE not in headers
    got, headers = _call(
        create_app(str(tmp_path / "s")), "PUT", "/v1/keys/k", [(b"content-length", b"999999999999")]
    )
    assert got == 413 and CLOSE not in headers  # no Expect: the client sends its body anyway
