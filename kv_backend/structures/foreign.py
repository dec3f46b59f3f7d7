"""Commands meeting a key's metadata record that another front end on the directory wrote.

A Store's key ``"\\x00mbar"`` (a ``kvb http`` PUT of ``%00mbar``) is, to this layout, the metadata
record of the Redis key ``bar``, but its value is none this layout writes: empty, or a type tag
without the count that follows it. Reading it failed deep inside a command (an IndexError, a
struct.error). :func:`guard_methods` makes every public method of a class say so instead, as a
:class:`~kv_backend.structures.errors.ForeignRecordError` naming the record, on the error path only:
a call that raises nothing costs one more function call (about 0.1 µs), so the hottest commands
(``get``, ``set``, ``hget``, ``incrby``, ``hset``, ``sadd``, ``lpush``, ``rpush``, ``zadd``...) are left
out and check for it in their own bodies (:func:`foreign_error`), which costs nothing until they fail.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kv_backend.db import DB
from kv_backend.errors import KVError
from kv_backend.structures.errors import ForeignRecordError
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


def _candidates(args: tuple[Any, ...]) -> Iterator[Any]:
    """The positional arguments of a call and the items of those that are lists, tuples or sets (the
    names a method takes as one list, as redis-py takes them: ``mget(["a", "b"])``)."""
    for arg in args:
        if isinstance(arg, (list, tuple, set, frozenset)):
            yield from arg
        else:
            yield arg


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except KVError:
            raise
        except Exception:
            name = first_foreign(self.db, _candidates(args))
            if name is None:
                raise
            raise ForeignRecordError(name) from None

    return call


def guard_methods(cls: type, checked_inline: frozenset[str]) -> None:
    """Wrap each public method of ``cls`` (those of its bases too) but ``checked_inline`` with
    :func:`_guarded`; generator methods are left as they are (they run after the call returns)."""
    for name in dir(cls):
        if name.startswith("_") or name in checked_inline:
            continue
        attr = inspect.getattr_static(cls, name)
        if inspect.isfunction(attr) and not inspect.isgeneratorfunction(attr):
            setattr(cls, name, _guarded(attr))


def foreign_error(db: DB, name: Any) -> BaseException:
    """In an ``except`` block, the error to raise for a command on ``name`` that failed reading its
    records: a ForeignRecordError if another front end wrote its metadata record, else the one
    being handled (for the hottest commands, which check this in their own bodies)."""
    key = first_foreign(db, [name])
    if key is not None:
        return ForeignRecordError(key)
    handled = sys.exc_info()[1]
    assert handled is not None, "foreign_error is called in an except block"
    return handled
