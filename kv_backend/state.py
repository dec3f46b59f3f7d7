"""The shared state page: how writers publish the log tail to other processes.

``STATE`` is a 4096-byte file mapped with ``mmap(MAP_SHARED)`` by every
process that opens the store. It is machine-local runtime state, in the
machine's native byte order; the data files alone are the durable truth and
the page is rebuilt from them when it is missing or damaged. Layout::

    offset size field
    0      8    magic b"KVBSTAT2"
    8      4    version (2)
    12     4    reserved
    16     8    tail:   active file major id << 40 | published end offset
    24     8    generation: bumped whenever the set of data files changes (merge)
    32     8    intent: the tail a writer is about to reach (crash detection)
    40     8    time of the last fsync (float, UNIX seconds)

Each field is one aligned 8-byte word, read and written with a single load or
store (through ``ctypes`` views of the mapping), so no reader ever sees half
of an update. Writers change the words only while holding the write lock:
``intent`` before appending, ``tail`` after (that is the commit point), and
``generation`` before the ``tail`` that announces a changed file set.
Readers compare ``tail`` with the value they last saw: one memory read.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import struct
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kv_backend.errors import LockTimeoutError, StorageError
from kv_backend.filemaps import MMAP_NO_FD
from kv_backend.files import STATE_FILE, new_file_mode, reserve_space, still_at, storage_error
from kv_backend.locking import NO_DIRECTORY_LOCKS, directory_shared
from kv_backend.owners import open_store_file
from kv_backend.record import FILE_HEADER_SIZE

if TYPE_CHECKING:
    from kv_backend.locking import WriteLock

MAGIC = b"KVBSTAT2"
VERSION = 2
SIZE = 4096
END_BITS = 40
END_MASK = (1 << END_BITS) - 1


#: ``last_sync`` of a store one of whose writers fsyncs (``sync`` other than ``"never"``)
#: but has not yet: any non-zero value tells writers that rotations must be durable.
SYNCING_MARK = 1.0


def pack_tail(major: int, end: int) -> int:
    """Return the tail word for active file ``major`` published up to ``end``."""
    return (major << END_BITS) | end


def unpack_tail(tail: int) -> tuple[int, int]:
    """Return ``(major, end)`` of a tail word."""
    return tail >> END_BITS, tail & END_MASK


class _Word:
    """A read-only stand-in for a ctypes view, for pages mapped without write access."""

    __slots__ = ("_mm", "_offset", "_struct")

    def __init__(self, mm: mmap.mmap, offset: int, fmt: str) -> None:
        self._mm = mm
        self._offset = offset
        self._struct = struct.Struct(fmt)

    @property
    def value(self) -> int | float:
        value: int | float = self._struct.unpack_from(self._mm, self._offset)[0]
        return value


def _reserve(fd: int) -> None:
    """Give the page disk blocks of its own (a no-op once it has them).

    A page that is only a hole (``ftruncate``) gets its block when first
    stored to through the mapping, and on a full disk that store kills the
    process with SIGBUS; ``posix_fallocate`` makes it an ENOSPC here instead.
    It never changes bytes that are there, so concurrent openers are safe.
    """
    reserve_space(fd, 0, SIZE)


def _shared_until(fd: int, until: float, path: str) -> None:
    """A shared ``flock`` on the page at ``fd`` (``path``), tried without waiting until ``until`` (a
    ``time.monotonic()`` deadline: a pause between tries, 1 ms doubling up to 50 ms), then LockTimeoutError.
    Only a tool swapping the store out holds it exclusively (see :func:`kept_unopened`)."""
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        left = until - time.monotonic()
        if left <= 0:
            raise LockTimeoutError(
                f"{path} stayed locked by a tool swapping the store out (kv_restore --replace) for as long "
                "as this call could wait: nothing was read or written; retry later"
            )
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)


class SharedState:
    """The mapped ``STATE`` page of one store, for one process.

    ``tail``, ``generation``, ``intent`` and ``last_sync`` are ctypes views
    of the page: read and assign their ``.value``. A read-only process maps
    the page writable when the file permissions allow it (it never writes),
    so it gets the same single-load reads; otherwise it reads through
    ``struct`` on a read-only mapping.
    """

    def __init__(self, path: str, *, writable: bool, until: float | None = None) -> None:
        """Open and map the page at ``path``, and take its shared in-use lock: waited for, or, with ``until``
        (a ``time.monotonic()`` deadline), until then at most, then LockTimeoutError (nothing held)."""
        self.path = path
        self.writable = writable
        self._initialized = False
        cloexec = getattr(os, "O_CLOEXEC", 0)
        try:
            if writable:
                # No more open than the store's files (see new_file_mode), whatever the umask.
                mode = new_file_mode(os.path.dirname(path))
                fd = open_store_file(path, os.O_RDWR | os.O_CREAT, mode)
            else:
                try:
                    fd = os.open(path, os.O_RDWR | cloexec)
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                        raise
                    fd = os.open(path, os.O_RDONLY | cloexec)  # no write access, or a read-only mount
        except OSError as exc:
            raise storage_error(exc, f"cannot open {path}", reading=not writable) from exc
        what = "map"
        mm: mmap.mmap | None = None
        try:
            mapped_writable = _fd_writable(fd)
            if writable:
                _reserve(fd)
            if os.fstat(fd).st_size < SIZE:
                raise ValueError(f"{path} is too small to be a state page")
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if mapped_writable else 0)
            mm = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, prot, **MMAP_NO_FD)
            what = "lock"
            # A shared flock for as long as this process has the store open: see in_use().
            if until is None:
                fcntl.flock(fd, fcntl.LOCK_SH)
            else:
                _shared_until(fd, until, path)
            self._mm = mm
        except BaseException as exc:
            if mm is not None:
                mm.close()
            os.close(fd)
            if isinstance(exc, OSError) and not isinstance(exc, LockTimeoutError):
                raise storage_error(exc, f"cannot {what} {path}") from exc
            raise
        self._fd = fd
        self.tail: ctypes.c_uint64
        self.generation: ctypes.c_uint64
        self.intent: ctypes.c_uint64
        self.last_sync: ctypes.c_double
        if mapped_writable:
            self.tail = ctypes.c_uint64.from_buffer(self._mm, 16)
            self.generation = ctypes.c_uint64.from_buffer(self._mm, 24)
            self.intent = ctypes.c_uint64.from_buffer(self._mm, 32)
            self.last_sync = ctypes.c_double.from_buffer(self._mm, 40)
        else:
            # A _Word reads as the ctypes view does; only writers assign, and they map the page writable.
            self.tail = _Word(self._mm, 16, "=Q")  # type: ignore[assignment]
            self.generation = _Word(self._mm, 24, "=Q")  # type: ignore[assignment]
            self.intent = _Word(self._mm, 32, "=Q")  # type: ignore[assignment]
            self.last_sync = _Word(self._mm, 40, "=d")  # type: ignore[assignment]

    @property
    def initialized(self) -> bool:
        """True once a writer has written the magic and version (which then never change), and the tail
        they publish can be one (see :func:`_valid`)."""
        if self._initialized:
            return True
        self._initialized = _valid(self._mm[:24])
        return self._initialized

    def initialize(self, gen: int, major: int, end: int) -> None:
        """Write magic and all fields into a fresh or damaged page (caller holds the lock)."""
        self.generation.value = gen
        tail = pack_tail(major, end)
        self.intent.value = tail
        self.tail.value = tail
        self._mm[:12] = MAGIC + VERSION.to_bytes(4, "little")

    def at_its_path(self) -> bool:
        """Whether the page this process mapped is still the file at its path (see
        :func:`~kv_backend.files.still_at`)."""
        return still_at(self._fd, self.path)

    def flush(self) -> None:
        """Write the page to disk now (``msync``; a page is otherwise never flushed): for the rare change
        that must reach the disk before the data files change, so that no power failure keeps the change
        to the files and not the page's (the cut of a batch without its COMMIT: see DB._cut_open_batch)."""
        try:
            self._mm.flush()
        except OSError as exc:
            raise storage_error(exc, f"cannot write {self.path} to disk") from exc

    def close(self) -> None:
        """Drop the views, unmap the page and let go of the in-use lock."""
        for name in ("tail", "generation", "intent", "last_sync"):
            self.__dict__.pop(name, None)
        try:
            self._mm.close()
        except (BufferError, ValueError):
            pass
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        """A DB dropped without close(): still let go of the in-use lock (through ``_close``: one
        dropped during the interpreter's teardown finds this module's os set to None)."""
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            try:
                _close(fd)
            except OSError:
                pass


def published_tail(store: str) -> tuple[int, int] | None:
    """``(major id of the active file, end of its published records)`` as the ``STATE`` page of the
    store at ``store`` gives them, read without mapping or locking it (for tools that only look:
    ``kvb check``, ``kvb salvage``); None if the page is missing, unreadable or not valid."""
    return _page_word(store, 16)


def page_intent(store: str) -> tuple[int, int] | None:
    """``(major, end)`` of the tail a writer is about to reach (the intent word), as the ``STATE`` page
    of the store at ``store`` gives it (read after :func:`published_tail`, as a writer stores it before
    the tail), read as that function reads the tail; None if the page is missing or not valid."""
    return _page_word(store, 32)


def page_words(store: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """:func:`published_tail` and :func:`page_intent` of the store at ``store``, read so that they go
    together while a writer may be writing (for the tools that read without the write lock): the intent
    read after the tail, then the tail again, until it has not moved (a writer stores its intent before
    its tail, so an intent read while the tail stood still is one a writer left with that tail). The
    intent is None (unknown) where the tail never stood still that long."""
    tail = published_tail(store)
    for _ in range(100):
        intent = page_intent(store)
        again = published_tail(store)
        if again == tail:
            return tail, intent
        tail = again
    return tail, None


def _page_word(store: str, offset: int) -> tuple[int, int] | None:
    try:
        with open(os.path.join(store, STATE_FILE), "rb") as f:
            page = f.read(40)
    except OSError:
        return None
    if len(page) < 40 or not _valid(page):
        return None
    return unpack_tail(struct.unpack_from("=Q", page, offset)[0])


def _valid(head: bytes) -> bool:
    """Whether ``head``, the first 24 bytes of a STATE page, makes a valid page: its magic and version,
    and a tail whose published end is not inside a data file's header, which no writer publishes. A
    damaged page that named such an end would make tail recovery cut every record of the active
    file (all acknowledged) off as past it: a page that is not valid is rebuilt from the data files."""
    return (
        len(head) >= 24
        and head[:8] == MAGIC
        and int.from_bytes(head[8:12], "little") == VERSION
        and unpack_tail(struct.unpack_from("=Q", head, 16)[0])[1] >= FILE_HEADER_SIZE
    )


def add_empty_page(store: str) -> bool:
    """Create the (empty, uninitialised) ``STATE`` page of the store at ``store`` where it has none
    (no writer opened it yet) and the directory allows; whether it has one now.

    A reader that opens the store makes it, so that a writer opening later publishes through it and the
    reader sees its writes; a tool that swaps the store out, so that it has a page to hold every open
    out on (see :func:`kept_unopened`). No more open than the store's files (see new_file_mode), as a
    writer makes it: made 0o666, a reader under umask 000 left every local user a page they could write
    the published end of the active file to.
    """
    path = os.path.join(store, STATE_FILE)
    try:
        fd = open_store_file(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, new_file_mode(store), size=SIZE)
    except FileExistsError:
        return True
    except OSError:
        return False
    try:
        os.ftruncate(fd, SIZE)
    finally:
        os.close(fd)
    return True


def page_for_reading(store: str, *, add: bool, until: float | None = None) -> SharedState | None:
    """The ``STATE`` page of the store at ``store`` mapped for a read-only open (or a backup's snapshot),
    or None where it has none: missing (and, with ``add``, not makeable here: see :func:`add_empty_page`),
    too small to be a page, or gone since it was looked for, the store at the path swapped meanwhile
    (``kv_restore --replace``: the open then finds its lock file, or the directory it holds instead, moved,
    and opens again; see :func:`held_at_their_paths`). Its in-use lock is waited for, or with ``until``
    until then at most (see :class:`SharedState`)."""
    path = os.path.join(store, STATE_FILE)
    if not os.path.exists(path) and not (add and add_empty_page(store)):
        return None
    try:
        return SharedState(path, writable=False, until=until)
    except ValueError:
        return None  # too small to be a page: no published end
    except StorageError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return None


def in_use(store: str) -> bool:
    """True if a process has the store at ``store`` open (or a fork of one still has it).

    Every process that opens a store holds a shared ``flock`` on its ``STATE``
    page until it closes it (on the store directory, one that has no page);
    this tries for an exclusive one on each, without waiting.
    Tools that replace a store's files (a restore) check it first, and, to swap
    the store out, hold it with :func:`kept_unopened`.
    """
    with kept_unopened(store, add_page=False) as unused:
        return not unused


@contextlib.contextmanager
def kept_unopened(store: str, *, add_page: bool = True) -> Iterator[bool]:
    """Yield whether no process has the store at ``store`` open, keeping every open out until the block
    ends where none has: the exclusive ``flock`` on its ``STATE`` page that :func:`in_use` tries for, then
    the one on the store directory itself (which an open that has no page holds shared instead: see
    :meth:`~kv_backend.locking.WriteLock.hold_directory`), both held. Neither is waited for, so this
    waits for no process. An open that comes meanwhile waits for them, and then finds that the page (or
    directory) it locked is no longer the one at its path if the block swapped the store out: it opens
    the store again, the one now at the path (see ``DB`` opening, docs/protocol.md). A store without a
    page (no writer opened it yet) is given one first (with ``add_page``, and where the directory allows:
    see :func:`add_empty_page`), so that an open coming meanwhile, which would make one and lock it,
    finds this one held instead. A missing ``store`` is unused."""
    if add_page:
        add_empty_page(store)
    with contextlib.ExitStack() as held:
        unused = True
        for path in (os.path.join(store, STATE_FILE), store):
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                continue  # (no page: the directory holds the opens)
            except OSError as exc:
                raise storage_error(
                    exc, f"cannot open {path} to tell whether a process has the store open"
                ) from exc
            held.callback(os.close, fd)  # (which lets go of the lock)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                unused = False
                break
            except OSError as exc:
                if path == store and exc.errno in NO_DIRECTORY_LOCKS:
                    continue  # (no locks on directories here: no open holds one either)
                raise storage_error(exc, f"cannot lock {path}") from exc
        yield unused


#: How many times an open goes back to a path where another store directory was swapped in while it
#: opened the store's files (see :func:`held_at_their_paths`) before it gives up.
REOPENS = 5


def held_at_their_paths(lock: WriteLock, page: SharedState | None) -> bool:
    """Whether the lock file and state page an open of a store holds (``page`` None: it has none) are
    still the files at their paths. Where one is not, another store directory took the path while it
    opened them (``kv_restore --replace`` swaps the restored store in): the open would hold the old
    store's locks and list the files of the one now there; it must let both go and open again (see
    :func:`kept_unopened`). Checked before the data files are listed."""
    return lock.at_its_path() and (page is None or page.at_its_path())


@contextlib.contextmanager
def read_unswapped(store: str) -> Iterator[None]:
    """Keep the store at ``store`` in use while a tool reads its files without opening it (``kvb check``,
    ``kvb salvage``): the shared ``flock`` on its directory that an open without a page holds (see
    :meth:`~kv_backend.locking.WriteLock.hold_directory`), so that ``kv_restore --replace`` refuses to swap
    it out and delete it meanwhile (the tool would read files of two stores). Taken on the directory at the
    path when the block starts: one swapped meanwhile is let go, and the new one taken (a few times)."""
    for _ in range(REOPENS):
        fd = directory_shared(store)
        try:
            if still_at(fd, store):
                yield
                return
        finally:
            os.close(fd)
    raise replaced_at_every_open(store)


def replaced_at_every_open(path: str) -> StorageError:
    """The error of an open that found the store at ``path`` replaced :data:`REOPENS` times in a row."""
    return StorageError(
        errno.EAGAIN,
        f"cannot open {path}: another directory took its place while it was being opened, {REOPENS} "
        "times in a row (a restore that replaces the store, run again and again?); open it again once "
        "nothing replaces it",
    )


def _fd_writable(fd: int) -> bool:
    return (fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE) == os.O_RDWR
