"""The ``bit`` library (LuaBitOp's API) of Redis 7.0's Lua scripts, written in Lua from its
documented behaviour and from comparisons with redis-server (tests/test_resp_lua_cjson.py).

Operations work on 32-bit integers and return signed 32-bit numbers. An argument (a number or a
numeric string) becomes one as LuaBitOp makes it on a double-based Lua: the low 32 bits of the
significand of ``x + 2^52 + 2^51``, so fractions round half to even, and values beyond 32 bits
wrap (and beyond 2^51, where the sum loses precision, give what redis-server gives). Shift counts
use their low 5 bits. Being Lua source in the scripts' own interpreter, it never raises a
Python exception into Lua; its argument errors read as Redis's.
"""

from __future__ import annotations

from typing import Any

from kv_backend.server.lua_common import C_FUNCTION

_SOURCE = (
    C_FUNCTION
    + r"""
local type, tonumber, select, error = type, tonumber, select, error
local floor, frexp, huge = math.floor, math.frexp, math.huge
local format, sub, upper = string.format, string.sub, string.upper
local TWO32, TWO31 = 4294967296, 2147483648

-- (c_function: kv_backend/server/lua_common.py)

-- argument i (of count) of the library function called name as an unsigned 32-bit number, or
-- LuaBitOp's argument error
local function toint(name, i, count, x)
  local v = tonumber(x)
  if type(x) ~= 'number' and (type(x) ~= 'string' or v == nil) then
    local got = i > count and 'no value' or type(x)
    error(format("bad argument #%d to '%s' (number expected, got %s)", i, name, got), 0)
  end
  local b = v + 6755399441055744  -- 2^52 + 2^51
  if b ~= b or b == huge or b == -huge then return 0 end
  if b < 0 then b = -b end
  if b >= 4503599627370496 and b < 9007199254740992 then return b % TWO32 end
  local m = frexp(b)
  return (m * 9007199254740992) % TWO32
end
local function signed(u)
  if u >= TWO31 then return u - TWO32 end
  return u
end

-- 4-bit tables for and / or / xor
local AND, OR, XOR = {}, {}, {}
for a = 0, 15 do
  for b = 0, 15 do
    local r_and, r_or, r_xor, bit = 0, 0, 0, 1
    local x, y = a, b
    for _ = 1, 4 do
      local p, q = x % 2, y % 2
      if p == 1 and q == 1 then r_and = r_and + bit end
      if p == 1 or q == 1 then r_or = r_or + bit end
      if p ~= q then r_xor = r_xor + bit end
      x, y, bit = floor(x / 2), floor(y / 2), bit * 2
    end
    AND[a * 16 + b], OR[a * 16 + b], XOR[a * 16 + b] = r_and, r_or, r_xor
  end
end
local function combine(op, a, b)
  local r, bit = 0, 1
  for _ = 1, 8 do
    local x, y = a % 16, b % 16
    r = r + op[x * 16 + y] * bit
    a, b, bit = (a - x) / 16, (b - y) / 16, bit * 16
  end
  return r
end
local function fold(name, op)
  return c_function(function(...)
    local count = select('#', ...)
    local r = toint(name, 1, count, (...))
    for i = 2, count do r = combine(op, r, toint(name, i, count, (select(i, ...)))) end
    return signed(r)
  end)
end

local bit = {}
bit.tobit = c_function(function(...) return signed(toint('tobit', 1, select('#', ...), (...))) end)
bit.bnot = c_function(function(...) return signed(TWO32 - 1 - toint('bnot', 1, select('#', ...), (...))) end)
bit.band, bit.bor, bit.bxor = fold('band', AND), fold('bor', OR), fold('bxor', XOR)
local function shift_args(name, ...)
  local count = select('#', ...)
  local x, n = ...
  return toint(name, 1, count, x), toint(name, 2, count, n) % 32
end
bit.lshift = c_function(function(...)
  local x, n = shift_args('lshift', ...)
  return signed((x * 2 ^ n) % TWO32)
end)
bit.rshift = c_function(function(...)
  local x, n = shift_args('rshift', ...)
  return signed(floor(x / 2 ^ n))
end)
bit.arshift = c_function(function(...)
  local x, n = shift_args('arshift', ...)
  return floor(signed(x) / 2 ^ n)
end)
bit.rol = c_function(function(...)
  local x, n = shift_args('rol', ...)
  return signed((x * 2 ^ n) % TWO32 + floor(x / 2 ^ (32 - n)))
end)
bit.ror = c_function(function(...)
  local x, n = shift_args('ror', ...)
  n = (32 - n) % 32
  return signed((x * 2 ^ n) % TWO32 + floor(x / 2 ^ (32 - n)))
end)
bit.bswap = c_function(function(...)
  local x = toint('bswap', 1, select('#', ...), (...))
  local b0, b1, b2 = x % 256, floor(x / 256) % 256, floor(x / 65536) % 256
  local b3 = floor(x / 16777216)
  return signed(((b0 * 256 + b1) * 256 + b2) * 256 + b3)
end)
bit.tohex = c_function(function(...)
  local count = select('#', ...)
  local x, n = ...
  x = toint('tohex', 1, count, x)
  n = count >= 2 and signed(toint('tohex', 2, count, n)) or 8
  local digits = format('%08x', x)
  if n < 0 then
    n = n == -TWO31 and 8 or -n  -- as LuaBitOp, whose -n stays -2^31
    digits = upper(digits)
  end
  if n > 8 then n = 8 end
  return sub(digits, 9 - n)
end)
return bit
"""
)


def install(lua: Any, loadstring: Any) -> None:
    """Make ``bit`` a global of ``lua`` (before the prelude, which exposes it to scripts as a
    read-only view); ``loadstring`` as for :func:`kv_backend.server.lua_cjson.install`."""
    lua.globals()[b"bit"] = loadstring(_SOURCE.encode())()
