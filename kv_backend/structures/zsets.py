"""Redis sorted sets: a member -> score record and a score-ordered index record per member."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from kv_backend.errors import InvalidArgumentError, KeyTooLargeError
from kv_backend.structures.errors import CommandError, KeyNameTooLongError, WrongTypeError, wrong_arity
from kv_backend.structures.keyspace import TOO_LONG, Keyspace, _given, _name_limit, _name_list, scan_pages
from kv_backend.structures.layout import (
    _I64_MAX,
    _U64,
    META,
    META_SIZE,
    SET,
    T_SET,
    T_ZSET,
    ZIDX,
    ZMEM,
    ZSET_META_ABOVE,
    ZSET_META_BELOW,
    Name,
    NameT,
    Value,
    _b,
    _list_or_args,
    _lp,
    _pairs,
    decode_score,
    encode_score,
)
from kv_backend.structures.parsing import (
    LexBound,
    _lex_bound,
    _lex_empty,
    _lex_gte_min,
    _lex_lte_max,
    _score_bound,
    glob_match,
    keyword,
    parse_cursor,
    parse_float,
    parse_index,
    parse_scan_count,
    random_repeats,
)

_WHERE = {"min": False, "max": True}
_AGGREGATES = ("sum", "min", "max")


def _aggregate(target: float, value: float, how: str) -> float:
    """Combine two scores of one member as ZUNION/ZINTER do (a NaN sum, inf + -inf, is 0 as in Redis)."""
    if how == "sum":
        total = target + value
        return 0.0 if math.isnan(total) else total
    if how == "min":
        return value if value < target else target
    return value if value > target else target


def _weighted(score: float, weight: float) -> float:
    """``score * weight``, 0 where that is NaN (0 * inf), as Redis."""
    value = score * weight
    return 0.0 if math.isnan(value) else value


def _where(where: str | bytes) -> bool:
    """``min``/``max`` (any case) as ``reverse``: True pops the highest scores."""
    try:
        return _WHERE[keyword(where).decode("latin-1").lower()]
    except KeyError:
        raise CommandError("ERR syntax error") from None


_ZSET_META = META_SIZE[T_ZSET]  # the size of a sorted set's metadata record


class SortedSets(Keyspace):
    """The sorted set commands of :class:`~kv_backend.structures.Structures`."""

    def zadd(
        self,
        name: Name,
        mapping: Mapping[NameT, float | Value] | Iterable[tuple[Value, float | Value]],
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
        ch: bool = False,
        incr: bool = False,
    ) -> Any:
        """Add members with scores; return how many were added (``ch``: added or changed).

        ``mapping`` is ``{member: score}`` or ``(member, score)`` pairs, applied in
        order (a member given twice is updated twice, as ZADD does). With ``incr``
        (one member) the score is added and the new score returned (None if a
        condition stopped it). ``nx``/``xx``/``gt``/``lt`` as in Redis.
        """
        try:
            name = _b(name)
            if nx and xx:
                raise CommandError("ERR XX and NX options at the same time are not compatible")
            if (gt and lt) or (nx and (gt or lt)):
                raise CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
            pairs = _pairs(mapping, "mapping")
            if not pairs:
                raise wrong_arity("zadd")
            if incr and len(pairs) != 1:
                raise CommandError("ERR INCR option supports a single increment-element pair")
            items = [(_b(m), parse_float(s)) for m, s in pairs]
            db = self.db
            mpfx, ipfx = ZMEM + _lp(name), ZIDX + _lp(name)
            with db.locked():
                found = self._meta(name, T_ZSET)
                count, version = self._count(name, found[0]) if found else (0, 0)
                added = changed = 0
                result: float | None = None
                with db.batch() as b:
                    if found is None:
                        self._purge(b, name, T_ZSET)
                    pending: dict[bytes, float] = {}
                    for member, score in items:
                        mk = mpfx + member
                        if member in pending:
                            old: float | None = pending[member]
                        else:
                            raw = db.get(mk) if found is not None else None
                            old = decode_score(raw, mk) if raw is not None else None
                        if incr:
                            score = (old or 0.0) + score
                            if math.isnan(score):
                                raise CommandError("ERR resulting score is not a number (NaN)")
                        if old is None:
                            if xx:
                                continue
                        else:
                            if nx or (gt and score <= old) or (lt and score >= old):
                                continue
                        result = score
                        if old is not None and old == score:
                            continue
                        if old is None:
                            added += 1
                        else:
                            changed += 1
                            b.delete(ipfx + encode_score(old) + member)
                        enc = encode_score(score)
                        b.put(mk, enc)
                        b.put(ipfx + enc + member, b"")
                        pending[member] = score
                    if len(b):
                        self._put_count(b, name, T_ZSET, count + added, version, found[1] if found else 0.0)
                if incr:
                    return result
                return added + changed if ch else added
        except KeyNameTooLongError:
            raise
        except KeyTooLargeError:
            raise KeyNameTooLongError(TOO_LONG[T_ZSET]) from None

    @_name_limit(T_ZSET)
    def zincrby(self, name: Name, amount: float, member: Value) -> float:
        """Add to a member's score (missing = 0); return the new score."""
        # (a dict raised TypeError on a list member)
        score: float = self.zadd(name, [(member, amount)], incr=True)
        return score

    def zrem(self, name: Name, *members: Value) -> int:
        """Remove members; return how many were there."""
        name = _b(name)
        members = _given(members, "zrem")
        return self._remove_members(name, T_ZSET, ZMEM + _lp(name), members, index=ZIDX + _lp(name))

    def zscore(self, name: Name, member: Value) -> float | None:
        """The score of a member, or None."""
        name, member = _b(name), _b(member)  # a member of the wrong type is refused, key or not
        found = self.db._get_record(META + name)
        if found is None:
            return None
        meta = found[0]
        if (
            not (
                ZSET_META_ABOVE < meta < ZSET_META_BELOW  # a sorted set's tag, 0 < count < _BOUND
                and len(meta) == _ZSET_META
                and not meta[9]  # version < _BOUND
                and not meta[10]
            )
            # Not a live sorted set of this layout: WRONGTYPE or ForeignRecordError, as every sorted
            # set command finds it (the common case costs no _meta call, as in HGET and SISMEMBER).
            and self._counted_meta(name, T_ZSET) is None
        ):
            return None
        key = ZMEM + _lp(name) + member
        try:  # (_value written out)
            raw = self.db.get(key)
        except KeyTooLargeError:  # a member too long to be stored: absent (see _value)
            return None
        return None if raw is None else decode_score(raw, key)

    def zmscore(self, name: Name, *members: Value | Iterable[Value]) -> list[float | None]:
        """The scores of several members (which may come as a list, as redis-py takes them)."""
        return [self.zscore(name, m) for m in _given(_list_or_args(members), "zmscore")]

    def zcard(self, name: Name) -> int:
        """Number of members of a sorted set."""
        name = _b(name)
        found = self._meta(name, T_ZSET)
        return self._count(name, found[0])[0] if found else 0

    def _zscan_order(self, name: bytes, reverse: bool = False) -> Iterator[tuple[bytes, float]]:
        """Yield ``(member, score)`` in score order."""
        ipfx = ZIDX + _lp(name)
        n = len(ipfx)
        for key in self.db.keys(prefix=ipfx, reverse=reverse):
            yield key[n + 8 :], decode_score(key[n : n + 8], key)

    def _zscore_range(
        self, name: bytes, lo: tuple[float, bool], hi: tuple[float, bool], reverse: bool = False
    ) -> Iterator[tuple[bytes, float]]:
        """Yield ``(member, score)`` with scores inside the bounds, in (reverse) score order."""
        (mn, mn_ex), (mx, mx_ex) = lo, hi
        ipfx = ZIDX + _lp(name)
        n = len(ipfx)
        start: bytes | None
        if not reverse:
            start = ipfx + encode_score(mn)
        else:
            (bits,) = _U64.unpack(encode_score(mx))
            start = ipfx + _U64.pack(bits + 1) if bits < 0xFFFFFFFFFFFFFFFF else None
        for key in self.db.keys(prefix=ipfx, start=start, reverse=reverse):
            score = decode_score(key[n : n + 8], key)
            if score < mn or (mn_ex and score == mn):
                if reverse:
                    return
                continue
            if score > mx or (mx_ex and score == mx):
                if reverse:
                    continue
                return
            yield key[n + 8 :], score

    def zcount(self, name: Name, min: Value, max: Value) -> int:
        """Number of members with a score between ``min`` and ``max`` (``(x`` = exclusive)."""
        name = _b(name)
        lo, hi = _score_bound(min), _score_bound(max)
        return self._zcount_found(name, self._zscore_range(name, lo, hi))

    def _zcount_found(self, name: bytes, found: Iterator[tuple[bytes, float]]) -> int:
        """How many members ``found`` (a lazy range walk of ``name``, ZCOUNT's or ZLEXCOUNT's)
        yields: 0 for a missing key, WRONGTYPE for another type, before the walk starts."""
        if self._counted_meta(name, T_ZSET) is None:
            return 0
        return sum(1 for _ in found)

    def zrange(
        self,
        name: Name,
        start: int | Value,
        end: int | Value,
        desc: bool = False,
        withscores: bool = False,
        byscore: bool = False,
        bylex: bool = False,
        offset: int | None = None,
        num: int | None = None,
    ) -> list[Any]:
        """Members by rank ``start``..``end`` (inclusive, negative from the end); ``desc`` reverses.

        With ``withscores`` the items are ``(member, score)`` pairs. As ZRANGE's options (and
        redis-py's): ``byscore``/``bylex`` read ``start``/``end`` as score or lex bounds (with
        ``desc``, the higher one first, as ``REV`` does), ``offset``/``num`` are ``LIMIT``.
        """
        if byscore or bylex or offset is not None or num is not None:
            return self._zrange_by(name, start, end, desc, withscores, byscore, bylex, offset, num)
        name = _b(name)
        start, end = parse_index(start), parse_index(end)  # refused as in Redis, key or not
        found = self._meta(name, T_ZSET)
        if found is None:
            return []
        size = self._count(name, found[0])[0]
        lo, hi = self._range(start, end, size)
        if lo >= hi:
            return []
        # Walk from the nearer end of the index (ZRANGE k -1 -1 reads one member, not the set),
        # and turn the slice round if that was the other one.
        turn = size - hi < lo
        if turn:
            lo, hi = size - hi, size - lo
        picked = islice(self._zscan_order(name, reverse=desc != turn), lo, hi)
        out: list[Any] = [(member, score) if withscores else member for member, score in picked]
        if turn:
            out.reverse()
        return out

    def _zrange_by(
        self,
        name: Name,
        start: int | Value,
        end: int | Value,
        desc: bool,
        withscores: bool,
        byscore: bool,
        bylex: bool,
        offset: int | None,
        num: int | None,
        store: bool = False,
    ) -> list[Any]:
        """:meth:`zrange` with ``BYSCORE``, ``BYLEX`` or ``LIMIT``, checked as Redis checks them
        (``store``: ZRANGESTORE's read, ``(member, score)`` pairs whatever the options)."""
        if byscore and bylex:
            raise CommandError("ERR syntax error")
        if (offset is None) != (num is None):  # (redis-py's own check: LIMIT takes both)
            raise InvalidArgumentError("offset and num must be given together (LIMIT offset count)")
        if bylex:
            if withscores and not store:
                raise CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
            lo, hi = (end, start) if desc else (start, end)
            return self._zlex(name, lo, hi, offset, num, reverse=desc, withscores=store)
        if byscore:
            lo, hi = (end, start) if desc else (start, end)
            return self.zrangebyscore(name, lo, hi, offset, num, withscores or store, desc=desc)
        if parse_index(num) != -1:  # (Redis lets "LIMIT <offset> -1" pass, and ignores it)
            raise CommandError(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
            )
        return self.zrange(name, start, end, desc, withscores or store)

    def zrevrange(self, name: Name, start: int, end: int, withscores: bool = False) -> list[Any]:
        """Members by rank from the highest score."""
        return self.zrange(name, start, end, desc=True, withscores=withscores)

    def zrangebyscore(
        self,
        name: Name,
        min: Value,
        max: Value,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        desc: bool = False,
    ) -> list[Any]:
        """Members with scores between ``min`` and ``max`` in score order; ``start``/``num`` is LIMIT."""
        name = _b(name)
        lo, hi = _score_bound(min), _score_bound(max)
        offset, num = parse_index(start or 0), None if num is None else parse_index(num)
        if self._counted_meta(name, T_ZSET) is None:
            return []
        out: list[Any] = []
        if num is not None and num < 0:
            num = None
        if offset < 0:
            return []
        for i, (member, score) in enumerate(self._zscore_range(name, lo, hi, reverse=desc)):
            if i < offset:
                continue
            if num is not None and len(out) >= num:
                break
            out.append((member, score) if withscores else member)
        return out

    def zrevrangebyscore(
        self,
        name: Name,
        max: Value,
        min: Value,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
    ) -> list[Any]:
        """Members with scores between ``max`` and ``min``, highest first."""
        return self.zrangebyscore(name, min, max, start, num, withscores, desc=True)

    def zrank(self, name: Name, member: Value, desc: bool = False, withscore: bool = False) -> Any:
        """The rank of a member (0 = lowest score; ``desc``: 0 = highest), or None.

        ``withscore`` (Redis 7.2's ``WITHSCORE``, redis-py's name): ``[rank, score]``, or None.
        """
        name, member = _b(name), _b(member)
        found = self._counted_meta(name, T_ZSET)
        if found is None:
            return None
        key = ZMEM + _lp(name) + member
        raw = self._value(key)
        if raw is None:
            return None
        score = decode_score(raw, key)  # (a record of another front end's ranks nowhere)
        target = ZIDX + _lp(name) + raw + member
        last = self._count(name, found[0])[0] - 1
        # From both ends at once: a member near either one is found after a few steps.
        pfx = ZIDX + _lp(name)
        walks = self.db.keys(prefix=pfx, reverse=desc), self.db.keys(prefix=pfx, reverse=not desc)
        for steps, (near, far) in enumerate(zip(*walks, strict=False)):
            if near == target or far == target:
                rank = steps if near == target else last - steps
                return [rank, score] if withscore else rank  # (the score ranked)
        return None

    def zrevrank(self, name: Name, member: Value, withscore: bool = False) -> Any:
        """The rank of a member counted from the highest score (``withscore``: as :meth:`zrank`'s)."""
        return self.zrank(name, member, desc=True, withscore=withscore)

    def zremrangebyscore(self, name: Name, min: Value, max: Value) -> int:
        """Remove members with scores between ``min`` and ``max``; return how many."""
        name = _b(name)
        lo, hi = _score_bound(min), _score_bound(max)
        return self._zrem_found(name, self._zscore_range(name, lo, hi))

    def _zrem_found(self, name: bytes, found: Iterator[tuple[bytes, float]]) -> int:
        """Remove the members ``found`` (a lazy range walk of ``name``, ZREMRANGEBYSCORE's or
        ZREMRANGEBYLEX's) yields and return how many; the walk and the removal run under one
        lock, so they are atomic. 0 for a missing key."""
        with self.db.locked():
            if self._counted_meta(name, T_ZSET) is None:
                return 0
            members = [m for m, _ in found]
            return self.zrem(name, *members) if members else 0

    def zremrangebyrank(self, name: Name, start: int, end: int) -> int:
        """Remove members by rank; return how many."""
        with self.db.locked():
            members = self.zrange(name, start, end)
            return self.zrem(name, *members) if members else 0

    def zscan_iter(
        self, name: Name, match: Name | None = None, count: int | None = None
    ) -> Iterator[tuple[bytes, float]]:
        """Yield the ``(member, score)`` pairs :meth:`zscan` steps through (redis-py's ``zscan_iter``)."""
        for items in scan_pages(lambda cursor: self.zscan(name, cursor, match, count)):
            yield from items

    def zscan(
        self, name: Name, cursor: int | bytes | str = 0, match: Name | None = None, count: int | None = 10
    ) -> tuple[int, list[tuple[bytes, float]]]:
        """One step of a cursor scan over a sorted set: ``(next cursor, [(member, score)])``.

        As in Redis, a scan from cursor 0 of a set Redis keeps as a listpack (at most 128
        members of at most 64 bytes) answers the whole set at once, in score order, with cursor
        0 (``count`` is ignored): clients such as walrus read a small set's ranking this way.
        Larger sets are walked in member byte order, ``count`` members a step.
        """
        name = _b(name)
        cursor = parse_cursor(cursor)  # a malformed cursor is refused first, as in Redis
        found = self._meta(name, T_ZSET)
        if found is None:
            return 0, []
        parse_scan_count(count)  # refused also where it is not used, as Redis does
        size = self._count(name, found[0])[0]  # (every step: ForeignRecordError as ZCARD's)
        if cursor == 0:
            whole = self._zlistpack_items(name, size)
            if whole is not None:
                pattern = _b(match) if match is not None else None
                return 0, [(m, s) for m, s in whole if pattern is None or glob_match(pattern, m)]
        mpfx = ZMEM + _lp(name)
        cur, items = self._member_scan(mpfx, cursor, match, count)
        return cur, [(m, decode_score(s, mpfx + m)) for m, s in items]

    def _zlistpack_items(self, name: bytes, count: int) -> list[tuple[bytes, float]] | None:
        """The whole sorted set in score order if Redis 7.2 would keep it as a listpack (at most
        128 members of at most 64 bytes, as OBJECT ENCODING says), else None; reads at most 129
        index records."""
        if count > 128:
            return None
        items: list[tuple[bytes, float]] = []
        for member, score in self._zscan_order(name):
            if len(member) > 64 or len(items) == 128:
                return None
            items.append((member, score))
        return items

    def _zpop(self, name: bytes, count: int, highest: bool) -> list[tuple[bytes, float]] | None:
        """Remove and return up to ``count`` lowest (``highest``: highest) members; None if missing.

        WRONGTYPE for another type, even for a count of 0 (as Redis). The members
        are deleted, and the count fixed (the key dropped when emptied), in one batch.
        """
        count = parse_index(count)
        if count < 0:
            raise CommandError("ERR value is out of range, must be positive")
        db = self.db
        with db.locked():
            found = self._counted_meta(name, T_ZSET)
            if found is None:
                return None
            # (a count past what islice takes, 2**63 - 1, asks for them all as well)
            items = list(islice(self._zscan_order(name, reverse=highest), min(count, _I64_MAX)))
            if items:
                total, version = self._count(name, found[0])
                mpfx, ipfx = ZMEM + _lp(name), ZIDX + _lp(name)
                with db.batch() as b:
                    for member, score in items:
                        b.delete(mpfx + member)
                        b.delete(ipfx + encode_score(score) + member)
                    self._put_count(b, name, T_ZSET, total - len(items), version, found[1])
            return items

    def zpopmin(self, name: Name, count: int | None = None) -> list[tuple[bytes, float]]:
        """Remove and return the ``count`` (default 1) members with the lowest scores, lowest first.

        Returns ``[(member, score)]`` (empty for a missing key), as redis-py does.
        """
        return self._zpop(_b(name), 1 if count is None else count, highest=False) or []

    def zpopmax(self, name: Name, count: int | None = None) -> list[tuple[bytes, float]]:
        """Remove and return the ``count`` (default 1) members with the highest scores, highest first."""
        return self._zpop(_b(name), 1 if count is None else count, highest=True) or []

    def zmpop(
        self, names: Name | Iterable[Name], where: str | bytes = "min", count: int = 1
    ) -> tuple[bytes, list[tuple[bytes, float]]] | None:
        """Pop up to ``count`` members from the first non-empty sorted set of ``names`` (ZMPOP).

        ``where`` is ``min`` or ``max``. Returns ``(name, [(member, score)])``, or
        None when every key is missing; a name holding another type raises
        WRONGTYPE when it is reached, as in Redis.
        """
        keys = _name_list(names)
        if not keys:  # (Redis's answer to ZMPOP 0 ..., checked first)
            raise CommandError("ERR numkeys should be greater than 0")
        highest = _where(where)
        count = parse_index(count)
        if count < 1:
            raise CommandError("ERR count should be greater than 0")
        with self.db.locked():
            for key in keys:
                items = self._zpop(key, count, highest)
                if items:
                    return key, items
        return None

    def bzmpop(
        self, names: Name | Iterable[Name], timeout: float = 0, where: str | bytes = "min", count: int = 1
    ) -> tuple[bytes, list[tuple[bytes, float]]] | None:
        """:meth:`zmpop` that waits up to ``timeout`` seconds (0: for ever) for a member; None when it passes.

        Like :meth:`~kv_backend.structures.Structures.blpop`, it wakes on a write by any process.
        """
        keys = _name_list(names)
        if not keys:
            raise CommandError("ERR numkeys should be greater than 0")
        _where(where)
        count = parse_index(count)
        if count < 1:
            raise CommandError("ERR count should be greater than 0")
        return self._wait_for(
            lambda first: (
                self.zmpop(keys, where, count)
                if first
                else self._retry_pop(keys, lambda one: self.zmpop(one, where, count))
            ),
            timeout,
        )

    def bzpopmin(self, names: Name | Iterable[Name], timeout: float = 0) -> tuple[bytes, bytes, float] | None:
        """Pop the lowest member of the first non-empty sorted set of ``names``, waiting for one if none.

        Waits up to ``timeout`` seconds (0: for ever); returns ``(name, member, score)``
        as redis-py does, or None when the time is up.
        """
        found = self.bzmpop(_given(_name_list(names), "bzpopmin"), timeout, "min", 1)
        return None if found is None else (found[0], *found[1][0])

    def bzpopmax(self, names: Name | Iterable[Name], timeout: float = 0) -> tuple[bytes, bytes, float] | None:
        """Like :meth:`bzpopmin`, popping the highest member."""
        found = self.bzmpop(_given(_name_list(names), "bzpopmax"), timeout, "max", 1)
        return None if found is None else (found[0], *found[1][0])

    def _zlex_range(
        self, name: bytes, lo: LexBound, hi: LexBound, reverse: bool = False
    ) -> Iterator[tuple[bytes, float]]:
        """Yield ``(member, score)`` of the members between two lexicographical bounds.

        Lex ranges are meant for sets whose members all have one score; then
        the members are in byte order in the index and the walk starts at the
        bound (one seek). With several scores the set is walked in score order
        as Redis walks a small sorted set: from the first member (last, with
        ``reverse``) inside the bound at that end, while members stay inside
        the other bound; and nothing if the set's last member is below the
        minimum or its first above the maximum.
        """
        if _lex_empty(lo, hi):
            return
        ipfx = ZIDX + _lp(name)
        n = len(ipfx)
        db = self.db
        first = next(db.keys(prefix=ipfx), None)
        last = next(db.keys(prefix=ipfx, reverse=True), None)
        if first is None or last is None:
            return
        if not _lex_gte_min(last[n + 8 :], lo) or not _lex_lte_max(first[n + 8 :], hi):
            return
        one_score = first[n : n + 8] == last[n : n + 8]
        if not reverse:
            start = ipfx + first[n : n + 8] + lo[1] if one_score and lo[0] == 0 else None
            inside: Callable[[bytes, tuple[int, bytes, bool]], bool] = _lex_gte_min
            stay: Callable[[bytes, tuple[int, bytes, bool]], bool] = _lex_lte_max
            bound, other = lo, hi
        else:
            start = ipfx + first[n : n + 8] + hi[1] if one_score and hi[0] == 0 else None
            inside, stay = _lex_lte_max, _lex_gte_min
            bound, other = hi, lo
        found = False
        for key in db.keys(prefix=ipfx, start=start, reverse=reverse):
            member = key[n + 8 :]
            if not found:
                if not inside(member, bound):
                    continue
                found = True
            if not stay(member, other):
                return
            yield member, decode_score(key[n : n + 8], key)

    def _zlex(
        self,
        name: Name,
        min: Value,
        max: Value,
        start: int | None,
        num: int | None,
        reverse: bool,
        withscores: bool = False,
    ) -> list[Any]:
        name = _b(name)
        lo, hi = _lex_bound(min), _lex_bound(max)  # the bounds before the key's type, as Redis
        offset, num = parse_index(start or 0), None if num is None else parse_index(num)
        if self._counted_meta(name, T_ZSET) is None:
            return []
        if offset < 0:
            return []
        items = islice(self._zlex_range(name, lo, hi, reverse), offset, None)
        if num is not None and num >= 0:
            items = islice(items, num)
        return list(items) if withscores else [m for m, _ in items]

    def zrangebylex(
        self, name: Name, min: Value, max: Value, start: int | None = None, num: int | None = None
    ) -> list[bytes]:
        """Members between ``min`` and ``max`` in byte order (bounds ``[m``, ``(m``, ``-``, ``+``).

        For sets whose members share one score, as in Redis. ``start``/``num`` is
        LIMIT (a negative ``num``: all the rest).
        """
        return self._zlex(name, min, max, start, num, reverse=False)

    def zrevrangebylex(
        self, name: Name, max: Value, min: Value, start: int | None = None, num: int | None = None
    ) -> list[bytes]:
        """Members between ``max`` and ``min``, in reverse byte order."""
        return self._zlex(name, min, max, start, num, reverse=True)

    def zlexcount(self, name: Name, min: Value, max: Value) -> int:
        """Number of members between two lexicographical bounds."""
        name = _b(name)
        lo, hi = _lex_bound(min), _lex_bound(max)
        return self._zcount_found(name, self._zlex_range(name, lo, hi))

    def zremrangebylex(self, name: Name, min: Value, max: Value) -> int:
        """Remove the members between two lexicographical bounds; return how many."""
        name = _b(name)
        lo, hi = _lex_bound(min), _lex_bound(max)
        return self._zrem_found(name, self._zlex_range(name, lo, hi))

    def zrandmember(self, name: Name, count: int | None = None, withscores: bool = False) -> Any:
        """Random members: without ``count`` one member (None for a missing key).

        With ``count``, a list: a positive count gives distinct members (the whole set, from the
        highest score down, when it has no more than ``count``), a negative one ``-count``
        members that may repeat. With ``withscores`` the items are ``(member, score)`` pairs.
        """
        name = _b(name)
        found = self._counted_meta(name, T_ZSET)
        if count is None:
            if found is None:
                return None
            size = self._count(name, found[0])[0]
            for member, score in islice(self._zscan_order(name), random.randrange(size), None):
                return (member, score) if withscores else member
            return None
        count = parse_index(count)
        if found is None or count == 0:
            return []
        items = list(self._zscan_order(name, reverse=True))
        if count >= len(items):
            picked = items  # the whole set, in Redis's order
        elif count > 0:
            picked = random.sample(items, count)
        else:
            picked = random.choices(items, k=random_repeats(count))
        return picked if withscores else [m for m, _ in picked]

    # -------------------------------------------------- ZUNION, ZINTER, ZDIFF

    def _zsource(self, name: bytes) -> tuple[int, int] | None:
        """``(type tag, size)`` of a set-algebra input (a sorted set or a set); WRONGTYPE for others."""
        found = self._record(META + name)
        if found is None:
            return None
        tag = found[0][0]
        if tag not in (T_ZSET, T_SET):
            raise WrongTypeError()
        return tag, self._count(name, found[0])[0]

    def _zsource_items(self, name: bytes, tag: int) -> Iterator[tuple[bytes, float]]:
        """The members of an input with their scores (a set's members score 1)."""
        if tag == T_ZSET:
            yield from self._zscan_order(name)
            return
        pfx = SET + _lp(name)
        n = len(pfx)
        for key in self.db.keys(prefix=pfx):
            yield key[n:], 1.0

    def _zsource_score(self, name: bytes, tag: int, member: bytes) -> float | None:
        """One member's score in an input, or None."""
        if tag == T_ZSET:
            key = ZMEM + _lp(name) + member
            raw = self._value(key)
            return None if raw is None else decode_score(raw, key)
        return 1.0 if self._stored(SET + _lp(name) + member) else None

    @staticmethod
    def _zinputs(
        names: Iterable[Name] | Mapping[Name, float],
        weights: Iterable[float] | None,
        command: str,
        options: bool = True,
    ) -> tuple[list[bytes], list[float]]:
        """Input names and weights: ``names`` may map each name to its weight, as redis-py takes them.

        No names is Redis's error to what redis-py sends for ``command``: a wrong argument count for
        the bare ``command 0`` (no weights and no other ``options`` given), else that at least one
        key is needed."""
        if isinstance(names, Mapping):
            keys = [_b(n) for n in names]
            ws = [_weight(w) for w in names.values()]
        else:
            keys = _name_list(names)
            if weights is not None and not isinstance(weights, Iterable):  # (a number, say)
                raise InvalidArgumentError(f"weights must be a number per name, not {type(weights).__name__}")
            ws = [1.0] * len(keys) if weights is None else [_weight(w) for w in weights]
        if not keys:
            if not (options or ws):
                raise wrong_arity(command)
            raise CommandError(f"ERR at least 1 input key is needed for '{command}' command")
        if len(ws) != len(keys):
            raise CommandError("ERR syntax error")
        return keys, ws

    def _zcombine(
        self, op: str, keys: list[bytes], weights: list[float], aggregate: str
    ) -> dict[bytes, float]:
        """The members (and scores) of the union, intersection or difference of ``keys``.

        Every input's type is checked first (WRONGTYPE even when an earlier one is
        missing). The inputs are taken from the smallest, as Redis takes them, so sums of
        several scores are added in Redis's order and come out the same to the last bit.
        """
        how = keyword(aggregate).decode("latin-1").lower()
        if how not in _AGGREGATES:
            raise CommandError("ERR syntax error")
        srcs = [(key, self._zsource(key), w) for key, w in zip(keys, weights, strict=True)]
        out: dict[bytes, float] = {}
        if op == "diff":
            first = srcs[0]
            if first[1] is None:
                return out
            rest = [(k, src) for k, src, _ in srcs[1:] if src is not None]
            for member, score in self._zsource_items(first[0], first[1][0]):
                if all(self._zsource_score(k, src[0], member) is None for k, src in rest):
                    out[member] = score
            return out
        ordered = sorted(srcs, key=lambda src: src[1][1] if src[1] is not None else 0)
        if op == "inter":
            if any(src is None for _, src, _ in ordered):
                return out
            (k0, src0, w0), others = ordered[0], ordered[1:]
            for member, score in self._zsource_items(k0, src0[0]):  # type: ignore[index]
                total = _weighted(score, w0)
                for k, src, w in others:
                    found = score if k == k0 else self._zsource_score(k, src[0], member)  # type: ignore[index]
                    if found is None:
                        break
                    total = _aggregate(total, found * w, how)  # Redis zeroes only a NaN sum here
                else:
                    out[member] = total
            return out
        for k, src, w in ordered:
            if src is None:
                continue
            for member, score in self._zsource_items(k, src[0]):
                value = _weighted(score, w)
                old = out.get(member)
                out[member] = value if old is None else _aggregate(old, value, how)
        return out

    @staticmethod
    def _zsorted(result: dict[bytes, float], withscores: bool) -> list[Any]:
        items = sorted(result.items(), key=lambda kv: (kv[1], kv[0]))
        return items if withscores else [m for m, _ in items]

    def _zstore(self, dest: Name, result: dict[bytes, float]) -> int:
        """Replace ``dest`` (of any type, dropping its TTL) by a sorted set of ``result``; return its size.

        An empty result deletes ``dest``. The caller holds the lock.
        """
        dest = _b(dest)
        db = self.db
        old = self._meta_value(dest)
        version = self._version_over(old, T_ZSET)
        if old is None and not result:
            return 0
        mpfx, ipfx = ZMEM + _lp(dest), ZIDX + _lp(dest)
        with db.batch() as b:
            self._purge_all(b, dest)
            b.delete(META + dest)
            for member, score in result.items():
                enc = encode_score(score)
                b.put(mpfx + member, enc)
                b.put(ipfx + enc + member, b"")
            if result:
                self._put_count(b, dest, T_ZSET, len(result), version, 0.0)
        return len(result)

    def zunion(
        self,
        names: Iterable[Name] | Mapping[Name, float],
        aggregate: str | None = None,
        withscores: bool = False,
        weights: Iterable[float] | None = None,
    ) -> list[Any]:
        """The union of sorted sets (or sets, whose members score 1), lowest score first.

        ``names`` may be ``{name: weight}``; ``aggregate`` is ``sum`` (default), ``min`` or
        ``max``. With ``withscores`` the items are ``(member, score)`` pairs.
        """
        keys, ws = self._zinputs(names, weights, "zunion", bool(aggregate or withscores))
        return self._zsorted(self._zcombine("union", keys, ws, aggregate or "sum"), withscores)

    def zinter(
        self,
        names: Iterable[Name] | Mapping[Name, float],
        aggregate: str | None = None,
        withscores: bool = False,
        weights: Iterable[float] | None = None,
    ) -> list[Any]:
        """The intersection of sorted sets (or sets), lowest score first; arguments as :meth:`zunion`."""
        keys, ws = self._zinputs(names, weights, "zinter", bool(aggregate or withscores))
        return self._zsorted(self._zcombine("inter", keys, ws, aggregate or "sum"), withscores)

    def zdiff(self, names: Iterable[Name], withscores: bool = False) -> list[Any]:
        """The members of the first sorted set (or set) that are in none of the others, lowest first."""
        keys, ws = self._zinputs(names, None, "zdiff", withscores)
        return self._zsorted(self._zcombine("diff", keys, ws, "sum"), withscores)

    @_name_limit(T_ZSET)
    def zunionstore(
        self,
        dest: Name,
        names: Iterable[Name] | Mapping[Name, float],
        aggregate: str | None = None,
        weights: Iterable[float] | None = None,
    ) -> int:
        """Store :meth:`zunion` in ``dest``, replacing what was there (TTL too); return its size.

        An empty result deletes ``dest``. Atomic: one locked batch.
        """
        keys, ws = self._zinputs(names, weights, "zunionstore", aggregate is not None)
        with self.db.locked():
            return self._zstore(dest, self._zcombine("union", keys, ws, aggregate or "sum"))

    @_name_limit(T_ZSET)
    def zinterstore(
        self,
        dest: Name,
        names: Iterable[Name] | Mapping[Name, float],
        aggregate: str | None = None,
        weights: Iterable[float] | None = None,
    ) -> int:
        """Store :meth:`zinter` in ``dest`` as :meth:`zunionstore` does."""
        keys, ws = self._zinputs(names, weights, "zinterstore", aggregate is not None)
        with self.db.locked():
            return self._zstore(dest, self._zcombine("inter", keys, ws, aggregate or "sum"))

    @_name_limit(T_ZSET)
    def zdiffstore(self, dest: Name, names: Iterable[Name]) -> int:
        """Store :meth:`zdiff` in ``dest`` as :meth:`zunionstore` does."""
        keys, ws = self._zinputs(names, None, "zdiffstore", False)
        with self.db.locked():
            return self._zstore(dest, self._zcombine("diff", keys, ws, "sum"))

    def zintercard(self, names: Iterable[Name], limit: int = 0) -> int:
        """The size of the intersection of sorted sets (or sets), counting up to ``limit`` (0: no limit)."""
        limit = parse_index(limit)
        if limit < 0:
            raise CommandError("ERR LIMIT can't be negative")
        keys, _ = self._zinputs(names, None, "zintercard")  # (redis-py sends LIMIT: no count error)
        srcs = sorted(((k, self._zsource(k)) for k in keys), key=lambda src: src[1][1] if src[1] else 0)
        if any(src is None for _, src in srcs):
            return 0
        (k0, src0), others = srcs[0], srcs[1:]
        count = 0
        for member, _ in self._zsource_items(k0, src0[0]):  # type: ignore[index]
            if all(self._zsource_score(k, src[0], member) is not None for k, src in others):  # type: ignore[index]
                count += 1
                if count == limit:
                    break
        return count

    @_name_limit(T_ZSET)
    def zrangestore(
        self,
        dest: Name,
        items: Iterable[tuple[Value, float]] | Name,
        start: int | Value | None = None,
        end: int | Value | None = None,
        byscore: bool = False,
        bylex: bool = False,
        desc: bool = False,
        offset: int | None = None,
        num: int | None = None,
    ) -> int:
        """Replace ``dest`` by a sorted set of ``(member, score)`` items (ZRANGESTORE's write).

        As :meth:`zunionstore`: any type and TTL of ``dest`` go, an empty ``items`` deletes it.
        With ``start`` and ``end``, ``items`` is the name of a sorted set, as in redis-py's
        ``zrangestore(dest, name, start, end, byscore=, bylex=, desc=, offset=, num=)``: its
        :meth:`zrange` with these options is stored; return the size of ``dest``.
        """
        with self.db.locked():
            if start is not None or end is not None:
                if start is None or end is None:
                    raise InvalidArgumentError("zrangestore() takes start and end together")
                # (items is the name of the sorted set to read here, and the pairs to store otherwise)
                if byscore or bylex or offset is not None or num is not None:
                    items = self._zrange_by(
                        items,  # type: ignore[arg-type]
                        start,
                        end,
                        desc,
                        True,
                        byscore,
                        bylex,
                        offset,
                        num,
                        store=True,
                    )
                else:
                    items = self.zrange(items, start, end, desc, withscores=True)  # type: ignore[arg-type]
            pairs: Iterable[tuple[Value, float]] = items  # type: ignore[assignment]
            return self._zstore(dest, {_b(m): float(s) for m, s in pairs})


def _weight(value: Value) -> float:
    """A ZUNIONSTORE/ZINTERSTORE weight read as Redis reads WEIGHTS (``inf`` allowed, NaN and text
    that is no number refused); ``float()`` raised ValueError, TypeError or OverflowError."""
    return parse_float(value, "ERR weight value is not a float")
