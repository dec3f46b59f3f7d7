"""Lua shared by the libraries of kvb serve's scripts (kv_backend.server.lua_cjson, lua_bit)."""

from __future__ import annotations

#: ``c_function(impl)``: a library function that is, as Redis's, a C function to Lua, so that a
#: script's ``return cjson.decode(s)`` is no tail call and an error names the script's line. It is
#: a callable table whose __call is a coroutine.wrap (C) function running ``impl``. An error ends
#: that coroutine, so a new one takes its place before the error is raised; the error text has no
#: position, to which coroutine.wrap adds the caller's (none when called from pcall), as Lua does
#: for a C function's error. Prepended to a library's source.
C_FUNCTION = r"""
local co_wrap, co_yield, unpack, pcall, select, setmetatable, error =
  coroutine.wrap, coroutine.yield, unpack, pcall, select, setmetatable, error
local function pack(...) return {n = select('#', ...), ...} end
local function c_function(impl)
  local meta = {__metatable = false}
  local function fresh()
    return co_wrap(function(...)
      local args = pack(...)
      while true do
        local r = pack(pcall(impl, unpack(args, 2, args.n)))
        if not r[1] then
          meta.__call = fresh()
          error(r[2], 0)
        end
        args = pack(co_yield(unpack(r, 2, r.n)))
      end
    end)
  end
  meta.__call = fresh()
  return setmetatable({}, meta)
end
"""
