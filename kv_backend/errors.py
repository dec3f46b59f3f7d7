"""The exception hierarchy of kv_backend.

Every error raised by the project derives from :class:`KVError`.  Errors that
also have a natural built-in meaning derive from that built-in too, so
``except ValueError`` or ``except OSError`` keeps working for callers that do
not know this module.
"""

from __future__ import annotations

from typing import Any

from kv_backend.lazy import load


class KVError(Exception):
    """Base class of every kv_backend error."""


class InvalidKeyError(KVError, TypeError):
    """A key that is not ``bytes`` (or a bytes-like object) was given."""


class InvalidValueError(KVError, TypeError):
    """A value of the wrong type: not ``bytes`` for the engine, not a number for ``Store.incr``."""


class KeyTooLargeError(KVError, ValueError):
    """A key is empty or larger than :data:`kv_backend.record.MAX_KEY_SIZE`."""


class KeyEncodingError(KVError, ValueError):
    """A str key cannot be encoded as UTF-8 (or a shelf's keyencoding), or a stored key is not text."""


class UnencodableTextError(KVError, UnicodeEncodeError):
    """A str key or value the dbm or shelve front end cannot encode.

    Also the ``UnicodeEncodeError`` the stdlib modules raise there, so code written for them
    still catches it; built from that error (same ``encoding``, ``object``, ``start``...).
    """

    def __str__(self) -> str:
        return (
            f"{self.object[:60]!r} cannot be encoded as {self.encoding} ({self.reason}); "
            "remove the characters it cannot encode (lone surrogates, for UTF-8)"
        )


class UnencodableKeyError(KeyEncodingError, UnencodableTextError):
    """A str key the dbm or shelve front end cannot encode (a ``UnicodeEncodeError`` too)."""

    def __str__(self) -> str:
        return "key " + UnencodableTextError.__str__(self)


class UndecodableKeyError(KeyEncodingError, UnicodeDecodeError):
    """A stored key that a shelf cannot decode with its keyencoding (a ``UnicodeDecodeError`` too).

    Written through ``kv_backend.dbm`` or a bytes ``Store``: the stdlib's shelf raises the bare
    ``UnicodeDecodeError`` there, which code written for it still catches.
    """

    def __str__(self) -> str:
        load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
        from kv_backend.structures.layout import redis_record_advice  # (not at import: the error's only)

        said = f"the stored key {self.object[:60]!r} is not {self.encoding} text ({self.reason}); "
        return said + (
            redis_record_advice(self.object, "a shelf")
            or "it was written through kv_backend.dbm or a Store with key_type=bytes: read or remove it "
            "through those (kv_backend.dbm.open(path, 'w'), or kv_backend.Store(path, key_type=bytes))"
        )


class ValueTooLargeError(KVError, ValueError):
    """A value is larger than :data:`kv_backend.record.MAX_VALUE_SIZE`."""


class NotAnIntegerError(KVError, ValueError):
    """``incr`` found a value that is not an ASCII decimal integer."""


class ConfigurationError(KVError, ValueError):
    """An option passed to :class:`kv_backend.DB` is not valid."""


class InvalidArgumentError(ConfigurationError, TypeError):
    """An argument of the wrong type: a ``ttl`` or ``expires_at`` that is not a number (or both
    given), a serializer without ``dumps``/``loads``. A ``TypeError`` too, as Python's own."""


class StorageError(KVError, OSError):
    """The operating system refused an operation on the store's files.

    Raised for disk full, permission problems and similar conditions. The
    store stays usable and nothing already acknowledged is lost.
    """

    advice: str = ""
    """The sentence that ends the message and says what to do, if any (for a caller that says it in
    its own terms, such as ``kvb``, whose users pass no ``read_only=True``)."""


class SyncFailedError(StorageError):
    """A write refused: under a sync policy an fsync of the active file failed (the sync timer's, a
    write's own, ``sync()``'s; ``failed_at``, a UNIX time; ``reason``, the system's words), and the
    write's own fsync failed too. Writes made before that fsync may not be on disk, so the handle
    refuses every write, writing nothing, until an fsync succeeds (a write's, ``sync()``'s, the
    timer's retry), as Redis answers ``-MISCONF`` after a failed background fsync of its append-only
    file. ``errno`` is the write's own fsync's."""

    failed_at: float = 0.0
    reason: str = ""


class StoreNotFoundError(StorageError, FileNotFoundError):
    """The directory does not exist and the store may not create it."""


class NotAStoreError(StorageError):
    """The path exists but does not hold a kv_backend store."""


class CorruptionError(KVError):
    """A record failed its checksum or length checks.

    ``path`` and ``offset`` name the damaged record; ``kvb check PATH``
    lists every damaged record of a store.
    """

    def __init__(self, message: str, path: str | None = None, offset: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset


class ReadOnlyError(KVError):
    """A write was attempted on a store opened with ``read_only=True``."""


class DatabaseClosedError(KVError, ValueError):
    """The store was used after :meth:`kv_backend.DB.close`."""

    @classmethod
    def at(cls, path: str, what: str = "is closed") -> DatabaseClosedError:
        """The error for the store at ``path``, saying what to do whatever object the caller used."""
        return cls(f"the store at {path} {what}; open the path again (a new DB, Store, shelf...) to use it")


class MergeInProgressError(KVError):
    """Another process is merging this store right now."""


class LockTimeoutError(KVError, TimeoutError):
    """The store's write lock stayed held (by another process, or another thread of this one) past the
    time a call could wait for it (``kvb http``'s ``--lock-timeout``): nothing was written."""


class TransactionError(KVError):
    """A transaction was discarded (a block nested in it, or one of its writes, raised), or an operation
    cannot run inside one."""


class BackupError(KVError):
    """A backup or restore could not be completed; the message names the file."""


class NotDurableError(KVError):
    """An operation's result is in place, but an fsync of ``directory`` failed (``reason``, the
    system's): a crash or power failure before the system writes that directory may undo it.
    ``report`` is the operation's report. The message says what to do (check the disk, then ``sync``
    the directory). Raised as ``kv_backend.backup.BackupNotDurableError`` and
    ``RestoreNotDurableError`` (also ``BackupError``s) and ``kv_backend.salvage.SalvageNotDurableError``
    (also a ``SalvageError``)."""

    report: Any

    def __init__(self, message: str, report: Any = None, directory: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.report = report
        self.directory = directory
        self.reason = reason


__all__ = [
    "BackupError",
    "ConfigurationError",
    "CorruptionError",
    "DatabaseClosedError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidValueError",
    "KVError",
    "KeyTooLargeError",
    "MergeInProgressError",
    "NotAStoreError",
    "NotAnIntegerError",
    "NotDurableError",
    "ReadOnlyError",
    "StorageError",
    "StoreNotFoundError",
    "SyncFailedError",
    "TransactionError",
    "ValueTooLargeError",
]
