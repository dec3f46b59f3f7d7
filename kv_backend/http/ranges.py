"""Byte ranges of a value for ``GET /v1/keys/{key}`` (RFC 9110 section 14).

One range per request is served, as ``206 Partial Content``; anything the server may ignore under
RFC 9110 (another unit, several ranges, a malformed header, an ``If-Range`` other than the key's
current entity tag) gets the whole value with ``200``, as a server without range support answers.
"""

from __future__ import annotations

import re

__all__ = ["RangeNotSatisfiable", "byte_range"]

# bytes=first-[last] or bytes=-suffix; the unit is case-insensitive, whitespace around the spec is allowed
_ONE_RANGE = re.compile(r"bytes[ \t]*=[ \t]*([0-9]*)-([0-9]*)[ \t]*", re.IGNORECASE | re.ASCII)


class RangeNotSatisfiable(Exception):
    """A well-formed single range that starts at or past the end of the value (answered 416)."""


def byte_range(ranges: list[str], if_range: bool, size: int) -> tuple[int, int] | None:
    """Return ``(first, last)`` (inclusive) of the one range requested of a value of ``size`` bytes.

    ``ranges`` are the lines of the ``Range`` header. None means "answer with the whole value":
    no ``Range``, an ``If-Range`` that failed (``if_range``: it is not the key's current entity tag),
    several lines or ranges, another unit, a malformed spec or an empty value.
    Raises :class:`RangeNotSatisfiable` for a range that selects no byte of the value.
    """
    if len(ranges) != 1 or if_range or size == 0:
        return None
    match = _ONE_RANGE.fullmatch(ranges[0])
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:  # suffix: the last N bytes
        if not last_text:
            return None  # "bytes=-" is no range at all
        suffix = int(last_text)
        if suffix == 0:
            raise RangeNotSatisfiable()
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else None
    if last is not None and last < first:
        return None  # invalid (RFC 9110 14.1.1): ignored
    if first >= size:
        raise RangeNotSatisfiable()
    return first, size - 1 if last is None else min(last, size - 1)
