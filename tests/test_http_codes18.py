"""Every error code the HTTP app gives for an engine exception is in docs/http.md's error table.

The app mapped two codes no page listed: ``invalid_value`` (400, for a value of the wrong type,
which the app never hands the engine: every body and operation is checked first) and
``kv_error`` (500, any other project error, which only a defect of the server can raise). The
first entry is gone and the second is the documented ``internal_error``.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.testclient import TestClient

from kv_backend.errors import InvalidValueError, StorageError, TransactionError
from kv_backend.http import create_app
from kv_backend.http.app import _ERROR_STATUS, engine_error

DOC = Path(__file__).resolve().parent.parent / "docs" / "http.md"


def documented_codes() -> set[tuple[int, str]]:
    """(status, code) of each row of the error table in docs/http.md."""
    text = DOC.read_text()
    table = text[text.index("## Errors") :]
    pairs = set()
    for status, codes in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", table, re.MULTILINE):
        pairs.update((int(status), code) for code in re.findall(r"`([a-z_]+)`", codes))
    return pairs


def test_every_mapped_engine_error_is_documented():
    documented = documented_codes()
    assert (400, "invalid_key") in documented  # the table was found
    mapped = {(status, code) for _, status, code in _ERROR_STATUS}
    mapped |= {
        (e.status, e.code)
        for e in (
            engine_error(StorageError(errno.ENOSPC, "full")),
            engine_error(StorageError(errno.EIO, "io")),
            engine_error(TransactionError("misused")),
        )
    }
    assert mapped - documented == set()


@pytest.mark.parametrize("exc", [InvalidValueError("values must be bytes"), TransactionError("misused")])
def test_an_engine_error_the_table_does_not_name_is_an_internal_error(exc):
    error = engine_error(exc)
    assert (error.status, error.code) == (500, "internal_error")
    assert error.message == f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/txn", {"ops": [{"op": "put", "key": "k", "value": 5}]}),
        ("/v1/txn", {"ops": [{"op": "put", "key": "k", "value_base64": 5}]}),
        ("/v1/txn", {"ops": [{"op": "incr", "key": "k", "delta": 1.5}]}),
        ("/v1/txn", {"ops": [{"op": "incr", "key": "k", "delta": True}]}),
        ("/v1/keys/k/incr?delta=1.5", None),
        ("/v1/keys/k/incr?delta=true", None),
    ],
)
def test_values_and_deltas_of_the_wrong_type_are_refused_before_the_engine(db, path, body):
    """What the engine would refuse as InvalidValueError the app refuses first, as the client's error."""
    with TestClient(create_app(db)) as client:
        reply = client.post(path, json=body)
    assert reply.status_code == 400
    assert reply.json()["error"] in ("invalid_request", "invalid_parameter")
    assert db.get(b"k") is None


# Starlette's HTTPException, which the app answered with codes the table does not list: "bad_request"
# (400), "value_too_large" (413) and "http_<status>" for any other status. The router's 404 for a path
# no route matches is the only one the app can meet; it is the documented not_found.


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "PROPFIND"])
@pytest.mark.parametrize("path", ["/nope", "/v1/stats/", "/v1", "/v1/merge/x"])
def test_a_path_no_route_matches_is_not_found_whatever_the_method(db, method, path):
    with TestClient(create_app(db)) as client:
        reply = client.request(method, path)
    assert reply.status_code == 404
    if method != "HEAD":
        assert reply.json() == {"error": "not_found", "message": f"no endpoint {path}"}
    assert (404, "not_found") in documented_codes()


@pytest.mark.parametrize("status", [400, 405, 413, 418, 503])
def test_any_other_starlette_http_exception_is_an_internal_error(db, status):
    """A route raising Starlette's HTTPException (none does: this stands for a defect) gets the
    documented internal_error, not an undocumented code."""
    app = create_app(db)

    async def broken(request):
        raise HTTPException(status, "detail of the exception")

    app.router.routes.insert(0, Route("/broken", broken))
    with TestClient(app) as client:
        reply = client.get("/broken")
    assert reply.status_code == 500
    assert reply.json() == {
        "error": "internal_error",
        "message": f"HTTPException: {status}: detail of the exception",
    }
    assert (500, "internal_error") in documented_codes()
