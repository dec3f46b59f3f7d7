""":class:`Store`: a persistent ``dict`` of Python values on top of the engine.

A ``Store`` is a :class:`~collections.abc.MutableMapping` from ``str`` keys
(or ``bytes`` keys with ``key_type=bytes``) to any value its serializer can
encode. Every write goes straight to the engine's log, so it survives a
SIGKILL the moment the call returns and is seen by every other process that
has the same directory open. It adds what a plain dict cannot: time to live,
atomic batches, ordered prefix scans and atomic read-modify-write.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, NoReturn, SupportsIndex, TypeVar, overload

from kv_backend.db import DB
from kv_backend.db_common import (
    _check_flag,
    _check_key,
    _expiry,
)
from kv_backend.db_write import SpentOps
from kv_backend.errors import (
    ConfigurationError,
    DatabaseClosedError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueError,
    KeyEncodingError,
    KeyTooLargeError,
    ReadOnlyError,
    ValueTooLargeError,
)
from kv_backend.lazy import load
from kv_backend.mapping import direct_getitem, update_pairs
from kv_backend.record import MAX_KEY_SIZE
from kv_backend.serializers import (
    DeserializationError,
    PickleSerializationError,
    PickleSerializer,
    SerializationError,
    get_serializer,
)

__all__ = ["KeyEncodingError", "Store", "StoreBatch"]

K = TypeVar("K", str, bytes)
_ENGINE_OPTIONS = frozenset({"sync", "max_file_size", "read_only", "auto_merge"})  # DB's keyword options
T = TypeVar("T")
_S = TypeVar("_S", bound="Store[Any]")  # a Store or subclass, as with Store(...) as s: gives it
_MISSING: Any = object()
_pickle_dumps = pickle.dumps
#: A bad argument (key, value, ttl, option): after close() a call raises the closed error instead.
_ARGUMENT_ERRORS = (
    InvalidKeyError,
    InvalidValueError,
    KeyEncodingError,
    KeyTooLargeError,
    ValueTooLargeError,
    ConfigurationError,  # (and InvalidArgumentError): a ttl or an option
    SerializationError,
)


def _encode_str(key: object) -> bytes:
    if isinstance(key, str):
        try:
            return key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise KeyEncodingError(
                f"key {key!r} cannot be encoded as UTF-8 ({exc.reason}); remove lone surrogates"
            ) from None
    raise InvalidKeyError(
        f"this Store has str keys, not {type(key).__name__}; pass a str, "
        "or open the store with key_type=bytes to use bytes keys"
    )


def _decode_str(key: bytes) -> str:
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
        from kv_backend.structures.layout import redis_record_advice  # (not at import: the error's only)

        raise KeyEncodingError(
            f"the stored key {key[:60]!r} is not UTF-8 text: "
            + (
                redis_record_advice(key, "a Store with str keys")
                or "it was written through another interface; open the store with key_type=bytes to read it"
            )
        ) from None


def _reraise_loading(k: bytes, exc: DeserializationError) -> NoReturn:
    """Raise ``exc``, the serializer's error for the stored value of ``k``; for a record of a Redis key
    (whose key is text, as a string's ``"\\x00mname"``, so a Store lists it) an error of its type
    saying what the record is instead (on the error path only: reads that succeed pay nothing)."""
    load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
    from kv_backend.structures.layout import redis_record_advice  # (not at import: the error's only)

    advice = redis_record_advice(k, "a Store", "read its records as values")
    if not advice:
        raise exc
    raise type(exc)(f"the stored value of key {k[:60]!r} is not a value of this Store: {advice}") from exc


def _encode_bytes(key: object) -> bytes:
    if type(key) is bytes:
        return key
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise InvalidKeyError(
        f"this Store has bytes keys (key_type=bytes), not {type(key).__name__}; "
        "encode the key, or open the store with key_type=str"
    )


def _decode_bytes(key: bytes) -> bytes:
    return key


def _decode_none(key: bytes) -> None:
    """Skip decoding a key the caller already has (``Store.pop``)."""
    return None


def _key_list(keys: object, method: str) -> Iterator[Any]:
    """An iterator over ``keys``; one str or bytes key, or an object that is not iterable, is refused.

    One key would be taken as its characters: ``store.delete_many("user:1")`` deleted the keys "u",
    "s", "e", "r", ":" and "1". And ``get_many(None)`` raised a bare "'NoneType' object is not iterable".
    """
    if isinstance(keys, (str, bytes, bytearray, memoryview)):
        raise InvalidArgumentError(
            f"{method}() takes an iterable of keys, not a single {type(keys).__name__} "
            f"(which would be taken as its characters); pass [key]"
        )
    try:
        it: Iterator[Any] = iter(keys)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidArgumentError(
            f"{method}() takes an iterable of keys (a list, a set...), not {type(keys).__name__}"
        ) from None
    return it


class Store(MutableMapping[K, Any], Generic[K]):
    """A persistent, multi-process ``dict`` stored in the directory ``path``.

    ``serializer`` is ``"pickle"`` (default; any picklable value, but reading
    runs code chosen by the writer, so trust every writer of the directory),
    ``"json"`` (plain data only, safe with untrusted writers), ``"raw"``
    (bytes values) or an object with ``dumps``/``loads``. ``key_type`` is
    ``str`` (UTF-8 encoded; the default) or ``bytes``: keys of the other type
    are refused with a TypeError, so a key always comes back as the type it
    went in. Other keyword arguments go to :class:`kv_backend.DB` (``sync``,
    ``max_file_size``, ``read_only``, ``auto_merge``).

    Iteration is in key order (UTF-8 byte order, which for str keys is code
    point order). Values are copies: mutate a value, then store it again.
    """

    key_type: type[K]
    #: The key as stored (refusing a key of the other type) and back.
    _ek: Callable[[object], bytes]
    _dk: Callable[[bytes], K]

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        serializer: str | Any = "pickle",
        *,
        key_type: type[K] = str,  # type: ignore[assignment]
        **engine_options: Any,
    ) -> None:
        # (mypy checks this body once for each type K may be, and does not narrow K by these tests)
        if key_type is str:
            self._ek, self._dk = _encode_str, _decode_str  # type: ignore[assignment]
        elif key_type is bytes:
            self._ek, self._dk = _encode_bytes, _decode_bytes  # type: ignore[assignment]
        else:
            raise ConfigurationError(f"key_type must be str or bytes, not {key_type!r}")
        self.key_type = key_type
        self.serializer = get_serializer(serializer)
        self._dumps = self.serializer.dumps
        self._loads = self.serializer.loads
        # Hot paths call the unchecked functions and redo the call checked only when they fail.
        self._fdumps = getattr(self.serializer, "fast_dumps", self._dumps)
        self._floads = getattr(self.serializer, "fast_loads", self._loads)
        self._strkeys = key_type is str
        self._proto = self.serializer.protocol if isinstance(self.serializer, PickleSerializer) else None
        unknown = sorted(set(engine_options) - _ENGINE_OPTIONS)
        if unknown:  # a misspelt option: say which ones exist rather than DB's TypeError
            raise ConfigurationError(
                f"unknown Store option {unknown[0]!r}: the options are serializer, key_type and "
                f"the engine's {', '.join(sorted(_ENGINE_OPTIONS))}"
            )
        self.db = DB(path, **engine_options)
        self.path = self.db.path
        self._engine_options = dict(engine_options)
        self._get = self.db.get
        self._put = self.db.put

    def _key(self, key: object) -> bytes:
        """``key`` as stored; a key of the wrong type, or one no store can hold, raises its error,
        but after close() the closed error first, as every call on a closed store does."""
        try:
            k = self._ek(key)
        except (InvalidKeyError, KeyEncodingError):
            self.db._check_open()
            raise
        if not 0 < len(k) <= MAX_KEY_SIZE:
            self.db._check_open()  # (the engine checks the key's size first)
        return k

    def _dumped(self, value: Any) -> bytes:
        """``value`` serialized; one that cannot be raises SerializationError, but after close() the
        closed error first, as every call on a closed store does."""
        try:
            data: bytes = self._dumps(value)
        except SerializationError:
            self.db._check_open()
            raise
        return data

    # ------------------------------------------------------------- reading

    if TYPE_CHECKING:  # declared, for type checkers take the assigned function's looser signature

        def __getitem__(self, key: K) -> Any: ...

    else:
        # store[key]: the engine's point read inlined, shared with the shelf (kv_backend.mapping.read_direct).
        __getitem__ = direct_getitem("Store")

    def _unloadable(self, key: K, k: bytes, data: bytes, exc: Exception) -> Any:
        """The value of ``k`` whose fast decoding raised ``exc`` (see read_direct), or its error."""
        if isinstance(exc, DeserializationError):  # from the checked loads itself: not twice
            _reraise_loading(k, exc)
        return self._loading(k, data)  # raises DeserializationError

    def _getitem(self, key: K) -> Any:
        """The full read of ``store[key]``, for any key and any record (see __getitem__)."""
        try:
            k = key.encode() if self._strkeys and type(key) is str else self._ek(key)
        except UnicodeEncodeError:
            k = self._key(key)  # raises the project's error
        except InvalidKeyError:
            self.db._check_open()  # after close(), every call raises the closed error, whatever the key
            raise
        # (Attributes read, then called: the interpreter specializes that, not a method call on them.)
        data = self._get(k, _MISSING)
        if data is _MISSING:
            raise KeyError(key)
        try:
            return self._floads(data)
        except DeserializationError as exc:  # from the checked loads itself: do not decode twice
            _reraise_loading(k, exc)
        except Exception:
            return self._loading(k, data)  # raises DeserializationError

    def _loading(self, k: bytes, data: bytes) -> Any:
        """``self._loads(data)``, the stored value of ``k``, for a read that is not the hottest: its
        error says what a record of a Redis key is (see :func:`_reraise_loading`)."""
        try:
            return self._loads(data)
        except DeserializationError as exc:
            _reraise_loading(k, exc)

    @overload
    def get(self, key: K) -> Any | None: ...
    @overload
    def get(self, key: K, default: T) -> Any | T: ...
    def get(self, key: K, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` if it is absent or expired.

        A key the store cannot hold (empty, or over the size limit) is absent, as for ``in``.
        """
        try:
            data = self._get(k := self._ek(key), _MISSING)
        except KeyTooLargeError:
            return default
        except _ARGUMENT_ERRORS:
            self.db._check_open()  # after close(), the closed error first, whatever the key
            raise
        if data is _MISSING:
            return default
        try:
            return self._loads(data)
        except DeserializationError as exc:
            _reraise_loading(k, exc)

    def get_many(self, keys: Iterable[K]) -> dict[K, Any]:
        """Return ``{key: value}`` for those of ``keys`` that are present.

        A key the store cannot hold (empty, or over the size limit) is absent, as for ``get``.
        The keys of a bytes store come back as ``bytes`` whatever bytes-like object was asked
        (a bytearray or memoryview cannot be a dict key).
        """
        self.db._check_open()  # first, and also when no key is asked for: use after close() always raises
        keys = _key_list(keys, "get_many")
        out: dict[K, Any] = {}
        get, ek, loads, strkeys = self._get, self._key, self._loads, self._strkeys
        for key in keys:
            try:
                k = ek(key)
                data = get(k, _MISSING)
            except KeyTooLargeError:
                continue
            if data is not _MISSING:
                try:
                    out[key if strkeys else k] = loads(data)  # type: ignore[index]
                except DeserializationError as exc:
                    _reraise_loading(k, exc)
        return out

    def __contains__(self, key: object) -> bool:
        try:
            k = self._ek(key)
            return k in self.db
        except (InvalidKeyError, KeyEncodingError, KeyTooLargeError):
            self.db._check_open()  # after close(), every call raises, whatever the key
            return False  # a key that cannot be stored is never present, as with a dict

    def __len__(self) -> int:
        return len(self.db)

    def __iter__(self) -> Iterator[K]:
        dk = self._dk
        for k in self.db:
            yield dk(k)

    def __reversed__(self) -> Iterator[K]:
        """The keys from the largest down, as ``reversed(dict)`` gives a dict's keys backwards."""
        dk = self._dk
        for k in self.db.keys(reverse=True):
            yield dk(k)

    def keys(
        self, *, prefix: K | None = None, start: K | None = None, reverse: bool = False
    ) -> StoreKeysView[K]:
        """A view of the keys in order; ``prefix`` limits it, ``start`` is the first key (last if reverse).

        The options are keyword-only, so a stray positional argument is a
        TypeError, as for ``dict.keys()``, rather than a silent filter.
        """
        return StoreKeysView(self, prefix, start, reverse)

    def items(
        self, *, prefix: K | None = None, start: K | None = None, reverse: bool = False
    ) -> StoreItemsView[K]:
        """A view of ``(key, value)`` pairs in key order (see :meth:`keys`)."""
        return StoreItemsView(self, prefix, start, reverse)

    def values(
        self, *, prefix: K | None = None, start: K | None = None, reverse: bool = False
    ) -> StoreValuesView[K]:
        """A view of the values in key order (see :meth:`keys`)."""
        return StoreValuesView(self, prefix, start, reverse)

    def ttl(self, key: K) -> float | None:
        """Seconds ``key`` has left to live, or None if it never expires; KeyError if absent.

        A key the store cannot hold (empty, or over the size limit) is absent: KeyError.
        """
        try:
            return self.db.ttl(self._key(key))
        except (KeyError, KeyTooLargeError):
            raise KeyError(key) from None

    # ------------------------------------------------------------- writing

    def __setitem__(self, key: K, value: Any) -> None:
        try:
            k = key.encode() if self._strkeys and type(key) is str else self._ek(key)
        except UnicodeEncodeError:
            k = self._key(key)  # raises the project's error
        except InvalidKeyError:
            self.db._check_open()  # after close(), every call raises the closed error, whatever the key
            raise
        try:
            proto = self._proto
            data = _pickle_dumps(value, proto) if proto is not None else self._fdumps(value)
        except SerializationError:  # from the checked dumps itself: do not encode twice
            raise
        except Exception:
            data = self._dumped(value)  # raises SerializationError (or, after close(), the closed error)
        put = self._put  # (see __getitem__)
        try:
            put(k, data)
        except _ARGUMENT_ERRORS:
            self.db._check_open()  # checked after the key and value by the engine: use after close() raises
            raise

    def set(self, key: K, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``; with ``ttl`` (seconds) it expires then (``ttl <= 0`` deletes)."""
        try:
            self._put(self._ek(key), self._dumps(value), ttl)
        except _ARGUMENT_ERRORS:
            self.db._check_open()  # after close(), the closed error first, whatever the arguments
            raise

    def add(self, key: K, value: Any, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent; return whether it was stored (atomic, cross-process).

        A ``ttl`` of 0 or less stores nothing (the value would expire at once): False.
        """
        try:
            return self.db.put_if_absent(self._ek(key), self._dumps(value), ttl)
        except _ARGUMENT_ERRORS:
            self.db._check_open()  # after close(), the closed error first, whatever the arguments
            raise

    def set_many(self, mapping: Mapping[K, Any] | Iterable[tuple[K, Any]], ttl: float | None = None) -> None:
        """Store every pair at once, all or nothing (one batch)."""
        pairs = mapping.items() if isinstance(mapping, Mapping) else self._pairs(mapping, {})
        ek, dumps = self._key, self._dumped
        self._apply([(ek(k), dumps(v), ttl) for k, v in pairs])  # serialize all before writing any

    def _pairs(self, other: Any, kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
        """:func:`update_pairs`; after close() the closed error first, whatever the arguments."""
        try:
            return update_pairs(other, kwargs)
        except InvalidArgumentError:
            self.db._check_open()
            raise

    def _apply(self, ops: list[tuple[bytes, bytes | None, float | None]]) -> None:
        """Write ``(key, data or None to delete, ttl)`` operations all at once."""
        if not ops:
            self.db._check_open()  # nothing to write, but use after close() always raises
            return
        try:
            self._write(ops)
        except _ARGUMENT_ERRORS:  # (a ttl, a value too large): checked by the engine before the close
            self.db._check_open()
            raise

    def _write(self, ops: list[tuple[bytes, bytes | None, float | None]]) -> None:
        if len(ops) == 1:  # a single write is atomic by itself
            k, data, ttl = ops[0]
            if data is None:
                self.db.delete(k)
            else:
                self._put(k, data, ttl)
            return
        with self.db.batch() as b:
            for k, data, ttl in ops:
                if data is None:
                    b.delete(k)
                else:
                    b.put(k, data, ttl)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, but applied all at once: a bad key or value writes nothing."""
        self.set_many(self._pairs(other, kwargs))

    def __ior__(self: _S, other: Any) -> _S:
        """``s |= other``: :meth:`update` (atomic) with a mapping or pairs, as ``dict |=`` takes."""
        self.update(other)
        return self

    def __or__(self, other: Any) -> dict[K, Any]:
        """``s | mapping``: a new ``dict`` of this store's items updated with ``mapping``'s.

        A store cannot make another store from nothing, so (like ``os.environ | d``) the
        result is a plain ``dict``; the store itself is unchanged.
        """
        if not isinstance(other, Mapping):
            return NotImplemented
        merged: dict[K, Any] = dict(self.items())
        merged.update(other)
        return merged

    def __ror__(self, other: Any) -> dict[K, Any]:
        """``mapping | s``: a new ``dict`` of ``mapping``'s items updated with this store's."""
        if not isinstance(other, Mapping):
            return NotImplemented
        merged: dict[K, Any] = dict(other)
        merged.update(self.items())
        return merged

    def __delitem__(self, key: K) -> None:
        if not self.delete(key):
            raise KeyError(key)  # also for a key the store cannot hold, absent as for ``in``

    def delete(self, key: K) -> bool:
        """Remove ``key``; return whether it existed (False for a key the store cannot hold)."""
        k = self._key(key)
        try:
            return self.db.delete(k)
        except KeyTooLargeError:
            return False  # no key of that size can be stored, so it is absent

    def delete_many(self, keys: Iterable[K]) -> None:
        """Remove every key in ``keys`` at once (missing keys, and keys no store can hold, are ignored)."""
        try:
            keys = _key_list(keys, "delete_many")
        except InvalidArgumentError:
            self.db._check_open()  # after close(), the closed error first, whatever the arguments
            raise
        encoded = [self._key(k) for k in keys]
        self._apply([(k, None, None) for k in encoded if len(k) <= MAX_KEY_SIZE and k])

    @overload
    def pop(self, key: K) -> Any: ...
    @overload
    def pop(self, key: K, default: T) -> Any | T: ...
    def pop(self, key: K, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``); atomic across processes.

        A key the store cannot hold (empty, or over the size limit) is absent, as for ``in``: it
        gives ``default``, or KeyError, as ``del`` does. On a read-only store an absent key needs no
        write: it gives ``default`` (or KeyError).
        """
        k = self._key(key)
        if not 0 < len(k) <= MAX_KEY_SIZE:
            found = None  # no key of that size can be stored, so it is absent
        else:
            found = None if self.db.read_only and k not in self.db else self._take(k, _decode_none)
        if found is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return found[1]

    def popitem(self) -> tuple[K, Any]:
        """Remove and return the pair with the smallest key; KeyError if empty. The records of Redis
        keys (of ``kvb serve`` on the same directory) are left alone: removing one damages its key."""
        load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
        from kv_backend.structures.layout import pop_first  # (not at import: popitem's only)

        return pop_first(self.db, lambda k: self._take(k, self._dk), "store")

    def _take(self, k: bytes, dk: Callable[[bytes], Any]) -> tuple[Any, Any] | None:
        """Atomically remove ``k`` and return ``(dk(k), value)``; None if it is absent.

        The key and value are decoded under the write lock before the delete
        is written, so one that cannot be decoded (another serializer's bytes,
        a key that is not UTF-8) raises and stays stored instead of being lost.
        """
        found: list[tuple[Any, Any]] = []
        loads = self._loading

        def take(old: bytes | None) -> None:
            if old is not None:
                found.append((dk(k), loads(k, old)))
            return None  # delete the key (a no-op if it is absent)

        self.db.update(k, take)
        return found[0] if found else None

    def setdefault(self, key: K, default: Any = None) -> Any:
        """Return the value of ``key``, storing ``default`` first if it is absent (atomic)."""
        k = self._key(key)
        data = self._get(k, _MISSING)
        if data is not _MISSING:
            return self._loading(k, data)
        encoded = self._dumped(default)
        while True:
            if self.db.put_if_absent(k, encoded):
                return default
            data = self._get(k, _MISSING)
            if data is not _MISSING:
                return self._loading(k, data)

    def clear(self) -> None:
        """Remove every key, atomically, but the records of Redis keys (of ``kvb serve`` on the same
        directory: its keys, functions and scripts), which it leaves whole (see docs/store.md)."""
        load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
        from kv_backend.structures.layout import clear_own  # (not at import: clear's only)

        clear_own(self.db)

    def modify(self, key: K, fn: Callable[[Any], Any], default: Any = _MISSING) -> Any:
        """Atomically replace the value of ``key`` by ``fn(value)`` and return the new value.

        Holds the store's write lock, so concurrent calls from many processes
        never lose an update. A missing key gets ``fn(default)``; without a
        ``default`` it raises KeyError. The key keeps its expiry. If ``fn`` or
        the serializer raises, nothing is written.
        """
        if not callable(fn):  # (it would raise a bare TypeError from inside the engine's update)
            self.db._check_open()  # after close(), the closed error first, whatever the arguments
            raise InvalidArgumentError(
                f"modify() takes a function of the old value returning the new one, not {type(fn).__name__}"
            )
        loads, dumps = self._loads, self._dumps
        result: list[Any] = []

        def apply(old: bytes | None) -> bytes:
            if old is None:
                if default is _MISSING:
                    raise KeyError(key)
                value = default
            else:
                value = loads(old)
            new = fn(value)
            data: bytes = dumps(new)
            result.append(new)
            return data

        self.db.update(self._key(key), apply)
        return result[0]

    def incr(self, key: K, delta: int | float = 1) -> Any:
        """Add ``delta`` to the int or float stored at ``key`` (missing = 0) and return it; atomic."""
        self.db._check_open()  # after close(), the closed error first, whatever the arguments
        if not isinstance(delta, (int, float)) or isinstance(delta, bool):
            raise InvalidValueError(f"delta must be an int or a float, not {type(delta).__name__}")
        if isinstance(delta, float) and not math.isfinite(delta):
            # NaN is no amount, and an infinity makes every later incr of the key NaN or infinite
            # (Redis's INCRBYFLOAT refuses both, and a json store could not even write them).
            raise InvalidValueError(f"delta must be a finite number, not {delta!r}; nothing was written")

        def add(value: Any) -> Any:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InvalidValueError(
                    f"incr needs a number (an int or a float) at {key!r}, found {type(value).__name__} "
                    "(use modify() for other numbers); nothing was written"
                )
            try:
                total = value + delta
            except OverflowError:  # an int beyond the float range and a float (its repr may not even fit)
                raise InvalidValueError(
                    f"incr of {key!r} adds an int and a float, and the int is beyond the float range "
                    "(the float range is exceeded); nothing was written"
                ) from None
            if isinstance(total, float) and not math.isfinite(total):
                raise InvalidValueError(
                    f"incr of {key!r} by {delta!r} would store {total!r} (the float range is exceeded, or "
                    "the stored number is not finite); nothing was written"
                )
            return total

        return self.modify(key, add, default=0)

    def expire(self, key: K, ttl: float | None) -> bool:
        """Give ``key`` a new time to live (None: forever; <= 0 deletes); return whether it exists.

        A key the store cannot hold (empty, or over the size limit) is absent: False.
        """
        k = self._key(key)
        try:
            return self.db.expire(k, ttl)
        except KeyTooLargeError:
            return False  # (after the engine checked ttl: a bad ttl raises whatever the key)
        except _ARGUMENT_ERRORS:
            self.db._check_open()  # after close(), the closed error first, whatever the ttl
            raise

    def persist(self, key: K) -> bool:
        """Make ``key`` never expire; return whether it exists (False for a key the store cannot hold)."""
        k = self._key(key)
        try:
            return self.db.persist(k)
        except KeyTooLargeError:
            return False

    @contextmanager
    def batch(self) -> Iterator[StoreBatch[K]]:
        """Collect sets and deletes and apply them all at once when the block ends, or none on error."""
        if self.db.closed:
            raise DatabaseClosedError(f"the store at {self.path} is closed")
        if self.db.read_only:
            raise ReadOnlyError(f"the store at {self.path} was opened with read_only=True")
        b: StoreBatch[K] = StoreBatch(self)
        try:
            yield b
            self._apply(b._ops)
        finally:
            b._ops = SpentOps()  # a write through b after the block raises instead of being lost

    @contextmanager
    def locked(self) -> Iterator[Store[K]]:
        """Hold the cross-process write lock for a compound read-modify-write (keep it short)."""
        with self.db.locked():
            yield self

    @contextmanager
    def transaction(self) -> Iterator[Store[K]]:
        """Make every write of the block take effect together or not at all, also across a crash.

        Holds the write lock for the block; reads in it see its writes, other
        processes see them when it ends, and an exception discards them all.
        """
        with self.db.transaction():
            yield self

    # ----------------------------------------------------------- lifecycle

    def sync(self) -> None:
        """Flush everything written so far to stable storage (fsync)."""
        self.db.sync()

    def close(self) -> None:
        """Release the store's files and locks; later use raises DatabaseClosedError. Idempotent."""
        self.db.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self.db.closed

    @property
    def read_only(self) -> bool:
        """True when opened with ``read_only=True``."""
        return self.db.read_only

    def stats(self) -> dict[str, Any]:
        """The engine's statistics (keys, live and dead bytes, files...)."""
        return self.db.stats()

    def __enter__(self: _S) -> _S:
        self.db._check_open()  # a with block on a closed store raises, as any use after close() does
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("read-only" if self.read_only else "open")
        return (
            f"<kv_backend.Store {self.path!r} {state} key_type={self.key_type.__name__} "
            f"serializer={self.serializer!r}>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling a Store (e.g. to send it to a worker process) reopens the same path over there.

        A subclass's instance comes back as an instance of that subclass, with the attributes
        the subclass added, those in its ``__slots__`` too (pickled as for any object, without calling
        its ``__init__``).
        """
        if self.closed:
            raise DatabaseClosedError(f"the store at {self.path} is closed and cannot be pickled")
        serializer = _SerializerArgument(self.serializer)
        args: tuple[Any, ...] = (self.path, serializer, self.key_type, self._engine_options)
        if type(self) is Store:
            return (_reopen, args)
        extra = {name: value for name, value in vars(self).items() if name not in _STORE_ATTRIBUTES}
        slots = _slot_values(self)
        return (_reopen, (*args, type(self)), (extra or None, slots) if slots else (extra or None))

    # A store compares equal to any mapping with the same items (like dict), so it is unhashable.
    __hash__ = None  # type: ignore[assignment]


#: The attributes Store.__init__ sets: a subclass's other attributes are pickled with its instances.
_STORE_ATTRIBUTES = frozenset(
    {"_ek", "_dk", "key_type", "serializer", "_dumps", "_loads", "_fdumps", "_floads", "_strkeys", "_proto"}
    | {"db", "path", "_engine_options", "_get", "_put"}
)


def _slot_values(obj: object) -> dict[str, Any]:
    """The attributes ``obj`` holds in the ``__slots__`` of its classes (those set), by name, as
    ``object.__getstate__`` gives them (Python 3.11 and later; a pickle loads them into the slots)."""
    values: dict[str, Any] = {}
    for cls in type(obj).__mro__:
        names = cls.__dict__.get("__slots__", ())
        for name in (names,) if isinstance(names, str) else names:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):  # a private name, stored mangled
                name = f"_{cls.__name__.lstrip('_')}{name}"
            try:
                values[name] = getattr(obj, name)
            except AttributeError:  # (never set)
                pass
    return values


class _SerializerArgument:
    """A Store's serializer as its pickle carries it (see Store.__reduce__): one holding what no
    pickler carries (a lock, an open file: pickle's TypeError) raises PickleSerializationError naming
    it. Other failures of pickle (a class defined in a function) are left to the pickler at work,
    which may carry it (as cloudpickle does). A shallow copy of the store, which pickles nothing,
    passes it on as it is."""

    __slots__ = ("serializer",)

    def __init__(self, serializer: Any) -> None:
        self.serializer = serializer

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        try:
            pickle.dumps(self.serializer, protocol.__index__())
        except TypeError as exc:
            raise PickleSerializationError(
                f"the store's serializer {self.serializer!r} cannot be pickled ({exc}), so neither can "
                "the store, which is opened again with it where it is unpickled: give Store a serializer "
                "that pickle can carry (one holding no lock, open file or other such object: make those "
                "when first used), or open the store in the other process with its own serializer"
            ) from exc
        except Exception:  # (pickle.PicklingError, AttributeError...): the pickler at work may carry it
            pass
        return (_serializer_of, (self.serializer,))


def _serializer_of(serializer: Any) -> Any:
    """The serializer an unpickled :class:`_SerializerArgument` carried."""
    return serializer


def _reopen(
    path: str, serializer: Any, key_type: type, engine_options: dict[str, Any], cls: type[Store[Any]] = Store
) -> Store[Any]:
    if isinstance(serializer, _SerializerArgument):  # (a shallow copy of the store)
        serializer = serializer.serializer
    store = cls.__new__(cls)
    Store.__init__(store, path, serializer, key_type=key_type, **engine_options)
    return store


class StoreBatch(Generic[K]):
    """Writes collected by :meth:`Store.batch`; values are serialized as they are added."""

    def __init__(self, store: Store[K]) -> None:
        self._store: Store[K] = store
        self._ops: list[tuple[bytes, bytes | None, float | None]] = []

    def set(self, key: K, value: Any, ttl: float | None = None) -> None:
        """Add a set of ``key`` to the batch."""
        # A key no store can hold, or a bad ttl, raises here, at the line at fault, not when the block ends.
        store = self._store
        k = _check_key(store._key(key))
        if ttl is not None:
            try:
                _expiry(ttl)
            except _ARGUMENT_ERRORS:
                store.db._check_open()  # after close(), the closed error first, whatever the ttl
                raise
        self._ops.append((k, store._dumped(value), ttl))

    __setitem__ = set

    def delete(self, key: K) -> None:
        """Add a delete of ``key`` to the batch (a missing key is ignored)."""
        k = self._store._key(key)
        if 0 < len(k) <= MAX_KEY_SIZE:  # a key no store can hold is absent (Store.delete is False for it)
            self._ops.append((k, None, None))

    __delitem__ = delete

    def __len__(self) -> int:
        return len(self._ops)

    def __reduce__(self) -> NoReturn:
        """Refused: the writes of a batch are made when its ``with`` block ends, in this process, so
        those given to a pickled or copied batch would be lost without a word."""
        raise PickleSerializationError(
            "a Store batch cannot be pickled or copied: its writes are made when its with block ends, "
            "and those given to a copy would never be; pass the keys and values themselves (to "
            "set_many() or to another batch)"
        )


class _View(Generic[K]):
    """Shared part of the key/item/value views: bounds encoded once, iteration in key order."""

    _mapping: Store[K]

    if TYPE_CHECKING:  # each view defines it

        def __iter__(self) -> Iterator[Any]: ...

    def __init__(self, store: Store[K], prefix: K | None, start: K | None, reverse: bool) -> None:
        self._mapping = store
        self._prefix: K | None = prefix
        self._start: K | None = start
        try:
            self._reverse = _check_flag(reverse, "reverse")  # (reversed(view) flips it before the engine)
            self._bprefix = store._ek(prefix) if prefix is not None else b""  # an empty one is checked too
            self._bstart = store._ek(start) if start is not None else None
        except _ARGUMENT_ERRORS:
            store.db._check_open()  # after close(), the closed error first, whatever the arguments
            raise

    def _raw_keys(self) -> Iterator[bytes]:
        return self._mapping.db.keys(prefix=self._bprefix, start=self._bstart, reverse=self._reverse)

    def _flipped_keys(self) -> Iterator[bytes]:
        """The keys of :meth:`_raw_keys` in the opposite order, for ``reversed(view)``.

        Not the view with ``reverse`` flipped: ``start`` would then bound the
        other side and name other keys. Walk from the far end instead and stop
        at ``start``.
        """
        bstart = self._bstart
        for k in self._mapping.db.keys(prefix=self._bprefix, reverse=not self._reverse):
            if bstart is not None and (k > bstart if self._reverse else k < bstart):
                return
            yield k

    def _in_bounds(self, k: bytes) -> bool:
        if not k.startswith(self._bprefix):
            return False
        if self._bstart is None:
            return True
        return k <= self._bstart if self._reverse else k >= self._bstart

    def __len__(self) -> int:
        if self._bstart is None:
            if not self._bprefix:
                return len(self._mapping)
            return self._mapping.db.count(prefix=self._bprefix)  # in the sorted index, not walked
        return sum(1 for _ in self._raw_keys())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class StoreKeysView(_View[K], KeysView[K]):
    """The keys of a :class:`Store` (a set-like view; iterating reads the store live)."""

    def __iter__(self) -> Iterator[K]:
        dk = self._mapping._dk
        for k in self._raw_keys():
            yield dk(k)

    def __reversed__(self) -> Iterator[K]:
        dk = self._mapping._dk
        for k in self._flipped_keys():
            yield dk(k)

    def __contains__(self, key: object) -> bool:
        try:
            k = self._mapping._ek(key)
            if self._in_bounds(k):
                return k in self._mapping.db
        except (InvalidKeyError, KeyEncodingError, KeyTooLargeError):
            pass  # a key that cannot be stored is never present, as for the store itself
        self._mapping.db._check_open()  # after close(), every call raises, whatever the key
        return False


class StoreItemsView(_View[K], ItemsView[K, Any]):
    """The ``(key, value)`` pairs of a :class:`Store`, in key order."""

    def __iter__(self) -> Iterator[tuple[K, Any]]:
        return self._pairs(self._raw_keys())

    def __reversed__(self) -> Iterator[tuple[K, Any]]:
        return self._pairs(self._flipped_keys())

    def _pairs(self, keys: Iterator[bytes]) -> Iterator[tuple[K, Any]]:
        store = self._mapping
        dk, loads, get = store._dk, store._loads, store._get
        for k in keys:
            data = get(k, _MISSING)
            if data is not _MISSING:  # deleted by someone else meanwhile
                key = dk(k)  # (first: a key that is not text says so, whatever its value)
                try:
                    value = loads(data)
                except DeserializationError as exc:
                    _reraise_loading(k, exc)
                yield key, value

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            self._mapping.db._check_open()  # after close(), every call raises, whatever the item
            return False
        key, value = item
        try:
            k = self._mapping._ek(key)
            if not self._in_bounds(k):
                self._mapping.db._check_open()
                return False
            data = self._mapping._get(k, _MISSING)
        except (InvalidKeyError, KeyEncodingError, KeyTooLargeError):
            self._mapping.db._check_open()
            return False  # a key that cannot be stored is never present
        return data is not _MISSING and self._mapping._loads(data) == value


class StoreValuesView(_View[K], ValuesView[Any]):
    """The values of a :class:`Store`, in key order."""

    def __iter__(self) -> Iterator[Any]:
        for _, value in StoreItemsView(self._mapping, self._prefix, self._start, self._reverse):
            yield value

    def __reversed__(self) -> Iterator[Any]:
        for _, value in reversed(StoreItemsView(self._mapping, self._prefix, self._start, self._reverse)):
            yield value

    def __contains__(self, value: object) -> bool:
        return any(v is value or v == value for v in self)
