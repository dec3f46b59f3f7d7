"""``kvb serve`` driven by real clients: redis-py (sync and asyncio, RESP2 and RESP3), redis-cli,
redis-benchmark, raw sockets (malformed input), SIGKILL durability, AUTH and unix sockets."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis
import redis.asyncio as aioredis
from helpers import child_env, require_tool, spawn_python, wait_for
from redis.backoff import NoBackoff
from redis.retry import Retry
from resp_helpers import RunningServer

from kv_backend import DB
from kv_backend.structures import Structures


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("resp") / "store")
    srv = RunningServer(path).start()
    yield srv
    assert srv.stop() == 0, "the server did not exit cleanly on SIGTERM"


@pytest.fixture
def r(server):
    client = redis.Redis(port=server.port, socket_timeout=10)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def r3(server):
    client = redis.Redis(port=server.port, protocol=3, socket_timeout=10)
    client.flushdb()
    yield client
    client.close()


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, half-close, and read until the server closes (or goes quiet)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the server may close a connection that sent garbage before reading it all
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def quiet_read(port: int, data: bytes) -> bytes:
    """Send bytes on a connection kept open and collect what arrives within a short while."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(0.3)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except TimeoutError:
            pass
        return out


# ------------------------------------------------------------------ strings


def test_relative_expiry_counts_from_whole_milliseconds(r):
    """As in Redis, SET ... PX/EX, SETEX, PSETEX and GETEX add their time to the current time in
    whole milliseconds, so PTTL right after never exceeds what was asked (it read 50001 when the
    expiry was the float clock plus the TTL, rounded on the way back)."""
    for _ in range(200):
        assert r.set("p", "x", px=50000) and r.pttl("p") <= 50000
        assert r.psetex("q", 50000, "x") and r.pttl("q") <= 50000
        assert r.set("e", "x", ex=50) and r.pttl("e") <= 50000
        assert r.getex("p", px=40000) == b"x" and r.pttl("p") <= 40000


def test_strings(r):
    assert r.ping() is True
    assert r.set("s", "v") is True
    assert r.get("s") == b"v"
    assert r.set("s", "w", nx=True) is None
    assert r.set("missing", "w", xx=True) is None
    assert r.set("s", "w", xx=True, get=True) == b"v"
    assert r.set("t", "1", ex=100) is True
    assert 98 <= r.ttl("t") <= 100
    assert r.set("t", "2", keepttl=True) and r.ttl("t") > 0
    assert r.set("t", "3") and r.ttl("t") == -1
    assert r.set("p", "x", px=50000) and 49000 < r.pttl("p") <= 50000
    assert r.execute_command("SETEX", "e", 100, "x") and r.ttl("e") > 0  # (redis-py deprecates setex())
    assert r.setnx("n", "1") is True and r.setnx("n", "2") is False
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "zz") == [b"1", b"2", None]
    assert r.getset("a", "9") == b"1" and r.get("a") == b"9"
    assert r.getdel("a") == b"9" and r.get("a") is None
    assert r.append("ap", "ab") == 2 and r.append("ap", "cd") == 4 and r.get("ap") == b"abcd"
    assert r.strlen("ap") == 4 and r.strlen("nope") == 0
    assert r.incr("c") == 1 and r.incrby("c", 10) == 11 and r.decr("c") == 10 and r.decrby("c", 5) == 5
    assert r.incrbyfloat("f", 1.5) == 1.5 and r.incrbyfloat("f", "2.25") == 3.75
    assert r.get("f") == b"3.75"
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr("ap")
    with pytest.raises(redis.ResponseError, match="invalid expire time"):
        r.set("x", "y", ex=0)
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SET", "x", "y", "NX", "XX")


def test_keys_and_expiry(r):
    r.mset({"k1": "a", "k2": "b", "other": "c"})
    r.hset("h", "f", "v")
    assert r.exists("k1", "k2", "nope") == 2
    assert sorted(r.keys("k*")) == [b"k1", b"k2"]
    assert r.type("h") == b"hash" and r.type("k1") == b"string" and r.type("nope") == b"none"
    assert r.dbsize() == 4
    assert r.expire("k1", 100) is True and 99 <= r.ttl("k1") <= 100
    assert r.expire("k1", 50, xx=True) is True and r.expire("k1", 500, nx=True) is False
    assert r.pexpire("k2", 100000) and r.pttl("k2") > 90000
    assert r.expireat("other", int(time.time()) + 1000) and r.ttl("other") > 900
    assert r.persist("k1") is True and r.ttl("k1") == -1 and r.persist("k1") is False
    assert r.ttl("nope") == -2 and r.pttl("nope") == -2
    assert r.pexpire("h", 1) is True
    time.sleep(0.05)
    assert r.exists("h") == 0 and r.hgetall("h") == {}
    assert r.rename("k1", "k9") is True and r.get("k9") == b"a" and r.get("k1") is None
    with pytest.raises(redis.ResponseError, match="no such key"):
        r.rename("nope", "x")
    assert r.delete("k9", "k2", "nope") == 2 and r.unlink("other") == 1
    assert r.randomkey() is None
    r.set("only", "1")
    assert r.randomkey() == b"only"
    assert r.flushall() is True and r.dbsize() == 0


def test_scan_family(r):
    for i in range(57):
        r.set(f"key:{i}", i)
    r.hset("hash", mapping={f"f{i}": i for i in range(23)})
    r.sadd("set", *range(31))
    r.zadd("zset", {f"m{i}": i for i in range(19)})
    assert {k for k in r.scan_iter(match="key:*", count=7)} == {f"key:{i}".encode() for i in range(57)}
    assert set(r.scan_iter(_type="HASH")) == {b"hash"}
    assert dict(r.hscan_iter("hash", count=5)) == {f"f{i}".encode(): str(i).encode() for i in range(23)}
    assert set(r.sscan_iter("set", count=4)) == {str(i).encode() for i in range(31)}
    assert dict(r.zscan_iter("zset", count=3)) == {f"m{i}".encode(): float(i) for i in range(19)}
    cursor, names = r.scan(0, match="key:1*", count=1000)
    assert cursor == 0 and len(names) == 11


def test_scan_cursors_fit_javascript_numbers(server, r):
    """Every cursor on the wire is a decimal below 2**53, which node-redis (a JS number), Jedis (a
    long) and go-redis (a uint64) read exactly; kvb sent the key name itself as a number of up to
    ~2,500 digits, so go-redis failed with "value out of range" on any key longer than 6 bytes."""
    names = [b"user:%d" % i + b"." * (i * 997 % 3000) for i in range(40)] + [b"k" * 65_000]
    r.mset({n: 1 for n in names})
    r.hset("h", mapping={n: 1 for n in names})
    r.sadd("s", *names)
    r.zadd("z", {n: 1 for n in names})
    raw_replies = redis.Redis(port=server.port, socket_timeout=10)
    raw_replies.response_callbacks.clear()  # the cursor as sent, not redis-py's int
    for command, key, want, step in [
        ("SCAN", (), {*names, b"h", b"s", b"z"}, 1),
        ("HSCAN", ("h",), set(names), 2),
        ("SSCAN", ("s",), set(names), 1),
        ("ZSCAN", ("z",), set(names), 2),
    ]:
        got, cursor = set(), b"0"
        while True:
            cursor, items = raw_replies.execute_command(command, *key, cursor, "COUNT", 3)
            assert int(cursor) < 2**53 and cursor == str(int(cursor)).encode()
            got.update(items[::step])
            if cursor == b"0":
                break
        assert got == want, command
    raw_replies.close()


def test_hashes(r):
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "3") == 0
    assert r.hget("h", "a") == b"3" and r.hget("h", "zz") is None
    assert r.hmget("h", "a", "b", "c") == [b"3", b"2", None]
    assert r.hgetall("h") == {b"a": b"3", b"b": b"2"}
    assert r.hincrby("h", "n", 5) == 5 and r.hincrby("h", "n", -2) == 3
    assert r.hincrbyfloat("h", "fl", 0.5) == 0.5
    assert r.hexists("h", "a") and not r.hexists("h", "nope")
    assert r.hlen("h") == 4
    assert sorted(r.hkeys("h")) == [b"a", b"b", b"fl", b"n"]
    assert sorted(r.hvals("h")) == sorted([b"3", b"2", b"3", b"0.5"])
    assert r.hsetnx("h", "a", "x") == 0 and r.hsetnx("h", "new", "x") == 1
    assert r.hdel("h", "a", "b", "zz") == 2 and r.hlen("h") == 3
    r.set("str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.hset("str", "f", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.get("h")


def test_lists(r):
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lpush("l", "z") == 4
    assert r.lrange("l", 0, -1) == [b"z", b"a", b"b", b"c"]
    assert r.llen("l") == 4 and r.lindex("l", -1) == b"c" and r.lindex("l", 10) is None
    assert r.lset("l", 1, "A") is True
    assert r.lpop("l") == b"z" and r.rpop("l") == b"c"
    assert r.rpush("l", "A", "x", "A") == 5
    assert r.lrem("l", 0, "A") == 3 and r.lrange("l", 0, -1) == [b"b", b"x"]
    assert r.rpush("l", 1, 2, 3, 4) == 6 and r.ltrim("l", 1, -2) is True
    assert r.lrange("l", 0, -1) == [b"x", b"1", b"2", b"3"]
    assert r.lpop("l", 2) == [b"x", b"1"] and r.rpop("l", 5) == [b"3", b"2"]
    assert r.exists("l") == 0 and r.lpop("l") is None and r.lpop("l", 3) is None
    with pytest.raises(redis.ResponseError, match="no such key"):
        r.lset("l", 0, "x")


def test_sets(r):
    assert r.sadd("s1", "a", "b", "c") == 3 and r.sadd("s1", "a") == 0
    r.sadd("s2", "b", "c", "d")
    assert r.smembers("s1") == {b"a", b"b", b"c"}
    assert r.sismember("s1", "a") and not r.sismember("s1", "d")
    assert r.scard("s1") == 3
    assert r.sinter("s1", "s2") == {b"b", b"c"}
    assert r.sunion("s1", "s2") == {b"a", b"b", b"c", b"d"}
    assert r.sdiff("s1", "s2") == {b"a"}
    assert r.srem("s1", "a", "zz") == 1 and r.scard("s1") == 2
    assert r.srem("s1", "b", "c") == 2 and r.exists("s1") == 0


def test_sorted_sets(r):
    assert r.zadd("z", {"a": 1, "b": 2, "c": 3, "d": -1.5}) == 4
    assert r.zadd("z", {"a": 10}, ch=True) == 1
    assert r.zadd("z", {"a": 5}, gt=True) == 0 and r.zscore("z", "a") == 10.0
    assert r.zadd("z", {"e": 0}, xx=True) == 0 and r.zscore("z", "e") is None
    assert r.zincrby("z", 2.5, "b") == 4.5
    assert r.zcard("z") == 4 and r.zcount("z", "-inf", "+inf") == 4 and r.zcount("z", "(3", 10) == 2
    assert r.zrange("z", 0, -1) == [b"d", b"c", b"b", b"a"]
    assert r.zrange("z", 0, 1, withscores=True) == [(b"d", -1.5), (b"c", 3.0)]
    assert r.zrevrange("z", 0, 0, withscores=True) == [(b"a", 10.0)]
    assert r.zrangebyscore("z", 0, 5) == [b"c", b"b"]
    assert r.zrangebyscore("z", "-inf", "+inf", start=1, num=2) == [b"c", b"b"]
    assert r.zrevrangebyscore("z", "+inf", "(3") == [b"a", b"b"]
    assert r.zrange("z", 4, 100, byscore=True) == [b"b", b"a"]
    assert r.zrange("z", 100, 4, byscore=True, desc=True) == [b"a", b"b"]
    assert r.zrank("z", "d") == 0 and r.zrevrank("z", "d") == 3 and r.zrank("z", "zz") is None
    assert r.zrem("z", "d", "zz") == 1
    assert r.zremrangebyscore("z", "-inf", 4) == 1 and r.zrange("z", 0, -1) == [b"b", b"a"]
    assert r.zadd("z", {"inf": float("inf")}) == 1 and r.zscore("z", "inf") == float("inf")
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        r.execute_command("ZADD", "z", "nan", "x")


def test_resp3_verbatim_and_script_types(r3):
    raw = r3.connection_pool.get_connection()
    try:
        raw.send_command("INFO", "server")
        info = raw.read_response()
        raw.send_command("EVAL", "return {map={a=1}, double=2.5}", 0)
        assert raw.read_response() == 2.5  # the double field wins, as in Redis
        raw.send_command("EVAL", "return {map={a=1}}", 0)
        assert raw.read_response() == {b"a": 1}
    finally:
        r3.connection_pool.release(raw)
    assert b"redis_version" in (info if isinstance(info, bytes) else info.encode())


def test_resp3_types(r3):
    assert r3.execute_command("HELLO", 3)[b"proto"] == 3
    r3.hset("h", mapping={"a": "1"})
    assert r3.hgetall("h") == {b"a": b"1"}
    r3.sadd("s", "x", "y")
    assert r3.smembers("s") == {b"x", b"y"}
    r3.zadd("z", {"m": 1.5})
    assert r3.zscore("z", "m") == 1.5
    assert r3.zrange("z", 0, -1, withscores=True) == [[b"m", 1.5]] or r3.zrange(
        "z", 0, -1, withscores=True
    ) == [(b"m", 1.5)]
    assert r3.get("missing") is None
    assert r3.config_get("port")["port"] == str(r3.connection_pool.connection_kwargs["port"])


def test_pipeline_transaction_and_watch(r, server):
    with r.pipeline() as p:
        p.set("a", 1).incr("a").hset("h", "f", "v").lpush("l", 1).get("a")
        assert p.execute() == [True, 2, 1, 1, b"2"]
    # WATCH: another client changes the key between WATCH and EXEC -> WatchError.
    other = redis.Redis(port=server.port)
    with r.pipeline() as p:
        p.watch("a")
        other.set("a", 100)
        p.multi()
        p.incr("a")
        with pytest.raises(redis.WatchError):
            p.execute()
    # An in-process user of the same directory counts as "another client" too.
    with Structures(server.path) as st, r.pipeline() as p:
        p.watch("a")
        st.set("a", "5")
        p.multi()
        p.incr("a")
        with pytest.raises(redis.WatchError):
            p.execute()
    # Unchanged: the transaction runs.
    with r.pipeline() as p:
        p.watch("a")
        p.multi()
        p.incr("a")
        assert p.execute() == [6]

    def incr_tx(pipe):
        value = int(pipe.get("a"))
        pipe.multi()
        pipe.set("a", value + 1)

    assert r.transaction(incr_tx, "a") == [True] and r.get("a") == b"7"
    # Errors while queueing abort the whole transaction.
    with pytest.raises(redis.ResponseError):
        r.execute_command("MULTI")
        try:
            r.execute_command("NOSUCHCOMMAND")
        finally:
            r.execute_command("EXEC")
    other.close()


def test_pubsub(r, server):
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("news")
    p.psubscribe("ev.*")
    wait_for(lambda: r.pubsub_numsub("news") == [(b"news", 1)] and r.pubsub_numpat() == 1, 10, "subscribed")
    assert r.publish("news", "hello") == 1
    assert r.publish("ev.x", "world") == 1
    assert r.publish("nobody", "x") == 0
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        m = p.get_message(timeout=0.5)
        if m:
            got.append((m["type"], m["channel"], m["data"]))
    assert got == [("message", b"news", b"hello"), ("pmessage", b"ev.x", b"world")]
    assert r.pubsub_numsub("news") == [(b"news", 1)]
    p.unsubscribe()
    p.punsubscribe()
    p.close()
    # RESP3 subscribers get push messages.
    r3 = redis.Redis(port=server.port, protocol=3)
    p3 = r3.pubsub(ignore_subscribe_messages=True)
    p3.subscribe("c3")
    wait_for(lambda: r.pubsub_numsub("c3") == [(b"c3", 1)], 10, "subscribed")
    assert r.publish("c3", "x") == 1
    m = None
    deadline = time.monotonic() + 5
    while m is None and time.monotonic() < deadline:
        m = p3.get_message(timeout=0.5)
    assert m is not None and m["data"] == b"x"
    p3.close()
    r3.close()


def test_subscribe_mode_rejects_other_commands(server):
    out = raw(server.port, b"SUBSCRIBE a\r\nGET x\r\nPING\r\n")
    assert b"subscribe" in out and b"only (P|S)SUBSCRIBE" in out and b"pong" in out


def test_server_commands(r):
    assert r.echo("hi") == b"hi"
    assert r.client_setname("me") and r.client_getname() == "me"
    assert isinstance(r.client_id(), int)
    assert r.execute_command("SELECT", 0) in (True, b"OK")
    with pytest.raises(redis.ResponseError, match="out of range"):
        r.execute_command("SELECT", 1)
    assert r.info()["redis_version"]
    assert r.command_count() > 100
    assert raw(r.connection_pool.connection_kwargs["port"], b"COMMAND DOCS get\r\n").startswith(
        b"*2\r\n$3\r\nget"
    )
    assert r.config_get("save") == {"save": ""}
    with pytest.raises(redis.ResponseError, match="unknown command 'FROBNICATE'"):
        r.execute_command("FROBNICATE", "x")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("GET")


#: CLIENT LIST's fields in Redis 7.2, in its order (redis-py and python-rq parse them by name).
REDIS_72_CLIENT_FIELDS = (  # noqa: SIM905 - one line of Redis's own output, easier to compare
    "id addr laddr fd name age idle flags db sub psub ssub multi qbuf qbuf-free argv-mem multi-mem "
    "rbs rbp obl oll omem tot-mem events cmd user redir resp lib-name lib-ver"
).split()


def _fields(line: str) -> list[str]:
    return [pair.split("=", 1)[0] for pair in line.split(" ")]


def test_client_info_and_list_carry_redis_fields(server, r):
    me = r.client_info()  # redis-py's parser: needs every integer field Redis has
    assert me["id"] == r.client_id() and me["db"] == 0 and me["multi"] == -1
    assert me["laddr"] == f"127.0.0.1:{server.port}" and me["addr"].startswith("127.0.0.1:")
    assert me["flags"] == "N" and me["cmd"] == "client|info" and me["name"] == ""
    assert me["user"] == "default" and me["resp"] in ("2", "3") and int(me["fd"]) > 0
    line = raw(server.port, b"CLIENT INFO\r\n").split(b"\r\n")[1].decode()  # the raw bulk string
    assert _fields(line) == REDIS_72_CLIENT_FIELDS
    r.client_setname("watcher")
    r.execute_command("CLIENT", "SETINFO", "LIB-NAME", "mylib")
    in_multi = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    subscriber = redis.Redis(port=server.port, socket_timeout=10).pubsub()  # not r's pooled connection
    blocked = redis.Redis(port=server.port, socket_timeout=10)
    waiter = threading.Thread(target=blocked.blpop, args=(["client-list-q"], 0))
    try:
        in_multi.sendall(b"CLIENT SETNAME txn\r\nMULTI\r\nSET a 1\r\n")
        subscriber.subscribe("news")
        subscriber.get_message(timeout=5)
        waiter.start()
        deadline = time.monotonic() + 5
        while True:
            clients = r.client_list()
            flags = {c["flags"] for c in clients}
            if {"x", "P", "b"} <= flags or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        by_name = {c["name"]: c for c in clients}
        assert by_name["txn"]["flags"] == "x" and by_name["txn"]["multi"] == "1"
        assert by_name["watcher"]["lib-name"] == "mylib" and by_name["watcher"]["flags"] == "N"
        assert {"P", "b"} <= flags
        assert {c["cmd"] for c in clients} >= {"set", "subscribe", "blpop", "client|list"}
        listing = raw(server.port, b"CLIENT LIST\r\n").split(b"\r\n")[1].decode().splitlines()
        assert len(listing) >= 5 and all(_fields(line) == REDIS_72_CLIENT_FIELDS for line in listing)
        time.sleep(1.1)
        by_name = {c["name"]: c for c in r.client_list()}
        assert int(by_name["txn"]["idle"]) >= 1 and by_name["watcher"]["idle"] == "0"
    finally:
        r.rpush("client-list-q", "x")
        waiter.join(10)
        subscriber.close()
        blocked.close()
        in_multi.close()


def test_client_reply_off_and_skip_drop_replies(server):
    """CLIENT REPLY OFF/SKIP really drop replies (as redis-server, checked byte for byte): a client
    that sends them reads no reply for those commands, so answering anyway would hand it the reply
    of one command as the answer to a later one."""
    cases = [
        (b"CLIENT REPLY OFF\r\nSET a 1\r\nCLIENT REPLY ON\r\nGET a\r\n", b"+OK\r\n$1\r\n1\r\n"),
        (b"CLIENT REPLY SKIP\r\nPING a\r\nPING b\r\n", b"$1\r\nb\r\n"),
        (b"CLIENT REPLY SKIP\r\nCLIENT REPLY SKIP\r\nPING a\r\nPING b\r\n", b"$1\r\nb\r\n"),
        (b"CLIENT REPLY SKIP\r\nNOSUCH\r\nPING b\r\n", b"$1\r\nb\r\n"),
        (b"CLIENT REPLY OFF\r\nCLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nPING\r\n", b"+OK\r\n+PONG\r\n"),
        (b"CLIENT REPLY OFF\r\nRESET\r\nPING\r\n", b"+RESET\r\n+PONG\r\n"),
        (b"CLIENT REPLY FOO\r\nCLIENT NO-EVICT maybe\r\n", b"-ERR syntax error\r\n" * 2),
    ]
    for request, expected in cases:
        assert raw(server.port, request) == expected, request
    # a blocking command's late answer is dropped too
    assert quiet_read(server.port, b"CLIENT REPLY SKIP\r\nBLPOP nokey 0.05\r\nPING\r\n") == b"+PONG\r\n"


def test_client_kill_and_list_filters(server, r):
    victim = redis.Redis(port=server.port, socket_timeout=10, client_name="victim")
    other = redis.Redis(port=server.port, socket_timeout=10, client_name="other")
    subscriber = redis.Redis(port=server.port, socket_timeout=10).pubsub()
    try:
        victim_id, other_id = victim.client_id(), other.client_id()
        subscriber.subscribe("kill-news")
        subscriber.get_message(timeout=5)
        ids = lambda clients: {int(c["id"]) for c in clients}  # noqa: E731
        assert all(c["sub"] == "1" for c in r.client_list(_type="pubsub"))
        assert victim_id in ids(r.client_list(_type="normal"))
        # (redis-py before 6 sends client_list(client_id=[...]) as one argument: spell it out)
        assert ids(r.execute_command("CLIENT LIST", "ID", victim_id, other_id)) == {victim_id, other_id}
        with pytest.raises(redis.ResponseError, match="Unknown client type 'bogus'"):
            r.execute_command("CLIENT", "LIST", "TYPE", "bogus")
        with pytest.raises(redis.ResponseError, match="client-id should be greater than 0"):
            r.execute_command("CLIENT", "KILL", "ID", "0")
        assert r.client_kill_filter(_id=victim_id) == 1
        other_addr = next(c["addr"] for c in r.client_list() if int(c["id"]) == other_id)
        assert r.client_kill(other_addr) is True  # the old form: CLIENT KILL addr:port
        with pytest.raises(redis.ResponseError, match="No such client"):
            r.client_kill(other_addr)
        assert r.client_kill_filter(_type="pubsub") == 1
        deadline = time.monotonic() + 5
        while ids(r.client_list()) & {victim_id, other_id} and time.monotonic() < deadline:
            time.sleep(0.02)
        left = r.client_list()
        assert not ids(left) & {victim_id, other_id} and not any(c["sub"] != "0" for c in left)
        assert r.client_kill_filter(_id=r.client_id(), skipme=True) == 0  # SKIPME yes spares the caller
    finally:
        for c in (victim, other, subscriber):
            c.close()


@pytest.mark.parametrize("name", ["CLIENT", "COMMAND", "CONFIG", "PUBSUB", "SCRIPT", "XGROUP", "XINFO"])
def test_every_container_command_has_help(r, name):
    conn = r.connection_pool.get_connection()
    try:  # the raw reply: redis-py would parse COMMAND's as command descriptions
        conn.send_command(name, "HELP")
        lines = [x.decode() if isinstance(x, bytes) else x for x in conn.read_response()]
    finally:
        r.connection_pool.release(conn)
    assert lines[0].startswith(f"{name} <subcommand>") and lines[-2:] == ["HELP", "    Print this help."]
    with pytest.raises(redis.ResponseError, match=f"wrong number of arguments for '{name.lower()}\\|help'"):
        r.execute_command(name, "HELP", "extra")
    with pytest.raises(redis.ResponseError, match=f"Try {name} HELP"):
        r.execute_command(name, "NO-SUCH-SUBCOMMAND", "x", "y", "z")


def test_lua_scripts(r):
    script = r.register_script(
        "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) "
        "redis.call('RPUSH', KEYS[2], n) "
        "return {n, redis.call('LLEN', KEYS[2]), redis.call('GET', 'missing')}"
    )
    assert script(keys=["cnt", "log"], args=[5]) == [5, 1, None]
    assert script(keys=["cnt", "log"], args=[2]) == [7, 2, None]
    assert r.eval("return redis.status_reply('FINE')", 0) == b"FINE"
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.eval("return redis.call('HGET', KEYS[1], 'x')", 1, "cnt")
    assert r.eval("return redis.pcall('HGET', KEYS[1], 'x')['err'] ~= nil", 1, "cnt") == 1
    with pytest.raises(redis.ResponseError):
        r.eval("this is not lua", 0)
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha("0" * 40, 0)
    # Redis 7's typed script replies, spelled as redis-server 7 spells them to a RESP2 client.
    port = r.connection_pool.connection_kwargs["port"]
    for script, wire in (
        (b"return {double=1.5}", b"$3\r\n1.5\r\n"),
        (b"return {map={a=1}}", b"*2\r\n$1\r\na\r\n:1\r\n"),
        (b"return {set={x=true}}", b"*1\r\n$1\r\nx\r\n"),
    ):
        assert raw(port, b"*3\r\n$4\r\nEVAL\r\n$%d\r\n%b\r\n$1\r\n0\r\n" % (len(script), script)) == wire


def test_asyncio_client(server):
    async def main():
        client = aioredis.Redis(port=server.port)
        await client.delete("ak", "al")

        async def worker(i):
            for _ in range(20):
                await client.incr("ak")
            await client.rpush("al", i)

        await asyncio.gather(*(worker(i) for i in range(10)))
        assert await client.get("ak") == b"200"
        assert sorted(await client.lrange("al", 0, -1)) == sorted(str(i).encode() for i in range(10))
        async with client.pipeline(transaction=True) as p:
            p.set("ax", 1).incr("ax")
            assert await p.execute() == [True, 2]
        await client.aclose()

    asyncio.run(main())


def test_redis_cli(server):
    cli = require_tool("redis-cli")

    def run(*args, stdin=None):
        return subprocess.run(
            [cli, "-p", str(server.port), *args], input=stdin, capture_output=True, text=True, timeout=20
        )

    assert run("SET", "cli", "v").stdout.strip() == "OK"
    assert run("GET", "cli").stdout.strip() == "v"
    assert run("HSET", "clih", "a", "1", "b", "2").stdout.strip() == "2"
    assert run("--no-raw", "HGETALL", "clih").stdout.split("\n")[0].endswith('"a"')
    assert run("-3", "HGETALL", "clih").returncode == 0
    piped = run(stdin="SET p1 1\nINCR p1\nGET p1\n")
    assert piped.stdout.split() == ["OK", "2", "2"]
    assert "unknown command" in run("NOPE").stdout


def test_redis_benchmark(server):
    bench = require_tool("redis-benchmark")
    out = subprocess.run(
        [bench, "-p", str(server.port), "-t", "set,get,incr,lpush,hset", "-n", "300", "-c", "4", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout.replace("\r", "\n")
    for name in ("SET", "GET", "INCR", "LPUSH", "HSET"):
        assert f"{name}: " in text and "requests per second" in text
    out = subprocess.run(
        [bench, "-p", str(server.port), "-t", "set,lpush", "-n", "320", "-P", "16", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    r = redis.Redis(port=server.port)
    assert r.llen("mylist") >= 300
    r.close()


def test_server_and_in_process_users_share_writes(server, r):
    r.set("from-server", "1")
    r.hset("sh", "f", "v")
    with Structures(server.path) as st:
        assert st.get("from-server") == b"1"
        assert st.hgetall("sh") == {b"f": b"v"}
        st.zadd("from-proc", {"m": 2})
        st.rpush("from-proc-list", "a", "b")
    assert r.zscore("from-proc", "m") == 2.0
    assert r.lrange("from-proc-list", 0, -1) == [b"a", b"b"]


# ---------------------------------------------------------- malformed input


def test_protocol_errors_close_only_that_connection(server, r):
    cases = [
        b"*abc\r\n",
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$3\r\nGETXX",
        b"*99999999999\r\n",
        b"*1\r\n$999999999999\r\n",
        b"x" * (70 * 1024),
        b'SET "unbalanced\r\n',
    ]
    for data in cases:
        out = raw(server.port, data)
        assert out == b"" or out.startswith(b"-ERR"), (data[:40], out[:80])
    assert r.ping() is True


def test_fuzz_random_bytes(server, r):
    rng = random.Random(1234)
    alphabet = [
        b"*",
        b"$",
        b"\r\n",
        b"\r",
        b"\n",
        b"-1",
        b"0",
        b"3",
        b"12",
        b"GET",
        b"SET",
        b"PING",
        b" ",
        b"\x00",
        b"\xff",
        b"MULTI",
        b"EXEC",
        b"SUBSCRIBE",
        b"HELLO",
        b"3",
        b'"',
        b"'",
        b"QUIT",
    ]
    for _ in range(150):
        parts = [rng.choice(alphabet) for _ in range(rng.randint(1, 40))]
        if rng.random() < 0.3:
            parts.append(rng.randbytes(rng.randint(1, 200)))
        raw(server.port, b"".join(parts), timeout=2)
    threads = [threading.Thread(target=raw, args=(server.port, rng.randbytes(5000), 2)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.alive()
    assert r.set("after-fuzz", "ok") and r.get("after-fuzz") == b"ok"


def test_pipelined_and_fragmented_input(server):
    commands = b"".join(b"*3\r\n$3\r\nSET\r\n$2\r\nf%d\r\n$1\r\n%d\r\n" % (i % 10, i % 10) for i in range(50))
    commands += b"PING\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        for i in range(0, len(commands), 7):  # dribble it in 7-byte pieces
            s.sendall(commands[i : i + 7])
        expected = b"+OK\r\n" * 50 + b"+PONG\r\n"
        got = b""
        while len(got) < len(expected):
            chunk = s.recv(65536)
            assert chunk
            got += chunk
        assert got == expected


# ----------------------------------------------------------------- durability


def test_sigkill_keeps_every_acknowledged_write(tmp_path):
    path = str(tmp_path / "store")
    for run in range(2):
        srv = RunningServer(path).start()
        client = redis.Redis(port=srv.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
        acked: dict[str, int] = {}
        stop = threading.Event()

        def writer(client=client, acked=acked, stop=stop, run=run):
            i = 0
            try:
                while not stop.is_set():
                    with client.pipeline() as p:
                        p.set(f"r{run}:s{i}", i).hset(f"r{run}:h", f"f{i}", i).rpush(f"r{run}:l", i)
                        p.zadd(f"r{run}:z", {f"m{i}": i})
                        p.execute()
                    acked[f"r{run}"] = i
                    i += 1
            except redis.ConnectionError:
                pass

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.2 + random.random() * 0.3)
        srv.kill()
        stop.set()
        t.join(10)
        client.close()
        last = acked.get(f"r{run}", -1)
        assert last >= 0, "nothing was acknowledged before the kill"
        with DB(path) as db, Structures(db) as st:
            for i in range(last + 1):
                assert st.get(f"r{run}:s{i}") == str(i).encode()
            fields = st.hgetall(f"r{run}:h")
            assert all(fields[f"f{i}".encode()] == str(i).encode() for i in range(last + 1))
            assert st.hlen(f"r{run}:h") == len(fields)
            items = st.lrange(f"r{run}:l", 0, -1)
            assert items[: last + 1] == [str(i).encode() for i in range(last + 1)]
            assert st.llen(f"r{run}:l") == len(items)
            assert st.zcard(f"r{run}:z") == len(st.zrange(f"r{run}:z", 0, -1)) >= last + 1
        if run == 1:  # and a restarted server serves the same data
            srv = RunningServer(path).start()
            client = redis.Redis(port=srv.port)
            assert client.get(f"r{run}:s{last}") == str(last).encode()
            assert client.hlen(f"r{run}:h") >= last + 1
            client.close()
            srv.stop()


# ---------------------------------------------------------- auth and sockets


def test_requirepass_and_unixsocket(tmp_path):
    sock = str(tmp_path / "kvb.sock")
    srv = RunningServer(str(tmp_path / "store"), requirepass="s3cret", unixsocket=sock).start()
    try:
        out = raw(srv.port, b"GET x\r\nPING\r\nHELLO 3\r\n")
        assert out.count(b"-NOAUTH") == 3
        no_retry = Retry(NoBackoff(), 0)
        anon = redis.Redis(port=srv.port, retry=no_retry)
        with pytest.raises(redis.AuthenticationError):
            anon.get("x")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=srv.port, password="wrong", retry=no_retry).get("x")
        good = redis.Redis(port=srv.port, password="s3cret")
        assert good.set("x", "1") and good.get("x") == b"1"
        r3 = redis.Redis(port=srv.port, password="s3cret", protocol=3)
        assert r3.get("x") == b"1"
        deadline = time.monotonic() + 5
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        unix = redis.Redis(unix_socket_path=sock, password="s3cret")
        assert unix.get("x") == b"1"
        # Before AUTH, a stranger cannot make the server hold a large request (Redis's limits).
        many = b"*11\r\n" + b"$4\r\nPING\r\n" * 11
        assert raw(srv.port, many) == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
        big = b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"
        assert raw(srv.port, big) == b"-ERR Protocol error: unauthenticated bulk length\r\n"
        big_value = b"v" * 100_000  # once authenticated, the usual limits apply
        out = raw(
            srv.port, b"AUTH s3cret\r\n*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$100000\r\n" + big_value + b"\r\n"
        )
        assert out == b"+OK\r\n+OK\r\n" and good.strlen("big") == 100_000
        # A long pipeline before AUTH: each request is answered, in order, and AUTH lifts the limits.
        pipeline = b"PING\r\n" * 3000 + b"AUTH s3cret\r\nPING\r\nGET x\r\n"
        out = raw(srv.port, pipeline, timeout=30)
        assert out == b"-NOAUTH Authentication required.\r\n" * 3000 + b"+OK\r\n+PONG\r\n$1\r\n1\r\n"
        for c in (anon, good, r3, unix):
            c.close()
    finally:
        assert srv.stop() == 0
    assert not os.path.exists(sock)


def test_sighup_does_not_stop_the_server(tmp_path):
    """As redis-server: a closed terminal or a reload signal leaves the server running."""
    srv = RunningServer(str(tmp_path / "store")).start()
    try:
        client = redis.Redis(port=srv.port, socket_timeout=10)
        client.set("k", "v")
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert srv.alive() and client.get("k") == b"v"
        client.close()
    finally:
        assert srv.stop() == 0  # and SIGTERM still stops it cleanly


def test_bind_address_defaults_to_loopback(server):
    r = redis.Redis(port=server.port)
    assert r.config_get("bind") == {"bind": "127.0.0.1"}
    r.close()


def test_bad_startup_options_fail_with_a_message(server, tmp_path):
    busy = subprocess.run(
        [
            sys.executable,
            "-m",
            "kv_backend",
            "serve",
            "--dir",
            str(tmp_path / "s"),
            "--port",
            str(server.port),
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert busy.returncode == 2 and "cannot listen" in busy.stderr
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    bad = subprocess.run(
        [sys.executable, "-m", "kv_backend", "serve", "--dir", str(not_a_dir), "--port", "0"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("kvb: ")


def test_two_servers_and_an_in_process_user_share_one_directory(tmp_path):
    path = str(tmp_path / "store")
    first = RunningServer(path).start()
    second = RunningServer(path).start()
    try:
        client_code = """
            import sys
            import redis
            r = redis.Redis(port=int(sys.argv[1]))
            for i in range(50):
                r.incr("n")
                r.hincrby("h", "c", 2)
                r.rpush("l", sys.argv[2])
                with r.pipeline() as p:
                    p.zincrby("z", 1, "m").sadd("s", f"{sys.argv[2]}:{i % 5}").execute()
        """
        local_code = """
            import sys
            from kv_backend.structures import Structures
            with Structures(sys.argv[1]) as s:
                for i in range(50):
                    s.incr("n")
                    s.hincrby("h", "c", 2)
                    s.rpush("l", "local")
                    s.zincrby("z", 1, "m")
                    s.sadd("s", f"local:{i % 5}")
        """
        procs = [
            spawn_python(client_code, str(first.port), "a"),
            spawn_python(client_code, str(second.port), "b"),
            spawn_python(client_code, str(first.port), "c"),
            spawn_python(local_code, path),
        ]
        assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
        for srv in (first, second):
            r = redis.Redis(port=srv.port)
            assert r.get("n") == b"200" and r.hget("h", "c") == b"400"
            assert r.llen("l") == 200 and r.zscore("z", "m") == 200.0 and r.scard("s") == 20
            r.close()
    finally:
        first.stop()
        second.stop()


def test_write_lock_is_taken_only_for_commands_that_may_write():
    """A flush of read-only commands leaves the store's write lock to other processes."""
    from kv_backend.server.resp import _may_write

    assert not _may_write([[b"PING"], [b"get", b"k"], [b"GET", b"k"], [b"HGetAll", b"h"], [b"ttl", b"k"]])
    for name in (b"SET", b"set", b"SeT", b"LPUSH", b"incr", b"EXEC", b"multi", b"EVAL", b"nosuchcommand"):
        assert _may_write([[b"GET", b"k"], [name, b"k"]]), name


def test_streams_with_redis_py(r, r3):
    first = r.xadd("events", {"kind": "signup", "user": "ada"})
    second = r.xadd("events", {"kind": "login"}, maxlen=100, approximate=True)
    assert tuple(map(int, first.split(b"-"))) < tuple(map(int, second.split(b"-")))
    assert r.xlen("events") == 2
    entries = [(first, {b"kind": b"signup", b"user": b"ada"}), (second, {b"kind": b"login"})]
    assert r.xrange("events") == entries
    assert r.xrevrange("events", count=1) == [(second, {b"kind": b"login"})]
    assert r3.xrange("events", min=second) == [(second, {b"kind": b"login"})]
    for i in range(20):
        r.xadd("events", {"i": i}, maxlen=5, approximate=True)
    assert r.xlen("events") == 5  # "~" trims exactly here
    assert r.xtrim("events", minid="0-1") == 0
    assert r.type("events") == b"stream"
    assert r.scan(0, _type="stream")[1] == [b"events"]
    with r.pipeline() as p:
        p.watch("events")
        r.xadd("events", {"by": "another client"})
        p.multi()
        p.xlen("events")
        with pytest.raises(redis.WatchError):
            p.execute()


def test_watch_counts_consumer_group_changes(r, server):
    """Unlike Redis 7, which ignores them for WATCH, consumer-group changes (XGROUP, XACK, XCLAIM,
    XAUTOCLAIM) and XSETID count as changes of the stream (docs/redis.md, WATCH); one that changes
    nothing (XGROUP DESTROY of a missing group, XSETID to the stream's last ID) does not."""
    other = redis.Redis(port=server.port)
    r.delete("xs")
    r.xadd("xs", {"f": "v"}, id="1-0")
    r.xgroup_create("xs", "g", id="0")
    r.xreadgroup("g", "c", {"xs": ">"})
    for cmd, changes in [
        (["XGROUP", "CREATECONSUMER", "xs", "g", "d"], True),
        (["XGROUP", "SETID", "xs", "g", "0"], True),
        (["XCLAIM", "xs", "g", "d", "0", "1-0"], True),
        (["XAUTOCLAIM", "xs", "g", "c", "0", "0"], True),
        (["XACK", "xs", "g", "1-0"], True),
        (["XSETID", "xs", "2-0"], True),
        (["XSETID", "xs", "2-0"], False),  # the ID it has: no change
        (["XGROUP", "DESTROY", "xs", "nogroup"], False),
        (["XGROUP", "DESTROY", "xs", "g"], True),
    ]:
        with r.pipeline() as p:
            p.watch("xs")
            other.execute_command(*cmd)
            p.multi()
            p.exists("xs")
            if changes:
                with pytest.raises(redis.WatchError):
                    p.execute()
            else:
                assert p.execute() == [1]
    other.close()


def test_key_names_too_long_for_an_engine_key_get_an_error_naming_the_limits(r):
    """docs/redis.md, Protocol limits: each type's longest name (with one field or member) is
    stored; one byte more was answered with the engine's 'keys must be 1 to 65536 bytes long, got
    65537 bytes', counting a key of its own for a name of 65535 bytes."""
    fits = [  # (command, the index of its argument that makes it one byte too long)
        (("SET", b"k" * 65534, "v"), 1),
        (("HSET", "h", b"f" * (65530 - 1), "v"), 2),
        (("SADD", "s", b"m" * (65530 - 1)), 2),
        (("ZADD", "z", 1, b"m" * (65522 - 1)), 3),
        (("RPUSH", b"l" * 65522, "x"), 1),
        (("XADD", b"x" * 65514, "*", "f", "v"), 1),
    ]
    for cmd, at in fits:
        r.execute_command(*cmd)
        longer = list(cmd)
        longer[at] += b"+"
        with pytest.raises(
            redis.ResponseError, match=r"^key name too long: kvb holds a string's name of up to 65534"
        ):
            r.execute_command(*longer)
    assert r.dbsize() == len(fits)
