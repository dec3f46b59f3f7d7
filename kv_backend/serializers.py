"""Value serializers for :class:`kv_backend.Store`: how Python objects become the bytes the engine stores.

``"pickle"`` stores any picklable object but *executes code chosen by whoever
wrote the data* when it is read back: use it only when everyone who can write
to the store's directory is trusted. ``"json"`` can only build plain data
(dict, list, str, int, float, bool, None) and is the choice for data that may
come from untrusted writers. ``"raw"`` stores bytes unchanged. Any object with
``dumps(obj) -> bytes`` and ``loads(bytes) -> obj`` methods works too.
"""

from __future__ import annotations

import operator
import pickle
from functools import partial
from types import FunctionType, ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kv_backend.db_common import _check_flag
from kv_backend.errors import ConfigurationError, InvalidArgumentError, KVError
from kv_backend.lazy import load

if TYPE_CHECKING:
    from json import JSONDecoder, JSONEncoder

__all__ = [
    "DeserializationError",
    "JSONSerializer",
    "PickleDeserializationError",
    "PickleSerializationError",
    "PickleSerializer",
    "RawSerializer",
    "SerializationError",
    "Serializer",
    "get_serializer",
]


class SerializationError(KVError, TypeError):
    """A value could not be turned into bytes (unpicklable object, non-JSON value...).

    Nothing was written: the store is unchanged.
    """


class PickleSerializationError(SerializationError, pickle.PicklingError):
    """A value could not be pickled (also a :class:`pickle.PicklingError`)."""


class DeserializationError(KVError, ValueError):
    """Stored bytes could not be turned back into a value (wrong serializer, or foreign data)."""


class PickleDeserializationError(DeserializationError, pickle.UnpicklingError):
    """Stored bytes are not a readable pickle (also a :class:`pickle.UnpicklingError`)."""


@runtime_checkable
class Serializer(Protocol):
    """Anything with ``dumps(value) -> bytes`` and ``loads(data) -> value``."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


_PROTOCOL_TYPE = "pickle protocol must be an int such as pickle.DEFAULT_PROTOCOL, not {protocol!r}"


def check_pickle_protocol(protocol: object) -> int:
    """``protocol`` as the int :func:`pickle.dumps` takes (any integer type: numpy's too), checked.

    The errors are those pickle raises at the first value, raised before any: one that is not an
    integer is an :class:`InvalidArgumentError` (a ``TypeError``, as pickle's), one above
    :data:`pickle.HIGHEST_PROTOCOL` a :class:`ConfigurationError` (a ``ValueError``, as pickle's).
    Both are ConfigurationErrors, as for every other bad option.
    """
    try:
        n = operator.index(protocol)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentError(_PROTOCOL_TYPE.format(protocol=protocol)) from None
    if n > pickle.HIGHEST_PROTOCOL:
        raise ConfigurationError(f"pickle protocol must be <= {pickle.HIGHEST_PROTOCOL}, not {n}")
    return n


class PickleSerializer:
    """Pickle with a fixed protocol (default :data:`pickle.DEFAULT_PROTOCOL`).

    Reading a pickle runs code chosen by its writer: trust every writer of the directory.
    """

    name = "pickle"

    def __init__(self, protocol: int | None = None) -> None:
        if protocol is None:
            protocol = pickle.DEFAULT_PROTOCOL
        elif isinstance(protocol, bool):  # (an int to pickle, but here a flag given by mistake)
            raise InvalidArgumentError(_PROTOCOL_TYPE.format(protocol=protocol))
        protocol = check_pickle_protocol(protocol)
        if protocol < 0:
            protocol = pickle.HIGHEST_PROTOCOL
        self.protocol = protocol
        # Unchecked versions for hot paths: callers fall back to dumps/loads to report a failure.
        self.fast_dumps = partial(pickle.dumps, protocol=protocol)
        self.fast_loads = pickle.loads

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, self.protocol)
        except Exception as exc:
            raise PickleSerializationError(
                f"cannot pickle a value of type {type(value).__name__}: {exc}; "
                "store something picklable, or pass a serializer that handles it"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise PickleDeserializationError(
                f"stored bytes are not a readable pickle ({exc}); was the value written "
                "with another serializer?"
            ) from exc

    def __repr__(self) -> str:
        return f"PickleSerializer(protocol={self.protocol})"


class JSONSerializer:
    """UTF-8 JSON: safe with untrusted writers; tuples come back as lists, dict keys as str.

    Non-finite floats (NaN, Infinity) are refused, so every stored value is strict JSON.
    """

    name = "json"

    def __init__(self, *, sort_keys: bool = False) -> None:
        self.sort_keys = _check_flag(sort_keys, "sort_keys")  # a truthy "no" would sort
        json = load("json")  # (at the first JSON store: a pickle Store's process never imports it)
        self._encoder: JSONEncoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=sort_keys
        )
        self._decoder: JSONDecoder = json.JSONDecoder()

    def dumps(self, value: Any) -> bytes:
        try:
            return self._encoder.encode(value).encode("utf-8")
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
            raise SerializationError(
                f"cannot store a value of type {type(value).__name__} as JSON: {exc}; "
                "use plain dict/list/str/int/float/bool/None, or serializer='pickle'"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return self._decoder.decode(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise DeserializationError(
                f"stored bytes are not UTF-8 JSON ({exc}); was the value written with another serializer?"
            ) from exc

    def __reduce__(self) -> tuple[Any, ...]:
        return (partial(JSONSerializer, sort_keys=self.sort_keys), ())

    def __repr__(self) -> str:
        return f"JSONSerializer(sort_keys={self.sort_keys})"


class RawSerializer:
    """Bytes in, bytes out: values must be bytes-like and are returned as ``bytes``."""

    name = "raw"

    def dumps(self, value: Any) -> bytes:
        if type(value) is bytes:
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):  # a bytes subclass (numpy.bytes_...) too
            return bytes(value)
        raise SerializationError(
            f"serializer='raw' stores bytes only, not {type(value).__name__}; "
            "encode the value first or use serializer='pickle' or 'json'"
        )

    def loads(self, data: bytes) -> Any:
        return data

    def __repr__(self) -> str:
        return "RawSerializer()"


class _Checked:
    """Wraps a user serializer so that its failures and wrong return types raise the project's errors."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        # For error messages: "json.dumps failed", not "module.dumps failed" (or "type." for a class).
        named = isinstance(inner, (ModuleType, type))
        self.name = getattr(inner, "name", inner.__name__ if named else type(inner).__name__)

    def dumps(self, value: Any) -> bytes:
        try:
            data = self.inner.dumps(value)
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(
                f"{self.name}.dumps failed for a value of type {type(value).__name__}: {exc}"
            ) from exc
        if type(data) is not bytes:
            if isinstance(data, (bytes, bytearray, memoryview)):  # a bytes subclass too: stored as bytes
                return bytes(data)
            if isinstance(data, str):
                try:
                    return data.encode("utf-8")  # e.g. the json module itself: text is stored as UTF-8
                except UnicodeEncodeError as exc:  # lone surrogates: no UTF-8 form to store
                    raise SerializationError(
                        f"{self.name}.dumps returned text that cannot be stored as UTF-8 ({exc.reason}); "
                        "return bytes, or remove lone surrogates from the value"
                    ) from exc
            raise SerializationError(
                f"{self.name}.dumps must return bytes or str, it returned {type(data).__name__}"
            )
        return data

    def loads(self, data: bytes) -> Any:
        try:
            return self.inner.loads(data)
        except DeserializationError:
            raise
        except Exception as exc:
            raise DeserializationError(f"{self.name}.loads failed: {exc}") from exc

    def __reduce__(self) -> tuple[Any, ...]:
        if isinstance(self.inner, ModuleType):  # a module (serializer=json) cannot be pickled: name it
            return (_checked_module, (self.inner.__name__,))
        return (_Checked, (self.inner,))

    def __repr__(self) -> str:
        return repr(self.inner)


def _checked_module(name: str) -> _Checked:
    """Rebuild, in another process, a serializer that is a module such as ``json`` (for pickled Stores)."""
    return _Checked(load(name))


def _wants_an_instance(cls: type) -> bool:
    """Whether the class ``cls`` has ``dumps`` or ``loads`` as a plain function (an instance method)."""
    getattr_static = load("inspect").getattr_static  # (a class given as serializer is rare: not at import)
    return any(isinstance(getattr_static(cls, name, None), FunctionType) for name in ("dumps", "loads"))


_BUILTIN = {"pickle": PickleSerializer, "json": JSONSerializer, "raw": RawSerializer}


def get_serializer(spec: str | Any) -> Any:
    """Return a serializer object for ``"pickle"``, ``"json"``, ``"raw"`` or an object with dumps/loads."""
    if isinstance(spec, str):
        try:
            return _BUILTIN[spec]()
        except KeyError:
            raise ConfigurationError(
                f"unknown serializer {spec!r}: use 'pickle', 'json', 'raw' or an object with dumps/loads"
            ) from None
    if type(spec) in (PickleSerializer, JSONSerializer, RawSerializer, _Checked):
        return spec
    if isinstance(spec, type) and _wants_an_instance(spec):
        # The class has dumps and loads too, but as functions that want an instance (the built-in
        # classes, a user's class with plain methods): every write and read would fail with a
        # confusing "missing argument". Say so at open. (Static and class methods need none.)
        raise ConfigurationError(
            f"serializer={spec.__name__} is the class; pass an instance such as {spec.__name__}()"
        )
    # Anything else, subclasses of the built-in classes included, is checked: a subclass's own
    # dumps/loads (compressing, say) must be used for every value, not Store's plain-pickle
    # fast paths for PickleSerializer, and its failures must raise this module's errors.
    if callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None)):
        return _Checked(spec)
    raise InvalidArgumentError(
        f"serializer must be 'pickle', 'json', 'raw' or an object with dumps() and loads(), "
        f"not {type(spec).__name__}"
    )
