"""Redis's geohash arithmetic: the 52-bit scores of GEOADD, their decoding, distances and the
neighbour boxes a radius or box search walks.

A position is stored as a sorted-set score: the longitude (-180..180) and latitude (Redis's
Web-Mercator limits, -85.05112878..85.05112878) are each cut into 2**26 intervals, and the two
26-bit interval numbers are interleaved, longitude in the odd (higher) bits, so that nearby
points have nearby scores. A search covers the area with the 3x3 cells of a grid fine enough for
the radius (the cell holding the centre and its eight neighbours, dropping those outside the
search's bounding box); each cell is one score interval, so it is one seek in the score index.

Everything here is computed with the same double operations, in the same order, as Redis, so
the scores, the decoded coordinates, the distances and the cells searched are the very same
numbers redis-server gets (Python floats are C doubles; where C's math functions return NaN or
an infinity, Python's raise, so they are wrapped).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

LON_MIN, LON_MAX = -180.0, 180.0
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878
STEP_MAX = 26  # 26 bits per coordinate: 52-bit scores
EARTH_RADIUS = 6372797.560856  # metres, Redis's value
MERCATOR_MAX = 20037726.37
_D_R = math.pi / 180.0
#: Units of distance, in metres.
UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
UNIT_ERROR = "ERR unsupported unit provided. please use M, KM, FT, MI"
#: The geohash base-32 alphabet.
BASE32 = b"0123456789bcdefghjkmnpqrstuvwxyz"

_M64 = (1 << 64) - 1
_NAN = math.nan


def _sin(x: float) -> float:
    return math.sin(x) if math.isfinite(x) else _NAN


def _cos(x: float) -> float:
    return math.cos(x) if math.isfinite(x) else _NAN


def _asin(x: float) -> float:
    return math.asin(x) if -1.0 <= x <= 1.0 else _NAN


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0.0 else _NAN


def _div(a: float, b: float) -> float:
    """``a / b`` as C divides doubles (a zero divisor gives an infinity or NaN, not an exception)."""
    if b != 0.0:
        return a / b
    if a == 0.0 or math.isnan(a):
        return _NAN
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def deg_rad(x: float) -> float:
    return x * _D_R


def rad_deg(x: float) -> float:
    return x / _D_R


def _spread(x: int) -> int:
    """The 32 low bits of ``x`` moved to the even bit positions of a 64-bit word."""
    x &= 0xFFFFFFFF
    x = (x | (x << 16)) & 0x0000FFFF0000FFFF
    x = (x | (x << 8)) & 0x00FF00FF00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x << 2)) & 0x3333333333333333
    return (x | (x << 1)) & 0x5555555555555555


def _squash(x: int) -> int:
    """The even bits of a 64-bit word, packed into 32 bits (the inverse of :func:`_spread`)."""
    x &= 0x5555555555555555
    x = (x | (x >> 1)) & 0x3333333333333333
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FF
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFF
    return (x | (x >> 16)) & 0xFFFFFFFF


def interleave(lat_index: int, lon_index: int) -> int:
    """A cell's hash bits: latitude bits in the even positions, longitude bits in the odd ones."""
    return _spread(lat_index) | (_spread(lon_index) << 1)


def deinterleave(bits: int) -> tuple[int, int]:
    """``(latitude index, longitude index)`` of hash bits."""
    return _squash(bits), _squash(bits >> 1)


def valid(lon: float, lat: float) -> bool:
    """Whether a position can be indexed (Redis's limits, inclusive)."""
    return LON_MIN <= lon <= LON_MAX and LAT_MIN <= lat <= LAT_MAX


def encode(
    lon: float, lat: float, step: int = STEP_MAX, lat_min: float = LAT_MIN, lat_max: float = LAT_MAX
) -> int:
    """The hash bits (``2 * step`` of them) of a valid position, in a latitude range."""
    lat_offset = (lat - lat_min) / (lat_max - lat_min)
    lon_offset = (lon - LON_MIN) / (LON_MAX - LON_MIN)
    lat_offset *= 1 << step
    lon_offset *= 1 << step
    return interleave(int(lat_offset), int(lon_offset))  # truncated to whole cells, as a C cast


def score_bits(score: float) -> int:
    """A score turned into 64 hash bits as Redis's C cast of a double to ``uint64_t`` does on x86-64.

    Geo scores are whole numbers below 2**53 and convert exactly; for other scores (any sorted
    set can be read as a geo set) this reproduces what that cast gives, so GEOPOS & co. answer
    what redis-server answers: truncation toward zero, negative numbers in two's complement, and
    ``2**63`` for numbers no 64-bit integer holds (0 for those of ``2**64`` and more).
    """
    two63 = 9223372036854775808.0
    if score >= two63:  # includes +inf
        rest = score - two63
        return (int(rest) + (1 << 63)) & _M64 if rest < two63 else 0
    if math.isnan(score) or score < -two63:  # includes -inf
        return 1 << 63
    return int(score) & _M64


class Area(NamedTuple):
    lon_min: float
    lon_max: float
    lat_min: float
    lat_max: float


def decode_area(bits: int, step: int, lat_min: float = LAT_MIN, lat_max: float = LAT_MAX) -> Area:
    """The longitude and latitude intervals of a cell."""
    lat_index, lon_index = deinterleave(bits)
    lat_scale = lat_max - lat_min
    lon_scale = LON_MAX - LON_MIN
    cells = float(1 << step)
    return Area(
        LON_MIN + (lon_index * 1.0 / cells) * lon_scale,
        LON_MIN + (((lon_index + 1) & 0xFFFFFFFF) * 1.0 / cells) * lon_scale,
        lat_min + (lat_index * 1.0 / cells) * lat_scale,
        lat_min + (((lat_index + 1) & 0xFFFFFFFF) * 1.0 / cells) * lat_scale,
    )


def decode(score: float) -> tuple[float, float]:
    """``(longitude, latitude)`` of a score: the centre of its cell, kept inside the limits."""
    area = decode_area(score_bits(score), STEP_MAX)
    lon = (area.lon_min + area.lon_max) / 2
    lon = LON_MAX if lon > LON_MAX else lon
    lon = LON_MIN if lon < LON_MIN else lon
    lat = (area.lat_min + area.lat_max) / 2
    lat = LAT_MAX if lat > LAT_MAX else lat
    lat = LAT_MIN if lat < LAT_MIN else lat
    return lon, lat


def geohash_string(score: float) -> bytes:
    """The standard 11-character geohash of a score's position (latitude over -90..90).

    52 bits give ten characters and two bits; like Redis, the eleventh character is '0'.
    """
    lon, lat = decode(score)
    bits = encode(lon, lat, STEP_MAX, -90.0, 90.0)
    chars = bytes(BASE32[(bits >> (52 - (i + 1) * 5)) & 0x1F] for i in range(10))
    return chars + b"0"


def lat_distance(lat1: float, lat2: float) -> float:
    """The distance in metres between two latitudes on one meridian."""
    return EARTH_RADIUS * abs(deg_rad(lat2) - deg_rad(lat1))


def distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """The haversine great-circle distance in metres (on a sphere of Redis's Earth radius)."""
    lon1r, lon2r = deg_rad(lon1), deg_rad(lon2)
    v = _sin((lon2r - lon1r) / 2)
    if v == 0.0:  # one meridian: the latitude distance, as Redis short-cuts it
        return lat_distance(lat1, lat2)
    lat1r, lat2r = deg_rad(lat1), deg_rad(lat2)
    u = _sin((lat2r - lat1r) / 2)
    a = u * u + _cos(lat1r) * _cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS * _asin(_sqrt(a))


class Shape(NamedTuple):
    """A search area: a circle (``height`` None) of ``width`` radius, or a ``width`` x ``height``
    box, in ``unit`` (its length in metres), centred on ``lon``, ``lat``."""

    lon: float
    lat: float
    unit: float
    width: float
    height: float | None = None

    def contains(self, lon: float, lat: float) -> float | None:
        """The distance in metres from the centre to a point inside the shape, else None."""
        if self.height is None:
            dist = distance(self.lon, self.lat, lon, lat)
            return None if dist > self.width * self.unit else dist
        if lat_distance(lat, self.lat) > self.height * self.unit / 2:
            return None
        if distance(lon, lat, self.lon, lat) > self.width * self.unit / 2:
            return None
        return distance(self.lon, self.lat, lon, lat)


def _estimate_step(range_m: float, lat: float) -> int:
    """The grid (bits per coordinate) whose cells are about as large as the search radius."""
    if range_m == 0:
        return STEP_MAX
    step = 1
    while range_m < MERCATOR_MAX:
        range_m *= 2
        step += 1
    step -= 2  # so that the range fits the 3x3 cells in most cases
    if lat > 66 or lat < -66:  # cells are narrower towards the poles
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    return min(max(step, 1), STEP_MAX)


def _bounding_box(shape: Shape) -> tuple[float, float, float, float]:
    """``(lon_min, lat_min, lon_max, lat_max)`` around the shape, widest at the latitude farther
    from the equator."""
    half_h = shape.width if shape.height is None else shape.height / 2
    half_w = shape.width if shape.height is None else shape.width / 2
    height = shape.unit * half_h
    width = shape.unit * half_w
    lat_delta = rad_deg(height / EARTH_RADIUS)
    lon_delta_top = rad_deg(_div(width / EARTH_RADIUS, _cos(deg_rad(shape.lat + lat_delta))))
    lon_delta_bottom = rad_deg(_div(width / EARTH_RADIUS, _cos(deg_rad(shape.lat - lat_delta))))
    delta = lon_delta_bottom if shape.lat < 0 else lon_delta_top
    return shape.lon - delta, shape.lat - lat_delta, shape.lon + delta, shape.lat + lat_delta


_ODD = 0xAAAAAAAAAAAAAAAA  # longitude bits
_EVEN = 0x5555555555555555  # latitude bits


def _move(bits: int, step: int, dlon: int, dlat: int) -> int:
    """The cell ``dlon``, ``dlat`` (each -1, 0 or 1) cells away on a grid of ``step`` bits.

    Done on the interleaved bits as Redis does it, wrapping around the grid: a coordinate that
    moves is kept to the grid's bits, one that does not move is left as it was (the centre cell
    of a search at longitude 180 or latitude 85.05112878 has an index one past the grid, a bit
    above the others, and Redis's neighbours keep it too).
    """
    width = 64 - step * 2
    if dlon:
        lon, lat = bits & _ODD, bits & _EVEN
        low = _EVEN >> width
        lon = lon + (low + 1) if dlon > 0 else (lon | low) - (low + 1)
        bits = (lon & (_ODD >> width)) | lat
    if dlat:
        lon, lat = bits & _ODD, bits & _EVEN
        low = _ODD >> width
        lat = lat + (low + 1) if dlat > 0 else (lat | low) - (low + 1)
        bits = lon | (lat & (_EVEN >> width))
    return bits & _M64


#: The order in which the centre cell and its neighbours are searched: centre, north, south,
#: east, west, north-east, north-west, south-east, south-west (as ``(dlon, dlat)``).
_NEIGHBOURS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1))


def search_ranges(shape: Shape) -> Iterator[tuple[int, int]]:
    """The score intervals ``[lo, hi)`` of the cells that cover ``shape``, in Redis's order.

    A cell outside the bounding box is left out; one equal to the cell searched just before is
    skipped (on the coarsest grids neighbours coincide).
    """
    lon_min, lat_min, lon_max, lat_max = _bounding_box(shape)
    if shape.height is None:
        radius = shape.width
    else:
        radius = math.sqrt((shape.width / 2) * (shape.width / 2) + (shape.height / 2) * (shape.height / 2))
    step = _estimate_step(radius * shape.unit, shape.lat)
    centre = encode(shape.lon, shape.lat, step)
    north = decode_area(_move(centre, step, 0, 1), step)
    south = decode_area(_move(centre, step, 0, -1), step)
    east = decode_area(_move(centre, step, 1, 0), step)
    west = decode_area(_move(centre, step, -1, 0), step)
    too_coarse = (
        north.lat_max < lat_max or south.lat_min > lat_min or east.lon_max < lon_max or west.lon_min > lon_min
    )
    if step > 1 and too_coarse:  # a neighbour does not reach the edge of the box: a coarser grid
        step -= 1
        centre = encode(shape.lon, shape.lat, step)
    area = decode_area(centre, step)
    cells: list[int | None] = [_move(centre, step, dlon, dlat) for dlon, dlat in _NEIGHBOURS]
    if step >= 2:  # leave out the neighbours on a side where the centre cell covers the box already
        if area.lat_min < lat_min:
            cells[2] = cells[7] = cells[8] = None  # south
        if area.lat_max > lat_max:
            cells[1] = cells[5] = cells[6] = None  # north
        if area.lon_min < lon_min:
            cells[4] = cells[6] = cells[8] = None  # west
        if area.lon_max > lon_max:
            cells[3] = cells[5] = cells[7] = None  # east
    shift = 52 - 2 * step
    last = 0
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        if last and cell == cells[last]:
            continue
        last = i
        yield cell << shift, (cell + 1) << shift
