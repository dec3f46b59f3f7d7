"""``kv_backend.shelve.open``: the stdlib's ``shelve.open`` on the engine.

Same signature, flags, ``writeback`` cache, ``sync()``/``close()``, context
manager and ``ValueError`` after close as :func:`shelve.open`; the object is
a :class:`shelve.Shelf` (and :class:`shelve.DbfilenameShelf`) subclass. The
``serializer=``/``deserializer=`` arguments, ``ShelveError`` and
``reorganize()`` of Python 3.15's shelve are here on every Python.
What changes is underneath: the shelf is a :mod:`kv_backend.dbm` database
(a directory), so many processes can read and write it at once and a
killed process loses no completed write.

Values are pickles: reading one runs code chosen by whoever wrote it, so
every process that can write the directory must be trusted (for data from
untrusted writers use ``kv_backend.Store(path, serializer="json")``).
"""

from __future__ import annotations

import atexit
import builtins
import codecs
import copy
import os
import shelve as _std_shelve
import sys
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, SupportsIndex, TypeVar

from kv_backend import dbm as _kv_dbm
from kv_backend.errors import (
    InvalidKeyError,
    KVError,
    UndecodableKeyError,
    UnencodableKeyError,
)
from kv_backend.lazy import load
from kv_backend.mapping import direct_getitem, refuse_pickling, update_pairs
from kv_backend.serializers import PickleDeserializationError, PickleSerializationError, check_pickle_protocol
from kv_backend.shelve_compat import (
    BsdDbShelf,
    DbfilenameShelf,
    Deserializer,
    Serializer,
    Shelf,
    ShelveError,
    codec,
)

if TYPE_CHECKING:
    from kv_backend.db import DB

__all__ = ["BsdDbShelf", "DbfilenameShelf", "KVShelf", "Shelf", "ShelveError", "open"]

# The shelf classes (the stdlib's, or on Pythons before 3.15 subclasses of them that take a serializer),
# so that code that imports this module in place of ``shelve`` keeps its ``shelve.Shelf(...)`` calls
# and ``isinstance(x, shelve.Shelf)`` checks: see kv_backend.shelve_compat.

_MISSING: Any = object()
_SH = TypeVar("_SH", bound="KVShelf")  # a KVShelf or subclass, as with open(...) as shelf: gives it
_T = TypeVar("_T")
#: What ``shelve`` puts in place of a closed shelf's database (private to it, so typeshed leaves it out).
_ClosedDict: type[Any] = _std_shelve._ClosedDict  # type: ignore[attr-defined]

_ShelfBase = DbfilenameShelf
#: The attributes of a shelf that decide whether its reads may go straight to the engine
#: (see KVShelf._decide_direct_read).
_DIRECT_READ_INPUTS = frozenset({"dict", "writeback", "cache", "keyencoding", "deserializer"})


def _is_utf8(encoding: str) -> bool:
    """Whether ``encoding`` names UTF-8 (any spelling: "utf-8", "UTF8", "u8"...)."""
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _digest(data: bytes) -> bytes:
    """A short fingerprint of a pickle, kept per cached entry instead of the pickle itself."""
    digest: bytes = load("hashlib").blake2b(data, digest_size=16).digest()  # (not imported with the module)
    return digest


#: The open shelves with writeback of this process, by id, so that a forked child can adopt their caches.
_writeback_shelves: weakref.WeakValueDictionary[int, KVShelf] = weakref.WeakValueDictionary()


def _after_fork_in_child() -> None:
    for shelf in list(_writeback_shelves.values()):
        shelf._adopt_cache()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _write_back_at_exit() -> None:
    """At a normal interpreter exit, write back the caches of the writeback shelves still open.

    Left to the garbage collector, a shelf held in a global was written back during the
    interpreter's teardown, when an instance of a class of the script (``__main__``) can no
    longer be pickled: the write-back, one batch, then stored none of the cached changes.
    A shelf whose write-back fails is reported on stderr and its cache dropped (the teardown
    would only fail again, and report it twice); the other shelves are still written back.
    """
    for shelf in list(_writeback_shelves.values()):
        try:
            shelf.sync()  # (nothing to do for a closed shelf)
        except Exception as exc:
            path = getattr(getattr(shelf.dict, "db", None), "path", "?")
            print(f"kv_backend.shelve: the write-back at exit of the shelf {path} failed:", file=sys.stderr)
            load("traceback").print_exception(exc)
            shelf.cache, shelf._fingerprints, shelf._inherited = {}, {}, {}


atexit.register(_write_back_at_exit)


class _ForkedCache(dict):  # type: ignore[type-arg]
    """A forked child's cache: its parent's cached entries (the shelf's ``_inherited``) are in it for
    reads, ``in`` and ``len``, each taken as the child's own (:meth:`KVShelf._claim`) when first read.

    Only the child pays for this: in any other process the cache is a plain dict, and the shelf's
    reads look no further than it."""

    def __init__(self, shelf: KVShelf) -> None:
        super().__init__()
        self._shelf = weakref.ref(shelf)

    def _inherited(self) -> dict[str, Any]:
        shelf = self._shelf()
        return {} if shelf is None else shelf._inherited

    def __missing__(self, key: str) -> Any:
        shelf = self._shelf()
        value = _MISSING if shelf is None else shelf._claim(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._inherited()

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._inherited())


class KVShelf(_ShelfBase):
    """A shelf stored in a :mod:`kv_backend.dbm` database; behaves as :class:`shelve.Shelf`.

    Differences, all on error paths: a non-str key raises a TypeError (the
    stdlib raises AttributeError); an unpicklable value raises
    :class:`~kv_backend.serializers.PickleSerializationError` (a TypeError and a
    ``pickle.PicklingError``) before anything is written or cached; closing a
    read-only shelf with ``writeback=True`` drops the cache instead of failing.

    With a ``serializer`` and a ``deserializer`` (Python 3.15's arguments), values are
    what they make, and what they raise reaches the caller unchanged, as in the stdlib.
    """

    #: The :mod:`kv_backend.dbm` database that holds the shelf (``shelve.Shelf.dict``).
    dict: _kv_dbm.Database
    #: The engine under the shelf while its reads may go straight to it, else None; whether they may,
    #: and the deserializer they call (see :meth:`_decide_direct_read`).
    db: DB | None
    _strkeys: bool
    _floads: Deserializer
    # Set by shelve.Shelf.__init__ (typeshed leaves them out).
    keyencoding: str
    writeback: bool
    cache: builtins.dict[str, Any]  # (``dict`` is the database here)
    _protocol: int
    #: ``serializer(obj, protocol)`` makes the stored bytes of a value, ``deserializer(data)`` reads them.
    serializer: Serializer
    deserializer: Deserializer
    #: Whether the class overrides ``__getitem__``, ``__setitem__`` or ``__delitem__``: then update(),
    #: setdefault(), pop(), popitem() and clear() go through them, as the stdlib shelf's do (see
    #: :meth:`_through_items`).
    _overrides_items: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = ("__getitem__", "__setitem__", "__delitem__")
        cls._overrides_items = any(getattr(cls, n) is not getattr(KVShelf, n) for n in names)

    def __init__(
        self,
        filename: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        flag: str = "c",
        protocol: int | None = None,
        writeback: bool = False,
        keyencoding: str = "utf-8",
        *,
        serializer: Serializer | None = None,
        deserializer: Deserializer | None = None,
    ) -> None:
        # All checked before anything is opened or created.
        dumps, loads = codec(serializer, deserializer)
        #: Values are pickles (the errors of pickle are then the project's), not a caller's format.
        self._pickles = serializer is None
        if protocol is not None and self._pickles:
            # An integer of any type that is one (numpy's...), True too, as pickle takes it, and so the
            # stdlib; refused with pickle's exceptions, at open where the stdlib raises at the first write.
            protocol = check_pickle_protocol(protocol)
        #: With writeback, the fingerprint of each cached entry's pickle as read or stored, so that
        #: sync() writes back only the entries this process changed (see :meth:`sync`).
        self._fingerprints: dict[str, bytes] = {}
        #: In a forked child, the cached entries inherited from the parent and not used since (see
        #: :meth:`_adopt_cache`): served as cached, never written back; empty in any other process.
        self._inherited: dict[str, Any] = {}
        _std_shelve.Shelf.__init__(self, _kv_dbm.open(filename, flag), protocol, writeback, keyencoding)
        self.serializer, self.deserializer = dumps, loads
        if writeback:
            _writeback_shelves[id(self)] = self

    def _adopt_cache(self) -> None:
        """In a forked child: set the inherited cache aside, to be taken as this process's own, as if
        just read, entry by entry as the child uses them (:meth:`_claim`).

        The parent's changes still in it are the parent's to write back (its sync() does).
        Written back by the child too, when it closed its copy of the shelf (at exit, say),
        they undid what other processes had stored meanwhile in entries the child never used.
        Nothing is pickled here: pickling the whole cache at every fork cost the child time in
        proportion to it, and a value whose pickling takes a lock some thread of the parent held
        at the fork hung the child.
        """
        if self._inherited:  # (a child's child: what its parent had not used yet is inherited too)
            self._inherited.update(self.cache)
        else:
            self._inherited = self.cache if type(self.cache) is dict else dict(self.cache)
        self.cache, self._fingerprints = _ForkedCache(self), {}

    def _claim(self, key: Any) -> Any:
        """The inherited entry ``key`` (see :meth:`_adopt_cache`), now cached as if just read, its
        fingerprint taken before the child can change it; ``_MISSING`` if there is none."""
        try:
            value = self._inherited.pop(key, _MISSING)
        except TypeError:  # an unhashable key: the caller's checked path says a key must be a str
            return _MISSING
        if value is not _MISSING:
            self.cache[key] = value
            fingerprint = self._print(value)
            if fingerprint is not None:  # (none: sync() serializes it again and raises, as it would have)
                self._fingerprints[key] = fingerprint
        return value

    def _through_items(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn``, the stdlib's (``MutableMapping``'s) way of a method, through the item methods
        a subclass overrides, as one transaction: atomic across processes, all of it or nothing.

        The fast paths write and read the database directly: a subclass whose ``__setitem__``
        wraps or checks values had update() and setdefault() store them unwrapped and unchecked,
        and pop() and popitem() returned what its ``__getitem__`` would have unwrapped.
        """
        db = self._open_db()
        if db.read_only:
            return fn()  # (nothing to make atomic: a write raises the dbm error)
        saved = (copy.copy(self.cache), dict(self._fingerprints), dict(self._inherited))
        try:
            try:
                with db.transaction():
                    txn, written = db._txn, db._txn.count
                    try:
                        return fn()
                    except Exception as exc:
                        if txn.count != written:
                            raise  # (its writes are discarded)
                        # Nothing written (a missing key, a bad argument): the block ends as it began,
                        # so that a transaction of the caller's that it joined is not spoilt by it.
                        failed = exc
            except KVError as exc:
                if isinstance(exc, _kv_dbm.error):
                    raise
                raise self._dbm_error(exc) from None  # (a failed commit: a full disk...)
            raise failed
        except BaseException:
            self.cache, self._fingerprints, self._inherited = saved  # (none of its writes took effect)
            raise

    def _forget(self, key: str) -> Any:
        """Drop the cached entry ``key`` (an inherited one too); return its object, or ``_MISSING``."""
        self._fingerprints.pop(key, None)
        cached = self.cache.pop(key, _MISSING)
        if self._inherited:
            inherited = self._inherited.pop(key, _MISSING)
            if cached is _MISSING:
                return inherited
        return cached

    def _print(self, value: Any) -> bytes | None:
        """The fingerprint of the stored form this shelf makes of ``value``; None if it cannot make one."""
        try:
            return _digest(self._dumps(value))
        except Exception:
            return None

    def __enter__(self: _SH) -> _SH:
        self._open_db()  # a with block on a closed shelf raises ValueError, as any use after close()
        return self

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        refuse_pickling("kv_backend.shelve shelf", getattr(getattr(self.dict, "db", None), "path", None))

    def _ek(self, key: object) -> bytes:
        """``key`` encoded; a bad key raises its error, but on a closed shelf the closed error first."""
        if isinstance(key, str):
            try:
                return key.encode(self.keyencoding)
            except UnicodeEncodeError as exc:  # the stdlib's error, and the project's
                self._open_db()
                raise UnencodableKeyError(exc.encoding, exc.object, exc.start, exc.end, exc.reason) from None
        self._open_db()
        raise InvalidKeyError(f"shelf keys must be str, not {type(key).__name__}")

    def _dumps(self, value: Any) -> bytes:
        """The stored form of ``value`` (see :meth:`__setitem__`, which does the same inline)."""
        try:
            data = self.serializer(value, self._protocol)
        except Exception as exc:
            raise self._unwritable(value, exc)  # noqa: B904 - it sets the cause
        return data if type(data) is bytes else self._stored_form(data)

    def _unwritable(self, value: Any, exc: Exception) -> Exception:
        """The error for a value the serializer refused (on a closed shelf, the closed error first)."""
        self._open_db()
        if not self._pickles:
            return exc  # a caller's serializer: its error unchanged, as in the stdlib
        err = PickleSerializationError(
            f"cannot pickle a value of type {type(value).__name__}: {exc}; nothing was stored"
        )
        err.__cause__ = exc
        return err

    def _stored_form(self, data: object) -> bytes:
        """What a caller's serializer returned, as bytes (a str as UTF-8, as dbm stores it; any other
        bytes-like object as its bytes)."""
        try:
            return _kv_dbm._value(data)
        except KVError as exc:
            raise type(exc)(
                f"the shelf's serializer must return bytes (or another bytes-like object, or str), "
                f"not {type(data).__name__}; "
                "nothing was stored"
            ) from None

    def _unreadable(self, key: object, exc: Exception) -> Exception:
        """The error for a stored value the deserializer refused."""
        if not self._pickles:
            return exc  # a caller's deserializer: its error unchanged, as in the stdlib
        from kv_backend.structures.layout import redis_record_advice  # (not at import: the error's only)

        try:
            k = key.encode(self.keyencoding) if isinstance(key, str) else bytes(key)  # type: ignore[call-overload]
        except (UnicodeError, TypeError):
            k = b""
        said = redis_record_advice(k, "a shelf", "read its records as values")
        said = said or "it was not written by a shelf"
        err = PickleDeserializationError(f"the value of {key!r} is not a readable pickle ({exc}); {said}")
        err.__cause__ = exc
        return err

    if TYPE_CHECKING:  # declared, for type checkers take the assigned function's looser signature

        def __getitem__(self, key: str) -> Any: ...

    else:
        # shelf[key]: with no cache to serve (writeback off, the cache empty) and UTF-8 keys, the engine's
        # point read inlined, shared with Store (see read_direct); else the full read, _getitem.
        __getitem__ = direct_getitem("KVShelf")

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _DIRECT_READ_INPUTS:
            self._decide_direct_read()

    def _decide_direct_read(self) -> None:
        """Decide again whether ``shelf[key]`` may read straight from the engine (``_strkeys``, for
        :func:`~kv_backend.mapping.read_direct`): only with the database open, no writeback, an
        empty cache (whose entries a read would serve) and UTF-8 keys; called whenever one of the
        attributes that decide it is set (the stdlib's sync() and close() set them too)."""
        # (Read and set through getattr and object.__setattr__, not __dict__, which would give the
        # shelf a dict of its own, whose attributes the interpreter reads the slow, generic way.)
        database, cache = getattr(self, "dict", None), getattr(self, "cache", None)
        encoding, deserializer = getattr(self, "keyencoding", None), getattr(self, "deserializer", None)
        direct = (
            isinstance(database, _kv_dbm.Database)
            and not getattr(self, "writeback", True)
            and type(cache) is builtins.dict
            and not cache
            and deserializer is not None
            and isinstance(encoding, str)
            and _is_utf8(encoding)
        )
        object.__setattr__(self, "db", database.db if direct else None)  # type: ignore[union-attr]
        object.__setattr__(self, "_floads", deserializer)
        object.__setattr__(self, "_strkeys", direct)

    def _unloadable(self, key: str, k: bytes, data: bytes, exc: Exception) -> NoReturn:
        """The error for the stored value of ``key`` the deserializer refused (see read_direct)."""
        raise self._unreadable(key, exc)

    def _getitem(self, key: str) -> Any:
        """The full read of ``shelf[key]``, for any key and any shelf (see __getitem__)."""
        cache = self.cache
        if cache:
            try:
                return cache[key]
            except KeyError:
                pass
            except TypeError:  # an unhashable key: the checked path below says a key must be a str
                pass
        try:  # fast path: straight to the engine
            get = self.dict._get  # (read, then called: the interpreter specializes that, see Store)
            data = get(key.encode(self.keyencoding), _MISSING)
        except (AttributeError, KVError, UnicodeError):  # closed shelf, bad key...: the checked path
            data = self.dict[self._ek(key)]
        if data is _MISSING:
            raise KeyError(key)
        try:
            value = self.deserializer(data)
        except Exception as exc:
            raise self._unreadable(key, exc)  # noqa: B904 - it sets the cause
        if self.writeback:
            cache[key] = value
            # The fingerprint of the pickle this shelf makes of the object, which sync() compares
            # with: the stored one may come from another protocol, or list a set of str in
            # another process's hash order, and would make an entry only read look changed.
            # (If it cannot make one, sync() raises for it, as it would have.)
            self._fingerprints[key] = self._print(value) or _digest(data)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: str, value: Any) -> None:
        try:  # fast path: straight to the engine
            k = key.encode(self.keyencoding)
            put = self.dict._put
        except Exception:  # closed shelf, bad key: the checked path raises
            k = self._ek(key)
            put = self._open_db().put
        try:  # (as _dumps does, inline: the serializer is called once, and a failure raises)
            data = self.serializer(value, self._protocol)
        except Exception as exc:
            raise self._unwritable(value, exc)  # noqa: B904 - it sets the cause
        if type(data) is not bytes:
            data = self._stored_form(data)
        try:
            put(k, data)
        except KVError as exc:
            raise self._dbm_error(exc) from None
        if self.writeback:  # cached only once stored
            self.cache[key] = value
            self._fingerprints[key] = _digest(data)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, written as one atomic batch: a bad key or value stores nothing."""
        try:
            pairs = update_pairs(other, kwargs)
        except KVError:
            self._open_db()  # on a closed shelf the closed error first, whatever the arguments
            raise
        if self._overrides_items and pairs:

            def set_each() -> None:
                for k, v in pairs:
                    self[k] = v

            self._through_items(set_each)
            return
        encoded = [(self._ek(k), self._dumps(v)) for k, v in pairs]
        if not encoded:
            return
        self._write_pairs(encoded)
        if self.writeback:
            self.cache.update(pairs)
            prints = self._fingerprints
            for (k, _), (_, data) in zip(pairs, encoded, strict=True):
                prints[k] = _digest(data)

    def __delitem__(self, key: str) -> None:
        try:
            del self.dict[self._ek(key)]
        except KeyError:
            # With writeback, a key this process has cached is present for it (reads serve it)
            # even if another process deleted it: deleting it succeeds, and drops the cached
            # entry, which sync() would otherwise write back.
            if self._forget(key) is _MISSING:
                raise
        else:
            self._forget(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            if isinstance(self.dict, _ClosedDict):
                self.dict.closed()  # use after close() raises, whatever the key
            return False
        if key in self.cache:
            # With writeback, a cached entry is present for this process until sync(), as for
            # shelf[key], get() and del, even if another process deleted it meanwhile: looking
            # at the database only, ``key in shelf`` was False while ``shelf[key]`` served it.
            return True
        try:
            k = key.encode(self.keyencoding)
        except UnicodeEncodeError:
            k = self._ek(key)  # raises the project's error
        return k in self.dict

    def __iter__(self) -> Iterator[str]:
        """The keys as they were when the loop started, as the stdlib shelf's (dbm ``keys()`` is a list).

        A live walk met every key the loop body added, so ``for k in shelf: shelf[k + "x"] = v``
        never ended (it wrote keys until one was too long).
        """
        enc = self.keyencoding
        for k in self.dict.keys():  # noqa: SIM118 - a snapshot, not a live walk
            yield _decode_key(k, enc)

    def clear(self) -> None:
        """Remove every entry at once (one atomic batch), without reading or unpickling any value; the
        records of Redis keys (of ``kvb serve`` on the same directory) are left whole."""
        if self._overrides_items:
            from kv_backend.structures.layout import own_keys  # (not at import: this path's only)

            def delete_each() -> None:  # (the records of Redis keys are left whole, as dbm's clear() does)
                enc = self.keyencoding
                keys = dict.fromkeys(_decode_key(k, enc) for k in own_keys(self._open_db()))
                # With writeback, the entries another process deleted that this one still has cached,
                # present for it (see __contains__): deleted too, as the direct path drops the cache.
                keys.update(dict.fromkeys([*self.cache, *self._inherited]))
                for key in keys:
                    del self[key]

            self._through_items(delete_each)
            return
        self.dict.clear()
        self.cache.clear()
        self._fingerprints.clear()
        self._inherited = {}

    def items(self) -> _kv_dbm.LiveItemsView[str, Any]:
        """A view of the ``(key, value)`` pairs; keys other processes delete meanwhile are skipped."""
        return _kv_dbm.LiveItemsView(self)

    def values(self) -> _kv_dbm.LiveValuesView[Any]:
        """A view of the values; keys other processes delete meanwhile are skipped."""
        return _kv_dbm.LiveValuesView(self)

    def _dbm_error(self, exc: KVError) -> Exception:
        """The error to raise for the engine's ``exc``: :mod:`kv_backend.dbm`'s, or, where the shelf was
        closed during the call (by another thread, or by a value's pickling), the ValueError of every
        use of a closed shelf (the closed shelf has no database left to convert it: AttributeError)."""
        d = self.dict
        if isinstance(d, _ClosedDict):
            try:
                d.closed()
            except ValueError as closed:
                return closed
        converted: Exception = d._convert(exc)
        return converted

    def _open_db(self) -> Any:
        """The engine under the shelf; ValueError if the shelf is closed (as every stdlib shelf op)."""
        d = self.dict
        if isinstance(d, _ClosedDict):
            d.closed()
        return d.db

    def _take(self, k: bytes, decode_key: bool) -> tuple[Any, Any] | None:
        """Atomically remove ``k``; return ``(key, value)`` (the key decoded if asked), None if absent.

        The key and value are decoded under the write lock before the delete is
        written, so a pair that cannot be decoded raises and stays stored.
        """
        found: list[tuple[Any, Any]] = []
        enc = self.keyencoding

        def take(old: bytes | None) -> None:
            if old is not None:
                key = _decode_key(k, enc) if decode_key else None
                try:
                    value = self.deserializer(old)
                except Exception as exc:
                    raise self._unreadable(k, exc)  # noqa: B904 - it sets the cause
                found.append((key, value))
            return None  # delete the key (a no-op if it is absent)

        try:
            self._open_db().update(k, take)
        except KVError as exc:
            raise self._dbm_error(exc) from None
        return found[0] if found else None

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value, or ``default`` if it is absent (atomic across processes).

        The mixin's version read the key, then deleted it: when another process
        removed it in between, the delete raised KeyError even with a default,
        and both processes had the value.
        """
        if self._overrides_items or self._read_only():  # (read-only: a present key raises the dbm error)
            return self._through_items(
                lambda: (
                    MutableMapping.pop(self, key)
                    if default is _MISSING
                    else MutableMapping.pop(self, key, default)
                )
            )
        k = self._ek(key)
        try:
            found = self._take(k, False)
        except _kv_dbm.KeySizeError:
            found = None  # no key of that size can be stored, so it is absent
        cached = self._forget(key)
        if cached is not _MISSING:
            return cached  # with writeback, the object this process has been using
        if found is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return found[1]

    def popitem(self) -> tuple[str, Any]:
        """Remove and return a ``(key, value)`` pair, the smallest key first; KeyError if empty.

        Atomic across processes: the mixin's version raised KeyError for a
        non-empty shelf when another process took the key it had picked.
        """
        from kv_backend.structures.layout import pop_first  # (not at import: popitem's only)

        if self._overrides_items or self._read_only():  # (read-only: KeyError if empty, else the dbm error)

            def through_items(k: bytes) -> tuple[str, Any]:
                key = _decode_key(k, self.keyencoding)
                value = self[key]  # as MutableMapping.popitem, but from the smallest key of the shelf's own
                del self[key]
                return key, value

            return self._through_items(lambda: pop_first(self._open_db(), through_items, "shelf"))

        key, value = pop_first(self._open_db(), lambda k: self._take(k, True), "shelf")
        cached = self._forget(key)
        return key, value if cached is _MISSING else cached

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, storing ``default`` first if it is absent (atomic across processes).

        With the mixin's version two processes could both store their default,
        each returning its own while only the last one stayed stored.
        """
        if self._overrides_items:
            return self._through_items(lambda: MutableMapping.setdefault(self, key, default))
        try:
            return self[key]
        except KeyError:
            pass
        if self._read_only():
            self[key] = default  # raises the dbm error
        k, data = self._ek(key), self._dumps(default)
        while True:
            try:
                stored = self._open_db().put_if_absent(k, data)
            except KVError as exc:
                raise self._dbm_error(exc) from None
            if stored:
                if self.writeback:
                    self.cache[key] = default
                    self._fingerprints[key] = _digest(data)
                return default
            try:
                return self[key]  # another process stored it first: its value
            except KeyError:
                continue  # and it is already gone again

    def _write_pairs(self, encoded: list[tuple[bytes, bytes]]) -> None:
        """Write every ``(key, data)`` pair at once; a failure (a full disk...) is kv_backend.dbm's error.

        The write-back of sync() and close() let the engine's StorageError through, which
        ``except kv_backend.dbm.error:`` (or the stdlib's ``except dbm.error:``) missed.
        """
        d = self.dict
        if isinstance(d, _ClosedDict):
            d.closed()
        d._write_pairs(encoded)

    def _read_only(self) -> bool:
        db = getattr(self.dict, "db", None)
        return db is not None and db.read_only

    def sync(self) -> None:
        """Write back (all at once) the cached entries this process changed, then flush to stable storage
        what this shelf wrote (nothing if it wrote nothing: see :meth:`kv_backend.dbm.Database.sync`).

        An entry whose pickle is the one read or stored is not written again: the stdlib writes
        back every cached entry, so one this process only read replaced what another process
        wrote to it meanwhile, and brought back a key another process had deleted.
        """
        if self.writeback and self.cache:
            if self._read_only():
                self.cache = {}  # nothing can be written back; cached objects are just dropped
            else:
                seen = self._fingerprints
                encoded = []
                for k, v in self.cache.items():
                    data = self._dumps(v)
                    if seen.get(k) != _digest(data):
                        encoded.append((self._ek(k), data))
                if encoded:
                    self._write_pairs(encoded)  # on failure the cache stays, for another sync()
                self.cache = {}
            self._fingerprints = {}
        self._inherited = {}  # (the parent's to write back, as sync() empties the cache)
        if hasattr(self.dict, "sync"):
            self.dict.sync()

    def reorganize(self) -> None:
        """Write back the cache, then reclaim the space of overwritten and deleted values (a merge).

        Python 3.15's ``Shelf.reorganize()``; the database's :meth:`~kv_backend.dbm.Database.reorganize`.
        """
        self._open_db()
        self.sync()
        self.dict.reorganize()

    def close(self) -> None:
        """Write back the cache, then close the database; later use raises ValueError."""
        d = self.dict
        if d is None or isinstance(d, _ClosedDict):
            return
        try:
            self.sync()
        finally:
            try:
                d.close()
            finally:
                self.dict = _ClosedDict()
                # Emptied by sync(), unless its write-back raised: reads on the closed shelf must
                # not go on serving it (and nothing can write it back now).
                self.cache = {}
                self._fingerprints = {}
                self._inherited = {}


def _decode_key(k: bytes, encoding: str) -> str:
    """A stored key as the shelf's ``str``; one that is not text raises :class:`UndecodableKeyError`."""
    try:
        return k.decode(encoding)
    except UnicodeDecodeError as exc:  # the stdlib's error, and the project's, saying where it came from
        raise UndecodableKeyError(exc.encoding, exc.object, exc.start, exc.end, exc.reason) from None


def open(
    filename: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    flag: str = "c",
    protocol: int | None = None,
    writeback: bool = False,
    *,
    serializer: Serializer | None = None,
    deserializer: Deserializer | None = None,
) -> KVShelf:
    """Open a persistent dictionary at ``filename`` (a directory), as :func:`shelve.open` does.

    ``flag`` is ``"c"`` (default: create if needed), ``"r"``, ``"w"`` or
    ``"n"``; ``protocol`` is the pickle protocol; ``writeback=True`` caches
    every entry read and writes the cache back on :meth:`~shelve.Shelf.sync`
    and :meth:`~shelve.Shelf.close`. ``serializer(obj, protocol)`` and
    ``deserializer(data)``, given together (else :class:`ShelveError`), replace
    ``pickle.dumps`` and ``pickle.loads``, as in Python 3.15.
    """
    return KVShelf(filename, flag, protocol, writeback, serializer=serializer, deserializer=deserializer)
