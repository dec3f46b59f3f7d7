"""The read side of :class:`kv_backend.db.DB`: point reads, TTLs, ordered key scans."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, overload

from kv_backend.db_common import (
    _BODY_KEY,
    _HEADER_SIZE,
    _M32,
    _M40,
    _MISSING,
    _PLAIN_PUT,
    _PUT,
    T,
    _check_bound,
    _check_flag,
    _check_key,
    _crc32,
    _Parts,
    _time,
    _unpack_check,
    _unpack_header,
)
from kv_backend.db_write import _IN_TRANSACTION
from kv_backend.errors import CorruptionError

if TYPE_CHECKING:
    import mmap


#: ``id(chunk): (db, chunk)`` for the chunk of keys each iteration over a DB's keys is walking in this
#: process (a DB has no room for more attributes): see :func:`empty_key_chunks`.
_walked: dict[int, tuple[object, list[bytes]]] = {}


def _tag(offset: int, crc: int) -> int:
    """A record's tag: its offset in its data file and its checksum (see ``DB.get_with_tag``)."""
    return (offset << 32) | crc


def empty_key_chunks(db: object) -> None:
    """Empty the chunks that iterations over ``db``'s keys are walking (``close()`` does, holding ``_rlock``):
    each iterator then raises DatabaseClosedError at its next step, as any use after close() does,
    instead of yielding what is left of its chunk (up to 512 keys)."""
    for owner, chunk in list(_walked.values()):  # (a snapshot taken at once: other threads add and remove)
        if owner is db:
            chunk.clear()


def _prefix_end(prefix: bytes) -> bytes | None:
    """Return the smallest key greater than every key starting with ``prefix``."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None


class _Reading(_Parts):
    """The read side of :class:`kv_backend.db.DB`: point reads, TTLs, ordered key scans."""

    @overload
    def get(self, key: bytes) -> bytes | None: ...

    @overload
    def get(self, key: bytes, default: bytes | T) -> bytes | T: ...

    def get(self, key: bytes, default: Any = None) -> Any:
        """Return the value stored for ``key``, or ``default`` if it is absent or expired."""
        # The view first, then the check: see _current_view.
        kd, maps = view = self._view
        if self._tailw.value != self._seen:
            kd, maps = view = self._current_view()
        try:
            loc = kd[key]
        except (KeyError, TypeError, ValueError):  # ValueError: a writable memoryview cannot be hashed
            checked = _check_key(key)
            if checked is not key:
                return self.get(checked, default)
            if self._view is not view:  # another thread's transaction wrote meanwhile: see get's end
                return self.get(key, default)
            return default
        # The checks of _get_record, inlined here because this is the hottest read
        # path. One copy: the record past its CRC field, straight from the mapping.
        off = (loc >> 32) & _M40
        mm = maps[loc >> 72]
        try:
            body = mm[off + 4 : off + (loc & _M32)]
            crc, kind, klen, expiry = _unpack_check(mm, off)
        except ValueError:
            self._closed_under_read()
            raise
        vstart = _BODY_KEY + klen  # (a slice compared: cheaper than startswith's argument parsing)
        if _crc32(body) != crc or klen != len(key) or body[_BODY_KEY:vstart] != key:
            if self._stale(kd):
                return self.get(key, default)
            self._raise_corrupt(loc)
        if kind != _PLAIN_PUT:
            if kind & 0xFF != _PUT:
                # Not a PUT, its CRC matching: a record only a newer writer (or a CRC collision)
                # makes, which replay indexes as damage. Its value must not be returned.
                if self._stale(kd):
                    return self.get(key, default)
                self._raise_corrupt(loc, kind & 0xFF)
            if self._view is not view:
                # A record of a batch, and another thread's transaction wrote (or was discarded)
                # since the check above: this may be one of its unpublished writes (they all carry
                # the batch flag). Read again, which waits for the transaction to end. The view
                # object changes only then and at a reload, so this is rare and never loops.
                return self.get(key, default)
        if expiry and expiry <= _time():
            return default
        return body[vstart:]

    def get_with_expiry(self, key: bytes) -> tuple[bytes, float | None] | None:
        """Return ``(value, absolute expiry time or None)`` for a live key, or None if absent."""
        found = self._get_record(_check_key(key))
        if found is None:
            return None
        return found[0], (found[1] or None)

    def read_is_quick(self, key: bytes, limit: int | None) -> bool:
        """Whether a read of ``key`` would now be answered from this process's key directory as it
        is, without catching up with other processes' writes (which may replay their records, or wait
        for the write lock after a merge), from a record of at most ``limit`` bytes (None: of any
        size, for a read of its header only): an event loop
        can then make the read itself rather than hand it to a thread. A later read may still find
        the store changed meanwhile and catch up: this is a cost estimate, not a promise."""
        if self._tailw.value != self._seen:
            return False
        loc = self._view[0].get(key)
        return loc is None or limit is None or (loc & _M32) <= limit

    def get_with_tag(self, key: bytes) -> tuple[bytes, float | None, int] | None:
        """Return ``(value, absolute expiry time or None, tag)`` for a live key, or None if absent.

        The tag identifies the record read: its position in its data file and its checksum
        (which covers the key, the value and the expiry), so a write of another value or expiry
        gives it another tag (and so does one of the same value, unless it lands at the same
        offset of a later data file), and the tag is the same in every process that reads the
        store. A merge, which copies records, may change it too. :meth:`size_with_tag` returns
        the same tag without reading the value.
        """
        found = self._get_record(_check_key(key), True)
        if found is None:
            return None
        return found[0], (found[1] or None), found[2]

    def size_with_expiry(self, key: bytes) -> tuple[int, float | None] | None:
        """Return ``(size of the value in bytes, absolute expiry time or None)`` for a live key, or
        None if it is absent or expired, without reading the value.

        It reads the key directory and the record's header and key only, so it costs the same for
        a value of ten bytes or a gigabyte (``kvb http`` answers ``HEAD`` with it). The record's
        checksum covers the value, so it is not verified here: a record whose *value* bytes are
        damaged still reports its size, while :meth:`get` raises ``CorruptionError`` for it (run
        ``kvb check`` to find such records). A header or key that does not match the key directory
        raises ``CorruptionError``, as :meth:`get` does.
        """
        found = self.size_with_tag(key)
        return None if found is None else found[:2]

    def size_with_tag(self, key: bytes) -> tuple[int, float | None, int] | None:
        """Return ``(size of the value, absolute expiry time or None, tag)`` for a live key, or None.

        As :meth:`size_with_expiry` (the value is neither read nor verified); the tag is the one
        :meth:`get_with_tag` returns, read from the record's header.
        """
        key = _check_key(key)
        kd, maps = view = self._view  # then the check (see _current_view)
        if self._tailw.value != self._seen:
            kd, maps = view = self._current_view()
        loc = kd.get(key)
        if loc is None:
            return self.size_with_tag(key) if self._view is not view else None  # see get
        off = (loc >> 32) & _M40
        start = off + _HEADER_SIZE
        mm = maps[loc >> 72]
        try:
            crc, _, flags, klen, vlen, expiry = _unpack_header(mm, off)
            sound = (
                klen == len(key)
                and _HEADER_SIZE + klen + vlen == loc & _M32
                and mm[start : start + klen] == key
            )
        except ValueError:
            self._closed_under_read()
            raise
        if not sound:
            if self._stale(kd):
                return self.size_with_tag(key)
            self._raise_corrupt(loc)
        if flags and self._view is not view:  # see get
            return self.size_with_tag(key)
        if expiry and expiry <= _time():
            return None
        return vlen, (expiry or None), _tag(off, crc)

    def _get_record(self, key: bytes, tagged: bool = False) -> tuple[Any, ...] | None:
        """Return ``(value, expiry)`` of a live key, or None (expiry 0.0 = never); ``tagged`` adds
        the record's tag (see :meth:`get_with_tag`)."""
        kd, maps = view = self._view  # then the check (see _current_view)
        if self._tailw.value != self._seen:
            kd, maps = view = self._current_view()
        loc = kd.get(key)
        if loc is None:
            return self._get_record(key, tagged) if self._view is not view else None  # see get
        off = (loc >> 32) & _M40
        mm = maps[loc >> 72]
        try:
            body = mm[off + 4 : off + (loc & _M32)]
            crc, kind, klen, expiry = _unpack_check(mm, off)
        except ValueError:
            self._closed_under_read()
            raise
        vstart = _BODY_KEY + klen
        if _crc32(body) != crc or klen != len(key) or body[_BODY_KEY:vstart] != key:
            if self._stale(kd):
                return self._get_record(key, tagged)
            self._raise_corrupt(loc)
        if kind != _PLAIN_PUT:  # see get
            if kind & 0xFF != _PUT:
                if self._stale(kd):
                    return self._get_record(key, tagged)
                self._raise_corrupt(loc, kind & 0xFF)
            if self._view is not view:
                return self._get_record(key, tagged)
        if expiry and expiry <= _time():
            return None
        if tagged:
            return body[vstart:], expiry, _tag(off, crc)
        return body[vstart:], expiry

    def _peek_value(self, key: bytes, size: int = 0) -> bytes | None:
        """``key``'s live value if it is ``size`` bytes long, else None; without ``size``, the
        value's first byte (None if it is empty). Unchecked, as None if absent or expired.

        Reads those bytes and skips the CRC check, so it must only choose a code path (the
        structures layer reads a key's type tag with it before overwriting the key, and a hash's
        whole metadata record before overwriting one of its fields) and never be returned to a
        caller as data.
        """
        kd, maps = view = self._view  # then the check (see _current_view)
        if self._tailw.value != self._seen:
            kd, maps = view = self._current_view()
        loc = kd.get(key)
        if self._view is not view:  # another thread's transaction wrote meanwhile (see get)
            return self._peek_value(key, size)
        if loc is None:
            return None
        exp = self._ix.exp
        if exp:
            expiry = exp.get(key)
            if expiry and expiry <= _time():
                return None
        off = (loc >> 32) & _M40
        start = off + _HEADER_SIZE + len(key)
        end = off + (loc & _M32)
        if size:
            if end - start != size:
                return None
        elif start < end:
            end = start + 1
        else:
            return None
        try:
            return maps[loc >> 72][start:end]
        except ValueError:
            self._closed_under_read()
            raise

    def _stale(self, kd: dict[bytes, int]) -> bool:
        """Whether a damaged record was read through a view that another thread's transaction
        is discarding, or has discarded (its records are zeroed, see ``_zero_unpublished``): the
        read looked the key up before the block first wrote, and must read again, not report it."""
        return self._view[0] is not kd or self._other_transaction_wrote()

    def _other_transaction_wrote(self) -> bool:
        """Whether another thread's transaction has written, so the index holds its unpublished
        writes: a snapshot taken now could show part of it (caller holds ``_rlock``, under which
        the transaction marks ``_seen`` before its first write is indexed)."""
        txn = self._txn
        return self._seen == _IN_TRANSACTION and txn is not None and txn.owner != threading.get_ident()

    def _current_view(self) -> tuple[dict[bytes, int], list[mmap.mmap | bytes]]:
        """Catch up, and return the view a read may look keys up in.

        ``_refresh`` waits only for a transaction of another thread that had
        written when it began: one that begins meanwhile, and writes before the
        caller takes the view, would have its unpublished writes in a view that
        has not changed since. So, as the point reads do on their fast path, the
        view is taken first and then it is checked that no such write had begun:
        a write that begins afterwards replaces the view object, which the read
        notices after its lookup; one that had begun is waited for, and the view
        taken again.
        """
        txn = self._txn
        if txn is not None and txn.owner == threading.get_ident():
            return self._view  # this thread's own transaction (as in _refresh): nothing to catch up
        while True:
            self._refresh()
            view = self._view
            if not self._other_transaction_wrote():
                return view

    def _closed_under_read(self) -> None:
        """Raise DatabaseClosedError if a ValueError of a read came from a mapping that close(),
        in another thread, closed after the read had taken the view (as any call after close
        raises), rather than that bare "mmap closed or invalid"; otherwise return."""
        if self._closed:
            self._raise_closed()

    def _raise_corrupt(self, loc: int, rtype: int | None = None) -> None:
        """Raise CorruptionError for the record at ``loc``; ``rtype``: its type, where its checksum
        matched but it holds no value (a type unknown to this version, or a COMMIT without a count)."""
        offset = (loc >> 32) & _M40
        files = self._files
        idx = loc >> 72
        path = files[idx].path if idx < len(files) else self.path
        if rtype is None:
            what = "failed its checksum or holds another key"
        elif rtype in (2, 3):  # a DELETE or COMMIT: written as such, it would not be indexed
            what = f"is a record of type {rtype}, which holds no value (a newer version wrote it, or damage)"
        else:
            what = f"is of unknown type {rtype} (written by a newer kv_backend, or damaged)"
        try:
            # (One whose header is zeros lies in a region of zeros, counted as one where the open found
            # it, as kvb check counts it.)
            head = self._view[1][idx][offset : offset + _HEADER_SIZE] if idx < len(files) else b""
            counted = bool(head.strip(b"\0"))
        except ValueError:  # (closed meanwhile, by another thread's close())
            counted = False
        if counted:
            # A record read through a hint file is checked only now: stats() counts it from here on.
            with self._rlock:
                if (path, offset) not in self._corrupt:
                    self._corrupt.append((path, offset))
        raise CorruptionError(
            f"record at offset {offset} of {path} {what}; the value is "
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
        view = self._view  # then the check (see _current_view)
        if self._tailw.value != self._seen:
            view = self._current_view()
        try:
            found = key in view[0]
        except (TypeError, ValueError):  # unhashable: a bytearray, a writable memoryview
            found = False
        if self._view is not view:  # another thread's transaction wrote meanwhile (see get)
            return key in self
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
        view = self._view  # then the check (see _current_view)
        if self._tailw.value != self._seen:
            view = self._current_view()
        ix = self._ix
        n = len(ix.kd) - ix.expired_count()
        return len(self) if self._view is not view else n  # see get

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def index_size(self) -> int:
        """Return the number of keys in the key directory, in constant time.

        Unlike ``len()``, this counts keys that have expired but were not yet
        dropped (see :meth:`purge_expired`); use it where an estimate will do,
        such as deciding when a cache should cull.
        """
        view = self._view  # then the check (see _current_view)
        if self._tailw.value != self._seen:
            view = self._current_view()
        n = len(view[0])
        return self.index_size() if self._view is not view else n  # see get

    def purge_expired(self) -> int:
        """Drop expired keys from this process's key directory; return how many.

        Expired records take no space in memory afterwards; their bytes on disk
        are reclaimed by the next merge. Nothing is written.
        """
        if self._tailw.value != self._seen:
            self._refresh()
        with self._rlock:
            self._check_open()  # (closed by another thread since the check above: its keys are gone)
            ix = self._ix
            now = _time()
            dead = [k for k, e in ix.exp.items() if e <= now]
            if ix.sink is not None:
                ix.sink.extend(dead)
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
            self._check_open()  # (closed by another thread since the check above: its keys are gone)
            if not self._other_transaction_wrote():
                return self._unordered_snapshot()
        return self.unordered_keys()  # waits, out of the lock, for the other thread's block to end

    def _expiry_snapshot(self) -> list[tuple[bytes, float]]:
        """``(key, expiry)`` of every indexed key that has an expiry, expired or not: a snapshot
        taken as :meth:`unordered_keys` takes its own, so never holding part of another thread's
        open transaction (the structures layer's INFO counts read it)."""
        if self._tailw.value != self._seen:
            self._refresh()
        with self._rlock:
            self._check_open()  # (closed by another thread since the check above: its keys are gone)
            if not self._other_transaction_wrote():
                return list(self._ix.exp.items())
        return self._expiry_snapshot()  # waits, out of the lock, for the other thread's block to end

    def _unordered_snapshot(self) -> list[bytes]:
        """The live keys, in no order (caller holds ``_rlock``)."""
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
        if type(prefix) is not bytes:  # (None is no prefix, as b"" is)
            prefix = _check_bound(prefix, "prefix") if prefix is not None else b""
        if start is not None and type(start) is not bytes:
            start = _check_bound(start, "start")
        if reverse is not False:
            _check_flag(reverse, "reverse")
        last: bytes | None = None
        size = 8
        chunk: list[bytes] = []
        walked = _walked
        try:
            while True:
                chunk = self._key_chunk(prefix, start, reverse, last, size)
                if not chunk:
                    if self._closed:  # (the empty key directory close() leaves, found by a race with it)
                        self._raise_closed()
                    return
                walked[id(chunk)] = self, chunk  # close() empties it: the loop below then ends
                if self._closed:  # (closed before it could be)
                    self._raise_closed()
                yield from chunk
                del walked[id(chunk)]
                if not chunk:
                    self._raise_closed()
                last = chunk[-1]
                if size < 512:
                    size <<= 2
        finally:
            walked.pop(id(chunk), None)  # (an iteration left unfinished)

    def count(self, *, prefix: bytes = b"") -> int:
        """Return the number of live keys starting with ``prefix`` (all of them by default), without
        walking them: two searches of the sorted index (built by the first ordered scan, as for
        :meth:`keys`), less the expired keys among those with a time to live. ``kvb serve``'s DBSIZE
        and INFO keyspace, which walked every key name on the event loop, count so.
        """
        if type(prefix) is not bytes:
            prefix = _check_bound(prefix, "prefix") if prefix is not None else b""
        if not prefix:
            return len(self)
        if self._tailw.value != self._seen:
            self._refresh()
        with self._rlock:
            self._check_open()  # (closed by another thread since the check above: its keys are gone)
            if not self._other_transaction_wrote():
                ix = self._ix
                srt = ix.ensure_sorted()
                end = _prefix_end(prefix)
                n: int = (len(srt) if end is None else srt.bisect_left(end)) - srt.bisect_left(prefix)
                if n and ix.exp:
                    now = _time()
                    n -= sum(1 for k, e in list(ix.exp.items()) if e <= now and k.startswith(prefix))
                return n
        return self.count(prefix=prefix)  # waits, out of the lock, for the other thread's transaction

    def _key_chunk(
        self, prefix: bytes, start: bytes | None, reverse: bool, last: bytes | None, size: int = 512
    ) -> list[bytes]:
        """Return the next up to ``size`` keys after ``last`` (a snapshot, taken under ``_rlock``)."""
        if self._tailw.value != self._seen:
            self._refresh()
        with self._rlock:
            self._check_open()  # (closed by another thread since the check above: its keys are gone)
            if not self._other_transaction_wrote():
                return self._key_chunk_locked(prefix, start, reverse, last, size)
        return self._key_chunk(prefix, start, reverse, last, size)  # waits, out of the lock, for it

    def _key_chunk_locked(
        self, prefix: bytes, start: bytes | None, reverse: bool, last: bytes | None, size: int
    ) -> list[bytes]:
        """The body of :meth:`_key_chunk` (caller holds ``_rlock``)."""
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

    def values(  # type: ignore[override]
        self, *, prefix: bytes = b"", start: bytes | None = None, reverse: bool = False
    ) -> Iterator[bytes]:
        """Yield the values in key order (see :meth:`keys`)."""
        for _, value in self.items(prefix=prefix, start=start, reverse=reverse):
            yield value
