"""The OpenAPI 3.1 description of the HTTP interface, served at GET /openapi.json.

docs/openapi.json is this document written out; regenerate it after changing
the API with ``python -m kv_backend.http openapi docs/openapi.json`` (a test
checks that the two are equal).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kv_backend import __version__

__all__ = ["openapi_document", "openapi_json"]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, ref: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


_TTL_HEADER = {
    "X-KV-TTL": {
        "description": "Seconds the key has left to live (3 decimals). Absent when the key never expires.",
        "schema": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
    }
}

OCTET_STREAM = "application/octet-stream"

_ETAG_HEADER = {
    "ETag": {
        "description": (
            "The key's strong entity tag, from its record's position and checksum: it changes whenever "
            "the value or expiry does (and a merge may change it), and every server on the store answers "
            "the same one."
        ),
        "schema": {"type": "string", "pattern": r'^"[0-9a-f]{16}"$'},
    }
}
_TAGS = 'a list of entity tags (`"..."`, from ETag; `W/"..."` is weak)'

# "*", or a list of entity tags (two schemas, so that a generator of header values can draw from each)
_CONDITION = {
    "anyOf": [
        {"type": "string", "enum": ["*"]},
        {"type": "string", "pattern": r'^(W/)?"[!#-~]*"( ?, ?(W/)?"[!#-~]*")*$'},
    ]
}


def _condition(name: str, star: str, tags: str, comparison: str) -> dict[str, Any]:
    """A conditional request header: what ``*`` and a list of tags do, and how tags compare."""
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": f"`*`: {star}; {_TAGS}: {tags} ({comparison}).",
        "schema": _CONDITION,
    }


def _if_match(star: str, tags: str) -> dict[str, Any]:
    return _condition("If-Match", star, tags, "strong comparison: a weak tag never matches")


def _if_none_match(star: str, tags: str) -> dict[str, Any]:
    return _condition("If-None-Match", star, tags, "weak comparison: `W/` is ignored")


_NOT_MODIFIED = {
    "description": "If-None-Match did not hold: `*` and the key exists, or its tag was listed.",
    "headers": {**_TTL_HEADER, **_ETAG_HEADER},
}
_WRITE_IF = "only if the key's tag is one of them (checked atomically with the write; 412 otherwise)"
_WRITE_IF_NONE = "only if the key is absent or its tag is none of them (atomic; 412 otherwise)"

_ACCEPT_RANGES = {
    "Accept-Ranges": {
        "description": "`bytes` on a `format=raw` answer: a GET may ask for one byte range of the value.",
        "schema": {"type": "string", "enum": ["bytes"]},
    }
}

_KEY_PARAM = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": (
        "The key: arbitrary bytes, percent-encoded (every byte outside A-Z a-z 0-9 - . _ ~ as %XX; "
        "'/' as %2F, '%' as %25, the keys '.' and '..' as %2E and %2E%2E). 1 to 65536 bytes once decoded."
    ),
    "schema": {"type": "string", "minLength": 1},
}

_TTL_PARAM = {
    "name": "ttl",
    "in": "query",
    "required": False,
    "description": (
        "Seconds to live: a number > 0 and at most 9000000000000000 (fractions allowed), written "
        "as Redis reads one (5, 0.5, 1e3; no spaces, '_' or hexadecimal). Absent: never expires."
    ),
    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 9000000000000000},
}

_UNAUTHORIZED = _error("Missing or wrong bearer token (only when the server was started with a token).")
#: The body timeout (kv_backend.http.app.BODY_TIMEOUT), counted from when the request asks for its body.
_BODY_TIMEOUT = _error("No byte of the body arrived for 60 s (none at all, or no more); nothing was done.")
#: The same timeout met by a chunked body sent to an endpoint that takes none (it is read to be refused).
_NO_BODY_TIMEOUT = _error(
    "A chunked request body (this endpoint takes none) sent no byte for 60 s; nothing was done."
)
_BAD_KEY = _error(
    "The key is empty or longer than 65536 bytes, or has a '%' that starts no %XX escape; "
    "or a parameter is invalid."
)

#: Standard base64 with padding, as ``values_base64`` in listings (it decodes exactly).
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

_TXN_KEY = {
    "key": {
        "type": "string",
        "minLength": 1,
        "maxLength": 65536,
        "description": "The key as text, stored as its UTF-8 bytes (not percent-encoded). 1 to 65536 bytes.",
    },
    "key_base64": {
        "type": "string",
        "minLength": 4,
        "pattern": _BASE64,
        "contentEncoding": "base64",
        "description": "The key as base64, for keys that are not UTF-8 text. Give key or key_base64.",
    },
}
_TXN_VALUE = {
    "value": {"type": "string", "description": "The value as text, stored as its UTF-8 bytes."},
    "value_base64": {
        "type": "string",
        "pattern": _BASE64,
        "contentEncoding": "base64",
        "description": "The value as base64 (any bytes).",
    },
}
_ONE_KEY = {"oneOf": [{"required": ["key"]}, {"required": ["key_base64"]}]}
_TXN_TTL = {
    "type": ["number", "null"],
    "exclusiveMinimum": 0,
    "maximum": 9000000000000000,
    "description": "Seconds to live, as ?ttl= (fractions allowed); null: never expires.",
}


def _txn_op(
    name: str, description: str, extra: dict[str, Any], *conditions: dict[str, Any]
) -> dict[str, Any]:
    """The schema of one kind of transaction operation: ``op``, the key, and its own members."""
    schema: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["op"],
        "additionalProperties": False,
        "properties": {"op": {"const": name}, **_TXN_KEY, **extra},
        "allOf": [_ONE_KEY, *conditions],
    }
    return schema


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "kv_backend HTTP API",
        "version": __version__,
        "description": (
            "A durable key-value store over HTTP. Keys are arbitrary bytes, percent-encoded in the path; "
            "values are raw bytes in request and response bodies. Errors are JSON objects "
            '{"error": code, "message": text}. See docs/http.md.'
        ),
    },
    "servers": [{"url": "http://127.0.0.1:8380", "description": "the default of `kvb http`"}],
    "security": [{"bearerAuth": []}],
    "paths": {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness check; never needs a token",
                "security": [],
                "responses": {
                    "200": _json("The server is up and its store is open.", "#/components/schemas/Health"),
                    "503": _error(
                        "The store is still being opened, its log replayed (loading, with "
                        "Retry-After), or it is closed (store_closed)."
                    ),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This OpenAPI document",
                "responses": {
                    "200": {
                        "description": "The document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": _error("A query parameter or a condition header (this endpoint takes neither)."),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/v1/keys": {
            "get": {
                "operationId": "listKeys",
                "summary": "List keys in byte order, one page at a time",
                "description": (
                    "Returns up to `limit` keys with `prefix`, starting at `start` (inclusive; with "
                    "`reverse`, the largest key to return). `next` is the `start` of the following page, "
                    "or null after the last page. Keys are percent-encoded like the `key` path parameter."
                ),
                "parameters": [
                    {
                        "name": "prefix",
                        "in": "query",
                        "required": False,
                        "description": "Only keys starting with these bytes (percent-encoded).",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "start",
                        "in": "query",
                        "required": False,
                        "description": "First key of the page (inclusive, percent-encoded), e.g. `next`.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "Keys per page.",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
                    },
                    {
                        "name": "reverse",
                        "in": "query",
                        "required": False,
                        "description": "Descending order.",
                        "schema": {"type": "boolean", "default": False},
                    },
                    {
                        "name": "values",
                        "in": "query",
                        "required": False,
                        "description": (
                            "Also return the values (base64), aligned with `keys`. The page then also ends "
                            "before its values pass the server's KVB_HTTP_MAX_VALUE_SIZE (one key at least)."
                        ),
                        "schema": {"type": "boolean", "default": False},
                    },
                ],
                "responses": {
                    "200": _json("One page of keys.", "#/components/schemas/KeyPage"),
                    "400": _error("A parameter is invalid."),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/v1/keys/{key}": {
            "parameters": [_KEY_PARAM],
            "get": {
                "operationId": "getKey",
                "summary": "Read a value",
                "parameters": [
                    _if_none_match(
                        "answer 304 without the value if the key exists",
                        "answer 304 without the value if the key's tag is one of them",
                    ),
                    _if_match("changes nothing", "412 unless the key's tag is one of them"),
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "`raw` (default): the value as the body; `json`: a KeyValue object.",
                        "schema": {"type": "string", "enum": ["raw", "json"], "default": "raw"},
                    },
                    {
                        "name": "Range",
                        "in": "header",
                        "required": False,
                        "description": (
                            "One byte range of the value (`format=raw` only), answered 206: "
                            "`bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX`. Several ranges, "
                            "another unit, a malformed range, or an If-Range other than the key's ETag: "
                            "the whole value (200)."
                        ),
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The value.",
                        "headers": {**_TTL_HEADER, **_ETAG_HEADER, **_ACCEPT_RANGES},
                        "content": {
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                            "application/json": {"schema": {"$ref": "#/components/schemas/KeyValue"}},
                        },
                    },
                    "206": {
                        "description": "The byte range of the value that `Range` asked for.",
                        "headers": {
                            **_TTL_HEADER,
                            **_ETAG_HEADER,
                            **_ACCEPT_RANGES,
                            "Content-Range": {
                                "description": "`bytes FIRST-LAST/SIZE`: the bytes sent, the value's size.",
                                "required": True,
                                "schema": {"type": "string", "pattern": r"^bytes [0-9]+-[0-9]+/[0-9]+$"},
                            },
                        },
                        "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "304": _NOT_MODIFIED,
                    "400": _BAD_KEY,
                    "401": _UNAUTHORIZED,
                    "404": _error("No such key (or it expired)."),
                    "412": _error("If-Match named tags and the key's tag is none of them."),
                    "416": {
                        **_error("The range starts at or past the end of the value; nothing of it is sent."),
                        "headers": {
                            "Content-Range": {
                                "description": "`bytes */SIZE`: the value's size.",
                                "required": True,
                                "schema": {"type": "string", "pattern": r"^bytes \*/[0-9]+$"},
                            }
                        },
                    },
                },
            },
            "head": {
                "operationId": "headKey",
                "summary": "Check that a key exists; X-KV-TTL, ETag and Content-Length as for GET",
                "responses": {
                    "200": {
                        "description": "The key exists.",
                        "headers": {**_TTL_HEADER, **_ETAG_HEADER, **_ACCEPT_RANGES},
                    },
                    "304": _NOT_MODIFIED,
                    "400": {"description": "The key is invalid."},
                    "401": {"description": "Missing or wrong bearer token."},
                    "404": {"description": "No such key."},
                    "412": {"description": "If-Match named tags and the key's tag is none of them."},
                },
            },
            "put": {
                "operationId": "putKey",
                "summary": "Store a value (the raw request body)",
                "parameters": [
                    _TTL_PARAM,
                    _if_none_match(
                        "store only if the key does not exist (atomic; 412 otherwise)", _WRITE_IF_NONE
                    ),
                    _if_match("store only if the key exists (atomic; 412 otherwise)", _WRITE_IF),
                ],
                "requestBody": {
                    "required": False,
                    "description": "The value, as raw bytes; no body stores an empty value.",
                    "content": {
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "Stored, and the key did not exist (or had expired) before: "
                        "always the answer of a put-if-absent (`If-None-Match: *`).",
                        "headers": _ETAG_HEADER,
                    },
                    "204": {"description": "Stored over the key's existing value.", "headers": _ETAG_HEADER},
                    "400": _error(
                        "Invalid key, ttl, precondition header, Content-Range (no partial PUT) or "
                        "an X-KV-TTL header (give ttl in the query)."
                    ),
                    "401": _UNAUTHORIZED,
                    "412": _error("The If-None-Match / If-Match condition failed; nothing was stored."),
                    "408": _BODY_TIMEOUT,
                    "413": _error("The value is larger than the server's limit."),
                    "415": _error("A Content-Encoding other than identity; nothing was stored."),
                },
            },
            "delete": {
                "operationId": "deleteKey",
                "summary": "Delete a key",
                "parameters": [
                    _if_match("delete only if the key exists (as without it: 404 otherwise)", _WRITE_IF),
                    _if_none_match(
                        "only if the key does not exist, so never deletes (412 or 404)", _WRITE_IF_NONE
                    ),
                ],
                "responses": {
                    "204": {"description": "Deleted."},
                    "400": _error("Invalid key or precondition header."),
                    "401": _UNAUTHORIZED,
                    "404": _error("No such key."),
                    "412": _error("If-Match / If-None-Match did not hold for the key; nothing was deleted."),
                },
            },
        },
        "/v1/keys/{key}/incr": {
            "parameters": [_KEY_PARAM],
            "post": {
                "operationId": "incrKey",
                "summary": "Add to an integer value (ASCII decimal, missing = 0); atomic, keeps the expiry",
                "parameters": [
                    {
                        "name": "delta",
                        "in": "query",
                        "required": False,
                        "description": (
                            "The amount to add (may be negative; up to 4000 digits), written as Redis reads "
                            "an integer: no '+', spaces, '_' or leading zeros."
                        ),
                        "schema": {"type": "integer", "default": 1},
                    },
                    _if_match("add only if the key exists (atomic; 412 otherwise)", _WRITE_IF),
                    _if_none_match(
                        "add only if the key does not exist (atomic; 412 otherwise)", _WRITE_IF_NONE
                    ),
                ],
                "responses": {
                    "200": {
                        **_json("The new value.", "#/components/schemas/IncrResult"),
                        "headers": _ETAG_HEADER,
                    },
                    "400": _BAD_KEY,
                    "401": _UNAUTHORIZED,
                    "408": _NO_BODY_TIMEOUT,
                    "409": _error("The stored value is not a decimal integer."),
                    "412": _error("If-Match / If-None-Match did not hold for the key; nothing was added."),
                },
            },
        },
        "/v1/keys/{key}/expire": {
            "parameters": [_KEY_PARAM],
            "post": {
                "operationId": "expireKey",
                "summary": "Set a key's time to live, or remove its expiry when `ttl` is absent",
                "parameters": [
                    _TTL_PARAM,
                    _if_match("changes nothing (a missing key is 404 anyway)", _WRITE_IF),
                    _if_none_match(
                        "only if the key does not exist, so never sets one (412 or 404)", _WRITE_IF_NONE
                    ),
                ],
                "responses": {
                    "200": {
                        **_json("The new time to live.", "#/components/schemas/ExpireResult"),
                        "headers": _ETAG_HEADER,
                    },
                    "400": _BAD_KEY,
                    "401": _UNAUTHORIZED,
                    "404": _error("No such key."),
                    "408": _NO_BODY_TIMEOUT,
                    "412": _error(
                        "If-Match / If-None-Match did not hold for the key; the expiry is unchanged."
                    ),
                },
            },
        },
        "/v1/stats": {
            "get": {
                "operationId": "stats",
                "summary": "Counts and sizes of the store",
                "responses": {
                    "200": _json("Statistics.", "#/components/schemas/Stats"),
                    "400": _error("A query parameter or a condition header (this endpoint takes neither)."),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/v1/merge": {
            "post": {
                "operationId": "merge",
                "summary": "Compact the store now; answers when the merge is done",
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "description": "If another process is merging, wait for it and merge after (no 409).",
                        "schema": {"type": "boolean", "default": False},
                    }
                ],
                "responses": {
                    "200": _json("The merge report.", "#/components/schemas/MergeReport"),
                    "400": _error("A parameter is invalid."),
                    "401": _UNAUTHORIZED,
                    "408": _NO_BODY_TIMEOUT,
                    "409": _error("Another process is merging this store."),
                    "501": _error("This installation cannot merge."),
                },
            }
        },
        "/v1/txn": {
            "post": {
                "operationId": "transaction",
                "summary": "Run several operations as one atomic transaction: all of them or none",
                "description": (
                    "The operations run in order under the store's write lock; each sees the writes of the "
                    "ones before it. If every one succeeds, all their writes take effect at once (also "
                    "across a crash) and the answer holds their results in order. If a check fails (409 "
                    "check_failed) or any operation fails, nothing is written; the error's `index` is the "
                    "position of that operation. Every operation is validated before any runs."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TxnRequest"}}},
                },
                "responses": {
                    "200": _json("Every operation's result, in order.", "#/components/schemas/TxnResponse"),
                    "400": _error(
                        "The body, an operation, a key or a ttl is invalid, or there are over 10000 "
                        "operations; nothing was written."
                    ),
                    "401": _UNAUTHORIZED,
                    "409": _error(
                        "A check failed (check_failed) or incr met a non-integer value (not_an_integer); "
                        "nothing was written. `index` names the operation."
                    ),
                    "408": _BODY_TIMEOUT,
                    "413": _error("The body is larger than the server's limit (KVB_HTTP_MAX_VALUE_SIZE)."),
                    "415": _error("A Content-Encoding other than identity."),
                    "503": _error(
                        "The store is still being opened (loading, with Retry-After) or is closed "
                        "(store_closed); or another process held the store's write lock for longer than "
                        "the server's --lock-timeout (lock_timeout, with Retry-After: nothing was written); "
                        "or, on a server that opened the store read-only, it changed during "
                        "each of 50 reads of a read-only transaction (busy, with Retry-After): retry; or, "
                        "under a sync policy, an fsync of the store failed and its writes are refused until "
                        "one succeeds (sync_failed, with Retry-After: nothing was written; check the disk)."
                    ),
                },
            }
        },
        "/v1/backup": {
            "post": {
                "operationId": "backup",
                "summary": "Copy a consistent snapshot to an fsspec URL; answers when the backup is done",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/BackupRequest"}}
                    },
                },
                "responses": {
                    "200": _json("The backup report.", "#/components/schemas/BackupReport"),
                    "400": _error(
                        "The body is invalid (invalid_request), or the target URL or its storage options "
                        "(invalid_backup_target)."
                    ),
                    "401": _UNAUTHORIZED,
                    "408": _BODY_TIMEOUT,
                    "409": _error(
                        "A backup of the given name already exists at the URL (backup_exists); or the URL "
                        "holds the backups of another store (backup_url_taken): nothing was written there."
                    ),
                    "413": _error("The body is larger than 1 MiB."),
                    "415": _error("A Content-Encoding other than identity."),
                    "501": _error("This installation cannot back up."),
                    "502": _error(
                        "The backup target could not be reached or failed (backup_failed); or the backup "
                        "was written, complete, to a local directory whose fsync failed "
                        "(backup_not_durable, with the backup's report): it is in place and restores, "
                        "but a power failure may lose it until the server's disk is checked and `sync` "
                        "run on the directory the message names; do not back up again for it."
                    ),
                    "507": _error(
                        "The backup target is full or over its quota (backup_target_full): free space "
                        "there, e.g. prune older backups, then back up again."
                    ),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "Required when the server was started with --token (or KVB_HTTP_TOKEN).",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {
                        "type": "string",
                        "description": "A stable code such as not_found or invalid_ttl.",
                    },
                    "message": {"type": "string", "description": "What went wrong and what to do."},
                    "index": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "POST /v1/txn: the position of the operation that failed.",
                    },
                    "report": {
                        "$ref": "#/components/schemas/BackupReport",
                        "description": "POST /v1/backup, backup_not_durable: the report of the backup, "
                        "which is in place.",
                    },
                },
            },
            "Health": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "const": "ok"}},
            },
            "KeyValue": {
                "type": "object",
                "required": ["key", "value_base64", "ttl"],
                "properties": {
                    "key": {"type": "string", "description": "The key, percent-encoded."},
                    "value_base64": {"type": "string", "contentEncoding": "base64"},
                    "ttl": {"type": ["number", "null"], "description": "Seconds left; null: never expires."},
                },
            },
            "KeyPage": {
                "type": "object",
                "required": ["keys", "next"],
                "properties": {
                    "keys": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Percent-encoded keys.",
                    },
                    "values_base64": {
                        "type": "array",
                        "items": {"type": "string", "contentEncoding": "base64"},
                        "description": "With values=true: the values, aligned with keys.",
                    },
                    "next": {
                        "type": ["string", "null"],
                        "description": "Pass as `start` to get the next page; null after the last page.",
                    },
                },
            },
            "IncrResult": {
                "type": "object",
                "required": ["value"],
                "properties": {"value": {"type": "integer"}},
            },
            "ExpireResult": {
                "type": "object",
                "required": ["ttl"],
                "properties": {"ttl": {"type": ["number", "null"]}},
            },
            "Stats": {
                "type": "object",
                "required": ["keys", "live_bytes", "dead_bytes", "total_bytes", "files"],
                "properties": {
                    "keys": {"type": "integer"},
                    "expired_keys": {"type": "integer"},
                    "live_bytes": {"type": "integer"},
                    "dead_bytes": {"type": "integer"},
                    "total_bytes": {"type": "integer"},
                    "files": {"type": "integer"},
                },
                "additionalProperties": True,
            },
            "MergeReport": {
                "type": "object",
                "description": "What the merge did (kv_backend.merge.MergeReport).",
                "properties": {
                    "files_before": {"type": "integer"},
                    "files_after": {"type": "integer"},
                    "bytes_before": {"type": "integer"},
                    "bytes_after": {"type": "integer"},
                    "records_kept": {"type": "integer"},
                    "records_dropped": {"type": "integer"},
                    "corrupt_kept": {
                        "type": "integer",
                        "description": "Damaged records copied as they are: their keys still read as damaged "
                        "(500 corrupt_record) until written or deleted again.",
                    },
                    "corrupt_dropped": {
                        "type": "integer",
                        "description": "Always 0: merges of earlier releases dropped damaged records.",
                    },
                    "seconds": {"type": "number"},
                },
                "additionalProperties": True,
            },
            "BackupReport": {
                "type": "object",
                "description": "What the backup did (kv_backend.backup.BackupReport).",
                "properties": {
                    "name": {"type": "string", "description": "The backup's name, for restore."},
                    "url": {"type": "string"},
                    "files_copied": {"type": "integer"},
                    "files_skipped": {"type": "integer", "description": "Already in an earlier backup."},
                    "bytes_copied": {"type": "integer"},
                    "bytes_skipped": {"type": "integer"},
                    "seconds": {"type": "number"},
                    "damaged_records": {
                        "type": "integer",
                        "description": "Damaged records copied as they are, and hint file entries that point "
                        "to no sound record of their key (kvb check lists them): the backup is made. 0 for "
                        "a store without damage.",
                    },
                    "damaged_hint_entries": {
                        "type": "integer",
                        "description": "Of damaged_records, the hint file entries (a restore leaves those "
                        "hint files out).",
                    },
                    "restorable": {
                        "type": "boolean",
                        "description": "False where a restore refuses the backup (a damaged record); true "
                        "where it restores (no damage, or damaged hint entries only).",
                    },
                },
                "additionalProperties": True,
            },
            "TxnRequest": {
                "type": "object",
                "required": ["ops"],
                "additionalProperties": False,
                "properties": {
                    "ops": {
                        "type": "array",
                        "maxItems": 10000,
                        "items": {"$ref": "#/components/schemas/TxnOp"},
                        "description": "The operations, run in order.",
                    }
                },
            },
            "TxnOp": {
                "oneOf": [
                    _txn_op("get", "Read the key: its value (base64) and ttl, or found: false.", {}),
                    _txn_op(
                        "put",
                        "Store a value (value or value_base64), with an optional ttl.",
                        {**_TXN_VALUE, "ttl": _TXN_TTL},
                        {"oneOf": [{"required": ["value"]}, {"required": ["value_base64"]}]},
                    ),
                    _txn_op("delete", "Delete the key (found: whether it existed).", {}),
                    _txn_op(
                        "incr",
                        "Add delta (default 1) to the integer value; a missing key counts as 0.",
                        {"delta": {"type": "integer", "default": 1}},
                    ),
                    _txn_op(
                        "expire",
                        "Set the key's ttl, or with null remove its expiry (found: whether it exists).",
                        {"ttl": _TXN_TTL},
                        {"required": ["ttl"]},
                    ),
                    _txn_op(
                        "check",
                        "Abort the transaction (409) unless the key exists / does not exist, holds value, "
                        "or its stored record has the entity tag etag (as ETag gives it).",
                        {**_TXN_VALUE, "exists": {"type": "boolean"}, "etag": _ETAG_HEADER["ETag"]["schema"]},
                        {
                            "oneOf": [
                                {"required": ["exists"]},
                                {"required": ["etag"]},
                                {"required": ["value"]},
                                {"required": ["value_base64"]},
                            ]
                        },
                    ),
                ]
            },
            "TxnResponse": {
                "type": "object",
                "required": ["results"],
                "properties": {
                    "results": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/TxnResult"},
                        "description": "One result per operation, in order.",
                    }
                },
            },
            "TxnResult": {
                "type": "object",
                "required": ["op"],
                "description": (
                    "get: found, value_base64 and ttl (null when absent or never expiring); put, check: "
                    "nothing more; delete: found; incr: value; expire: found and the ttl set."
                ),
                "properties": {
                    "op": {"type": "string", "enum": ["get", "put", "delete", "incr", "expire", "check"]},
                    "found": {"type": "boolean", "description": "Whether the key existed."},
                    "value_base64": {"type": ["string", "null"], "contentEncoding": "base64"},
                    "ttl": {"type": ["number", "null"], "description": "Seconds left; null: never expires."},
                    "value": {"type": "integer", "description": "incr: the new value."},
                },
            },
            "BackupRequest": {
                "type": "object",
                "required": ["url"],
                "additionalProperties": False,
                "properties": {
                    "url": {
                        "type": "string",
                        "minLength": 1,
                        "description": "An fsspec URL, e.g. s3://bucket/kv, or an absolute local path.",
                    },
                    "name": {
                        "type": ["string", "null"],
                        "minLength": 1,
                        "description": "Default: a timestamp.",
                    },
                    "storage_options": {
                        "type": "object",
                        "description": "fsspec storage options (credentials, endpoint_url, ...).",
                        "additionalProperties": True,
                    },
                },
            },
        },
    },
}


#: Operations that write to the store: a read-only store (403) or a full disk (507) refuses them.
#: The reads that may catch up with another process's merge in a worker thread, under the store's
#: write lock, which they wait for at most --lock-timeout seconds.
_READS = {
    ("/v1/keys", "get"),
    ("/v1/keys/{key}", "get"),
    ("/v1/keys/{key}", "head"),
    ("/v1/stats", "get"),
}

_WRITES = {
    ("/v1/keys/{key}", "put"),
    ("/v1/keys/{key}", "delete"),
    ("/v1/keys/{key}/incr", "post"),
    ("/v1/keys/{key}/expire", "post"),
    ("/v1/merge", "post"),
    ("/v1/txn", "post"),
}


def _add_store_errors(doc: dict[str, Any]) -> None:
    """Give every operation on the store the errors any of them can answer (docs/http.md's table)."""
    for path, item in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in item.items():
            if method == "parameters":
                continue
            responses = op["responses"]
            if (path, method) in _WRITES:
                responses.setdefault("403", _error("The store was opened read-only."))
                responses.setdefault("507", _error("The disk is full; nothing was written."))
            if (path, method) in _WRITES and path != "/v1/merge":
                responses.setdefault(
                    "503",
                    _error(
                        "The store is still being opened, its log replayed (loading, with Retry-After: "
                        "retry), or it is closed (store_closed: the server is shutting down), or another "
                        "process held the store's write lock for longer than the server's --lock-timeout "
                        "(lock_timeout, with Retry-After: nothing was written; retry), or, under a sync "
                        "policy, an fsync of the store failed and its writes are refused until one succeeds "
                        "(sync_failed, with Retry-After: nothing was written; check the disk)."
                    ),
                )
            if (path, method) in _READS:
                responses.setdefault(
                    "503",
                    _error(
                        "The store is still being opened, its log replayed (loading, with Retry-After: "
                        "retry), or it is closed (store_closed: the server is shutting down), or the read "
                        "had to catch up with another process's merge under the store's write lock, which "
                        "another process held for longer than the server's --lock-timeout (lock_timeout, "
                        "with Retry-After: retry)."
                    ),
                )
            responses.setdefault(
                "500",
                _error(
                    "A record failed its checksum, the OS refused an operation, or an unexpected failure."
                ),
            )
            responses.setdefault(
                "503",
                _error(
                    "The store is still being opened, its log replayed (loading, with Retry-After: "
                    "retry), or it is closed (store_closed: the server is shutting down)."
                ),
            )
            op["responses"] = dict(sorted(responses.items()))


#: The operations whose request body the server reads and holds (PUT's value, a transaction, a backup's
#: JSON): those ``--max-pending-bytes`` can refuse.
_UPLOADS = {("/v1/keys/{key}", "put"), ("/v1/txn", "post"), ("/v1/backup", "post")}

_TOO_MANY_CONNECTIONS = (
    " Under kvb http: a connection made while the server keeps as many open as it can is answered "
    "too_many_connections (with Retry-After and Connection: close) before its request is read; retry, "
    "or keep fewer idle connections."
)
_TOO_MANY_UPLOADS = (
    " Or the request bodies held at once would pass the server's --max-pending-bytes with this one "
    "(too_many_uploads, with Retry-After and Connection: close): nothing was stored; retry."
)
_PENDING_413 = (
    " Or, alone, larger than the bytes of request bodies the server holds at once (--max-pending-bytes, "
    "with Connection: close)."
)


def _add_server_answers(doc: dict[str, Any]) -> None:
    """Give every operation the 503s the server itself answers, whatever the endpoint (docs/http.md's
    Connections), and the operations that upload a body those of ``--max-pending-bytes``."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            responses = op["responses"]
            unavailable = responses.setdefault("503", _error(""))
            if (path, method) in _UPLOADS:
                unavailable["description"] += _TOO_MANY_UPLOADS
                responses["413"]["description"] += _PENDING_413
            unavailable["description"] = (unavailable["description"] + _TOO_MANY_CONNECTIONS).lstrip()
            op["responses"] = dict(sorted(responses.items()))


_add_store_errors(_DOCUMENT)
_add_server_answers(_DOCUMENT)


def openapi_document() -> dict[str, Any]:
    """Return a fresh copy of the OpenAPI document (callers may change it)."""
    return copy.deepcopy(_DOCUMENT)


def openapi_json() -> str:
    """Return the document as the text checked in at docs/openapi.json."""
    return json.dumps(_DOCUMENT, indent=2, ensure_ascii=False) + "\n"
