"""What the mapping front ends (Store, shelve, dbm) share beyond the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
        pairs = [(k, v) for k, v in other]
    pairs.extend(kwargs.items())
    return pairs
