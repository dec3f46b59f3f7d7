"""Redis hashes: fields and values under one key."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any

from kv_backend import longdouble
from kv_backend.errors import InvalidArgumentError, KeyTooLargeError, NotAnIntegerError
from kv_backend.structures.errors import (
    CommandError,
    HashValueNotAnIntegerError,
    KeyNameTooLongError,
    NotAFloatError,
    wrong_arity,
)
from kv_backend.structures.keyspace import TOO_LONG, Keyspace, _given, _name_limit, scan_pages
from kv_backend.structures.layout import (
    _I64_MAX,
    _I64_MIN,
    HASH,
    HASH_META_ABOVE,
    HASH_META_BELOW,
    META,
    META_SIZE,
    T_HASH,
    Name,
    NameT,
    Value,
    _b,
    _list_or_args,
    _lp,
    _pairs,
)
from kv_backend.structures.parsing import (
    _add_long_double,
    _long_double,
    parse_cursor,
    parse_index,
    parse_int,
    random_repeats,
)

_HASH_META = META_SIZE[T_HASH]  # the size of a hash's metadata record


class Hashes(Keyspace):
    """The hash commands of :class:`~kv_backend.structures.Structures`."""

    def hset(
        self,
        name: Name,
        key: Name | Mapping[NameT, Value] | Iterable[tuple[Name, Value]] | None = None,
        value: Value | None = None,
        mapping: Mapping[NameT, Value] | Iterable[tuple[Name, Value]] | None = None,
        items: Sequence[Value] | None = None,
        **fields: Value,
    ) -> int:
        """Set hash fields; return how many were new.

        As redis-py: ``hset(name, field, value)``, ``mapping={field: value}`` and ``items=[field,
        value, ...]`` (a flat list), together in any mix; also ``hset(name, {field: value})`` (a
        mapping or ``(field, value)`` pairs as the second argument) and keyword fields. The pairs
        go in redis-py's order (``items``, ``field``/``value``, ``mapping``, keyword fields), a
        field given twice taking its last value. (A keyword field cannot be named ``key``,
        ``value``, ``mapping`` or ``items``: those are redis-py's arguments.)
        """
        try:
            pairs: list[tuple[Any, Any]] = []
            if items is not None:
                if isinstance(items, (str, bytes, bytearray, memoryview, Mapping)) or not isinstance(
                    items, Iterable
                ):
                    raise InvalidArgumentError(
                        f"items must be a flat list of fields and values, not {type(items).__name__}"
                    )
                flat = list(items)
                if len(flat) % 2:  # (Redis's answer to HSET with a field and no value)
                    raise wrong_arity("hset")
                pairs += zip(flat[::2], flat[1::2], strict=True)
            if key is not None:
                if value is not None:
                    pairs.append((key, value))
                elif isinstance(key, (str, bytes, bytearray, memoryview, int, float)):
                    raise InvalidArgumentError(
                        f"hset() got the field {key!r:.60} without a value; pass hset(name, field, value)"
                    )
                else:  # our own form: a mapping or pairs as the second argument
                    pairs += _pairs(key, "mapping")
            elif value is not None:
                raise InvalidArgumentError(
                    "hset() got a value without a field; pass hset(name, field, value)"
                )
            if mapping is not None:
                pairs += _pairs(mapping, "mapping")
            if fields:
                pairs += fields.items()
            if not pairs:
                raise wrong_arity("hset")
            return self._hset(_b(name), [(_b(f), _b(v)) for f, v in pairs], nx=False)
        except KeyNameTooLongError:
            raise
        except KeyTooLargeError:
            raise KeyNameTooLongError(TOO_LONG[T_HASH]) from None

    def hmset(self, name: Name, mapping: Mapping[NameT, Value] | Iterable[tuple[Name, Value]]) -> bool:
        """Set hash fields from a mapping (HMSET, deprecated in Redis and redis-py for HSET); True.

        An empty (or None) mapping is Redis's wrong argument count for 'hmset' (redis-py refuses
        it before sending)."""
        self.hset_pairs(name, _given(_pairs(mapping, "mapping") if mapping is not None else [], "hmset"))
        return True

    def hset_pairs(self, name: Name, pairs: Sequence[tuple[Name, Value]]) -> int:
        """Set hash fields from ``(field, value)`` pairs, later pairs winning; return how many were new."""
        try:
            pairs = _pairs(pairs, "pairs")
            if not pairs:
                raise wrong_arity("hset")
            return self._hset(_b(name), [(_b(f), _b(v)) for f, v in pairs], nx=False)
        except KeyNameTooLongError:
            raise
        except KeyTooLargeError:
            raise KeyNameTooLongError(TOO_LONG[T_HASH]) from None

    def _hset(self, name: bytes, items: list[tuple[bytes, bytes]], nx: bool) -> int:
        db = self.db
        pfx = HASH + _lp(name)
        with db.locked():
            meta = db._peek_value(META + name, _HASH_META) if len(items) == 1 and not nx else None
            if (
                meta is not None
                and HASH_META_ABOVE < meta < HASH_META_BELOW  # a hash's tag, 0 < count < _BOUND
                and not meta[9]  # version < _BOUND
                and not meta[10]
            ):
                # One existing field of a live hash overwritten: one record, the metadata is
                # unchanged, so it is read only to check that it has a hash's form, unchecked
                # (another front end's record with a hash's tag, of another size or with counts no
                # hash has, such as 0, is refused below, by _meta and _count).
                ((field, value),) = items
                if pfx + field in db:
                    db.put(pfx + field, value)
                    return 0
            found = self._meta(name, T_HASH)
            count, version = self._count(name, found[0]) if found else (0, 0)
            expiry = found[1] if found else 0.0
            added = 0
            puts: dict[bytes, bytes] = {}
            for field, value in items:
                fk = pfx + field
                if fk in puts:
                    if not nx:
                        puts[fk] = value
                    continue
                exists = found is not None and fk in db
                if nx and exists:
                    continue
                if not exists:
                    added += 1
                puts[fk] = value
            if not puts:
                return 0
            if added == 0 and len(puts) == 1:
                # Overwriting one existing field: one record, the metadata is unchanged.
                ((fk, value),) = puts.items()
                db.put(fk, value)
                return 0
            with db.batch() as b:
                if found is None:
                    self._purge(b, name, T_HASH)
                for fk, value in puts.items():
                    b.put(fk, value)
                self._put_count(b, name, T_HASH, count + added, version, expiry)
            return added

    @_name_limit(T_HASH)
    def hsetnx(self, name: Name, field: Name, value: Value) -> bool:
        """Set a hash field only if it does not exist."""
        return self._hset(_b(name), [(_b(field), _b(value))], nx=True) == 1

    def hget(self, name: Name, field: Name) -> bytes | None:
        """The value of a hash field, or None."""
        name, field = _b(name), _b(field)  # a field of the wrong type is refused, key or not
        found = self.db._get_record(META + name)
        if found is None:
            return None
        meta = found[0]
        if (
            not (
                HASH_META_ABOVE < meta < HASH_META_BELOW  # a hash's tag, 0 < count < _BOUND (as HSET's)
                and len(meta) == _HASH_META
                and not meta[9]  # version < _BOUND
                and not meta[10]
            )
            # Not a live hash of this layout: another type (WRONGTYPE), another front end's record
            # or one with counts no hash has (ForeignRecordError), as every hash command finds it.
            # (The common case costs no _counted_meta call: the comparison above is its whole check,
            # written out, and HGET is no slower for it.)
            and self._counted_meta(name, T_HASH) is None
        ):
            return None
        try:  # (_value written out)
            return self.db.get(HASH + _lp(name) + field)
        except KeyTooLargeError:  # a field too long to be stored: absent (see _value)
            return None

    def hmget(self, name: Name, *fields: Name | Iterable[Name]) -> list[bytes | None]:
        """The values of several hash fields (which may come as a list, as redis-py takes them)."""
        name = _b(name)
        raw = [_b(f) for f in _given(_list_or_args(fields), "hmget")]  # wrong types refused, key or not
        if self._counted_meta(name, T_HASH) is None:  # (ForeignRecordError for counts no hash has, as HGET)
            return [None] * len(raw)
        pfx = HASH + _lp(name)
        return [self._value(pfx + f) for f in raw]

    def _hitems(self, name: bytes) -> list[tuple[bytes, bytes]]:
        """Every field and value of hash ``name``, read as one moment left them: as many as its
        metadata counts (see :meth:`_check_members`)."""
        return self._read_consistent(lambda: self._hitems_now(name))

    def _hitems_now(self, name: bytes) -> list[tuple[bytes, bytes]]:
        found = self._meta(name, T_HASH)
        if found is None:
            return []
        pfx = HASH + _lp(name)
        n = len(pfx)
        items = [(k[n:], v) for k, v in self.db.items(prefix=pfx)]
        self._check_members(name, found[0], len(items))
        return items

    def hgetall(self, name: Name) -> dict[bytes, bytes]:
        """All fields and values of a hash."""
        return dict(self._hitems(_b(name)))

    def hkeys(self, name: Name) -> list[bytes]:
        """The fields of a hash."""
        return [f for f, _ in self._hitems(_b(name))]

    def hvals(self, name: Name) -> list[bytes]:
        """The values of a hash."""
        return [v for _, v in self._hitems(_b(name))]

    def hlen(self, name: Name) -> int:
        """Number of fields in a hash."""
        name = _b(name)
        found = self._meta(name, T_HASH)
        return self._count(name, found[0])[0] if found else 0

    def hexists(self, name: Name, field: Name) -> bool:
        """Whether a hash has a field."""
        return self.hget(name, field) is not None

    def hstrlen(self, name: Name, field: Name) -> int:
        """Length of a hash field's value (0 if missing)."""
        value = self.hget(name, field)
        return 0 if value is None else len(value)

    def hdel(self, name: Name, *fields: Name) -> int:
        """Delete hash fields; return how many existed."""
        name = _b(name)
        return self._remove_members(name, T_HASH, HASH + _lp(name), _given(fields, "hdel"))

    @_name_limit(T_HASH)
    def hincrby(self, name: Name, field: Name, amount: int = 1) -> int:
        """Add to an integer hash field (missing = 0); return the result."""
        amount = parse_int(amount)
        name, field = _b(name), _b(field)
        with self.db.locked():
            old = self.hget(name, field)
            try:
                current = 0 if old is None else parse_int(old)
            except NotAnIntegerError:
                raise HashValueNotAnIntegerError("ERR hash value is not an integer") from None
            result = current + amount
            if not _I64_MIN <= result <= _I64_MAX:
                raise CommandError("ERR increment or decrement would overflow")
            self._hset(name, [(field, str(result).encode())], nx=False)
            return result

    @_name_limit(T_HASH)
    def hincrbyfloat(self, name: Name, field: Name, amount: float | Value = 1.0) -> float:
        """Add to a float hash field (missing = 0) with Redis's arithmetic; return the result."""
        return float(self.hincrbyfloat_text(name, field, amount))

    @_name_limit(T_HASH)
    def hincrbyfloat_text(self, name: Name, field: Name, amount: float | Value = 1.0) -> bytes:
        """:meth:`hincrbyfloat`, returning the new value as stored (HINCRBYFLOAT's reply)."""
        incr = _long_double(amount)
        if isinstance(incr, float):
            raise CommandError("ERR value is NaN or Infinity")
        name, field = _b(name), _b(field)
        with self.db.locked():
            old = self.hget(name, field)
            current: longdouble.LongDouble = Fraction(0)
            if old is not None:
                try:
                    current = longdouble.parse(old)
                except ValueError:
                    raise NotAFloatError("ERR hash value is not a float") from None
            text = _add_long_double(current, incr)
            self._hset(name, [(field, text)], nx=False)
            return text

    def hscan(
        self, name: Name, cursor: int | bytes | str = 0, match: Name | None = None, count: int | None = 10
    ) -> tuple[int, dict[bytes, bytes]]:
        """One step of a cursor scan over a hash: ``(next cursor, {field: value})``."""
        name = _b(name)
        cursor = parse_cursor(cursor)  # a malformed cursor is refused first, as in Redis
        if self._counted_meta(name, T_HASH) is None:
            return 0, {}
        cur, items = self._member_scan(HASH + _lp(name), cursor, match, count)
        return cur, dict(items)

    def hscan_iter(
        self, name: Name, match: Name | None = None, count: int | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield the ``(field, value)`` pairs :meth:`hscan` steps through (redis-py's ``hscan_iter``)."""
        for items in scan_pages(lambda cursor: self.hscan(name, cursor, match, count)):
            yield from items.items()

    def hrandfield(self, name: Name, count: int | None = None, withvalues: bool = False) -> Any:
        """Random fields of a hash (HRANDFIELD): one field (None if missing) without ``count``;
        else a list of up to ``count`` distinct fields, or of ``-count`` fields that may repeat
        when it is negative; ``withvalues``: ``(field, value)`` pairs instead.
        """
        items = self._hitems(_b(name))
        if count is None:
            return random.choice(items)[0] if items else None
        count = parse_index(count)
        if count >= len(items):  # the whole hash, in HGETALL's order, as Redis answers it
            chosen = list(items)
        elif count >= 0:
            chosen = random.sample(items, count)
        else:
            chosen = random.choices(items, k=random_repeats(count)) if items else []
        return chosen if withvalues else [f for f, _ in chosen]
