"""Geo commands of ``kvb serve`` against a real redis-server, reply bytes compared as they come off
the wire (RESP2 and RESP3): scores (52-bit geohashes), GEOPOS's 17 decimals, GEODIST's four,
GEOHASH strings, the members every search finds and their order (COUNT, ANY, ties), the store
forms, error texts and the order arguments are checked in; then WATCH, expiry, MULTI and a
blocked client woken by a stored result."""

from __future__ import annotations

import random
import shlex
import threading
import time

import pytest
import redis
from resp_helpers import wait_blocked

LAT = "85.05112878"


@pytest.fixture
def clients(ports):
    """redis-py clients of (redis-server, kvb serve), both databases empty."""
    pair = [redis.Redis(port=p) for p in ports]
    for c in pair:
        c.flushall()
    yield pair
    for c in pair:
        c.close()


def same(raw, *cmd: str) -> bytes:
    """Run one command on both servers; the replies must be the same bytes."""
    want, got = raw[0].call(*cmd), raw[1].call(*cmd)
    assert got == want, f"{' '.join(cmd)}\n  redis-server: {want!r}\n  kvb serve:    {got!r}"
    return got


def script(raw, lines: str) -> None:
    for line in lines.strip().splitlines():
        if line.strip() and not line.strip().startswith("#"):
            same(raw, *shlex.split(line))


def _points(rng: random.Random, mode: str, n: int) -> list[str]:
    args: list[str] = []
    for i in range(n):
        if mode == "world":
            lon, lat = rng.uniform(-180, 180), rng.uniform(-85.05112878, 85.05112878)
        elif mode == "city":
            lon, lat = 2.35 + rng.gauss(0, 0.2), 48.85 + rng.gauss(0, 0.2)
        elif mode == "pole":
            lon, lat = rng.uniform(-180, 180), rng.choice([1, -1]) * rng.uniform(64, 85.05)
        elif mode == "dateline":
            lon, lat = rng.choice([-1, 1]) * rng.uniform(178, 180), rng.uniform(-30, 30)
        else:  # many members at a few places: ties in distance
            lon, lat = rng.choice([(1.5, 2.5), (1.5001, 2.5), (-0.5, 3.25), (180, 0)])
        args += [f"{lon:.6f}", f"{lat:.6f}", f"m{i}"]
    return args


def test_scores_positions_hashes_and_distances_are_redis_bytes(raw):
    """ZRANGE WITHSCORES, GEOPOS, GEOHASH and GEODIST of random points (and the limits) give
    redis-server's bytes exactly."""
    rng = random.Random(7)
    args = _points(rng, "world", 300)
    args += ["180", "0", "east", "-180", "0", "west", "0", LAT, "top", "0", "-" + LAT, "bottom"]
    same(raw, "GEOADD", "k", *args)
    same(raw, "ZRANGE", "k", "0", "-1", "WITHSCORES")
    members = args[2::3]
    same(raw, "GEOPOS", "k", *members, "nosuch")
    same(raw, "GEOHASH", "k", *members, "nosuch")
    for _ in range(150):
        a, b = rng.choice(members), rng.choice(members)
        same(raw, "GEODIST", "k", a, b, *rng.choice([[], ["m"], ["KM"], ["ft"], ["mi"]]))
    same(raw, "GEOADD", "k", "CH", *_points(rng, "city", 50))  # moves m0..m49
    same(raw, "ZRANGE", "k", "0", "-1", "WITHSCORES")


@pytest.mark.parametrize("mode", ["world", "city", "pole", "dateline", "ties"])
def test_searches_find_redis_members_in_redis_order(raw, mode):
    """GEOSEARCH, GEORADIUS and GEORADIUSBYMEMBER over seeded random points: the same members in
    the same order, with the same distances, hashes and coordinates; COUNT (partial sort of ties
    included), ANY, ASC/DESC, radii from 0 to infinite, boxes, centres on the limits."""
    rng = random.Random(mode)
    n = 250
    same(raw, "GEOADD", "k", *_points(rng, mode, n))
    centres = {
        "world": lambda: (rng.uniform(-180, 180), rng.uniform(-85, 85)),
        "city": lambda: (2.35 + rng.gauss(0, 0.2), 48.85 + rng.gauss(0, 0.2)),
        "pole": lambda: (rng.uniform(-180, 180), rng.choice([1, -1]) * rng.uniform(64, 85)),
        "dateline": lambda: (rng.choice([-180, 180, 179.9, -179.9]), rng.uniform(-30, 30)),
        "ties": lambda: (1.5 + rng.uniform(-1, 1), 2.5 + rng.uniform(-1, 1)),
    }[mode]
    for _ in range(70):
        unit = rng.choice(["m", "km", "mi", "ft"])
        scale = {"m": 1, "km": 1000, "mi": 1609.34, "ft": 0.3048}[unit]
        metres = rng.choice([0, 100, 1000, 10000, 50000, 200000, 1000000, 5000000, 20000000]) * rng.random()
        radius = f"{metres / scale:.3f}"
        if rng.random() < 0.1:
            radius = rng.choice(["0", "inf", "1e300"])
        height = f"{metres / scale * rng.uniform(0.2, 3):.3f}"
        x, y = centres()
        lon, lat = (f"{x:.5f}", f"{y:.5f}") if rng.random() < 0.9 else (rng.choice(["180", "-180"]), LAT)
        opts: list[str] = []
        for word, p in (("WITHDIST", 0.5), ("WITHCOORD", 0.3), ("WITHHASH", 0.3)):
            if rng.random() < p:
                opts.append(word)
        if rng.random() < 0.4:
            opts.append(rng.choice(["ASC", "DESC"]))
        if rng.random() < 0.5:
            opts += ["COUNT", str(rng.randint(1, 30))] + (["ANY"] if rng.random() < 0.3 else [])
        member = f"m{rng.randrange(n)}"
        kind = rng.random()
        if kind < 0.25:
            same(raw, "GEORADIUS", "k", lon, lat, radius, unit, *opts)
        elif kind < 0.4:
            same(
                raw,
                rng.choice(["GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER_RO"]),
                "k",
                member,
                radius,
                unit,
                *opts,
            )
        else:
            origin = ["FROMMEMBER", member] if rng.random() < 0.4 else ["FROMLONLAT", lon, lat]
            shape = ["BYRADIUS", radius, unit] if rng.random() < 0.5 else ["BYBOX", radius, height, unit]
            same(raw, "GEOSEARCH", "k", *origin, *shape, *opts)


def test_store_forms_match_redis(raw, clients):
    """GEOSEARCHSTORE and GEORADIUS[BYMEMBER] STORE/STOREDIST store what redis-server stores (the
    same scores; STOREDIST distances compared as numbers, as Redis 7.0 writes 17 digits)."""
    rng = random.Random(3)
    same(raw, "GEOADD", "k", *_points(rng, "city", 200))
    for _ in range(40):
        radius = f"{rng.uniform(0, 30):.3f}"
        lon, lat = f"{2.35 + rng.gauss(0, 0.2):.5f}", f"{48.85 + rng.gauss(0, 0.2):.5f}"
        count = ["COUNT", str(rng.randint(1, 20))] if rng.random() < 0.5 else []
        order = [rng.choice(["ASC", "DESC"])] if rng.random() < 0.3 else []
        dist = rng.random() < 0.5
        kind = rng.randrange(3)
        if kind == 0:
            cmd = [
                "GEOSEARCHSTORE",
                "d",
                "k",
                "FROMLONLAT",
                lon,
                lat,
                "BYRADIUS",
                radius,
                "km",
                *count,
                *order,
            ]
            cmd += ["STOREDIST"] if dist else []
        elif kind == 1:
            cmd = [
                "GEORADIUS",
                "k",
                lon,
                lat,
                radius,
                "km",
                *count,
                "STOREDIST" if dist else "STORE",
                "d",
                *order,
            ]
        else:
            cmd = ["GEORADIUSBYMEMBER", "k", f"m{rng.randrange(200)}", radius, "km", "STORE", "x", *count]
            cmd += ["STOREDIST" if dist else "STORE", "d"]  # the last STORE/STOREDIST wins
        same(raw, *cmd)
        want, got = (c.zrange("d", 0, -1, withscores=True) for c in clients)
        assert got == want, cmd
        assert clients[1].exists("x") == 0 or kind == 2


def test_non_geo_scores_read_as_redis_reads_them(raw):
    """Any sorted set can be read as a geo set: negative, fractional, huge and infinite scores
    decode (GEOPOS, GEOHASH, WITHHASH) as redis-server decodes them on x86-64."""
    script(
        raw,
        """
        ZADD z -1 a 1.5 b 1e300 c inf d -inf e 9223372036854775808 f 18446744073709551616 g -1e20 h 3.7 i
        GEOPOS z a b c d e f g h i
        GEOHASH z a b c d e f g h i
        GEORADIUS z 0 0 100000 km WITHHASH WITHCOORD
        GEODIST z a b km
        """,
    )


def test_errors_and_argument_order_match_redis(raw):
    """Every refusal has redis-server's text, and arguments are checked in Redis's order (the
    source's type, the fixed arguments, the options left to right, then their combinations)."""
    script(
        raw,
        """
        GEOADD k 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
        SET s x
        GEOADD k 200 10 x
        GEOADD k 1 inf m
        GEOADD k 1 1e400 m
        GEOADD k 1 nan m
        GEOADD k 1 x m
        GEOADD k 1 2
        GEOADD k NX XX 1 2 m
        GEOADD k CH CH CH
        GEOADD k CH CH
        GEOADD k GT 1 2 m
        GEOADD s 1 2 m
        GEOADD s 1 200 m
        GEOADD k XX CH 13.361389 38.115556 Palermo 1 1 new
        GEOADD k XX CH 13.361389 39 Palermo 1 1 new
        GEOADD k NX CH 13.361389 38.115556 Palermo 1 1 new
        GEOPOS s a
        GEOPOS k
        GEOPOS nokey a b
        GEOHASH s a
        GEOHASH k
        GEOHASH nokey a
        GEODIST s a b
        GEODIST s a b yd
        GEODIST nokey a b yd
        GEODIST nokey a b
        GEODIST k Palermo nope
        GEODIST k Palermo Palermo
        GEODIST k Palermo Catania mi x
        GEODIST k Palermo Catania KM
        GEOSEARCH s frommember a byradius 1 km
        GEOSEARCH s foo
        GEOSEARCH k frommember Palermo byradius 10 km foo
        GEOSEARCH k frommember nope byradius 10 km
        GEOSEARCH k frommember nope byradius x km
        GEOSEARCH k byradius x km frommember nope
        GEOSEARCH k fromlonlat 1 2 frommember Palermo byradius 1 m
        GEOSEARCH k frommember Palermo fromlonlat 1 2 byradius 1 m
        GEOSEARCH k frommember Palermo byradius 1 m bybox 1 1 m
        GEOSEARCH k frommember Palermo frommember Catania byradius 1 m
        GEOSEARCH k byradius 1 m asc desc
        GEOSEARCH k fromlonlat 1 2 asc desc
        GEOSEARCH k fromlonlat 1 2 byradius -1 m
        GEOSEARCH k fromlonlat 1 2 bybox -1 1 m
        GEOSEARCH k fromlonlat 1 2 bybox 1 x m
        GEOSEARCH k fromlonlat 1 2 bybox x 1 m
        GEOSEARCH k fromlonlat 1 2 bybox 1 1 yd
        GEOSEARCH k fromlonlat 1 2 byradius 1 m count 0
        GEOSEARCH k fromlonlat 1 2 byradius 1 m count -1
        GEOSEARCH k fromlonlat 1 2 byradius 1 m count x
        GEOSEARCH k fromlonlat 1 2 byradius 1 m any
        GEOSEARCH k fromlonlat 1 2 byradius 1 m count
        GEOSEARCH k fromlonlat 1 2 byradius 1 m store d
        GEOSEARCH k fromlonlat 1 2 byradius 1 m storedist
        GEOSEARCH k fromlonlat 200 2 byradius 1 m
        GEOSEARCH k fromlonlat 1 x byradius 1 m
        GEOSEARCH nokey fromlonlat 1 2 byradius 1 m
        GEOSEARCH nokey frommember x byradius 1 m
        GEOSEARCH nokey frommember x byradius 1 m any
        GEOSEARCH nokey frommember x byradius -1 m
        GEOSEARCH nokey frommember x byradius 1 m x y
        GEOSEARCH k fromlonlat 15 37 byradius 200 km count 1 any
        GEOSEARCH k fromlonlat 15 37 byradius 200 km count 1 any desc
        GEOSEARCH k fromlonlat 15 37 byradius 200 km count 5 withdist withhash withcoord
        GEOSEARCH k frommember Palermo byradius 0 km
        GEOSEARCH k frommember Palermo bybox 0 0 km withdist
        GeoSearch k FromLonLat 15 37 ByBox 400 400 KM Desc WithDist
        geosearch k byradius 1 m
        GeoSearchStore d k bybox 1 1 m
        georadiusbymember k Palermo 1 m withdist storedist d
        GEOSEARCHSTORE d k byradius 1 m
        GEOSEARCHSTORE d k fromlonlat 1 2
        GEOSEARCHSTORE d k fromlonlat 1 2 byradius 1 m withhash
        GEOSEARCHSTORE d k fromlonlat 1 2 byradius 1 m store x
        GEOSEARCHSTORE d k fromlonlat 1 2 byradius 1 m any
        GEOSEARCHSTORE d s fromlonlat 1 2 byradius 1 m
        GEORADIUS k 15 37 200 km store
        GEORADIUS k 15 37 200 km store d withdist
        GEORADIUS_RO k 15 37 200 km store d
        GEORADIUS_RO k 15 37 200 km storedist d
        GEORADIUS k 15 37 200 km frommember x
        GEORADIUS k x 37 200 km
        GEORADIUS k 15 37 x km
        GEORADIUS k 15 37 -1 km
        GEORADIUS k 15 37 1 yd
        GEORADIUS nokey 15 37 1 yd
        GEORADIUS nokey x 37 1 km
        GEORADIUS s 15 37 1 km
        GEORADIUS k 15 37 200 km count 1 count 2
        GEORADIUS k 15 37 200 km asc desc withdist
        GEORADIUSBYMEMBER k nope 200 km
        GEORADIUSBYMEMBER k Palermo x km
        GEORADIUSBYMEMBER k Palermo 200 km withdist store d
        GEORADIUSBYMEMBER nokey nope x yd
        GEORADIUSBYMEMBER nokey nope x yd foo
        GEORADIUSBYMEMBER s nope 1 km
        GEORADIUSBYMEMBER_RO k Palermo 200 km store d
        # a missing source deletes the destination; a store replaces its type and TTL
        SET d x
        GEORADIUSBYMEMBER nokey nope x yd store d
        EXISTS d
        SET d x
        GEOSEARCHSTORE d nokey fromlonlat 1 2 byradius 1 m
        EXISTS d
        SET d x EX 100
        GEOSEARCHSTORE d k fromlonlat 15 37 byradius 200 km
        TTL d
        TYPE d
        ZRANGE d 0 -1 WITHSCORES
        GEORADIUS k 15 37 200 km count 1 store d
        ZRANGE d 0 -1 WITHSCORES
        GEOSEARCHSTORE d k fromlonlat 15 37 byradius 1 m
        EXISTS d
        COMMAND GETKEYS GEORADIUS k 1 2 3 m STORE d
        COMMAND GETKEYS GEORADIUSBYMEMBER k m 3 m COUNT 2 STOREDIST d
        COMMAND GETKEYS GEOSEARCHSTORE d k FROMMEMBER m BYRADIUS 1 m
        """,
    )


def test_expiry_and_transactions(raw):
    """A GEOADD keeps the key's TTL; an expired key is gone for the geo commands; MULTI/EXEC
    queues and runs them as Redis does."""
    script(
        raw,
        """
        GEOADD k 13.361389 38.115556 Palermo
        PEXPIRE k 100000
        GEOADD k 15.087269 37.502669 Catania
        TTL k
        MULTI
        GEOADD t 1 2 a 3 4 b
        GEOPOS t a
        GEORADIUS t 1 2 1000 km STORE d
        GEOSEARCH t FROMMEMBER a BYRADIUS 1000 km WITHDIST
        GEOADD t 1 200 c
        GEODIST t a b km
        EXEC
        MULTI
        GEOADD t 1 2
        EXEC
        """,
    )
    for conn in raw:
        conn.call("PEXPIRE", "k", "1")
    time.sleep(0.01)
    script(
        raw,
        """
        GEOPOS k Palermo
        GEOSEARCH k FROMLONLAT 15 37 BYRADIUS 500 km
        GEORADIUS k 15 37 500 km STORE d
        EXISTS d
        """,
    )


def _watch_case(port: int, setup: list[list[str]], watched: str, other: list[str]) -> object:
    """WATCH ``watched``, let another client run ``other``, then MULTI/PING/EXEC: None if aborted."""
    with redis.Redis(port=port) as a, redis.Redis(port=port) as b:
        a.flushall()
        for cmd in setup:
            a.execute_command(*cmd)
        with a.pipeline() as p:
            p.watch(watched)
            b.execute_command(*other)
            p.multi()
            p.ping()
            try:
                return p.execute()
            except redis.WatchError:
                return None


@pytest.mark.parametrize(
    "watched, other",
    [
        ("d", ["GEORADIUS", "k", "1", "2", "1000", "km", "STORE", "d"]),
        ("d", ["GEORADIUS", "k", "1", "2", "1000", "km", "COUNT", "1", "STOREDIST", "d"]),
        ("d", ["GEORADIUSBYMEMBER", "k", "a", "1000", "km", "STORE", "d"]),
        ("d", ["GEOSEARCHSTORE", "d", "k", "FROMMEMBER", "a", "BYRADIUS", "1000", "km"]),
        ("d", ["GEOSEARCHSTORE", "d", "k", "FROMMEMBER", "a", "BYRADIUS", "0", "km", "STOREDIST"]),
        ("k", ["GEORADIUS", "k", "1", "2", "1000", "km", "STORE", "d"]),  # the source is only read
        ("k", ["GEORADIUS", "k", "1", "2", "1000", "km"]),
        ("k", ["GEOADD", "k", "5", "5", "c"]),
        ("k", ["GEOADD", "k", "NX", "1", "2", "a"]),  # changed nothing
        ("k", ["GEOADD", "k", "XX", "7", "7", "a"]),
        ("x", ["GEORADIUS", "nokey", "1", "2", "1000", "km", "STORE", "x"]),  # nothing to delete
    ],
)
def test_watch_sees_every_key_a_geo_command_writes(ports, watched, other):
    setup = [["GEOADD", "k", "1", "2", "a", "3", "4", "b"], ["SET", "d", "x"]]
    want, got = (_watch_case(port, setup, watched, other) for port in ports)
    assert got == want, (watched, other)


def test_a_stored_result_wakes_a_client_blocked_on_the_destination(ports):
    with redis.Redis(port=ports[1]) as a, redis.Redis(port=ports[1]) as b:
        a.flushall()
        a.geoadd("k", [13.361389, 38.115556, "Palermo"])
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(b.bzpopmin("d", 10)))
        waiter.start()
        wait_blocked(a)
        assert a.execute_command("GEORADIUS", "k", "13", "38", "100", "km", "STORE", "d") == 1
        waiter.join(10)
        assert got == [(b"d", b"Palermo", 3479099956230698.0)]
