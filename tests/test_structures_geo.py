"""kv_backend.structures: the geo commands (GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH[STORE],
GEORADIUS[BYMEMBER]) in one process and several; the expected numbers are redis-server's."""

from __future__ import annotations

import random

import pytest
from helpers import spawn_python

from kv_backend.structures import CommandError, NotAFloatError, Structures, WrongTypeError, geohash
from kv_backend.structures.geo import partial_sort

PALERMO = (13.361389, 38.115556, "Palermo")
CATANIA = (15.087269, 37.502669, "Catania")


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


def test_geoadd_stores_redis_scores_and_reads_positions_back(s):
    assert s.geoadd("k", [*PALERMO, *CATANIA]) == 2
    assert s.zrange("k", 0, -1, withscores=True) == [
        (b"Palermo", 3479099956230698.0),
        (b"Catania", 3479447370796909.0),
    ]
    assert s.geopos("k", "Palermo", "nope") == [(13.361389338970184, 38.1155563954963), None]
    assert s.geopos("missing", "a") == [None]
    assert s.geodist("k", "Palermo", "Catania") == 166274.1516
    assert s.geodist("k", "Palermo", "Catania", "km") == 166.2742
    assert s.geodist("k", "Palermo", "nope") is None and s.geodist("missing", "a", "b") is None
    assert s.geohash("k", "Palermo", "nope") == [b"sqc8b49rny0", None]
    # the limits are inclusive; longitude 180 gives a score with a bit above the 52
    assert s.geoadd("k", [180, 0, "e", 0, 85.05112878, "n"]) == 2
    assert s.zscore("k", "e") == 10133099161583616.0 and s.zscore("k", "n") == 6755399441055744.0
    assert s.geohash("k", "e", "n") == [b"80000000000", b"up05b5048p0"]
    assert s.geoadd("k", [*PALERMO[:2], "Palermo", 1, 1, "new"], xx=True, ch=True) == 0
    assert s.geoadd("k", [13.361389, 39, "Palermo"], nx=True) == 0
    assert s.geoadd("k", [13.361389, 39, "Palermo"], ch=True) == 1


def test_geoadd_checks_every_position_first(s):
    with pytest.raises(CommandError, match=r"^ERR invalid longitude,latitude pair 200\.000000,10\.000000$"):
        s.geoadd("k", [1, 2, "ok", 200, 10, "bad"])
    assert not s.exists("k")
    with pytest.raises(NotAFloatError, match="not a valid float"):
        s.geoadd("k", [1, "x", "m"])
    with pytest.raises(CommandError, match="syntax error"):
        s.geoadd("k", [1, 2])
    with pytest.raises(CommandError, match="syntax error"):
        s.geoadd("k", [1, 2, "m"], nx=True, xx=True)
    with pytest.raises(CommandError, match="unsupported unit provided"):
        s.geodist("k", "a", "b", "yd")
    s.set("str", "x")
    with pytest.raises(WrongTypeError):
        s.geoadd("str", [1, 2, "m"])
    with pytest.raises(WrongTypeError):
        s.geopos("str", "m")
    with pytest.raises(WrongTypeError):
        s.geosearch("str", longitude=1, latitude=2, radius=1)


def test_geosearch_and_its_options(s):
    s.geoadd("k", [*PALERMO, *CATANIA])
    assert s.geosearch("k", longitude=15, latitude=37, radius=200, unit="km") == [b"Palermo", b"Catania"]
    assert s.geosearch("k", longitude=15, latitude=37, radius=200, unit="km", sort="ASC") == [
        b"Catania",
        b"Palermo",
    ]
    assert s.geosearch(
        "k",
        longitude=15,
        latitude=37,
        radius=200,
        unit="km",
        sort="DESC",
        withdist=True,
        withhash=True,
        withcoord=True,
    ) == [
        [b"Palermo", 190.4424, 3479099956230698, (13.361389338970184, 38.1155563954963)],
        [b"Catania", 56.4413, 3479447370796909, (15.087267458438873, 37.50266842333162)],
    ]
    assert s.geosearch("k", member="Palermo", width=400, height=400, unit="km", count=1) == [b"Palermo"]
    assert s.geosearch("k", member="Palermo", radius=200, unit="km", count=1, any=True) == [b"Palermo"]
    assert s.geosearch("missing", member="x", radius=1) == []
    with pytest.raises(CommandError, match="could not decode requested zset member"):
        s.geosearch("k", member="nope", radius=1)
    with pytest.raises(CommandError, match="exactly one of FROMMEMBER or FROMLONLAT"):
        s.geosearch("k", radius=1)
    with pytest.raises(CommandError, match="exactly one of BYRADIUS and BYBOX"):
        s.geosearch("k", member="Palermo")
    with pytest.raises(CommandError, match="the ANY argument requires COUNT argument"):
        s.geosearch("k", member="Palermo", radius=1, any=True)
    with pytest.raises(CommandError, match="COUNT must be > 0"):
        s.geosearch("k", member="Palermo", radius=1, count=0)
    with pytest.raises(CommandError, match="radius cannot be negative"):
        s.geosearch("k", member="Palermo", radius=-1)


def test_store_forms_replace_the_destination(s):
    s.geoadd("k", [*PALERMO, *CATANIA])
    s.set("d", "x", ex=100)
    assert s.geosearchstore("d", "k", longitude=15, latitude=37, radius=200, unit="km") == 2
    assert s.ttl("d") is None and s.zscore("d", "Catania") == 3479447370796909.0
    assert s.geosearchstore("d", "k", longitude=15, latitude=37, radius=200, unit="km", storedist=True) == 2
    assert round(s.zscore("d", "Catania"), 4) == 56.4413
    assert s.georadius("k", 15, 37, 200, "km", store="e", count=1) == 1
    assert s.zrange("e", 0, -1) == [b"Catania"]
    assert s.georadiusbymember("k", "Palermo", 1, "km", store_dist="e") == 1
    assert s.zrange("e", 0, -1, withscores=True) == [(b"Palermo", 0.0)]
    assert s.georadius("k", 15, 37, 1, "m", store="e") == 0 and not s.exists("e")
    with pytest.raises(CommandError, match="STORE option in GEORADIUS is not compatible"):
        s.georadius("k", 15, 37, 1, "m", store="e", withdist=True)
    assert s.georadius("k", 15, 37, 200, "km", withdist=True, sort="ASC") == [
        [b"Catania", 56.4413],
        [b"Palermo", 190.4424],
    ]


def test_geohash_arithmetic():
    bits = geohash.encode(13.361389, 38.115556)
    assert bits == 3479099956230698
    assert geohash.decode(float(bits)) == (13.361389338970184, 38.1155563954963)
    # scores that are no geohashes decode as a C cast of the double would make them
    assert geohash.decode(-1.0) == (180.0, 85.05112878)
    assert geohash.decode(float("inf")) == geohash.decode(0.0)
    assert geohash.score_bits(-1.0) == 2**64 - 1 and geohash.score_bits(float("-inf")) == 2**63
    assert geohash.deinterleave(geohash.interleave(12345, 67890)) == (12345, 67890)
    assert geohash.distance(0, 0, 0, 0) == 0.0
    far = geohash.distance(13.361389, 38.115556, 15.087269, 37.502669)
    assert far == pytest.approx(166274.258, abs=0.001)
    # a search's cells: nine intervals at most, each the span of one cell
    cells = list(geohash.search_ranges(geohash.Shape(15.0, 37.0, 1000.0, 200.0)))
    assert 1 <= len(cells) <= 9 and all(lo < hi for lo, hi in cells)


def test_partial_sort_puts_the_smallest_first_in_order():
    rng = random.Random(5)
    for _ in range(200):
        items = [rng.randrange(20) for _ in range(rng.randrange(1, 120))]
        count = rng.randint(1, len(items))
        got = list(items)
        partial_sort(got, lambda a, b: (a > b) - (a < b), count)
        assert got[:count] == sorted(items)[:count] and sorted(got) == sorted(items)


def test_geoadd_and_geosearchstore_from_several_processes(store_path):
    """Processes add points while others store searches: every point lands, and each stored
    result is a consistent sorted set."""
    Structures(store_path).close()
    code = """
        import sys
        from kv_backend.structures import Structures
        path, me = sys.argv[1], int(sys.argv[2])
        with Structures(path) as s:
            for i in range(40):
                s.geoadd("k", [me + i / 100, 10 + i / 100, f"p{me}-{i}"])
                n = s.geosearchstore(f"d{me}", "k", longitude=me, latitude=10, radius=5000, unit="km")
                assert s.zcard(f"d{me}") == n, n
    """
    procs = [spawn_python(code, store_path, str(p)) for p in range(3)]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    with Structures(store_path) as s:
        assert s.zcard("k") == 120
        assert s.geosearch("k", longitude=1, latitude=10, radius=5000, unit="km", count=200) != []
        assert len(s.geosearch("k", longitude=1, latitude=10, radius=5000, unit="km")) == 120
