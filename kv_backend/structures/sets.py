"""Redis sets: members under one key."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

from kv_backend.errors import InvalidArgumentError, KeyTooLargeError
from kv_backend.structures.errors import CommandError, KeyNameTooLongError, wrong_arity
from kv_backend.structures.keyspace import TOO_LONG, Keyspace, _given, _name_limit, intset_order, scan_pages
from kv_backend.structures.layout import (
    META,
    META_SIZE,
    SET,
    SET_META_ABOVE,
    SET_META_BELOW,
    T_SET,
    Name,
    Value,
    _b,
    _list_or_args,
    _lp,
)
from kv_backend.structures.parsing import (
    glob_match,
    parse_cursor,
    parse_index,
    parse_scan_count,
    random_repeats,
)

_SET_META = META_SIZE[T_SET]  # the size of a set's metadata record


class Sets(Keyspace):
    """The set commands of :class:`~kv_backend.structures.Structures`."""

    def sadd(self, name: Name, *members: Value) -> int:
        """Add members to a set; return how many were new."""
        try:
            name = _b(name)
            if not members:
                raise wrong_arity("sadd")
            db = self.db
            pfx = SET + _lp(name)
            with db.locked():
                found = self._meta(name, T_SET)
                count, version = self._count(name, found[0]) if found else (0, 0)
                added = 0
                with db.batch() as b:
                    if found is None:
                        self._purge(b, name, T_SET)
                    for m in {_b(x) for x in members}:
                        if found is None or pfx + m not in db:
                            b.put(pfx + m, b"")
                            added += 1
                    if added:
                        self._put_count(b, name, T_SET, count + added, version, found[1] if found else 0.0)
                return added
        except KeyNameTooLongError:
            raise
        except KeyTooLargeError:
            raise KeyNameTooLongError(TOO_LONG[T_SET]) from None

    def srem(self, name: Name, *members: Value) -> int:
        """Remove members from a set; return how many were there."""
        name = _b(name)
        return self._remove_members(name, T_SET, SET + _lp(name), _given(members, "srem"))

    def smembers(self, name: Name) -> set[bytes]:
        """All members of a set (read as one moment left them: as many as its metadata counts, see
        :meth:`_check_members`)."""
        name = _b(name)
        return self._read_consistent(lambda: self._smembers_now(name))

    def _smembers_now(self, name: bytes) -> set[bytes]:
        found = self._meta(name, T_SET)
        if found is None:
            return set()
        pfx = SET + _lp(name)
        n = len(pfx)
        members = {k[n:] for k in self.db.keys(prefix=pfx)}
        self._check_members(name, found[0], len(members))
        return members

    def sismember(self, name: Name, member: Value) -> bool:
        """Whether ``member`` is in the set."""
        name, member = _b(name), _b(member)  # a member of the wrong type is refused, key or not
        found = self.db._get_record(META + name)
        if found is None:
            return False
        meta = found[0]
        if (
            not (
                SET_META_ABOVE < meta < SET_META_BELOW  # a set's tag, 0 < count < _BOUND
                and len(meta) == _SET_META
                and not meta[9]  # version < _BOUND
                and not meta[10]
            )
            # Not a live set of this layout: another type (WRONGTYPE), another front end's record or
            # one with counts no set has (ForeignRecordError), as every set command finds it. (The
            # common case costs no _meta call: the comparison above is the whole check, as HGET's.)
            and self._counted_meta(name, T_SET) is None
        ):
            return False
        try:  # (_stored written out)
            return SET + _lp(name) + member in self.db
        except KeyTooLargeError:  # a member too long to be stored: absent (see _value)
            return False

    def smismember(self, name: Name, *members: Value | Iterable[Value]) -> list[bool]:
        """Membership of several values (which may come as a list, as redis-py takes them)."""
        return [self.sismember(name, m) for m in _given(_list_or_args(members), "smismember")]

    def scard(self, name: Name) -> int:
        """Number of members of a set."""
        name = _b(name)
        found = self._meta(name, T_SET)
        return self._count(name, found[0])[0] if found else 0

    def sinter(self, *names: Name | Iterable[Name]) -> set[bytes]:
        """Intersection of sets (the smallest one's members looked up in the others); the names
        may come as a list, as redis-py takes them (so for every set command on several keys)."""
        return set(self._intersect(_given(_list_or_args(names), "sinter")))

    def sunion(self, *names: Name | Iterable[Name]) -> set[bytes]:
        """Union of sets."""
        return set().union(*(self.smembers(n) for n in _given(_list_or_args(names), "sunion")))

    def sdiff(self, *names: Name | Iterable[Name]) -> set[bytes]:
        """Members of the first set that are in none of the others."""
        keys = _given(_list_or_args(names), "sdiff")
        out = self.smembers(keys[0])
        for n in keys[1:]:
            out -= self.smembers(n)
        return out

    def spop(self, name: Name, count: int | None = None) -> Any:
        """Remove and return a random member (None if the set is missing); with ``count`` (SPOP's,
        as in redis-py), a list of up to ``count`` distinct members, all removed at once."""
        if count is not None:
            count = parse_index(count)
            if count < 0:
                raise CommandError("ERR value is out of range, must be positive")
        with self.db.locked():
            members = list(self.smembers(name))  # (WRONGTYPE even for a count of 0, as Redis)
            if count is not None:
                chosen = random.sample(members, min(count, len(members)))
                if chosen:
                    self.srem(name, *chosen)
                return chosen
            if not members:
                return None
            m = random.choice(members)
            self.srem(name, m)
            return m

    def srandmember(self, name: Name, count: int | None = None, *, number: int | None = None) -> Any:
        """A random member, or None; with ``count`` (SRANDMEMBER's, as in redis-py), a list of up to
        ``count`` distinct members, or of ``-count`` members that may repeat when it is negative.
        ``number`` is ``count`` by redis-py's name for it."""
        if number is not None:
            if count is not None:
                raise InvalidArgumentError("srandmember() takes count or number (the same), not both")
            count = number
        if count is not None:
            count = parse_index(count)
        members = list(self.smembers(name))
        if count is None:
            return random.choice(members) if members else None
        if count >= 0:
            return random.sample(members, min(count, len(members)))
        return random.choices(members, k=random_repeats(count)) if members else []

    def sscan_iter(self, name: Name, match: Name | None = None, count: int | None = None) -> Iterator[bytes]:
        """Yield the members :meth:`sscan` steps through (redis-py's ``sscan_iter``)."""
        for members in scan_pages(lambda cursor: self.sscan(name, cursor, match, count)):
            yield from members

    def sscan(
        self, name: Name, cursor: int | bytes | str = 0, match: Name | None = None, count: int | None = 10
    ) -> tuple[int, list[bytes]]:
        """One step of a cursor scan over a set: ``(next cursor, members)``.

        As in Redis, a scan from cursor 0 of a set Redis keeps as an intset (at most 512
        members, all 64-bit integers) answers the whole set at once, in numeric order, with
        cursor 0 (``count`` is ignored). Other sets are walked in member byte order.
        """
        name = _b(name)
        cursor = parse_cursor(cursor)  # a malformed cursor is refused first, as in Redis
        found = self._meta(name, T_SET)
        if found is None:
            return 0, []
        parse_scan_count(count)  # refused also where it is not used, as Redis does
        size = self._count(name, found[0])[0]  # (every step: ForeignRecordError as SCARD's)
        if cursor == 0 and size <= 512:
            whole = self._intset_members(name)
            if whole is not None:
                pattern = _b(match) if match is not None else None
                return 0, [m for m in whole if pattern is None or glob_match(pattern, m)]
        cur, items = self._member_scan(SET + _lp(name), cursor, match, count)
        return cur, [m for m, _ in items]

    def _intset_members(self, name: bytes) -> list[bytes] | None:
        """The set's members in numeric order if Redis 7.2 would keep it as an intset (at most
        512 members, each a 64-bit integer as Redis writes one, as OBJECT ENCODING says), else
        None; reads at most 513 member records."""
        pfx = SET + _lp(name)
        n = len(pfx)
        return intset_order(key[n:] for key in self.db.keys(prefix=pfx))

    @_name_limit(T_SET)
    def smove(self, src: Name, dst: Name, member: Value) -> bool:
        """Move ``member`` from set ``src`` to set ``dst`` (atomically); False if it was not in ``src``.

        As in Redis: a missing ``src`` answers False whatever ``dst`` holds; otherwise
        both keys must be sets (or ``dst`` missing); moving to the same set only tells
        whether the member is there. Both sets keep their TTLs; an emptied ``src`` goes.
        """
        src, dst, member = _b(src), _b(dst), _b(member)
        db = self.db
        with db.locked():
            found = self._counted_meta(src, T_SET)
            if found is None:
                return False
            target = self._counted_meta(dst, T_SET)
            spfx, dpfx = SET + _lp(src), SET + _lp(dst)
            if not self._stored(spfx + member):
                return False
            if src == dst:
                return True
            count, version = self._count(src, found[0])
            with db.batch() as b:
                b.delete(spfx + member)
                self._put_count(b, src, T_SET, count - 1, version, found[1])
                if target is None:
                    self._purge(b, dst, T_SET)
                    b.put(dpfx + member, b"")
                    self._put_count(b, dst, T_SET, 1, 0, 0.0)
                elif dpfx + member not in db:
                    b.put(dpfx + member, b"")
                    dcount, dversion = self._count(dst, target[0])
                    self._put_count(b, dst, T_SET, dcount + 1, dversion, target[1])
            return True

    def _set_sizes(self, names: tuple[Name, ...]) -> list[tuple[bytes, int]]:
        """``(name, member count)`` of each set (0: missing); WRONGTYPE if any holds another type."""
        out = []
        for n in names:
            name = _b(n)
            found = self._meta(name, T_SET)
            out.append((name, self._count(name, found[0])[0] if found else 0))
        return out

    def _intersect(self, names: tuple[Name, ...], limit: int = 0) -> list[bytes]:
        """Members in every one of the sets (at most ``limit`` of them, 0: all).

        Every name's type is checked first, as Redis does; then the smallest set's
        members are looked up in the others, one record each.
        """
        sizes = self._set_sizes(names)
        if not sizes or any(size == 0 for _, size in sizes):
            return []
        sizes.sort(key=lambda item: item[1])
        first = SET + _lp(sizes[0][0])
        others = [SET + _lp(name) for name, _ in sizes[1:]]
        db = self.db
        n = len(first)
        out = []
        for key in db.keys(prefix=first):
            member = key[n:]
            if all(self._stored(pfx + member) for pfx in others):
                out.append(member)
                if len(out) == limit:
                    break
        return out

    def sintercard(self, *names: Name | Iterable[Name], limit: int = 0) -> int:
        """How many members the intersection of the sets has, counting up to ``limit`` (0: no limit);
        the names may come as a list, as for ``sinter()``."""
        limit = parse_index(limit)
        if limit < 0:
            raise CommandError("ERR LIMIT can't be negative")
        keys = _list_or_args(names)
        if not keys:  # (Redis's answer to SINTERCARD 0)
            raise CommandError("ERR numkeys should be greater than 0")
        return len(self._intersect(keys, limit))

    def _store_set(self, dst: Name, members: set[bytes] | list[bytes]) -> int:
        """Replace ``dst`` (of any type, its TTL dropped) by a set of ``members``; an empty one deletes it.

        The caller holds the lock. Returns the new set's size.
        """
        dst = _b(dst)
        db = self.db
        old = self._meta_value(dst)
        if not members:
            if old is not None:
                with db.batch() as b:
                    self._drop(b, dst, old)
            return 0
        pfx = SET + _lp(dst)
        # A replaced set's write counter goes on, so its WATCH token changes even for the same members.
        version = self._version_over(old, T_SET)
        with db.batch() as b:
            if old is not None:
                self._drop(b, dst, old)
            if old is None or old[0] != T_SET:
                self._purge(b, dst, T_SET)
            for m in members:
                b.put(pfx + m, b"")
            self._put_count(b, dst, T_SET, len(members), version, 0.0)
        return len(members)

    @_name_limit(T_SET)
    def sinterstore(self, dst: Name, *names: Name | Iterable[Name]) -> int:
        """Store the intersection of the sets in ``dst`` (replacing it); return its size."""
        with self.db.locked():
            return self._store_set(dst, self._intersect(_given(_list_or_args(names), "sinterstore")))

    @_name_limit(T_SET)
    def sunionstore(self, dst: Name, *names: Name | Iterable[Name]) -> int:
        """Store the union of the sets in ``dst`` (replacing it); return its size."""
        keys = _given(_list_or_args(names), "sunionstore")
        with self.db.locked():
            self._set_sizes(keys)  # every type checked before any member is read
            return self._store_set(dst, self.sunion(*keys))

    @_name_limit(T_SET)
    def sdiffstore(self, dst: Name, *names: Name | Iterable[Name]) -> int:
        """Store the members of the first set that are in none of the others in ``dst``; return its size."""
        keys = _given(_list_or_args(names), "sdiffstore")
        with self.db.locked():
            self._set_sizes(keys)
            return self._store_set(dst, self.sdiff(*keys))
