"""Geo commands: positions as sorted-set scores (see :mod:`kv_backend.structures.geohash`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import arg_int, command, syntax, upper
from kv_backend.server.protocol import NULL_ARRAY, DoubleText
from kv_backend.structures import CommandError, geohash, parse_float
from kv_backend.structures.geo import (
    GeoPoint,
    _score_to_hash,
    coordinate_text,
    distance_text,
    lon_lat,
    unit_factor,
)
from kv_backend.structures.geohash import Shape
from kv_backend.structures.layout import T_ZSET

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


def _coordinate(conn: Connection, value: float) -> Any:
    text = coordinate_text(value)
    return DoubleText(text) if conn.resp3 else text


def _position(conn: Connection, xy: tuple[float, float] | None) -> Any:
    if xy is None:
        return NULL_ARRAY
    return [_coordinate(conn, xy[0]), _coordinate(conn, xy[1])]


@command("GEOADD", -5, "write")
def cmd_geoadd(conn: Connection, args: list[bytes]) -> Any:
    """Add members at longitude, latitude positions (NX, XX, CH as in ZADD)."""
    opts: set[bytes] = set()
    i = 2
    while i < len(args) and upper(args[i]) in (b"NX", b"XX", b"CH"):
        opts.add(upper(args[i]))
        i += 1
    if i == len(args):  # (GEOADD k CH CH CH: no position after as many words as one takes)
        raise syntax()
    return conn.st.geoadd(args[1], args[i:], nx=b"NX" in opts, xx=b"XX" in opts, ch=b"CH" in opts)


@command("GEOPOS", -2)
def cmd_geopos(conn: Connection, args: list[bytes]) -> Any:
    """The longitude and latitude of each member (a null array for a missing one)."""
    return [_position(conn, xy) for xy in conn.st.geopos(args[1], *args[2:])]


@command("GEODIST", -4)
def cmd_geodist(conn: Connection, args: list[bytes]) -> Any:
    """The distance between two members, in M (default), KM, FT or MI."""
    factor = 1.0
    if len(args) == 5:
        factor = unit_factor(args[4])
    elif len(args) > 5:
        raise syntax()
    st = conn.st
    if st._counted_meta(args[1], T_ZSET) is None:
        return None
    a, b = st._geo_xy(args[1], args[2]), st._geo_xy(args[1], args[3])
    if a is None or b is None:
        return None
    return distance_text(geohash.distance(a[0], a[1], b[0], b[1]) / factor)


@command("GEOHASH", -2)
def cmd_geohash(conn: Connection, args: list[bytes]) -> Any:
    """The 11-character geohash string of each member (null for a missing one)."""
    return conn.st.geohash(args[1], *args[2:])


def _distance(radius: bytes, unit: bytes) -> tuple[float, float]:
    """A radius and its unit (``BYRADIUS r unit``, GEORADIUS's ``radius unit``), checked in Redis's order."""
    r = parse_float(radius, "ERR need numeric radius")
    if r < 0:
        raise CommandError("ERR radius cannot be negative")
    return r, unit_factor(unit)


def _box(width: bytes, height: bytes, unit: bytes) -> tuple[float, float, float]:
    w = parse_float(width, "ERR need numeric width")
    h = parse_float(height, "ERR need numeric height")
    if h < 0 or w < 0:
        raise CommandError("ERR height or width cannot be negative")
    return w, h, unit_factor(unit)


_RADIUS, _BYMEMBER, _SEARCH = "radius", "bymember", "search"


def _search(
    conn: Connection, args: list[bytes], kind: str, store_form: bool = False, readonly: bool = False
) -> Any:
    """GEOSEARCH, GEOSEARCHSTORE, GEORADIUS[_RO] and GEORADIUSBYMEMBER[_RO], whose arguments are
    read, and checked, in the order Redis reads them: the source key's type, the fixed arguments,
    the options left to right (a FROMMEMBER's member is looked up where it stands), then the
    combinations of options; a missing source answers an empty array (or deletes the
    destination and answers 0)."""
    st = conn.st
    name = args[0].decode("utf-8", "replace")  # Redis names the command as the client spelled it
    src = args[2] if store_form else args[1]
    exists = st._counted_meta(src, T_ZSET) is not None
    xy: tuple[float, float] | None = None
    width = unit = 0.0
    height: float | None = None
    store: bytes | None = args[1] if store_form else None
    if kind == _RADIUS:
        base = 6
        xy = lon_lat(args[2], args[3])
        width, unit = _distance(args[4], args[5])
    elif kind == _BYMEMBER:
        base = 5
        if exists:
            xy = st._geo_xy(src, args[2])
            if xy is None:
                raise CommandError("ERR could not decode requested zset member")
            width, unit = _distance(args[3], args[4])
    else:
        base = 3 if store_form else 2
    withdist = withhash = withcoord = any_ = storedist = False
    frommember = fromloc = byradius = bybox = False
    sort: str | None = None
    count = 0
    remaining = len(args) - base
    i = 0
    while i < remaining:
        at = base + i
        opt = upper(args[at])
        more = remaining - i - 1  # arguments after this one
        if opt == b"WITHDIST":
            withdist = True
        elif opt == b"WITHHASH":
            withhash = True
        elif opt == b"WITHCOORD":
            withcoord = True
        elif opt == b"ANY":
            any_ = True
        elif opt == b"ASC":
            sort = "asc"
        elif opt == b"DESC":
            sort = "desc"
        elif opt == b"COUNT" and more >= 1:
            count = arg_int(args[at + 1])
            if count <= 0:
                raise CommandError("ERR COUNT must be > 0")
            i += 1
        elif opt in (b"STORE", b"STOREDIST") and more >= 1 and kind != _SEARCH and not readonly:
            store = args[at + 1]
            storedist = opt == b"STOREDIST"
            i += 1
        elif opt == b"STOREDIST" and kind == _SEARCH and store_form:
            storedist = True
        elif opt == b"FROMMEMBER" and more >= 1 and kind == _SEARCH and not fromloc:
            if exists:
                xy = st._geo_xy(src, args[at + 1])
                if xy is None:
                    raise CommandError("ERR could not decode requested zset member")
            frommember = True
            i += 1
        elif opt == b"FROMLONLAT" and more >= 2 and kind == _SEARCH and not frommember:
            xy = lon_lat(args[at + 1], args[at + 2])
            fromloc = True
            i += 2
        elif opt == b"BYRADIUS" and more >= 2 and kind == _SEARCH and not bybox:
            width, unit = _distance(args[at + 1], args[at + 2])
            height = None
            byradius = True
            i += 2
        elif opt == b"BYBOX" and more >= 3 and kind == _SEARCH and not byradius:
            width, box_height, unit = _box(args[at + 1], args[at + 2], args[at + 3])
            height = box_height
            bybox = True
            i += 3
        else:
            raise syntax()
        i += 1
    if store is not None and (withdist or withhash or withcoord):  # Redis 7.0's words, whatever the command
        what = "GEOSEARCHSTORE" if kind == _SEARCH else "STORE option in GEORADIUS"
        raise CommandError(f"ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
    if kind == _SEARCH and not (frommember or fromloc):
        raise CommandError(f"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")
    if kind == _SEARCH and not (byradius or bybox):
        raise CommandError(f"ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")
    if any_ and not count:
        raise CommandError("ERR the ANY argument requires COUNT argument")
    if not exists or xy is None:
        if store is not None:
            st._zstore(store, {})  # a missing source deletes the destination
            return 0
        return []
    shape = Shape(xy[0], xy[1], unit, width, height)
    points = st._geo_points(src, shape, count if any_ else 0)
    points = st._geo_order(points, sort, count, any_)
    if store is not None:
        return st._geo_store(store, points, storedist, unit)
    return [_result(conn, p, unit, withdist, withhash, withcoord) for p in points]


def _result(
    conn: Connection, p: GeoPoint, unit: float, withdist: bool, withhash: bool, withcoord: bool
) -> Any:
    if not (withdist or withhash or withcoord):
        return p.member
    item: list[Any] = [p.member]
    if withdist:
        item.append(distance_text(p.dist / unit))
    if withhash:
        item.append(_score_to_hash(p.score))
    if withcoord:
        item.append(_position(conn, (p.lon, p.lat)))
    return item


def store_key(args: list[bytes]) -> list[bytes]:
    """The key GEORADIUS / GEORADIUSBYMEMBER write: the last STORE or STOREDIST key (none without)."""
    base = 6 if args[0].lower() == b"georadius" else 5
    found: list[bytes] = []
    i = base
    while i < len(args):
        opt = args[i].upper()
        if opt in (b"STORE", b"STOREDIST", b"COUNT") and i + 1 < len(args):
            if opt != b"COUNT":
                found = [args[i + 1]]
            i += 1
        i += 1
    return found


@command("GEOSEARCH", -7)
def cmd_geosearch(conn: Connection, args: list[bytes]) -> Any:
    """Members within a radius or box of a member or a position (ASC/DESC, COUNT [ANY], WITH*)."""
    return _search(conn, args, _SEARCH)


@command("GEOSEARCHSTORE", -8, "write")
def cmd_geosearchstore(conn: Connection, args: list[bytes]) -> Any:
    """GEOSEARCH whose result is stored in destination (STOREDIST: distances as the scores)."""
    with conn.st.db.locked():
        return _search(conn, args, _SEARCH, store_form=True)


@command("GEORADIUS", -6, "write")
def cmd_georadius(conn: Connection, args: list[bytes]) -> Any:
    """Members within a radius of a position (STORE/STOREDIST key to store them)."""
    with conn.st.db.locked():
        return _search(conn, args, _RADIUS)


@command("GEORADIUS_RO", -6)
def cmd_georadius_ro(conn: Connection, args: list[bytes]) -> Any:
    """GEORADIUS without STORE."""
    return _search(conn, args, _RADIUS, readonly=True)


@command("GEORADIUSBYMEMBER", -5, "write")
def cmd_georadiusbymember(conn: Connection, args: list[bytes]) -> Any:
    """Members within a radius of a member (STORE/STOREDIST key to store them)."""
    with conn.st.db.locked():
        return _search(conn, args, _BYMEMBER)


@command("GEORADIUSBYMEMBER_RO", -5)
def cmd_georadiusbymember_ro(conn: Connection, args: list[bytes]) -> Any:
    """GEORADIUSBYMEMBER without STORE."""
    return _search(conn, args, _BYMEMBER, readonly=True)
