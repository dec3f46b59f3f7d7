"""kv_backend: a durable, multi-process key-value store built on the Bitcask design.

``DB`` is the engine (bytes keys and values); the other front ends (``Store``,
``kv_backend.shelve``, ``kv_backend.dbm``, the Django cache, the Celery result
backend, the Redis-protocol and HTTP servers) are thin layers over it.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":
    # pip installs the wheel anywhere (pure Python); say why it cannot run rather than let the first
    # import of fcntl fail with "No module named 'fcntl'".
    raise ImportError(
        "kv_backend runs on Linux and macOS only (POSIX): its multi-process locking needs flock(), "
        "which Windows lacks; run it under WSL"
    )

from kv_backend.backup import restore
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
    ReadOnlyError,
    StorageError,
    StoreNotFoundError,
    TransactionError,
    ValueTooLargeError,
)
from kv_backend.mounts import NetworkFilesystemWarning
from kv_backend.store import Store

__version__ = "0.1.0"

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
    "ReadOnlyError",
    "StorageError",
    "Store",
    "StoreNotFoundError",
    "TransactionError",
    "ValueTooLargeError",
    "__version__",
    "restore",
]
