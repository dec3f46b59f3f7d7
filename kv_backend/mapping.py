"""What the mapping front ends (Store, shelve, dbm) share beyond the engine."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from kv_backend.db_common import _BODY_KEY, _M32, _M40, _PLAIN_PUT, _crc32, _time, _unpack_check
from kv_backend.errors import InvalidArgumentError
from kv_backend.serializers import PickleSerializationError


def update_pairs(other: Any, kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The ``(key, value)`` pairs ``dict.update(other, **kwargs)`` would store, in its order.

    ``other`` is a mapping, an object with ``keys()`` and ``__getitem__``, or an
    iterable of pairs, as ``dict.update`` accepts. The front ends collect them all
    first, so a bad key or value is found before anything is written.
    """
    if isinstance(other, Mapping):
        pairs: list[tuple[Any, Any]] = list(other.items())
    elif hasattr(other, "keys"):
        pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118 - dict.update's protocol
    else:
        try:
            items = iter(other)
        except TypeError:
            raise InvalidArgumentError(
                f"update() takes a mapping or an iterable of (key, value) pairs, not {type(other).__name__}"
            ) from None
        pairs = []
        for i, item in enumerate(items):
            try:
                k, v = item
            except (TypeError, ValueError):  # (dict.update raises one or the other: this is both)
                raise InvalidArgumentError(
                    f"update() takes (key, value) pairs: element #{i} ({_describe(item)}) is not one"
                ) from None
            pairs.append((k, v))
    pairs.extend(kwargs.items())
    return pairs


def _describe(item: object) -> str:
    """``item``'s type, and its length where it has one, for an error message (not its repr)."""
    try:
        return f"{type(item).__name__} of length {len(item)}"  # type: ignore[arg-type]
    except TypeError:
        return type(item).__name__


def refuse_pickling(what: str, path: str | None) -> NoReturn:
    """Raise for ``pickle.dumps``, ``copy.copy`` or ``copy.deepcopy`` of a DB, a shelf or a dbm database.

    Without this, pickle failed on a thread lock deep inside the engine, and a shallow copy
    shared the database (and a shelf's cache) with the original: closing either broke both.
    """
    where = f"open {path!r} again" if path else "open its path again"
    raise PickleSerializationError(
        f"a {what} cannot be pickled or copied (it holds open files and locks); {where} where "
        "another handle is needed (in another process too), or use dict(x.items()) for a copy of its items "
        "(dict(x) raises KeyError if another process deletes a key while it copies)"
    )


def direct_getitem(owner: str) -> Callable[[Any, Any], Any]:
    """:func:`read_direct` as the ``__getitem__`` of the class named ``owner``, with a code object of
    its own: the interpreter specializes each instruction of a code object for the types it meets
    there, and one code object read by Stores and shelves in turn (a program that uses both) would
    be respecialized back and forth; a copy for each class keeps each one's specialized."""
    code = read_direct.__code__.replace(co_name="__getitem__")  # (a new code object)
    fn = types.FunctionType(code, read_direct.__globals__, "__getitem__")
    fn.__qualname__, fn.__doc__ = f"{owner}.__getitem__", read_direct.__doc__
    return fn


def read_direct(self: Any, key: Any) -> Any:
    """``mapping[key]`` for a Store and a shelf (their ``__getitem__``, see :func:`direct_getitem`): the
    engine's point read (DB.get) inlined, the hottest read of every front end, with no Python frame
    but this one.

    It answers only for a str key of an object whose ``_strkeys`` is true (its keys are stored as
    their UTF-8 and it may read them straight from the engine, ``self.db``) and a sound, current,
    unexpired plain PUT of a view no other writer has moved since: the record's CRC, the key's bytes,
    the record's kind and expiry are checked as DB.get checks them. Its value is decoded by
    ``self._floads``; an error from that goes to ``self._unloadable(key, k, data, exc)``, which returns
    the value or raises. Anything else (absent, a record of a batch or of another thread's open
    transaction, damage, a closed store, a view another process moved) goes to ``self._getitem(key)``,
    the full read, which decides and raises exactly as DB.get does.
    """
    if type(key) is str and self._strkeys:
        db = self.db
        try:
            kd, maps = db._view  # the view first, then the check (see DB._current_view)
            current = db._tailw.value == db._seen  # (a closed store raises: the full read says so)
            k = key.encode()
            loc = kd[k]
            off = (loc >> 32) & _M40
            mm = maps[loc >> 72]
            body = mm[off + 4 : off + (loc & _M32)]
            crc, kind, klen, expiry = _unpack_check(mm, off)
        except Exception:  # the full read says what it was
            pass
        else:
            vstart = _BODY_KEY + klen
            if (
                current
                and kind == _PLAIN_PUT
                and _crc32(body) == crc
                and klen == len(k)
                and body[_BODY_KEY:vstart] == k
                and (not expiry or expiry > _time())
            ):
                data = body[vstart:]
                loads = self._floads  # (an attribute read, then called: the interpreter specializes that)
                try:
                    return loads(data)
                except Exception as exc:
                    return self._unloadable(key, k, data, exc)
    return self._getitem(key)
