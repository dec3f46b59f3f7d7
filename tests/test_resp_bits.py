"""Bitmap commands (and SETRANGE) of ``kvb serve`` against a real redis-server: replies, exact error
texts, RESP2 and RESP3, expiry and WATCH."""

from __future__ import annotations

import random
import time

import pytest
from test_resp_differential import Comparison, clients_by_protocol, flush, make_client, run


@pytest.fixture(scope="module")
def servers(ports):
    """{protocol: (redis-server client, kvb serve client)}, of conftest.py's ``ports``."""
    with clients_by_protocol(ports) as clients:
        yield clients


@pytest.fixture(params=[2, 3], ids=lambda p: f"RESP{p}")
def pair(servers, request):
    return servers[request.param]


def check(clients, commands: list[list[str]]) -> None:
    """Run ``commands`` on both servers (emptied first); every reply must match, error texts too."""
    real, ours = clients
    flush(clients)
    for i, cmd in enumerate(commands):
        want, got = run(real, cmd), run(ours, cmd)
        cmp = Comparison()
        assert cmp.same(cmd[0].upper(), want, got) and not cmp.notes, (
            f"step {i + 1} {cmd}: redis-server {want!r}, kvb serve {got!r}"
        )


def _port(client) -> int:
    return client.connection_pool.connection_kwargs["port"]


BASICS = [
    ["SETBIT", "k", "9", "1"],
    ["GET", "k"],
    ["SETBIT", "k", "9", "1"],
    ["SETBIT", "k", "9", "0"],
    ["GETBIT", "k", "9"],
    ["GETBIT", "k", "4294967295"],
    ["GETBIT", "missing", "3"],
    ["SETBIT", "k", "4294967296", "1"],
    ["SETBIT", "k", "-1", "1"],
    ["SETBIT", "k", "01", "1"],
    ["SETBIT", "k", "1", "2"],
    ["SETBIT", "k", "1", "x"],
    ["GETBIT", "k", "x"],
    ["SET", "s", "foobar"],
    ["BITCOUNT", "s"],
    ["BITCOUNT", "s", "1", "-2"],
    ["BITCOUNT", "s", "5", "30", "BIT"],
    ["BITCOUNT", "s", "-1", "-3"],
    ["BITCOUNT", "s", "-1", "-3", "nonsense"],  # Redis 7 answers 0 before reading the unit
    ["BITCOUNT", "s", "0"],
    ["BITCOUNT", "s", "0", "1", "WORD"],
    ["BITCOUNT", "s", "0", "1", "BIT", "x"],
    ["BITCOUNT", "s", "x", "1"],
    ["BITCOUNT", "s", "--1", "1"],
    ["INCRBY", "n", "--5"],
    ["BITCOUNT", "missing", "0"],  # Redis 7 looks the key up first
    ["BITPOS", "s", "1"],
    ["BITPOS", "s", "0", "2"],
    ["BITPOS", "s", "1", "2", "-1", "BIT"],
    ["BITPOS", "s", "0", "7", "15", "bit"],
    ["BITPOS", "s", "1", "100"],
    ["BITPOS", "s", "2"],
    ["BITPOS", "s", "1", "0", "1", "BIT", "x"],
    ["BITPOS", "missing", "0", "x"],
    ["BITPOS", "missing", "1"],
    ["SET", "ones", "\xff\xff"],
    ["BITPOS", "ones", "0"],
    ["BITPOS", "ones", "0", "0", "-1"],
    ["SET", "e", ""],
    ["BITPOS", "e", "0"],
    ["BITCOUNT", "e", "0", "-1"],
    ["SET", "a", "abc"],
    ["SET", "b", "xyzzy"],
    ["BITOP", "AND", "d", "a", "b"],
    ["GET", "d"],
    ["BITOP", "or", "d", "a", "b", "missing"],
    ["GET", "d"],
    ["BITOP", "XOR", "d", "a", "b"],
    ["BITOP", "NOT", "d", "b"],
    ["GET", "d"],
    ["BITOP", "NOT", "d", "a", "b"],
    ["BITOP", "NAND", "d", "a"],
    ["BITOP", "AND", "d", "missing"],
    ["EXISTS", "d"],
    ["RPUSH", "l", "x"],
    ["BITOP", "OR", "l", "a"],
    ["TYPE", "l"],
    ["BITOP", "OR", "d", "a", "l"],
    ["SETBIT", "l", "1", "1"],
    ["GETBIT", "l", "1"],
    ["BITCOUNT", "l", "0"],
    ["BITPOS", "l", "1", "x"],
    ["BITPOS", "l", "5"],
    ["BITFIELD", "l", "GET", "u8", "0"],
    ["BITFIELD", "l", "GET", "u8", "x"],
    ["BITFIELD_RO", "l", "GET", "u8", "0"],
    ["SETRANGE", "l", "0", ""],
    ["SETRANGE", "l", "-1", "x"],
    ["SETRANGE", "r", "3", ""],
    ["EXISTS", "r"],
    ["SETRANGE", "r", "3", "abc"],
    ["SETRANGE", "r", "1", "Z"],
    ["GET", "r"],
    ["SETRANGE", "r", "0", ""],
    ["SETRANGE", "r", "536870912", "x"],
    ["SETRANGE", "r", "x", "x"],
]

BITFIELDS = [
    ["SET", "f", "foo"],
    ["BITFIELD", "f", "GET", "i8", "#1", "GET", "u4", "0", "GET", "i8", "1"],
    ["BITFIELD", "f", "GET", "u63", "0", "GET", "i64", "3"],
    ["BITFIELD", "f", "SET", "u8", "0", "-1", "SET", "i64", "8", "-1"],
    ["BITFIELD", "f", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "INCRBY", "u2", "102", "5"],
    ["BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "u2", "102", "5", "INCRBY", "i8", "#3", "-200"],
    ["BITFIELD", "f", "OVERFLOW", "sat", "SET", "i8", "0", "-1000", "SET", "u8", "0", "-1"],
    ["BITFIELD", "f", "OVERFLOW", "SAT", "SET", "i5", "#5", "-9223372036854775808"],
    ["BITFIELD", "f", "OVERFLOW", "WRAP", "INCRBY", "i64", "0", "9223372036854775807"],
    ["GET", "f"],
    ["BITFIELD", "grown", "OVERFLOW", "FAIL", "SET", "u8", "100", "999"],
    ["GET", "grown"],
    ["BITFIELD", "none"],
    ["BITFIELD", "none", "OVERFLOW", "SAT"],
    ["EXISTS", "none"],
    ["BITFIELD", "f", "GET", "u64", "0"],
    ["BITFIELD", "f", "GET", "i65", "0"],
    ["BITFIELD", "f", "GET", "I8", "0"],
    ["BITFIELD", "f", "GET", "i08", "0"],
    ["BITFIELD", "f", "GET", "u", "0"],
    ["BITFIELD", "f", "GET", "i8", "#536870912"],
    ["BITFIELD", "f", "GET", "i8", "#536870911"],
    ["BITFIELD", "f", "GET", "i8", "-0"],
    ["BITFIELD", "f", "GET", "i8", "#"],
    ["BITFIELD", "f", "GET", "i8", "#-1"],
    ["BITFIELD", "f", "OVERFLOW", "MAYBE", "GET", "i8", "0"],
    ["BITFIELD", "f", "GET", "i8", "0", "OVERFLOW"],
    ["BITFIELD", "f", "GET", "i8"],
    ["BITFIELD", "f", "SET", "i8", "0", "x"],
    ["BITFIELD_RO", "f", "GET", "u8", "0", "GET", "i4", "#3"],
    ["BITFIELD_RO", "f", "SET", "u8", "0", "1"],
    ["BITFIELD_RO", "f", "SET", "u8", "0", "x"],
]


def test_bitmap_commands_match_redis(pair):
    check(pair, BASICS)


def test_bitfield_matches_redis(pair):
    check(pair, BITFIELDS)


def test_random_ranges_and_fields_match_redis(pair):
    """Random strings under random BITCOUNT/BITPOS ranges and BITFIELD operations."""
    rnd = random.Random(7)
    numbers = ["0", "1", "2", "7", "8", "9", "15", "16", "-1", "-2", "-8", "-9", "-17", "100", "-100"]
    commands: list[list[str]] = []
    for _ in range(150):
        value = bytes(rnd.choice([0, 255, rnd.randrange(256)]) for _ in range(rnd.randint(0, 6)))
        commands.append(["SET", "k", value.decode("latin-1")])
        kind = rnd.randrange(3)
        if kind == 0:
            cmd = ["BITCOUNT", "k", rnd.choice(numbers), rnd.choice(numbers)]
            cmd += rnd.choice([[], ["BIT"], ["BYTE"]])
        elif kind == 1:
            cmd = ["BITPOS", "k", rnd.choice("01")] + [rnd.choice(numbers) for _ in range(rnd.randint(0, 2))]
            if len(cmd) == 5:
                cmd += rnd.choice([[], ["BIT"], ["BYTE"]])
        else:
            cmd = ["BITFIELD", "k"]
            for _ in range(rnd.randint(1, 3)):
                cmd += ["OVERFLOW", rnd.choice(["WRAP", "SAT", "FAIL"])] if rnd.random() < 0.3 else []
                op = rnd.choice(["GET", "SET", "INCRBY"])
                width = rnd.choice([1, 3, 5, 8, 9, 16, 31, 33, 63, 64])
                cmd += [op, rnd.choice("iu") + str(min(width, 63) if rnd.random() < 0.5 else width)]
                cmd.append(rnd.choice([str(rnd.randint(0, 60)), f"#{rnd.randint(0, 4)}"]))
                if op != "GET":
                    cmd.append(rnd.choice(["1", "-1", "100", "-100", "255", "9223372036854775807", "-300"]))
        commands += [cmd, ["GET", "k"]]
    # redis-py sends str arguments as UTF-8: send the raw bytes instead
    check(pair, [[a.encode("latin-1") for a in c] for c in commands])


def test_ttl_kept_by_in_place_changes_and_dropped_by_bitop(pair):
    check(
        pair,
        [
            ["SET", "k", "abc", "EX", "1000"],
            ["SETBIT", "k", "100", "1"],
            ["TTL", "k"],
            ["BITFIELD", "k", "INCRBY", "u8", "0", "1"],
            ["SETRANGE", "k", "1", "zz"],
            ["TTL", "k"],
            ["BITOP", "NOT", "k", "k"],
            ["TTL", "k"],
            ["SET", "gone", "abc", "PX", "1"],
        ],
    )
    time.sleep(0.01)
    real, ours = pair
    for cmd in [["GETBIT", "gone", "1"], ["BITCOUNT", "gone"], ["SETBIT", "gone", "3", "1"], ["GET", "gone"]]:
        assert run(real, cmd) == run(ours, cmd), cmd


# (command that changes the key or not, whether Redis signals it to WATCH)
WATCH_CASES = [
    (["SETBIT", "w", "1", "1"], True),
    (["SETBIT", "w", "0", "1"], False),  # already set
    (["SETBIT", "w", "1", "0"], False),  # already clear
    (["SETBIT", "w", "40", "0"], True),  # grows the string
    (["BITFIELD", "w", "GET", "u8", "0"], False),
    (["BITFIELD", "w", "SET", "u8", "0", "128"], False),  # the value it had
    (["BITFIELD", "w", "SET", "u8", "0", "129"], True),
    (["BITFIELD", "w", "SET", "u8", "8", "0"], True),  # grows the string
    (["BITFIELD", "w", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "1000"], False),
    (["BITFIELD_RO", "w", "GET", "u8", "0"], False),
    (["SETRANGE", "w", "0", ""], False),
    (["SETRANGE", "w", "0", b"\x80"], True),  # the same byte: still a write for Redis
    (["BITOP", "OR", "w", "src"], True),  # the destination
    (["BITOP", "OR", "src", "w"], False),  # only read
    (["BITOP", "AND", "w", "missing"], True),  # deletes it
    (["BITOP", "AND", "never", "missing"], False),
]


@pytest.mark.parametrize(
    ("cmd", "changes"), WATCH_CASES, ids=lambda x: " ".join(map(str, x)) if type(x) is list else ""
)
def test_watch_sees_exactly_the_changes_redis_signals(servers, cmd, changes):
    watched = "never" if cmd[2] == "never" else "w"
    for real_or_ours in servers[2]:
        other = make_client(_port(real_or_ours), 2)
        try:
            assert real_or_ours.execute_command("FLUSHALL") == b"OK"
            other.execute_command("SET", "w", b"\x80")
            other.execute_command("SET", "src", "abc")
            real_or_ours.execute_command("WATCH", watched)
            other.execute_command(*cmd)
            real_or_ours.execute_command("MULTI")
            real_or_ours.execute_command("PING")
            result = real_or_ours.execute_command("EXEC")
            assert (type(result) is not list) == changes, (cmd, _port(real_or_ours), result)
        finally:
            other.close()


# ------------------------------------------------------------------ HyperLogLog


def test_hyperloglog_counts_and_values_match_redis(pair):
    """Counts, and the stored bytes (sparse, the switch to dense, dense), for 0 to 100,000 elements."""
    real, ours = pair
    flush(pair)

    def both(*cmd):
        want, got = run(real, list(cmd)), run(ours, list(cmd))
        assert want == got, (cmd[:3], want, got)
        return want

    for n in (0, 1, 100, 10_000, 100_000):
        key = f"h{n}"
        both("PFADD", key)
        elements = [f"e{i}" for i in range(n)]
        i = 0
        while i < n:
            step = 1 if i < 100 else 50 if i < 3000 else 20_000  # sparse one by one, then in batches
            both("PFADD", key, *elements[i : i + step])
            i += step
            if (i < 3000 and i % 10 == 0) or i >= 3000:
                both("GET", key)
        both("GET", key)
        count = both("PFCOUNT", key)
        assert abs(count - n) <= n * 0.02 and both("PFCOUNT", key) == count  # the second one cached
        both("GET", key)
    assert both("PFCOUNT", "h100", "h10000", "missing") == both("PFCOUNT", "h10000")  # e0..e99 are in both
    for cmd in (
        ["PFMERGE", "m", "h100", "h1"],
        ["PFCOUNT", "m"],
        ["PFMERGE", "m", "h10000"],  # sparse destination, dense source
        ["PFCOUNT", "m"],
        ["PFMERGE", "m2", "h100000", "h10000", "missing"],
        ["PFCOUNT", "m2"],
        ["PFADD", "m2", "one more"],
    ):
        both(*cmd)
        both("GET", cmd[1])


def test_hyperloglog_values_move_between_redis_and_kvb(pair):
    real, ours = pair
    flush(pair)
    for small, big, how in ((100, 4000, "redis to kvb"), (2000, 9000, "kvb to redis")):
        source, target = (real, ours) if how == "redis to kvb" else (ours, real)
        run(source, ["PFADD", "x", *[f"v{i}" for i in range(small)]])
        value = run(source, ["GET", "x"])
        run(target, ["SET", "x", value])
        assert run(target, ["PFCOUNT", "x"]) == run(source, ["PFCOUNT", "x"]), how
        more = ["PFADD", "x", *[f"w{i}" for i in range(big)]]
        assert run(target, more) == run(source, more) == 1
        assert run(target, ["GET", "x"]) == run(source, ["GET", "x"]), how
        assert run(target, ["PFCOUNT", "x"]) == run(source, ["PFCOUNT", "x"]), how


HLL_ERRORS = [
    ["SET", "s", "foo"],
    ["PFCOUNT", "s"],
    ["PFADD", "s", "a"],
    ["PFMERGE", "d", "s"],
    ["PFCOUNT", "d", "s"],
    ["RPUSH", "l", "x"],
    ["PFCOUNT", "l"],
    ["PFADD", "l", "a"],
    ["PFMERGE", "d", "l"],
    ["PFCOUNT", "missing", "missing2"],
    ["PFMERGE", "d"],
    ["GET", "d"],
    ["PFADD", "h"],
    ["PFADD", "h"],
    ["PFADD", "h", "a", "b", "c"],
    ["PFADD", "h", "a"],
    # damaged values: runs that do not cover the 16384 registers, unknown encoding, wrong dense size
    ["SET", "bad", b"HYLL\x01\x00\x00\x00" + bytes(7) + b"\x80\x7f\xfe"],
    ["PFCOUNT", "bad"],
    ["PFADD", "bad", "x"],  # its register is covered: Redis sets it
    ["PFCOUNT", "bad", "h"],
    ["PFMERGE", "bad2", "bad"],
    ["SET", "bad3", b"HYLL\x02\x00\x00\x00" + bytes(7) + b"\x80\x7f\xff"],
    ["PFCOUNT", "bad3"],
    ["SET", "bad4", b"HYLL\x00\x00\x00\x00" + bytes(7) + b"\x80\x7f\xff"],
    ["PFADD", "bad4", "x"],
    # a valid cached count is believed, as Redis believes it
    ["SET", "c", b"HYLL\x01\x00\x00\x00\x07" + bytes(6) + b"\x00\x7f\xff"],
    ["PFCOUNT", "c"],
    ["PFCOUNT", "c", "c"],
    ["PFADD", "t", "a", "b"],
    ["EXPIRE", "t", "1000"],
    ["PFADD", "t", "q"],
    ["PFCOUNT", "t"],
    ["PFMERGE", "t", "h"],
    ["TTL", "t"],
    ["CONFIG", "GET", "hll-sparse-max-bytes"],
]


def test_hyperloglog_errors_and_edge_cases_match_redis(pair):
    check(pair, HLL_ERRORS)


HLL_WATCH_CASES = [
    (["PFADD", "w", "a"], False),  # no register changed
    (["PFADD", "w", "c"], True),
    (["PFCOUNT", "w"], True),  # refreshes the count cached in the value
    (["PFCOUNT", "w", "x"], False),
    (["PFMERGE", "w"], True),
    (["PFMERGE", "x", "w"], False),
]


@pytest.mark.parametrize(
    ("cmd", "changes"), HLL_WATCH_CASES, ids=lambda x: " ".join(x) if type(x) is list else ""
)
def test_hyperloglog_watch_sees_the_changes_redis_signals(servers, cmd, changes):
    for real_or_ours in servers[2]:
        other = make_client(_port(real_or_ours), 2)
        try:
            assert real_or_ours.execute_command("FLUSHALL") == b"OK"
            other.execute_command("PFADD", "w", "a", "b")
            real_or_ours.execute_command("WATCH", "w")
            other.execute_command(*cmd)
            real_or_ours.execute_command("MULTI")
            real_or_ours.execute_command("PING")
            result = real_or_ours.execute_command("EXEC")
            assert (type(result) is not list) == changes, (cmd, _port(real_or_ours), result)
            # a count whose cache is valid writes nothing
            other.execute_command("PFCOUNT", "w")
            real_or_ours.execute_command("WATCH", "w")
            other.execute_command("PFCOUNT", "w")
            real_or_ours.execute_command("MULTI")
            assert type(real_or_ours.execute_command("EXEC")) is list
        finally:
            other.close()
