"""The in-memory key directory: where the newest record of every key lives.

Each entry maps a key to one packed ``int``::

    loc = file_index << 72 | offset << 32 | record_size

``file_index`` indexes this process's list of open data files, ``offset`` is
the record's position in that file (up to 1 TiB) and ``record_size`` its
total length. One int per key keeps memory near 120 bytes per 16-byte key.
Keys that expire are also in ``exp`` (key -> absolute expiry time), and the
sorted index used by ordered scans is built on first use.
"""

from __future__ import annotations

import time

from sortedcontainers import SortedList

from kv_backend.hint import Hints
from kv_backend.record import PUT

M32 = (1 << 32) - 1
M40 = (1 << 40) - 1
FILE_SHIFT = 72


def pack(file_index: int, offset: int, size: int) -> int:
    """Pack a record location into one int."""
    return (file_index << FILE_SHIFT) | (offset << 32) | size


def unpack(loc: int) -> tuple[int, int, int]:
    """Return ``(file_index, offset, size)`` of a packed location."""
    return loc >> FILE_SHIFT, (loc >> 32) & M40, loc & M32


class KeyDir:
    """Key -> packed location, plus expiry times, live byte count and sorted index."""

    __slots__ = ("exp", "kd", "live", "sorted")

    def __init__(self) -> None:
        self.kd: dict[bytes, int] = {}
        self.exp: dict[bytes, float] = {}
        self.live = 0
        self.sorted: SortedList | None = None

    def apply(self, file_index: int, base: int, entries: list[tuple[int, bytes, int, int, float]]) -> None:
        """Index replayed records ``(type, key, offset - base, size, expiry)`` in log order."""
        now = time.time()
        kd = self.kd
        exp = self.exp
        srt = self.sorted
        live = self.live
        top = file_index << FILE_SHIFT
        for rtype, key, off, size, expiry in entries:
            old = kd.get(key)
            if old is not None:
                live -= old & M32
            if rtype == PUT and not (expiry and expiry <= now):
                kd[key] = top | ((base + off) << 32) | size
                live += size
                if expiry:
                    exp[key] = expiry
                elif old is not None and exp:
                    exp.pop(key, None)
                if old is None and srt is not None:
                    srt.add(key)
            elif old is not None:
                del kd[key]
                if exp:
                    exp.pop(key, None)
                if srt is not None:
                    srt.discard(key)
        self.live = live

    def apply_hints(self, file_index: int, hints: Hints) -> None:
        """Index the entries of a checked hint file (see :mod:`kv_backend.hint`).

        Works column-wise: one C-level dict update for the common case of keys
        without expiry, a Python loop only for keys that expire.
        """
        kd = self.kd
        top = file_index << FILE_SHIFT
        keys = hints.keys
        locs = hints.locations if not top else [top | loc for loc in hints.locations]
        if kd and any(map(kd.__contains__, keys)):
            # Keys indexed from older files are replaced: take their bytes off the live count.
            self.live -= sum(kd[k] & M32 for k in keys if k in kd)
        kd.update(zip(keys, locs, strict=True))
        self.live += sum(hints.sizes)
        exp = self.exp
        if exp:
            for k in keys:
                exp.pop(k, None)
        if any(hints.expiries):
            now = time.time()
            for k, e in zip(keys, hints.expiries, strict=True):
                if e:
                    if e <= now:
                        self.live -= kd.pop(k) & M32
                    else:
                        exp[k] = e
        if self.sorted is not None:
            self.sorted = SortedList(kd)

    def expired_count(self) -> int:
        """Return how many indexed keys have expired but not yet been dropped."""
        if not self.exp:
            return 0
        now = time.time()
        return sum(1 for e in list(self.exp.values()) if e <= now)

    def ensure_sorted(self) -> SortedList:
        """Return the sorted index, building it on first use."""
        if self.sorted is None:
            self.sorted = SortedList(self.kd)
        return self.sorted
