"""The in-memory key directory: where the newest record of every key lives.

Each entry maps a key to one packed ``int``::

    loc = file_index << 72 | offset << 32 | record_size

``file_index`` indexes this process's list of open data files, ``offset`` is
the record's position in that file (up to 1 TiB) and ``record_size`` its
total length. One int per key keeps memory near 120 bytes per 16-byte key.
Keys that expire are also in ``exp`` (key -> absolute expiry time).

The sorted index used by ordered scans (``sorted``, a ``SortedList`` of the
keys) is built by the first scan and then kept up to date lazily: an insert or
delete only notes the key in ``sorted_add`` (in ``kd``, not yet in ``sorted``)
or ``sorted_del`` (still in ``sorted``, gone from ``kd``), about 0.1 µs of
set operations instead of about 0.5 µs of ``SortedList.add`` (docs/benchmarks.md,
sorted-index), and the next :meth:`KeyDir.ensure_sorted` applies what is pending. Invariant while ``sorted``
exists: ``set(kd) == (set(sorted) - sorted_del) | sorted_add``, with
``sorted_del`` a subset of ``sorted`` and ``sorted_add`` disjoint from it. When
either set grows past ``sorted_cap`` (half the index, at least
``PENDING_FLOOR`` keys) the index is dropped instead and the next scan rebuilds
it from ``kd``: that costs about what applying the changes would, and keeps the
pending sets, which take several times the memory per key of the index, from
growing without bound when no scan comes.
"""

from __future__ import annotations

import time

from sortedcontainers import SortedList

from kv_backend.hint import Hints
from kv_backend.record import PUT

M32 = (1 << 32) - 1
M40 = (1 << 40) - 1
FILE_SHIFT = 72
PENDING_FLOOR = 1024  # pending changes always allowed before the sorted index is dropped


def pack(file_index: int, offset: int, size: int) -> int:
    """Pack a record location into one int."""
    return (file_index << FILE_SHIFT) | (offset << 32) | size


def unpack(loc: int) -> tuple[int, int, int]:
    """Return ``(file_index, offset, size)`` of a packed location."""
    return loc >> FILE_SHIFT, (loc >> 32) & M40, loc & M32


class KeyDir:
    """Key -> packed location, plus expiry times, live byte count and sorted index."""

    __slots__ = ("exp", "kd", "live", "sink", "sink_lost", "sorted", "sorted_add", "sorted_cap", "sorted_del")

    def __init__(self) -> None:
        self.kd: dict[bytes, int] = {}
        self.exp: dict[bytes, float] = {}
        self.live = 0
        self.sorted: SortedList | None = None
        # Changes not yet applied to ``sorted`` (both empty while it is None).
        self.sorted_add: set[bytes] = set()
        self.sorted_del: set[bytes] = set()
        self.sorted_cap = PENDING_FLOOR
        #: While someone follows changes (:meth:`kv_backend.db.DB.follow_changes`): every key a
        #: record indexed here names, this process's writes and those replayed from others alike.
        self.sink: list[bytes] | None = None
        #: Set when this index replaced one whose changes were followed: which keys differ from it
        #: is not known, so a follower must assume every key may have changed (see take_changes).
        self.sink_lost = False

    def apply(self, file_index: int, base: int, entries: list[tuple[int, bytes, int, int, float]]) -> None:
        """Index replayed records ``(type, key, offset - base, size, expiry)`` in log order."""
        now = time.time()
        kd = self.kd
        exp = self.exp
        srt = self.sorted
        adds = self.sorted_add
        dels = self.sorted_del
        live = self.live
        top = file_index << FILE_SHIFT
        if self.sink is not None:
            self.sink.extend([e[1] for e in entries])
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
                    if key in dels:
                        dels.remove(key)
                    else:
                        adds.add(key)
            elif old is not None:
                del kd[key]
                if exp:
                    exp.pop(key, None)
                if srt is not None:
                    if key in adds:
                        adds.remove(key)
                    else:
                        dels.add(key)
        self.live = live
        if srt is not None and (len(adds) > self.sorted_cap or len(dels) > self.sorted_cap):
            self.check_pending()

    def note_insert(self, key: bytes) -> None:
        """Record that ``key`` was just added to ``kd`` (only while ``sorted`` exists)."""
        if key in self.sorted_del:
            self.sorted_del.remove(key)
        else:
            adds = self.sorted_add
            adds.add(key)
            if len(adds) > self.sorted_cap:
                self.check_pending()

    def note_delete(self, key: bytes) -> None:
        """Record that ``key`` was just removed from ``kd`` (only while ``sorted`` exists)."""
        if key in self.sorted_add:
            self.sorted_add.remove(key)
        else:
            dels = self.sorted_del
            dels.add(key)
            if len(dels) > self.sorted_cap:
                self.check_pending()

    def check_pending(self) -> None:
        """A pending set outgrew ``sorted_cap``: drop the index if it really is past half of it.

        The cap is only refreshed here and on big updates, so it may lag an index
        that grew through many small ones; then it is raised instead.
        """
        srt = self.sorted
        if srt is None:
            return
        cap = max(len(srt) >> 1, PENDING_FLOOR)
        if len(self.sorted_add) > cap or len(self.sorted_del) > cap:
            self.drop_sorted()
        else:
            self.sorted_cap = cap

    def drop_sorted(self) -> None:
        """Forget the sorted index and its pending changes; the next scan rebuilds it."""
        self.sorted = None
        self.sorted_add.clear()
        self.sorted_del.clear()

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
            self._build_sorted()

    def expired_count(self) -> int:
        """Return how many indexed keys have expired but not yet been dropped."""
        if not self.exp:
            return 0
        now = time.time()
        return sum(1 for e in list(self.exp.values()) if e <= now)

    def expired(self) -> tuple[int, int]:
        """``(count, bytes)`` of the indexed keys that have expired but not yet been dropped: their
        records are dead data that a merge reclaims, though :attr:`live` still counts them."""
        if not self.exp:
            return 0, 0
        now = time.time()
        kd = self.kd
        count = size = 0
        for key, expiry in list(self.exp.items()):
            if expiry <= now:
                count += 1
                size += kd.get(key, 0) & M32
        return count, size

    def ensure_sorted(self) -> SortedList:
        """Return the sorted index, up to date: built on first use, pending changes applied."""
        srt = self.sorted
        if srt is None:
            return self._build_sorted()
        adds = self.sorted_add
        dels = self.sorted_del
        if adds or dels:
            if len(adds) + len(dels) > 32:
                return self._apply_pending(srt)
            # A few changes (scans between writes): one bisect each, as eager upkeep would.
            while dels:
                srt.discard(dels.pop())
            while adds:
                srt.add(adds.pop())
        return srt

    def _build_sorted(self) -> SortedList:
        """Build the sorted index from ``kd``, with nothing pending."""
        srt = self.sorted = SortedList(self.kd)
        self.sorted_add.clear()
        self.sorted_del.clear()
        self.sorted_cap = max(len(srt) >> 1, PENDING_FLOOR)
        return srt

    def _apply_pending(self, srt: SortedList) -> SortedList:
        """Bring ``srt`` up to date with ``sorted_del`` and ``sorted_add``."""
        dels = self.sorted_del
        if dels:
            if len(dels) * 10 > len(srt):
                # Past about a tenth of the index one pass over the sorted keys
                # beats discarding one by one (bisects), and sorting its output
                # is linear; SortedList(kd) would sort from random order.
                srt = self.sorted = SortedList([k for k in srt if k not in dels])
            else:
                discard = srt.discard
                for k in dels:
                    discard(k)
            dels.clear()
        adds = self.sorted_add
        if adds:
            srt.update(adds)  # adds one by one, or re-sorts once when there are many
            adds.clear()
        self.sorted_cap = max(len(srt) >> 1, PENDING_FLOOR)
        return srt
