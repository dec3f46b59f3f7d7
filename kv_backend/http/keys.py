"""Byte-exact key encoding for URLs and JSON: percent-encoding of every byte but the unreserved ones.

Keys are arbitrary bytes, so the HTTP API never decodes them as text: a key is
percent-encoded (RFC 3986) in the URL path, in query parameters and in JSON
listings. :func:`encode_key` escapes ``/`` too, so a key is always one path
segment, and escapes the dots of the keys ``.`` and ``..``, which clients and
proxies would otherwise treat as relative path segments.
"""

from __future__ import annotations

import re
from urllib.parse import quote_from_bytes, unquote_to_bytes

from kv_backend.errors import InvalidKeyError, KVError

__all__ = ["PercentEncodingError", "RepeatedParameterError", "decode_key", "encode_key", "parse_query"]

# A "%" not followed by two hex digits: RFC 3986 has no meaning for it.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class PercentEncodingError(KVError, ValueError):
    """Text with a ``%`` that does not start a ``%XX`` escape (a literal ``%`` travels as ``%25``)."""


class RepeatedParameterError(KVError, ValueError):
    """A query string that gives one parameter more than once (``?ttl=5&ttl=100``)."""


def _unquote(raw: bytes, what: str) -> bytes:
    """Percent-decode ``raw``, refusing a stray ``%`` rather than guessing what it meant."""
    if b"%" in raw and _BAD_ESCAPE.search(raw):
        shown = raw[:80].decode("ascii", "backslashreplace")
        raise PercentEncodingError(
            f"{what} {shown!r} has a '%' that is not followed by two hex digits; "
            "percent-encode a literal '%' as %25 (kv_backend.http.encode_key does)"
        )
    return unquote_to_bytes(raw)


def encode_key(key: bytes | bytearray | memoryview) -> str:
    """Return ``key`` percent-encoded, safe to put in a URL path segment or a query parameter.

    ``key`` is the key's bytes (a bytes-like object); anything else raises InvalidKeyError (a TypeError).
    """
    if not isinstance(key, (bytes, bytearray, memoryview)):
        hint = " (encode_key(key.encode()) for its UTF-8 bytes)" if isinstance(key, str) else ""
        raise InvalidKeyError(f"encode_key takes a key's bytes, not {type(key).__name__}{hint}")
    text = quote_from_bytes(bytes(key), safe="")
    if text in (".", ".."):
        text = text.replace(".", "%2E")
    return text


def decode_key(text: str | bytes) -> bytes:
    """Return the bytes of a percent-encoded key (the inverse of :func:`encode_key`).

    Raises :class:`PercentEncodingError` for a ``%`` that starts no ``%XX`` escape, and
    InvalidKeyError (a TypeError) for anything but text or bytes.
    """
    if not isinstance(text, (str, bytes)):
        raise InvalidKeyError(f"decode_key takes a key's percent-encoded text, not {type(text).__name__}")
    return _unquote(text.encode("utf-8") if isinstance(text, str) else text, "the key")


def parse_query(query_string: bytes) -> dict[str, bytes]:
    """Parse a raw query string into ``{name: raw bytes value}`` without decoding values as text.

    Follows ``application/x-www-form-urlencoded``: ``+`` is a space, so a ``+``
    in a key must be sent as ``%2B``. Raises :class:`PercentEncodingError` for a
    ``%`` that starts no ``%XX`` escape, and :class:`RepeatedParameterError` for a
    parameter given more than once (compared once decoded, so ``ttl`` and ``%74tl``
    are one name): servers disagree on which of ``?ttl=5&ttl=100`` counts (the
    first, the last, a list), so keeping either would be a guess at what the
    client meant, and a proxy or client that appends a parameter would silently
    change the request.
    """
    out: dict[str, bytes] = {}
    seen: set[bytes] = set()  # bytes: two names that are not UTF-8 differ, though both read '\ufffd'
    for part in query_string.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        name_bytes = _unquote(name.replace(b"+", b" "), "the query parameter name")
        name_text = name_bytes.decode("utf-8", "replace")
        if name_bytes in seen:
            raise RepeatedParameterError(
                f"the query parameter {name_text[:40]!r} is given more than once; give each parameter once"
            )
        seen.add(name_bytes)
        out[name_text] = _unquote(value.replace(b"+", b" "), f"the query parameter {name_text}")
    return out
