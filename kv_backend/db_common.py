"""Constants and argument checks shared by the parts of :class:`kv_backend.db.DB`."""

from __future__ import annotations

import math
import numbers
import os
import struct
import sys
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from kv_backend import record as rec
from kv_backend.errors import (
    ConfigurationError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueError,
    KeyTooLargeError,
    ValueTooLargeError,
)
from kv_backend.files import STATE_FILE, FileId

if TYPE_CHECKING:
    import mmap
    import threading

    from kv_backend.db_write import _Transaction
    from kv_backend.files import DataFile
    from kv_backend.keydir import KeyDir
    from kv_backend.locking import MergeLock, WriteLock
    from kv_backend.state import SharedState
    from kv_backend.sync_timer import SyncTimer

_HEADER_SIZE = rec.HEADER_SIZE
_unpack_header = rec.HEADER.unpack_from
#: (crc, type | flags << 8, key length, expiry) of a record header: what a read checks.
_unpack_check = struct.Struct("<IHI4xd").unpack_from
#: The type-and-flags word of a PUT outside a batch: a read whose record has another goes the slow way.
_PLAIN_PUT = rec.PUT
#: Where the key starts in a record without its 4-byte CRC field.
_BODY_KEY = rec.HEADER_SIZE - 4
_crc32 = rec.crc32
_pread = os.pread
_pwrite = os.pwrite
_encode = rec.encode
_PUT = rec.PUT
_FLAG_BATCH = rec.FLAG_BATCH
_MAX_KEY = rec.MAX_KEY_SIZE
_MAX_VALUE = rec.MAX_VALUE_SIZE
_ALLOC_STEP = 1 << 20
#: The first reservation of an active file: a store of a few keys takes this much disk, not a whole step;
#: each growth below _ALLOC_STEP doubles the file (64 KiB, 128 KiB ... 1 MiB), then 1 MiB steps.
_ALLOC_FIRST = 64 << 10
_time = time.time
_M32 = (1 << 32) - 1
_M40 = (1 << 40) - 1
_FIRST_FILE: FileId = (1, 0)
_MISSING: Any = object()
DEFAULT_MAX_FILE_SIZE = 128 << 20
#: The bounds of ``max_file_size``: records are addressed with 40-bit offsets, so files stay below 1 TiB.
MIN_FILE_SIZE = 4096
MAX_FILE_SIZE = 1 << 40
T = TypeVar("T")
#: A value the engine takes: bytes, or a bytearray or memoryview, which it copies.
BytesLike = bytes | bytearray | memoryview


class TailWord(Protocol):
    """A tail or intent word of the state page: a ctypes view of it, or a stand-in (no page, closed)."""

    value: int


class _StaticWord:
    """Stands in for the tail word when no state page exists (a read-only snapshot)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


#: How often (seconds) a read-only open that found no ``STATE`` page looks whether a writer made one since.
PAGE_LOOK_INTERVAL = 1.0


class _PageToCome:
    """The tail word of a read-only open that found no state page (no writer had opened the store since it
    was restored or copied, and this process may not make the page): 0, the tail of the static view it
    read, until a look, at most every :data:`PAGE_LOOK_INTERVAL` seconds, finds that a writer (a user who
    may write the directory) made the page since; then 1, a tail no view was read at, so that the next
    read catches up, maps the page and follows that writer (see ``DB._catch_up``). Without it, such a
    reader kept serving the values of its open for ever, whatever the store's writers wrote."""

    __slots__ = ("_next", "_page", "_seen")

    def __init__(self, store: str) -> None:
        self._page = os.path.join(store, STATE_FILE)
        self._next = time.monotonic() + PAGE_LOOK_INTERVAL
        self._seen = 0

    @property
    def value(self) -> int:
        if self._seen:
            return 1
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PAGE_LOOK_INTERVAL
            self._seen = int(os.path.exists(self._page))
        return self._seen


class _Parts(MutableMapping[bytes, bytes]):
    """What the parts of :class:`kv_backend.db.DB` (:mod:`~kv_backend.db_open`,
    :mod:`~kv_backend.db_read`, :mod:`~kv_backend.db_write`) share: the attributes ``DB.__init__``
    sets and the methods one part calls on another, declared once for the type checker.

    Declarations only (no values, no code): nothing of it exists at run time but the class itself.
    """

    path: str
    sync_mode: Literal["never", "always"] | float
    max_file_size: int
    auto_merge: float | None
    read_only: bool
    _closed: bool
    _closing: bool
    _sync_interval: float | None
    _syncer: SyncTimer
    _lock: WriteLock
    _rlock: threading.Lock
    _state: SharedState | None
    _tailw: TailWord
    _intentw: TailWord
    _seen: int
    _gen: int
    _tail: tuple[FileId, int]
    _ix: KeyDir
    _files: list[DataFile]
    #: (key -> packed location, each file's mapping by index; b"" for an empty file)
    _view: tuple[dict[bytes, int], list[mmap.mmap | bytes]]
    _fidx: dict[FileId, int]
    _sizes: dict[FileId, int]
    _corrupt: list[tuple[str, int]]
    _active: DataFile | None
    _active_idx: int
    _alloc: int
    _txn: _Transaction | None
    _txn_cond: threading.Condition
    _merge_thread: threading.Thread | None
    _merging: tuple[int, threading.Event, MergeLock] | None

    if TYPE_CHECKING:  # defined by DB and its other parts

        def close(self) -> None: ...
        def _check_open(self) -> None: ...
        def _raise_closed(self) -> None: ...
        def _refresh(self) -> None: ...
        def _maybe_auto_merge(self) -> None: ...
        def _recover_tail_locked(self) -> None: ...
        def _full_reload(self) -> None: ...
        def _get_record(self, key: bytes) -> tuple[bytes, float] | None: ...
        def _new_data_file(self, fid: FileId) -> DataFile: ...
        def _files_must_be_durable(self) -> bool: ...
        def _fsync_data_file(self, active: DataFile) -> None: ...


#: The largest ``sync`` interval taken as a number (a year; more is no fsync in practice, say "never").
_LONGEST_SYNC_INTERVAL = 365 * 24 * 3600.0


def check_tuning_options(sync: object, max_file_size: object, auto_merge: object) -> float | None:
    """Check the ``sync``, ``max_file_size`` and ``auto_merge`` options of :class:`~kv_backend.DB`.

    Returns the fsync interval ``sync`` stands for (None: never, 0.0: always) or
    raises :class:`ConfigurationError`. Callers that open the store later (the
    Django cache at startup) use it to report a bad value before the first use.
    """
    if sync in ("never", "always"):
        interval: float | None = None if sync == "never" else 0.0
    elif isinstance(sync, (int, float)) and not isinstance(sync, bool) and sync >= 0:
        if not sync <= _LONGEST_SYNC_INTERVAL:  # (an int too large for a float, infinity: never reached)
            raise ConfigurationError(
                f"sync must be a number of seconds up to a year ({_LONGEST_SYNC_INTERVAL:.0f}), "
                f"not {sync!r}: for no fsync at all, give 'never'"
            )
        interval = float(sync)
    else:
        raise ConfigurationError(f"sync must be 'never', 'always' or a number of seconds >= 0, not {sync!r}")
    if not isinstance(max_file_size, int) or isinstance(max_file_size, bool) or max_file_size < MIN_FILE_SIZE:
        raise ConfigurationError(f"max_file_size must be an int >= {MIN_FILE_SIZE}, not {max_file_size!r}")
    if max_file_size >= MAX_FILE_SIZE:
        raise ConfigurationError(f"max_file_size must be below 1 TiB, not {max_file_size!r}")
    auto_merge_threshold(auto_merge)
    return interval


def auto_merge_threshold(auto_merge: object) -> float | None:
    """The dead share of the closed files at which ``auto_merge`` merges, or None: no automatic merge.

    None and 0 both turn it off (a merge once no byte is dead is no threshold), as ``auto_merge=0``
    or ``off`` in a ``kvb://`` URL does; anything else but a fraction strictly between 0 and 1 raises
    :class:`ConfigurationError`, saying what turns it off.
    """
    if auto_merge is None:
        return None
    if isinstance(auto_merge, (int, float)) and not isinstance(auto_merge, bool):
        if auto_merge == 0:
            return None
        if 0 < auto_merge < 1:
            return float(auto_merge)
    raise ConfigurationError(
        f"auto_merge must be a fraction between 0 and 1 such as 0.5, or None or 0 to turn it off, "
        f"not {auto_merge!r}"
    )


def _check_key(key: object) -> bytes:
    """Return ``key`` as bytes or raise the project's TypeError/ValueError."""
    if type(key) is not bytes:
        if isinstance(key, (bytes, bytearray, memoryview)):
            key = bytes(key)
        else:
            raise InvalidKeyError(
                f"keys must be bytes, not {type(key).__name__}; encode str keys first "
                "(kv_backend.Store accepts str keys)"
            )
    n = len(key)
    if n == 0 or n > rec.MAX_KEY_SIZE:
        raise KeyTooLargeError(f"keys must be 1 to {rec.MAX_KEY_SIZE} bytes long, got {n} bytes")
    return key


def _check_flag(value: object, name: str) -> bool:
    """``value`` if it is True or False; InvalidArgumentError for anything else: a truthy "no" or
    "false" (from a config file, a query string) would otherwise mean yes."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False, not {value!r}")
    return value


def _check_bound(bound: object, name: str) -> bytes:
    """Return a scan's ``prefix`` or ``start`` as bytes; any length is fine, as it is no stored key.

    A bound longer than the longest key simply matches nothing (a prefix) or lies past every key (a
    start), so only its type is checked: a bytes-like object, as for a key.
    """
    if isinstance(bound, (bytes, bytearray, memoryview)):
        return bytes(bound)
    raise InvalidKeyError(f"{name} must be bytes, not {type(bound).__name__}; encode str bounds first")


def _check_value(value: object) -> bytes:
    if type(value) is not bytes:
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        else:
            raise InvalidValueError(
                f"values must be bytes, not {type(value).__name__}; serialize first "
                "(kv_backend.Store pickles or JSON-encodes values for you)"
            )
    if len(value) > rec.MAX_VALUE_SIZE:
        raise ValueTooLargeError(f"values may be at most {rec.MAX_VALUE_SIZE} bytes, got {len(value)}")
    return value


def _other_number(value: Any, must: str) -> float:
    """``value``, a number of another type than ``int``/``float`` (NumPy's, ``Decimal``,
    ``Fraction``), as a float; InvalidArgumentError for anything else (``bool`` too)."""
    # (A Decimal is no numbers.Real. Not imported for this test: a process that has no decimal module
    # imported has no Decimal to pass.)
    decimal = sys.modules.get("decimal")
    if (
        isinstance(value, numbers.Real) or (decimal is not None and isinstance(value, decimal.Decimal))
    ) and not isinstance(value, bool):
        try:
            return float(value)
        except (OverflowError, ValueError):
            pass
    raise InvalidArgumentError(f"{must}, not {type(value).__name__}")


def _expiry(ttl: float | None) -> float:
    """Absolute expiry time for a TTL in seconds (0.0 = never)."""
    if ttl is None:
        return 0.0
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool):
        ttl = _other_number(ttl, "ttl must be a number of seconds or None")
    try:
        finite = math.isfinite(ttl)
    except OverflowError:  # an int beyond a float's range
        if ttl < 0:
            return _time()  # long past: every caller deletes the key, as for any ttl <= 0
        raise ConfigurationError(  # (not the number itself: str() refuses an int of over 4300 digits)
            f"ttl is too large to be a number of seconds (an int of {int(ttl).bit_length()} bits); "
            "use None for a key that never expires"
        ) from None
    if not finite:
        raise ConfigurationError(f"ttl must be a finite number of seconds (or None for never), not {ttl!r}")
    return _time() + ttl


def _expiry_at(ttl: float | None, expires_at: float) -> float | None:
    """The validated absolute expiry given as ``expires_at`` (UNIX seconds; 0 = never), or None
    when that time has already passed and the key must go; ``ttl`` must not be given as well."""
    if ttl is not None:
        raise InvalidArgumentError("give ttl or expires_at, not both")
    if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
        expires_at = _other_number(expires_at, "expires_at must be a UNIX time in seconds")
    try:
        finite = math.isfinite(expires_at)
    except OverflowError:  # an int beyond a float's range (too long for str() too, maybe)
        raise ConfigurationError(
            f"expires_at must be a finite UNIX time in seconds (0 for never), not an int of "
            f"{int(expires_at).bit_length()} bits"
        ) from None
    if not finite or expires_at < 0:
        raise ConfigurationError(
            f"expires_at must be a finite UNIX time in seconds (0 for never), not {expires_at!r}"
        )
    expiry = float(expires_at)
    return None if expiry and expiry <= _time() else expiry
