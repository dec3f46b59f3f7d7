"""SMOVE, SINTERSTORE/SUNIONSTORE/SDIFFSTORE, SINTERCARD, SETRANGE, COPY, TOUCH, OBJECT, LPOS,
LMPOP/BLMPOP and HRANDFIELD over ``kvb serve``, checked against a real redis-server (replies, reply
types over RESP2 and RESP3, exact error texts), with WATCH and blocking behaviour."""

from __future__ import annotations

import shlex
import threading
import time

import pytest
import redis
import test_resp_differential
from helpers import run_python
from resp_helpers import wait_blocked
from test_resp_differential import (
    NIL_ARRAY,
    NULL,
    ResponseError,
    _same_replies_and_error_texts,
    make_client,
    run,
)

from kv_backend.structures import Structures

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair


def lines(*text: str) -> list[list[str]]:
    return [shlex.split(t) for t in text]


def test_smove_matches_redis(pair):
    _same_replies_and_error_texts(
        pair,
        lines(
            "SADD s 1 2 3",
            "SET str x",
            "SMOVE nos str 1",  # a missing source: 0 whatever the destination holds
            "SMOVE str s 1",
            "SMOVE s str 1",
            "SMOVE s s 9",
            "SMOVE s s 1",
            "SMOVE s d 9",
            "SMOVE s d 1",
            "SMEMBERS d",
            "SMEMBERS s",
            "SMOVE s d 1",
            "SADD d 2",
            "SMOVE s d 2",  # already in the destination: it leaves the source only
            "SCARD d",
            "SADD one a",
            "EXPIRE one 100",
            "EXPIRE d 200",
            "SMOVE one d a",  # the emptied source goes; the destination keeps its TTL
            "EXISTS one",
            "TTL d",
            "SMEMBERS d",
            "SMOVE s",
            "SMOVE s d 3 4",
        ),
    )


def test_set_store_commands_match_redis(pair):
    _same_replies_and_error_texts(
        pair,
        lines(
            "SADD a 1 2 3 x",
            "SADD b 2 3 4",
            "SADD c 3 9",
            "SET str x",
            "SINTERSTORE dst a b",
            "SMEMBERS dst",
            "SINTERSTORE dst a b c",
            "SMEMBERS dst",
            "SINTERSTORE dst a nos",  # a missing set makes it empty: the destination is deleted
            "EXISTS dst",
            "SINTERSTORE dst nos",
            "SINTERSTORE dst a nos str",  # every type is checked
            "SINTERSTORE dst str nos",
            "SET dst v",
            "EXPIRE dst 100",
            "SUNIONSTORE dst a b",  # another type is overwritten, its TTL dropped
            "TYPE dst",
            "TTL dst",
            "SMEMBERS dst",
            "SDIFFSTORE dst a b",
            "SMEMBERS dst",
            "SDIFFSTORE dst a a",
            "EXISTS dst",
            "SDIFFSTORE dst nos a",
            "SDIFFSTORE dst nos str",
            "SUNIONSTORE dst nos str",
            "SUNIONSTORE dst nos",
            "SUNIONSTORE a a b",  # a destination that is also a source
            "SMEMBERS a",
            "SDIFFSTORE b b c",
            "SMEMBERS b",
            "SINTERSTORE c c",
            "SMEMBERS c",
            "RPUSH l x",
            "SINTERSTORE l a",
            "TYPE l",
            "SMEMBERS l",
            "SINTERSTORE",
            "SINTERSTORE dst",
            "SUNIONSTORE dst",
            "SDIFFSTORE dst",
        ),
    )


def test_sintercard_matches_redis(pair):
    _same_replies_and_error_texts(
        pair,
        lines(
            "SADD s 1 2 3",
            "SADD t 2 3 4",
            "SET str x",
            "SINTERCARD 1 s",
            "SINTERCARD 2 s t",
            "SINTERCARD 2 s nos",
            "SINTERCARD 2 nos str",
            "SINTERCARD 1 str",
            "SINTERCARD 0 s",
            "SINTERCARD -1 s",
            "SINTERCARD x s",
            "SINTERCARD 99999999999999999999 s",
            "SINTERCARD 2 s",
            "SINTERCARD 9223372036854775807 s",
            "SINTERCARD 1 s LIMIT",
            "SINTERCARD 1 s LIMIT -1",
            "SINTERCARD 1 s LIMIT x",
            "SINTERCARD 1 s FOO 1",
            "SINTERCARD 1 s LIMIT 1",
            "SINTERCARD 1 s LIMIT 0",
            "SINTERCARD 2 s t limit 1",
            "SINTERCARD 1 s LIMIT 1 LIMIT 2",
            "SINTERCARD 1 s LIMIT 5 extra",
            "SINTERCARD 1",
        ),
    )


def test_setrange_matches_redis(pair):
    _same_replies_and_error_texts(
        pair,
        lines(
            "SETRANGE k 0 ''",  # an empty value on a missing key creates nothing
            "EXISTS k",
            "SETRANGE k 5 ''",
            "EXISTS k",
            "SETRANGE k -1 x",
            "SETRANGE k x x",
            "SETRANGE k 536870912 x",
            "SETRANGE k 9223372036854775807 x",
            "SETRANGE k 3 ab",  # zero padding
            "GET k",
            "SET s abcdef",
            "EXPIRE s 100",
            "SETRANGE s 1 XY",
            "GET s",
            "TTL s",
            "SETRANGE s 4 LONGER",
            "GET s",
            "SETRANGE s 536870912 ''",
            "SETRANGE s 536870911 yz",
            "SETRANGE s 0 ''",
            "SET n 10",
            "SETRANGE n 0 2",
            "INCR n",
            "RPUSH l a",
            "SETRANGE l 0 x",
            "SETRANGE l 0 ''",
            "SETRANGE l -1 x",
            "SETRANGE l x ''",
            "SETRANGE k 0",
        ),
    )


def test_copy_matches_redis(pair):
    _same_replies_and_error_texts(
        pair,
        lines(
            "SET a 1",
            "COPY a a",
            "COPY a b DB",
            "COPY a b DB x",
            "COPY a b DB 99999999999",
            "COPY a b DB -1",
            "COPY a b FOO",
            "COPY a b DB 0 FOO",
            "COPY nos b",
            "COPY nos nos",
            "COPY nos b REPLACE",
            "COPY a b",
            "GET b",
            "COPY a b",
            "SET a 2",
            "COPY a b REPLACE",
            "GET b",
            "COPY a b REPLACE REPLACE",
            "COPY a b DB 0 DB 0",
            "COPY a a DB 0",
            "EXPIRE a 100",
            "COPY a c",
            "TTL c",
            "RPUSH l x y z",
            "COPY l b",
            "COPY l b REPLACE",
            "TYPE b",
            "LRANGE b 0 -1",
            "RPUSH b w",
            "LRANGE l 0 -1",
            "HSET h f v g w",
            "COPY h h2",
            "HGETALL h2",
            "SADD s m n",
            "COPY s s2",
            "SMEMBERS s2",
            "ZADD z 1 m 2 n",
            "PEXPIRE z 100000",
            "COPY z z2",
            "ZRANGE z2 0 -1 WITHSCORES",
            "TTL z2",
            "COPY s z2 REPLACE",
            "TYPE z2",
            "TTL z2",
            "SMEMBERS z2",
            "ZRANGE z 0 -1",
        ),
    )


def test_copy_of_a_stream_takes_its_consumer_groups(pair):
    _same_replies_and_error_texts(
        pair,
        lines(
            "XADD x 1-1 f v",
            "XADD x 2-1 g w",
            "XADD x 3-1 h u",
            "XDEL x 3-1",
            "XGROUP CREATE x g1 0",
            "XGROUP CREATE x g2 $",
            "XREADGROUP GROUP g1 alice COUNT 1 STREAMS x >",
            "XREADGROUP GROUP g1 bob STREAMS x >",
            "XACK x g1 1-1",
            "COPY x y",
            "XRANGE y - +",
            "XINFO GROUPS y",
            "XPENDING y g1",
            "XPENDING y g1 - + 10 bob",
            "XREADGROUP GROUP g1 carol STREAMS y 0",
            "XREADGROUP GROUP g2 carol STREAMS y >",
            "XADD y 4-1 i t",
            "XREADGROUP GROUP g2 carol STREAMS y >",
            "XINFO GROUPS x",  # the source is left alone
            "XLEN x",
            "XADD y 2-2 f v",  # the copy's last ID came with it
            "XADD x 5-1 f v",  # an explicit ID: two servers' clocks may give * ids 1 ms apart
            "XGROUP DESTROY y g1",
            "XINFO GROUPS x",
        ),
    )


def test_xreadgroup_replies_match_redis(pair):
    # the replies of a read that does not block: new entries (a run of consecutive IDs, then a
    # gap), nothing new, history with a deleted entry, NOACK, two streams
    _same_replies_and_error_texts(
        pair,
        lines(
            "XADD x 1-1 f v",
            "XADD x 1-2 g w",
            "XADD x 1-3 h u",
            "XADD x 7-0 i t",
            "XADD y 2-0 a b",
            "XGROUP CREATE x g 0",
            "XGROUP CREATE y g 0",
            "XREADGROUP GROUP g alice COUNT 2 STREAMS x >",
            "XREADGROUP GROUP g alice COUNT 1 STREAMS x >",
            "XREADGROUP GROUP g bob STREAMS x y > >",
            "XREADGROUP GROUP g bob STREAMS x >",
            "XREADGROUP GROUP g bob COUNT 0 STREAMS x y > >",
            "XDEL x 1-2",
            "XREADGROUP GROUP g alice STREAMS x 0",
            "XREADGROUP GROUP g alice COUNT 1 STREAMS x 1-1",
            "XREADGROUP GROUP g carol STREAMS x 9-9",
            "XADD x 8-0 j s",
            "XREADGROUP GROUP g carol NOACK STREAMS x >",
            "XPENDING x g",
            "XINFO GROUPS x",
            "XREADGROUP GROUP nope c STREAMS x >",
            "XREADGROUP GROUP g c STREAMS x $",
        ),
    )


def test_touch_matches_redis(pair):
    _same_replies_and_error_texts(
        pair,
        lines("SET a 1", "RPUSH l x", "TOUCH a", "TOUCH a l nos a", "TOUCH nos", "TOUCH"),
    )


def test_lpos_matches_redis(pair):
    _same_replies_and_error_texts(
        pair,
        lines(
            "RPUSH l a b c a b c a",
            "LPOS l a",
            "LPOS l a RANK 2",
            "LPOS l a RANK -1",
            "LPOS l a RANK -2 COUNT 0",
            "LPOS l a COUNT 0",
            "LPOS l a COUNT 2",
            "LPOS l a COUNT 2 MAXLEN 1",
            "LPOS l c MAXLEN 2",
            "LPOS l c RANK -1 MAXLEN 2",
            "LPOS l a RANK 9223372036854775807",
            "LPOS l a RANK -9223372036854775807 COUNT 1",
            "LPOS l a RANK 2 COUNT 5 MAXLEN 4",
            "LPOS l a RANK 0",
            "LPOS l a COUNT -1",
            "LPOS l a MAXLEN -1",
            "LPOS l a RANK x",
            "LPOS l a COUNT x",
            "LPOS l a MAXLEN x",
            "LPOS l a RANK 0 COUNT -1",
            "LPOS l a COUNT -1 RANK 0",
            "LPOS l a FOO",
            "LPOS l a RANK",
            "LPOS nos a",
            "LPOS nos a COUNT 1",
            "LPOS nos a RANK 0",
            "SET s x",
            "LPOS s a",
            "LPOS s a RANK 0",
            "LPOS s a COUNT 1",
            "LPOS l z",
            "LPOS l z COUNT 1",
            "LPOS l a RANK 5",
            "LPOS l a MAXLEN 0 COUNT 0",
            "LPOS l a COUNT 1 COUNT 3",
            "LPOS l",
        ),
    )


def test_lpos_most_negative_rank_is_refused_as_redis_7_2_does(pair):
    """Redis 7.0 takes RANK -9223372036854775808 (negating it overflows); 7.2 refuses it, as kvb does."""
    _, ours = pair
    reply = run(ours, ["LPOS", "l", "a", "RANK", "-9223372036854775808"])
    assert isinstance(reply, ResponseError)
    assert str(reply) == (
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    )


def test_lmpop_and_blmpop_match_redis(pair):
    _same_replies_and_error_texts(
        pair,
        lines(
            "RPUSH l a b c",
            "SET s x",
            "LMPOP 1 l LEFT",
            "LMPOP 1 l RIGHT COUNT 5",
            "EXISTS l",
            "LMPOP 1 l LEFT",
            "RPUSH l a b c",
            "LMPOP 0 l LEFT",
            "LMPOP -1 l LEFT",
            "LMPOP x l LEFT",
            "LMPOP 99999999999999999999 l LEFT",
            "LMPOP 3 l LEFT",
            "LMPOP 9223372036854775807 l LEFT",
            "LMPOP 2 l LEFT",
            "LMPOP 1 l MIDDLE",
            "LMPOP 1 l LEFT COUNT 0",
            "LMPOP 1 l LEFT COUNT -1",
            "LMPOP 1 l LEFT COUNT x",
            "LMPOP 1 l LEFT COUNT",
            "LMPOP 1 l LEFT COUNT 1 COUNT 2",
            "LMPOP 1 l left foo",
            "LMPOP 2 nos s LEFT",
            "LMPOP 2 s l LEFT",
            "LMPOP 2 l s left count 2",  # served from l: s is never reached
            "LMPOP 2 nos l RIGHT",
            "LMPOP 1 nos LEFT",
            "LMPOP 1 nos LEFT COUNT 0",
            "LMPOP 1 l",
            "RPUSH m 1 2 3",
            "BLMPOP 0 2 nos m LEFT COUNT 2",
            "BLMPOP 0.01 1 nos LEFT",
            "BLMPOP -1 1 nos LEFT",
            "BLMPOP x 1 nos LEFT",
            "BLMPOP x 0 nos LEFT",
            "BLMPOP x 1 nos MIDDLE",
            "BLMPOP x 1 nos LEFT COUNT 0",
            "BLMPOP 0 0 nos LEFT",
            "BLMPOP 0 1 nos LEFT COUNT 0",
            "BLMPOP 0 2 s m LEFT",
            "BLMPOP 0 1 m",
            "MULTI",
            "BLMPOP 0 1 nos LEFT",  # never waits inside a transaction: null at once
            "LMPOP 1 m RIGHT",
            "BLMPOP 0 1 m RIGHT",
            "EXEC",
        ),
    )


def test_hrandfield_matches_redis(pair, protocol):
    _same_replies_and_error_texts(
        pair,
        lines(
            "HSET h a 1",
            "SET s x",
            "HRANDFIELD nos",
            "HRANDFIELD nos 1",
            "HRANDFIELD nos x",
            "HRANDFIELD s",
            "HRANDFIELD s x",
            "HRANDFIELD s 1",
            "HRANDFIELD h",
            "HRANDFIELD h 0",
            "HRANDFIELD h 5",
            "HRANDFIELD h -3",
            "HRANDFIELD h 1 WITHVALUES",
            "HRANDFIELD h -2 withvalues",
            "HRANDFIELD h 1 FOO",
            "HRANDFIELD h 1 WITHVALUES x",
            "HRANDFIELD h -9223372036854775808",
            "HRANDFIELD nos -9223372036854775808",
            "HRANDFIELD h -9223372036854775807 WITHVALUES",
            "HRANDFIELD h 4611686018427387904 WITHVALUES",
            "HRANDFIELD nos 4611686018427387904 WITHVALUES",
            "HRANDFIELD h x WITHVALUES",
            "HRANDFIELD h 0 WITHVALUES",
            "HRANDFIELD nos 0 WITHVALUES",
            "HRANDFIELD nos 3 WITHVALUES",
        ),
    )
    for client in pair:
        client.execute_command("HSET", "big", *[x for i in range(20) for x in (f"f{i}", f"v{i}")])
    fields = {f"f{i}".encode(): f"v{i}".encode() for i in range(20)}
    for client in pair:
        assert sorted(client.execute_command("HRANDFIELD", "big", 100)) == sorted(fields)
        five = client.execute_command("HRANDFIELD", "big", 5)
        assert len(five) == len(set(five)) == 5 and set(five) <= set(fields)
        many = client.execute_command("HRANDFIELD", "big", -50)
        assert len(many) == 50 and set(many) <= set(fields)
        pairs = client.execute_command("HRANDFIELD", "big", -4, "WITHVALUES")
        if protocol == 2:  # a flat list field, value, field, value...
            pairs = list(zip(pairs[::2], pairs[1::2], strict=True))
        assert len(pairs) == 4 and all(type(p) is not bytes and fields[p[0]] == p[1] for p in pairs)
        assert client.execute_command("HRANDFIELD", "big") in fields


def test_object_matches_redis(pair):
    """ENCODING of strings, hashes, sorted sets and integer sets, REFCOUNT, FREQ, errors: as Redis."""
    big = "x" * 65
    _same_replies_and_error_texts(
        pair,
        lines(
            "SET a 100",
            "SET b 10000",
            "SET c -5",
            "SET d hello",
            "SET e 12345678901234567890",
            "SET f 9223372036854775807",
            "SET g 007",
            "SET h +1",
            "SET i " + "y" * 44,
            "SET j " + "y" * 45,
            "SET k -0",
            "SET m 1.5",
            "SET n ' 1'",
            "SET o ''",
            "SET p 9999",
            "SADD s1 1 2 -3",
            "HSET h1 f v",
            f"HSET h2 f {big}",
            f"HSET h3 {big} v",
            "ZADD z1 1 m",
            f"ZADD z2 1 {big}",
            "XADD x 1-1 f v",
            *[f"OBJECT ENCODING {k}" for k in "abcdefghijkmnop"],
            *[f"OBJECT REFCOUNT {k}" for k in "abcdefghijkmnop"],
            "OBJECT ENCODING s1",
            "OBJECT ENCODING h1",
            "OBJECT ENCODING h2",
            "OBJECT ENCODING h3",
            "OBJECT ENCODING z1",
            "OBJECT ENCODING z2",
            "OBJECT ENCODING x",
            "OBJECT REFCOUNT s1",
            "OBJECT REFCOUNT x",
            "OBJECT ENCODING nos",
            "OBJECT REFCOUNT nos",
            "OBJECT IDLETIME nos",
            "OBJECT FREQ nos",
            "OBJECT FREQ a",
            "OBJECT",
            "OBJECT foo",
            "OBJECT foo a",
            "OBJECT ENCODING",
            "OBJECT ENCODING a b",
            "OBJECT HELP x",
            "INCR p",
            "OBJECT REFCOUNT p",
            "INCR p",
            "OBJECT REFCOUNT p",
            "OBJECT ENCODING p",
        ),
    )
    _, ours = pair
    assert run(ours, ["OBJECT", "IDLETIME", "a"]) == 0  # kvb keeps no access times
    help_lines = run(ours, ["OBJECT", "HELP"])
    assert help_lines[0].startswith(b"OBJECT <subcommand>") and b"HELP" in help_lines


def test_object_encoding_of_lists_and_sets_follows_redis_7_2(pair):
    """Redis 7.2 keeps small lists and small non-integer sets as listpacks (7.0, installed here,
    answers quicklist and hashtable), so these are checked against 7.2's rules, not the server."""
    _, ours = pair
    ours.execute_command("RPUSH", "small", "a", "1", "b")
    ours.execute_command("RPUSH", "wide", "x" * 9000)
    ours.execute_command("RPUSH", "long", *["x" * 60] * 200)  # 200 * 62 bytes > 8 KiB
    ours.execute_command("RPUSH", "fits", *["x" * 60] * 100)
    ours.execute_command("SADD", "ints", *range(512))
    ours.execute_command("SADD", "manyints", *range(513))
    ours.execute_command("SADD", "words", "a", "b")
    ours.execute_command("SADD", "longword", "a", "x" * 65)
    ours.execute_command("SADD", "manywords", *[f"w{i}" for i in range(129)])
    ours.execute_command("HSET", "manyfields", *[x for i in range(513) for x in (f"f{i}", "v")])
    ours.execute_command("ZADD", "manymembers", *[x for i in range(129) for x in (i, f"m{i}")])
    expected = {
        "small": b"listpack",
        "wide": b"quicklist",
        "long": b"quicklist",
        "fits": b"listpack",
        "ints": b"intset",
        "manyints": b"hashtable",
        "words": b"listpack",
        "longword": b"hashtable",
        "manywords": b"hashtable",
        "manyfields": b"hashtable",
        "manymembers": b"skiplist",
    }
    assert {k: run(ours, ["OBJECT", "ENCODING", k]) for k in expected} == expected


# --------------------------------------------------------------------------------------- WATCH

WATCH_CASES = [
    # (setup, watched key, command, whether EXEC then fails)
    (["SADD s m"], "d", "SMOVE s d m", True),
    (["SADD s m"], "s", "SMOVE s d m", True),
    (["SADD s m"], "d", "SMOVE s d x", False),
    # a destination that had the member is left alone, as in Redis
    (["SADD s m n", "SADD d m"], "d", "SMOVE s d m", False),
    (["SADD s m n", "SADD d m"], "s", "SMOVE s d m", True),
    ([], "d", "SMOVE s d m", False),
    ([], "d", "SINTERSTORE d s", False),
    (["SET d x"], "d", "SINTERSTORE d s", True),
    (["SADD s m"], "d", "SUNIONSTORE d s", True),
    (["SADD s m", "SADD d m"], "d", "SDIFFSTORE d s", True),
    (["SADD s m"], "s", "SUNIONSTORE d s", False),
    (["SADD s m"], "d", "COPY s d", True),
    (["SADD s m", "SET d x"], "d", "COPY s d", False),
    (["SADD s m", "SET d x"], "d", "COPY s d REPLACE", True),
    (["SADD s m"], "s", "COPY s d", False),
    (["RPUSH l a"], "l", "LMPOP 1 l LEFT", True),
    (["RPUSH l a"], "m", "LMPOP 2 m l LEFT", False),  # only the key it popped from changed
    ([], "l", "LMPOP 1 l LEFT", False),
    (["RPUSH l a"], "l", "BLMPOP 1 1 l LEFT", True),
    ([], "k", "SETRANGE k 0 ''", False),
    (["SET k abc"], "k", "SETRANGE k 0 ''", False),
    (["SET k abc"], "k", "SETRANGE k 0 x", True),
    (["SET k abc"], "k", "TOUCH k", False),
    (["SET k abc"], "k", "OBJECT ENCODING k", False),
]


def test_watch_is_invalidated_by_every_key_written(pair, protocol):
    """A watcher's EXEC fails when one of these commands changed its key (also a destination, or
    SMOVE's other set), and runs when the command changed nothing, as with redis-server."""
    ports = [c.connection_pool.connection_kwargs["port"] for c in pair]
    others = tuple(make_client(port, protocol) for port in ports)
    try:
        test_resp_differential.check_watch_cases(pair, others, WATCH_CASES)
    finally:
        for c in others:
            c.close()


# ------------------------------------------------------------------------------------ blocking


def _in_thread(fn, *args) -> tuple[threading.Thread, list]:
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    t.start()
    return t, out


def test_blmpop_waits_for_a_push_and_times_out(pair, protocol):
    """BLMPOP is served by another client's push (from the list pushed), answers null when its
    timeout passes, as redis-server does."""
    ports = [c.connection_pool.connection_kwargs["port"] for c in pair]
    replies = []
    for client, port in zip(pair, ports, strict=True):
        waiter = make_client(port, protocol)
        try:
            t, out = _in_thread(run, waiter, ["BLMPOP", "5", "2", "a", "b", "RIGHT", "COUNT", "2"])
            wait_blocked(client)
            client.execute_command("RPUSH", "b", "x", "y", "z")
            t.join(10)
            t0 = time.monotonic()
            timed_out = run(waiter, ["BLMPOP", "0.05", "1", "nos", "LEFT"])
            assert 0.04 < time.monotonic() - t0 < 2
            replies.append((out[0], timed_out, client.execute_command("LRANGE", "b", 0, -1)))
        finally:
            waiter.close()
    (want, want_t, want_left), (got, got_t, got_left) = replies
    assert got == want == [b"b", [b"z", b"y"]]
    assert want_left == got_left == [b"x"]
    assert type(got_t) is type(want_t) and got_t is (NIL_ARRAY if protocol == 2 else NULL)


def test_copy_to_a_list_wakes_a_blocked_client(pair, protocol):
    """COPY writes its destination: a client blocked on that name is served from the copy."""
    for client in pair:
        port = client.connection_pool.connection_kwargs["port"]
        waiter = make_client(port, protocol)
        try:
            client.execute_command("RPUSH", "src", "e1", "e2")
            t, out = _in_thread(run, waiter, ["BLPOP", "dst", "5"])
            wait_blocked(client)
            assert client.execute_command("COPY", "src", "dst") == 1
            t.join(10)
            assert out == [[b"dst", b"e1"]]
            assert client.execute_command("LRANGE", "dst", 0, -1) == [b"e2"]
            assert client.execute_command("LRANGE", "src", 0, -1) == [b"e1", b"e2"]
        finally:
            waiter.close()


def test_blmpop_is_served_by_another_process_writing_the_directory(tmp_path):
    from resp_helpers import RunningServer

    server = RunningServer(str(tmp_path / "store")).start()
    try:
        r = redis.Redis(port=server.port, socket_timeout=20)
        code = """
            import sys, time
            from kv_backend.structures import Structures
            time.sleep(0.2)
            with Structures(sys.argv[1]) as st:
                st.rpush(b"q", b"1", b"2", b"3")
        """
        t = threading.Thread(target=run_python, args=(code, server.path))
        t.start()
        assert r.execute_command("BLMPOP", "10", "1", "q", "LEFT", "COUNT", "2") == [b"q", [b"1", b"2"]]
        t.join(30)
        r.close()
        with Structures(server.path) as st:
            assert st.lrange("q", 0, -1) == [b"3"]
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("cmd", ["SMOVE", "LMPOP", "BLMPOP", "COPY", "SINTERCARD", "OBJECT", "LPOS"])
def test_commands_are_listed(pair, cmd):
    _, ours = pair
    info = ours.execute_command("COMMAND", "INFO", cmd)
    assert info and info[0] is not None


def test_an_integer_with_two_signs_is_refused_as_redis_refuses_it(pair):
    _same_replies_and_error_texts(
        pair, lines("INCRBY k --5", "LRANGE k --1 1", "SETRANGE k --1 x", "LPOS k a RANK --1")
    )
