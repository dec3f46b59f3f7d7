"""Fixes to ``kvb serve``'s Redis compatibility, each checked against a real redis-server 7.0: which
writes a WATCH sees, random-member commands with huge counts, and Lua's RESP3 replies."""

from __future__ import annotations

import shlex

import test_resp_differential
from resp_helpers import Raw, wait_blocked
from test_resp_differential import Nil, check_watch_cases, make_client

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair

_GROUP = ["XADD x 1-0 f v", "XGROUP CREATE x g 0"]
_PEL = [*_GROUP, "XREADGROUP GROUP g c COUNT 1 STREAMS x >"]
_READ = "XREADGROUP GROUP g c COUNT 1 STREAMS x >"

# (setup, watched key, command run by another client, whether redis-server 7.0 aborts the EXEC):
# every write command of the registry that names a key it may leave alone (a source, a key after
# the one a pop took from, a destination that already has the member...), leaving it alone and
# changing it; the outcomes are redis-server 7.0's. Redis signals no change to WATCH for what the
# stream-group commands (XGROUP, XACK, XCLAIM, XAUTOCLAIM, XREADGROUP) and XSETID do, except
# XGROUP CREATE ... MKSTREAM creating the stream; kvb counts those that change something (but
# XREADGROUP) as changes of the stream, on purpose (docs/redis.md, WATCH): _KVB_GROUPS.
_KVB_GROUPS = (False, True)  # (redis-server, kvb serve)
WATCH_TABLE: list[tuple[list[str], str, str, bool]] = [
    (["SADD s a"], "s", "SMOVE s d x", False),
    (["SADD s a", "SADD d a"], "d", "SMOVE s d a", False),
    (["SADD s a", "SADD d a"], "s", "SMOVE s d a", True),
    (["SADD s a"], "s", "SMOVE s s a", False),
    (["SADD d a"], "d", "SMOVE s d a", False),
    (["RPUSH d x"], "d", "LMOVE s d LEFT RIGHT", False),
    (["RPUSH d x"], "d", "RPOPLPUSH s d", False),
    (["RPUSH d x"], "d", "BLMOVE s d LEFT RIGHT 0.01", False),
    (["RPUSH d x"], "d", "BRPOPLPUSH s d 0.01", False),
    (["RPUSH s x"], "s", "LMOVE s s LEFT RIGHT", True),
    (["RPUSH a x", "RPUSH b y"], "b", "LMPOP 2 a b LEFT", False),
    (["RPUSH a x", "RPUSH b y"], "a", "LMPOP 2 a b LEFT", True),
    (["RPUSH a x", "RPUSH b y"], "b", "BLMPOP 0.01 2 a b LEFT", False),
    (["ZADD a 1 x", "ZADD b 1 y"], "b", "ZMPOP 2 a b MIN", False),
    (["ZADD a 1 x", "ZADD b 1 y"], "b", "BZMPOP 0.01 2 a b MIN", False),
    (["RPUSH a x", "RPUSH b y"], "b", "BLPOP a b 0.01", False),
    (["ZADD a 1 x", "ZADD b 1 y"], "b", "BZPOPMIN a b 0.01", False),
    (["SADD a x", "SADD b x"], "a", "SINTERSTORE d a b", False),
    (["SADD a x", "SADD b x"], "b", "SUNIONSTORE d a b", False),
    (["SADD a x", "SADD b x"], "a", "SDIFFSTORE d a b", False),
    (["SADD a x", "SADD b x"], "d", "SDIFFSTORE d a b", False),
    (["SADD a x", "SADD b x"], "d", "SINTERSTORE d a b", True),
    ([], "d", "SINTERSTORE d a b", False),
    (["ZADD a 1 x", "ZADD b 1 x"], "a", "ZUNIONSTORE d 2 a b", False),
    (["ZADD a 1 x", "ZADD b 1 x"], "b", "ZINTERSTORE d 2 a b", False),
    (["ZADD a 1 x", "ZADD b 1 x"], "a", "ZDIFFSTORE d 2 a b", False),
    (["ZADD a 1 x"], "a", "ZRANGESTORE d a 0 -1", False),
    ([], "d", "ZRANGESTORE d a 0 -1", False),
    (["SET a 1"], "a", "COPY a b", False),
    (["SET a 1", "SET b 2"], "a", "COPY a b", False),
    (["SET a 1", "SET b 2"], "b", "COPY a b", False),
    (["SET a 1", "SET b 1"], "b", "COPY a b REPLACE", True),
    (["SET a 1"], "a", "RENAME a b", True),
    (["SET a 1"], "b", "RENAME a b", True),
    (["RPUSH l 3 1 2"], "l", "SORT l STORE d", False),
    (["RPUSH l 3 1 2"], "d", "SORT l", False),
    (["SET a x", "SET b y"], "a", "BITOP AND d a b", False),
    (["SET a x", "SET b y"], "b", "BITOP AND d a b", False),
    ([], "d", "BITOP AND d a b", False),
    (["PFADD a x", "PFADD b y"], "b", "PFMERGE d a b", False),
    (["PFADD a x", "PFADD b y"], "a", "PFMERGE a b", True),
    (["PFADD a x", "PFADD b x"], "a", "PFMERGE a b", True),
    (["PFADD a x"], "a", "PFMERGE a", True),
    (["PFADD a x"], "a", "PFADD a x", False),
    ([], "a", "PFADD a", True),
    (["PFADD a"], "a", "PFADD a", False),
    (["GEOADD g 0 0 m"], "g", "GEOSEARCHSTORE d g FROMLONLAT 0 0 BYRADIUS 10 km", False),
    (["GEOADD g 0 0 m"], "g", "GEORADIUS g 0 0 10 km STORE d", False),
    ([], "d", "GEOSEARCHSTORE d g FROMLONLAT 0 0 BYRADIUS 10 km", False),
    (["SET a 1"], "a", "MSETNX a 2 b 3", False),
    (["SET a 1"], "b", "MSETNX a 2 b 3", False),
    (["SET a 1"], "a", "SET a 2 NX", False),
    ([], "a", "SET a 2 XX", False),
    (["HSET h f v"], "h", "HSETNX h f w", False),
    (["ZADD z 1 m"], "z", "ZADD z NX 2 m", False),
    ([], "z", "ZADD z XX 2 m", False),
    (["ZADD z 1 m"], "z", "ZADD z XX 1 m", False),
    (["ZADD z 5 m"], "z", "ZADD z GT 2 m", False),
    (["ZADD z 1 m"], "z", "ZADD z LT 2 m", False),
    (["ZADD z 1 m"], "z", "ZADD z LT CH 2 m", False),
    (["ZADD z 1 m"], "z", "ZADD z GT INCR 0 m", False),
    (["ZADD z 1 m"], "z", "ZADD z NX INCR 1 m", False),
    (["ZADD z 1 m"], "z", "ZINCRBY z 0 m", False),
    (["SET a 1 EX 100"], "a", "EXPIRE a 200 NX", False),
    (["SET a 1"], "a", "EXPIRE a 200 XX", False),
    (["SET a 1"], "a", "PERSIST a", False),
    (_GROUP, "x", "XGROUP CREATE x g 0", False),
    (_GROUP, "x", "XGROUP CREATECONSUMER x g c", _KVB_GROUPS),
    ([*_GROUP, "XGROUP CREATECONSUMER x g c"], "x", "XGROUP CREATECONSUMER x g c", False),
    (_GROUP, "x", "XGROUP DELCONSUMER x g c", False),
    (_GROUP, "x", "XGROUP DESTROY x h", False),
    (_GROUP, "x", "XGROUP SETID x g 0", False),
    (_GROUP, "x", "XGROUP SETID x g 1-0", _KVB_GROUPS),
    (_GROUP, "x", "XACK x g 1-0", False),
    (_GROUP, "x", "XACK x h 1-0", False),
    (_GROUP, "x", "XCLAIM x g c 0 1-0", _KVB_GROUPS),
    (_PEL, "x", "XCLAIM x g c 0 1-0", _KVB_GROUPS),
    (_PEL, "x", "XCLAIM x g c 0 1-0 JUSTID", _KVB_GROUPS),
    (_GROUP, "x", "XAUTOCLAIM x g c 0 0", _KVB_GROUPS),
    (["XADD x 1-0 f v", "XGROUP CREATE x g $"], "x", _READ, False),
    (["XADD x 1-0 f v", "XGROUP CREATE x g $", "XGROUP CREATECONSUMER x g c"], "x", _READ, False),
    (_GROUP, "x", _READ, False),
    (_PEL, "x", "XREADGROUP GROUP g c COUNT 1 STREAMS x 0", False),
    (["XADD x 1-0 f v"], "x", "XSETID x 1-0", False),
    (["XADD x 1-0 f v"], "x", "XSETID x 1-0 ENTRIESADDED 1", False),
    (["XADD x 1-0 f v"], "x", "XSETID x 1-0 ENTRIESADDED 3", _KVB_GROUPS),
    (["XADD x 1-0 f v", "XGROUP CREATE x g 0 ENTRIESREAD 0"], "x", "XGROUP SETID x g 0 ENTRIESREAD 0", False),
    (_GROUP, "x", "XGROUP SETID x g 0 ENTRIESREAD 5", _KVB_GROUPS),
    (["XADD x 1-0 f v"], "x", "XTRIM x MINID 0", False),
    ([], "x", "XADD x NOMKSTREAM * f v", False),
    (["SET a 1"], "a", "GETSET a 1", True),
    (["SET a 1"], "a", "SET a 1", True),
    (["SET a 1"], "a", 'APPEND a ""', True),
    ([], "a", 'APPEND a ""', True),
    (["SET a abc"], "a", 'SETRANGE a 0 ""', False),
    ([], "a", 'SETRANGE a 0 ""', False),
    (["SET a abc"], "a", "SETRANGE a 0 a", True),
    (["SET a 1"], "a", "INCRBY a 0", True),
    (["SET a 1"], "a", "INCRBYFLOAT a 0", True),
    (["SET a 1"], "a", "DECRBY a 0", True),
    (["SET a 1"], "a", "SETBIT a 0 0", False),
    ([], "a", "SETBIT a 0 0", True),
    (["SET a 1"], "a", "BITFIELD a GET u8 0", False),
    (["SET a 1"], "a", "BITFIELD a SET u8 0 0", True),
    ([], "a", "BITFIELD a GET u8 0", False),
    (["HSET h f 1"], "h", "HINCRBY h f 0", True),
    (["HSET h f v"], "h", "HSET h f v", True),
    (["HSET h f v"], "h", "HMSET h f v", True),
    (["RPUSH l a"], "l", "LSET l 0 a", True),
    (["RPUSH l a b"], "l", "LTRIM l 0 -1", True),
    ([], "l", "LTRIM l 0 -1", False),
    (["RPUSH l a b"], "l", "LTRIM l 5 6", True),
    (["RPUSH l a"], "l", "LINSERT l BEFORE a b", True),
    ([], "l", "LINSERT l BEFORE a b", False),
    (["RPUSH l a"], "l", "LPOP l 0", False),
    (["RPUSH l a"], "l", "RPOP l 0", False),
    (["SADD s a"], "s", "SPOP s 0", False),
    (["ZADD z 1 a"], "z", "ZPOPMIN z 0", False),
    (["ZADD z 1 a"], "z", "ZPOPMAX z -1", False),
    (["ZADD z 1 a"], "z", "ZREMRANGEBYRANK z 5 6", False),
    (["ZADD z 1 a"], "z", "ZREMRANGEBYLEX z [x [y", False),
    (["SET a 1"], "a", "GETEX a", False),
    (["GEOADD g 0 0 m"], "g", "GEOADD g 0 0 m", False),
    (["GEOADD g 0 0 m"], "g", "GEOADD g NX 1 1 m", False),
    (["GEOADD g 0 0 m"], "g", "GEOADD g XX 1 1 n", False),
    ([], "a", "FLUSHALL", False),
    ([], "a", "DEL a", False),
    (["SET a 1"], "a", "COPY a a", False),
    (["SET a 1"], "a", "RENAMENX a a", False),
    (["SET a 1"], "a", "SORT a STORE a", False),
    (["RPUSH l 1"], "l", "SORT l STORE l", True),
    (["SET a 1 EX 100"], "a", "SET a 1 KEEPTTL", True),
    (["SET a 1 EX 100"], "a", "GETEX a EX 100", True),
    (["SET a 1"], "a", "RENAME a a", False),
    (["SET b 1"], "a", "RENAME a a", False),
    ([], "x", "XGROUP CREATE x g 0 MKSTREAM", True),
    (["XADD x 1-0 f v"], "x", "XGROUP CREATE x g 0", _KVB_GROUPS),
    ([*_GROUP, "XGROUP CREATECONSUMER x g c"], "x", "XGROUP DELCONSUMER x g c", _KVB_GROUPS),
    (_GROUP, "x", "XGROUP DESTROY x g", _KVB_GROUPS),
    (_PEL, "x", "XACK x g 1-0", _KVB_GROUPS),
    (_PEL, "x", "XCLAIM x g d 0 1-0", _KVB_GROUPS),
    (_PEL, "x", "XAUTOCLAIM x g d 0 0", _KVB_GROUPS),
    (["XADD x 1-0 f v"], "x", "XSETID x 5-0", _KVB_GROUPS),
    (["SET a 1"], "b", "MSET a 2 b 3", True),
    (["SET a 1"], "b", "MSETNX c 1 b 3", True),
    (["SET a 1", "SET b 1"], "b", "DEL a b", True),
    (["SET a 1", "SET b 1"], "b", "RENAME a b", True),
    (["RPUSH l 1"], "d", "SORT l STORE d", True),
    (["SET d 1"], "d", "SORT l STORE d", True),
    ([], "d", "SORT l STORE d", False),
    (["SET a x"], "d", "BITOP NOT d a", True),
    (["SET d x"], "d", "BITOP AND d a b", True),
    (["PFADD a x"], "d", "PFMERGE d a", True),
    (["PFADD a x", "PFADD d x"], "d", "PFMERGE d a", True),
    (["ZADD a 1 x"], "d", "ZUNIONSTORE d 1 a", True),
    (["SET d 1"], "d", "ZUNIONSTORE d 1 a", True),
    (["SET d 1"], "d", "SINTERSTORE d a", True),
    (["SET d 1"], "d", "ZRANGESTORE d a 0 -1", True),
    (["SET d 1"], "d", "GEOSEARCHSTORE d g FROMLONLAT 0 0 BYRADIUS 10 km", True),
    (["GEOADD g 0 0 m"], "d", "GEORADIUSBYMEMBER g m 10 km STOREDIST d", True),
    (["SADD s a"], "d", "SMOVE s d a", True),
    (["SADD s a", "SADD d b"], "d", "SMOVE s d a", True),
    (["SADD s a b", "SADD d a"], "s", "SMOVE s d a", True),
    (["SADD s a", "SET d x"], "d", "SMOVE s d a", False),
    (["SADD s a", "SET d x"], "s", "SMOVE s d a", False),
    (["RPUSH a x"], "a", "LMPOP 2 a b LEFT", True),
    (["RPUSH b x"], "b", "LMPOP 2 a b LEFT", True),
    (["RPUSH b x"], "a", "LMPOP 2 a b LEFT", False),
    (["ZADD b 1 x"], "b", "ZMPOP 2 a b MAX", True),
    (["RPUSH b x"], "a", "BRPOP a b 0.01", False),
    (["RPUSH b x"], "b", "BRPOP a b 0.01", True),
    (["ZADD b 1 x"], "b", "BZPOPMAX a b 0.01", True),
    (["ZADD b 1 x"], "a", "BZMPOP 0.01 2 a b MIN COUNT 5", False),
    (["XADD x 1-0 f v"], "x", "XGROUP CREATE x g 0 MKSTREAM", _KVB_GROUPS),
    (["XADD x 1-0 f v"], "x", "XADD x 2-0 f v", True),
]


def test_watch_sees_the_changes_redis_signals_and_only_those(servers):
    """kvb aborted the EXEC of a client watching a key that a write command named but left alone:
    the keys after the one LMPOP/ZMPOP/BLMPOP/BZMPOP/BLPOP/BZPOPMIN popped from, SMOVE's
    destination when it already had the member, and a stream that XGROUP SETID or XSETID set to
    the values it had."""
    pair = servers[2]
    others = tuple(make_client(c.connection_pool.connection_kwargs["port"], 2) for c in pair)
    try:
        check_watch_cases(pair, others, WATCH_TABLE)
    finally:
        for c in others:
            c.close()


# (watched key, blocking command, what a third client runs to serve it, whether Redis aborts the EXEC)
SERVED_CASES = [
    ("a", "BLPOP a b 0", "RPUSH b x", False),
    ("b", "BLPOP a b 0", "RPUSH b x", True),
    ("a", "BZMPOP 0 2 a b MIN", "ZADD b 1 m", False),
    ("a", "BZPOPMAX a b 0", "ZADD b 1 m", False),
    ("a", "BLMPOP 0 2 a b LEFT", "RPUSH b x", False),
    ("d", "BLMOVE s d LEFT RIGHT 0", "RPUSH s x", True),
]


def test_watch_of_a_served_waiter_sees_only_the_key_it_took_from(servers):
    """A client blocked on several keys (BLPOP a b 0) and then served from one of them changed only
    that one: kvb aborted the EXEC of a client watching the others."""
    for watched, blocking, serve, aborts in SERVED_CASES:
        outcome = []
        for client in servers[2]:
            port = client.connection_pool.connection_kwargs["port"]
            client.execute_command("FLUSHALL")
            client.execute_command("WATCH", watched)
            waiter = Raw(port, 2)
            try:
                words = shlex.split(blocking)
                waiter.sock.sendall(
                    b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w.encode()) for w in words)
                )
                wait_blocked(client)
                client.execute_command(*shlex.split(serve))  # the watcher itself: its own write
                assert waiter._read()[:1] in (b"*", b"$")  # served
            finally:
                waiter.close()
            client.execute_command("MULTI")
            client.execute_command("PING")
            outcome.append(isinstance(client.execute_command("EXEC"), Nil))
        assert outcome == [aborts, aborts], (watched, blocking, serve, outcome)


def test_mpop_with_a_numkeys_that_is_no_number_under_keyspace_notifications(pair):
    """With keyspace notifications on, LMPOP/ZMPOP/BLMPOP/BZMPOP whose numkeys is no number answered
    Python's "invalid literal for int() with base 10: b'x'" instead of Redis's error (the keys the
    command writes were worked out from numkeys before the command checked it)."""
    for client in pair:
        client.execute_command("CONFIG", "SET", "notify-keyspace-events", "KEA")
    try:
        test_resp_differential._same_replies_and_error_texts(
            pair,
            [
                ["RPUSH", "a", "x"],
                ["LMPOP", "x", "a", "LEFT"],
                ["ZMPOP", "1x", "a", "MIN"],
                ["BLMPOP", "0", "x", "a", "LEFT"],
                ["BZMPOP", "0", "", "a", "MIN"],
                ["LMPOP", "-1", "a", "LEFT"],
                ["LMPOP", "1", "a", "LEFT"],
            ],
        )
    finally:
        for client in pair:
            client.execute_command("CONFIG", "SET", "notify-keyspace-events", "")


def test_a_write_works_out_its_keys_once_with_watch_and_notifications_on(tmp_path, monkeypatch):
    """Connection.execute worked out a write command's keys up to three times (keyspace events
    before and after it, and WATCH/blocked clients); now once, and never for a read."""
    from kv_backend.server import resp
    from kv_backend.server.notify import parse_flags

    calls = []
    real = resp._written_keys

    def counted(name, args):
        calls.append(name)
        return real(name, args)

    monkeypatch.setattr(resp, "_written_keys", counted)
    server = resp.Server(str(tmp_path / "store"))
    try:
        conn, watcher = resp.Connection(server), resp.Connection(server)
        server.set_notify_flags(parse_flags(b"KEg$lshz"))  # no expired events: no sweeper to start
        watcher.watch(b"a")
        for args in ([b"RPUSH", b"a", b"x"], [b"DEL", b"a", b"b"], [b"LMPOP", b"1", b"a", b"LEFT"]):
            calls.clear()
            conn.execute(args)
            assert calls == [args[0].lower()], calls
        calls.clear()
        conn.execute([b"GET", b"a"])
        assert calls == []
        assert watcher.watch_dirty
    finally:
        server.db.close()


_HUGE_COUNTS = [str(n) for n in (2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**62 - 1, 2**62, -(2**62) - 1)]
_HUGE_COUNTS += [str(-(2**62)), str(-(2**62) + 1)]
_RANDOM_COMMANDS = [
    ["SRANDMEMBER", "s"],
    ["HRANDFIELD", "h"],
    ["HRANDFIELD", "h", "WITHVALUES"],
    ["ZRANDMEMBER", "z"],
    ["ZRANDMEMBER", "z", "WITHSCORES"],
]


def _reply_or_error(client, cmd):
    try:
        reply = client.execute_command(*cmd)
    except test_resp_differential.ResponseError as exc:
        return "error", str(exc)
    return "items", sorted(map(repr, reply))


def test_random_member_commands_with_counts_near_2_63_answer_as_redis(pair):
    """SRANDMEMBER/HRANDFIELD/ZRANDMEMBER with counts near +-2**63 (WITHVALUES/WITHSCORES too) on a
    missing key, a key of another type and a key whose whole content a positive count covers: the
    same replies and error texts as redis-server (the negative counts Redis takes for an existing
    key start a reply that never ends there, and are not compared)."""
    for client in pair:
        client.execute_command("SADD", "s", "a", "b")
        client.execute_command("HSET", "h", "f", "v", "g", "w")
        client.execute_command("ZADD", "z", "1", "a", "2", "b")
        client.execute_command("SET", "str", "x")
    for base in _RANDOM_COMMANDS:
        for count in _HUGE_COUNTS:
            for key in ("missing", "str", base[1]):
                if key == base[1] and count.startswith("-"):
                    continue
                cmd = [base[0], key, count, *base[2:]]
                real, ours = (_reply_or_error(c, cmd) for c in pair)
                assert ours == real, (cmd, real, ours)


def test_huge_negative_random_member_counts_are_refused_at_once(servers):
    """SRANDMEMBER/HRANDFIELD/ZRANDMEMBER k -4611686018427387904 (and any negative count of more
    than 10,000,000 members) on an existing key built its reply member by member: the server hung,
    deaf to SIGTERM, its memory growing until killed (Redis 7.0 does the same); kvb now refuses
    them at once with "value is out of range" (docs/redis.md)."""
    ours = servers[2][1]
    ours.execute_command("SADD", "s", "a")
    ours.execute_command("HSET", "h", "f", "v")
    ours.execute_command("ZADD", "z", "1", "a")
    for base in _RANDOM_COMMANDS:
        for count in ("-10000001", "-4611686018427387903", "-9223372036854775807"):
            cmd = [base[0], base[1], count, *base[2:]]
            kind, text = _reply_or_error(ours, cmd)
            assert kind == "error" and text.startswith("ERR value is out of range"), (cmd, text)
        assert len(ours.execute_command(base[0], base[1], "-3", *base[2:])) == 3 * len(base[1:])


def test_the_negative_count_limit_of_random_members(tmp_path, monkeypatch):
    """In process: a negative count up to MAX_RANDOM_REPEATS members is answered, one more is refused."""
    import pytest

    from kv_backend.db import DB
    from kv_backend.structures import CommandError, Structures, parsing

    monkeypatch.setattr(parsing, "MAX_RANDOM_REPEATS", 5)
    db = DB(str(tmp_path / "store"))
    try:
        st = Structures(db)
        st.hset("h", mapping={"f": "v"})
        st.zadd("z", {"a": 1})
        assert st.hrandfield("h", -5) == [b"f"] * 5
        assert st.zrandmember("z", -5, withscores=True) == [(b"a", 1.0)] * 5
        for call in (lambda: st.hrandfield("h", -6, True), lambda: st.zrandmember("z", -6)):
            with pytest.raises(CommandError, match="at most 5 members"):
                call()
        assert st.hrandfield("nohash", -6) == []
    finally:
        db.close()


# (whether the script first calls redis.setresp(3), its body): what redis.call gives a script in
# RESP3 (maps, sets, doubles, nulls, booleans, verbatim strings, statuses, errors...) and how a
# script's reply converts back, to RESP2 and RESP3 clients
LUA_RESP_CASES = [
    (True, "return redis.call('hgetall', 'h')"),
    (True, "local r = redis.call('hgetall', 'h'); return type(r.map) .. ':' .. tostring(r.map.f)"),
    (True, "local r = redis.call('smembers', 's'); return type(r.set) .. ':' .. tostring(r.set.m)"),
    (True, "return redis.call('smembers', 's')"),
    (True, "local r = redis.call('zscore', 'z', 'a'); return {type(r), type(r.double), tostring(r.double)}"),
    (True, "return redis.call('zscore', 'z', 'a')"),
    (True, "local r = redis.call('get', 'nokey'); return {type(r), tostring(r)}"),
    (True, "return redis.call('get', 'nokey')"),
    (True, "local r = redis.call('mget', 'nokey', 'k'); return {#r, tostring(r[1]), r[2]}"),
    (True, "return redis.call('zrange', 'z', 0, -1, 'withscores')"),
    (
        True,
        "local r = redis.call('zrange', 'z', 0, -1, 'withscores'); "
        "return {type(r[1]), type(r[1][2]), tostring(r[1][2].double)}",
    ),
    (
        True,
        "local r = redis.call('info', 'server'); "
        "return {type(r), type(r.verbatim_string), r.verbatim_string.format, type(r.verbatim_string.string)}",
    ),
    (False, "redis.setresp(2); local r = redis.call('info', 'server'); return type(r)"),
    (False, "local r = redis.call('info', 'server'); return type(r)"),
    (True, "local r = redis.call('hrandfield', 'h', 1, 'withvalues'); return {type(r[1]), r[1][1], r[1][2]}"),
    (True, "local r = redis.call('exists', 'k'); return {type(r), r}"),
    (True, "local r = redis.call('set', 'k2', 'v'); return {type(r), r.ok}"),
    (True, "local r = redis.pcall('incr', 'h'); return {type(r), r.err}"),
    (True, "return redis.call('lpop', 'nolist')"),
    (True, "local r = redis.call('lpop', 'nolist', 2); return tostring(r)"),
    (True, "local r = redis.call('zrandmember', 'z', 1, 'withscores'); return {type(r[1][2])}"),
    (True, "local r = redis.call('geopos', 'z', 'a'); return type(r[1][1])"),
    (True, "local r = redis.call('zmscore', 'z', 'a', 'b'); return {type(r[1]), tostring(r[2])}"),
    (True, "local r = redis.call('xinfo', 'help'); return type(r)"),
    (True, "local r = redis.call('hello'); return type(r)"),
    (True, "return redis.call('smismember', 's', 'm', 'x')"),
    (True, "return redis.call('sismember', 's', 'm')"),
    (True, "return redis.call('command', 'getkeysandflags', 'get', 'a')"),
    (False, "return {double=1.5}"),
    (False, "return {double='1.5'}"),
    (False, "return {double=3}"),
    (False, "return {double=0/0}"),
    (False, "return {double=1/0}"),
    (False, "return {big_number='123456789012345678901234567890'}"),
    (False, "return {big_number='12\\r\\n3'}"),
    (False, "return {big_number=5}"),
    (False, "return {verbatim_string={format='txt', string='hello'}}"),
    (False, "return {verbatim_string={format='mkd', string='# hi'}}"),
    (False, "return {verbatim_string={format='txt'}}"),
    (False, "return {verbatim_string={string='x'}}"),
    (False, "return {map={a=1}}"),
    (False, "return {map={a={1,2}}}"),
    (False, "return {map={}}"),
    (False, "return {set={a=true}}"),
    (False, "return {set={}}"),
    (False, "return {err=5}"),
    (False, "return {ok=5}"),
    (False, "return {ok='a\\r\\nb'}"),
    (False, "return {err='x\\r\\ny'}"),
    (False, "return true"),
    (False, "return false"),
    (True, "return true"),
    (True, "return false"),
    (True, "return nil"),
    (True, "return {1, false, true, 'x'}"),
    (False, "return {1, false, true, 'x'}"),
    (True, "redis.setresp(2); return false"),
    (False, "redis.setresp(1)"),
    (False, "redis.setresp(4)"),
    (False, "redis.setresp()"),
    (False, "redis.setresp('3'); return redis.call('get', 'nokey')"),
    (False, "redis.setresp(3.9); return redis.call('get', 'nokey')"),
    (False, "redis.setresp('x')"),
    (False, "return {map={a={double=2.5}}}"),
    (False, "return {set={[5]=true}}"),
    (False, "return {map={[2]='two'}}"),
    (True, "return redis.call('zadd', 'z', 'incr', '1', 'a')"),
    (True, "return redis.call('zincrby', 'z', '1', 'a')"),
    (True, "return redis.call('incrbyfloat', 'f', '1.5')"),
    (True, "return redis.call('hincrbyfloat', 'hf', 'x', '1.5')"),
    (True, "return redis.call('zpopmin', 'nozset')"),
    (True, "local r = redis.call('zpopmin', 'z'); return {type(r[1]), type(r[2])}"),
    (True, "return redis.call('xrange', 'nostream', '-', '+')"),
    (True, "return redis.call('geodist', 'z', 'a', 'b')"),
    (True, "return redis.call('object', 'freq', 'k')"),
    (True, "return redis.call('type', 'k')"),
    (True, "return redis.call('xread', 'streams', 'nostream', '0')"),
    (True, "return redis.call('lpos', 'l', 'nothere')"),
    (True, "return redis.call('zrank', 'z', 'nothere')"),
    (True, "return redis.call('hget', 'h', 'nothere')"),
    (False, "redis.setresp(3); redis.setresp(2); return redis.call('hgetall', 'h')"),
    (False, "return redis.pcall('eval', 'return 1', 0)"),
]
_LUA_SETUP = [
    ["FLUSHALL"],
    ["HSET", "h", "f", "v"],
    ["SADD", "s", "m"],
    ["ZADD", "z", "1.5", "a"],
    ["SET", "k", "v"],
    ["RPUSH", "l", "x"],
]


def test_lua_resp3_replies_convert_as_redis(servers, protocol):
    """redis.setresp(3) was refused ("RESP3 is not supported in scripts by this server"): a script
    now gets redis.call's replies as Redis 7.0 converts RESP3 (map -> {map=...}, set -> {set=...},
    double -> {double=...}, null -> nil, booleans, verbatim string -> {verbatim_string=...}), and
    its reply converts back as Redis's (booleans stay booleans; {big_number=...}, {verbatim_string=
    ...} and a NaN {double=...}, which got no reply at all, are replies; {ok=5}, {err=5} and
    {double='1.5'} are not). redis.call('INFO') gave a RESP2 script a table of byte values, not a
    string. Byte-exact against redis-server, to RESP2 and RESP3 clients."""
    ports = [c.connection_pool.connection_kwargs["port"] for c in servers[2]]
    conns = [Raw(port, protocol) for port in ports]
    try:
        for resp3, body in LUA_RESP_CASES:
            script = ("redis.setresp(3); " if resp3 else "") + body
            replies = []
            for conn in conns:
                for words in _LUA_SETUP:
                    conn.call(*words)
                replies.append(conn.call("EVAL", script, "0"))
            assert replies[1] == replies[0], (script, replies)
    finally:
        for conn in conns:
            conn.close()


def test_functions_use_resp3_after_setresp(servers):
    """A library function that calls redis.setresp(3) gets RESP3 replies too, and the next call
    starts in RESP2 again."""
    ours = servers[2][1]
    ours.execute_command("HSET", "h", "f", "v")
    ours.execute_command(
        "FUNCTION",
        "LOAD",
        "REPLACE",
        "#!lua name=resp8\n"
        "redis.register_function('typed', function(keys, args)\n"
        "  if args[1] == '3' then redis.setresp(3) end\n"
        "  local r = redis.call('hgetall', keys[1])\n"
        "  return type(r.map)\n"
        "end)",
    )
    assert ours.execute_command("FCALL", "typed", "1", "h", "3") == b"table"
    assert ours.execute_command("FCALL", "typed", "1", "h", "2") == b"nil"
    assert ours.execute_command("EVAL", "return type(redis.call('hgetall', KEYS[1]).map)", "1", "h") == b"nil"
