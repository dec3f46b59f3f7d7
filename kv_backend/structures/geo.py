"""Redis geospatial commands: positions kept as sorted-set scores (52-bit geohashes, see
:mod:`.geohash`), so a geo key is an ordinary sorted set and ZRANGE, ZREM... work on it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, NamedTuple

from kv_backend.errors import InvalidArgumentError
from kv_backend.longdouble import format_human
from kv_backend.structures import geohash
from kv_backend.structures.errors import CommandError, wrong_arity
from kv_backend.structures.geohash import Shape
from kv_backend.structures.keyspace import _name_limit
from kv_backend.structures.layout import T_ZSET, ZMEM, Name, Value, _b, _lp, decode_score
from kv_backend.structures.parsing import keyword, parse_float, parse_index
from kv_backend.structures.zsets import SortedSets

#: What ``geoadd()``'s values may not be: iterable, but no list of positions and members.
_NOT_A_LIST = (str, bytes, bytearray, memoryview, Mapping)


class GeoPoint(NamedTuple):
    """A search result: the member, its distance from the centre in metres, its score and position."""

    member: bytes
    dist: float
    score: float
    lon: float
    lat: float


def coordinate_text(value: float) -> bytes:
    """A coordinate as Redis writes it (GEOPOS, WITHCOORD): 17 decimals, trailing zeros dropped."""
    return format_human(Fraction(value))  # the double's exact value, as C's printf sees it


def distance_text(value: float) -> bytes:
    """A distance as Redis writes it: four decimals."""
    return b"%.4f" % value


def lon_lat(lon: Value | float, lat: Value | float) -> tuple[float, float]:
    """A longitude and latitude argument, checked against the limits of a geohash."""
    x, y = parse_float(lon), parse_float(lat)
    if not geohash.valid(x, y):
        raise CommandError(f"ERR invalid longitude,latitude pair {x:f},{y:f}")
    return x, y


def unit_factor(unit: Value) -> float:
    """The length of a unit (``m``, ``km``, ``ft``, ``mi``, any case) in metres."""
    try:
        return geohash.UNITS[keyword(unit).lower()]
    except KeyError:
        raise CommandError(geohash.UNIT_ERROR) from None


def _score_to_hash(score: float) -> int:
    """WITHHASH's integer: the score as C converts a double to ``long long``."""
    if -9223372036854775808.0 <= score < 9223372036854775808.0:
        return int(score)
    return -(1 << 63)


def _cmp_dist(a: GeoPoint, b: GeoPoint) -> int:
    """Redis's comparison of two results by distance (a NaN distance compares as smaller)."""
    if a.dist > b.dist:
        return 1
    return 0 if a.dist == b.dist else -1


def partial_sort(items: list[Any], cmp: Callable[[Any, Any], int], count: int, first: int = 0) -> None:
    """Sort ``items`` in place far enough that the first ``count`` are the smallest, in order
    (``first``: only positions ``first``..``count - 1`` need to be right, as for SORT's LIMIT).

    This is Bentley and McIlroy's quicksort (median-of-three pivots, ninther above 40 items,
    three-way partitioning, insertion sort below 7 items) that recurses only into the parts that
    overlap the first ``count`` positions: the partial sort Redis uses for COUNT, so items that
    compare equal end up where redis-server puts them.
    """
    last = count - 1

    def swap(i: int, j: int) -> None:
        items[i], items[j] = items[j], items[i]

    def med3(a: int, b: int, c: int) -> int:
        if cmp(items[a], items[b]) < 0:
            return b if cmp(items[b], items[c]) < 0 else (c if cmp(items[a], items[c]) < 0 else a)
        return b if cmp(items[b], items[c]) > 0 else (a if cmp(items[a], items[c]) < 0 else c)

    def sort(lo: int, n: int) -> None:
        while True:
            if n < 7:
                for m in range(lo + 1, lo + n):
                    k = m
                    while k > lo and cmp(items[k - 1], items[k]) > 0:
                        swap(k, k - 1)
                        k -= 1
                return
            pm = lo + n // 2
            if n > 7:
                pl, pn = lo, lo + n - 1
                if n > 40:
                    d = n // 8
                    pl = med3(pl, pl + d, pl + 2 * d)
                    pm = med3(pm - d, pm, pm + d)
                    pn = med3(pn - 2 * d, pn - d, pn)
                pm = med3(pl, pm, pn)
            swap(lo, pm)
            pa = pb = lo + 1
            pc = pd = lo + n - 1
            while True:
                while pb <= pc:
                    r = cmp(items[pb], items[lo])
                    if r > 0:
                        break
                    if r == 0:
                        swap(pa, pb)
                        pa += 1
                    pb += 1
                while pb <= pc:
                    r = cmp(items[pc], items[lo])
                    if r < 0:
                        break
                    if r == 0:
                        swap(pc, pd)
                        pd -= 1
                    pc -= 1
                if pb > pc:
                    break
                swap(pb, pc)
                pb += 1
                pc -= 1
            pn = lo + n
            r = min(pa - lo, pb - pa)
            for i in range(r):
                swap(lo + i, pb - r + i)
            r = min(pd - pc, pn - pd - 1)
            for i in range(r):
                swap(pb + i, pn - r + i)
            r = pb - pa
            if r > 1 and lo <= last and lo + r - 1 >= first:  # only parts that reach into the range
                sort(lo, r)
            r = pd - pc
            if r <= 1 or pn - r > last or pn - 1 < first:
                return
            lo, n = pn - r, r

    sort(0, len(items))


class GeoSets(SortedSets):
    """The geo commands of :class:`~kv_backend.structures.Structures`."""

    @_name_limit(T_ZSET)
    def geoadd(
        self,
        name: Name,
        values: Sequence[Any],
        nx: bool = False,
        xx: bool = False,
        ch: bool = False,
    ) -> int:
        """Add members at positions: ``values`` is ``longitude, latitude, member, ...`` (as redis-py).

        Each position becomes the member's score (its 52-bit geohash); every position is checked
        before anything is written (``ERR invalid longitude,latitude pair ...`` outside
        -180..180, -85.05112878..85.05112878). Returns how many members were added (``ch``:
        added or moved); ``nx``/``xx`` as in ZADD.
        """
        if not isinstance(values, Iterable) or isinstance(values, _NOT_A_LIST):
            raise InvalidArgumentError(
                f"values must be a list: longitude, latitude, member, ...; not {type(values).__name__}"
            )
        values = list(values)
        if not values and not (nx and xx and ch):  # (GEOADD k with fewer than 3 option words)
            raise wrong_arity("geoadd")
        if len(values) % 3 or (nx and xx):
            raise CommandError("ERR syntax error")
        pairs = []
        for i in range(0, len(values), 3):
            x, y = lon_lat(values[i], values[i + 1])
            pairs.append((_b(values[i + 2]), float(geohash.encode(x, y))))
        if not pairs:
            raise CommandError("ERR syntax error")
        added: int = self.zadd(name, pairs, nx=nx, xx=xx, ch=ch)
        return added

    def _geo_xy(self, name: bytes, member: Value) -> tuple[float, float] | None:
        """The position of a member of an existing sorted set, or None."""
        key = ZMEM + _lp(name) + _b(member)
        raw = self._value(key)
        return None if raw is None else geohash.decode(decode_score(raw, key))

    def geopos(self, name: Name, *members: Value) -> list[tuple[float, float] | None]:
        """``(longitude, latitude)`` of each member (None for a missing one): its cell's centre."""
        name, raw = _b(name), [_b(m) for m in members]  # a member of the wrong type is refused, key or not
        exists = self._counted_meta(name, T_ZSET) is not None
        return [self._geo_xy(name, m) if exists else None for m in raw]

    def geodist(self, name: Name, member1: Value, member2: Value, unit: Value | None = None) -> float | None:
        """The distance between two members in ``unit`` (default metres), rounded to 4 decimals as
        Redis replies it; None if either is missing."""
        factor = 1.0 if unit is None else unit_factor(unit)
        name, member1, member2 = _b(name), _b(member1), _b(member2)  # checked, key or not
        if self._counted_meta(name, T_ZSET) is None:
            return None
        a, b = self._geo_xy(name, member1), self._geo_xy(name, member2)
        if a is None or b is None:
            return None
        return float(distance_text(geohash.distance(a[0], a[1], b[0], b[1]) / factor))

    def geohash(self, name: Name, *members: Value) -> list[bytes | None]:
        """The standard 11-character geohash string of each member (None for a missing one)."""
        name, given = _b(name), [_b(m) for m in members]  # a member of the wrong type is refused, key or not
        exists = self._counted_meta(name, T_ZSET) is not None
        out: list[bytes | None] = []
        for member in given:
            key = ZMEM + _lp(name) + member
            raw = self._value(key) if exists else None
            out.append(None if raw is None else geohash.geohash_string(decode_score(raw, key)))
        return out

    # ------------------------------------------------------------------ search

    def _geo_points(self, name: bytes, shape: Shape, limit: int = 0) -> list[GeoPoint]:
        """The members inside ``shape``, found as Redis finds them: cell by cell in Redis's order,
        each cell one score-index seek, in score order within a cell; ``limit`` (ANY) stops at
        that many. The caller checked that ``name`` is a sorted set."""
        out: list[GeoPoint] = []
        for lo, hi in geohash.search_ranges(shape):
            if limit and len(out) >= limit:
                break
            for member, score in self._zscore_range(name, (float(lo), False), (float(hi), True)):
                lon, lat = geohash.decode(score)
                dist = shape.contains(lon, lat)
                if dist is None:
                    continue
                out.append(GeoPoint(member, dist, score, lon, lat))
                if limit and len(out) >= limit:
                    break
        return out

    @staticmethod
    def _geo_order(points: list[GeoPoint], sort: str | None, count: int, any_: bool) -> list[GeoPoint]:
        """Sort (``asc``/``desc`` by distance; COUNT without ANY sorts ascending) and cut to ``count``.

        Redis sorts all the points with a stable sort when it returns them all, and otherwise
        only as far as the first ``count`` with its partial quicksort, which orders points at one
        distance its own way; both are reproduced, so ties come out in redis-server's order.
        """
        if count and sort is None and not any_:
            sort = "asc"
        if sort is not None:
            sign = -1 if sort == "desc" else 1
            if not count or count >= len(points):
                points = sorted(points, key=lambda p: p.dist, reverse=sign < 0)
            else:
                points = list(points)
                partial_sort(points, lambda a, b: sign * _cmp_dist(a, b), count)
        return points[:count] if count else points

    def _geo_store(self, dest: Name, points: list[GeoPoint], storedist: bool, unit: float) -> int:
        """Replace ``dest`` by a sorted set of the points (scores: their geohashes, or with
        ``storedist`` their distances in the unit); nothing found deletes it. Caller holds the lock."""
        self._zstore(dest, {p.member: (p.dist / unit if storedist else p.score) for p in points})
        return len(points)

    def _geo_shape(
        self,
        name: bytes,
        member: Value | None,
        longitude: Value | float | None,
        latitude: Value | float | None,
        radius: Value | float | None,
        width: Value | float | None,
        height: Value | float | None,
        unit: Value,
    ) -> Shape | None:
        """The search area of the keyword arguments of :meth:`geosearch` (None: no such key)."""
        if (member is None) == (longitude is None or latitude is None):
            raise CommandError("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch")
        if (radius is None) == (width is None or height is None):
            raise CommandError("ERR exactly one of BYRADIUS and BYBOX can be specified for geosearch")
        factor = unit_factor(unit)
        if radius is not None:
            r = parse_float(radius, "ERR need numeric radius")
            if r < 0:
                raise CommandError("ERR radius cannot be negative")
            w, h = r, None
        else:
            w = parse_float(width, "ERR need numeric width")  # type: ignore[arg-type]
            h = parse_float(height, "ERR need numeric height")  # type: ignore[arg-type]
            if h < 0 or w < 0:
                raise CommandError("ERR height or width cannot be negative")
        if member is None:
            x, y = lon_lat(longitude, latitude)  # type: ignore[arg-type]  # checked before the key
        if self._counted_meta(name, T_ZSET) is None:
            return None
        if member is not None:
            xy = self._geo_xy(name, member)
            if xy is None:
                raise CommandError("ERR could not decode requested zset member")
            x, y = xy
        return Shape(x, y, factor, w, h)

    def geosearch(
        self,
        name: Name,
        member: Value | None = None,
        longitude: Value | float | None = None,
        latitude: Value | float | None = None,
        unit: Value = "m",
        radius: Value | float | None = None,
        width: Value | float | None = None,
        height: Value | float | None = None,
        sort: str | None = None,
        count: int | None = None,
        any: bool = False,
        withcoord: bool = False,
        withdist: bool = False,
        withhash: bool = False,
    ) -> list[Any]:
        """The members within ``radius`` (or a ``width`` x ``height`` box) of ``member`` or of
        ``longitude``, ``latitude``, in ``unit`` (arguments as redis-py's ``geosearch``).

        ``sort`` is ``"ASC"``/``"DESC"`` by distance; ``count`` keeps the nearest ones (with
        ``any``: the first ones found, not sorted unless asked). Without ``with*`` options the
        result is the member names; otherwise each item is ``[member, distance (in unit),
        hash (int), (longitude, latitude)]`` with only the parts asked for, as redis-py returns.
        The members found and their order are those of redis-server for the same data.
        """
        name = _b(name)
        points, factor = self._geo_search(
            name, member, longitude, latitude, unit, radius, width, height, sort, count, any
        )
        if not (withcoord or withdist or withhash):
            return [p.member for p in points]
        out: list[Any] = []
        for p in points:
            item: list[Any] = [p.member]
            if withdist:
                item.append(float(distance_text(p.dist / factor)))
            if withhash:
                item.append(_score_to_hash(p.score))
            if withcoord:
                item.append((p.lon, p.lat))
            out.append(item)
        return out

    def _geo_search(
        self,
        name: bytes,
        member: Value | None,
        longitude: Value | float | None,
        latitude: Value | float | None,
        unit: Value,
        radius: Value | float | None,
        width: Value | float | None,
        height: Value | float | None,
        sort: str | None,
        count: int | None,
        any_: bool,
    ) -> tuple[list[GeoPoint], float]:
        self._meta(name, T_ZSET)  # WRONGTYPE before the arguments, as Redis
        order = None if sort is None else keyword(sort).decode("latin-1").lower()
        if order not in (None, "asc", "desc"):
            raise CommandError("ERR syntax error")
        count = None if count is None else parse_index(count)
        if count is not None and count <= 0:
            raise CommandError("ERR COUNT must be > 0")
        if any_ and not count:
            raise CommandError("ERR the ANY argument requires COUNT argument")
        shape = self._geo_shape(name, member, longitude, latitude, radius, width, height, unit)
        if shape is None:
            return [], unit_factor(unit)
        points = self._geo_points(name, shape, count or 0 if any_ else 0)
        return self._geo_order(points, order, count or 0, any_), shape.unit

    @_name_limit(T_ZSET)
    def geosearchstore(
        self,
        dest: Name,
        name: Name,
        member: Value | None = None,
        longitude: Value | float | None = None,
        latitude: Value | float | None = None,
        unit: Value = "m",
        radius: Value | float | None = None,
        width: Value | float | None = None,
        height: Value | float | None = None,
        sort: str | None = None,
        count: int | None = None,
        any: bool = False,
        storedist: bool = False,
    ) -> int:
        """Store what :meth:`geosearch` finds in ``dest`` (replacing it, TTL too; nothing found
        deletes it) and return how many: scores are the geohashes, or with ``storedist`` the
        distances in ``unit``. Atomic."""
        name = _b(name)
        with self.db.locked():
            points, factor = self._geo_search(
                name, member, longitude, latitude, unit, radius, width, height, sort, count, any
            )
            return self._geo_store(dest, points, storedist, factor)

    @_name_limit(T_ZSET)
    def georadius(
        self,
        name: Name,
        longitude: Value | float,
        latitude: Value | float,
        radius: Value | float,
        unit: Value = "m",
        **options: Any,
    ) -> Any:
        """GEORADIUS: :meth:`geosearch` around a position; ``store``/``store_dist`` (a key)
        store the result as :meth:`geosearchstore` does and return its size."""
        return self._georadius(name, None, longitude, latitude, radius, unit, options)

    @_name_limit(T_ZSET)
    def georadiusbymember(
        self, name: Name, member: Value, radius: Value | float, unit: Value = "m", **options: Any
    ) -> Any:
        """GEORADIUSBYMEMBER: :meth:`georadius` around a member's position."""
        return self._georadius(name, member, None, None, radius, unit, options)

    def _georadius(
        self,
        name: Name,
        member: Value | None,
        longitude: Value | float | None,
        latitude: Value | float | None,
        radius: Value | float,
        unit: Value,
        options: dict[str, Any],
    ) -> Any:
        store, store_dist = options.pop("store", None), options.pop("store_dist", None)
        if store is None and store_dist is None:
            return self.geosearch(name, member, longitude, latitude, unit, radius, **options)
        if any(options.get(k) for k in ("withcoord", "withdist", "withhash")):
            raise CommandError(
                "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD "
                "options"
            )
        dest = store_dist if store_dist is not None else store
        return self.geosearchstore(
            dest, name, member, longitude, latitude, unit, radius, storedist=store_dist is not None, **options
        )
