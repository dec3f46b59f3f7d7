"""The two ``curl -i`` examples of docs/http.md (Read) show the headers the app answers for a key with a
TTL, a raw GET and a ranged one: they showed no ``ETag`` though the text below them says both carry it.
(``date`` is the ASGI server's, which the test client does not add.)"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from kv_backend import DB
from kv_backend.http import create_app

DOC = Path(__file__).resolve().parent.parent / "docs" / "http.md"


def _example_headers(command: str) -> list[str]:
    """The header names, in order, of the answer docs/http.md shows after ``$ curl ... COMMAND``."""
    m = re.search(rf"\$ curl {re.escape(command)}\n(HTTP/1\.1 [^\n]*)\n(.*?)\n\n", DOC.read_text(), re.S)
    assert m, f"docs/http.md shows no answer to curl {command}"
    return [line.split(":", 1)[0] for line in m.group(2).splitlines()]


def test_read_examples_show_the_headers_answered(tmp_path: Path) -> None:
    with DB(str(tmp_path / "kv")) as db, TestClient(create_app(db)) as client:
        assert client.put("/v1/keys/greeting?ttl=60", content=b"hello").status_code == 201
        whole = client.get("/v1/keys/greeting")
        part = client.get("/v1/keys/greeting", headers={"Range": "bytes=0-3"})
    assert (whole.status_code, whole.content, part.status_code, part.content) == (200, b"hello", 206, b"hell")
    for command, answer in (("-i $KV/v1/keys/greeting", whole), ("-i -r 0-3 $KV/v1/keys/greeting", part)):
        shown = _example_headers(command)
        assert shown[0] == "date"
        assert shown[1:] == [name.lower() for name in answer.headers]
