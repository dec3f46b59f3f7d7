"""Byte-exact key encoding for URLs and JSON: percent-encoding of every byte but the unreserved ones.

Keys are arbitrary bytes, so the HTTP API never decodes them as text: a key is
percent-encoded (RFC 3986) in the URL path, in query parameters and in JSON
listings. :func:`encode_key` escapes ``/`` too, so a key is always one path
segment, and escapes the dots of the keys ``.`` and ``..``, which clients and
proxies would otherwise treat as relative path segments.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes, unquote_to_bytes

__all__ = ["decode_key", "encode_key", "parse_query"]


def encode_key(key: bytes) -> str:
    """Return ``key`` percent-encoded, safe to put in a URL path segment or a query parameter."""
    text = quote_from_bytes(key, safe="")
    if text in (".", ".."):
        text = text.replace(".", "%2E")
    return text


def decode_key(text: str | bytes) -> bytes:
    """Return the bytes of a percent-encoded key (the inverse of :func:`encode_key`)."""
    return unquote_to_bytes(text)


def parse_query(query_string: bytes) -> dict[str, bytes]:
    """Parse a raw query string into ``{name: raw bytes value}`` without decoding values as text.

    Follows ``application/x-www-form-urlencoded``: ``+`` is a space, so a ``+``
    in a key must be sent as ``%2B``. A repeated parameter keeps its last value.
    """
    out: dict[str, bytes] = {}
    for part in query_string.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        name_text = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace")
        out[name_text] = unquote_to_bytes(value.replace(b"+", b" "))
    return out
