"""The ``cjson`` library of Redis 7.0's Lua scripts, written in Lua from its documented behaviour and
from comparisons with redis-server (tests/test_resp_lua_cjson.py).

It is Lua source run in the scripts' own interpreter, so it can never raise a Python exception
into Lua, and its errors are raised as Redis's are: at the level of the script's call (so they
read ``user_script:1: ...``), with its argument errors naming the function as it was called.

- ``cjson.encode(value)``: numbers as ``%.14g`` (``encode_number_precision``), strings with
  ``"``, ``\\``, ``/`` and control characters escaped, tables whose keys are all integers 1..2^31-1
  as arrays (holes as ``null``, ``encode_sparse_array`` deciding when an array is too sparse),
  other tables as objects in the table's own order, ``cjson.null`` as ``null``;
- ``cjson.decode(text)``: as lua-cjson 2.1.0 parses (numbers as C's strtod reads them, also
  ``Infinity``/``NaN``/hex while ``decode_invalid_numbers`` is on; a NUL byte ends the text);
- the settings functions (which, as in Redis, last for the server's lifetime) and ``cjson.new``.
"""

from __future__ import annotations

from typing import Any

from kv_backend.server.lua_common import C_FUNCTION

_SOURCE = (
    C_FUNCTION
    + r"""
local type, tostring, tonumber, select, next, rawget = type, tostring, tonumber, select, next, rawget
local pcall, error, setmetatable = pcall, error, setmetatable
local format, sub, byte, char, find, match, gsub, lower, rep =
  string.format, string.sub, string.byte, string.char, string.find, string.match, string.gsub,
  string.lower, string.rep
local concat = table.concat
local floor = math.floor
local huge = math.huge
local INT_MAX = 2147483647

-- cjson.null: a userdata shown as Redis shows its (NULL) light userdata
local null = newproxy(true)
local null_meta = getmetatable(null)
null_meta.__tostring = function() return 'userdata: (nil)' end
null_meta.__metatable = false

-- (c_function: kv_backend/server/lua_common.py)

-- an argument error as the C API makes it (luaL_argerror), for the function called name
local function argerr(name, narg, msg)
  error(format("bad argument #%d to '%s' (%s)", narg, name, msg), 0)
end

local ESCAPES = {['"'] = '\\"', ['\\'] = '\\\\', ['/'] = '\\/', ['\b'] = '\\b', ['\f'] = '\\f',
                 ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t', ['\127'] = '\\u007f'}
for i = 0, 31 do
  local c = char(i)
  if not ESCAPES[c] then ESCAPES[c] = format('\\u%04x', i) end
end
local function quote(s) return '"' .. gsub(s, '[%z\1-\31"\\/\127]', ESCAPES) .. '"' end

local function fail(msg) error(msg, 0) end

local function module()
  local cfg = {sparse_convert = false, sparse_ratio = 2, sparse_safe = 10, encode_depth = 1000,
               decode_depth = 1000, precision = 14, fmt = '%.14g', encode_invalid = false,
               decode_invalid = true, keep_buffer = true}
  local M = {_NAME = 'cjson', _VERSION = '2.1.0', null = null}

  -- ------------------------------------------------------------------ encode
  local function number_text(x)
    if x ~= x or x == huge or x == -huge then
      local mode = cfg.encode_invalid
      if mode == false then fail('Cannot serialise number: must not be NaN or Inf') end
      if mode == 'null' then return 'null' end
      if x ~= x then return 'nan' end
      return x > 0 and 'inf' or '-inf'
    end
    return format(cfg.fmt, x)
  end

  -- the length of t as an array, or -1 if it is an object
  local function array_length(t)
    local max, items = 0, 0
    for k in next, t do
      if type(k) == 'number' and k >= 1 and k <= INT_MAX and floor(k) == k then
        if k > max then max = k end
        items = items + 1
      else
        return -1
      end
    end
    local ratio = cfg.sparse_ratio
    if ratio > 0 and max > cfg.sparse_safe and max > items * ratio then
      if cfg.sparse_convert then return -1 end
      fail('Cannot serialise table: excessively sparse array')
    end
    return max
  end

  local encode_value
  local function encode_table(t, depth, out)
    depth = depth + 1
    if depth > cfg.encode_depth then fail('Cannot serialise, excessive nesting (' .. depth .. ')') end
    local len = array_length(t)
    if len > 0 then
      out[#out + 1] = '['
      for i = 1, len do
        if i > 1 then out[#out + 1] = ',' end
        encode_value(rawget(t, i), depth, out)
      end
      out[#out + 1] = ']'
      return
    end
    out[#out + 1] = '{'
    local first = true
    for k, v in next, t do
      if not first then out[#out + 1] = ',' end
      first = false
      local tk = type(k)
      if tk == 'string' then
        out[#out + 1] = quote(k)
      elseif tk == 'number' then
        out[#out + 1] = '"' .. number_text(k) .. '"'
      else
        fail('Cannot serialise ' .. tk .. ': table key must be a number or string')
      end
      out[#out + 1] = ':'
      encode_value(v, depth, out)
    end
    out[#out + 1] = '}'
  end

  encode_value = function(v, depth, out)
    local tv = type(v)
    if tv == 'string' then out[#out + 1] = quote(v)
    elseif tv == 'number' then out[#out + 1] = number_text(v)
    elseif tv == 'boolean' then out[#out + 1] = v and 'true' or 'false'
    elseif tv == 'nil' or v == null then out[#out + 1] = 'null'
    elseif tv == 'table' then encode_table(v, depth, out)
    else fail('Cannot serialise ' .. tv .. ': type not supported') end
  end

  local function encode(v)
    local out = {}
    encode_value(v, 0, out)
    return concat(out)
  end

  M.encode = c_function(function(...)
    if select('#', ...) ~= 1 then argerr('encode', 1, 'expected 1 argument') end
    return encode((...))
  end)

  -- ------------------------------------------------------------------ decode
  local TOKEN_NAME = {['{'] = 'T_OBJ_BEGIN', ['}'] = 'T_OBJ_END', ['['] = 'T_ARR_BEGIN',
                      [']'] = 'T_ARR_END', [':'] = 'T_COLON', [','] = 'T_COMMA'}
  local SIMPLE = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n',
                  r = '\r', t = '\t'}
  local s, n, pos  -- the text, its length, the next character to read

  local function utf8(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then
      return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
                0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end

  -- how many characters C's strtod reads as a number at i (0: none)
  local function strtod_length(i)
    local p = i
    local c = sub(s, p, p)
    if c == '+' or c == '-' then p = p + 1 end
    local word = lower(sub(s, p, p + 7))
    if sub(word, 1, 3) == 'inf' then
      if word == 'infinity' then return p + 8 - i end
      return p + 3 - i
    end
    if sub(word, 1, 3) == 'nan' then
      local q = p + 3
      local _, e = find(s, '^%([%w_]*%)', q)
      if e then q = e + 1 end
      return q - i
    end
    local digits, q
    if match(s, '^0[xX]', p) then
      q = p + 2
      local whole = match(s, '^%x*', q)
      digits, q = #whole, q + #whole
      if sub(s, q, q) == '.' then
        local frac = match(s, '^%x*', q + 1)
        if digits + #frac > 0 then digits, q = digits + #frac, q + 1 + #frac end
      end
      if digits == 0 then return p + 1 - i end
      local e = match(s, '^[pP][+-]?%d+', q)
      if e then q = q + #e end
      return q - i
    end
    q = p
    local whole = match(s, '^%d*', q)
    digits, q = #whole, q + #whole
    if sub(s, q, q) == '.' then
      local frac = match(s, '^%d*', q + 1)
      if digits + #frac > 0 then digits, q = digits + #frac, q + 1 + #frac end
    end
    if digits == 0 then return 0 end
    local e = match(s, '^[eE][+-]?%d+', q)
    if e then q = q + #e end
    return q - i
  end

  -- the next token: kind ('{', '}', '[', ']', ':', ',', 'string', 'number', 'boolean', 'null',
  -- 'end' or 'error'), its value (for 'error': its message) and where it starts
  local function number_token(i, bad)
    local len = strtod_length(i)
    local v = len > 0 and tonumber(sub(s, i, i + len - 1))
    if v == nil or v == false then return 'error', bad, i end
    pos = i + len
    return 'number', v, i
  end
  local function next_token()
    local i = find(s, '[^ \t\r\n]', pos)
    if not i then pos = n + 1; return 'end', nil, n + 1 end
    local c = sub(s, i, i)
    if TOKEN_NAME[c] then pos = i + 1; return c, nil, i end
    if c == '"' then
      local parts, p = {}, i + 1
      while true do
        local j = find(s, '["\\]', p)
        if not j then return 'error', 'unexpected end of string', n + 1 end
        if j > p then parts[#parts + 1] = sub(s, p, j - 1) end
        if sub(s, j, j) == '"' then pos = j + 1; return 'string', concat(parts), i end
        local e = sub(s, j + 1, j + 1)
        if e == 'u' then
          local hex = match(s, '^%x%x%x%x', j + 2)
          if not hex then return 'error', 'invalid unicode escape code', j end
          local cp = tonumber(hex, 16)
          p = j + 6
          if cp >= 0xDC00 and cp <= 0xDFFF then return 'error', 'invalid unicode escape code', j end
          if cp >= 0xD800 and cp <= 0xDBFF then
            local low = match(s, '^\\u(%x%x%x%x)', p)
            low = low and tonumber(low, 16)
            if not low or low < 0xDC00 or low > 0xDFFF then
              return 'error', 'invalid unicode escape code', j
            end
            cp = 0x10000 + (cp - 0xD800) * 1024 + (low - 0xDC00)
            p = p + 6
          end
          parts[#parts + 1] = utf8(cp)
        elseif SIMPLE[e] then
          parts[#parts + 1] = SIMPLE[e]
          p = j + 2
        else
          return 'error', 'invalid escape code', j
        end
      end
    end
    if c == '-' or find(c, '%d') then
      if not cfg.decode_invalid then
        local d = c == '-' and i + 1 or i
        if match(s, '^0[%dxX]', d) or match(s, '^[iInN]', d) then
          return 'error', 'invalid number', i
        end
      end
      return number_token(i, 'invalid number')
    end
    if sub(s, i, i + 3) == 'true' then pos = i + 4; return 'boolean', true, i end
    if sub(s, i, i + 4) == 'false' then pos = i + 5; return 'boolean', false, i end
    if sub(s, i, i + 3) == 'null' then pos = i + 4; return 'null', null, i end
    if cfg.decode_invalid then
      if c == '+' then return number_token(i, 'invalid number') end
      local word = lower(sub(s, i, i + 2))
      if word == 'inf' or word == 'nan' then return number_token(i, 'invalid token') end
    end
    return 'error', 'invalid token', i
  end

  local function unexpected(what, kind, value, at)
    local found = kind == 'error' and value or TOKEN_NAME[kind] or ('T_' .. kind:upper())
    fail(format('Expected %s but found %s at character %d', what, found, at))
  end

  local parse_value
  local function enter(depth, at)
    if depth > cfg.decode_depth then
      fail(format('Found too many nested data structures (%d) at character %d', depth, at))
    end
  end
  local function parse_object(depth, at)
    enter(depth, at)
    local t = {}
    local kind, value, where = next_token()
    if kind == '}' then return t end
    while true do
      if kind ~= 'string' then unexpected('object key string', kind, value, where) end
      local key = value
      kind, value, where = next_token()
      if kind ~= ':' then unexpected('colon', kind, value, where) end
      t[key] = parse_value(depth, next_token())
      kind, value, where = next_token()
      if kind == '}' then return t end
      if kind ~= ',' then unexpected('comma or object end', kind, value, where) end
      kind, value, where = next_token()
    end
  end
  local function parse_array(depth, at)
    enter(depth, at)
    local t = {}
    local kind, value, where = next_token()
    if kind == ']' then return t end
    local i = 1
    while true do
      t[i] = parse_value(depth, kind, value, where)
      i = i + 1
      kind, value, where = next_token()
      if kind == ']' then return t end
      if kind ~= ',' then unexpected('comma or array end', kind, value, where) end
      kind, value, where = next_token()
    end
  end
  parse_value = function(depth, kind, value, where)
    if kind == 'string' or kind == 'number' or kind == 'boolean' or kind == 'null' then
      return value
    end
    if kind == '{' then return parse_object(depth + 1, where) end
    if kind == '[' then return parse_array(depth + 1, where) end
    unexpected('value', kind, value, where)
  end

  local function decode(text)
    s = match(text, '^[^%z]*')  -- as lua-cjson, a NUL byte ends the text
    n, pos = #s, 1
    local v = parse_value(0, next_token())
    local kind, value, where = next_token()
    if kind ~= 'end' then unexpected('the end', kind, value, where) end
    return v
  end

  M.decode = c_function(function(...)
    local count, text = select('#', ...), ...
    if count ~= 1 then argerr('decode', 1, 'expected 1 argument') end
    local tt = type(text)
    if tt == 'number' then text = tostring(text)
    elseif tt ~= 'string' then argerr('decode', 1, 'string expected, got ' .. tt) end
    if #text >= 2 and (byte(text, 1) == 0 or byte(text, 2) == 0) then
      fail('JSON parser does not support UTF-16 or UTF-32')
    end
    local ok, r = pcall(decode, text)
    s = nil
    if not ok then error(r, 0) end
    return r
  end)

  -- ------------------------------------------------------------------ settings
  local function check_count(name, max, ...)
    if select('#', ...) > max then argerr(name, max + 1, 'found too many arguments') end
  end
  -- an integer option (luaL_checkinteger's conversion and errors), nil if not given
  local function integer_arg(name, i, low, high, ...)
    local v = select(i, ...)
    if v == nil then return nil end
    local x = tonumber(v)
    if type(v) ~= 'number' and (type(v) ~= 'string' or x == nil) then
      argerr(name, i, 'number expected, got ' .. type(v))
    end
    -- to a C int as lua-cjson does: truncated to 64 bits (NaN and out of range: -2^63), then
    -- its low 32 bits
    if x ~= x or x >= 2^63 or x < -2^63 then x = -2^63
    elseif x >= 0 then x = floor(x)
    else x = -floor(-x) end
    x = x % 4294967296
    if x >= 2147483648 then x = x - 4294967296 end
    if x < low or x > high then  -- (lua-cjson names argument 1 here, whichever it is)
      argerr(name, 1, format('expected integer between %d and %d', low, high))
    end
    return x
  end
  -- an enumerated option (true/false or one of the names), nil if not given
  local function option_arg(name, i, names, ...)
    local v = select(i, ...)
    if v == nil then return nil end
    if type(v) == 'boolean' then return v and 1 or 0 end
    local tv = type(v)
    if tv == 'number' then v = tostring(v)
    elseif tv ~= 'string' then argerr(name, i, 'string expected, got ' .. tv) end
    for k, option in next, names do
      if option == v then return k - 1 end
    end
    argerr(name, i, format("invalid option '%s'", v))
  end
  local ON_OFF = {'off', 'on'}

  M.encode_number_precision = c_function(function(...)
    check_count('encode_number_precision', 1, ...)
    local p = integer_arg('encode_number_precision', 1, 1, 14, ...)
    if p then cfg.precision, cfg.fmt = p, '%.' .. p .. 'g' end
    return cfg.precision
  end)
  M.encode_max_depth = c_function(function(...)
    check_count('encode_max_depth', 1, ...)
    cfg.encode_depth = integer_arg('encode_max_depth', 1, 1, INT_MAX, ...) or cfg.encode_depth
    return cfg.encode_depth
  end)
  M.decode_max_depth = c_function(function(...)
    check_count('decode_max_depth', 1, ...)
    cfg.decode_depth = integer_arg('decode_max_depth', 1, 1, INT_MAX, ...) or cfg.decode_depth
    return cfg.decode_depth
  end)
  M.encode_sparse_array = c_function(function(...)
    check_count('encode_sparse_array', 3, ...)
    local convert = option_arg('encode_sparse_array', 1, ON_OFF, ...)
    if convert then cfg.sparse_convert = convert == 1 end
    cfg.sparse_ratio = integer_arg('encode_sparse_array', 2, 0, INT_MAX, ...) or cfg.sparse_ratio
    cfg.sparse_safe = integer_arg('encode_sparse_array', 3, 0, INT_MAX, ...) or cfg.sparse_safe
    return cfg.sparse_convert, cfg.sparse_ratio, cfg.sparse_safe
  end)
  M.encode_keep_buffer = c_function(function(...)
    check_count('encode_keep_buffer', 1, ...)
    local on = option_arg('encode_keep_buffer', 1, ON_OFF, ...)
    if on then cfg.keep_buffer = on == 1 end
    return cfg.keep_buffer
  end)
  M.encode_invalid_numbers = c_function(function(...)
    check_count('encode_invalid_numbers', 1, ...)
    local mode = option_arg('encode_invalid_numbers', 1, {'off', 'on', 'null'}, ...)
    if mode then cfg.encode_invalid = (mode == 2 and 'null') or mode == 1 end
    return cfg.encode_invalid
  end)
  M.decode_invalid_numbers = c_function(function(...)
    check_count('decode_invalid_numbers', 1, ...)
    local on = option_arg('decode_invalid_numbers', 1, ON_OFF, ...)
    if on then cfg.decode_invalid = on == 1 end
    return cfg.decode_invalid
  end)
  M.new = c_function(module)
  return M
end

return module()
"""
)


def install(lua: Any, loadstring: Any) -> None:
    """Make ``cjson`` a global of ``lua`` (before the prelude, which exposes it to scripts as a
    read-only view). ``loadstring(src)`` compiles a chunk named as the prelude's, whose frames
    the scripts' error handler skips over to find the script's line."""
    lua.globals()[b"cjson"] = loadstring(_SOURCE.encode())()
