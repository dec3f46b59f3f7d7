"""Redis lists: elements at sortable int64 indexes between a head and a tail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, overload

from kv_backend.db import Batch
from kv_backend.errors import KeyTooLargeError
from kv_backend.structures.errors import CommandError, ForeignRecordError, KeyNameTooLongError, wrong_arity
from kv_backend.structures.keyspace import TOO_LONG, Keyspace, _given, _name_limit, _name_list
from kv_backend.structures.layout import _LST, LIST, META, T_LIST, Name, Value, _b, _idx, _lp, list_meta
from kv_backend.structures.parsing import keyword, parse_index

#: LPOS's error for RANK 0.
RANK_ZERO = (
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
    "or use negative to start from the end of the list"
)


class Lists(Keyspace):
    """The list commands of :class:`~kv_backend.structures.Structures`."""

    def _list(self, name: bytes) -> tuple[int, int, int, float] | None:
        """``(head, tail, version, expiry)`` of list ``name``, None if it is missing; WRONGTYPE for
        another type, ForeignRecordError for a record this layout cannot have written."""
        found = self._meta(name, T_LIST)
        if found is None:
            return None
        decoded = list_meta(found[0])
        if decoded is None:
            raise ForeignRecordError(name)
        return (*decoded, found[1])

    def _put_list(self, b: Batch, name: bytes, head: int, tail: int, version: int, expiry: float) -> None:
        if tail <= head:
            b.delete(META + name)
        else:
            b.put(META + name, b"l" + _LST.pack(head, tail, version + 1), expires_at=expiry)

    def _push(self, name: Name, values: tuple[Value, ...], left: bool, only_existing: bool = False) -> int:
        name = _b(name)
        if not values:  # (the command's own name in Redis's error, which said 'push')
            command = ("lpush" if left else "rpush") + ("x" if only_existing else "")
            raise wrong_arity(command)
        db = self.db
        pfx = LIST + _lp(name)
        with db.locked():
            found = self._list(name)
            if found is None:
                if only_existing:
                    return 0
                head = tail = version = 0
                expiry = 0.0
            else:
                head, tail, version, expiry = found
            with db.batch() as b:
                if found is None:
                    self._purge(b, name, T_LIST)
                for v in values:
                    if left:
                        head -= 1
                        b.put(pfx + _idx(head), _b(v))
                    else:
                        b.put(pfx + _idx(tail), _b(v))
                        tail += 1
                self._put_list(b, name, head, tail, version, expiry)
            return tail - head

    def lpush(self, name: Name, *values: Value) -> int:
        """Insert values at the head of a list (each in turn); return the new length."""
        try:
            return self._push(name, values, left=True)
        except KeyNameTooLongError:
            raise
        except KeyTooLargeError:
            raise KeyNameTooLongError(TOO_LONG[T_LIST]) from None

    def rpush(self, name: Name, *values: Value) -> int:
        """Append values to a list; return the new length."""
        try:
            return self._push(name, values, left=False)
        except KeyNameTooLongError:
            raise
        except KeyTooLargeError:
            raise KeyNameTooLongError(TOO_LONG[T_LIST]) from None

    def lpushx(self, name: Name, *values: Value) -> int:
        """LPUSH only if the list exists."""
        return self._push(name, values, left=True, only_existing=True)

    def rpushx(self, name: Name, *values: Value) -> int:
        """RPUSH only if the list exists."""
        return self._push(name, values, left=False, only_existing=True)

    def _pop(self, name: Name, count: int | None, left: bool) -> Any:
        name = _b(name)
        count = None if count is None else parse_index(count)
        if count is not None and count < 0:
            raise CommandError("ERR value is out of range, must be positive")
        db = self.db
        pfx = LIST + _lp(name)
        with db.locked():
            found = self._list(name)
            if found is None:
                return None
            head, tail, version, expiry = found
            n = min(1 if count is None else count, tail - head)
            out = []
            with db.batch() as b:
                for _ in range(n):
                    if left:
                        key = pfx + _idx(head)
                        head += 1
                    else:
                        tail -= 1
                        key = pfx + _idx(tail)
                    out.append(db.get(key, b""))
                    b.delete(key)
                if n:
                    self._put_list(b, name, head, tail, version, expiry)
            if count is None:
                return out[0] if out else None
            return out

    @overload
    def lpop(self, name: Name, count: None = None) -> bytes | None: ...

    @overload
    def lpop(self, name: Name, count: int) -> list[bytes] | None: ...

    def lpop(self, name: Name, count: int | None = None) -> Any:
        """Remove and return the first element (or a list of up to ``count``); None if missing."""
        return self._pop(name, count, left=True)

    @overload
    def rpop(self, name: Name, count: None = None) -> bytes | None: ...

    @overload
    def rpop(self, name: Name, count: int) -> list[bytes] | None: ...

    def rpop(self, name: Name, count: int | None = None) -> Any:
        """Remove and return the last element (or a list of up to ``count``); None if missing."""
        return self._pop(name, count, left=False)

    def pop_first(self, names: Name | Iterable[Name], left: bool = True) -> tuple[bytes, bytes] | None:
        """Pop an element of the first non-empty list of ``names`` (BLPOP/BRPOP without the wait).

        Returns ``(name, element)``, or None when every list is empty; a name
        holding another type raises WRONGTYPE when it is reached.
        """
        with self.db.locked():
            for key in _name_list(names):
                value = self._pop(key, None, left)
                if value is not None:
                    return key, value
        return None

    def blpop(self, names: Name | Iterable[Name], timeout: float = 0) -> tuple[bytes, bytes] | None:
        """Pop the first element of the first non-empty list of ``names``, waiting for one if all are empty.

        Waits up to ``timeout`` seconds (0: for ever) for a push by any
        process; returns ``(name, element)``, or None when the time is up.
        """
        return self._blocking_pop(names, timeout, left=True, command="blpop")

    def brpop(self, names: Name | Iterable[Name], timeout: float = 0) -> tuple[bytes, bytes] | None:
        """Like :meth:`blpop`, from the tail of the list."""
        return self._blocking_pop(names, timeout, left=False, command="brpop")

    def _blocking_pop(
        self, names: Name | Iterable[Name], timeout: float, left: bool, command: str
    ) -> tuple[bytes, bytes] | None:
        keys = _given(_name_list(names), command)
        return self._wait_for(
            lambda first: (
                self.pop_first(keys, left)
                if first
                else self._retry_pop(keys, lambda one: self.pop_first(one, left))
            ),
            timeout,
        )

    def llen(self, name: Name) -> int:
        """Length of a list."""
        found = self._list(_b(name))
        return 0 if found is None else found[1] - found[0]

    def lrange(self, name: Name, start: int, stop: int) -> list[bytes]:
        """Elements ``start``..``stop`` (inclusive, negative from the end)."""
        name = _b(name)
        start, stop = parse_index(start), parse_index(stop)  # refused as in Redis, key or not
        found = self._list(name)
        if found is None:
            return []
        head, tail = found[0], found[1]
        lo, hi = self._range(start, stop, tail - head)
        pfx = LIST + _lp(name)
        get = self.db.get
        return [get(pfx + _idx(head + i), b"") for i in range(lo, hi)]

    def lindex(self, name: Name, index: int) -> bytes | None:
        """The element at ``index`` (negative from the end), or None."""
        name = _b(name)
        found = self._list(name)
        if found is None:
            return None
        head, tail = found[0], found[1]
        index = parse_index(index)
        if index < 0:
            index += tail - head
        if not 0 <= index < tail - head:
            return None
        return self.db.get(LIST + _lp(name) + _idx(head + index))

    def lset(self, name: Name, index: int, value: Value) -> bool:
        """Replace the element at ``index``."""
        name = _b(name)
        db = self.db
        with db.locked():
            found = self._list(name)
            if found is None:
                raise CommandError("ERR no such key")
            head, tail, version, expiry = found
            index = parse_index(index)
            if index < 0:
                index += tail - head
            if not 0 <= index < tail - head:
                raise CommandError("ERR index out of range")
            with db.batch() as b:
                b.put(LIST + _lp(name) + _idx(head + index), _b(value))
                self._put_list(b, name, head, tail, version, expiry)
        return True

    def _rewrite_list(self, name: bytes, found: tuple[int, int, int, float], elements: list[bytes]) -> None:
        head, tail, version, expiry = found
        pfx = LIST + _lp(name)
        with self.db.batch() as b:
            for i in range(head, tail):
                b.delete(pfx + _idx(i))
            for i, v in enumerate(elements):
                b.put(pfx + _idx(head + i), v)
            self._put_list(b, name, head, head + len(elements), version, expiry)

    def lrem(self, name: Name, count: int, value: Value) -> int:
        """Remove up to ``count`` elements equal to ``value`` (from the tail if negative, all if 0)."""
        name, value, count = _b(name), _b(value), parse_index(count)
        with self.db.locked():
            found = self._list(name)
            if found is None:
                return 0
            items = self.lrange(name, 0, -1)
            order = range(len(items)) if count >= 0 else range(len(items) - 1, -1, -1)
            limit = abs(count) or len(items)
            drop = set()
            for i in order:
                if items[i] == value:
                    drop.add(i)
                    if len(drop) >= limit:
                        break
            if drop:
                self._rewrite_list(name, found, [v for i, v in enumerate(items) if i not in drop])
            return len(drop)

    def ltrim(self, name: Name, start: int, stop: int) -> bool:
        """Keep only elements ``start``..``stop`` (inclusive)."""
        name = _b(name)
        start, stop = parse_index(start), parse_index(stop)  # refused as in Redis, key or not
        db = self.db
        with db.locked():
            found = self._list(name)
            if found is None:
                return True
            head, tail, version, expiry = found
            n = tail - head
            lo, hi = self._range(start, stop, n)
            # A start past the end empties the list: delete its n elements, not every
            # index up to ``start`` (LTRIM l 1000000 -1 on a short list).
            lo = min(lo, n)
            hi = max(min(hi, n), lo)
            pfx = LIST + _lp(name)
            with db.batch() as b:
                for i in list(range(head, head + lo)) + list(range(head + hi, tail)):
                    b.delete(pfx + _idx(i))
                self._put_list(b, name, head + lo, head + hi, version, expiry)
        return True

    def linsert(self, name: Name, where: str, pivot: Value, value: Value) -> int:
        """Insert ``value`` BEFORE or AFTER the first ``pivot``; new length, -1 if no pivot, 0 if no list."""
        name, pivot = _b(name), _b(pivot)
        where_l = keyword(where).decode("latin-1").lower()
        if where_l not in ("before", "after"):
            raise CommandError("ERR syntax error")
        with self.db.locked():
            found = self._list(name)
            if found is None:
                return 0
            items = self.lrange(name, 0, -1)
            try:
                i = items.index(pivot)
            except ValueError:
                return -1
            items.insert(i if where_l == "before" else i + 1, _b(value))
            self._rewrite_list(name, found, items)
            return len(items)

    @_name_limit(T_LIST)
    def rpoplpush(self, src: Name, dst: Name) -> bytes | None:
        """Move the last element of ``src`` to the head of ``dst``."""
        return self.lmove(src, dst, "RIGHT", "LEFT")

    def brpoplpush(self, src: Name, dst: Name, timeout: float = 0) -> bytes | None:
        """:meth:`rpoplpush`, waiting for an element as :meth:`blmove` does."""
        return self.blmove(src, dst, timeout, "RIGHT", "LEFT")

    def blmove(
        self,
        src: Name,
        dst: Name,
        timeout: float = 0,
        wherefrom: str | bytes = "LEFT",
        whereto: str | bytes = "RIGHT",
    ) -> bytes | None:
        """:meth:`lmove`, waiting up to ``timeout`` seconds (0: for ever) for an element in ``src``
        pushed by any process, as :meth:`blpop` waits; None when the time is up.

        As Redis serves a client blocked on a list only from a list, a ``src`` set to another type
        while it waits is passed over; a ``dst`` of another type is ``WrongTypeError``.
        """
        _is_left(wherefrom)  # (a syntax error before any wait)
        _is_left(whereto)

        def attempt(first: bool) -> bytes | None:
            if first:
                return self.lmove(src, dst, wherefrom, whereto)
            with self.db.locked():
                if self.type(src) != "list":
                    return None
                return self.lmove(src, dst, wherefrom, whereto)

        return self._wait_for(attempt, timeout)

    @_name_limit(T_LIST)
    def lmove(
        self, src: Name, dst: Name, wherefrom: str | bytes = "LEFT", whereto: str | bytes = "RIGHT"
    ) -> bytes | None:
        """Move an element between lists (atomically): from the ``wherefrom`` end of ``src`` to the
        ``whereto`` end of ``dst``, each ``"LEFT"`` or ``"RIGHT"`` (any case, str or bytes; by
        default, as in redis-py, from the head of ``src`` to the tail of ``dst``).

        The pop and the push are one batch: a crash between them would otherwise lose the
        element (gone from ``src``, never in ``dst``). Moving within one list keeps it and its
        TTL, as in Redis, also when it has a single element.
        """
        src, dst = _b(src), _b(dst)
        from_left, to_left = _is_left(wherefrom), _is_left(whereto)
        db = self.db
        with db.locked():
            found = self._list(src)
            if found is None:
                return None  # a missing source: nothing moves, whatever the destination holds
            target = self._list(dst)  # WRONGTYPE before anything is popped
            head, tail, version, expiry = found
            spfx = LIST + _lp(src)
            key = spfx + _idx(head) if from_left else spfx + _idx(tail - 1)
            value = db.get(key, b"")
            if from_left:
                head += 1
            else:
                tail -= 1
            with db.batch() as b:
                b.delete(key)
                if src == dst:
                    target = (head, tail, version, expiry)
                else:
                    self._put_list(b, src, head, tail, version, expiry)
                if target is None:
                    self._purge(b, dst, T_LIST)
                    target = (0, 0, 0, 0.0)
                dhead, dtail, dversion, dexpiry = target
                dpfx = LIST + _lp(dst)
                if to_left:
                    dhead -= 1
                    b.put(dpfx + _idx(dhead), value)
                else:
                    b.put(dpfx + _idx(dtail), value)
                    dtail += 1
                self._put_list(b, dst, dhead, dtail, dversion, dexpiry)
            return value

    def lpos(
        self, name: Name, element: Value, rank: int = 1, count: int | None = None, maxlen: int = 0
    ) -> int | list[int] | None:
        """Index of the ``rank``-th match of ``element`` (negative: counting from the tail), or None.

        With ``count``, a list of the indexes of up to ``count`` matches (0: all) from
        that one on; ``maxlen`` (0: no limit) is how many elements are looked at.
        """
        rank, maxlen = parse_index(rank), parse_index(maxlen)
        count = None if count is None else parse_index(count)
        if rank == 0:
            raise CommandError(RANK_ZERO)
        if count is not None and count < 0:
            raise CommandError("ERR COUNT can't be negative")
        if maxlen < 0:
            raise CommandError("ERR MAXLEN can't be negative")
        name, element = _b(name), _b(element)
        found = self._list(name)
        if found is None:
            return None if count is None else []
        head, tail = found[0], found[1]
        n = tail - head
        limit = n if maxlen == 0 else min(maxlen, n)
        order = range(limit) if rank > 0 else range(n - 1, n - 1 - limit, -1)
        skip = abs(rank) - 1
        want = 1 if count is None else count
        pfx = LIST + _lp(name)
        get = self.db.get
        out: list[int] = []
        for i in order:
            if get(pfx + _idx(head + i)) == element:
                if skip:
                    skip -= 1
                    continue
                out.append(i)
                if len(out) == want:
                    break
        if count is None:
            return out[0] if out else None
        return out

    def lmpop(
        self, names: Name | Iterable[Name], left: bool = True, count: int = 1
    ) -> tuple[bytes, list[bytes]] | None:
        """Pop up to ``count`` elements from the first non-empty list of ``names``: ``(name, elements)``.

        None when every list is empty; a name holding another type raises WRONGTYPE when reached.
        """
        keys, count = _name_list(names), parse_index(count)
        if not keys:  # (Redis's answer to LMPOP 0 ...)
            raise CommandError("ERR numkeys should be greater than 0")
        if count < 1:
            raise CommandError("ERR count should be greater than 0")
        with self.db.locked():
            for key in keys:
                out = self._pop(key, count, left)
                if out:
                    return key, out
        return None

    def blmpop(
        self, names: Name | Iterable[Name], timeout: float = 0, left: bool = True, count: int = 1
    ) -> tuple[bytes, list[bytes]] | None:
        """:meth:`lmpop`, waiting up to ``timeout`` seconds (0: for ever) for a push by any process."""
        keys, count = _name_list(names), parse_index(count)
        if not keys:
            raise CommandError("ERR numkeys should be greater than 0")
        if count < 1:
            raise CommandError("ERR count should be greater than 0")
        return self._wait_for(
            lambda first: (
                self.lmpop(keys, left, count)
                if first
                else self._retry_pop(keys, lambda one: self.lmpop(one, left, count))
            ),
            timeout,
        )


def _is_left(where: str | bytes) -> bool:
    """LMOVE's ``LEFT`` (True) or ``RIGHT`` (False), in any case, as str or bytes; anything else is
    Redis's syntax error (any word but "LEFT" moved from or to the right, ``b"left"`` too)."""
    word = keyword(where).decode("latin-1")
    if word not in ("LEFT", "RIGHT"):
        raise CommandError("ERR syntax error")
    return word == "LEFT"
