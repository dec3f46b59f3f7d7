"""What the mapping front ends (Store, shelve, dbm) share beyond the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

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
