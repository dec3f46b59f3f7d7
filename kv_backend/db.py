"""The storage engine: :class:`DB`, a crash-safe, multi-process Bitcask log.

Every write is appended to the active data file under the store's
cross-process write lock and then *published* in the shared state page.
Every process keeps its own key directory (key -> packed file/offset/size)
and, before serving a call, compares one word of the state page with the
value it last saw; when it moved, it replays just the records appended since.
See docs/protocol.md for the full protocol and its crash-safety argument.
"""

from __future__ import annotations

import errno
import math
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Literal, TypeVar, overload

from kv_backend import record as rec
from kv_backend.errors import (
    ConfigurationError,
    CorruptionError,
    DatabaseClosedError,
    InvalidKeyError,
    InvalidValueError,
    KeyTooLargeError,
    NotAnIntegerError,
    ReadOnlyError,
    StorageError,
    ValueTooLargeError,
)
from kv_backend.files import (
    FORMAT_FILE,
    FORMAT_TEXT,
    LOCK_FILE,
    MERGE_LOCK_FILE,
    STATE_FILE,
    TMP_SUFFIX,
    DataFile,
    FileId,
    data_name,
    fsync_dir,
    fsync_file,
    hint_name,
    list_data_files,
    prepare_directory,
    storage_error,
    write_all,
)
from kv_backend.hint import load as load_hints
from kv_backend.keydir import KeyDir
from kv_backend.locking import MergeLock, WriteLock
from kv_backend.state import SharedState, unpack_tail

__all__ = ["DB", "Batch", "SnapshotFile"]

_HEADER_SIZE = rec.HEADER_SIZE
_unpack_header = rec.HEADER.unpack_from
#: (crc, key length, expiry) of a record header: what a read checks.
_unpack_check = struct.Struct("<I2xI4xd").unpack_from
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
_time = time.time
_M32 = (1 << 32) - 1
_M40 = (1 << 40) - 1
_FIRST_FILE: FileId = (1, 0)
_MISSING: Any = object()

DEFAULT_MAX_FILE_SIZE = 128 << 20

T = TypeVar("T")

# Every open DB of this process, so that a forked child can reopen their locks.
_open_dbs: weakref.WeakSet[DB] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for db in list(_open_dbs):
        db._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    n = len(key)  # type: ignore[arg-type]
    if n == 0 or n > rec.MAX_KEY_SIZE:
        raise KeyTooLargeError(f"keys must be 1 to {rec.MAX_KEY_SIZE} bytes long, got {n} bytes")
    return key  # type: ignore[return-value]


def _check_value(value: object) -> bytes:
    if type(value) is not bytes:
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        else:
            raise InvalidValueError(
                f"values must be bytes, not {type(value).__name__}; serialize first "
                "(kv_backend.Store pickles or JSON-encodes values for you)"
            )
    if len(value) > rec.MAX_VALUE_SIZE:  # type: ignore[arg-type]
        raise ValueTooLargeError(
            f"values may be at most {rec.MAX_VALUE_SIZE} bytes, got {len(value)}"  # type: ignore[arg-type]
        )
    return value  # type: ignore[return-value]


def _expiry(ttl: float | None) -> float:
    """Absolute expiry time for a TTL in seconds (0.0 = never)."""
    if ttl is None:
        return 0.0
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool):
        raise TypeError(f"ttl must be a number of seconds or None, not {type(ttl).__name__}")
    if not math.isfinite(ttl):
        raise ConfigurationError(f"ttl must be a finite number of seconds (or None for never), not {ttl!r}")
    return _time() + ttl


def _expiry_at(ttl: float | None, expires_at: float) -> float | None:
    """The validated absolute expiry given as ``expires_at`` (UNIX seconds; 0 = never), or None
    when that time has already passed and the key must go; ``ttl`` must not be given as well."""
    if ttl is not None:
        raise TypeError("give ttl or expires_at, not both")
    if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
        raise TypeError(f"expires_at must be a UNIX time in seconds, not {type(expires_at).__name__}")
    if not math.isfinite(expires_at) or expires_at < 0:
        raise ConfigurationError(
            f"expires_at must be a finite UNIX time in seconds (0 for never), not {expires_at!r}"
        )
    expiry = float(expires_at)
    return None if expiry and expiry <= _time() else expiry


class SnapshotFile:
    """One file of a frozen snapshot: its name, an open fd, and how many bytes belong to it."""

    __slots__ = ("fd", "length", "name")

    def __init__(self, name: str, fd: int, length: int) -> None:
        self.name = name
        self.fd = fd
        self.length = length

    def read(self, offset: int, size: int) -> bytes:
        """Read up to ``size`` bytes at ``offset`` (never past ``length``)."""
        size = max(0, min(size, self.length - offset))
        return os.pread(self.fd, size, offset) if size else b""

    def close(self) -> None:
        """Close the fd."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __repr__(self) -> str:
        return f"<SnapshotFile {self.name} {self.length} bytes>"


class Batch:
    """Writes collected by :meth:`DB.batch` and applied all together, or not at all."""

    def __init__(self, db: DB) -> None:
        self._db = db
        self._ops: list[tuple[int, bytes, bytes, float]] = []

    def put(
        self, key: bytes, value: bytes, ttl: float | None = None, *, expires_at: float | None = None
    ) -> None:
        """Add a put of ``key`` to the batch (``ttl <= 0`` makes it a delete).

        ``expires_at`` gives the expiry as an absolute UNIX time instead, e.g. to
        keep a key's current expiry exactly.
        """
        if type(key) is not bytes or not 0 < len(key) <= _MAX_KEY:
            key = _check_key(key)
        if type(value) is not bytes or len(value) > _MAX_VALUE:
            value = _check_value(value)
        if ttl is None and (expires_at is None or (type(expires_at) is float and expires_at == 0.0)):
            self._ops.append((_PUT, key, value, 0.0))  # no expiry: the usual case, checked first
        elif expires_at is not None:
            expiry = _expiry_at(ttl, expires_at)
            if expiry is None:
                self._ops.append((rec.DELETE, key, b"", 0.0))
            else:
                self._ops.append((rec.PUT, key, value, expiry))
        elif ttl is not None and ttl <= 0:
            self._ops.append((rec.DELETE, key, b"", 0.0))
        else:
            self._ops.append((rec.PUT, key, value, _expiry(ttl)))

    def delete(self, key: bytes) -> None:
        """Add a delete of ``key`` to the batch."""
        self._ops.append((rec.DELETE, _check_key(key), b"", 0.0))

    def __len__(self) -> int:
        return len(self._ops)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        ops, self._ops = self._ops, []
        if exc_type is None and ops:
            self._db._commit_batch(ops)


class _Locked:
    """What :meth:`DB.locked` returns: holds the write lock for the ``with`` block."""

    __slots__ = ("_db",)

    def __init__(self, db: DB) -> None:
        self._db = db

    def __enter__(self) -> DB:
        db = self._db
        lock = db._lock
        if lock._depth and lock.held:
            # Nested in this thread's own hold: the view is already current and
            # nobody else can write, so only the nesting count changes.
            lock.acquire()
            return db
        db._check_writable()
        db._pre_catch_up()
        lock.acquire()
        try:
            db._writer_catch_up()
        except BaseException:
            lock.release()
            raise
        return db

    def __exit__(self, *exc: object) -> None:
        self._db._lock.release()


class _ClosedWord:
    """Stands in for the state page's tail word after close: any use raises."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def value(self) -> int:
        raise DatabaseClosedError(f"the store at {self.path} is closed; open a new DB to use it again")


class _StaticWord:
    """Stands in for the tail word when no state page exists (a read-only snapshot)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class DB(MutableMapping[bytes, bytes]):
    """A durable key-value store in a directory, shared safely by many processes.

    ``sync`` chooses durability against power loss: ``"never"`` (the default)
    leaves flushing to the OS (a killed *process* still loses nothing that
    returned), ``"always"`` fsyncs before each write returns, and a number of
    seconds fsyncs at most that often. ``max_file_size`` is the size at which
    the active data file is closed and a new one started. ``auto_merge``, a
    fraction between 0 and 1, merges in the background once that share of the
    closed files' bytes is dead. A DB is equal only to itself.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sync: Literal["never", "always"] | float = "never",
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        read_only: bool = False,
        auto_merge: float | None = None,
    ) -> None:
        self._closed = True  # until fully open, so __del__ and close() do nothing
        self.path = os.path.abspath(os.fspath(path))
        if sync in ("never", "always"):
            self._sync_interval: float | None = None if sync == "never" else 0.0
        elif isinstance(sync, (int, float)) and not isinstance(sync, bool) and sync >= 0:
            self._sync_interval = float(sync)
        else:
            raise ConfigurationError(
                f"sync must be 'never', 'always' or a number of seconds >= 0, not {sync!r}"
            )
        self.sync_mode = sync
        if not isinstance(max_file_size, int) or isinstance(max_file_size, bool) or max_file_size < 4096:
            raise ConfigurationError(f"max_file_size must be an int >= 4096, not {max_file_size!r}")
        if max_file_size > _M40:
            raise ConfigurationError(f"max_file_size must be below 1 TiB, not {max_file_size!r}")
        self.max_file_size = max_file_size
        if auto_merge is not None and (
            not isinstance(auto_merge, (int, float)) or isinstance(auto_merge, bool) or not 0 < auto_merge < 1
        ):
            raise ConfigurationError(f"auto_merge must be a fraction between 0 and 1, not {auto_merge!r}")
        self.auto_merge = auto_merge
        self.read_only = bool(read_only)
        new = prepare_directory(self.path, create=not self.read_only)
        self._lock = WriteLock(os.path.join(self.path, LOCK_FILE), create=not self.read_only)
        self._rlock = threading.Lock()  # guards this process's view while it changes
        self._state: SharedState | None = None
        self._tailw: Any = _StaticWord()
        self._intentw: Any = _StaticWord()
        self._seen = 0
        self._gen = -1
        self._tail: tuple[FileId, int] = (_FIRST_FILE, 0)
        self._ix = KeyDir()
        self._files: list[DataFile] = []
        self._view: tuple[dict[bytes, int], list[Any]] = (self._ix.kd, [])
        self._fidx: dict[FileId, int] = {}
        self._sizes: dict[FileId, int] = {}
        self._corrupt: list[tuple[str, int]] = []
        self._active: DataFile | None = None
        self._active_idx = 0
        self._alloc = 0
        self._merge_thread: threading.Thread | None = None
        self._merge_lock: MergeLock | None = None
        try:
            if new:
                self._create_store()
            self._open_state()
            self._closed = False
            self._full_reload()
        except BaseException:
            self._closed = True
            if self._state is not None:
                self._state.close()
            self._lock.close()
            raise
        _open_dbs.add(self)

    # ------------------------------------------------------------------ open

    def _create_store(self) -> None:
        with self._lock:
            marker = os.path.join(self.path, FORMAT_FILE)
            if os.path.exists(marker):
                return
            try:
                tmp = marker + TMP_SUFFIX
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(FORMAT_TEXT)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, marker)
                fsync_dir(self.path)
            except OSError as exc:
                raise storage_error(exc, f"cannot create a store in {self.path}") from exc

    def _open_state(self) -> None:
        path = os.path.join(self.path, STATE_FILE)
        if self.read_only and not os.path.exists(path):
            # No writer has opened this store yet. Create the (empty, uninitialised)
            # page if the directory allows, so that a writer opening later publishes
            # through it and this reader sees its writes; otherwise nobody can write
            # here, and a static snapshot is exact.
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                pass
            except OSError:
                return
            else:
                try:
                    os.ftruncate(fd, 4096)
                finally:
                    os.close(fd)
        try:
            st = SharedState(path, writable=not self.read_only)
        except ValueError:
            if not self.read_only:
                raise
            return
        self._state = st
        self._tailw = st.tail
        self._intentw = st.intent

    def _published(self) -> tuple[int, int] | None:
        """Return the published (tail word, generation), or None without a valid page."""
        st = self._state
        if st is None or not st.initialized:
            return None
        return st.tail.value, st.generation.value

    def _recover_tail_locked(self) -> None:
        """Make the state page and the active file agree (caller holds the write lock).

        Bytes past the published end were written by a writer that died before
        publishing (its intent word differs from the tail word). Complete
        records and committed batches among them are kept (they may have been
        fsynced), the first incomplete or damaged one and everything after it
        is cut off. Anything unusual (no page yet, a file shorter than
        published) bumps the generation so that every process rebuilds its
        key directory.
        """
        st = self._state
        assert st is not None and st.writable
        fids = list_data_files(self.path)
        gen = max(self._gen, 0) + 1
        if not fids or fids[-1][1] != 0:
            # No data file yet, or the newest file is a merge output: start a new active file.
            major = fids[-1][0] + 1 if fids else _FIRST_FILE[0]
            self._new_data_file((major, 0))
            if st.initialized:
                gen = max(gen, st.generation.value + 1)
            st.initialize(gen, major, rec.FILE_HEADER_SIZE)
            return
        active = fids[-1]
        path = os.path.join(self.path, data_name(active))
        start = rec.FILE_HEADER_SIZE
        if st.initialized:
            tail = st.tail.value
            major, end = unpack_tail(tail)
            if major == active[0]:
                if st.intent.value == tail and _clean_after(path, end):
                    return  # the common case: nothing to recover
                start, gen = end, st.generation.value
            else:
                gen = max(gen, st.generation.value + 1)
                if (major, 0) in fids and major < active[0]:
                    # A rotation died between creating the next file and publishing it:
                    # finish closing the previous file (cut its reserved zeros).
                    self._close_exactly(os.path.join(self.path, data_name((major, 0))), end)
        elif len(fids) > 1 and fids[-2][1] == 0:
            self._close_exactly(os.path.join(self.path, data_name(fids[-2])), rec.FILE_HEADER_SIZE)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise storage_error(exc, f"cannot open {path} for recovery") from exc
        try:
            size = os.fstat(fd).st_size
            if size < rec.FILE_HEADER_SIZE:
                os.ftruncate(fd, 0)
                write_all(fd, rec.FILE_HEADER_BYTES, 0)
                end = rec.FILE_HEADER_SIZE
            else:
                if start > size:
                    start = rec.FILE_HEADER_SIZE  # the file lost bytes: rescan it all
                    gen = max(gen, st.generation.value + 1)
                end = _valid_end(fd, start, size)
                if end < size:
                    os.ftruncate(fd, end)
                    if self._sync_interval is not None:
                        fsync_file(fd)
        finally:
            os.close(fd)
        st.initialize(gen, active[0], end)

    def _close_exactly(self, path: str, start: int) -> None:
        """Cut the reserved zeros off a file that should have been closed by a rotation."""
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise storage_error(exc, f"cannot open {path} for recovery") from exc
        try:
            size = os.fstat(fd).st_size
            end = _valid_end(fd, min(max(start, rec.FILE_HEADER_SIZE), size), size)
            # Only reserved zeros are cut: anything else after the last good record
            # is damage that `kvb check` must report, never data to throw away.
            if end < size and not _pread(fd, size - end, end).strip(b"\0"):
                os.ftruncate(fd, end)
                if self._sync_interval is not None:
                    fsync_file(fd)
        finally:
            os.close(fd)

    def _full_reload(self) -> None:
        """Rebuild the key directory from the data files (open, and after a merge).

        Listing and opening the files happens under the write lock, so it sees
        a file set no merge is changing; the replay itself runs outside it, so
        other processes keep writing meanwhile.
        """
        writable = not self.read_only
        with self._lock:
            if writable:
                self._clean_merge_leftovers()
                self._recover_tail_locked()
            published = self._published()
            fids = list_data_files(self.path)
            files: list[DataFile] = []
            for fid in fids:
                try:
                    files.append(DataFile(self.path, fid, writable=writable and fid == fids[-1]))
                except OSError as exc:
                    raise storage_error(exc, f"cannot open data file {data_name(fid)}") from exc
        if published is not None:
            tail, gen = published
            major, end = unpack_tail(tail)
            active_fid: FileId = (major, 0)
        else:
            tail, gen, end = 0, 0, -1
            active_fid = fids[-1] if fids else _FIRST_FILE
        sizes = {f.fid: f.size() for f in files}
        ix = KeyDir()
        fidx: dict[FileId, int] = {}
        file_sizes: dict[FileId, int] = {}
        corrupt: list[tuple[str, int]] = []
        maps: list[Any] = []
        for idx, f in enumerate(files):
            fidx[f.fid] = idx
            limit = end if (f.fid == active_fid and end >= 0) else sizes[f.fid]
            hints = None
            if f.fid != active_fid:
                hints = load_hints(os.path.join(self.path, hint_name(f.fid)), sizes[f.fid])
            if hints is not None:
                ix.apply_hints(idx, hints)
                file_sizes[f.fid] = sizes[f.fid]
            else:
                file_sizes[f.fid] = _replay(ix, f, idx, rec.FILE_HEADER_SIZE, limit, corrupt)
            maps.append(f.mm if f.mm is not None else b"")
        if self._ix.sorted is not None:
            ix.ensure_sorted()
        # Install under the write lock too, so no write of this process can fall
        # between the snapshot and the install; anything published since the
        # snapshot is replayed by the next catch-up (``_seen`` is the snapshot's).
        with self._lock, self._rlock:
            self._ix = ix
            self._files = files
            self._view = (ix.kd, maps)
            self._fidx = fidx
            self._sizes = file_sizes
            self._corrupt = corrupt
            self._gen = gen
            self._tail = (active_fid, file_sizes.get(active_fid, rec.FILE_HEADER_SIZE))
            self._active = files[-1] if (files and writable and files[-1].fid == active_fid) else None
            self._active_idx = len(files) - 1
            self._alloc = sizes.get(active_fid, 0)
            self._seen = tail

    def _clean_merge_leftovers(self) -> None:
        """Remove temporary files of a merge that died (only when no merge runs)."""
        tmps = [n for n in os.listdir(self.path) if n.endswith(TMP_SUFFIX)]
        if not tmps:
            return
        lock = MergeLock(os.path.join(self.path, MERGE_LOCK_FILE))
        if not lock.try_acquire():
            return
        try:
            for name in tmps:
                try:
                    os.unlink(os.path.join(self.path, name))
                except FileNotFoundError:
                    pass
        finally:
            lock.release()

    # --------------------------------------------------------------- replay

    def _refresh(self) -> None:
        """Catch up with records other processes published since we last looked."""
        self._rlock.acquire()
        try:
            done = self._catch_up()
        finally:
            self._rlock.release()
        if not done:
            self._full_reload()

    def _catch_up(self) -> bool:
        """Replay what was published since we last looked (caller holds ``_rlock``).

        Returns False when the file set changed (a merge) and the caller must
        do a full reload instead.
        """
        if self._closed:
            self._raise_closed()
        published = self._published()
        if published is None or published[0] == self._seen:
            return True
        tail, gen = published
        if gen != self._gen:
            return False
        major, end = unpack_tail(tail)
        fid: FileId = (major, 0)
        cur, pos = self._tail
        files = self._files
        maps = self._view[1]
        ix = self._ix
        writable = not self.read_only
        try:
            while True:
                idx = self._fidx.get(cur)
                if idx is None:
                    f = DataFile(self.path, cur, writable=writable and cur == fid)
                    files.append(f)
                    maps.append(f.mm if f.mm is not None else b"")
                    idx = self._fidx[cur] = len(files) - 1
                    if writable and cur == fid:
                        self._active = f
                        self._active_idx = idx
                        self._alloc = f.size()
                f = files[idx]
                if cur == fid:
                    stop = end
                    self._sizes[cur] = _replay_tail(ix, f, idx, pos, stop, self._corrupt)
                else:
                    stop = f.size()
                    self._sizes[cur] = _replay(ix, f, idx, pos, stop, self._corrupt)
                if len(maps[idx]) < stop:
                    maps[idx] = f.remap()
                if cur == fid:
                    break
                cur, pos = (cur[0] + 1, 0), rec.FILE_HEADER_SIZE
        except FileNotFoundError:
            return False  # the file set changed under us (a merge finished)
        self._tail = (fid, end)
        self._seen = tail
        return True

    # ------------------------------------------------------------- reading

    def get(self, key: bytes, default: T = None) -> bytes | T:  # type: ignore[assignment]
        """Return the value stored for ``key``, or ``default`` if it is absent or expired."""
        if self._tailw.value != self._seen:
            self._refresh()
        kd, maps = self._view
        try:
            loc = kd[key]
        except (KeyError, TypeError):
            checked = _check_key(key)
            if checked is not key:
                return self.get(checked, default)
            return default
        # The checks of _get_record, inlined here because this is the hottest read
        # path. One copy: the record past its CRC field, straight from the mapping.
        off = (loc >> 32) & _M40
        mm = maps[loc >> 72]
        body = mm[off + 4 : off + (loc & _M32)]
        crc, klen, expiry = _unpack_check(mm, off)
        if _crc32(body) != crc or klen != len(key) or not body.startswith(key, _BODY_KEY):
            self._raise_corrupt(loc)
        if expiry and expiry <= _time():
            return default
        return body[_BODY_KEY + klen :]

    def get_with_expiry(self, key: bytes) -> tuple[bytes, float | None] | None:
        """Return ``(value, absolute expiry time or None)`` for a live key, or None if absent."""
        found = self._get_record(_check_key(key))
        if found is None:
            return None
        return found[0], (found[1] or None)

    def _get_record(self, key: bytes) -> tuple[bytes, float] | None:
        """Return ``(value, expiry)`` of a live key, or None (expiry 0.0 = never)."""
        if self._tailw.value != self._seen:
            self._refresh()
        kd, maps = self._view
        loc = kd.get(key)
        if loc is None:
            return None
        off = (loc >> 32) & _M40
        mm = maps[loc >> 72]
        body = mm[off + 4 : off + (loc & _M32)]
        crc, klen, expiry = _unpack_check(mm, off)
        if _crc32(body) != crc or klen != len(key) or not body.startswith(key, _BODY_KEY):
            self._raise_corrupt(loc)
        if expiry and expiry <= _time():
            return None
        return body[_BODY_KEY + klen :], expiry

    def _first_value_byte(self, key: bytes) -> int | None:
        """The first byte of ``key``'s live value, unchecked; None if absent, expired or empty.

        Reads one byte and skips the CRC check, so it must only choose a code
        path (the structures layer reads a key's type tag with it before
        overwriting the key) and never be returned to a caller as data.
        """
        if self._tailw.value != self._seen:
            self._refresh()
        kd, maps = self._view
        loc = kd.get(key)
        if loc is None:
            return None
        exp = self._ix.exp
        if exp:
            expiry = exp.get(key)
            if expiry and expiry <= _time():
                return None
        off = (loc >> 32) & _M40
        start = off + _HEADER_SIZE + len(key)
        if start >= off + (loc & _M32):
            return None
        return maps[loc >> 72][start]

    def _raise_corrupt(self, loc: int) -> None:
        offset = (loc >> 32) & _M40
        files = self._files
        idx = loc >> 72
        path = files[idx].path if idx < len(files) else self.path
        raise CorruptionError(
            f"record at offset {offset} of {path} failed its checksum or holds another key; the value is "
            "not returned. Run 'kvb check' on the store and restore the key from a backup.",
            path=path,
            offset=offset,
        )

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if self._tailw.value != self._seen:
            self._refresh()
        try:
            found = key in self._view[0]
        except TypeError:
            found = False
        if not found:
            checked = _check_key(key)
            return checked is not key and checked in self
        exp = self._ix.exp.get(key)  # type: ignore[call-overload]
        return not (exp and exp <= _time())

    def ttl(self, key: bytes) -> float | None:
        """Return the seconds ``key`` has left to live, or None if it never expires.

        Raises ``KeyError`` if the key does not exist (or has expired).
        """
        key = _check_key(key)
        found = self._get_record(key)
        if found is None:
            raise KeyError(key)
        expiry = found[1]
        return max(expiry - _time(), 0.0) if expiry else None

    def __len__(self) -> int:
        if self._tailw.value != self._seen:
            self._refresh()
        ix = self._ix
        return len(ix.kd) - ix.expired_count()

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def index_size(self) -> int:
        """Return the number of keys in the key directory, in constant time.

        Unlike ``len()``, this counts keys that have expired but were not yet
        dropped (see :meth:`purge_expired`); use it where an estimate will do,
        such as deciding when a cache should cull.
        """
        if self._tailw.value != self._seen:
            self._refresh()
        return len(self._view[0])

    def purge_expired(self) -> int:
        """Drop expired keys from this process's key directory; return how many.

        Expired records take no space in memory afterwards; their bytes on disk
        are reclaimed by the next merge. Nothing is written.
        """
        if self._tailw.value != self._seen:
            self._refresh()
        with self._rlock:
            ix = self._ix
            now = _time()
            dead = [k for k, e in ix.exp.items() if e <= now]
            kd = ix.kd
            for k in dead:
                loc = kd.pop(k, None)
                if loc is not None:
                    ix.live -= loc & _M32
                    if ix.sorted is not None:
                        ix.note_delete(k)
                del ix.exp[k]
            return len(dead)

    def unordered_keys(self) -> list[bytes]:
        """Return a snapshot list of the live keys in no particular order.

        Cheaper than :meth:`keys`: no sorted index is built or maintained.
        """
        if self._tailw.value != self._seen:
            self._refresh()
        with self._rlock:
            ix = self._ix
            if not ix.exp:
                return list(ix.kd)
            now = _time()
            exp = ix.exp
            return [k for k in ix.kd if not (k in exp and exp[k] <= now)]

    def keys(  # type: ignore[override]
        self, *, prefix: bytes = b"", start: bytes | None = None, reverse: bool = False
    ) -> Iterator[bytes]:
        """Yield the live keys in byte order, optionally only those with ``prefix``.

        ``start`` is the first key to consider (inclusive); with ``reverse`` it is
        the last. The first ordered scan builds a sorted index (one more reference
        per key); from then on inserts and deletes only note their key in a set and
        each scan first applies what they noted (see :mod:`kv_backend.keydir`).
        Changes made while iterating are seen or not, but never break the iteration.
        Keys are taken in chunks that start small and grow, so a caller that stops
        after a few keys (a range with a count) does not pay for a long chunk.
        """
        if type(prefix) is not bytes:
            prefix = bytes(_check_key(prefix)) if prefix else b""
        if start is not None:
            start = _check_key(start) if start else b""
        last: bytes | None = None
        size = 8
        while True:
            chunk = self._key_chunk(prefix, start, reverse, last, size)
            if not chunk:
                return
            yield from chunk
            last = chunk[-1]
            if size < 512:
                size <<= 2

    def _key_chunk(
        self, prefix: bytes, start: bytes | None, reverse: bool, last: bytes | None, size: int = 512
    ) -> list[bytes]:
        """Return the next up to ``size`` keys after ``last`` (a snapshot, taken under ``_rlock``)."""
        if self._tailw.value != self._seen:
            self._refresh()
        with self._rlock:
            ix = self._ix
            srt = ix.ensure_sorted()
            if not reverse:
                lo = prefix
                if start is not None and start > lo:
                    lo = start
                if last is not None:
                    it = srt.irange(minimum=last, inclusive=(False, True))
                else:
                    it = srt.irange(minimum=lo)
            else:
                hi = _prefix_end(prefix) if prefix else None
                inclusive = (True, False)
                if start is not None and (hi is None or start < hi):
                    hi, inclusive = start, (True, True)
                if last is not None:
                    hi, inclusive = last, (True, False)
                it = srt.irange(maximum=hi, inclusive=inclusive, reverse=True)
            exp = ix.exp
            now = _time() if exp else 0.0
            out: list[bytes] = []
            for key in it:
                if prefix and not key.startswith(prefix):
                    if not reverse or key < prefix:
                        break
                    continue
                if exp:
                    e = exp.get(key)
                    if e and e <= now:
                        continue
                out.append(key)
                if len(out) >= size:
                    break
            return out

    def items(  # type: ignore[override]
        self, *, prefix: bytes = b"", start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` pairs in key order (see :meth:`keys`)."""
        for key in self.keys(prefix=prefix, start=start, reverse=reverse):
            value = self.get(key, _MISSING)
            if value is not _MISSING:
                yield key, value

    def values(self) -> Iterator[bytes]:  # type: ignore[override]
        """Yield the values in key order."""
        for _, value in self.items():
            yield value

    # ------------------------------------------------------------- writing

    def _check_writable(self) -> None:
        if self._closed:
            self._raise_closed()
        if self.read_only:
            raise ReadOnlyError(
                f"the store at {self.path} was opened with read_only=True; open it writable to change it"
            )

    def locked(self) -> _Locked:
        """Hold the store's cross-process write lock for a read-modify-write sequence.

        Use it as ``with db.locked():``. Inside the block no other process or
        thread can write, and reads see every write published before it. Calls
        may nest; writes inside are applied at once (wrap them in :meth:`batch`
        to make them all-or-nothing).
        """
        return _Locked(self)

    def _pre_catch_up(self) -> None:
        """Replay other processes' writes *before* taking the write lock.

        With several writers, each process must index what the others wrote.
        Doing most of that outside the lock keeps the time the lock is held,
        and so the wait of every other writer, short; the catch-up under the
        lock then only has the last few records left.
        """
        if self._tailw.value != self._seen:
            self._refresh()

    def _writer_catch_up(self) -> None:
        """Bring the view up to date and recover a dead writer's tail (write lock held)."""
        if self._tailw.value != self._seen:
            self._refresh()
        if self._intentw.value != self._seen or self._active is None:
            self._recover_tail_locked()
            self._refresh()
            if self._active is None or self._active.fid != self._tail[0]:
                self._full_reload()

    def _write(self, data: bytes, entries: list[tuple[int, bytes, int, int, float]]) -> None:
        """Append ``data`` at the tail, publish it, and index ``entries`` (write lock held).

        ``entries`` are ``(type, key, offset within data, size, expiry)``. The
        intent word announces the new tail before the write, so that the next
        writer can tell a writer died half-way; on an OS error nothing is
        published (see :meth:`_append_at`).
        """
        (major, _), end = self._tail
        n = len(data)
        if end + n > self.max_file_size and end > rec.FILE_HEADER_SIZE:
            self._rotate()
            (major, _), end = self._tail
        new_end = end + n
        if new_end > self._alloc:
            self._extend(new_end)
        tail = (major << 40) | new_end
        self._append_at(data, end, tail)
        self._rlock.acquire()
        try:
            self._tailw.value = tail
            self._seen = tail
            self._tail = ((major, 0), new_end)
            self._ix.apply(self._active_idx, end, entries)
        finally:
            self._rlock.release()

    def _write_put(self, data: bytes, key: bytes) -> None:
        """The hot path of :meth:`_write`: one put without expiry that fits (write lock held)."""
        fid, end = self._tail
        n = len(data)
        new_end = end + n
        if new_end > self._alloc or new_end > self.max_file_size:
            self._write(data, [(_PUT, key, 0, n, 0.0)])
            return
        tail = (fid[0] << 40) | new_end
        # _append_at inlined: this is the hottest write path.
        active = self._active
        self._intentw.value = tail
        try:
            if _pwrite(active.fd, data, end) != n:  # type: ignore[union-attr]
                raise OSError(errno.EIO, "short write")
        except OSError:
            self._intentw.value = self._seen
            self._append_at(data, end, tail)  # retries, or raises the project's StorageError
        rlock = self._rlock
        rlock.acquire()
        try:
            self._tailw.value = tail
            self._seen = tail
            self._tail = (fid, new_end)
            ix = self._ix
            kd = ix.kd
            old = kd.get(key)
            kd[key] = (self._active_idx << 72) | (end << 32) | n
            if old is None:
                ix.live += n
                if ix.sorted is not None:  # ix.note_insert(key), inlined
                    if key in ix.sorted_del:
                        ix.sorted_del.remove(key)
                    else:
                        adds = ix.sorted_add
                        adds.add(key)
                        if len(adds) > ix.sorted_cap:
                            ix.check_pending()
            else:
                ix.live += n - (old & _M32)
                if ix.exp:
                    ix.exp.pop(key, None)
        finally:
            rlock.release()

    def _append_unindexed(self, data: bytes) -> bool:
        """Append ``data`` at the published tail without indexing first (write lock held).

        A put reads nothing, so when other processes wrote since this process
        last looked it does not need their records indexed to append its own:
        it writes at the published tail and leaves every record, its own
        included, to the next catch-up, which replays them in log order outside
        the lock. This keeps the lock held for one ``pwrite`` however busy the
        other writers are. When the ordinary path must run instead (a dead
        writer's tail to recover, a merge or rotation this process has not
        seen, a full file to rotate), it catches up the ordinary way, writes
        nothing and returns False.
        """
        st = self._state
        active = self._active
        tail_now = self._tailw.value
        major, end = unpack_tail(tail_now)
        new_end = end + len(data)
        if (
            st is None
            or active is None
            or not st.initialized
            or self._intentw.value != tail_now
            or st.generation.value != self._gen
            or active.fid[0] != major
            or new_end > self.max_file_size
        ):
            self._writer_catch_up()
            return False
        if new_end > self._alloc:
            self._extend(new_end)
        tail = (major << 40) | new_end
        self._append_at(data, end, tail, published=tail_now)
        self._tailw.value = tail
        return True

    def _append_at(self, data: bytes, end: int, tail: int, published: int | None = None) -> None:
        """Announce ``tail`` as the intent, then write ``data`` at ``end`` of the active file.

        On an OS error the intent goes back to the ``published`` tail (by
        default the one this process saw) and nothing is published; the bytes
        written past the published end are overwritten by the next write.
        """
        active = self._active
        assert active is not None
        self._intentw.value = tail
        try:
            written = _pwrite(active.fd, data, end)
            if written != len(data):
                write_all(active.fd, memoryview(data)[written:], end + written)
        except OSError as exc:
            self._intentw.value = self._seen if published is None else published
            raise storage_error(exc, f"cannot append to {active.path}") from exc

    def _extend(self, new_end: int) -> None:
        """Grow the active file ahead of the tail so mappings need remapping rarely."""
        active = self._active
        assert active is not None
        target = ((new_end + _ALLOC_STEP - 1) // _ALLOC_STEP) * _ALLOC_STEP
        try:
            if os.fstat(active.fd).st_size < target:
                os.ftruncate(active.fd, target)
        except OSError as exc:
            raise storage_error(exc, f"cannot grow {active.path}") from exc
        # Map the grown file now, so that writes up to the new size never need to.
        mm = active.remap()
        with self._rlock:
            self._view[1][self._active_idx] = mm
        self._alloc = target

    def _put_locked(self, key: bytes, value: bytes, expiry: float) -> None:
        data = rec.encode(rec.PUT, key, value, expiry)
        self._write(data, [(rec.PUT, key, 0, len(data), expiry)])

    def _delete_locked(self, key: bytes) -> None:
        data = rec.encode(rec.DELETE, key, b"")
        self._write(data, [(rec.DELETE, key, 0, len(data), 0.0)])

    def _rotate(self, auto_merge: bool = True) -> None:
        """Close the active file and start the next one (write lock held)."""
        old = self._active
        assert old is not None
        (major, _), end = self._tail
        try:
            os.ftruncate(old.fd, end)  # drop the preallocated slack: closed files are exact
            if self._sync_interval is not None:
                fsync_file(old.fd)
        except OSError as exc:
            raise storage_error(exc, f"cannot close data file {old.path}") from exc
        fid = (major + 1, 0)
        f = self._new_data_file(fid)
        tail = ((major + 1) << 40) | rec.FILE_HEADER_SIZE
        self._rlock.acquire()
        try:
            self._files.append(f)
            self._view[1].append(f.mm if f.mm is not None else b"")
            self._fidx[fid] = len(self._files) - 1
            self._sizes[(major, 0)] = end
            self._active = f
            self._active_idx = len(self._files) - 1
            self._alloc = f.size()
            self._tail = (fid, rec.FILE_HEADER_SIZE)
            self._intentw.value = tail
            self._tailw.value = tail
            self._seen = tail
        finally:
            self._rlock.release()
        if auto_merge and self.auto_merge is not None:
            self._maybe_auto_merge()

    def _new_data_file(self, fid: FileId) -> DataFile:
        path = os.path.join(self.path, data_name(fid))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                write_all(fd, rec.FILE_HEADER_BYTES, 0)
                if self._sync_interval is not None:
                    fsync_file(fd)
            finally:
                os.close(fd)
            if self._sync_interval is not None:
                fsync_dir(self.path)
            return DataFile(self.path, fid, writable=True)
        except OSError as exc:
            raise storage_error(exc, f"cannot create data file {path}") from exc

    def _after_write(self) -> None:
        """Apply the sync policy once the write lock is released.

        The fsync runs outside the lock, so concurrent writers in several
        processes fsync at the same time and the kernel commits them together.
        """
        interval = self._sync_interval
        if interval is None:
            return
        st = self._state
        assert st is not None
        now = _time()
        if interval and now - st.last_sync.value < interval:
            return
        active = self._active
        if active is not None:
            try:
                fsync_file(active.fd)
            except OSError as exc:
                raise storage_error(exc, f"cannot fsync {active.path}") from exc
            st.last_sync.value = now

    def put(
        self, key: bytes, value: bytes, ttl: float | None = None, *, expires_at: float | None = None
    ) -> None:
        """Store ``value`` under ``key``; with ``ttl`` (seconds) it expires then.

        A ``ttl`` of 0 or less stores nothing and removes the key (Django's and
        Redis's "already expired"). ``expires_at`` gives the expiry as an
        absolute UNIX time instead (0: never), e.g. to keep a key's current
        expiry exactly across a read-modify-write; a time already past removes
        the key.
        """
        if type(key) is not bytes or not 0 < len(key) <= _MAX_KEY:
            key = _check_key(key)
        if type(value) is not bytes or len(value) > _MAX_VALUE:
            value = _check_value(value)
        if expires_at is not None:
            at = _expiry_at(ttl, expires_at)
            if at is None:
                self.delete(key)
                return
            expiry = at
        elif ttl is None:
            expiry = 0.0
        else:
            expiry = _expiry(ttl)
            if ttl <= 0:
                self.delete(key)
                return
        data = _encode(_PUT, key, value, expiry)
        if self.read_only or self._closed:
            self._check_writable()
        if self._tailw.value != self._seen:
            self._refresh()  # replay others' writes before taking the lock, not while holding it
        lock = self._lock
        lock.acquire()
        try:
            # A writer sets the intent word before the tail word, so an intent
            # equal to the tail this process saw means nobody wrote since.
            if self._intentw.value == self._seen or not self._append_unindexed(data):
                if expiry:
                    self._write(data, [(_PUT, key, 0, len(data), expiry)])
                else:
                    self._write_put(data, key)
        finally:
            lock.release()
        if self._sync_interval is not None:
            self._after_write()

    __setitem__ = put

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; return True if it existed (and had not expired)."""
        key = _check_key(key)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            existed = key in self
            if key in self._view[0]:
                self._delete_locked(key)
        self._after_write()
        return existed

    def __delitem__(self, key: bytes) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def put_if_absent(self, key: bytes, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent (or expired); return whether it was stored.

        Atomic across processes: of many concurrent callers exactly one wins.
        """
        key = _check_key(key)
        value = _check_value(value)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            if key in self:
                return False
            self.put(key, value, ttl)
        return True

    def incr(self, key: bytes, delta: int = 1) -> int:
        """Add ``delta`` to the integer stored at ``key`` and return the result.

        Values are ASCII decimal, as in Redis; a missing key counts as 0 and
        the key keeps its expiry. Atomic across processes. Raises
        :class:`~kv_backend.errors.NotAnIntegerError` for a non-integer value.
        """
        if not isinstance(delta, int) or isinstance(delta, bool):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        key = _check_key(key)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            found = self._get_record(key)
            if found is None:
                current, expiry = 0, 0.0
            else:
                raw, expiry = found
                current = _parse_int(key, raw)
            result = current + delta
            self._put_locked(key, str(result).encode("ascii"), expiry)
        self._after_write()
        return result

    def update(self, key: bytes, fn: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Atomically replace the value of ``key`` by ``fn(old_value)``.

        ``fn`` receives the current value (None if absent) and returns the new
        one, or None to delete the key. The key keeps its expiry. If ``fn``
        raises, nothing is written. Returns the new value.
        """
        key = _check_key(key)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            found = self._get_record(key)
            old, expiry = found if found is not None else (None, 0.0)
            new = fn(old)
            if new is None:
                if old is not None:
                    self._delete_locked(key)
            else:
                new = _check_value(new)
                self._put_locked(key, new, expiry)
        self._after_write()
        return new

    def expire(self, key: bytes, ttl: float | None = None, *, expires_at: float | None = None) -> bool:
        """Give ``key`` a new time to live (None: never expire); return whether it exists.

        A ``ttl`` of 0 or less deletes the key, as Redis's EXPIRE does.
        ``expires_at`` gives the expiry as an absolute UNIX time instead (0:
        never); a time already past deletes the key.
        """
        key = _check_key(key)
        if expires_at is None:
            expiry = _expiry(ttl)
            gone = ttl is not None and ttl <= 0
        else:
            at = _expiry_at(ttl, expires_at)
            expiry, gone = (0.0, True) if at is None else (at, False)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            found = self._get_record(key)
            if found is None:
                return False
            if gone:
                self._delete_locked(key)
            else:
                self._put_locked(key, found[0], expiry)
        self._after_write()
        return True

    def persist(self, key: bytes) -> bool:
        """Remove the expiry of ``key``; return whether it exists."""
        return self.expire(key, None)

    @overload
    def pop(self, key: bytes) -> bytes: ...
    @overload
    def pop(self, key: bytes, default: bytes | T) -> bytes | T: ...
    def pop(self, key: bytes, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``), atomically."""
        key = _check_key(key)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            value = self.get(key, _MISSING)
            if value is _MISSING:
                if default is _MISSING:
                    raise KeyError(key)
                return default
            self._delete_locked(key)
        self._after_write()
        return value

    def batch(self) -> Batch:
        """Collect puts and deletes and apply them all at once, or none of them.

        Use it as ``with db.batch() as b:``. The batch is written as one run of
        records closed by a COMMIT record; an exception inside the block
        discards it, and a crash before the COMMIT record reached the file
        leaves none of it visible.
        """
        self._check_writable()
        return Batch(self)

    def _commit_batch(self, ops: list[tuple[int, bytes, bytes, float]]) -> None:
        parts: list[bytes] = []
        index: list[tuple[int, bytes, int, int, float]] = []
        off = 0
        for rtype, key, value, expiry in ops:
            r = _encode(rtype, key, value, expiry, _FLAG_BATCH)
            parts.append(r)
            index.append((rtype, key, off, len(r), expiry))
            off += len(r)
        parts.append(rec.encode_commit(len(ops)))
        data = b"".join(parts)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            self._write(data, index)
        self._after_write()

    def clear(self) -> None:
        """Remove every key, atomically (one batch of deletes)."""
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            keys = list(self._view[0])
            if keys:
                self._commit_batch([(rec.DELETE, k, b"", 0.0) for k in keys])

    # ----------------------------------------------------------- lifecycle

    def sync(self) -> None:
        """Flush everything written so far to stable storage (fsync)."""
        self._check_open()
        active = self._active
        if active is not None:
            try:
                fsync_file(active.fd)
            except OSError as exc:
                raise storage_error(exc, f"cannot fsync {active.path}") from exc

    def stats(self) -> dict[str, Any]:
        """Return counts and sizes: keys, live_bytes, dead_bytes, files and more."""
        self._check_open()
        self._refresh()
        with self._rlock:
            ix = self._ix
            sizes = dict(self._sizes)
            sizes[self._tail[0]] = self._tail[1]
            total = sum(sizes.values())
            data_bytes = total - rec.FILE_HEADER_SIZE * len(sizes)
            expired = ix.expired_count()
            return {
                "path": self.path,
                "keys": len(ix.kd) - expired,
                "expired_keys": expired,
                "live_bytes": ix.live,
                "dead_bytes": max(data_bytes - ix.live, 0),
                "total_bytes": total,
                "files": len(self._files),
                "active_file": data_name(self._tail[0]),
                "active_end": self._tail[1],
                "generation": self._gen,
                "corrupt_records": len(self._corrupt),
                "read_only": self.read_only,
                "sync": self.sync_mode,
            }

    def close(self) -> None:
        """Flush according to the sync policy and release files and locks. Idempotent."""
        if self._closed:
            return
        merge_thread = self._merge_thread
        if merge_thread is not None and merge_thread is not threading.current_thread():
            merge_thread.join()
        try:
            if not self.read_only:
                self._sync_on_close()
        finally:
            self._closed = True
            self._tailw = self._intentw = _ClosedWord(self.path)
            _open_dbs.discard(self)
            with self._rlock:
                for f in self._files:
                    f.close()
                self._files = []
                self._ix = KeyDir()
                self._view = (self._ix.kd, [])
                self._active = None
            if self._state is not None:
                self._state.close()
            self._lock.close()

    def _sync_on_close(self) -> None:
        """Fsync the active file at close unless ``sync="never"``.

        The zeros reserved past the tail are left in place: other processes
        may be appending, and cutting them would make every reader remap the
        file on each write. Readers and recovery treat them as end of data.
        """
        active = self._active
        if self._sync_interval is None or active is None:
            return
        try:
            fsync_file(active.fd)
        except OSError:
            pass

    def _raise_closed(self) -> None:
        raise DatabaseClosedError(f"the store at {self.path} is closed; open a new DB to use it again")

    def _check_open(self) -> None:
        if self._closed:
            self._raise_closed()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __enter__(self) -> DB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    # A store is equal only to itself (not to a dict with the same items).
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.read_only else "open")
        return f"<kv_backend.DB {self.path!r} {state}>"

    def _after_fork_in_child(self) -> None:
        """Give a forked child its own lock file description and fresh thread locks."""
        if self._closed:
            return
        self._rlock = threading.Lock()
        self._merge_thread = None
        if self._merge_lock is not None:
            self._merge_lock.forget_in_child()
            self._merge_lock = None
        try:
            self._lock.after_fork_in_child()
        except StorageError:
            self.close()

    def snapshot_files(self) -> list[SnapshotFile]:
        """Freeze a consistent point-in-time view of the store's files.

        Under the write lock: every data file (the active one up to its
        published end) and every hint file, each with an open fd. Closed files
        never change and the fds keep them readable even if a merge removes
        them, so the caller can copy them at leisure (used by backups).
        Close the returned objects when done.
        """
        self._check_open()
        out: list[SnapshotFile] = []
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        try:
            with self._lock:
                published = self._published()
                active_major, active_end = unpack_tail(published[0]) if published else (-1, -1)
                for fid in list_data_files(self.path):
                    name = data_name(fid)
                    fd = os.open(os.path.join(self.path, name), flags)
                    length = os.fstat(fd).st_size
                    if fid == (active_major, 0):
                        length = min(length, active_end)
                    out.append(SnapshotFile(name, fd, length))
                    hname = hint_name(fid)
                    try:
                        hfd = os.open(os.path.join(self.path, hname), flags)
                    except FileNotFoundError:
                        continue
                    out.append(SnapshotFile(hname, hfd, os.fstat(hfd).st_size))
        except BaseException:
            for f in out:
                f.close()
            raise
        return out

    def change_token(self) -> int:
        """Return a number that changes whenever any process writes to the store."""
        return self._tailw.value

    def wait_for_change(self, token: int, timeout: float | None = None) -> bool:
        """Block until a write by any process changes :meth:`change_token` from ``token``.

        Returns True if a write happened, False on timeout. It watches one word
        of shared memory, checking every 0.2-2 ms, so it wakes within about a
        millisecond without any notification channel between processes.
        """
        deadline = None if timeout is None else _time() + timeout
        delay = 0.0002
        while self._tailw.value == token:
            if deadline is not None:
                left = deadline - _time()
                if left <= 0:
                    return False
                delay = min(delay, left)
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
        return True

    def backup(self, url: str, name: str | None = None, progress: Any = None, **storage_options: Any) -> Any:
        """Copy a consistent snapshot of the store to an fsspec URL; see :mod:`kv_backend.backup`."""
        from kv_backend.backup import backup

        return backup(self, url, name=name, progress=progress, **storage_options)

    # ------------------------------------------------------------ merge

    def merge(self, progress: Callable[[int, int], None] | None = None, wait: bool = False) -> Any:
        """Compact the store: drop overwritten, deleted and expired records.

        Runs while this and other processes keep reading and writing; returns a
        :class:`kv_backend.merge.MergeReport`. Raises
        :class:`~kv_backend.errors.MergeInProgressError` if another merge is
        running, unless ``wait`` is true. See :mod:`kv_backend.merge`.
        """
        from kv_backend.merge import merge

        return merge(self, progress=progress, wait=wait)

    def _maybe_auto_merge(self) -> None:
        from kv_backend.merge import maybe_auto_merge

        maybe_auto_merge(self)


def _parse_int(key: bytes, raw: bytes) -> int:
    """Parse an ASCII decimal integer value the way Redis's INCR does."""
    body = raw[1:] if raw[:1] == b"-" else raw
    if not body.isdigit() or not body.isascii() or (len(body) > 1 and body[:1] == b"0") or raw == b"-0":
        raise NotAnIntegerError(f"the value of {key!r} is not an ASCII decimal integer: {raw[:40]!r}")
    return int(raw)


def _clean_after(path: str, end: int) -> bool:
    """True if nothing but reserved zeros (or the end of the file) follows ``end``.

    Anything else past the published end was written by a writer that did not
    publish it: a dead writer's tail, or, after a power failure, records that
    were fsynced while the state page was not. Recovery then decides what to keep.
    """
    try:
        with open(path, "rb") as f:
            f.seek(end)
            after = f.read(rec.HEADER_SIZE)
    except OSError:
        return False
    if os.path.getsize(path) < end:
        return False
    return not after.strip(b"\0")


def _valid_end(fd: int, start: int, size: int) -> int:
    """Return the end of the last complete record (or batch) at or after ``start``."""
    pos = start
    for base, res in rec.scan_file(fd, start, size):
        pos = base + res.end
    return pos


def _replay(ix: KeyDir, f: DataFile, idx: int, start: int, end: int, corrupt: list[tuple[str, int]]) -> int:
    """Index the records of ``f`` from ``start`` up to ``end``; return where replay stopped.

    Reads big chunks and scans them in memory. Stops early at a torn or
    implausible record; records with sound lengths but a bad CRC are indexed
    (reading them raises CorruptionError) and listed in ``corrupt``.
    """
    pos = start
    for base, res in rec.scan_file(f.fd, start, end, trust_lengths=True):
        ix.apply(idx, base, res.entries)
        if res.corrupt:
            corrupt.extend((f.path, base + off) for off in res.corrupt)
        pos = base + res.end
    return pos


def _replay_tail(
    ix: KeyDir, f: DataFile, idx: int, start: int, end: int, corrupt: list[tuple[str, int]]
) -> int:
    """Catch-up fast path: index a few plain records just published by another process.

    With several writers every process indexes every other process's writes,
    one or two records at a time, so this path is hot. It handles only small
    regions of complete, CRC-valid PUT and DELETE records outside batches and
    hands anything else to :func:`_replay`, which knows all the rules.
    """
    n = end - start
    if n > 8192:
        return _replay(ix, f, idx, start, end, corrupt)
    buf = _pread(f.fd, n, start)
    if len(buf) != n:
        return _replay(ix, f, idx, start, end, corrupt)
    items = []
    p = 0
    while p < n:
        if n - p < _HEADER_SIZE:
            return _replay(ix, f, idx, start, end, corrupt)
        crc, rtype, flags, klen, vlen, expiry = _unpack_header(buf, p)
        size = _HEADER_SIZE + klen + vlen
        if flags or not 0 < rtype < 3 or p + size > n or _crc32(buf[p + 4 : p + size]) != crc:
            return _replay(ix, f, idx, start, end, corrupt)
        items.append((rtype, buf[p + _HEADER_SIZE : p + _HEADER_SIZE + klen], p, size, expiry))
        p += size
    ix.apply(idx, start, items)
    return end


def _prefix_end(prefix: bytes) -> bytes | None:
    """Return the smallest key greater than every key starting with ``prefix``."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None
