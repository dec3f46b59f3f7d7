"""The ASGI application of the HTTP interface (Starlette), built by :func:`create_app`.

Keys travel percent-encoded in the URL path and are decoded from the *raw*
path, byte for byte (see :mod:`kv_backend.http.keys`); values travel as raw
request and response bodies. Every engine call runs in a worker thread, so a
write waiting for the cross-process lock, a merge or a backup never stalls the
event loop. docs/http.md describes the API; GET /openapi.json serves its
OpenAPI description.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import errno
import functools
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, unquote_to_bytes

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from kv_backend import __version__
from kv_backend import record as rec
from kv_backend.backup import (
    BackupExistsError,
    BackupNotDurableError,
    BackupOfAnotherStoreError,
    BackupTargetFullError,
    check_backup_name,
    in_process_url,
)
from kv_backend.backup_urls import relative_local_url
from kv_backend.db import DB
from kv_backend.db_common import _check_key as check_key  # the engine's own key rules and messages
from kv_backend.db_common import _check_value as check_value
from kv_backend.db_write import _parse_int as parse_int_value  # incr's reading of a value, as the engine's
from kv_backend.errors import (
    BackupError,
    ConfigurationError,
    CorruptionError,
    DatabaseClosedError,
    InvalidKeyError,
    KeyTooLargeError,
    KVError,
    LockTimeoutError,
    MergeInProgressError,
    NotAnIntegerError,
    ReadOnlyError,
    StorageError,
    SyncFailedError,
    ValueTooLargeError,
)
from kv_backend.files import valid_unicode
from kv_backend.http.bodytimer import BodyTimer
from kv_backend.http.etags import (
    ANY,
    Condition,
    format_tag,
    if_match_holds,
    if_none_match_holds,
    parse_condition,
)
from kv_backend.http.keys import (
    PercentEncodingError,
    RepeatedParameterError,
    decode_key,
    encode_key,
    parse_query,
)
from kv_backend.http.openapi import openapi_document
from kv_backend.http.pending import DEFAULT_BODIES, PendingBodies, ReleaseBodies
from kv_backend.http.ranges import RangeNotSatisfiable, byte_range
from kv_backend.locking import NO_WAIT, held_too_long, pending_deadline, waiting_until
from kv_backend.server import close_synced

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "DEFAULT_MAX_VALUE_SIZE",
    "MAX_LIST_LIMIT",
    "MAX_TXN_OPS",
    "HTTPAPIError",
    "create_app",
]

#: Largest value a PUT accepts unless ``create_app(max_value_size=...)`` says otherwise (64 MiB).
DEFAULT_MAX_VALUE_SIZE = 64 << 20
#: Keys per page of GET /v1/keys when ``limit`` is not given, and the largest ``limit`` allowed.
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 10_000
#: Largest JSON request body (POST /v1/backup).
MAX_JSON_BODY = 1 << 20
#: Seconds a request body may go without a single byte arriving, counted from when the request first
#: asks for it, before the request is answered 408 (nginx's client_body_timeout has the same
#: default): a client that stalls mid-upload would otherwise hold what it sent, up to the value size
#: limit, in memory for as long as it lives, and one that sends no byte of it a connection slot.
BODY_TIMEOUT = 60.0
#: Largest ``?ttl=`` in seconds (about 285 million years). Redis refuses an EXPIRE whose expiry time
#: in milliseconds does not fit a signed 64-bit integer (about 9.22e15 s from now); a fixed, round
#: limit just below it keeps every TTL the API accepts one Redis and ``kvb serve`` accept too.
MAX_TTL = 9 * 10**15

#: Most digits an integer query parameter (incr's ``delta``) may have.
MAX_INT_DIGITS = 4000

KEYS_PREFIX = b"/v1/keys/"
OCTET = "application/octet-stream"

T = TypeVar("T")


class HTTPAPIError(KVError):
    """A request the API refuses: carries the HTTP status, an error code and a message for the client."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        index: int | None = None,
        report: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.index = index  # POST /v1/txn: the position of the operation that failed
        self.report = report  # POST /v1/backup, backup_not_durable: the report of the backup in place


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    index: int | None = None,
    report: Any = None,
) -> Response:
    """Return the JSON error body every failing request gets: ``{"error": code, "message": text}``.

    An error of one operation of a transaction also names its position in ``"index"``; a backup
    written but not durable (``backup_not_durable``) gives its report in ``"report"``.
    """
    # (valid Unicode: a message naming a path that is not UTF-8 failed to encode, a bare 500)
    body: dict[str, Any] = {"error": code, "message": valid_unicode(message)}
    if index is not None:
        body["index"] = index
    if report is not None:
        body["report"] = jsonable(report)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


#: Engine exceptions and what a client sees for them, most specific first; docs/http.md lists the codes.
_ERROR_STATUS: tuple[tuple[tuple[type[BaseException], ...], int, str], ...] = (
    ((InvalidKeyError, KeyTooLargeError), 400, "invalid_key"),
    ((PercentEncodingError,), 400, "invalid_encoding"),
    ((RepeatedParameterError,), 400, "invalid_parameter"),
    ((ValueTooLargeError,), 413, "value_too_large"),
    ((NotAnIntegerError,), 409, "not_an_integer"),
    ((ReadOnlyError,), 403, "read_only"),
    ((DatabaseClosedError,), 503, "store_closed"),
    ((MergeInProgressError,), 409, "merge_in_progress"),
    ((BackupExistsError,), 409, "backup_exists"),
    ((BackupOfAnotherStoreError,), 409, "backup_url_taken"),
    ((BackupTargetFullError,), 507, "backup_target_full"),
    # (written and restorable, but a power failure may lose it: not a backup to make again)
    ((BackupNotDurableError,), 502, "backup_not_durable"),
    ((BackupError,), 502, "backup_failed"),
    ((CorruptionError,), 500, "corrupt_record"),
    ((ConfigurationError,), 400, "invalid_request"),
)


def engine_error(exc: BaseException) -> HTTPAPIError:
    """Translate an engine exception into the HTTP status and error code a client should see."""
    if isinstance(exc, SyncFailedError):  # (whatever its errno: the store refuses writes for now)
        return HTTPAPIError(503, "sync_failed", str(exc), {"Retry-After": "1"})
    if isinstance(exc, StorageError):  # no other class in the table is one
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return HTTPAPIError(507, "insufficient_storage", str(exc))
        return HTTPAPIError(500, "storage_error", str(exc))
    missing = exc.__cause__ if isinstance(exc, BackupError) else None
    if isinstance(missing, ModuleNotFoundError) and (missing.name or "").partition(".")[0] == "fsspec":
        # kv-backend[server] without the backup extra: not the destination's failure (502) but this
        # installation's, as for any other missing module.
        return HTTPAPIError(501, "not_implemented", f"this build cannot back up: {exc}")
    for types, status, code in _ERROR_STATUS:
        if isinstance(exc, types):
            report = exc.report if isinstance(exc, BackupNotDurableError) else None
            return HTTPAPIError(status, code, str(exc), report=report)
    # Another project error (a value of the wrong type, a transaction misused...) can only come from
    # a defect of this server, which checks every request before it reaches the engine.
    return HTTPAPIError(500, "internal_error", f"{type(exc).__name__}: {exc}")


def jsonable(obj: Any) -> Any:
    """Turn a merge/backup report (dataclass, named tuple, mapping, plain object) into JSON data."""
    if obj is None or isinstance(obj, (bool, int)):
        return obj
    if isinstance(obj, str):
        return valid_unicode(obj)  # a store's path that is not UTF-8 (stats): JSON must be Unicode
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, bytes):
        return encode_key(obj)
    if isinstance(obj, os.PathLike):
        return jsonable(os.fspath(obj))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return {k: jsonable(v) for k, v in obj._asdict().items()}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    for name in ("to_dict", "as_dict"):
        method = getattr(obj, name, None)
        if callable(method):
            return jsonable(method())
    if hasattr(obj, "__dict__"):
        return {k: jsonable(v) for k, v in vars(obj).items() if not k.startswith("_")}
    return str(obj)


# ----------------------------------------------------------------- parsing


#: An integer query parameter, as Redis (and ``kvb serve``) reads an integer argument: an optional
#: ``-`` and ASCII digits without a leading zero; no ``+``, whitespace, ``_`` or other digits.
_INTEGER = re.compile(rb"0|-?[1-9][0-9]*")
#: A number query parameter (``ttl``), in the decimal form Redis (and ``kvb serve``) read a float
#: argument in: an optional sign, ASCII digits with an optional fraction, an optional exponent; no
#: whitespace, ``_``, hexadecimal or other digits (``inf`` and ``nan`` are no finite ttl either).
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _shown(raw: bytes) -> str:
    """A parameter's value for an error message: as sent (bytes not UTF-8 escaped), cut at 40."""
    return repr(raw.decode("utf-8", "backslashreplace")[:40])


def parse_ttl(raw: bytes | None) -> float | None:
    """Parse ``?ttl=SECONDS``: a number > 0 and <= :data:`MAX_TTL` (fractions allowed), or None if absent.

    The number is read as Redis and ``kvb serve`` read a float argument (``5``, ``+5``, ``0.5``,
    ``.5``, ``1e3``), so what they refuse is refused here too: surrounding whitespace (which
    Python's ``float()`` strips), ``_`` (which it skips), hexadecimal, digits other than ASCII.
    """
    if raw is None:
        return None
    if _NUMBER.fullmatch(raw) is None:
        raise HTTPAPIError(
            400,
            "invalid_ttl",
            "ttl must be a number of seconds greater than 0, written with ASCII digits, an optional "
            "fraction and exponent (5, 0.5, 1e3), without spaces or '_' (as Redis reads numbers), "
            f"got {_shown(raw)}",
        )
    ttl = float(raw)
    if not math.isfinite(ttl) or ttl <= 0:
        raise HTTPAPIError(
            400, "invalid_ttl", f"ttl must be a finite number of seconds greater than 0, got {_shown(raw)}"
        )
    if ttl > MAX_TTL:
        raise HTTPAPIError(
            400,
            "invalid_ttl",
            f"ttl must be at most {MAX_TTL} seconds, got {_shown(raw)}; "
            "omit ttl for a key that never expires",
        )
    return ttl


def parse_int(
    raw: bytes | None, name: str, default: int, lo: int | None = None, hi: int | None = None
) -> int:
    """Parse an integer query parameter within ``[lo, hi]``, written as Redis reads integers
    (:data:`_INTEGER`): Python's ``int()`` would also take `` 5 ``, ``+5``, ``1_000`` and other
    scripts' digits, which Redis and ``kvb serve`` refuse."""
    if raw is None:
        return default
    if _INTEGER.fullmatch(raw) is None:
        raise HTTPAPIError(
            400,
            "invalid_parameter",
            f"{name} must be a decimal integer: ASCII digits with an optional leading '-', "
            f"no '+', spaces, '_' or leading zeros (as Redis reads integers), got {_shown(raw)}",
        )
    digits = len(raw) - raw.startswith(b"-")
    if digits > MAX_INT_DIGITS:  # Python converts at most 4300 digits (sys.get_int_max_str_digits)
        raise HTTPAPIError(
            400, "invalid_parameter", f"{name} has {digits} digits; at most {MAX_INT_DIGITS} are accepted"
        )
    value = int(raw)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise HTTPAPIError(400, "invalid_parameter", f"{name} must be between {lo} and {hi}, got {value}")
    return value


_TRUE = {b"1", b"true", b"yes", b"on"}
_FALSE = {b"0", b"false", b"no", b"off"}


def parse_bool(raw: bytes | None, name: str) -> bool:
    """Parse a boolean query parameter (1/0, true/false, yes/no, on/off, in any case; absent = false).
    Surrounding whitespace is refused, as the numeric parameters refuse it (:func:`parse_int`)."""
    if raw is None:
        return False
    text = raw.lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise HTTPAPIError(
        400,
        "invalid_parameter",
        f"{name} must be true or false (or 1/0, yes/no, on/off), without spaces, got {_shown(raw)}",
    )


def format_ttl(ttl: float | None) -> str | None:
    """Render seconds left for the ``X-KV-TTL`` header (millisecond precision)."""
    return None if ttl is None else f"{ttl:.3f}"


def raw_key_path(scope: Scope) -> bytes:
    """Return the still percent-encoded part of the request path after ``/v1/keys/``."""
    raw = scope.get("raw_path")
    if raw is None:  # servers that do not give the raw path: re-encode the decoded one
        raw = encode_key(scope["path"].encode("utf-8")).replace("%2F", "/").encode("ascii")
    root = scope.get("root_path", "")
    if root:
        # root_path is decoded text (a Mount("/my kv") gives "/my kv") while raw_path is as sent
        # ("/my%20kv/..."): drop as many raw segments as the root has, if they decode to it.
        depth = root.rstrip("/").count("/")
        parts = raw.split(b"/", depth + 1)
        if len(parts) == depth + 2 and unquote_to_bytes(b"/".join(parts[:-1])) == root.rstrip("/").encode():
            raw = b"/" + parts[-1]
    if not raw.startswith(KEYS_PREFIX):  # e.g. /v1/%6Beys/k, which the route matches once decoded
        raise HTTPAPIError(404, "not_found", "no such endpoint")
    return raw[len(KEYS_PREFIX) :]


# ------------------------------------------------------------ transactions

#: Most operations one POST /v1/txn may hold (as many as a listing page returns keys).
MAX_TXN_OPS = 10_000
#: Largest integral JSON float taken as an integer ``delta`` (beyond it floats skip integers).
_MAX_EXACT_FLOAT = 2**53

#: The members each transaction operation takes, besides ``op`` and its key.
_TXN_MEMBERS: dict[str, frozenset[str]] = {
    "get": frozenset(),
    "put": frozenset({"value", "value_base64", "ttl"}),
    "delete": frozenset(),
    "incr": frozenset({"delta"}),
    "expire": frozenset({"ttl"}),
    "check": frozenset({"exists", "value", "value_base64", "etag"}),
}
_TXN_WRITES = frozenset({"put", "delete", "incr", "expire"})


@dataclasses.dataclass(frozen=True)
class _TxnOp:
    """One validated operation of a transaction (see :func:`parse_txn`)."""

    index: int
    op: str
    key: bytes
    value: bytes | None = None  # put; check of a value
    ttl: float | None = None  # put, expire (None: never expires)
    delta: int = 1  # incr
    exists: bool | None = None  # check of existence
    etag: str | None = None  # check of the entity tag


def _txn_error(index: int, message: str, status: int = 400, code: str = "invalid_request") -> HTTPAPIError:
    return HTTPAPIError(
        status, code, f"operation {index}: {message.rstrip('.')}; nothing was applied", index=index
    )


def _refuse_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_int(text: str) -> int:
    """A JSON integer of at most :data:`MAX_INT_DIGITS` digits, as a query parameter's (Python
    converts at most 4300 and refuses more with advice about its own settings)."""
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"a number has {digits} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def load_json(body: bytes, refuse_constants: bool = False) -> Any:
    """A request body's JSON (empty: null); ValueError, with a message for the client, for one that
    is not JSON, gives an object's member twice, a number of too many digits, or nests too deeply
    (and, with ``refuse_constants``, for NaN and Infinity)."""
    hooks: dict[str, Any] = {"parse_constant": _refuse_json_constant} if refuse_constants else {}
    try:
        return json.loads(
            body or b"null", object_pairs_hook=_json_object_without_duplicates, parse_int=_json_int, **hooks
        )
    except RecursionError:
        raise ValueError("its arrays and objects are nested too deeply") from None


def _json_object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a member given twice (which one would count is a guess)."""
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise ValueError(f"the member {name[:40]!r} appears twice in one object")
        obj[name] = value
    return obj


def _txn_bytes(index: int, op: Mapping[str, Any], name: str, required: bool) -> bytes | None:
    """Read the bytes given as ``name`` (UTF-8 text) or ``name_base64`` (base64): exactly one of them.

    A member given as null counts as given (and is refused as not a string), not as absent.
    """
    given_text, given_b64 = name in op, name + "_base64" in op
    if given_text and given_b64:
        raise _txn_error(index, f'give "{name}" or "{name}_base64", not both')
    if not given_text and not given_b64:
        if required:
            raise _txn_error(index, f'"{name}" (UTF-8 text) or "{name}_base64" (base64) is required')
        return None
    text, b64 = op.get(name), op.get(name + "_base64")
    if given_text:
        if not isinstance(text, str):
            raise _txn_error(index, f'"{name}" must be a string; send other bytes as "{name}_base64"')
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
            raise _txn_error(
                index, f'"{name}" is not valid Unicode text; send other bytes as "{name}_base64"'
            ) from None
    if not isinstance(b64, str):
        raise _txn_error(index, f'"{name}_base64" must be a string of base64')
    try:
        return base64.b64decode(b64, validate=True)
    except ValueError:  # binascii.Error: a character outside the alphabet, wrong padding
        raise _txn_error(
            index, f'"{name}_base64" is not valid base64 (standard alphabet, with = padding)'
        ) from None


def _txn_ttl(index: int, raw: Any) -> float | None:
    """Validate a JSON ``ttl``: as ``?ttl=``, a number > 0 and at most :data:`MAX_TTL`; null: never."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _txn_error(index, '"ttl" must be a number of seconds or null', code="invalid_ttl")
    if not 0 < raw <= MAX_TTL:
        raise _txn_error(
            index,
            f'"ttl" must be greater than 0 and at most {MAX_TTL} seconds, got {str(raw)[:40]}',
            code="invalid_ttl",
        )
    return float(raw)


def _txn_delta(index: int, raw: Any) -> int:
    """Validate a JSON ``delta``: an integer (an integral number such as ``2.0`` counts, as in JSON
    Schema, as long as a float holds it exactly)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer() and abs(raw) <= _MAX_EXACT_FLOAT:
        return int(raw)
    raise _txn_error(index, f'"delta" must be an integer, got {json.dumps(raw)[:40]}')


def _parse_txn_op(index: int, op: Any) -> _TxnOp:
    if not isinstance(op, dict):
        raise _txn_error(index, 'each operation must be a JSON object like {"op": "get", "key": "k"}')
    kind = op.get("op")
    if not isinstance(kind, str) or kind not in _TXN_MEMBERS:
        raise _txn_error(index, f'"op" must be one of {", ".join(_TXN_MEMBERS)}, got {json.dumps(kind)[:40]}')
    unknown = set(op) - {"op", "key", "key_base64"} - _TXN_MEMBERS[kind]
    if unknown:
        raise _txn_error(
            index, f"{kind} does not take {', '.join(repr(name[:40]) for name in sorted(unknown))}"
        )
    key = _txn_bytes(index, op, "key", True)
    try:
        key = check_key(key)
    except KVError as exc:
        raise _txn_error(index, str(exc), code="invalid_key") from None
    if kind == "put":
        value = _txn_bytes(index, op, "value", True)
        try:
            value = check_value(value)
        except KVError as exc:
            raise _txn_error(index, str(exc), 413, "value_too_large") from None
        return _TxnOp(index, kind, key, value=value, ttl=_txn_ttl(index, op.get("ttl")))
    if kind == "incr":
        return _TxnOp(index, kind, key, delta=_txn_delta(index, op.get("delta", 1)))
    if kind == "expire":
        if "ttl" not in op:
            raise _txn_error(index, 'expire needs "ttl": seconds to live, or null to remove the expiry')
        return _TxnOp(index, kind, key, ttl=_txn_ttl(index, op["ttl"]))
    if kind == "check":
        value = _txn_bytes(index, op, "value", False)
        exists = op.get("exists")
        if (value is not None) + ("exists" in op) + ("etag" in op) != 1:
            raise _txn_error(
                index,
                'a check needs exactly one of "exists" (true or false), "value", "value_base64" or "etag"',
            )
        if "exists" in op and not isinstance(exists, bool):
            raise _txn_error(index, '"exists" must be true or false')
        return _TxnOp(index, kind, key, value=value, exists=exists, etag=_txn_etag(index, op.get("etag")))
    return _TxnOp(index, kind, key)  # get, delete


def _txn_etag(index: int, etag: object) -> str | None:
    """The one strong entity tag a check names (None: the check is of something else)."""
    if etag is None:
        return None
    try:
        tags = parse_condition([etag], "etag") if isinstance(etag, str) else None
    except ValueError:
        tags = None
    if not isinstance(tags, list) or len(tags) != 1 or tags[0][0]:
        raise _txn_error(index, '"etag" must be one strong entity tag as ETag gives it, quotes included')
    return tags[0][1]


def parse_txn(body: bytes) -> list[_TxnOp]:
    """Parse and validate a POST /v1/txn body, ``{"ops": [...]}``, before anything runs.

    Every error (400) names the operation's index, so that a transaction is
    refused whole rather than failing half-way for a reason visible in the
    request itself. More than :data:`MAX_TXN_OPS` operations is 400 too, not
    413: the body's size has its own limit (413), and a longer list breaks the
    documented request schema (``maxItems``) as any other malformed body does.
    """
    example = '{"ops": [{"op": "put", "key": "k", "value": "v"}]}'
    try:
        spec = load_json(body, refuse_constants=True)
    except ValueError as exc:
        raise HTTPAPIError(
            400, "invalid_request", f"the body must be a JSON object like {example}: {exc}"
        ) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("ops"), list):
        raise HTTPAPIError(
            400, "invalid_request", f'the body must be a JSON object with an "ops" list, like {example}'
        )
    unknown = set(spec) - {"ops"}
    if unknown:
        raise HTTPAPIError(
            400, "invalid_request", f"unknown field(s): {', '.join(repr(n[:40]) for n in sorted(unknown))}"
        )
    ops = spec["ops"]
    if len(ops) > MAX_TXN_OPS:
        raise HTTPAPIError(
            400,
            "too_many_operations",
            f"a transaction holds at most {MAX_TXN_OPS} operations, got {len(ops)}; "
            "nothing was applied (split it into several transactions)",
        )
    return [_parse_txn_op(i, op) for i, op in enumerate(ops)]


def _encode_b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


class _TxnPlan:
    """A transaction evaluated without writing: its results and the final state of each key it writes.

    The operations run against an overlay of the store, so that later ones see
    earlier ones' writes. A failing check or operation raises before anything is
    written; only a transaction that succeeded is then written, by :meth:`apply`.
    """

    def __init__(self, db: DB) -> None:
        self.db = db
        #: key -> (value, absolute expiry or 0.0 for never), or None once deleted; in order of first write
        self.writes: dict[bytes, tuple[bytes, float] | None] = {}
        self.results: list[dict[str, Any]] = []

    def current(self, key: bytes) -> tuple[bytes, float] | None:
        """The key's value and expiry (0.0: never) as the transaction sees it, or None if absent."""
        if key in self.writes:
            found = self.writes[key]
            if found is not None and found[1] and found[1] <= time.time():
                return None
            return found
        stored = self.db.get_with_expiry(key)
        if stored is None:
            return None
        return stored[0], stored[1] or 0.0

    def check_tag(self, op: _TxnOp) -> None:
        """Fail the transaction (409) unless the key's stored record has the entity tag ``op.etag``."""
        name = encode_key(op.key)
        if op.key in self.writes:
            raise self.check_failed(
                op,
                f"key {name} was written by an earlier operation of this transaction, so it has no tag yet",
            )
        found = self.db.size_with_tag(op.key)
        if found is None:
            raise self.check_failed(op, f"key {name} does not exist")
        if format_tag(found[2]) != op.etag:
            raise self.check_failed(op, f"key {name} has entity tag {format_tag(found[2])}")

    def run(self, ops: list[_TxnOp]) -> None:
        for op in ops:
            try:
                self.results.append(self.step(op))
            except HTTPAPIError:
                raise
            except KVError as exc:
                error = engine_error(exc)
                raise HTTPAPIError(
                    error.status,
                    error.code,
                    f"operation {op.index} ({op.op}): {error.message.rstrip('.')}; nothing was applied",
                    index=op.index,
                ) from exc

    def step(self, op: _TxnOp) -> dict[str, Any]:
        """Evaluate one operation against the overlay and return its result."""
        key = op.key
        found = self.current(key)
        if op.op == "get":
            if found is None:
                return {"op": "get", "found": False, "value_base64": None, "ttl": None}
            value, expiry = found
            ttl = _seconds_left(expiry or None)  # (0.0: never expires)
            return {"op": "get", "found": True, "value_base64": _encode_b64(value), "ttl": ttl}
        if op.op == "check":
            if op.etag is not None:
                self.check_tag(op)
            elif op.exists is not None:
                if (found is not None) != op.exists:
                    state = "exists" if found is not None else "does not exist"
                    raise self.check_failed(op, f"key {encode_key(key)} {state}")
            elif found is None or found[0] != op.value:
                state = "does not exist" if found is None else "holds another value"
                raise self.check_failed(op, f"key {encode_key(key)} {state}")
            return {"op": "check"}
        if op.op == "put":
            assert op.value is not None
            self.writes[key] = (op.value, time.time() + op.ttl if op.ttl is not None else 0.0)
            return {"op": "put"}
        if op.op == "delete":
            self.writes[key] = None
            return {"op": "delete", "found": found is not None}
        if op.op == "expire":
            if found is None:
                return {"op": "expire", "found": False, "ttl": None}
            self.writes[key] = (found[0], time.time() + op.ttl if op.ttl is not None else 0.0)
            return {"op": "expire", "found": True, "ttl": op.ttl}
        assert op.op == "incr"
        value, expiry = found if found is not None else (b"0", 0.0)  # the key keeps its expiry
        try:
            result = parse_int_value(key, value) + op.delta
            data = str(result).encode("ascii")
        except NotAnIntegerError as exc:
            raise HTTPAPIError(
                409,
                "not_an_integer",
                f"operation {op.index} (incr): {str(exc).rstrip('.')}; nothing was applied",
                index=op.index,
            ) from None
        except ValueError:  # more digits than str() converts (sys.get_int_max_str_digits())
            raise HTTPAPIError(
                409,
                "not_an_integer",
                f"operation {op.index} (incr): the result has more digits than Python converts; "
                "nothing was applied",
                index=op.index,
            ) from None
        self.writes[key] = (data, expiry)
        return {"op": "incr", "value": result}

    @staticmethod
    def check_failed(op: _TxnOp, why: str) -> HTTPAPIError:
        return HTTPAPIError(
            409, "check_failed", f"check {op.index} failed: {why}; nothing was applied", index=op.index
        )

    def apply(self) -> None:
        """Write the final state of every key the transaction changed, as one engine transaction."""
        db = self.db
        with db.transaction():
            for key, state in self.writes.items():
                if state is None:
                    db.delete(key)
                else:
                    db.put(key, state[0], expires_at=state[1])  # an expiry already past deletes the key


#: The largest record (header, key and value) a GET reads on the event loop itself (see
#: :meth:`_Api.call_read`): copying and checksumming it takes a few microseconds; a larger one is read
#: in a worker thread, so that one large value does not hold up every other connection meanwhile.
QUICK_READ = 64 * 1024
#: The largest value a write of one key makes on the event loop itself (see :meth:`_Api.call_write`).
QUICK_WRITE = 64 * 1024

#: Reads of a read-only transaction on a read-only store before it gives up (503) rather than
#: answer from a state that changed while it read.
_SNAPSHOT_TRIES = 50
#: Seconds a transaction holding the write lock first waits for this process's readers to leave
#: the gate before it lets go of the lock and starts again (doubling up to the second figure).
_GATE_WAIT = 0.05
_GATE_WAIT_MAX = 1.0


class _ReadGate:
    """Keeps this process's reads out of a transaction while it is being written.

    A :meth:`DB.transaction` hides its writes from other processes until it
    ends, but threads sharing the ``DB`` object (the server's other requests)
    would see them one by one. Reads hold the gate shared; a transaction being
    written holds it alone, so a request sees all of a transaction or none of
    it. The writer holds the store's write lock while it waits for the readers,
    and a reader inside the gate may need that lock too (a read that finds
    another process merged the store rebuilds its view under it): so the writer
    waits for a bounded time only, then gives the lock up and starts again,
    rather than both waiting for each other for ever.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            self.leave()

    def enter_now(self) -> bool:
        """Enter as a reader, as :meth:`reading` does, unless a transaction is being written: then
        return False, holding nothing, rather than wait (the event loop's own reads)."""
        with self._cond:
            if self._writing:
                return False
            self._readers += 1
            return True

    def leave(self) -> None:
        """Leave after :meth:`enter_now` (or :meth:`reading`'s entry)."""
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self, timeout: float) -> Iterator[bool]:
        """Hold the gate alone; yields False, holding nothing, if readers stayed ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._writing = True  # from now on new readers wait
            while self._readers:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._writing = False
                    self._cond.notify_all()
                    break
                self._cond.wait(left)
            clear = self._writing
        if not clear:
            yield False
            return
        try:
            yield True
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    def wait_for_readers(self, timeout: float) -> None:
        """Wait until no reader is inside the gate, for at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._readers:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)


# --------------------------------------------------------------- the app


#: How many engine calls that take the store's write lock may run at once (see _Api.call_locking).
LOCKING_THREADS = 20

#: Seconds a write waits for the store's write lock (held by another process: a long transaction, a
#: script running long on a ``kvb serve`` of the store) before it is answered 503 lock_timeout,
#: unless ``create_app(lock_timeout=...)`` says otherwise: kvb serve's busy-reply-threshold.
DEFAULT_LOCK_TIMEOUT = 5.0


def _until(
    deadline: float, timed_out: Callable[[], HTTPAPIError], fn: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """``fn(*args, **kwargs)`` in a thread whose first wait for the store's write lock ends at
    ``deadline``: then the error ``timed_out`` makes is raised, nothing written."""
    try:
        with waiting_until(deadline):
            return fn(*args, **kwargs)
    except LockTimeoutError:
        raise timed_out() from None


def _rearmed(deadline: float | None) -> contextlib.AbstractContextManager[None]:
    """A ``waiting_until(deadline)`` block, or one that changes nothing without a deadline."""
    return contextlib.nullcontext() if deadline is None else waiting_until(deadline)


def _bounded(seconds: float, deadline: float | None) -> float:
    """``seconds``, or fewer if ``deadline`` comes sooner."""
    return seconds if deadline is None else max(0.0, min(seconds, deadline - time.monotonic()))


class _Waits:
    """What :func:`_at_once` returns for a call that would have had to wait."""


_WAITS = _Waits()


def _at_once(fn: Callable[..., T], *args: Any) -> T | _Waits:
    """``fn(*args)`` made here (the event loop) where it waits for nothing: where the store's write
    lock is held elsewhere, the view must first catch up with other processes' writes, or another
    thread's transaction must end (``waiting_until(NO_WAIT)``), :data:`_WAITS`, nothing done."""
    try:
        with waiting_until(NO_WAIT):
            return fn(*args)
    except LockTimeoutError:
        return _WAITS


async def _translated(work: Awaitable[T]) -> T:
    """The result of an engine call, its errors as the API's."""
    try:
        return await work
    except HTTPAPIError:
        raise
    except KVError as exc:
        raise engine_error(exc) from exc


class _Api:
    """The endpoints, bound to one open :class:`DB`."""

    def __init__(
        self,
        db: DB,
        max_value_size: int,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        max_pending_bytes: int | None = None,
    ) -> None:
        self.db = db
        self.max_value_size = max_value_size
        self.lock_timeout = lock_timeout
        # A PUT body is one value: never more than the engine stores, or a larger limit had the
        # server read (and hold) the whole body, up to max_value_size, only for the engine to refuse it.
        self.max_put_size = min(max_value_size, rec.MAX_VALUE_SIZE)
        self.bodies = PendingBodies(max_pending_bytes or DEFAULT_BODIES * max_value_size)
        self.gate = _ReadGate()
        self.locking_limiter: anyio.CapacityLimiter | None = None
        self.locking_threads: anyio.CapacityLimiter | None = None  # (never waited for: see call_locking)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an engine call in a worker thread and translate its errors."""
        return await _translated(run_in_threadpool(fn, *args, **kwargs))

    async def call_read(self, fn: Callable[[bytes], T], key: bytes, limit: int | None = QUICK_READ) -> T:
        """``fn(key)``, a read of one key, inside the gate, its errors as the API's.

        Made on the event loop itself where it cannot wait (:meth:`DB.read_is_quick`: no catching
        up with other processes, a record of at most ``limit`` bytes, no transaction of this process
        being written), which spares the hand-over to a worker thread and back, most of a small
        read's cost; otherwise in a worker thread, as every engine call.
        """
        try:
            if self.db.read_is_quick(key, limit) and self.gate.enter_now():
                try:
                    found = _at_once(fn, key)
                finally:
                    self.gate.leave()
                if not isinstance(found, _Waits):
                    return found
        except KVError as exc:
            raise engine_error(exc) from exc
        return await self.call_reading(self._gated, fn, key)

    async def call_reading(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`call` for a read, whose wait for the store's write lock (a catch-up with another
        process's merge reloads the store under it) or for a transaction another thread of this process
        is writing to end ends after :attr:`lock_timeout` seconds, as a write's does: then it is
        answered 503 lock_timeout, rather than holding its client (and a thread) for as long as the
        lock is held. A read that waits for neither is unchanged."""
        deadline = time.monotonic() + self.lock_timeout
        return await self.call(_until, deadline, self._read_lock_timeout, fn, *args)

    def _gated(self, fn: Callable[[bytes], T], key: bytes) -> T:
        with self.gate.reading():  # never half of a transaction of this process
            return fn(key)

    async def call_locking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`call` for an engine call that takes the store's write lock: at most
        :data:`LOCKING_THREADS` at once, beside the thread pool's, so that calls waiting for a lock
        another process holds (a script running long on a ``kvb serve`` of the store, a long
        transaction) cannot take every thread and leave reads none."""
        work = anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self._turns())
        return await _translated(work)

    def _turns(self) -> anyio.CapacityLimiter:
        """The limiter of :data:`LOCKING_THREADS` turns, with :attr:`locking_threads` beside it."""
        if self.locking_limiter is None:  # (made in the event loop, as anyio requires)
            self.locking_limiter = anyio.CapacityLimiter(LOCKING_THREADS)
            self.locking_threads = anyio.CapacityLimiter(LOCKING_THREADS)
        return self.locking_limiter

    async def call_write(self, fn: Callable[[], T], size: int) -> T:
        """:meth:`call_writing` of the write of one key (PUT, DELETE, incr, expire): ``fn()``, made on
        the event loop itself where it can be made at once (no other process or thread holds the
        store's write lock, the value is at most :data:`QUICK_WRITE` bytes, and the store does not
        fsync its writes: an fsync takes milliseconds), which spares the hand-over to a worker thread
        and back; where the lock is held elsewhere, nothing has been written, and the write waits
        for it in a worker thread, as every other write does."""
        if size <= QUICK_WRITE and self.db.sync_mode == "never":
            try:
                done = _at_once(fn)
            except HTTPAPIError:
                raise
            except KVError as exc:
                raise engine_error(exc) from exc
            if not isinstance(done, _Waits):
                return done
        return await self.call_writing(fn)

    async def call_writing(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`call_locking` for a write (PUT, DELETE, incr, expire, a transaction), which waits for
        a turn and for the store's write lock at most :attr:`lock_timeout` seconds in all, then is
        answered 503 lock_timeout, nothing written, rather than holding its client (and a thread)
        for as long as another process holds the lock."""
        turns = self._turns()
        assert self.locking_threads is not None
        deadline = time.monotonic() + self.lock_timeout
        # A turn is waited for here, where the wait can be given up; the thread's own limiter then
        # never makes it wait (it has as many tokens): a cancelled wait for a thread already running
        # would lose its reply, and the client would not know whether the write was made.
        turn = False
        with anyio.move_on_after(self.lock_timeout):
            await turns.acquire()
            turn = True
        if not turn:
            raise self._lock_timeout()
        try:
            call = functools.partial(_until, deadline, self._lock_timeout, fn, *args, **kwargs)
            return await _translated(anyio.to_thread.run_sync(call, limiter=self.locking_threads))
        finally:
            turns.release()

    def _lock_timeout(self) -> HTTPAPIError:
        return HTTPAPIError(
            503,
            "lock_timeout",
            f"the store's write lock stayed held by another process (a long transaction, a script running "
            f"long on a kvb serve of the store) for the {self.lock_timeout:g} s this server waits for it "
            "(--lock-timeout, KVB_HTTP_LOCK_TIMEOUT): nothing was written; retry later",
            {"Retry-After": "1"},
        )

    def _read_lock_timeout(self) -> HTTPAPIError:
        return HTTPAPIError(
            503,
            "lock_timeout",
            f"this read must first catch up with another process's merge of the store under its write lock, "
            f"or see a transaction another thread of this server is writing end, and the lock stayed held "
            f"(a long transaction, a script running long on a kvb serve of the store) for the "
            f"{self.lock_timeout:g} s this server waits for it "
            "(--lock-timeout, KVB_HTTP_LOCK_TIMEOUT); retry later",
            {"Retry-After": "1"},
        )

    @staticmethod
    def check_body_headers(request: Request, limit: int, what: str) -> None:
        """Refuse from the headers alone, before reading any of it, a body :meth:`read_body` would refuse.

        A ``Content-Encoding`` other than ``identity`` is refused with 415: bodies are stored and
        returned as sent, so a gzip upload would be kept compressed and later served as if it were
        the value itself. A declared ``Content-Length`` over ``limit`` is 413. Nothing is read, so a
        client that sent ``Expect: 100-continue`` gets the answer without uploading the body.
        """
        # every line of a repeated header counts (RFC 9110 5.3), not only the first
        encoding = ", ".join(v.strip() for v in request.headers.getlist("content-encoding")).lower()
        if any(coding.strip() not in ("", "identity") for coding in encoding.split(",")):
            raise HTTPAPIError(
                415,
                "unsupported_encoding",
                f"Content-Encoding {encoding!r} is not supported: send {what} as the bytes to store "
                "(without Content-Encoding); nothing was stored",
                {"Accept-Encoding": "identity"},  # RFC 9110: say which content codings are accepted
            )
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HTTPAPIError(400, "invalid_request", "Content-Length must be a decimal integer")
            if int(declared) > limit:
                raise HTTPAPIError(
                    413, "value_too_large", f"{what} is {declared} bytes; this server accepts at most {limit}"
                )

    def hold(self, request: Request, size: int, what: str, count: bool = True) -> None:
        """Count ``size`` more bytes of the body of ``request`` as held (only check that they fit,
        without ``count``), or refuse them where the bodies held at once would pass their total: 413
        where this body alone is larger than the total, else 503 with Retry-After. Either closes the
        connection (the rest of the body is never read)."""
        if size <= self.bodies.room:
            if count:
                self.bodies.reserve(request.scope, size)
            return
        total = self.bodies.total
        if self.bodies.held_by(request.scope) + size > total:
            raise HTTPAPIError(
                413,
                "value_too_large",
                f"{what} is larger than {total} bytes, the most of request bodies this server holds at "
                "once (--max-pending-bytes, KVB_HTTP_MAX_PENDING_BYTES); nothing was stored",
                {"Connection": "close"},
            )
        raise HTTPAPIError(
            503,
            "too_many_uploads",
            f"the request bodies this server holds at once would pass {total} bytes (--max-pending-bytes, "
            f"KVB_HTTP_MAX_PENDING_BYTES) with {what}: nothing was stored; retry later",
            {"Retry-After": "1", "Connection": "close"},
        )

    async def read_body(self, request: Request, limit: int, what: str) -> bytes:
        """Read the whole request body, refusing with 413 as soon as it exceeds ``limit`` bytes, and as
        :meth:`hold` says where the bodies held at once would pass their total."""
        self.check_body_headers(request, limit, what)
        declared = request.headers.get("content-length")
        if declared is not None:  # (a number: checked above) refused before any of it is read
            # Counted as it arrives, as a chunked body, and not from here: a client that declares a
            # length and then sends nothing holds nothing of it until the timer below ends it.
            self.hold(request, int(declared), what, count=False)
        chunks: list[bytes] = []
        size = 0
        receive = request.receive
        more = True
        timer = BodyTimer(BODY_TIMEOUT)  # from the first read on: nothing of the body may have come yet
        try:
            while more:
                message = await receive()
                timer.arrived()
                if message["type"] != "http.request":  # http.disconnect
                    raise ClientDisconnect()
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                size += len(chunk)
                if size > limit:
                    raise HTTPAPIError(
                        413,
                        "value_too_large",
                        f"{what} is larger than {limit} bytes, the most this server accepts",
                    )
                self.hold(request, len(chunk), what)
                chunks.append(chunk)
        except ClientDisconnect:
            # The client went away mid-upload (aborted, timed out, killed): its
            # fault, not the server's, so no 500 and no traceback in the log.
            raise HTTPAPIError(
                400,
                "invalid_request",
                f"the connection closed after {size} bytes of {what}, before the whole body; "
                "nothing was stored",
            ) from None
        except asyncio.CancelledError:
            # The body timer ended the wait, or the server is shutting down and stopped waiting for
            # a client still sending its body (kvb http's SHUTDOWN_GRACE). Left to propagate, the
            # cancellation makes uvicorn answer a plain-text 500, as for a bug, and leaves the
            # client guessing whether the value was stored. Nothing was: say so, in the API's own
            # shape, and end the request normally.
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):  # Python 3.11+
                task.uncancel()
            if timer.fired:
                raise HTTPAPIError(
                    408,
                    "request_timeout",
                    f"no byte of {what} arrived for {BODY_TIMEOUT:g} s (after {size} bytes); "
                    "nothing was stored",
                    {"Connection": "close"},
                ) from None
            raise HTTPAPIError(
                503,
                "store_closed",
                f"the server is shutting down and stopped waiting for the rest of {what} after {size} "
                "bytes; nothing was stored: send the request again once the server is back",
                {"Connection": "close"},
            ) from None
        finally:
            timer.stop()
        return b"".join(chunks)

    async def refuse_body(self, request: Request, what: str, hint: str) -> None:
        """Answer 400 to a request body sent to an endpoint that takes its arguments in the query.

        Ignored, the body would change the meaning of the request without a word: a
        ``{"ttl": 300}`` posted to ``/expire`` made the key persistent, a ``{"delta": 5}``
        posted to ``/incr`` added 1. A declared length is refused from the headers alone;
        a chunked body is read (nothing of it is kept) to tell an empty one from the rest.
        """
        declared = request.headers.get("content-length", "").strip()
        empty = not declared.strip("0")  # absent, or a length of 0 ("0", "00")
        if empty and "transfer-encoding" not in request.headers:
            return
        refused = HTTPAPIError(
            400, "invalid_request", f"{what} takes no request body ({hint}); nothing was done"
        )
        if not empty:
            raise refused
        try:
            await self.read_body(request, 0, "the request body")
        except HTTPAPIError as exc:
            if exc.status == 413:
                raise refused from None
            raise

    # ---------------------------------------------------------- endpoints

    async def healthz(self, request: Request) -> Response:
        if self.db.closed:
            return error_response(503, "store_closed", "the store is closed")
        return JSONResponse({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        _check_params(parse_query(request.scope.get("query_string", b"")), (), "the OpenAPI document")
        _refuse_preconditions(request, "the OpenAPI document")
        return JSONResponse(openapi_document())

    async def key(self, request: Request) -> Response:
        """Dispatch /v1/keys/{key} and /v1/keys/{key}/incr|expire by method and raw path.

        A key is one path segment (a ``/`` inside a key travels as ``%2F``), so
        a literal ``/`` after it always names a sub-resource.
        """
        segments = raw_key_path(request.scope).split(b"/")
        query = parse_query(request.scope.get("query_string", b""))
        method = request.method
        key = decode_key(segments[0])
        if len(segments) == 1:
            if method == "OPTIONS":
                check_key(key)  # a key that cannot exist has no methods either (400)
                return _options(_KEY_METHODS)
            if method == "GET":
                _check_params(query, ("format",), "GET of a key")
                return await self.get(request, key, query)
            if method == "HEAD":
                _check_params(query, ("format",), "HEAD of a key")
                return await self.head(request, key, query)
            if method == "PUT":
                _check_params(query, ("ttl",), "PUT")
                _refuse_ttl_header(request, "nothing was stored")
                return await self.put(request, key, query)
            if method == "DELETE":
                _check_params(query, (), "DELETE")
                return await self.delete(request, key)
            raise _not_allowed(method, _KEY_METHODS)
        if len(segments) == 2 and segments[1] in (b"incr", b"expire"):
            if method == "OPTIONS":
                check_key(key)
                return _options(_POST_METHODS)
            if method != "POST":
                raise _not_allowed(method, _POST_METHODS)
            _refuse_ttl_header(request, "nothing was done")
            _check_params(query, ("delta",) if segments[1] == b"incr" else ("ttl",), segments[1].decode())
            if segments[1] == b"incr":
                await self.refuse_body(request, "incr", "give delta in the query string: ?delta=5")
                return await self.incr(request, key, query)
            await self.refuse_body(
                request, "expire", "give ttl in the query string, ?ttl=300; without it the key never expires"
            )
            return await self.expire(request, key, query)
        raise HTTPAPIError(
            404,
            "not_found",
            "no such endpoint; a key is one path segment: percent-encode '/' in keys as %2F "
            "(sub-resources are /v1/keys/{key}/incr and /v1/keys/{key}/expire)",
        )

    async def get(self, request: Request, key: bytes, query: dict[str, bytes]) -> Response:
        fmt = _read_format(query)
        if_match, if_none_match = _preconditions(request)
        if not key:  # GET /v1/keys/: a listing, as etcd's /v2/keys/ or Consul's /v1/kv/, was meant
            try:
                check_key(key)
            except KVError as exc:
                raise HTTPAPIError(
                    400, "invalid_key", f"{exc}; to list keys, GET /v1/keys, without a '/' after it"
                ) from None
        found = await self.call_read(self._read, key)
        if found is None:  # If-Match: * fails too, but a 404 answer ignores preconditions (RFC 9110)
            raise HTTPAPIError(404, "not_found", f"no key {encode_key(key)}")
        value, ttl, etag = found
        headers = {**_ttl_headers(ttl), "ETag": etag}
        not_modified = _read_conditions(key, if_match, if_none_match, headers)
        if not_modified is not None:
            return not_modified
        if fmt == "json":
            body = {
                "key": encode_key(key),
                "value_base64": base64.b64encode(value).decode("ascii"),
                "ttl": ttl,
            }
            return JSONResponse(body, headers=headers)
        headers["Accept-Ranges"] = "bytes"
        # If-Range: the range only if the value still has the strong tag sent (a date never matches)
        if_range = request.headers.get("if-range")
        try:
            part = byte_range(request.headers.getlist("range"), if_range not in (None, etag), len(value))
        except RangeNotSatisfiable:
            raise HTTPAPIError(
                416,
                "range_not_satisfiable",
                f"the Range {request.headers['range'][:60]!r} starts at or past the end of the value, "
                f"which is {len(value)} bytes long",
                {**headers, "Content-Range": f"bytes */{len(value)}"},
            ) from None
        if part is None:
            return Response(value, media_type=OCTET, headers=headers)
        first, last = part
        headers["Content-Range"] = f"bytes {first}-{last}/{len(value)}"
        return Response(value[first : last + 1], status_code=206, media_type=OCTET, headers=headers)

    async def head(self, request: Request, key: bytes, query: dict[str, bytes]) -> Response:
        """HEAD of a key: GET's status and headers, from the key directory and the record's header.

        The value is neither read nor checksummed (:meth:`DB.size_with_expiry`), so a HEAD costs
        the same for any size of value. A record whose value bytes are damaged therefore answers
        200 here while GET answers ``500 corrupt_record``: HEAD says the key exists and how large
        its value is, GET is what verifies the value.
        """
        fmt = _read_format(query)
        if_match, if_none_match = _preconditions(request)
        found = await self.call_read(self._size_with_ttl, key, None)  # (the value is not read)
        if found is None:
            raise HTTPAPIError(404, "not_found", f"no key {encode_key(key)}")
        size, ttl, etag = found
        headers = {**_ttl_headers(ttl), "ETag": etag}
        not_modified = _read_conditions(key, if_match, if_none_match, headers)
        if not_modified is not None:
            return not_modified
        if fmt == "json":
            # GET's JSON body with an empty value_base64, plus the length of the value's base64:
            # base64 needs no escaping in JSON (and building it would cost what HEAD avoids).
            body = {"key": encode_key(key), "value_base64": "", "ttl": ttl}
            length = len(JSONResponse(body).body) + 4 * ((size + 2) // 3)
            media_type = "application/json"
        else:
            length, media_type = size, OCTET
            headers["Accept-Ranges"] = "bytes"
        return Response(media_type=media_type, headers={**headers, "Content-Length": str(length)})

    def _size_with_ttl(self, key: bytes) -> tuple[int, float | None, str] | None:
        """Return ``(size of the value, ttl, entity tag)`` of the key, or None if it is absent (one
        engine read, of the record's header; inside the gate: see :meth:`call_read`)."""
        found = self.db.size_with_tag(key)
        return None if found is None else (found[0], _seconds_left(found[1]), format_tag(found[2]))

    def _read(self, key: bytes) -> tuple[bytes, float | None, str] | None:
        """Return ``(value, ttl, entity tag)`` of the key, or None if it is absent (inside the gate:
        see :meth:`call_read`).

        All three come from one read of one record (:meth:`DB.get_with_tag`), so
        they always belong together without re-reading the value, or waiting for
        the write lock, when other processes write meanwhile.
        """
        found = self.db.get_with_tag(key)
        return None if found is None else (found[0], _seconds_left(found[1]), format_tag(found[2]))

    def _tag(self, key: bytes) -> str | None:
        """The key's entity tag, or None if it is absent (its record's header only is read)."""
        found = self.db.size_with_tag(key)
        return None if found is None else format_tag(found[2])

    def _write_if(
        self,
        key: bytes,
        conditions: tuple[Condition, Condition],
        write: Callable[[], T],
        missing: str | None = None,
    ) -> tuple[T, bool, str | None]:
        """Run ``write`` if the key's tag meets ``(If-Match, If-None-Match)``, checked under the write lock.

        Returns what ``write`` returned, whether the key was absent before, and the key's tag after.
        Raises 412 if a condition fails, and 404 (``missing`` says what was not done) if the key is
        absent and ``missing`` is given: a response that would not be 2xx ignores conditions.
        """
        with self.db.locked():  # no other thread or process writes between the check and the write
            current = self._tag(key)
            if current is None and missing is not None:
                raise HTTPAPIError(404, "not_found", f"no key {encode_key(key)}; {missing}")
            _check_write(key, *conditions, current)
            result = write()
            return result, current is None, self._tag(key)

    async def put(self, request: Request, key: bytes, query: dict[str, bytes]) -> Response:
        ttl = parse_ttl(query.get("ttl"))
        if_match, if_none_match = _preconditions(request)
        if "content-range" in request.headers:
            # RFC 9110 14.5: the body is likely part of a value sent as if it were all of it;
            # stored, it would replace the whole value by that part.
            raise HTTPAPIError(
                400,
                "invalid_request",
                "a PUT with Content-Range sends part of a value, and this API has no partial updates: "
                "send the whole value without Content-Range; nothing was stored",
            )
        check_key(key)  # reject a bad key before reading a large body (its KVError: _kv_error)
        # 413/415 before any 412: preconditions count only for a request that would otherwise succeed
        self.check_body_headers(request, self.max_put_size, "the value")
        conditions = (if_match, if_none_match)
        if if_match is not None or if_none_match is not None:
            # Answer a condition that already fails before reading the body, so a client that
            # sent "Expect: 100-continue" is never asked to upload a value that cannot be
            # stored. Only a shortcut: the write below evaluates the condition again,
            # atomically, since another client may write or delete the key meanwhile. The read
            # waits for a transaction another thread is writing at most --lock-timeout seconds,
            # as the write would (a wait of its own: the body's upload comes between them).
            deadline = time.monotonic() + self.lock_timeout
            tag = await self.call(_until, deadline, self._lock_timeout, self._read_tag, key)
            _check_write(key, if_match, if_none_match, tag)
        value = await self.read_body(request, self.max_put_size, "the value")
        _, created, etag = await self.call_write(
            lambda: self._write_if(key, conditions, lambda: self.db.put(key, value, ttl)), len(value)
        )
        return Response(status_code=201 if created else 204, headers=_etag_header(etag))

    def _read_tag(self, key: bytes) -> str | None:
        with self.gate.reading():  # never half of a transaction of this process
            return self._tag(key)

    async def delete(self, request: Request, key: bytes) -> Response:
        conditions = _preconditions(request)
        if conditions == (None, None):
            if not await self.call_write(lambda: self.db.delete(key), 0):
                raise HTTPAPIError(404, "not_found", f"no key {encode_key(key)}")
        else:  # (If-Match: * is what DELETE checks anyway; If-None-Match: * can only fail)
            await self.call_write(
                lambda: self._write_if(key, conditions, lambda: self.db.delete(key), "nothing was deleted"), 0
            )
        return Response(status_code=204)

    async def incr(self, request: Request, key: bytes, query: dict[str, bytes]) -> Response:
        delta = parse_int(query.get("delta"), "delta", 1)
        conditions = _preconditions(request)
        value, _, etag = await self.call_write(
            lambda: self._write_if(key, conditions, lambda: self.db.incr(key, delta)), 0
        )
        return JSONResponse({"value": value}, headers=_etag_header(etag))

    async def expire(self, request: Request, key: bytes, query: dict[str, bytes]) -> Response:
        ttl = parse_ttl(query.get("ttl"))
        conditions = _preconditions(request)
        done, _, etag = await self.call_write(
            lambda: self._write_if(key, conditions, lambda: self.db.expire(key, ttl), "no expiry was set"), 0
        )
        if not done:  # expired meanwhile (the check and the write are under one lock, so hardly ever)
            raise HTTPAPIError(404, "not_found", f"no key {encode_key(key)}")
        return JSONResponse({"ttl": ttl}, headers=_etag_header(etag))

    async def list_keys(self, request: Request) -> Response:
        query = parse_query(request.scope.get("query_string", b""))
        _check_params(query, ("prefix", "start", "limit", "reverse", "values"), "a listing")
        _refuse_preconditions(request, "a listing")
        prefix = query.get("prefix", b"")
        start = query.get("start") or None
        limit = parse_int(query.get("limit"), "limit", DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT)
        reverse = parse_bool(query.get("reverse"), "reverse")
        values = parse_bool(query.get("values"), "values")
        page = await self.call_reading(self._gated_page, prefix, start, limit, reverse, values)
        return JSONResponse(page)

    def _gated_page(
        self, prefix: bytes, start: bytes | None, limit: int, reverse: bool, values: bool
    ) -> dict[str, Any]:
        with self.gate.reading():  # a page never shows half of a transaction of this process
            return self._page(prefix, start, limit, reverse, values)

    def _page(
        self, prefix: bytes, start: bytes | None, limit: int, reverse: bool, values: bool
    ) -> dict[str, Any]:
        keys: list[bytes] = []
        vals: list[bytes] = []
        nxt: bytes | None = None
        if values:
            size = 0
            for k, v in self.db.items(prefix=prefix, start=start, reverse=reverse):
                # A page of values also ends before its values pass max_value_size bytes (it holds at
                # least one key): limit=10000 of large values would otherwise build gigabytes here.
                size += len(v)
                if len(keys) == limit or (keys and size > self.max_value_size):
                    nxt = k
                    break
                keys.append(k)
                vals.append(v)
        else:
            for k in self.db.keys(prefix=prefix, start=start, reverse=reverse):
                if len(keys) == limit:
                    nxt = k
                    break
                keys.append(k)
        out: dict[str, Any] = {"keys": [encode_key(k) for k in keys]}
        if values:
            out["values_base64"] = [base64.b64encode(v).decode("ascii") for v in vals]
        out["next"] = None if nxt is None else encode_key(nxt)
        return out

    async def txn(self, request: Request) -> Response:
        """POST /v1/txn: run a list of operations as one transaction, all of them or none."""
        _check_params(parse_query(request.scope.get("query_string", b"")), (), "a transaction")
        _refuse_preconditions(request, "a transaction")
        body = await self.read_body(request, self.max_value_size, "the transaction")
        ops = parse_txn(body)
        writes = any(op.op in _TXN_WRITES for op in ops)
        return JSONResponse({"results": await self.call_writing(self._run_txn, ops, writes)})

    def _run_txn(self, ops: list[_TxnOp], writes: bool) -> list[dict[str, Any]]:
        """Evaluate the transaction under the write lock, then write it if every operation succeeded.

        Evaluating first (on an overlay, see :class:`_TxnPlan`) means a failed
        check writes nothing at all, and the lock held throughout means nothing
        changes between the evaluation and the writing.
        """
        db = self.db
        if db.read_only and not writes:  # no write lock to take: read until no write landed meanwhile
            for _ in range(_SNAPSHOT_TRIES):
                token = db.change_token()
                plan = _TxnPlan(db)
                plan.run(ops)
                if db.change_token() == token:
                    return plan.results
            raise HTTPAPIError(
                503,
                "busy",
                f"the store changed during each of {_SNAPSHOT_TRIES} reads of this transaction, so no "
                "consistent answer could be given (this server opened it read-only); retry",
                {"Retry-After": "1"},
            )
        # The request's --lock-timeout deadline (see _until), which bounds every round: a round given up
        # for readers wrote nothing, so the next one's take of the lock may fail for it too.
        deadline = pending_deadline()
        wait = _GATE_WAIT
        while True:
            with _rearmed(deadline), db.locked():  # a read-only store refuses a transaction that writes (403)
                plan = _TxnPlan(db)
                plan.run(ops)
                if not plan.writes:
                    return plan.results
                with self.gate.writing(_bounded(wait, deadline)) as clear:
                    if clear:
                        plan.apply()
                        return plan.results
            # A request of this process still reads inside the gate, and it may be waiting for the
            # write lock this thread held (catching up with another process's merge takes it):
            # let go of the lock until it is out, then evaluate the transaction again.
            self.gate.wait_for_readers(_bounded(wait, deadline))
            if deadline is not None and time.monotonic() >= deadline:
                raise held_too_long(db.path)
            wait = min(wait * 2, _GATE_WAIT_MAX)

    async def stats(self, request: Request) -> Response:
        _check_params(parse_query(request.scope.get("query_string", b"")), (), "stats")
        _refuse_preconditions(request, "stats")
        return JSONResponse(jsonable(await self.call_reading(self._gated_stats)))

    def _gated_stats(self) -> dict[str, Any]:
        with self.gate.reading():  # the counts never include part of a transaction of this process
            return self.db.stats()

    async def merge(self, request: Request) -> Response:
        query = parse_query(request.scope.get("query_string", b""))
        _check_params(query, ("wait",), "merge")
        _refuse_preconditions(request, "merge")
        wait = parse_bool(query.get("wait"), "wait")
        await self.refuse_body(request, "merge", "give wait in the query string: ?wait=true")
        try:
            merge = functools.partial(self.db.merge, wait=True) if wait else self.db.merge
            report = await self.call_locking(merge)
        except ModuleNotFoundError as exc:
            raise HTTPAPIError(501, "not_implemented", f"this build cannot merge: {exc}") from exc
        return JSONResponse(jsonable(report))

    async def backup(self, request: Request) -> Response:
        # ?name=nightly would otherwise be ignored, and the backup named by its timestamp
        query = parse_query(request.scope.get("query_string", b""))
        _check_params(query, (), "a backup (give its url, name and storage_options in the JSON body)")
        _refuse_preconditions(request, "a backup")
        body = await self.read_body(request, MAX_JSON_BODY, "the request body")
        try:
            # a member given twice is refused, as in a transaction: which one counts is a guess
            spec = load_json(body)
        except ValueError as exc:
            raise HTTPAPIError(400, "invalid_request", f"the body must be a JSON object: {exc}") from None
        if not isinstance(spec, dict):
            raise HTTPAPIError(
                400, "invalid_request", 'the body must be a JSON object like {"url": "s3://..."}'
            )
        unknown = set(spec) - {"url", "name", "storage_options"}
        if unknown:
            raise HTTPAPIError(400, "invalid_request", f"unknown field(s): {', '.join(sorted(unknown))}")
        url, name, options = spec.get("url"), spec.get("name"), spec.get("storage_options")
        if options is None:
            options = {}
        if not isinstance(url, str) or not url:
            raise HTTPAPIError(400, "invalid_request", '"url" must be a non-empty string (an fsspec URL)')
        if name is not None and (not isinstance(name, str) or not name):
            raise HTTPAPIError(400, "invalid_request", '"name" must be a non-empty string or null')
        if name is not None:
            try:
                check_backup_name(name)
            except ConfigurationError as exc:  # (the name, not the target: checked first)
                raise HTTPAPIError(400, "invalid_request", f'"name": {exc}') from None
        if not isinstance(options, dict):
            raise HTTPAPIError(400, "invalid_request", '"storage_options" must be a JSON object')
        # Names of DB.backup's and backup()'s own arguments: passed along, they would collide
        # with them ("got multiple values for argument") or set the progress callback.
        reserved = sorted(set(options) & {"self", "db", "url", "name", "progress"})
        if reserved:
            raise HTTPAPIError(
                400,
                "invalid_request",
                f'"storage_options" cannot contain {", ".join(map(repr, reserved))}: it holds fsspec '
                'options only (give the destination and the backup name as "url" and "name")',
            )
        if relative_local_url(url):
            # A relative path (or ~) is taken relative to the server's working directory, which the
            # client does not know (/ under systemd): the backup would land out of anyone's sight.
            raise HTTPAPIError(
                400,
                "invalid_backup_target",
                f"cannot back up to {url!r}: a relative path would be taken relative to the server's "
                "working directory; give an absolute path (or a file:// URL)",
            )
        relative = _relative_option(options)
        if relative is not None:
            # The same for a path that a storage option names (dir::'s directory, a cache's): the
            # backup, or the cache's directories, would land under the server's working directory.
            raise HTTPAPIError(
                400,
                "invalid_backup_target",
                f"cannot back up to {url!r}: the storage option {relative} is a relative path, which "
                "would be taken relative to the server's working directory; give an absolute path",
            )
        if in_process_url(url):  # fsspec's memory filesystem: the backup would die with this process
            raise HTTPAPIError(
                400,
                "invalid_backup_target",
                f"cannot back up to {url!r}: it is in the memory of the server process, gone when it "
                "exits and out of reach of kvb restore; give a URL that outlives it (file://, s3://...)",
            )

        def run_backup() -> object:
            try:
                return self.db.backup(url, name=name, **options)
            except ConfigurationError as exc:  # the URL or its storage options (the name passed above)
                raise _backup_target_error(url, exc) from exc

        try:
            report = await self.call_locking(run_backup)
        except ModuleNotFoundError as exc:
            raise HTTPAPIError(501, "not_implemented", f"this build cannot back up: {exc}") from exc
        except (ValueError, TypeError, ImportError) as exc:
            raise _backup_target_error(url, exc) from exc
        except OSError as exc:
            raise HTTPAPIError(502, "backup_failed", f"backup to {url!r} failed: {exc}") from exc
        return JSONResponse(jsonable(report))


def _backup_target_error(url: str, exc: BaseException) -> HTTPAPIError:
    """400 ``invalid_backup_target``: the backup's URL, or a storage option of it, was refused."""
    return HTTPAPIError(400, "invalid_backup_target", f"cannot back up to {url!r}: {exc}")


#: fsspec's storage options that name a local path (or a URL): dir::'s directory, a cache's
#: directories (a string or a list), an archive's file (zip::, tar::).
_PATH_OPTIONS = ("path", "cache_storage", "fo")


def _relative_option(options: Mapping[str, object], where: str = "") -> str | None:
    """The first storage option in ``options`` (or in the options of a filesystem of the chain,
    ``{"dir": {"path": ...}}``, or ``target_options``) that names a relative local path, as
    ``dir.path='bk'``; None if there is none."""
    for key, value in options.items():
        name = f"{where}{key}"
        if isinstance(value, Mapping):
            found = _relative_option(value, f"{name}.")
            if found is not None:
                return found
        elif key in _PATH_OPTIONS:
            for path in value if isinstance(value, list) else [value]:
                temporary = (key, path) == ("cache_storage", "TMP")  # (the caches' default: a new one)
                if isinstance(path, str) and relative_local_url(path) and not temporary:
                    return f"{name}={path!r}"
    return None


def _check_params(query: Mapping[str, bytes], allowed: tuple[str, ...], what: str) -> None:
    """Refuse a query parameter the endpoint does not take (400 invalid_parameter).

    Ignoring it would make a typo silently change the meaning of the request:
    ``PUT ?TTL=60`` would store the key forever and ``expire?tll=60`` would
    remove the key's expiry instead of setting one.
    """
    for name in query:
        if name not in allowed:
            takes = ", ".join(allowed) if allowed else "no query parameters"
            raise HTTPAPIError(
                400, "invalid_parameter", f"unknown query parameter {name[:40]!r}; {what} takes {takes}"
            )


def _preconditions(request: Request) -> tuple[Condition, Condition]:
    """Return the ``If-Match`` and ``If-None-Match`` conditions sent (None: not sent); 400 if malformed.

    A malformed value is refused rather than ignored, since ignoring it would turn a conditional
    write or delete into an unconditional one. Every line of a header sent several times counts:
    they add up to one list (RFC 9110 5.3).
    """
    found = []
    for name in ("If-Match", "If-None-Match"):
        try:
            found.append(parse_condition(request.headers.getlist(name), name))
        except ValueError as exc:
            raise HTTPAPIError(400, "invalid_request", str(exc)) from None
    return found[0], found[1]


def _read_conditions(
    key: bytes, if_match: Condition, if_none_match: Condition, headers: dict[str, str]
) -> Response | None:
    """Evaluate the conditions of a GET or HEAD of an existing key: 412, a 304 response, or None (200)."""
    if not if_match_holds(if_match, headers["ETag"]):
        raise HTTPAPIError(
            412,
            "precondition_failed",
            f"key {encode_key(key)} has entity tag {headers['ETag']}, not one If-Match names",
        )
    if not if_none_match_holds(if_none_match, headers["ETag"]):  # "*" or a tag (weakly) equal
        return Response(status_code=304, headers=headers)
    return None


def _check_write(key: bytes, if_match: Condition, if_none_match: Condition, current: str | None) -> None:
    """Raise 412 unless both conditions of a write hold for a key whose tag is ``current`` (None: absent)."""
    name = encode_key(key)
    if if_match == ANY and if_none_match == ANY:
        # "exists" and "does not exist" at once: RFC 9110 evaluation fails one of them
        message = "If-Match: * and If-None-Match: * can never both hold"
    elif not if_match_holds(if_match, current):
        message = (
            f"key {name} does not exist"
            if current is None
            else f"key {name} has entity tag {current}, not one If-Match names (it was written since)"
        )
    elif not if_none_match_holds(if_none_match, current):
        message = (
            f"key {name} already exists" if if_none_match == ANY else f"key {name} has entity tag {current}"
        )
    else:
        return
    raise HTTPAPIError(412, "precondition_failed", f"{message}; nothing was changed")


def _etag_header(etag: str | None) -> dict[str, str]:
    """The ``ETag`` of a key just written (none if it expired at once)."""
    return {} if etag is None else {"ETag": etag}


def _refuse_preconditions(request: Request, what: str) -> None:
    """Answer 400 to ``If-Match`` / ``If-None-Match`` on an endpoint that cannot honour them."""
    for name in ("If-Match", "If-None-Match"):
        if name in request.headers:
            raise HTTPAPIError(
                400,
                "invalid_request",
                f"{what} does not support {name}; "
                "conditions apply to a key (GET, HEAD, PUT, DELETE, incr, expire)",
            )


def _refuse_ttl_header(request: Request, outcome: str) -> None:
    """Answer 400 to a write that sends ``X-KV-TTL``, the header GET answers with.

    Ignored, it stored a key forever (PUT) or removed its expiry (``/expire``) while the
    client believed it had set one: the time to live travels in the query string.
    """
    if "x-kv-ttl" in request.headers:
        raise HTTPAPIError(
            400,
            "invalid_request",
            "X-KV-TTL is only a response header: give the time to live in the query string, "
            f"?ttl=SECONDS; {outcome}",
        )


#: The ``Allow`` header of each kind of resource (also the answer to OPTIONS).
_KEY_METHODS = "GET, HEAD, PUT, DELETE, OPTIONS"
_POST_METHODS = "POST, OPTIONS"
_GET_METHODS = "GET, HEAD, OPTIONS"
#: ``OPTIONS *``: every method some resource of the server takes.
_SERVER_METHODS = "GET, HEAD, PUT, DELETE, POST, OPTIONS"


def _seconds_left(expiry: float | None) -> float | None:
    """The ``ttl`` an answer gives for an absolute expiry time: seconds left (never below 0) to the
    millisecond, as the ``X-KV-TTL`` header gives them, or None for a key that never expires."""
    return None if expiry is None else round(max(expiry - time.time(), 0.0), 3)


def _options(allowed: str) -> Response:
    """The answer to OPTIONS (RFC 9110 9.3.7): 204 with the methods of the resource in ``Allow``."""
    return Response(status_code=204, headers={"Allow": allowed})


def _not_allowed(method: str, allowed: str) -> HTTPAPIError:
    return HTTPAPIError(
        405, "method_not_allowed", f"{method} is not allowed here; use {allowed}", {"Allow": allowed}
    )


def _read_format(query: Mapping[str, bytes]) -> str:
    """Return the ``?format=`` of a GET or HEAD of a key: ``raw`` (the default) or ``json``."""
    fmt = query.get("format", b"raw")
    if fmt not in (b"raw", b"json"):  # (as sent: surrounding spaces refused, as for numbers)
        raise HTTPAPIError(
            400, "invalid_parameter", f"format must be 'raw' or 'json', without spaces, got {_shown(fmt)}"
        )
    return fmt.decode()


def _ttl_headers(ttl: float | None) -> dict[str, str]:
    text = format_ttl(ttl)
    return {} if text is None else {"X-KV-TTL": text}


#: The scheme and authority of an absolute-form request target, ``http://host:port``.
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


class OriginForm:
    """ASGI middleware: route a request whose target is a whole URL by the URL's path.

    RFC 9112 (3.2.2) requires a server to accept the absolute form ``GET
    http://host/v1/keys/k HTTP/1.1``, which clients send to proxies and some
    proxies pass on. uvicorn's default parser puts the whole URL in ``path`` and
    ``raw_path``, so every such request was a ``404 no endpoint /http://host/...``.
    The Host header plays no part in this API, so only the path is kept.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw is not None:
            root = scope.get("root_path", "")  # uvicorn --root-path: it prefixes both paths with it
            raw_root = root.encode("utf-8")
            if not raw.startswith(raw_root):
                root, raw_root = "", b""
            match = _ABSOLUTE_FORM.match(raw, len(raw_root))
            if match is not None:
                path = raw[match.end() :] or b"/"
                scope = {**scope, "raw_path": raw_root + path}
                scope["path"] = root + unquote(path.decode("ascii", "replace"))
        await self.app(scope, receive, send)


class CloseConnectionWhenUnsafe:
    """ASGI middleware: answer with ``Connection: close`` where keeping the connection is unsafe.

    * A request with both Content-Length and Transfer-Encoding: uvicorn reads its
      body by Transfer-Encoding alone and kept the connection open, but RFC 9112
      (6.1) says a server MUST close it after answering: a proxy in front that
      framed the request by Content-Length instead would take the rest of the
      body for a next request of its own (request smuggling).
    * A request with ``Expect: 100-continue`` answered before its body was asked
      for (a 413, 415, 412, 401 or a bad key, from its headers alone): the client
      then never sends the body, and a connection kept open would wait for it, so
      a client that reused it would hang (RFC 9110 10.1.1: say whether it closes).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        framing = expect = False
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"transfer-encoding":
                framing = True
            elif name == b"expect":
                expect = value.strip().lower() == b"100-continue"
        if framing:
            framing = any(name.lower() == b"content-length" for name, _ in scope["headers"])
        if not (framing or expect):
            await self.app(scope, receive, send)
            return
        asked = False

        async def receive_noting() -> Any:
            nonlocal asked
            asked = True  # uvicorn sends "100 Continue" now, and the client its body
            return await receive()

        async def send_closing(message: Any) -> None:
            if message["type"] == "http.response.start" and (framing or not asked):
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive_noting if expect else receive, send_closing)


class BearerAuth:
    """ASGI middleware: every path but ``/healthz`` needs ``Authorization: Bearer <token>``."""

    def __init__(
        self, app: ASGIApp, token: str, open_paths: frozenset[str] = frozenset({"/healthz"})
    ) -> None:
        self.app = app
        self.expected = token.encode("utf-8")
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted under a prefix, or uvicorn --root-path
            path = path[len(root) :]
        if path in self.open_paths:
            await self.app(scope, receive, send)
            return
        given: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credentials.strip()
                break
        if given is not None and hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        if given is None:
            challenge = 'Bearer realm="kv_backend"'
            message = "this server needs 'Authorization: Bearer <token>'"
        else:
            challenge = 'Bearer realm="kv_backend", error="invalid_token"'
            message = "the bearer token is not valid"
        response = error_response(401, "unauthorized", message, {"WWW-Authenticate": challenge})
        await response(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPAPIError)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.index, exc.report)


async def _kv_error(request: Request, exc: Exception) -> Response:
    """A project error raised outside :meth:`_Api.call` (e.g. while decoding the request)."""
    api_exc = engine_error(exc)
    return error_response(api_exc.status, api_exc.code, api_exc.message, api_exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's router answers a path no route matches with HTTPException(404): ``not_found``.

    That is the only HTTPException this app meets (each endpoint answers a method it does not serve
    itself, as ``method_not_allowed``, and no request is read as a form): any other would be a
    defect, an ``internal_error`` as other unexpected failures, so that every code a client can get
    is in docs/http.md's table.
    """
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "not_found", f"no endpoint {request.url.path}", exc.headers)
    return await _internal_error(request, exc)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")


class _AnythingConvertor(Convertor[str]):
    """Like ``path`` but also matching newlines, which percent-decoded binary keys may contain."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("kv_backend_key", _AnythingConvertor())


class _EveryMethod:
    """An endpoint as an ASGI app, so that its route takes every method (PROPFIND, LOCK, ...).

    The endpoint itself answers a method it does not serve with 405 and the
    ``Allow`` header of that resource; a route with a fixed method list would
    answer unlisted methods with an ``Allow`` naming methods that are refused too.
    """

    def __init__(self, endpoint: Callable[[Request], Any]) -> None:
        self.app = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _Methods(_EveryMethod):
    """An endpoint serving the methods of ``allowed`` (as in ``Allow``), OPTIONS answered for it.

    Starlette's own method check answers OPTIONS with 405, and lists the allowed
    methods in the arbitrary order of a set, without OPTIONS.
    """

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]], allowed: str) -> None:
        self.endpoint = endpoint
        methods = frozenset(allowed.split(", "))

        async def dispatch(request: Request) -> Response:
            if request.method == "OPTIONS":
                return _options(allowed)
            if request.method not in methods:
                raise _not_allowed(request.method, allowed)
            return await endpoint(request)

        super().__init__(dispatch)


#: Methods that change nothing: a browser sends them cross-origin freely, but lets no page read the answer.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


#: The header that makes an OPTIONS request a CORS preflight.
_PREFLIGHT_HEADER = b"access-control-request-method"


def _from_another_origin(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a browser sent the request for a page of another origin than the server's.

    Browsers say so in ``Sec-Fetch-Site`` (``same-origin``, or ``none`` for a URL the user
    typed, are not); older ones only send ``Origin``, compared with ``Host`` then. A request
    with neither comes from no browser (curl, httpx, a proxy's health check).
    """
    site = origin = None
    host = b""
    for name, value in headers:
        name = name.lower()
        if name == b"sec-fetch-site":
            site = value.strip().lower()
        elif name == b"origin":
            origin = value.strip().lower()
        elif name == b"host":
            host = value.strip().lower()
    if site is not None:
        return site not in (b"same-origin", b"none")
    if origin is None:
        return False
    _, sep, authority = origin.partition(b"://")  # "null" (a sandboxed page, a file) has none
    return not sep or authority != host


class NoCrossOrigin:
    """ASGI middleware: refuse what browsers send for pages of other origins (403).

    * CORS preflights: a browser asks with ``OPTIONS`` and ``Access-Control-Request-Method``
      before a cross-origin request it may not send unasked. The API sends no CORS
      headers; a ``204`` without them fails in the browser too, but reads as a success
      in its network log and in any proxy's, where the 403 says what is wrong. This
      comes before the token check: browsers never send credentials with a preflight,
      and the answer is the same for every path.
    * With ``refuse_writes`` (a server without a token): a write sent by a page of another
      origin. ``POST`` with a ``text/plain`` body needs no preflight, so any web page its
      user visits could otherwise run a transaction, an incr or a backup to a URL of its
      choosing on a local server (cross-site request forgery). Browsers do not let such a
      page read the answers to reads, so reads are left alone. With a token no page can
      send one without a preflight, which only a proxy configured for CORS would allow.
    """

    def __init__(self, app: ASGIApp, refuse_writes: bool = True) -> None:
        self.app = app
        self.refuse_writes = refuse_writes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        method = scope["method"]
        if method == "OPTIONS" and any(n.lower() == _PREFLIGHT_HEADER for n, _ in headers):
            message = "CORS preflights are refused: this server sends no CORS headers"
        elif self.refuse_writes and method not in _SAFE_METHODS and _from_another_origin(headers):
            message = f"{method} from a web page of another origin is refused (the server has no token)"
        else:
            await self.app(scope, receive, send)
            return
        response = error_response(
            403,
            "cross_origin_refused",
            f"{message}; this server does not serve browsers' cross-origin requests: serve the page "
            "and the API from one origin, e.g. through the proxy in front of the server",
        )
        await response(scope, receive, send)


def _names_this_machine(host: bytes) -> bool:
    """Whether a ``Host`` header names no domain that a web site could point at this machine:
    ``localhost`` (and its subdomains, which browsers resolve themselves) or an IP address."""
    name = host.strip().lower()
    if name.startswith(b"["):  # an IPv6 address, [::1]:8380
        name = name[1 : name.find(b"]")]
    else:
        name = name.rpartition(b":")[0] if b":" in name else name
    if not name or name == b"localhost" or name.endswith(b".localhost"):
        return True
    try:
        ipaddress.ip_address(name.decode("ascii"))
    except ValueError:  # (UnicodeDecodeError too)
        return False
    return True


def _arrived_on_loopback(server: object) -> bool:
    """Whether a connection whose ASGI ``scope["server"]`` is ``server`` came in on a loopback address:
    ``(host, port)``; a Unix socket's ``(path, None)`` and an unknown address (None) count as local."""
    if not isinstance(server, (tuple, list)) or len(server) != 2 or server[1] is None:
        return True
    try:
        address = ipaddress.ip_address(str(server[0]).partition("%")[0])
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1, a dual-stack socket's IPv4 loopback
    return address.is_loopback


class LocalHostOnly:
    """ASGI middleware of ``kvb http`` on a loopback address without a token: refuse (400) a request
    a browser sent for a ``Host`` that is a domain name other than ``localhost``.

    A web page can make its own domain name resolve to 127.0.0.1 once it is loaded
    (DNS rebinding); the browser then takes the server for that page's origin, lets
    it send anything and read every answer, and only the ``Host`` header (the page's
    domain) gives it away. Browsers mark every request with ``Sec-Fetch-Site`` (older
    ones a write with ``Origin``); requests without either come from programs, which
    cannot be rebound, and keep any ``Host`` (a proxy's, a test's).

    With ``loopback_connections_only`` (``app_from_env`` without a token, under a server whose
    address the app is not told), the check applies to the connections that arrived on a loopback
    address or a Unix socket, the ones a rebound page reaches: ASGI's ``scope["server"]`` says which.
    """

    def __init__(self, app: ASGIApp, loopback_connections_only: bool = False) -> None:
        self.app = app
        self.loopback_connections_only = loopback_connections_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            not self.loopback_connections_only or _arrived_on_loopback(scope.get("server"))
        ):
            headers = scope["headers"]
            browser = any(name.lower() in (b"sec-fetch-site", b"origin") for name, _ in headers)
            hosts = [value for name, value in headers if name.lower() == b"host"] if browser else []
            host = next((value for value in hosts if not _names_this_machine(value)), None)
            if host is not None:
                response = error_response(
                    400,
                    "invalid_host",
                    f"this server serves only requests for localhost or an IP address, not for "
                    f"{host.decode('ascii', 'replace')[:80]!r} (a web page of that name may be trying to "
                    "reach it); connect to 127.0.0.1 or localhost, or start the server with a token",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AsteriskOptions:
    """ASGI middleware: answer ``OPTIONS *`` (RFC 9110 9.3.7), a question about the server itself.

    Its target is no path, so no route matches it and it was answered 404.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asterisk = scope["type"] == "http" and scope["path"] == scope.get("root_path", "") + "*"
        if asterisk and scope["method"] == "OPTIONS":
            await _options(_SERVER_METHODS)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def check_app_options(
    token: str | None,
    max_value_size: int,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    max_pending_bytes: int | None = None,
) -> None:
    """Refuse (ConfigurationError) a token, size limit or lock timeout the app cannot serve with."""
    for name, size in (("max_value_size", max_value_size), ("max_pending_bytes", max_pending_bytes)):
        if name == "max_pending_bytes" and size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            # (0 would refuse every value but the empty one, and every transaction)
            raise ConfigurationError(f"{name} must be an int >= 1 (bytes), not {size!r}")
    if (
        isinstance(lock_timeout, bool)
        or not isinstance(lock_timeout, (int, float))
        or not 0 < lock_timeout < math.inf
    ):
        raise ConfigurationError(f"lock_timeout must be a number of seconds > 0, not {lock_timeout!r}")
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigurationError("token must be a non-empty string (or None for no authentication)")
    if token is not None and (token != token.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in token)):
        # No client can send such a token intact in a header: every request would get 401.
        raise ConfigurationError(
            "the token starts or ends with whitespace or contains a control character (a trailing "
            "newline read from a file?), so no client could send it in an Authorization header; "
            "remove those characters"
        )


def create_app(
    db_or_path: DB | str | os.PathLike[str],
    token: str | None = None,
    *,
    max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
    sync: str | float = "never",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    max_pending_bytes: int | None = None,
) -> Starlette:
    """Return the ASGI app serving a store: a :class:`DB` you own, or a path this app opens and closes.

    With ``token``, every endpoint but ``/healthz`` requires ``Authorization:
    Bearer <token>``. ``max_value_size`` caps PUT and POST /v1/txn bodies (413 beyond it).
    ``sync`` is the :class:`DB` durability policy used when opening a path. A write waits at most
    ``lock_timeout`` seconds for the store's write lock (held by another process), then is answered
    503 lock_timeout, nothing written; so does a read that must first catch up with another process's
    merge (it reloads the store under that lock). At most ``max_pending_bytes`` bytes of request
    bodies (by default 4 times ``max_value_size``) are held at once: a body that would pass them is
    refused before it is read (503 too_many_uploads, or 413 where it alone is larger).
    """
    check_app_options(token, max_value_size, lock_timeout, max_pending_bytes)
    owned = not isinstance(db_or_path, DB)
    # (sync is any text here, as from KVB_HTTP_SYNC: DB refuses a wrong one with the project's error)
    db = db_or_path if isinstance(db_or_path, DB) else DB(db_or_path, sync=sync)  # type: ignore[arg-type]
    api = _Api(db, max_value_size, lock_timeout, max_pending_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                close_synced(db, logging.getLogger("kv_backend.http").warning)

    routes = [
        Route("/healthz", _Methods(api.healthz, _GET_METHODS)),
        Route("/openapi.json", _Methods(api.openapi, _GET_METHODS)),
        Route("/v1/keys", _Methods(api.list_keys, _GET_METHODS)),
        Route("/v1/keys/{key:kv_backend_key}", _EveryMethod(api.key)),
        Route("/v1/stats", _Methods(api.stats, _GET_METHODS)),
        Route("/v1/merge", _Methods(api.merge, _POST_METHODS)),
        Route("/v1/backup", _Methods(api.backup, _POST_METHODS)),
        Route("/v1/txn", _Methods(api.txn, _POST_METHODS)),
    ]
    # first: every answer, the token check's 401 too, must close an ambiguously framed connection
    middleware = [
        Middleware(ReleaseBodies, bodies=api.bodies),
        Middleware(CloseConnectionWhenUnsafe),
        Middleware(OriginForm),
        Middleware(NoCrossOrigin, refuse_writes=token is None),
    ]
    if token is not None:
        middleware.append(Middleware(BearerAuth, token=token))
    middleware.append(Middleware(AsteriskOptions))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPAPIError: _api_error,
            KVError: _kv_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    # No redirect to the path without its trailing slash: Starlette's would be an absolute
    # http:// URL built from Host, wrong behind a TLS proxy; such a path is a JSON 404 instead.
    app.router.redirect_slashes = False
    app.state.db = db
    app.state.version = __version__
    return app
