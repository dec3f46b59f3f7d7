"""Redis sets: members under one key."""

from __future__ import annotations

import random

from kv_backend.structures.errors import CommandError
from kv_backend.structures.keyspace import Keyspace
from kv_backend.structures.layout import SET, T_SET, Name, Value, _b, _lp
from kv_backend.structures.parsing import parse_cursor


class Sets(Keyspace):
    """The set commands of :class:`~kv_backend.structures.Structures`."""

    def sadd(self, name: Name, *members: Value) -> int:
        """Add members to a set; return how many were new."""
        name = _b(name)
        if not members:
            raise CommandError("ERR wrong number of arguments for 'sadd' command")
        db = self.db
        pfx = SET + _lp(name)
        with db.locked():
            found = self._meta(name, T_SET)
            count, version = self._count(found[0]) if found else (0, 0)
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

    def srem(self, name: Name, *members: Value) -> int:
        """Remove members from a set; return how many were there."""
        name = _b(name)
        return self._remove_members(name, T_SET, SET + _lp(name), members)

    def smembers(self, name: Name) -> set[bytes]:
        """All members of a set."""
        name = _b(name)
        if self._meta(name, T_SET) is None:
            return set()
        pfx = SET + _lp(name)
        n = len(pfx)
        return {k[n:] for k in self.db.keys(prefix=pfx)}

    def sismember(self, name: Name, member: Value) -> bool:
        """Whether ``member`` is in the set."""
        name = _b(name)
        if self._meta(name, T_SET) is None:
            return False
        return SET + _lp(name) + _b(member) in self.db

    def smismember(self, name: Name, *members: Value) -> list[bool]:
        """Membership of several values."""
        return [self.sismember(name, m) for m in members]

    def scard(self, name: Name) -> int:
        """Number of members of a set."""
        found = self._meta(_b(name), T_SET)
        return self._count(found[0])[0] if found else 0

    def sinter(self, *names: Name) -> set[bytes]:
        """Intersection of sets."""
        sets = [self.smembers(n) for n in names]
        return set.intersection(*sets) if sets else set()

    def sunion(self, *names: Name) -> set[bytes]:
        """Union of sets."""
        return set().union(*(self.smembers(n) for n in names))

    def sdiff(self, *names: Name) -> set[bytes]:
        """Members of the first set that are in none of the others."""
        if not names:
            return set()
        out = self.smembers(names[0])
        for n in names[1:]:
            out -= self.smembers(n)
        return out

    def spop(self, name: Name) -> bytes | None:
        """Remove and return a random member."""
        with self.db.locked():
            members = list(self.smembers(name))
            if not members:
                return None
            m = random.choice(members)
            self.srem(name, m)
            return m

    def srandmember(self, name: Name) -> bytes | None:
        """A random member, or None."""
        members = list(self.smembers(name))
        return random.choice(members) if members else None

    def sscan(
        self, name: Name, cursor: int | bytes | str = 0, match: Name | None = None, count: int = 10
    ) -> tuple[int, list[bytes]]:
        """One step of a cursor scan over a set: ``(next cursor, members)``."""
        name = _b(name)
        cursor = parse_cursor(cursor)  # a malformed cursor is refused first, as in Redis
        if self._meta(name, T_SET) is None:
            return 0, []
        cur, items = self._member_scan(SET + _lp(name), cursor, match, count)
        return cur, [m for m, _ in items]
