"""The HTTP interface of kv_backend: a small JSON/binary REST API on Starlette, served by uvicorn.

``create_app(db_or_path, token=None)`` returns the ASGI app; ``serve(path, ...)``
runs it (``kvb http --dir PATH``). docs/http.md describes the API and
docs/openapi.json (also served at GET /openapi.json) its OpenAPI form.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401  (checked here, so that every kv_backend.http module says what to install)
except ModuleNotFoundError as exc:
    if exc.name != "starlette":
        raise
    # Not a bare "No module named 'starlette'": the user installed kv-backend without the extra
    # that brings the HTTP interface's dependencies (Starlette, uvicorn).
    raise ModuleNotFoundError(
        "kv_backend.http (kvb http) needs the starlette package: pip install 'kv-backend[server]'",
        name="starlette",
    ) from None

from kv_backend.http.app import DEFAULT_MAX_VALUE_SIZE, HTTPAPIError, create_app
from kv_backend.http.keys import decode_key, encode_key
from kv_backend.http.openapi import openapi_document
from kv_backend.http.server import app_from_env, serve

__all__ = [
    "DEFAULT_MAX_VALUE_SIZE",
    "HTTPAPIError",
    "app_from_env",
    "create_app",
    "decode_key",
    "encode_key",
    "openapi_document",
    "serve",
]
