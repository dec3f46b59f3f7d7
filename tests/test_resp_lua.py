"""kvb serve's Lua scripting compared with redis-server 7.0: the protection of globals and library
tables (a script may not create, change or read undefined globals, nor change ``redis``,
``string``...), so that no script leaves state behind for later scripts."""

from __future__ import annotations

import pytest
from resp_helpers import Raw

pytest.importorskip("lupa")


@pytest.fixture(scope="module")
def servers(ports):
    """RESP2 connections to (redis-server, kvb serve): conftest.py's ``ports``."""
    conns = tuple(Raw(p, 2) for p in ports)
    yield conns
    for c in conns:
        c.close()


def same(servers, *words: str) -> bytes:
    theirs, ours = (s.call(*words) for s in servers)
    assert ours == theirs, words
    return ours


GLOBALS = [
    # creating, changing or reading an undefined global
    "x = 5",
    "return x",
    "function f() return 1 end return f()",
    "KEYS = 1",
    "ARGV = {}",
    "_G.x = 1",
    "return _G.x",
    "rawset(_G, 'x', 5)",
    "setmetatable(_G, nil)",
    "getmetatable(_G).__index = nil",
    "loadstring('x = 5')()",
    "return loadstring('return y')()",
    "local co = coroutine.wrap(function() y = 1 end) co()",
    "return pcall(function() x = 1 end)",
    # the library tables are read-only
    "redis = nil",
    "redis.call = nil",
    "redis.foo = 1",
    "string.foo = 1",
    "string.len = nil",
    "table.insert = nil",
    "math.pi = 3",
    "coroutine.foo = 1",
    "rawset(string, 'x', 1)",
    "setmetatable(string, {})",
    "getmetatable('').__index = nil",
    # what scripts can still do
    "local x = 5 return x",
    "local function f() return 1 end return f()",
    "KEYS[1] = 'k' return KEYS[1]",
    "local t = {} rawset(t, 'a', 1) return rawget(t, 'a')",
    "local t = setmetatable({}, {__index = function() return 7 end}) return t.x",
    "return ('abc'):upper()",
    "return string.len('abc')",
    "return loadstring('return 1')()",
    "local n = 0 for _ in pairs(string) do n = n + 1 end return n",
    "return rawget(_G, 'string') ~= nil",
    "return tostring(rawget(_G, 'x'))",
    "return type(getmetatable(_G))",
    "return tostring(getmetatable(string))",
    "local a = pairs(nil)",
    "local a = rawget(1)",
    # globals Redis 7.0 does not give scripts
    "return type(print)",
    "return type(setfenv)",
    "return type(getfenv)",
    "return type(debug)",
    "return type(require)",
    "return type(package)",
    "return type(module)",
    "return type(newproxy)",
]


@pytest.mark.parametrize("script", GLOBALS)
def test_globals_are_protected_as_in_redis(servers, script):
    same(servers, "EVAL", script, "0")


def test_a_script_cannot_break_later_scripts(servers):
    """Before, ``redis = nil`` (or ``x = 5``) changed the interpreter every later script runs in:
    redis.call was gone for every client until the server restarted."""
    for script in ("redis = nil", "x = 5", "string.len = nil", "rawset(string, 'x', 1)"):
        same(servers, "EVAL", script, "0")
    assert same(servers, "EVAL", "return redis.call('set', KEYS[1], string.len(ARGV[1]))", "1", "k", "abc")
    assert same(servers, "EVAL", "return redis.call('get', 'k')", "0") == b"$1\r\n3\r\n"
    same(servers, "EVAL", "return x", "0")
    same(servers, "EVAL", "return string.x", "0")
    same(servers, "EVAL", "return {pcall(redis.call, 'nosuch')}", "0")
    same(servers, "EVAL", "return redis.error_reply('no')", "0")


def test_functions_globals_are_protected_as_in_redis(servers):
    library = "\n".join(
        [
            "#!lua name=lualib",
            "redis.register_function('g', function() x = 1 end)",
            "redis.register_function('h', function() return y end)",
            "redis.register_function('s', function() string.foo = 1 end)",
            "redis.register_function('k', function() return type(KEYS) end)",
            "redis.register_function('l', function() return loadstring('z = 1')() end)",
            "redis.register_function('t', function() return type(setfenv) end)",
        ]
    )
    same(servers, "FUNCTION", "LOAD", "REPLACE", library)
    for name in "ghsklt":
        same(servers, "FCALL", name, "0")
    same(servers, "EVAL", "return string.foo", "0")
    same(servers, "FUNCTION", "DELETE", "lualib")


@pytest.mark.parametrize(
    "script",
    [
        "redis.setresp(2) return 1",
        "redis.setresp('2')",
        "redis.setresp(2.5)",
        "redis.setresp()",
        "redis.setresp(2, 3)",
        "redis.setresp(4)",
        "redis.setresp(1)",
        "redis.setresp(-2.5)",
        "redis.setresp('x')",
        "redis.setresp(nil)",
        "redis.setresp({})",
        "local ok, e = pcall(redis.setresp, 7) return e",
    ],
)
def test_setresp_checks_its_argument_as_redis(servers, script):
    """Before, any argument but 2 raised 'kvb:67: this server runs scripts with RESP2 only' (a
    position in kvb's prelude); now Redis's argument errors."""
    same(servers, "EVAL", script, "0")


def test_setresp_3_is_taken(servers):
    """redis.setresp(3) was refused; it is taken, as in Redis (test_resp_fixes8 checks the RESP3
    conversions)."""
    same(servers, "EVAL", "redis.setresp(3)", "0")
    same(servers, "EVAL", "redis.setresp(3.5) return redis.call('get', 'nokey')", "0")
