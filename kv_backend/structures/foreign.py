"""Finding a key's metadata record that another front end on the directory wrote.

A Store's key ``"\\x00mbar"`` (a ``kvb http`` PUT of ``%00mbar``) is, to this layout, the metadata
record of the Redis key ``bar``. The commands check it where they read it (``Keyspace._record``,
``_meta``, ``_count``...) and raise ForeignRecordError; :func:`first_foreign` finds such a record
among the keys of a command that failed otherwise (``kvb serve``'s reply to an unexpected error).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kv_backend.db import DB
from kv_backend.structures.layout import META, _b, foreign_meta


def first_foreign(db: DB, names: Iterable[Any]) -> bytes | None:
    """The first of ``names`` (bytes, str or numbers; anything else is passed over) whose metadata record
    another front end wrote (see :func:`~kv_backend.structures.layout.foreign_meta`), or None."""
    for name in names:
        try:
            key = _b(name)
            meta = db.get(META + key)
        except Exception:  # not a name (a mapping, None...), a name too long for the engine
            continue
        if meta is not None and foreign_meta(meta):
            return key
    return None
