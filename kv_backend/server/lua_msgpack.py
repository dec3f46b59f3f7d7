"""Redis 7.0's ``cmsgpack`` and ``struct`` Lua libraries for kvb's scripts, written in Lua.

They run inside the scripts' Lua state (so no Python exception can pass through Lua) and were
written from Redis's documented and observed behaviour: the bytes they produce and the errors they
raise are those of redis-server 7.0 on x86-64 (checked by tests/test_resp_lua_msgpack.py).

``cmsgpack.pack(v, ...)`` packs each argument and concatenates them: a table whose keys are exactly
1..n (integers below 2**31) is an array, any other a map (in ``next`` order); a number equal to an
int64 is packed in the smallest integer form, any other as float 32 if that is exact, else float
64; strings are str (fixstr/str8/16/32, never bin); other values are nil; tables nested deeper
than 16 levels are packed as nil. ``cmsgpack.unpack(s)`` returns every value packed in ``s``;
``unpack_one(s[, offset])`` and ``unpack_limit(s, limit[, offset])`` return the next offset (-1
at the end) then the values. ``struct.pack/unpack/size`` take Roberto Ierusalimschy's struct
format (``<>!x bB hH lL T iI[n] f d s c[n]``), native order little-endian, ``long``/``size_t`` of
8 bytes.

Known difference: when a script *tail-calls* one of these functions (``return cmsgpack.unpack(x)``)
and it raises, Lua has dropped the script's frame, so the error has no ``user_script:N:`` prefix
and names the function ``?`` (Redis's C functions keep both).
"""

from __future__ import annotations

from typing import Any

_SOURCE = r"""
local type, select, tostring, tonumber, error, next = type, select, tostring, tonumber, error, next
local rawget, unpack, getinfo = rawget, unpack, debug.getinfo
local floor, ceil, frexp, ldexp, huge = math.floor, math.ceil, math.frexp, math.ldexp, math.huge
local char, byte, sub, find, format, rep = string.char, string.byte, string.sub, string.find,
  string.format, string.rep
local concat = table.concat
-- results go through pass(), not by a tail call to a helper that may raise: a tail call drops the
-- caller's frame, and with it the name and position Redis gives in its errors
local function pass(...) return ... end

-- raising errors as Redis's C libraries do ------------------------------------------------------
-- ``where``: the level (for error()) of the first frame outside this file and kvb's prelude (both
-- are chunk '=kvb'), i.e. the caller of the library function: its position prefixes the message
local function outer_level()
  local level = 3
  local i = getinfo(level, 'S')
  while i and i.source == '=kvb' do level = level + 1; i = getinfo(level, 'S') end
  return level
end
local function fail(msg)
  local level = outer_level()
  error(msg, level - 1)
end
local function argerror(narg, msg)
  local level = outer_level()
  local i = getinfo(level - 2, 'n')  -- the library function, as its caller named it
  local name = i and i.name or '?'
  if i and i.namewhat == 'method' then
    narg = narg - 1
    if narg == 0 then error("calling '" .. name .. "' on bad self (" .. msg .. ')', level - 1) end
  end
  error('bad argument #' .. narg .. " to '" .. name .. "' (" .. msg .. ')', level - 1)
end
local function typename(n, i, v)
  if i > n then return 'no value' end
  return type(v)
end
local function checkstring(n, i, v)
  local t = type(v)
  if t == 'string' then return v end
  if t == 'number' then return tostring(v) end
  argerror(i, 'string expected, got ' .. typename(n, i, v))
end
local function checknumber(n, i, v)
  if type(v) == 'number' then return v end
  local x = type(v) == 'string' and tonumber(v)
  if x then return x end
  argerror(i, 'number expected, got ' .. typename(n, i, v))
end
local TWO31, TWO32, TWO63, TWO64 = 2 ^ 31, 2 ^ 32, 2 ^ 63, 2 ^ 64
-- C's (long long)x on x86-64: truncated, and INT64_MIN for NaN and what does not fit
local function int64(x)
  if x ~= x or x >= TWO63 or x < -TWO63 then return -TWO63 end
  return x >= 0 and floor(x) or ceil(x)
end
local function checkinteger(n, i, v) return int64(checknumber(n, i, v)) end
local function optinteger(n, i, v, default)
  if v == nil then return default end
  return (checkinteger(n, i, v))
end
-- an int64 printed with %d (its low 32 bits, signed)
local function c_int(x)
  local m = x % TWO32
  if m >= TWO31 then m = m - TWO32 end
  return format('%d', m)
end
local zero = 0
local NAN_A, NAN_B = zero / zero, -(zero / zero)
local NEG_NAN, POS_NAN = NAN_A, NAN_B
if sub(tostring(NAN_A), 1, 1) ~= '-' then NEG_NAN, POS_NAN = NAN_B, NAN_A end
local function nan_sign(d) return sub(tostring(d), 1, 1) == '-' and TWO31 or 0 end

-- IEEE 754 conversions (words are 32-bit unsigned integers held in doubles) ----------------------
local function round_even(x)
  local r = floor(x)
  local f = x - r
  if f > 0.5 or (f == 0.5 and r % 2 == 1) then r = r + 1 end
  return r
end
-- the bits of (float)d (round to nearest even, as the C cast)
local function f32_bits(d)
  if d ~= d then return nan_sign(d) + 0x7fc00000 end
  local sign = 0
  if d < 0 or (d == 0 and 1 / d < 0) then sign = TWO31; d = -d end
  if d == huge then return sign + 0x7f800000 end
  if d == 0 then return sign end
  local m, e = frexp(d)
  local bits
  if e >= -125 then
    bits = (e + 126) * 2 ^ 23 + round_even(ldexp(m, 24)) - 2 ^ 23
  else
    bits = round_even(ldexp(d, 149))
  end
  if bits > 0x7f800000 then bits = 0x7f800000 end
  return sign + bits
end
local function f32_value(bits)
  local neg = bits >= TWO31
  if neg then bits = bits - TWO31 end
  local biased, mant = floor(bits / 2 ^ 23), bits % 2 ^ 23
  local v
  if biased == 255 then
    if mant ~= 0 then return neg and NEG_NAN or POS_NAN end
    v = huge
  elseif biased == 0 then
    v = ldexp(mant, -149)
  else
    v = ldexp(mant + 2 ^ 23, biased - 150)
  end
  if neg then v = -v end
  return v
end
local function f64_words(d)
  if d ~= d then return nan_sign(d) + 0x7ff80000, 0 end
  local sign = 0
  if d < 0 or (d == 0 and 1 / d < 0) then sign = TWO31; d = -d end
  if d == huge then return sign + 0x7ff00000, 0 end
  if d == 0 then return sign, 0 end
  local m, e = frexp(d)
  local biased, mant
  if e >= -1021 then
    biased, mant = e + 1022, ldexp(m, 53) - 2 ^ 52
  else
    biased, mant = 0, ldexp(d, 1074)
  end
  local top = floor(mant / TWO32)
  return sign + biased * 2 ^ 20 + top, mant - top * TWO32
end
local function f64_value(hi, lo)
  local neg = hi >= TWO31
  if neg then hi = hi - TWO31 end
  local biased, mant = floor(hi / 2 ^ 20), (hi % 2 ^ 20) * TWO32 + lo
  local v
  if biased == 2047 then
    if mant ~= 0 then return neg and NEG_NAN or POS_NAN end
    v = huge
  elseif biased == 0 then
    v = ldexp(mant, -1074)
  else
    v = ldexp(mant + 2 ^ 52, biased - 1075)
  end
  if neg then v = -v end
  return v
end
-- an int64 (as a double) from its two words
local function signed64(hi, lo)
  if hi >= TWO31 then return (hi - TWO32) * TWO32 + lo end
  return hi * TWO32 + lo
end
-- the two words of an integral double in [-2**63, 2**64)
local function words64(v)
  local hi = floor(v / TWO32)
  local lo = v - hi * TWO32
  if hi < 0 then hi = hi + TWO32 end
  return hi, lo
end
local function be16(x) return char(floor(x / 256), x % 256) end
local function be32(x)
  return char(floor(x / 16777216), floor(x / 65536) % 256, floor(x / 256) % 256, x % 256)
end
local function word_at(s, i)  -- big-endian 32-bit word at s[i..i+3]
  local a, b, c, d = byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- cmsgpack -----------------------------------------------------------------------------------
local MAX_NESTING = 16
local function pack_int(buf, n)
  if n >= 0 then
    if n < 128 then buf[#buf + 1] = char(n)
    elseif n < 256 then buf[#buf + 1] = '\204' .. char(n)
    elseif n < 65536 then buf[#buf + 1] = '\205' .. be16(n)
    elseif n < TWO32 then buf[#buf + 1] = '\206' .. be32(n)
    else
      local hi, lo = words64(n)
      buf[#buf + 1] = '\207' .. be32(hi) .. be32(lo)
    end
  elseif n >= -32 then buf[#buf + 1] = char(256 + n)
  elseif n >= -128 then buf[#buf + 1] = '\208' .. char(256 + n)
  elseif n >= -32768 then buf[#buf + 1] = '\209' .. be16(65536 + n)
  elseif n >= -TWO31 then buf[#buf + 1] = '\210' .. be32(TWO32 + n)
  else
    local hi, lo = words64(n)
    buf[#buf + 1] = '\211' .. be32(hi) .. be32(lo)
  end
end
local function pack_number(buf, n)
  if n == n and n ~= huge and n ~= -huge and n >= -TWO63 and n < TWO63 and floor(n) == n then
    return pack_int(buf, n)
  end
  local bits = f32_bits(n)
  if f32_value(bits) == n then
    buf[#buf + 1] = '\202' .. be32(bits)
  else
    local hi, lo = f64_words(n)
    buf[#buf + 1] = '\203' .. be32(hi) .. be32(lo)
  end
end
local function is_array(t)
  local count, max = 0, 0
  for k in next, t do
    if type(k) ~= 'number' or k <= 0 or k >= TWO31 or floor(k) ~= k then return false end
    if k > max then max = k end
    count = count + 1
  end
  return max == count
end
local pack_value
local function pack_table(buf, t, level)
  if is_array(t) then
    local n = #t
    if n < 16 then buf[#buf + 1] = char(0x90 + n)
    elseif n < 65536 then buf[#buf + 1] = '\220' .. be16(n)
    else buf[#buf + 1] = '\221' .. be32(n) end
    for i = 1, n do pack_value(buf, rawget(t, i), level + 1) end
  else
    local n = 0
    for _ in next, t do n = n + 1 end
    if n < 16 then buf[#buf + 1] = char(0x80 + n)
    elseif n < 65536 then buf[#buf + 1] = '\222' .. be16(n)
    else buf[#buf + 1] = '\223' .. be32(n) end
    for k, v in next, t do
      pack_value(buf, k, level + 1)
      pack_value(buf, v, level + 1)
    end
  end
end
function pack_value(buf, v, level)
  local t = type(v)
  if t == 'string' then
    local n = #v
    if n < 32 then buf[#buf + 1] = char(0xa0 + n)
    elseif n < 256 then buf[#buf + 1] = '\217' .. char(n)
    elseif n < 65536 then buf[#buf + 1] = '\218' .. be16(n)
    else buf[#buf + 1] = '\219' .. be32(n) end
    buf[#buf + 1] = v
  elseif t == 'number' then pack_number(buf, v)
  elseif t == 'boolean' then buf[#buf + 1] = v and '\195' or '\194'
  elseif t == 'table' and level < MAX_NESTING then pack_table(buf, v, level)
  else buf[#buf + 1] = '\192' end
end

local MAXCSTACK = 8000  -- Lua 5.1's limit of a C function's stack, which Redis's unpack hits
local TOO_MANY = 'stack overflow (too many return values at once; use unpack_one or unpack_limit'
  .. ' instead.)'
local function eof() fail('Missing bytes in input.') end
local decode
local function need(s, pos, n) if pos + n > #s then eof() end end
local function decode_array(s, pos, n, used)
  local t = {}
  if used + 2 > MAXCSTACK then fail('stack overflow (in function mp_decode_to_lua_array)') end
  for i = 1, n do
    local v
    v, pos = decode(s, pos, used + 2)
    t[i] = v
  end
  return t, pos
end
local function decode_map(s, pos, n, used)
  local t = {}
  for _ = 1, n do
    local k, v
    k, pos = decode(s, pos, used + 1)
    v, pos = decode(s, pos, used + 2)
    if k == nil then error('table index is nil', 0) end
    if k ~= k then error('table index is NaN', 0) end
    t[k] = v
  end
  return t, pos
end
local function decode_str(s, pos, n)
  need(s, pos, n)
  return sub(s, pos + 1, pos + n), pos + n
end
-- the value packed at s[pos+1...] and the position after it; ``used``: the slots Redis's C code
-- has then on its stack (its limits of 8000 apply)
function decode(s, pos, used)
  if used + 1 > MAXCSTACK then fail(TOO_MANY) end
  need(s, pos, 1)
  local b = byte(s, pos + 1)
  pos = pos + 1
  if b < 0x80 then return b, pos end
  if b >= 0xe0 then return b - 256, pos end
  if b < 0x90 then return pass(decode_map(s, pos, b - 0x80, used)) end
  if b < 0xa0 then return pass(decode_array(s, pos, b - 0x90, used)) end
  if b < 0xc0 then return pass(decode_str(s, pos, b - 0xa0)) end
  if b == 0xc0 then return nil, pos end
  if b == 0xc2 then return false, pos end
  if b == 0xc3 then return true, pos end
  if b == 0xcc then need(s, pos, 1); return byte(s, pos + 1), pos + 1 end
  if b == 0xcd then need(s, pos, 2); local x, y = byte(s, pos + 1, pos + 2); return x * 256 + y, pos + 2 end
  if b == 0xce then need(s, pos, 4); return word_at(s, pos + 1), pos + 4 end
  if b == 0xcf or b == 0xd3 then
    need(s, pos, 8)
    return signed64(word_at(s, pos + 1), word_at(s, pos + 5)), pos + 8
  end
  if b == 0xd0 then
    need(s, pos, 1)
    local x = byte(s, pos + 1)
    return x >= 128 and x - 256 or x, pos + 1
  end
  if b == 0xd1 then
    need(s, pos, 2)
    local x, y = byte(s, pos + 1, pos + 2)
    x = x * 256 + y
    return x >= 32768 and x - 65536 or x, pos + 2
  end
  if b == 0xd2 then
    need(s, pos, 4)
    local x = word_at(s, pos + 1)
    return x >= TWO31 and x - TWO32 or x, pos + 4
  end
  if b == 0xca then need(s, pos, 4); return f32_value(word_at(s, pos + 1)), pos + 4 end
  if b == 0xcb then
    need(s, pos, 8)
    return f64_value(word_at(s, pos + 1), word_at(s, pos + 5)), pos + 8
  end
  if b == 0xd9 then need(s, pos, 1); return pass(decode_str(s, pos + 1, byte(s, pos + 1))) end
  if b == 0xda then
    need(s, pos, 2)
    local x, y = byte(s, pos + 1, pos + 2)
    return pass(decode_str(s, pos + 2, x * 256 + y))
  end
  if b == 0xdb then need(s, pos, 4); return pass(decode_str(s, pos + 4, word_at(s, pos + 1))) end
  if b == 0xdc or b == 0xde then
    need(s, pos, 2)
    local x, y = byte(s, pos + 1, pos + 2)
    local f = b == 0xdc and decode_array or decode_map
    return pass(f(s, pos + 2, x * 256 + y, used))
  end
  if b == 0xdd or b == 0xdf then
    need(s, pos, 4)
    local f = b == 0xdd and decode_array or decode_map
    return pass(f(s, pos + 4, word_at(s, pos + 1), used))
  end
  fail('Bad data format in input.')
end
-- up to 7999 values (Lua's unpack() refuses to give that many at once)
local function spread(t, n)
  if n <= 7000 then return unpack(t, 1, n) end
  return t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], unpack(t, 11, n)
end
local function unpack_full(s, limit, offset)
  local len = #s
  if offset < 0 or limit < 0 then
    fail('Invalid request to unpack with offset of ' .. c_int(offset) .. ' and limit of '
         .. c_int(len) .. '.')
  elseif offset > len then
    fail('Start offset ' .. c_int(offset) .. ' greater than input length ' .. c_int(len) .. '.')
  end
  local all = limit == 0 and offset == 0
  if all then limit = huge end
  local out, n, pos = {}, 0, offset
  while pos < len and n < limit do
    local v
    v, pos = decode(s, pos, 1 + n)
    n = n + 1
    out[n] = v
  end
  if all then return spread(out, n) end
  if n + 2 > MAXCSTACK then fail('stack overflow (in function mp_unpack_full)') end
  for i = n, 1, -1 do out[i + 1] = out[i] end
  out[1] = pos == len and -1 or pos
  return spread(out, n + 1)
end
local cmsgpack = {_NAME = 'cmsgpack', _VERSION = 'lua-cmsgpack 0.4.0',
  _COPYRIGHT = 'Copyright (C) 2012, Salvatore Sanfilippo',
  _DESCRIPTION = 'MessagePack C implementation for Lua'}
function cmsgpack.pack(...)
  local n = select('#', ...)
  if n == 0 then argerror(0, 'MessagePack pack needs input.') end
  local buf = {}
  for i = 1, n do pack_value(buf, (select(i, ...)), 0) end
  return concat(buf)
end
function cmsgpack.unpack(...)
  local n, s = select('#', ...), ...
  return pass(unpack_full(checkstring(n, 1, s), 0, 0))
end
function cmsgpack.unpack_one(...)
  local n, s, offset = select('#', ...), ...
  offset = optinteger(n, 2, offset, 0)
  return pass(unpack_full(checkstring(n > 0 and 1 or 0, 1, s), 1, offset))
end
function cmsgpack.unpack_limit(...)
  local n, s, limit, offset = select('#', ...), ...
  limit = checkinteger(n, 2, limit)
  offset = optinteger(n, 3, offset, 0)
  return pass(unpack_full(checkstring(n > 0 and 1 or 0, 1, s), limit, offset))
end

-- struct -------------------------------------------------------------------------------------
local MAXINTSIZE, MAXALIGN, INT_MAX = 32, 8, 2147483647
local SIZES = {b = 1, B = 1, h = 2, H = 2, l = 8, L = 8, T = 8, f = 4, d = 8, x = 1}
-- the number after an option at fmt[i], or ``default``; and the position after it
local function getnum(fmt, i, default)
  local d = byte(fmt, i)
  if not d or d < 48 or d > 57 then return default, i end
  local a = 0
  repeat
    d = d - 48
    if a > floor(INT_MAX / 10) or a * 10 > INT_MAX - d then fail('integral size overflow') end
    a = a * 10 + d
    i = i + 1
    d = byte(fmt, i)
  until not d or d < 48 or d > 57
  return a, i
end
local function optsize(opt, fmt, i)
  local size = SIZES[opt]
  if size then return size, i end
  if opt == 'c' then return pass(getnum(fmt, i, 1)) end
  if opt == 'i' or opt == 'I' then
    size, i = getnum(fmt, i, 4)
    if size > MAXINTSIZE then
      fail('integral size ' .. size .. ' is larger than limit of ' .. MAXINTSIZE)
    end
    return size, i
  end
  return 0, i
end
local function band(a, b)  -- a & b, for b < 2**31 and a >= 0
  local r, bit = 0, 1
  while b > 0 and a > 0 do
    if a % 2 == 1 and b % 2 == 1 then r = r + bit end
    a, b, bit = floor(a / 2), floor(b / 2), bit * 2
  end
  return r
end
local function toalign(len, align, opt, size)
  if size == 0 or opt == 'c' then return 0 end
  if size > align then size = align end
  return band(size - band(len, size - 1), size - 1)
end
local function is_pow2(a) return a > 0 and band(a, a - 1) == 0 end
-- '!', '<', '>', ' ' (anything else is an error): the new byte order, alignment and position
local function control(opt, fmt, i, little, align)
  if opt == ' ' then return little, align, i end
  if opt == '>' then return false, align, i end
  if opt == '<' then return true, align, i end
  if opt == '!' then
    local a
    a, i = getnum(fmt, i, MAXALIGN)
    if not is_pow2(a) then fail('alignment ' .. a .. ' is not a power of 2') end
    return little, a, i
  end
  argerror(1, "invalid format option '" .. opt .. "'")
end
local function ordered(bytes, little)  -- bytes given least significant first
  if little then return char(unpack(bytes)) end
  local r = {}
  for k = #bytes, 1, -1 do r[#r + 1] = bytes[k] end
  return char(unpack(r))
end
local function put_integer(n, size, little)
  local hi, lo
  if n < 0 then
    hi, lo = words64(int64(n))
  elseif n ~= n or n >= TWO64 then
    hi, lo = 0, 0
  else
    hi, lo = words64(floor(n))
  end
  local bytes = {}
  for k = 1, size do
    if k <= 4 then bytes[k] = floor(lo / 256 ^ (k - 1)) % 256
    elseif k <= 8 then bytes[k] = floor(hi / 256 ^ (k - 5)) % 256
    else bytes[k] = 0 end
  end
  return ordered(bytes, little)
end
local function words_of(s, i, n, little)  -- the n bytes at s[i...] as two 32-bit words
  local hi, lo = 0, 0
  for k = 0, n - 1 do
    local b = byte(s, little and i + n - 1 - k or i + k)
    hi = (hi % 16777216) * 256 + floor(lo / 16777216)
    lo = (lo % 16777216) * 256 + b
  end
  return hi, lo
end
local function get_integer(s, i, size, little, signed)
  local hi, lo = words_of(s, i, size, little)
  if not signed then return hi * TWO32 + lo end
  local bit = (size * 8 - 1) % 64
  if bit >= 32 then
    local p = 2 ^ (bit - 32)
    if floor(hi / p) % 2 == 1 then hi = hi % p + (TWO32 - p) end
  else
    local p = 2 ^ bit
    if floor(lo / p) % 2 == 1 then lo, hi = lo % p + (TWO32 - p), TWO32 - 1 end
  end
  return signed64(hi, lo)
end
local struct = {}
-- (a missing argument is 'nil' in pack's errors, as Redis's puts a nil after its arguments)
function struct.pack(...)
  local nargs, fmt = select('#', ...), ...
  fmt = checkstring(nargs, 1, fmt)
  local little, align = true, 1
  local out, total, arg, i = {}, 0, 2, 1
  while i <= #fmt do
    local opt = sub(fmt, i, i)
    local size
    size, i = optsize(opt, fmt, i + 1)
    local pad = toalign(total, align, opt, size)
    total = total + pad
    if pad > 0 then out[#out + 1] = rep('\0', pad) end
    if opt == 'b' or opt == 'B' or opt == 'h' or opt == 'H' or opt == 'l' or opt == 'L'
        or opt == 'T' or opt == 'i' or opt == 'I' then
      out[#out + 1] = put_integer(checknumber(huge, arg, (select(arg, ...))), size, little)
      arg = arg + 1
    elseif opt == 'x' then
      out[#out + 1] = '\0'
    elseif opt == 'f' then
      local bits = f32_bits(checknumber(huge, arg, (select(arg, ...))))
      arg = arg + 1
      out[#out + 1] = put_integer(bits, 4, little)
    elseif opt == 'd' then
      local hi, lo = f64_words(checknumber(huge, arg, (select(arg, ...))))
      arg = arg + 1
      local b = be32(hi) .. be32(lo)
      out[#out + 1] = little and b:reverse() or b
    elseif opt == 'c' or opt == 's' then
      local s = checkstring(huge, arg, (select(arg, ...)))
      arg = arg + 1
      if size == 0 then size = #s end
      if #s < size then argerror(arg, 'string too short') end
      out[#out + 1] = sub(s, 1, size)
      if opt == 's' then out[#out + 1] = '\0'; size = size + 1 end
    else
      little, align, i = control(opt, fmt, i, little, align)
    end
    total = total + size
  end
  return concat(out)
end
function struct.unpack(...)
  local nargs, fmt, data, offset = select('#', ...), ...
  fmt = checkstring(nargs, 1, fmt)
  data = checkstring(nargs, 2, data)
  offset = optinteger(nargs, 3, offset, 1)
  if offset == 0 then argerror(3, 'offset must be 1 or greater') end
  local ld = #data
  local pos = offset - 1  -- C's size_t: a negative offset is a huge position
  local little, align = true, 1
  local out, n, i = {}, 0, 1
  while i <= #fmt do
    local opt = sub(fmt, i, i)
    local size
    size, i = optsize(opt, fmt, i + 1)
    if offset < 0 or size > ld or pos + toalign(pos, align, opt, size) > ld - size then
      argerror(2, 'data string too short')
    end
    pos = pos + toalign(pos, align, opt, size)
    if nargs + n + 2 > MAXCSTACK then fail('stack overflow (too many results)') end
    if opt == 'b' or opt == 'B' or opt == 'h' or opt == 'H' or opt == 'l' or opt == 'L'
        or opt == 'T' or opt == 'i' or opt == 'I' then
      n = n + 1
      out[n] = get_integer(data, pos + 1, size, little, opt == 'b' or opt == 'h' or opt == 'l'
                           or opt == 'i')
    elseif opt == 'x' then
      -- nothing
    elseif opt == 'f' then
      n = n + 1
      local hi, lo = words_of(data, pos + 1, 4, little)
      out[n] = f32_value(hi * TWO32 + lo)
    elseif opt == 'd' then
      n = n + 1
      out[n] = f64_value(words_of(data, pos + 1, 8, little))
    elseif opt == 'c' then
      if size == 0 then
        local prev = n > 0 and tonumber(out[n])
        if not prev then fail("format 'c0' needs a previous size") end
        if prev ~= prev or prev >= TWO64 then size = 0
        elseif prev < 0 then size = huge
        else size = floor(prev) end
        out[n] = nil
        n = n - 1
        if size > ld or pos > ld - size then argerror(2, 'data string too short') end
      end
      n = n + 1
      out[n] = sub(data, pos + 1, pos + size)
    elseif opt == 's' then
      local e = find(data, '\0', pos + 1, true)
      if not e then fail('unfinished string in data') end
      size = e - pos
      n = n + 1
      out[n] = sub(data, pos + 1, e - 1)
    else
      little, align, i = control(opt, fmt, i, little, align)
    end
    pos = pos + size
  end
  n = n + 1
  out[n] = offset < 0 and offset or pos + 1
  return spread(out, n)
end
function struct.size(...)
  local nargs, fmt = select('#', ...), ...
  fmt = checkstring(nargs, 1, fmt)
  local align, pos, i = 1, 0, 1
  while i <= #fmt do
    local opt = sub(fmt, i, i)
    local size
    size, i = optsize(opt, fmt, i + 1)
    pos = pos + toalign(pos, align, opt, size)
    if opt == 's' then argerror(1, "option 's' has no fixed size")
    elseif opt == 'c' and size == 0 then argerror(1, "option 'c0' has no fixed size") end
    if opt == '!' then
      local a
      a, i = getnum(fmt, i, MAXALIGN)
      if not is_pow2(a) then fail('alignment ' .. a .. ' is not a power of 2') end
      align = a
    end
    pos = pos + size
  end
  return pos
end
return cmsgpack, struct
"""


def install(lua: Any) -> None:
    """Load the libraries into a fresh ``lupa.lua51`` runtime as the globals ``cmsgpack`` and
    ``struct`` (before kvb's prelude, which shows them to scripts as read-only views). The chunk
    is named ``=kvb`` as the prelude, so that errors are reported at the script's line."""
    chunk = lua.eval("function(src) return assert(loadstring(src, '=kvb')) end")(_SOURCE.encode())
    cmsgpack, struct = chunk()
    g = lua.globals()
    g[b"cmsgpack"], g[b"struct"] = cmsgpack, struct
