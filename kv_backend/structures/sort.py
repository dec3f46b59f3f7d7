"""Redis's SORT over lists, sets and sorted sets, with BY/GET patterns and STORE."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from kv_backend.errors import InvalidArgumentError
from kv_backend.structures.errors import CommandError, WrongTypeError, c_string
from kv_backend.structures.geo import partial_sort
from kv_backend.structures.keyspace import _name_limit, _name_list, _redis_int
from kv_backend.structures.layout import (
    _LST,
    HASH,
    LIST,
    META,
    SET,
    T_HASH,
    T_LIST,
    T_SET,
    T_STRING,
    T_ZSET,
    Name,
    _b,
    _idx,
    _lp,
)
from kv_backend.structures.lists import Lists
from kv_backend.structures.parsing import parse_index
from kv_backend.structures.sets import Sets
from kv_backend.structures.zsets import SortedSets

#: SORT's error when an element (or its BY value) is not a number and ALPHA is not given.
NOT_A_DOUBLE = "ERR One or more scores can't be converted into double"

_NUMBER = re.compile(
    rb"[+-]?(?:inf(?:inity)?|nan(?:\([0-9a-z_]*\))?"
    rb"|0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)",
    re.IGNORECASE,
)
_MIN_NORMAL = 2.2250738585072014e-308


def sort_score(raw: bytes) -> float | None:
    """``raw`` read as SORT reads a number (C's ``strtod`` up to the first NUL byte, leading
    white space allowed, hexadecimal and ``inf`` too), or None where Redis gives up: text left
    over, NaN, or a number out of a double's range (over- or underflow)."""
    text = c_string(raw)
    if not text:
        return 0.0  # nothing to convert, nothing left over: strtod's 0 is accepted
    body = text.lstrip(b" \t\n\v\f\r")
    if _NUMBER.fullmatch(body) is None:
        return None
    low = body.lower().lstrip(b"+-")
    if low.startswith(b"nan"):
        return None
    negative = body.startswith(b"-")
    if low.startswith(b"inf"):
        return -math.inf if negative else math.inf
    try:
        value = float.fromhex(body.decode()) if low.startswith(b"0x") else float(body)
    except OverflowError:
        return None
    mantissa = re.split(rb"[ep]", low[2:] if low.startswith(b"0x") else low)[0]
    if math.isinf(value) or (abs(value) < _MIN_NORMAL and mantissa.strip(b"0.")):
        return None  # strtod's ERANGE
    return value


class Sorting(Lists, Sets, SortedSets):
    """SORT and SORT_RO (:meth:`sort`) of :class:`~kv_backend.structures.Structures`."""

    def _by_pattern(self, pattern: bytes, element: bytes) -> bytes | None:
        """The value a BY/GET ``pattern`` names for ``element``: ``#`` is the element itself;
        ``*`` is replaced by it and names a string key, or with ``->field`` after the ``*`` a hash
        field; a pattern without ``*``, a missing key or one of another type give None."""
        if c_string(pattern) == b"#":
            return element
        star = c_string(pattern).find(b"*")
        if star < 0:
            return None
        arrow = c_string(pattern).find(b"->", star + 1)
        field = None
        if arrow >= 0 and arrow + 2 < len(pattern) and pattern[arrow + 2] != 0:
            field = pattern[arrow + 2 :]
            pattern = pattern[:arrow]
        key = pattern[:star] + element + pattern[star + 1 :]
        found = self._record(META + key)
        if found is None:
            return None
        meta = found[0]
        if field is None:
            return meta[1:] if meta[0] == T_STRING else None
        if meta[0] != T_HASH:
            return None
        self._count(key, meta)  # ForeignRecordError for counts no hash has, as HGET
        return self.db.get(HASH + _lp(key) + field)

    def _sort_elements(self, name: bytes, tag: int, meta: bytes) -> list[bytes]:
        if tag == T_LIST:
            head, tail, _ = _LST.unpack_from(meta, 1)
            pfx = LIST + _lp(name)
            return [self.db.get(pfx + _idx(i), b"") for i in range(head, tail)]
        if tag == T_SET:
            pfx = SET + _lp(name)
            members = [k[len(pfx) :] for k in self.db.keys(prefix=pfx)]
            ints = [_redis_int(m) for m in members]
            if len(members) <= 512 and None not in ints:  # Redis's intset: ascending integers
                return [m for _, m in sorted(zip(ints, members, strict=True))]
            return members
        return [m for m, _ in self._zscan_order(name)]

    @_name_limit(T_LIST)
    def sort(
        self,
        name: Name,
        by: Name | None = None,
        offset: int = 0,
        count: int = -1,
        get: Name | Sequence[Name] | None = (),
        desc: bool = False,
        alpha: bool = False,
        store: Name | None = None,
        nosort: bool | None = None,
        script: bool = False,
        *,
        start: int | None = None,
        num: int | None = None,
        groups: bool = False,
    ) -> Any:
        """Redis's SORT: the elements of a list, set or sorted set, sorted as numbers (``alpha``:
        as byte strings), by themselves or by the values a ``by`` pattern names, ``desc``ending,
        ``offset``/``count`` of them (LIMIT; a negative count: all), each replaced by the values
        of the ``get`` patterns (missing: None); with ``store``, the result replaces that key
        (of any type, its TTL dropped) as a list (an empty result deletes it) and its length is
        returned.

        A ``by`` pattern without ``*`` (``nosort``) keeps the list's or sorted set's order
        (``nosort``: whether one was given, if several were); a set is then sorted as ALPHA
        when stored or (``script``) inside a Lua script, as Redis does. Ties of ALPHA BY values
        keep the elements' order (or, with a LIMIT, come out as redis-server's partial quicksort
        leaves them).

        As redis-py's ``sort``: ``start``/``num`` (together) are the LIMIT ``offset``/``count``
        stand for, and ``groups`` returns the ``get`` values of each element as a tuple (two
        ``get`` patterns or more; without ``store``).
        """
        if start is not None or num is not None:
            if start is None or num is None:
                raise InvalidArgumentError("sort() takes start and num together (LIMIT offset count)")
            if offset != 0 or count != -1:
                raise InvalidArgumentError("sort() takes start/num or offset/count (one LIMIT), not both")
            offset, count = start, num
        # (one pattern as a str was read a character at a time; None, redis-py's default, is none)
        patterns = [] if get is None else _name_list(get)
        if groups and len(patterns) < 2:  # (one pattern given as a number too: len() of it raised)
            raise InvalidArgumentError("sort(groups=True) needs two get patterns or more")
        name, offset, count = _b(name), parse_index(offset), parse_index(count)
        by_b = None if by is None else _b(by)
        dest = None if store is None else _b(store)
        if nosort is None:
            nosort = by_b is not None and b"*" not in c_string(by_b)
        args = (name, by_b, offset, count, patterns, desc, alpha, dest is not None, nosort, script)
        if dest is None:  # a read: also on a store opened read-only, which cannot take the lock
            found = self._read_consistent(lambda: self._sort_result(*args))
            if groups:
                n = len(patterns)
                return [tuple(found[i : i + n]) for i in range(0, len(found), n)]
            return found
        with self.db.locked():
            out = self._sort_result(*args)
            self._store_list(dest, [b"" if v is None else v for v in out])
            return len(out)

    def sort_ro(
        self,
        name: Name,
        start: int | None = None,
        num: int | None = None,
        by: Name | None = None,
        get: Name | Sequence[Name] | None = None,
        desc: bool = False,
        alpha: bool = False,
    ) -> list[Any]:
        """SORT_RO, with redis-py's arguments: :meth:`sort` without ``store``."""
        found: list[Any] = self.sort(name, by=by, get=get, desc=desc, alpha=alpha, start=start, num=num)
        return found

    def _sort_result(
        self,
        name: bytes,
        by_b: bytes | None,
        offset: int,
        count: int,
        patterns: list[bytes],
        desc: bool,
        alpha: bool,
        storing: bool,
        nosort: bool,
        script: bool,
    ) -> list[bytes | None]:
        """The elements :meth:`sort` returns or stores (``storing``), read as one view."""
        found = self._whole_record(name)
        tag = found[0][0] if found is not None else T_LIST
        if tag not in (T_LIST, T_SET, T_ZSET):
            raise WrongTypeError()
        if nosort and tag == T_SET and (storing or script):
            nosort, alpha, by_b = False, True, None
        if found is not None:
            self._check_members(name, found[0])
        elements = [] if found is None else self._sort_elements(name, tag, found[0])
        n = len(elements)
        start = min(max(offset, 0), n)
        count = min(max(count, -1), n)
        end = n - 1 if count < 0 else start + count - 1
        if start >= n:
            start, end = n - 1, n - 2
        end = min(end, n - 1)
        if nosort:
            if tag != T_SET and desc:
                elements.reverse()
        else:
            elements = self._sorted(elements, by_b, alpha, desc, storing, start, end)
        chosen = elements[start : end + 1] if end >= start else []
        if not patterns:
            return list(chosen)
        return [self._by_pattern(p, e) for e in chosen for p in patterns]

    def _sorted(
        self,
        elements: list[bytes],
        by: bytes | None,
        alpha: bool,
        desc: bool,
        binary: bool,
        start: int,
        end: int,
    ) -> list[bytes]:
        """``elements`` in SORT's order (see :meth:`sort`); ``binary``: ALPHA compares whole byte
        strings (STORE) rather than C strings; ``start``..``end``: the part a LIMIT keeps."""
        keyed: list[tuple[Any, bytes]] = []
        bad = False
        for e in elements:
            value = e if by is None else self._by_pattern(by, e)
            if alpha:
                if by is None:
                    keyed.append((e if binary else c_string(e), e))
                else:
                    cmp_value = None if value is None else value if binary else c_string(value)
                    keyed.append(((0, b"") if cmp_value is None else (1, cmp_value), e))
            else:
                score = 0.0 if value is None else sort_score(value)
                if score is None:
                    bad = True
                    score = 0.0
                keyed.append(((score, e), e))
        if bad:
            raise CommandError(NOT_A_DOUBLE)
        if by is not None and (start != 0 or end != len(elements) - 1) and len(elements):
            sign = -1 if desc else 1

            def cmp(a: tuple[Any, bytes], b: tuple[Any, bytes]) -> int:
                order: int = sign * ((a[0] > b[0]) - (a[0] < b[0]))
                return order

            partial_sort(keyed, cmp, end + 1, first=start)
        else:
            keyed.sort(key=lambda item: item[0], reverse=desc)
        return [e for _, e in keyed]

    def _store_list(self, dst: bytes, elements: list[bytes]) -> None:
        """Replace ``dst`` (of any type, its TTL dropped) by a list of ``elements``; none deletes
        it. The caller holds the lock."""
        db = self.db
        old = self._meta_value(dst)
        with db.batch() as b:
            if old is not None:
                self._drop(b, dst, old)
            if not elements:
                return
            if old is None or old[0] != T_LIST:
                self._purge(b, dst, T_LIST)
            pfx = LIST + _lp(dst)
            for i, v in enumerate(elements):
                b.put(pfx + _idx(i), v)
            b.put(META + dst, self._replacing(b"l" + _LST.pack(0, len(elements), 0), old))
