"""Commands meeting a key's metadata record that another front end on the directory wrote.

A Store's key ``"\\x00mbar"`` (a ``kvb http`` PUT of ``%00mbar``) is, to this layout, the metadata
record of the Redis key ``bar``, but its value is none this layout writes: empty, or a type tag
without the count that follows it. Reading it failed deep inside a command (an IndexError, a
struct.error). :func:`guard_methods` makes every public method of a class say so instead, as a
:class:`~kv_backend.structures.errors.ForeignRecordError` naming the record, on the error path only:
a call that raises nothing costs one more function call (0.02-0.03 µs), so the hottest commands
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


def _blame(self: Any, args: tuple[Any, ...]) -> None:
    """In a guarded method's ``except`` block: raise ForeignRecordError if one of the names among its
    positional arguments ``args`` has a metadata record another front end wrote."""
    name = first_foreign(self.db, _candidates(args))
    if name is not None:
        raise ForeignRecordError(name) from None


_WRAPPER = """
def {name}({params}):
    try:
        return _guard_method({call})
    except _guard_KVError:
        raise
    except Exception:
        _guard_blame({first}, ({positional}))
        raise
"""


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` in a wrapper that raises ForeignRecordError for it (see :func:`_blame`).

    The wrapper has ``method``'s own parameters (its defaults the same objects), so a call passes them
    on as they are: a ``(*args, **kwargs)`` wrapper packed them again, 0.15 µs a call where this costs
    0.02 µs."""
    params, call, positional, namespace = [], [], [], {}
    last_kind = None
    for i, p in enumerate(inspect.signature(method).parameters.values()):
        if last_kind == p.POSITIONAL_ONLY and p.kind != p.POSITIONAL_ONLY:
            params.append("/")
        if p.kind == p.KEYWORD_ONLY and last_kind not in (p.KEYWORD_ONLY, p.VAR_POSITIONAL):
            params.append("*")
        last_kind = p.kind
        text = p.name
        if p.default is not p.empty:
            namespace[f"_guard_default{i}"] = p.default
            text += f"=_guard_default{i}"
        if p.kind == p.VAR_POSITIONAL:
            params.append("*" + p.name)
            call.append("*" + p.name)
            positional.append("*" + p.name)
        elif p.kind == p.VAR_KEYWORD:
            params.append("**" + p.name)
            call.append("**" + p.name)
        elif p.kind == p.KEYWORD_ONLY:
            params.append(text)
            call.append(f"{p.name}={p.name}")
        else:
            params.append(text)
            call.append(p.name)
            positional.append(p.name)
    if last_kind == inspect.Parameter.POSITIONAL_ONLY:
        params.append("/")
    first = positional.pop(0)  # self
    namespace.update(_guard_method=method, _guard_KVError=KVError, _guard_blame=_blame)
    source = _WRAPPER.format(
        name=method.__name__,
        params=", ".join(params),
        call=", ".join(call),
        first=first,
        positional="".join(f"{a}, " for a in positional),
    )
    exec(source, namespace)  # (source built above from the method's own signature alone)
    return functools.wraps(method)(namespace[method.__name__])


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
