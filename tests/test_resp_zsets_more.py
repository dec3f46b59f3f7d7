"""More sorted-set commands of ``kvb serve`` against a real redis-server: pops (ZPOPMIN, ZPOPMAX,
ZMPOP and their blocking forms), lexicographical ranges, ZRANDMEMBER, the set algebra commands
(ZUNION, ZINTER, ZDIFF and their STORE forms, ZINTERCARD) and ZRANGESTORE.

Every reply is compared with redis-server's over RESP2 and RESP3 (types and values), and error
replies by their whole text.
"""

from __future__ import annotations

import shlex
import threading
import time

import pytest
import redis
import test_resp_differential
from redis.exceptions import ResponseError
from test_resp_differential import Comparison, Nil, make_client, run, shown

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair


def check(pair, lines: str) -> None:
    """Run each command (one per line, redis-cli syntax) on both servers and compare the replies;
    errors must have the same text. Starts from empty databases."""
    real, ours = pair
    for c in pair:
        c.execute_command("FLUSHALL")
    done = []
    for line in lines.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cmd = shlex.split(line)
        done.append(line)
        want, got = run(real, cmd), run(ours, cmd)
        name = cmd[0].upper()
        # scores are compared as numbers (Redis 7.0 writes 17 digits, kvb the shortest form)
        same = Comparison().same("ZRANGE" if name.startswith(("Z", "BZ")) else name, want, got)
        if same and isinstance(want, ResponseError):
            same = str(want) == str(got)
        assert same, "\n".join(done) + f"\n  redis-server: {shown(want)}\n  kvb serve:    {shown(got)}"


def ports(pair) -> list[int]:
    return [c.connection_pool.connection_kwargs["port"] for c in pair]


@pytest.fixture
def server_ports(servers) -> list[int]:
    """The ports of redis-server and kvb serve, for tests that run the same code against each."""
    return ports(servers[2])


def later(delay: float, fn, *args) -> threading.Thread:
    """Run ``fn(*args)`` in a thread after ``delay`` seconds."""

    def go() -> None:
        time.sleep(delay)
        fn(*args)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


# ------------------------------------------------------------------------ pops


def test_zpopmin_zpopmax_match_redis(pair):
    check(
        pair,
        """
        ZADD z 1 a 2 b 3 c 3 d
        ZPOPMIN z
        ZPOPMIN z 2
        ZPOPMAX z 0
        ZPOPMAX z -1
        ZPOPMIN z x
        ZPOPMIN z -0
        ZPOPMIN z 1 2
        ZPOPMIN nokey
        ZPOPMIN nokey 2
        ZPOPMIN nokey -1
        ZPOPMIN nokey 0
        SET s v
        ZPOPMIN s
        ZPOPMIN s -1
        ZPOPMIN s 0
        ZPOPMAX z 100
        EXISTS z
        ZADD z 1 a 2 b 3 c -inf m inf n
        ZPOPMIN z 1
        ZPOPMAX z
        ZPOPMAX z 9223372036854775807
        EXISTS z
        ZADD z 1 a 2 b
        MULTI
        ZPOPMIN z
        ZPOPMAX z 1
        ZPOPMAX z 1
        EXEC
        ZPOPMIN
        """,
    )


def test_zmpop_matches_redis(pair):
    check(
        pair,
        """
        ZADD z 1 a 2 b 3 c
        ZADD y 5 e
        SET s v
        ZMPOP 1 z min
        ZMPOP 2 n1 z MAX COUNT 5
        EXISTS z
        ZMPOP 1 nokey min
        ZMPOP 0 z min
        ZMPOP -1 z min
        ZMPOP x z min
        ZMPOP 99999999999999999999 z min
        ZMPOP 9223372036854775807 z min
        ZMPOP 3 z min
        ZMPOP 2 z min
        ZMPOP 1 z middle
        ZMPOP 1 z min count 0
        ZMPOP 1 z min count -1
        ZMPOP 1 z min count x
        ZMPOP 1 z min count 9999999999999999999999
        ZMPOP 1 z min count 1 count 2
        ZMPOP 1 z min COUNT 1 x
        ZMPOP 1 z min limit 1
        ZMPOP 1 z min count
        ZMPOP 1 s min
        ZMPOP 2 n1 s min
        ZMPOP 2 s y min
        ZMPOP 2 y s min
        ZMPOP 1 nokey min count 0
        ZMPOP 1 s min count 0
        ZMPOP
        ZMPOP 1
        ZMPOP 1 z
        ZADD z 1 a 2 b
        ZMPOP 1 z MAX COUNT 9223372036854775807
        ZADD z 1 a 2.5 b
        ZMPOP 2 z z max
        """,
    )


def test_blocking_zpops_answer_at_once_and_check_arguments_as_redis(pair):
    check(
        pair,
        """
        ZADD z 1 a 2 b 3 c
        ZADD y 5 e
        SET s v
        BZPOPMIN n1 z 0
        BZPOPMAX n1 y z 0
        EXISTS y
        BZPOPMIN n1 0.01
        BZPOPMAX n1 n2 0.01
        BZPOPMIN n1 x
        BZPOPMIN n1 -1
        BZPOPMIN s z 0
        BZPOPMIN z s 0
        BZPOPMIN s x
        BZPOPMIN n1
        BZMPOP 0.01 1 nokey min
        BZMPOP 0.01 2 nokey z max count 3
        BZMPOP x 1 nokey min
        BZMPOP -1 1 nokey min
        BZMPOP 0 0 nokey min
        BZMPOP 0 1 nokey
        BZMPOP 0.01 1 nokey min count 0
        BZMPOP x 0 nokey min
        BZMPOP x 1 nokey middle
        BZMPOP 0.01 x nokey middle
        BZMPOP x 1 nokey min count 0
        BZMPOP x 1 nokey min count 1
        BZMPOP x 1 nokey min count 1 foo
        BZMPOP x 1 s min
        ZADD y 1 a 2 b
        BZMPOP 0 2 s y min count 1
        BZMPOP 0 2 y s max count 10
        """,
    )


def test_blocking_zpops_inside_multi_answer_at_once(pair):
    check(
        pair,
        """
        MULTI
        BZPOPMIN n1 0
        BZPOPMAX n1 n2 0
        BZMPOP 0 1 nokey min
        ZADD w 1 a 2 b 3 c
        BZPOPMAX w 0
        BZMPOP 0 2 n1 w MIN COUNT 5
        EXEC
        EXISTS w
        """,
    )


@pytest.mark.parametrize("proto", [2, 3])
def test_blocking_zpops_wait_for_a_push_by_another_client(server_ports, proto):
    """BZPOPMIN/BZPOPMAX/BZMPOP wait until another client adds members, serve waiters first come
    first served (one ZADD of two members serves two), and time out with a null reply."""
    for port in server_ports:
        r, pusher = redis.Redis(port=port, protocol=proto), redis.Redis(port=port)
        r.flushall()
        t0 = time.monotonic()
        later(0.08, pusher.zadd, "q", {"m": 5, "n": 1})
        assert list(r.bzpopmin(["x", "q"], timeout=10)) == [b"q", b"n", 1.0]
        assert time.monotonic() - t0 >= 0.05
        assert list(r.bzpopmax(["q"], 1)) == [b"q", b"m", 5.0]
        assert r.bzpopmax(["q"], 0.05) is None
        assert r.bzmpop(0.05, 1, ["q"], min=True) is None
        later(0.05, pusher.zadd, "q2", {"a": 1, "b": 2, "c": 3})
        want = [[b"c", 3.0], [b"b", 2.0]] if proto == 3 else [[b"c", b"3"], [b"b", b"2"]]
        assert r.bzmpop(10, 2, ["q1", "q2"], max=True, count=2) == [b"q2", want]
        assert pusher.zrange("q2", 0, -1) == [b"a"]
        got: list = []
        waiters = [redis.Redis(port=port) for _ in range(2)]
        threads = [
            threading.Thread(target=lambda c=c, got=got: got.append(c.bzpopmin("q5", 10))) for c in waiters
        ]
        for t in threads:
            t.start()
        time.sleep(0.1)
        pusher.zadd("q5", {"a": 1, "b": 2})
        for t in threads:
            t.join(10)
        assert sorted(got) == [(b"q5", b"a", 1.0), (b"q5", b"b", 2.0)]
        assert pusher.exists("q5") == 0
        for c in (r, pusher, *waiters):
            c.close()


def test_blocked_zpop_is_served_by_a_transaction_or_a_script(server_ports):
    """A client blocked on a key is served when MULTI/EXEC or a script adds a member to it."""
    for port in server_ports:
        r, other = redis.Redis(port=port), redis.Redis(port=port)
        r.flushall()

        def tx(other: redis.Redis = other) -> None:
            with other.pipeline() as p:
                p.zadd("d", {"x": 1}).zadd("d", {"y": 2}).execute()

        writer = later(0.1, tx)
        assert r.bzpopmax("d", 10) == (b"d", b"y", 2.0)
        writer.join(10)
        writer = later(0.1, other.eval, "return redis.call('zadd', KEYS[1], 7, 'z')", 1, "e")
        assert r.bzpopmin("e", 10) == (b"e", b"z", 7.0)
        writer.join(10)  # its EVAL reply read before the connection is closed
        r.close()
        other.close()


def test_pops_invalidate_watch_of_the_popped_key(pair, protocol):
    """WATCH z; another client pops from z (ZPOPMIN, ZMPOP, a served BZPOPMIN): EXEC fails, as in
    Redis; a pop that found nothing leaves the watcher's EXEC alone."""
    cases = [
        ("ZPOPMIN z", True),
        ("ZPOPMAX z 0", False),
        ("ZPOPMIN nokey", False),
        ("ZMPOP 2 nokey z MAX", True),
        ("ZMPOP 1 nokey MIN", False),
        ("BZPOPMIN z 1", True),
        ("BZMPOP 1 1 z MIN COUNT 2", True),
    ]
    others = [make_client(port, protocol) for port in ports(pair)]
    try:
        for line, changes in cases:
            for client, other in zip(pair, others, strict=True):
                client.execute_command("FLUSHALL")
                client.execute_command("ZADD", "z", "1", "a", "2", "b")
                client.execute_command("WATCH", "z", "nokey")
                assert not isinstance(run(other, shlex.split(line)), ResponseError)
                client.execute_command("MULTI")
                client.execute_command("ZCARD", "z")
                assert isinstance(client.execute_command("EXEC"), Nil) is changes, (port_of(client), line)
    finally:
        for c in others:
            c.close()


def port_of(client) -> int:
    return client.connection_pool.connection_kwargs["port"]


# ------------------------------------------------------------------ lex ranges


def test_lex_ranges_match_redis(pair):
    """ZRANGEBYLEX, ZREVRANGEBYLEX, ZLEXCOUNT, ZREMRANGEBYLEX and ZRANGE ... BYLEX: bounds, LIMIT,
    errors in Redis's order, and sets with several scores walked as Redis walks a small set."""
    check(
        pair,
        """
        zadd z 0 a 0 b 0 c 0 d 0 e 0 f
        zrangebylex z - +
        zrangebylex z [b (e
        zrangebylex z (b [e
        zrangebylex z [e [b
        zrangebylex z [b [b
        zrangebylex z (b [b
        zrangebylex z + -
        zrangebylex z - -
        zrangebylex z + +
        zrangebylex z [ +
        zrangebylex z ( +
        zrangebylex z - [
        zrangebylex z - (
        zrangebylex z [bb [dd
        zrangebylex z (bb (dd
        zrangebylex z - + limit 1 2
        zrangebylex z - + limit 1 -1
        zrangebylex z - + limit -1 2
        zrangebylex z - + limit 0 0
        zrangebylex z - + limit 1
        zrangebylex z - + limit x 1
        zrangebylex z b e limit x 1
        zrangebylex z - + withscores
        zrangebylex z - + withscores foo
        zrangebylex z b e withscores
        zrangebylex z b e
        zrangebylex z [b e
        zrangebylex z -- +
        zrangebylex z "" +
        zrangebylex nokey b e
        zrangebylex nokey - + limit x 1
        set s v
        zrangebylex s b e
        zrangebylex s - + limit x 1
        zrangebylex s - +
        zrangebylex s - + foo
        zrangebylex z - + foo
        zrangebylex z - + rev
        zrevrangebylex z + -
        zrevrangebylex z (e [b
        zrevrangebylex z [e (b
        zrevrangebylex z [b [e
        zrevrangebylex z [ee [bb
        zrevrangebylex z + - limit 1 2
        zrevrangebylex z + - limit 1 -5
        zrevrangebylex z + - withscores
        zlexcount z - +
        zlexcount z [b (e
        zlexcount z b e
        zlexcount s - +
        zlexcount s b e
        zlexcount nokey b e
        zlexcount z [c [a
        zlexcount z - + x
        zrange z - + bylex
        zrange z [b (e bylex limit 1 1
        zrange z (e [b bylex rev
        zrange z [b (e bylex rev
        zrange z + - bylex rev limit 0 2
        zrange z - + bylex withscores
        zrange z - + bylex byscore
        zrange z - + bylex bylex
        zrange z 0 1 bylex
        zrange z - + bylex limit 0
        zrange s - + bylex
        zrange nokey - + bylex
        zremrangebylex z [b (d
        zrange z 0 -1
        zremrangebylex z b d
        zremrangebylex s - +
        zremrangebylex s b d
        zremrangebylex nokey x y
        zremrangebylex nokey - +
        zremrangebylex z - +
        exists z
        zadd m 3 a 1 b 2 c 1 d 0 e
        zrangebylex m [b [d
        zrangebylex m - [c
        zrangebylex m [c +
        zrevrangebylex m [d [b
        zrevrangebylex m [c -
        zrevrangebylex m + -
        zrevrangebylex m [e [a
        zlexcount m [b [d
        zlexcount m [a [b
        zrangebylex m [a [e
        zrangebylex m [b +
        zrangebylex m - (e
        zremrangebylex m [a [e
        zadd n 1 a 1 b 1 c 2 a0 2 b0
        zrangebylex n - +
        zrangebylex n [b +
        zrangebylex n (a [c
        zrevrangebylex n [c [a
        zrevrangebylex n + (a
        zlexcount n [a0 +
        zrangebylex e [ +
        zrangebylex e ( +
        ZADD e 0 "" 0 a 0 b
        ZRANGEBYLEX e [ +
        ZRANGEBYLEX e ( +
        ZRANGEBYLEX e - (a
        """,
    )


def test_lex_ranges_of_a_large_set_match_redis(pair):
    """Over 128 members Redis keeps a skiplist; with one score the answers are the same."""
    real, ours = pair
    for c in pair:
        c.execute_command("ZADD", "big", *[x for i in range(300) for x in ("0", f"m{i:04d}")])
    for lo, hi in [("[m0010", "(m0200"), ("(m01", "[m02"), ("-", "(m0005"), ("[m029", "+"), ("[m1", "+")]:
        for cmd in (
            ["ZRANGEBYLEX", "big", lo, hi],
            ["ZREVRANGEBYLEX", "big", hi, lo, "LIMIT", "3", "5"],
            ["ZLEXCOUNT", "big", lo, hi],
            ["ZRANGE", "big", hi, lo, "BYLEX", "REV", "LIMIT", "2", "-1"],
        ):
            assert Comparison().same(cmd[0], run(real, cmd), run(ours, cmd)), cmd
    cmd = ["ZREMRANGEBYLEX", "big", "(m0100", "[m0250"]
    assert run(real, cmd) == run(ours, cmd) == 150
    assert run(real, ["ZRANGE", "big", "0", "-1"]) == run(ours, ["ZRANGE", "big", "0", "-1"])


# ----------------------------------------------------------------- ZRANDMEMBER


def test_zrandmember_matches_redis(pair):
    """The deterministic cases: one-member sets, counts covering the whole set (highest score first),
    missing keys, and the argument checks in Redis's order."""
    check(
        pair,
        """
        zadd z 1 a
        zrandmember z
        zrandmember z 1
        zrandmember z 1 withscores
        zrandmember z -2 withscores
        zrandmember z -3
        zrandmember z 0
        zrandmember z 0 withscores
        zrandmember nokey
        zrandmember nokey 2
        zrandmember nokey 2 withscores
        zrandmember nokey -2
        zrandmember nokey 0
        zrandmember z x
        zrandmember z 1 foo
        zrandmember z 1 withscores x
        zrandmember z 1 WITHSCORES x
        zrandmember z -9223372036854775808
        zrandmember z -9223372036854775808 withscores
        zrandmember z -9223372036854775807 withscores
        zrandmember z -4611686018427387904 withscores
        zrandmember z 4611686018427387904 withscores
        zrandmember z 4611686018427387903 withscores
        set s v
        zrandmember s
        zrandmember s x
        zrandmember s 0
        zrandmember s 1 foo
        zrandmember s x foo
        zrandmember nokey 1 foo
        zrandmember nokey x
        zrandmember nokey x foo
        zrandmember s -9223372036854775807 withscores
        zrandmember s 1 withscores
        zadd z 1 b 0 c 2.5 d
        zrandmember z 4 withscores
        zrandmember z 5
        zrandmember z 9223372036854775807
        """,
    )


def test_zrandmember_picks_from_the_set(pair, protocol):
    real, ours = pair
    members = {f"m{i}".encode(): float(i) for i in range(10)}
    for c in pair:
        c.execute_command("ZADD", "z", *[x for m, s in members.items() for x in (s, m)])
    for client in (real, ours):
        assert client.execute_command("ZRANDMEMBER", "z") in members
        distinct = client.execute_command("ZRANDMEMBER", "z", "4")
        assert len(distinct) == len(set(distinct)) == 4 and set(distinct) <= set(members)
        repeated = client.execute_command("ZRANDMEMBER", "z", "-25")
        assert len(repeated) == 25 and set(repeated) <= set(members)
        scored = client.execute_command("ZRANDMEMBER", "z", "-3", "WITHSCORES")
        pairs = scored if protocol == 3 else [scored[i : i + 2] for i in range(0, len(scored), 2)]
        assert len(pairs) == 3 and all(members[m] == float(s) for m, s in pairs)


# ------------------------------------------------------- ZUNION, ZINTER, ZDIFF


def test_set_algebra_matches_redis(pair):
    """ZUNION/ZINTER/ZDIFF, their STORE forms and ZINTERCARD: sets as inputs (score 1), WEIGHTS,
    AGGREGATE, inf + -inf and 0 * inf (0 in Redis), sums of several scores added in Redis's order,
    the destination replaced whatever its type, its TTL dropped, deleted by an empty result, and
    the argument and type checks in Redis's order."""
    check(
        pair,
        """
        zadd a 1 x 2 y 3 z
        zadd b 10 y 20 z 30 w
        sadd s y w q
        set str v
        zunionstore d 2 a b
        zrange d 0 -1 withscores
        zinterstore d 2 a b
        zrange d 0 -1 withscores
        zdiffstore d 2 a b
        zrange d 0 -1 withscores
        zunionstore d 2 a b weights 2 0.5
        zrange d 0 -1 withscores
        zunionstore d 2 a b aggregate min
        zrange d 0 -1 withscores
        zinterstore d 2 a b aggregate max weights 1 -1
        zrange d 0 -1 withscores
        zunionstore d 2 a s
        zrange d 0 -1 withscores
        zinterstore d 2 a s weights 1 5
        zrange d 0 -1 withscores
        zunionstore d 2 a str
        zunionstore d 0 a
        zunionstore d -1 a
        zunionstore d x a
        zunionstore d 3 a b
        zunionstore d 2 a b weights 1
        zunionstore d 2 a b weights 1 x
        zunionstore d 2 a b weights 1 nan
        zunionstore d 2 a b aggregate foo
        zunionstore d 2 a b aggregate
        zunionstore d 2 a b foo
        zunionstore d 2 a b withscores
        zdiffstore d 2 a b weights 1 2
        zdiffstore d 2 a b aggregate sum
        zinterstore d 2 a nokey
        exists d
        set d v
        zunionstore d 1 a
        type d
        expire d 100
        zunionstore d 1 a
        ttl d
        zadd p 1 m
        zadd q inf m
        zadd r -inf m
        zunionstore d 2 q r
        zrange d 0 -1 withscores
        zinterstore d 2 q r
        zrange d 0 -1 withscores
        zunionstore d 2 q q weights 1 -1
        zrange d 0 -1 withscores
        zunionstore d 1 q weights 0
        zrange d 0 -1 withscores
        zunionstore d 2 p q weights inf 0
        zrange d 0 -1 withscores
        zunionstore d 1 q weights -inf
        zrange d 0 -1 withscores
        zunionstore d 2 q r aggregate min
        zrange d 0 -1 withscores
        zunion 2 a b
        zunion 2 a b withscores
        zunion 2 a b withscores weights 1 2 aggregate max
        zinter 2 a b withscores
        zinter 2 a s withscores
        zdiff 2 a b withscores
        zdiff 2 a b weights 1 1
        zdiff 1 a
        zunion 0 a
        zunion 1 str
        zinter 2 a nokey withscores
        zdiff 2 nokey a withscores
        zdiff 2 str a
        zdiff 2 nokey str
        zinter 2 nokey str
        zunion 2 nokey str
        zintercard 2 a b
        zintercard 2 a b limit 1
        zintercard 2 a b limit 0
        zintercard 2 a b limit -1
        zintercard 2 a b limit x
        zintercard 2 a b foo
        zintercard 0 a
        zintercard 3 a b
        zintercard 2 a str
        zintercard 2 nokey str
        zintercard 2 a s
        zintercard 1 a
        zunionstore d 1 nokey
        exists d
        zadd d 1 m
        zdiffstore d 1 nokey
        exists d
        zunionstore a 2 a b
        zrange a 0 -1 withscores
        zunion 2 a b aggregate sum weights 1 2 weights 3 4
        zunion 2 a b aggregate min aggregate max withscores
        zunion 2 a b weights 1 2 3
        zunionstore d 99999999999999999999 a
        zunionstore d 9223372036854775807 a
        zinter 1 s withscores
        zdiff 2 s a withscores
        zadd big 1 1.1 0.1 b 0.2 c
        zunion 2 big big withscores
        zunion 2 str a foo
        zunion 2 str a weights 1 x
        zunionstore d 2 str a foo
        zintercard 2 str a foo
        zintercard 2 str a limit -1
        zintercard x a
        zintercard -1 a
        zintercard 99999999999999999999 a
        zinter 2 a a withscores withscores
        zunion 2 a a weights 1 2 withscores
        zinter 2 a a weights 1 2 withscores
        zunion 1 a aggregate MIN withscores
        zdiff 2 a str
        zdiff 0 a
        zdiffstore d 0 a
        zdiffstore d 2 a
        zunionstore d
        zunionstore d 1
        zunion 1
        zintercard 1
        zinterstore d 1 a withscores
        zunion 2 a b weights 1 1e500
        zunion 2 a b weights 1 inf withscores
        zinter 2 q r weights 0 1 aggregate min withscores
        zinter 2 q r weights 0 1 aggregate max withscores
        zinter 2 r q weights 1 0 aggregate max withscores
        zinter 2 q q weights 0 1 aggregate min withscores
        zunion 2 q r weights 0 1 aggregate min withscores
        zadd t1 0.1 m 1 n
        zadd t2 0.2 m 2 n 1 o
        zadd t3 0.3 m 3 n 1 o 1 p
        zunion 3 t3 t2 t1 withscores
        zunion 3 t1 t2 t3 withscores
        zinter 3 t3 t1 t2 withscores
        zunionstore t1 3 t3 t2 t1 weights 0.7 0.1 3.3
        zrange t1 0 -1 withscores
        zintercard 2 a a limit 9223372036854775807
        """,
    )


def test_store_commands_wake_waiters_and_invalidate_watch_of_the_destination(server_ports):
    for port in server_ports:
        r, other = redis.Redis(port=port), redis.Redis(port=port)
        r.flushall()
        other.zadd("src", {"a": 1, "b": 2})
        later(0.1, other.zunionstore, "dst", ["src"])
        assert r.bzpopmax("dst", 10) == (b"dst", b"b", 2.0)
        assert other.zrange("dst", 0, -1) == [b"a"]
        for setup, cmd, key, changes in [
            ("ZADD dst 1 x", "ZUNIONSTORE dst 1 src", "dst", True),
            ("ZADD dst 1 x", "ZINTERSTORE dst 2 src nokey", "dst", True),  # deletes dst
            ("DEL dst", "ZDIFFSTORE dst 1 nokey", "dst", False),  # nothing to delete
            ("SET dst v", "ZRANGESTORE dst src 0 -1", "dst", True),
            ("DEL dst", "ZUNIONSTORE dst 1 src", "src", False),  # an input is not changed
        ]:
            r.execute_command(*setup.split())
            r.execute_command("WATCH", key)
            other.execute_command(*cmd.split())
            r.execute_command("MULTI")
            r.execute_command("PING")
            assert (r.execute_command("EXEC") is None) is changes, (port, cmd, key)
        r.close()
        other.close()


def test_zrangestore_matches_redis(pair):
    """By rank, BYSCORE and BYLEX with REV and LIMIT; WITHSCORES refused; the destination replaced
    whatever its type, its TTL dropped, deleted by an empty result; the source may be the destination."""
    check(
        pair,
        """
        zadd a 1 x 2 y 3 z 4 w
        set str v
        zrangestore d a 0 1
        zrange d 0 -1 withscores
        zrangestore d a 1 -1 rev
        zrange d 0 -1 withscores
        zrangestore d a (1 3 byscore
        zrange d 0 -1 withscores
        zrangestore d a +inf -inf byscore rev limit 1 2
        zrange d 0 -1 withscores
        zrangestore d a - + bylex limit 0 2
        zrange d 0 -1 withscores
        zrangestore d a 0 1 withscores
        zrangestore d a 0 1 limit 0 1
        zrangestore d a 0 1 limit 0 -1
        zrangestore d a x 1
        zrangestore d a 0 x byscore
        zrangestore d a b c bylex
        zrangestore d str 0 1
        zrangestore d nokey 0 1
        exists d
        zadd d 1 m
        zrangestore d a 5 10
        exists d
        set d v
        expire d 100
        zrangestore d a 0 0
        type d
        ttl d
        zrangestore a a 1 2
        zrange a 0 -1 withscores
        zrangestore d a 0
        zrangestore d a 0 1 foo
        zrangestore str a 0 0
        type str
        zrangestore d str x y
        zrangestore d nokey x y
        zrangestore d nokey 0 1 bylex
        """,
    )
