"""Redis 7 functions in ``kvb serve`` (FUNCTION LOAD/LIST/DELETE/FLUSH/STATS/KILL, FCALL, FCALL_RO)
against a real redis-server, replies compared as wire bytes (RESP2 and RESP3); then persistence
across a restart, FLUSHALL leaving functions, the reserved record hidden from KEYS/SCAN/DBSIZE,
and a second ``kvb serve`` on the same directory seeing another's libraries."""

from __future__ import annotations

import re

import pytest
import redis
from resp_helpers import RunningServer
from test_resp_geo import same

pytest.importorskip("lupa")

LIB = (
    "#!lua name=mylib\n"
    "redis.register_function('setit', function(keys, args) return redis.call('set', keys[1], args[1]) end)\n"
    "redis.register_function{function_name='getit', callback=function(keys, args)"
    " return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}\n"
    "redis.register_function{function_name='badro', callback=function(keys, args)"
    " return redis.call('set', keys[1], 'x') end, flags={'no-writes'}}\n"
    "redis.register_function('oops', function(keys, args) error('boom') end)\n"
    "redis.register_function('echo', function(keys, args) return {keys, args, {ok='st'}, {double=1.5}} end)\n"
    "local function helper() return string.len('abc') end\n"
    "redis.register_function('noglobals', function(keys, args) return {helper(), type(KEYS)} end)"
)

ONE = (
    "#!lua name=one\nredis.register_function{function_name='f', callback=function() return 1 end,"
    " flags={'no-writes', 'allow-stale'}, description='d'}"
)


@pytest.fixture
def raw(raw):
    """The shared raw (redis-server, kvb serve) pair, after FUNCTION FLUSH on both too."""
    for c in raw:
        assert c.call("FUNCTION", "FLUSH") == b"+OK\r\n"
    return raw


def test_load_and_fcall_as_redis(raw):
    same(raw, "FUNCTION", "LOAD", LIB)
    same(raw, "FCALL", "setit", "1", "k", "v")
    same(raw, "FCALL", "getit", "1", "k")
    same(raw, "FCALL_RO", "getit", "1", "k")
    same(raw, "FCALL_RO", "setit", "1", "k", "v")  # no no-writes flag
    same(raw, "FCALL", "badro", "1", "k")  # a no-writes function calling SET
    same(raw, "FCALL_RO", "badro", "1", "k")
    same(raw, "FCALL", "oops", "0")
    same(raw, "FCALL", "echo", "2", "a", "b", "c")
    same(raw, "FCALL", "noglobals", "0")
    for bad in (["nope", "0"], ["nope", "x"], ["setit", "x"], ["setit", "-1"], ["setit", "3", "a"]):
        same(raw, "FCALL", *bad)
    same(raw, "FCALL")
    same(raw, "FCALL", "setit")
    same(raw, "EVAL", "return redis.call('fcall', 'setit', 1, 'k', 'v')", "0")
    same(raw, "FUNCTION", "LOAD", LIB)  # exists
    same(raw, "FUNCTION", "LOAD", "REPLACE", LIB)
    same(raw, "FUNCTION", "LOAD", "#!lua name=other\nredis.register_function('setit', function() end)")
    same(raw, "FUNCTION", "LOAD", "FOO", LIB)
    same(raw, "FUNCTION", "STATS")
    same(raw, "FUNCTION", "KILL")
    same(raw, "FUNCTION", "LIST", "LIBRARYNAME", "zz")
    for bad in (["LIBRARYNAME"], ["foo"], ["WITHCODE", "WITHCODE"], ["LIBRARYNAME", "a", "LIBRARYNAME", "b"]):
        same(raw, "FUNCTION", "LIST", *bad)
    same(raw, "FUNCTION", "DELETE", "nolib")
    same(raw, "FUNCTION", "DELETE", "mylib")
    same(raw, "FCALL", "setit", "1", "k", "v")
    # (Redis lists libraries and functions in hash-table order, kvb by name: one of each here)
    same(raw, "FUNCTION", "LOAD", ONE)
    for opts in ([], ["WITHCODE"], ["LIBRARYNAME", "o*"], ["LIBRARYNAME", "o?e", "WITHCODE"], ["withcode"]):
        same(raw, "FUNCTION", "LIST", *opts)
    same(raw, "FUNCTION", "STATS")
    same(raw, "FUNCTION", "DELETE")
    same(raw, "FUNCTION", "FLUSH", "foo")
    same(raw, "FUNCTION", "FLUSH", "a", "b")
    same(raw, "FUNCTION", "FLUSH", "ASYNC")
    same(raw, "FUNCTION", "FOO")
    same(raw, "FUNCTION")


@pytest.mark.parametrize(
    "code",
    [
        "redis.register_function('f', function() return 1 end)",
        "#!js name=x\nredis.register_function('f', function() return 1 end)",
        "#!lua\nredis.register_function('f', function() return 1 end)",
        "#!lua name=\nx",
        "#!lua name=a-b\nx",
        "#!lua name=a foo=bar\nx",
        "#!lua name=a name=b\nx",
        "#!lua name=a",
        "#!\n",
        "#! lua name=z\n",
        "#!lua name=a\n",
        "#!lua name=a\nreturn 1",
        "#!lua name=a\nredis.register_function('f 1', function() end)",
        "#!lua name=a\nredis.register_function('g', 'x')",
        "#!lua name=a\nredis.register_function('g')",
        "#!lua name=a\nredis.register_function()",
        "#!lua name=a\nredis.register_function('g', function() end, 3)",
        "#!lua name=a\nredis.register_function{function_name='g', callback=function() end, flags={'bad'}}",
        "#!lua name=a\nredis.register_function{function_name='g', callback=function() end,"
        " flags='no-writes'}",
        "#!lua name=a\nredis.register_function{function_name='g', callback=function() end, foo=1}",
        "#!lua name=a\nredis.register_function{function_name='g'}",
        "#!lua name=a\nredis.register_function{callback=function() end}",
        "#!lua name=a\nredis.register_function('h', function() end)\n"
        "redis.register_function('h', function() end)",
        "#!lua name=a\nredis.call('set','a','b')",
        "#!lua name=a\nredis.register_function('h', function() end)\nerror('boom')",
        "#!lua name=a\nredis.register_function('h', function() end",
        "#!lua name=a\nx = 1",
        "#!lua name=a\nlocal t = {redis.sha1hex}",
        "#!LUA name=a\nlocal v = {redis.log, redis.LOG_WARNING, redis.REDIS_VERSION}\n"
        "redis.register_function{function_name='g', callback=function() return 1 end,"
        " flags={'no-writes', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'},"
        " description=5}",
    ],
)
def test_load_errors_as_redis(raw, code):
    same(raw, "FUNCTION", "LOAD", code)
    same(raw, "FUNCTION", "LIST")


def test_reserved_record_persistence_and_flushall(tmp_path):
    """Functions survive a restart and FLUSHALL, are hidden from KEYS/SCAN/DBSIZE, and a second
    server on the same directory sees (and deletes) the first one's libraries."""
    store = str(tmp_path / "store")
    first = RunningServer(store).start()
    second = None
    try:
        a = redis.Redis(port=first.port)
        assert a.function_load(LIB) == b"mylib"
        assert a.dbsize() == 0 and a.keys() == [] and a.scan() == (0, [])
        a.flushall()
        assert a.fcall("setit", 1, "k", "v") == b"OK"
        second = RunningServer(store).start()
        b = redis.Redis(port=second.port)
        assert b.fcall_ro("getit", 1, "k") == b"v"
        b.function_load("#!lua name=two\nredis.register_function('two', function() return 2 end)")
        assert a.fcall("two", 0) == 2
        assert a.function_delete("two")
        with pytest.raises(redis.ResponseError, match="Function not found"):
            b.fcall("two", 0)
        a.close()
        b.close()
        first.stop()
        first = RunningServer(store).start()
        a = redis.Redis(port=first.port)
        assert [lib[b"library_name"] for lib in _libs(a)] == [b"mylib"]
        a.function_flush()
        assert _libs(a) == []
        a.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def _libs(client: redis.Redis) -> list[dict]:
    out = []
    for entry in client.function_list():
        it = iter(entry)
        out.append(dict(zip(it, it, strict=True)))
    return out


def test_watch_and_command_info(ports):
    _, port = ports
    with redis.Redis(port=port) as a, redis.Redis(port=port) as b:
        a.function_flush()
        a.function_load(LIB)
        with a.pipeline() as p:
            p.watch("k")
            b.fcall("setit", 1, "k", "new")
            p.multi()
            p.ping()
            with pytest.raises(redis.WatchError):
                p.execute()
        info = a.execute_command("COMMAND", "INFO", "fcall", "fcall_ro", "function")
        assert all(row is not None for row in info)
        assert re.search(rb"noscript", repr(info).encode())
