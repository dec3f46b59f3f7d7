"""The ``cjson`` and ``bit`` libraries of kvb serve's Lua scripts compared with redis-server 7.0:
the same calls give byte-identical replies and error texts (seeded random values and edge cases)."""

from __future__ import annotations

import json
import random
import struct

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


def same(servers, *words: str | bytes) -> bytes:
    theirs, ours = (s.call(*words) for s in servers)
    assert ours == theirs, words
    return ours


# a script's view of one call: its result (tables re-encoded) or its error text, raised or caught
PROBE = """
local f = {F}
local ok, r = pcall(f, unpack(ARGV))
if not ok then return 'E:' .. tostring(r) end
if type(r) == 'table' then return 'T:' .. cjson.encode(r) end
return type(r) .. ':' .. tostring(r)
"""


def probe(servers, f: str, *args: str | bytes) -> bytes:
    return same(servers, "EVAL", PROBE.replace("{F}", f), "0", *args)


DECODE_CASES = [
    "",
    " ",
    "1",
    "-1",
    "01",
    "-01",
    "1.",
    ".5",
    "+1",
    "0x10",
    "1e5",
    "1E+2",
    "1e",
    "-",
    "--1",
    "NaN",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "-Infinity",
    "INF",
    "1 2",
    "[1,2,]",
    '{"a":1,}',
    '{"a" 1}',
    "{1:2}",
    "[",
    "]",
    "{",
    "tru",
    "true",
    "nul",
    "null",
    "false",
    '"abc',
    '"a\\x"',
    '"\\u00e9"',
    '"\\u12"',
    '"\\ud83d\\ude00"',
    '"\\ud83d"',
    '"\\ude00"',
    '"\\ud83dx"',
    '"\\u0000"',
    '"\\/"',
    '"\\b\\f\\n\\r\\t"',
    "[1,[2,[3]]]",
    '{"a":{"b":[]}}',
    "  [ 1 , 2 ]  ",
    "@",
    "1x",
    "123abc",
    '"a"b',
    "0.1e-400",
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "9007199254740993",
    "9223372036854775807",
    "truex",
    "[true,false,null]",
    '{"":1}',
    "-0",
    "00",
    "1.5.5",
    "0x",
    "nan(12)",
    "nanx",
    "0x1p4",
    "0x1.8",
    "-0x10",
    "+inf",
    "infin",
    "1e+",
    "-.5",
    '{"a":1,"a":2}',
    "[1,2,3",
    '{"a":1',
    '{"a":',
    '{"a"',
    "[[[",
    '"\\',
    '"\\u',
    "\f1",
    "\v1",
    "\r\n\t 1",
    "1\x00x",
    '"a\x00b"',
    '"a\tb\x01"',
    '"\\uD83D\\u0041"',
    '"\\uffff"',
    '"\\u07ff"',
    "Null",
    "[1,null,3]",
    '{"a":[1,{"b":null}],"c":"d"}',
]


@pytest.mark.parametrize("text", DECODE_CASES)
def test_decode_edge_cases(servers, text):
    probe(servers, "cjson.decode", text)


def test_decode_with_invalid_numbers_refused(servers):
    script = """
    cjson.decode_invalid_numbers(false)
    local out = {}
    for i, text in ipairs(ARGV) do
      local ok, r = pcall(cjson.decode, text)
      out[i] = tostring(r)
    end
    cjson.decode_invalid_numbers(true)
    return out
    """
    texts = [
        "01",
        "-01",
        "+1",
        "0x10",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "1.",
        "00",
        "0",
        "-0",
        "1e5",
        "-.5",
        "0x",
        "-0x1",
        "-nan",
        "-00",
        "0e",
        "-i",
        "n",
        "+",
    ]
    same(servers, "EVAL", script, "0", *texts)


def test_decode_arguments_and_depth(servers):
    for body in [
        "return cjson.decode()",
        "return cjson.decode(1, 2)",
        "return cjson.decode({})",
        "return cjson.decode(nil)",
        "return cjson.decode(true)",
        "return cjson.decode(12)",
        "local x = cjson.decode('[1,') return x",
        "return cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))",
        "return #cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000))",
        "return cjson.decode(string.rep('{\"a\":', 1001))",
        "return tostring(cjson.decode('null'))",
        "return tostring(cjson.decode('null') == cjson.null)",
    ]:
        same(servers, "EVAL", body, "0")


def test_encode_edge_cases(servers):
    for body in [
        "return cjson.encode({1,2,{a=1}})",
        "return cjson.encode(1e15)",
        "return cjson.encode(2^53)",
        "return cjson.encode(2^63)",
        "return cjson.encode(-0)",
        "return cjson.encode(0.1)",
        "return cjson.encode(1e-300)",
        "return cjson.encode({[1]=1,[3]=3})",
        "return cjson.encode({[1]=1,[30]=3})",
        "return cjson.encode({[1]=1,[10]=1})",
        "return cjson.encode({[1]=1,[11]=1})",
        "return cjson.encode({nil,nil,nil,4})",
        "return cjson.encode({[0]=1})",
        "return cjson.encode({[1.5]=1})",
        "return cjson.encode({[-1]=1})",
        "return cjson.encode({[2^31]=1})",
        "return cjson.encode({[2^53]=1})",
        "return cjson.encode({[true]=1})",
        "return cjson.encode({[{}]=1})",
        "return cjson.encode({})",
        "return cjson.encode({{}, {{}}})",
        "return cjson.encode(cjson.null)",
        "return cjson.encode({cjson.null, false, true})",
        "return cjson.encode('a/b\"\\\\')",
        "return cjson.encode(0/0)",
        "return cjson.encode(1/0)",
        "return cjson.encode({[1/0]=1})",
        "return cjson.encode(string.format)",
        "return cjson.encode(coroutine.create(function() end))",
        "return cjson.encode({[1]=1, [2]=2, x=1})",
        "return cjson.encode({[1]=1, [2]=2, [3]=3, [4]=4, [5]=5, [6]=6, [13]=1})",
        "return cjson.encode({a={b={c={}}}})",
        "return cjson.encode(true)",
        "return cjson.encode(nil)",
        "return cjson.encode()",
        "return cjson.encode(1, 2)",
        "local t = {} local c = t for i=1,1000 do c[1] = {} c = c[1] end return cjson.encode(t)",
        "local t = {} local c = t for i=1,999 do c[1] = {} c = c[1] end return #cjson.encode(t)",
        "local t = {} t[1] = t return cjson.encode(t)",
        "local t = {} local c = t for i=1,1000 do c.a = {} c = c.a end return cjson.encode(t)",
        "local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end return cjson.encode(table.concat(t))",
        "return cjson.encode(ARGV)",
        "return cjson._NAME .. cjson._VERSION",
        "return tostring(cjson.null)",
        "local c = cjson.new() c.encode_number_precision(3)"
        " return {c.encode(math.pi), cjson.encode(math.pi), c.decode('[1]')[1],"
        " tostring(c.null == cjson.null)}",
    ]:
        same(servers, "EVAL", body, "0", "a", "b\x00c")


def test_settings(servers):
    """The settings functions: defaults, argument checks, effects; each script restores them."""
    restore = (
        " cjson.encode_sparse_array(false, 2, 10) cjson.encode_invalid_numbers(false)"
        " cjson.decode_invalid_numbers(true) cjson.encode_keep_buffer(true)"
        " cjson.encode_number_precision(14) cjson.encode_max_depth(1000) cjson.decode_max_depth(1000)"
    )
    for body in [
        "return cjson.encode_number_precision()",
        "return {cjson.encode_sparse_array()}",
        "return cjson.encode_invalid_numbers()",
        "return tostring(cjson.decode_invalid_numbers())",
        "return cjson.encode_keep_buffer()",
        "return cjson.encode_max_depth()",
        "return cjson.decode_max_depth()",
        "return cjson.encode_number_precision(0)",
        "return cjson.encode_number_precision(15)",
        "return cjson.encode_number_precision(-0.5)",
        "return cjson.encode_number_precision('x')",
        "return cjson.encode_number_precision({})",
        "return cjson.encode_number_precision(1, 2)",
        "return {cjson.encode_sparse_array('x')}",
        "return {cjson.encode_sparse_array(1)}",
        "return {cjson.encode_sparse_array(nil, -1)}",
        "return {cjson.encode_sparse_array(nil, nil, -1)}",
        "return {cjson.encode_sparse_array(nil, 'x')}",
        "return {cjson.encode_sparse_array(nil, nil, {})}",
        "return {cjson.encode_sparse_array(nil, nil, '7')}",
        "return {cjson.encode_sparse_array(nil, 2^40)}",
        "return {cjson.encode_sparse_array(nil, 0/0)}",
        "return {cjson.encode_sparse_array(true, 2, 10, 1)}",
        "return cjson.encode_max_depth(0)",
        "return cjson.encode_max_depth(2^31)",
        "return cjson.decode_max_depth(3, 2)",
        "return cjson.encode_keep_buffer('x')",
        "return cjson.encode_keep_buffer(1)",
        "return cjson.encode_keep_buffer({})",
        "return cjson.encode_invalid_numbers('x')",
        "return cjson.encode_invalid_numbers(1)",
        "local a = cjson.encode_number_precision('5') local b = cjson.encode_number_precision(5.7)"
        " local s = cjson.encode({math.pi, [2] = 1/3}) return {a, b, s}",
        "return {cjson.encode_sparse_array(true, 0, 0), cjson.encode({[1]=1,[30]=3})}",
        "local a, b, c = cjson.encode_sparse_array(nil, 1.5) return {tostring(a), b, c}",
        "cjson.encode_sparse_array(true) return cjson.encode({[1]=1,[30]=3})",
        "cjson.encode_sparse_array(false, 0) return cjson.encode({[20]=1})",
        "cjson.encode_invalid_numbers(true) return cjson.encode({1/0, -1/0, 0/0, -(0/0), [5] = 1})",
        "cjson.encode_invalid_numbers('null') return cjson.encode({1/0, -1/0, 0/0})",
        "return cjson.encode_invalid_numbers('null')",
        "return cjson.encode_invalid_numbers('on')",
        "return cjson.encode_keep_buffer('off')",
        "cjson.encode_invalid_numbers(true) return cjson.encode({[1/0]=1})",
        "cjson.encode_max_depth(2) return cjson.encode({{{}}})",
        "cjson.encode_max_depth(2) return cjson.encode({{}})",
        "cjson.decode_max_depth(2) return cjson.decode('[[[]]]')",
        "cjson.decode_max_depth(2) return cjson.encode(cjson.decode('[[1]]'))",
    ]:
        same(
            servers,
            "EVAL",
            f"local ok, r = pcall(function() {body} end){restore} if ok then return r end error(r, 0)",
            "0",
        )
        same(servers, "EVAL", body + restore, "0")
    # a setting lasts, as in Redis, for later scripts
    same(servers, "EVAL", "return cjson.encode_number_precision(3)", "0")
    same(servers, "EVAL", "return cjson.encode(math.pi)", "0")
    same(servers, "EVAL", "return cjson.encode_number_precision(14)", "0")


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([0, 1, -1, 2**31, 2**53, 2**53 + 1, 2**63, -(2**63), 10**15, 123456789])
    if kind == 1:
        return struct.unpack("<d", rng.randbytes(8))[0]
    if kind == 2:
        return rng.uniform(-1e6, 1e6)
    if kind == 3:
        chars = ["a", '"', "\\", "/", "\x00", "\x1f", "\x7f", "é", "\u20ac", "\U0001f600", " "]
        return "".join(rng.choice(chars) for _ in range(rng.randrange(6)))
    if kind == 4:
        return rng.choice([True, False, None])
    if kind == 5:
        return rng.randrange(-1000, 1000) / 8
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {f"k{rng.randrange(20)}": random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def test_random_round_trips(servers):
    """Random JSON documents: decoded, re-encoded, and values' types and texts as Redis gives them."""
    rng = random.Random(7)
    script = """
    local out = {}
    for i, text in ipairs(ARGV) do
      local ok, v = pcall(cjson.decode, text)
      if ok then
        local ok2, e = pcall(cjson.encode, v)
        out[i] = tostring(e)
      else
        out[i] = 'E:' .. v
      end
    end
    return out
    """
    docs = []
    for _ in range(300):
        value = random_value(rng)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5, allow_nan=True)
        if rng.random() < 0.1:  # damage some
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice(["", "x", ",", "]", "}", '"', "\\", "e", "-"]) + text[i + 1 :]
        docs.append(text.encode())
    same(servers, "EVAL", script, "0", *docs)


def test_random_numbers_encoded(servers):
    rng = random.Random(11)
    values = []
    for _ in range(300):
        bits = rng.randbytes(8)
        values.append(repr(struct.unpack("<d", bits)[0]))
        values.append(str(rng.randrange(-(2**64), 2**64)))
        values.append(str(rng.uniform(-1e-5, 1e-5)))
    script = """
    local out = {}
    for i, v in ipairs(ARGV) do
      local ok, e = pcall(cjson.encode, {tonumber(v), [tostring(i)] = tonumber(v)})
      out[i] = e
    end
    return out
    """
    same(servers, "EVAL", script, "0", *values)


# ---------------------------------------------------------------------------------------- bit

BIT_FUNCTIONS = [
    "tobit",
    "bnot",
    "band",
    "bor",
    "bxor",
    "lshift",
    "rshift",
    "arshift",
    "rol",
    "ror",
    "bswap",
    "tohex",
]


def test_bit_random(servers):
    rng = random.Random(5)

    def number() -> str:
        pick = rng.randrange(6)
        if pick == 0:
            return str(rng.randrange(-(2**31), 2**31))
        if pick == 1:
            return str(rng.randrange(-(2**64), 2**64))
        if pick == 2:
            return repr(rng.uniform(-(2**33), 2**33))
        if pick == 3:
            return repr(struct.unpack("<d", rng.randbytes(8))[0])
        if pick == 4:
            return str(rng.randrange(-40, 40) / 2)
        return rng.choice(
            [
                "0",
                "-0",
                "inf",
                "-inf",
                "nan",
                "4294967295",
                "2147483648",
                "-2147483649",
                "6755399441055744",
                "-6755399441055744",
                "2251799813685248",
                "0x7fffffff",
            ]
        )

    script = """
    local out = {}
    for i = 1, #ARGV, 4 do
      local f = bit[ARGV[i]]
      local a, b, c = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
      local ok, r = pcall(f, a, b, c)
      out[#out + 1] = tostring(r)
    end
    return out
    """
    args = []
    for _ in range(600):
        name = rng.choice(BIT_FUNCTIONS)
        second = (
            str(rng.randrange(-40, 40))
            if name in ("lshift", "rshift", "arshift", "rol", "ror", "tohex") and rng.random() < 0.7
            else number()
        )
        args += [name, number(), second, number()]
    same(servers, "EVAL", script, "0", *args)


def test_bit_edge_cases(servers):
    for body in [
        "return {bit.tobit(2^31), bit.tobit(2^32+5), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5),"
        " bit.tobit(2^52), bit.tobit(2^53+2), bit.tobit(1e300), bit.tobit(-2^60-2^40), bit.tobit(1/0),"
        " bit.tobit(0/0), bit.tobit('12'), bit.tobit(' 0x10 ')}",
        "return {bit.lshift(1, 33), bit.rshift(-1, 4), bit.arshift(-256, 4), bit.rol(0x12345678, 4),"
        " bit.ror(0x12345678, 4), bit.bswap(0x12345678), bit.bnot(0), bit.band(-1, 0xff, 0xf0f),"
        " bit.bxor(1), bit.bor(1, 2, 4, 8), bit.tohex(-1), bit.tohex(255, -4), bit.tohex(1, 20),"
        " bit.tohex(255, 0), bit.tohex(-1, -3), bit.rol(1, -1), bit.ror(1, 0), bit.lshift(1, 31)}",
        "return bit.band('x')",
        "return bit.band()",
        "return bit.band(1, {})",
        "return bit.tohex(1, nil)",
        "return bit.lshift(1)",
        "return bit.tobit()",
        "local x = bit.bor(1, nil) return x",
        "return bit.tobit(nil)",
    ]:
        same(servers, "EVAL", body, "0")


def test_libraries_read_only_and_in_functions(servers):
    for body in [
        "cjson.encode = nil",
        "bit.band = nil",
        "cjson.null = 1",
        "return type(cjson.null)",
    ]:
        same(servers, "EVAL", body, "0")
    lib = (
        "#!lua name=cjlib\n"
        "redis.register_function('cj', function(keys, args)"
        " return cjson.encode(cjson.decode(args[1])) end)\n"
        "redis.register_function('bt', function(keys, args)"
        " return bit.bxor(args[1], args[2]) end)\n"
    )
    same(servers, "FUNCTION", "LOAD", "REPLACE", lib)
    same(servers, "FCALL", "cj", "0", '{"a":[1,2,{"b":null}]}')
    same(servers, "FCALL", "cj", "0", "[1,")
    same(servers, "FCALL", "bt", "0", "12", "10")
    same(servers, "FUNCTION", "DELETE", "cjlib")
