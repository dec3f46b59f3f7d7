"""The shelf classes of :mod:`kv_backend.shelve`, with the ``serializer=``/``deserializer=`` arguments,
``ShelveError`` and ``Shelf.reorganize()`` of Python 3.15's :mod:`shelve` on every Python.

Where the interpreter's own :mod:`shelve` has them, its classes are the ones used (the same objects,
so ``isinstance`` checks against either module agree). On older Pythons, ``Shelf``,
``BsdDbShelf`` and ``DbfilenameShelf`` here are subclasses of the stdlib's that add them; a shelf
they make is still an instance of the stdlib's classes.
"""

from __future__ import annotations

import builtins
import os
import pickle
import shelve as _std_shelve
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from kv_backend.errors import ConfigurationError

__all__ = ["BsdDbShelf", "DbfilenameShelf", "Deserializer", "Serializer", "Shelf", "ShelveError", "codec"]

#: ``serializer(obj, protocol)`` gives the stored form of a value (bytes-like; ``protocol`` may be ignored).
Serializer = Callable[[Any, int], Any]
#: ``deserializer(data)`` gives back the value of stored ``bytes``.
Deserializer = Callable[[bytes], Any]

#: True where the interpreter's shelve takes serializer= and deserializer= itself (Python 3.15+).
NATIVE: bool = hasattr(_std_shelve, "ShelveError")

if TYPE_CHECKING or not NATIVE:

    class ShelveError(ConfigurationError):
        """A shelf given a ``serializer`` without a ``deserializer``, or the other way round.

        Python 3.15's ``shelve.ShelveError`` (there, this is that class itself).
        """

else:  # the stdlib's, so that ``except shelve.ShelveError`` catches it whichever module raised it
    ShelveError = _std_shelve.ShelveError


def codec(
    serializer: Serializer | None, deserializer: Deserializer | None
) -> tuple[Serializer, Deserializer]:
    """The ``(serializer, deserializer)`` a shelf uses: pickle's ``dumps``/``loads`` if neither is given.

    One without the other raises :class:`ShelveError` (values written one way would be read another).
    """
    if serializer is None and deserializer is None:
        return pickle.dumps, pickle.loads
    if serializer is None or deserializer is None:
        given, missing = (
            ("deserializer", "serializer") if serializer is None else ("serializer", "deserializer")
        )
        raise ShelveError(
            f"a shelf given a {given} needs a {missing} too: pass both (serializer(obj, protocol) -> bytes "
            "and deserializer(bytes) -> obj), or neither for pickle"
        )
    if not callable(serializer) or not callable(deserializer):
        raise ShelveError(
            "serializer and deserializer must be callables (serializer(obj, protocol) -> bytes, "
            f"deserializer(bytes) -> obj), not {type(serializer).__name__} and {type(deserializer).__name__}"
        )
    return serializer, deserializer


if TYPE_CHECKING or not NATIVE:

    class Shelf(_std_shelve.Shelf):  # type: ignore[type-arg]
        """The stdlib's ``Shelf`` with Python 3.15's ``serializer``/``deserializer`` and ``reorganize()``."""

        serializer: Serializer
        deserializer: Deserializer
        dict: Any  # the database (typeshed leaves these out)
        cache: builtins.dict[str, Any]
        keyencoding: str
        writeback: bool
        _protocol: int

        def __init__(
            self,
            dict: MutableMapping[bytes, bytes],
            protocol: int | None = None,
            writeback: bool = False,
            keyencoding: str = "utf-8",
            *,
            serializer: Serializer | None = None,
            deserializer: Deserializer | None = None,
        ) -> None:
            # Checked before anything is set: a refused shelf then leaves ``dict`` open for its caller.
            dumps, loads = codec(serializer, deserializer)
            _std_shelve.Shelf.__init__(self, dict, protocol, writeback, keyencoding)
            self.serializer, self.deserializer = dumps, loads

        def __getitem__(self, key: str) -> Any:
            cache = self.cache
            if key in cache:
                return cache[key]
            value = self.deserializer(self.dict[key.encode(self.keyencoding)])
            if self.writeback:
                cache[key] = value
            return value

        def __setitem__(self, key: str, value: Any) -> None:
            if self.writeback:
                self.cache[key] = value
            self.dict[key.encode(self.keyencoding)] = self.serializer(value, self._protocol)

        def reorganize(self) -> None:
            """Write back the cache, then let the database reclaim unused space, where it can."""
            self.sync()
            reorganize = getattr(self.dict, "reorganize", None)
            if reorganize is not None:
                reorganize()

    class BsdDbShelf(Shelf, _std_shelve.BsdDbShelf):  # type: ignore[type-arg]
        """The stdlib's ``BsdDbShelf``, its values read with the shelf's ``deserializer``."""

        def _entry(self, pair: tuple[bytes, bytes]) -> tuple[str, Any]:
            key, data = pair
            return key.decode(self.keyencoding), self.deserializer(data)

        def set_location(self, key: Any) -> tuple[str, Any]:
            return self._entry(self.dict.set_location(key))

        def next(self) -> tuple[str, Any]:
            return self._entry(next(self.dict))

        def previous(self) -> tuple[str, Any]:
            return self._entry(self.dict.previous())

        def first(self) -> tuple[str, Any]:
            return self._entry(self.dict.first())

        def last(self) -> tuple[str, Any]:
            return self._entry(self.dict.last())

    class DbfilenameShelf(Shelf, _std_shelve.DbfilenameShelf):  # type: ignore[type-arg]
        """The stdlib's ``DbfilenameShelf`` (on the interpreter's :mod:`dbm`) with a ``serializer``."""

        def __init__(
            self,
            filename: str | bytes | os.PathLike[str] | os.PathLike[bytes],
            flag: str = "c",
            protocol: int | None = None,
            writeback: bool = False,
            *,
            serializer: Serializer | None = None,
            deserializer: Deserializer | None = None,
        ) -> None:
            import dbm

            codec(serializer, deserializer)  # refused before a database is opened or created
            db: Any = dbm.open(filename, flag)  # type: ignore[arg-type]  # noqa: SIM115 - closed by the shelf
            Shelf.__init__(self, db, protocol, writeback, serializer=serializer, deserializer=deserializer)

else:
    Shelf = _std_shelve.Shelf
    BsdDbShelf = _std_shelve.BsdDbShelf
    DbfilenameShelf = _std_shelve.DbfilenameShelf
