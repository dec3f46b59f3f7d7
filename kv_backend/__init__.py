"""kv_backend: a durable, multi-process key-value store built on the Bitcask design.

``DB`` is the engine (bytes keys and values); the other front ends (``Store``,
``kv_backend.shelve``, ``kv_backend.dbm``, the Django cache, the Celery result
backend, the Redis-protocol and HTTP servers) are thin layers over it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if sys.platform == "win32":
    # pip installs the wheel anywhere (pure Python); say why it cannot run rather than let the first
    # import of fcntl fail with "No module named 'fcntl'".
    raise ImportError(
        "kv_backend runs on Linux and macOS only (POSIX): its multi-process locking needs flock(), "
        "which Windows lacks; run it under WSL"
    )

from kv_backend.db import DB, Batch
from kv_backend.errors import (
    BackupError,
    ConfigurationError,
    CorruptionError,
    DatabaseClosedError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueError,
    KeyTooLargeError,
    KVError,
    MergeInProgressError,
    NotAnIntegerError,
    NotAStoreError,
    NotDurableError,
    ReadOnlyError,
    StorageError,
    StoreNotFoundError,
    SyncFailedError,
    TransactionError,
    ValueTooLargeError,
)
from kv_backend.lazy import load
from kv_backend.mounts import NetworkFilesystemWarning
from kv_backend.store import Store

if TYPE_CHECKING:  # (type checkers see the submodules below as attributes, as they are at run time)
    from kv_backend import check as check
    from kv_backend import dbm as dbm
    from kv_backend import salvage as salvage
    from kv_backend import shelve as shelve
    from kv_backend import structures as structures
    from kv_backend.backup import restore as restore

__version__ = "0.1.0"

#: The public submodules the docs use as attributes of the package (``kv_backend.shelve.open``, as
#: ``import dbm; dbm.open`` in the stdlib), imported at their first use (PEP 562), not by
#: ``import kv_backend``. (``errors`` and ``serializers`` are imported with it anyway;
#: ``kv_backend.http`` needs the ``server`` extra: ``import kv_backend.http`` says so.)
_SUBMODULES = frozenset({"check", "dbm", "salvage", "shelve", "structures"})
#: Functions of the package that live in a module ``import kv_backend`` does not need: ``restore``
#: imports the backup machinery (its URL and upload helpers, sockets, temporary files...) at its
#: first use, which a program that only opens stores (a web or Celery worker) never pays.
_LAZY_NAMES = {"restore": "backup"}


if not TYPE_CHECKING:  # (seen by a type checker, it made every name of the package valid, typos too)

    def __getattr__(name: str) -> Any:
        if name in _SUBMODULES:
            return load(f"{__name__}.{name}")  # (which sets the attribute: once only)
        if name in _LAZY_NAMES:
            value = getattr(load(f"{__name__}.{_LAZY_NAMES[name]}"), name)
            globals()[name] = value  # (once only, as for a submodule)
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_LAZY_NAMES))


__all__ = [
    "DB",
    "BackupError",
    "Batch",
    "ConfigurationError",
    "CorruptionError",
    "DatabaseClosedError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidValueError",
    "KVError",
    "KeyTooLargeError",
    "MergeInProgressError",
    "NetworkFilesystemWarning",
    "NotAStoreError",
    "NotAnIntegerError",
    "NotDurableError",
    "ReadOnlyError",
    "StorageError",
    "Store",
    "StoreNotFoundError",
    "SyncFailedError",
    "TransactionError",
    "ValueTooLargeError",
    "__version__",
    "restore",
]
