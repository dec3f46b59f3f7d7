"""The exceptions of the data-structure layer; ``str()`` of each is a Redis-style message."""

from __future__ import annotations

from kv_backend.errors import KeyTooLargeError, KVError, NotAnIntegerError
from kv_backend.structures.layout import META


class StructureError(KVError):
    """Base class of the errors of :mod:`kv_backend.structures`; ``str()`` is a Redis-style message."""


class WrongTypeError(StructureError, TypeError):
    """The key holds another type than the operation needs (Redis's ``WRONGTYPE``)."""

    def __init__(
        self, msg: str = "WRONGTYPE Operation against a key holding the wrong kind of value"
    ) -> None:
        super().__init__(msg)


class ForeignRecordError(StructureError):
    """A record of a Redis key (its metadata record, the engine key ``\\x00m`` + name, or with
    ``record`` one of its member records: a score, a stream entry, a consumer group...) that another
    front end on the directory wrote (a Store's key ``"\\x00mname"``), not this layout: the message
    names it and says to delete the key, which removes it."""

    def __init__(self, name: bytes, record: bytes | None = None) -> None:
        if record is None:
            record = META + name
            what = f"the store's record of key '{quoted(name)}'"
        else:
            what = f"a record of the members of key '{quoted(name)}' in the store"
        super().__init__(
            f"ERR {what} was not written by kvb serve but by another front end on its directory (as the "
            f"engine key {record!r}); DEL the key to remove it"
        )
        self.name = name
        self.record = record

    @classmethod
    def miscounted(cls, name: bytes, prefix: bytes, counted: int, found: int) -> ForeignRecordError:
        """The error for the hash, set or sorted set ``name`` whose metadata counts ``counted`` members
        where ``found`` records of them are stored under the engine key prefix ``prefix``: another front
        end on the directory wrote records there (or removed some), which cannot be told from the
        layout's own (``.record`` is the prefix)."""
        error = cls.__new__(cls)
        StructureError.__init__(
            error,
            f"ERR key '{quoted(name)}' has {found} records of members in the store where its metadata counts "
            f"{counted}: another front end on its directory wrote or removed records under its engine keys "
            f"(those starting {prefix!r}); DEL the key to remove them",
        )
        error.name = name
        error.record = prefix
        return error


class NotAFloatError(StructureError, ValueError):
    """A value or argument is not a valid floating point number."""


class CommandError(StructureError, ValueError):
    """An argument is out of range or the operation cannot be done (Redis's ``ERR ...``)."""


class KeyNameTooLongError(StructureError, KeyTooLargeError):
    """A name (with its field, member or group) too long for one engine key; the message gives
    the limit of the key's type (also a :class:`~kv_backend.errors.KeyTooLargeError`)."""


class HashValueNotAnIntegerError(StructureError, NotAnIntegerError):
    """HINCRBY found a field value that is not an integer (also a :class:`NotAnIntegerError`)."""


NOT_INT = "ERR value is not an integer or out of range"


NOT_FLOAT = "ERR value is not a valid float"


def wrong_arity(command: str) -> CommandError:
    """Redis's error for ``command`` (as Redis names it) given too few arguments: what redis-py
    raises where a Structures method is given no names, fields or members to send."""
    return CommandError(f"ERR wrong number of arguments for '{command}' command")


def c_string(raw: bytes) -> bytes:
    """``raw`` up to its first NUL byte: what Redis reads where it treats an argument as a C string."""
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def printed(raw: bytes, limit: int = 128) -> str:
    """An argument as Redis's ``%.128s`` prints it into an error message (an unknown command or
    subcommand): a C string, so up to its first NUL byte, and at most ``limit`` bytes of it."""
    return quoted(c_string(raw)[:limit])


def quoted(value: bytes) -> str:
    """A name or argument a client sent, as an error message quotes it: as Redis prints it with
    ``%s``, a C string, so up to its first NUL byte (``CONFIG SET nosuch\\0x 1`` quotes
    ``nosuch``); as Redis echoes the raw bytes, bytes that are not UTF-8 are kept (as surrogate
    escapes, which ``kvb serve`` writes back as they were) where a replacement character would
    lose them."""
    return c_string(value).decode("utf-8", "surrogateescape")
