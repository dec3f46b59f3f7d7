"""The shared state page: how writers publish the log tail to other processes.

``STATE`` is a 4096-byte file mapped with ``mmap(MAP_SHARED)`` by every
process that opens the store. Layout (little-endian)::

    offset size field
    0      8    magic b"KVBSTATE"
    8      4    version (1)
    12     4    reserved
    16     8    seq: even when stable, odd while a writer updates 24..56
    24     8    generation: bumped whenever the set of data files changes (merge)
    32     8    active file major id
    40     8    active file minor id
    48     8    published end offset of the active file
    56     8    time of the last fsync (float, UNIX seconds)
    64     8    intent: the end offset a writer is about to reach (crash detection)

Writers change 24..56 only while holding the write lock, as a seqlock:
``seq += 1`` (odd), write the fields, ``seq += 1`` (even). Readers compare
``seq`` with the value they last saw (one memory read) and, when it moved,
read the fields between two equal even reads of ``seq``.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from functools import partial

from kv_backend.files import storage_error

MAGIC = b"KVBSTATE"
VERSION = 1
SIZE = 4096

_HEAD = struct.Struct("<8sII")
_SEQ = struct.Struct("<Q")
_FIELDS = struct.Struct("<QQQQ")  # generation, major, minor, end
_TIME = struct.Struct("<d")
_SEQ_AT = 16
_FIELDS_AT = 24
_TIME_AT = 56
_INTENT_AT = 64


class TornStateError(Exception):
    """The seq word stayed odd: a writer died while publishing (internal)."""


class SharedState:
    """The mapped ``STATE`` page of one store, for one process."""

    def __init__(self, path: str, *, writable: bool) -> None:
        self.path = path
        self.writable = writable
        flags = (os.O_RDWR | os.O_CREAT) if writable else os.O_RDONLY
        try:
            fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            raise storage_error(exc, f"cannot open {path}") from exc
        try:
            if writable and os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            if os.fstat(fd).st_size < SIZE:
                raise TornStateError("state file too small")
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            self._mm = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, prot)
        finally:
            os.close(fd)
        #: Return ``(seq,)``: the one memory read on every operation's fast path.
        self.peek = partial(_SEQ.unpack_from, self._mm, _SEQ_AT)

    @property
    def initialized(self) -> bool:
        """True once a writer has written the magic and version."""
        magic, version, _ = _HEAD.unpack_from(self._mm, 0)
        return magic == MAGIC and version == VERSION

    def read(self) -> tuple[int, int, tuple[int, int], int]:
        """Return a consistent ``(seq, generation, active_id, end)``.

        Raises :class:`TornStateError` if a writer seems to have died mid-update.
        """
        mm = self._mm
        for attempt in range(10000):
            (s1,) = _SEQ.unpack_from(mm, _SEQ_AT)
            if not s1 & 1:
                gen, major, minor, end = _FIELDS.unpack_from(mm, _FIELDS_AT)
                (s2,) = _SEQ.unpack_from(mm, _SEQ_AT)
                if s1 == s2:
                    return s1, gen, (major, minor), end
            if attempt > 100:
                time.sleep(0)
        raise TornStateError("seq word stayed odd")

    def publish(self, gen: int, fid: tuple[int, int], end: int) -> int:
        """Publish a new tail (caller holds the write lock); return the new seq."""
        mm = self._mm
        (s,) = _SEQ.unpack_from(mm, _SEQ_AT)
        s |= 1  # odd: readers wait (also repairs a seq left odd by a dead writer)
        _SEQ.pack_into(mm, _SEQ_AT, s)
        _FIELDS.pack_into(mm, _FIELDS_AT, gen, fid[0], fid[1], end)
        _SEQ.pack_into(mm, _SEQ_AT, s + 1)
        return s + 1

    def initialize(self, gen: int, fid: tuple[int, int], end: int) -> None:
        """Write magic and fields into a fresh or damaged page (caller holds the lock)."""
        _HEAD.pack_into(self._mm, 0, MAGIC, VERSION, 0)
        self.publish(gen, fid, end)
        self.set_intent(end)

    @property
    def intent(self) -> int:
        """The end offset the last writer announced before writing."""
        return _SEQ.unpack_from(self._mm, _INTENT_AT)[0]

    def set_intent(self, end: int) -> None:
        """Announce the end offset a write will reach (caller holds the lock)."""
        _SEQ.pack_into(self._mm, _INTENT_AT, end)

    @property
    def last_sync(self) -> float:
        """UNIX time of the last fsync any process made of the active file."""
        return _TIME.unpack_from(self._mm, _TIME_AT)[0]

    def set_last_sync(self, when: float) -> None:
        """Record the time of an fsync."""
        _TIME.pack_into(self._mm, _TIME_AT, when)

    def close(self) -> None:
        """Unmap the page."""
        try:
            self._mm.close()
        except (BufferError, ValueError):
            pass
