"""EVAL / EVALSHA / SCRIPT: Lua scripts run atomically against the store (needs the ``lupa`` package).

Scripts see ``KEYS`` and ``ARGV`` and call commands through ``redis.call`` /
``redis.pcall`` with Redis's RESP2 conversion rules (nil bulk -> false,
integers -> numbers, status -> ``{ok=...}``, errors -> ``{err=...}``), or after
``redis.setresp(3)`` its RESP3 ones (null -> nil, maps -> ``{map=...}``, sets ->
``{set=...}``, doubles -> ``{double=...}``, booleans, verbatim strings). A
script runs under the store's write lock, so no other client or process
writes while it runs. Celery's chord bookkeeping relies on this.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import TYPE_CHECKING, Any

from kv_backend.server import lua_bit, lua_cjson
from kv_backend.server.busy import HOOK_COUNT, NOTBUSY, Halted, ScriptRun
from kv_backend.server.commands.registry import COMMANDS
from kv_backend.server.lua_common import C_FUNCTION
from kv_backend.server.lua_msgpack import install as install_msgpack
from kv_backend.server.protocol import (
    NULL_ARRAY,
    OK,
    BigNumber,
    DoubleText,
    ErrorReply,
    OrderedSet,
    Pairs,
    ProtocolError,
    Verbatim,
    split_inline,
    wire_text,
)
from kv_backend.structures import CommandError, format_float, parse_int
from kv_backend.structures.errors import c_string, quoted
from kv_backend.structures.layout import SCRIPTS

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection, Server

_PRELUDE = """
local bridge, sha1, version, version_num, set_resp, c_function, acl_check, tick, hook_count = ...
local getinfo, sethook, find, sub, gsub = debug.getinfo, debug.sethook, string.find, string.sub, string.gsub
local select, type, tostring = select, type, tostring
-- Redis's form of an error table's text: ``-CODE message`` or ``message`` (code ERR), CR/LF trimmed
local function error_text(e)
  if sub(e, 1, 1) ~= '-' then e = '-' .. e end
  local sp = find(e, ' ', 1, true)
  local code, msg = 'ERR', sub(e, 2)
  if sp then code, msg = sub(e, 2, sp - 1), sub(e, sp + 1) end
  msg = gsub(gsub(msg, '^[\\r\\n]+', ''), '[\\r\\n]+$', '')
  return code .. ' ' .. msg
end
local function reply_table(field, ...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  if field == 'err' then msg = error_text(msg) end
  return {[field] = msg}
end
redis = {}
-- redis.call is, as Redis's, a C function to Lua (so a script's ``return redis.call(...)`` is no
-- tail call and an error shows the script's line): it is called through coroutine.wrap's C
-- function, resuming a coroutine that runs the commands. A failed command raises its error table
-- there, which ends that coroutine: a new one takes its place when a script starts and whenever
-- pcall, xpcall or coroutine.resume catch an error. (Python exceptions are never raised through Lua.)
local co_wrap, co_yield, unpack, setmetatable = coroutine.wrap, coroutine.yield, unpack, setmetatable
local function pack(_, ...) return {n = select('#', ...), ...} end  -- a call's arguments, without self
local function runner()
  return co_wrap(function(...)
    local args = pack(...)
    while true do
      local ok, r = bridge(unpack(args, 1, args.n))
      if not ok then error(r, 0) end
      args = pack(co_yield(r))
    end
  end)
end
local call_meta = {__call = runner()}
redis.call = setmetatable({}, call_meta)
local function renew() call_meta.__call = runner() end
-- As Redis's pcall, this one gives the text of an error table ({err=...}) in place of the table.
local raw_pcall, raw_xpcall, raw_resume = pcall, xpcall, coroutine.resume
local function caught(ok, ...)
  if ok then return ok, ... end
  renew()
  local e = ...
  if type(e) == 'table' and type(e.err) == 'string' then e = e.err end
  return false, e
end
local function renewed(ok, ...)
  if not ok then renew() end
  return ok, ...
end
function pcall(f, ...) return caught(raw_pcall(f, ...)) end
function xpcall(f, handler) return renewed(raw_xpcall(f, handler)) end
function coroutine.resume(co, ...) return renewed(raw_resume(co, ...)) end
function redis.pcall(...)
  local ok, r = bridge(...)
  return r
end
function redis.error_reply(...) return reply_table('err', ...) end
function redis.status_reply(...) return reply_table('ok', ...) end
-- Redis's argument checks (a number or numeric string, truncated)
local tonumber, floor, ceil = tonumber, math.floor, math.ceil
-- a C function to Lua, as Redis's (c_function: kv_backend/server/lua_common.py), so that an
-- error names the script's line also after ``return redis.setresp(...)``
redis.setresp = c_function(function(...)
  if select('#', ...) ~= 1 then error({err = 'ERR redis.setresp() requires one argument.'}, 0) end
  local n = tonumber((...)) or 0
  n = n >= 0 and floor(n) or ceil(n)
  if n ~= 2 and n ~= 3 then error({err = 'ERR RESP version must be 2 or 3.'}, 0) end
  set_resp(n == 3)
end)
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = version, version_num
-- as Redis's, it hashes lua_tolstring's text of its argument: a number's Lua text, nothing for a
-- value that is neither a string nor a number
redis.sha1hex = c_function(function(...)
  if select('#', ...) ~= 1 then error({err = 'ERR wrong number of arguments'}, 0) end
  local s = ...
  if type(s) == 'number' then s = tostring(s) elseif type(s) ~= 'string' then s = '' end
  return sha1(s)
end)
local function truncated(n) return n >= 0 and floor(n) or ceil(n) end
-- kvb keeps no log of scripts' messages, but checks the arguments as Redis does. These are C
-- functions to Lua, as Redis's (c_function: kv_backend/server/lua_common.py), so that an error
-- names the script's line also after ``return redis.log(...)``.
redis.log = c_function(function(...)
  if select('#', ...) < 2 then error({err = 'ERR redis.log() requires two arguments or more.'}, 0) end
  local level = tonumber((...))
  if level == nil then error({err = 'ERR First argument must be a number (log level).'}, 0) end
  level = truncated(level)
  if level < 0 or level > 3 then error({err = 'ERR Invalid debug level.'}, 0) end
end)
-- What Redis 7.0 keeps for scripts written for older versions: commands are always replicated
-- as effects (kvb has no replication), and the debugger's functions do nothing outside a session.
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.replicate_commands = c_function(function() return true end)
redis.set_repl = c_function(function(...)
  if select('#', ...) ~= 1 then error({err = 'ERR redis.set_repl() requires two arguments.'}, 0) end
  local flags = truncated(tonumber((...)) or 0)
  if flags < 0 or flags > 3 then
    error({err = 'ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.'}, 0)
  end
end)
-- kvb has only the default user, who may run every command there is: true for a command (and
-- subcommand) kvb has, Redis's errors otherwise
redis.acl_check_cmd = c_function(function(...)
  local ok, r = acl_check(...)
  if not ok then error(r, 0) end
  return r
end)
redis.breakpoint = c_function(function() return false end)
redis.debug = c_function(function() end)
-- the error handler of every script: as Redis's, it makes the error a table {err=...} and adds
-- where in the script it was raised (the frame under error() or a library function; the frames
-- of this prelude, which has its own chunk name, are skipped over)
local function on_error(err)
  local level = 2
  local i = getinfo(level, 'Sl')
  if i and i.what == 'C' then level = 3; i = getinfo(level, 'Sl') end
  while i and i.source == '=kvb' do level = level + 1; i = getinfo(level, 'Sl') end
  if type(err) ~= 'table' then err = {err = 'ERR ' .. tostring(err)} end
  if i then err.source = i.source; err.line = i.currentline end
  return err
end
-- Scripts that run long (kv_backend/server/busy.py): a count hook calls tick every hook_count
-- instructions. Once it answers an error (SCRIPT KILL, a library's load timing out...), every
-- line of the user's code raises it (a line hook: a pcall cannot keep the script going), as in
-- Redis; this prelude's code does not (its error handlers must work). Threads (coroutines) get
-- the hook of the thread that creates them.
local stopping = nil
local function hook()
  if stopping == nil then
    stopping = tick()
    if stopping == nil then sethook(hook, '', hook_count); return end
  end
  sethook(hook, 'l')
  local i = getinfo(2, 'S')
  if i and i.source ~= '=kvb' then error({err = stopping}, 0) end
end
local function arm() stopping = nil; sethook(hook, '', hook_count) end
local function disarm(...) sethook(); stopping = nil; return ... end
-- Lua 5.1 keeps a hook set by debug.sethook to its thread: a coroutine the script makes gets it
-- here. These are C functions to Lua, as the originals (c_function: kv_backend/server/lua_common.py),
-- with their errors; coroutine.wrap's thread sets the hook itself when it starts.
local raw_create = coroutine.create
local function lua_function(f, name)
  if type(f) ~= 'function' or getinfo(f, 'S').what == 'C' then
    error('bad argument #1 to ' .. "'" .. name .. "'" .. ' (Lua function expected)', 0)
  end
end
coroutine.create = c_function(function(f)
  lua_function(f, 'create')
  local co = raw_create(f)
  sethook(co, hook, '', hook_count)
  return co
end)
coroutine.wrap = c_function(function(f)
  lua_function(f, 'wrap')
  return co_wrap(function(...) sethook(hook, '', hook_count); return f(...) end)
end)
-- Redis 7 functions (FUNCTION LOAD / FCALL). A library's code runs once, when it is loaded, in an
-- environment that has only a small ``redis`` table (register_function, log and its levels); its
-- functions run later with every global but KEYS and ARGV. Both refuse unknown globals and writes.
local G, raw_setfenv, pairs, tostring = _G, setfenv, pairs, tostring
local loading, registering = false, nil
local function strict(lookup)
  return setmetatable({}, {
    __index = function(_, k)
      local v = lookup(k)
      if v == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
      end
      return v
    end,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
  })
end
-- Redis 7's protection of the globals: a script (or function) may neither create nor change a
-- global, nor read an undefined one, and the library tables it sees (redis, string, table...) are
-- read-only. Lua 5.1 has no read-only tables, so scripts see read-only views (empty tables whose
-- metatable reads from the real one and refuses writes), and the functions that would get around
-- a metatable (rawset, setmetatable, getmetatable, rawget, next, pairs) or give a chunk the real
-- globals (loadstring, load) are wrapped to see through the views and refuse to write to them.
-- Scripts thus cannot leave state behind for later scripts, nor break the prelude for them.
local READONLY = 'Attempt to modify a readonly table'
local raw_rawset, raw_rawget, raw_next, raw_getfenv = rawset, rawget, next, getfenv
local raw_getmetatable, raw_loadstring, raw_load = getmetatable, loadstring, load
local shown = {}  -- a view -> the table it shows
local meta_view = {}  -- a view -> what getmetatable gives for it
local function deny() error(READONLY, 2) end
local function view(t, meta)
  local v = setmetatable({}, {__index = t, __newindex = deny})
  shown[v], meta_view[v] = t, meta or false
  return v
end
local function argcheck(t, i, name)
  if type(t) ~= 'table' then
    local got = select('#', t) == 0 and 'no value' or type(t)
    error('bad argument #' .. i .. " to '" .. name .. "' (table expected, got " .. got .. ')', 3)
  end
end
local visible = {_VERSION = _VERSION}
for _, k in pairs({'assert', 'collectgarbage', 'error', 'gcinfo', 'ipairs', 'pcall', 'rawequal',
                   'select', 'tonumber', 'tostring', 'type', 'unpack', 'xpcall'}) do
  visible[k] = G[k]
end
for _, k in pairs({'coroutine', 'math', 'string', 'table', 'redis', 'bit', 'cjson', 'cmsgpack',
                   'struct'}) do
  if G[k] ~= nil then visible[k] = view(G[k]) end
end
local string_meta = raw_getmetatable('')
string_meta.__index = visible.string
local string_meta_view = view(string_meta)
function visible.rawset(t, k, v)
  argcheck(t, 1, 'rawset')
  if shown[t] or t == string_meta then error(READONLY, 0) end
  raw_rawset(t, k, v)
  return t
end
function visible.setmetatable(t, mt)
  argcheck(t, 1, 'setmetatable')
  if shown[t] or t == string_meta then error(READONLY, 0) end
  return setmetatable(t, mt)
end
function visible.getmetatable(t)
  if shown[t] then return meta_view[t] or nil end
  local mt = raw_getmetatable(t)
  if mt == string_meta then return string_meta_view end
  return mt
end
function visible.rawget(t, k)
  argcheck(t, 1, 'rawget')
  return raw_rawget(shown[t] or t, k)
end
function visible.next(t, k)
  argcheck(t, 1, 'next')
  return raw_next(shown[t] or t, k)
end
function visible.pairs(t)
  argcheck(t, 1, 'pairs')
  return raw_next, shown[t] or t, nil
end
-- a chunk gets its caller's globals (a script's or a function's), never the real ones
local function chunk_env(f)
  local env = raw_getfenv(3)
  if env == G then env = visible._G end
  if f then raw_setfenv(f, env) end
  return f
end
function visible.loadstring(...) local f, e = raw_loadstring(...); return chunk_env(f), e end
function visible.load(...) local f, e = raw_load(...); return chunk_env(f), e end
local function runtime_global(k) return visible[k] end
local script_env = strict(function(k)
  local v = visible[k]
  if v == nil and (k == 'KEYS' or k == 'ARGV') then return G[k] end
  return v
end)
visible._G = script_env
shown[script_env], meta_view[script_env] = visible, view(raw_getmetatable(script_env))
function __kvb_run(f)
  renew(); raw_setfenv(f, script_env); arm()
  return disarm(raw_xpcall(f, on_error))
end
local FLAGS = {['no-writes'] = true, ['allow-oom'] = true, ['allow-stale'] = true,
               ['no-cluster'] = true, ['allow-cross-slot-keys'] = true}
local function refuse(msg) error({err = 'ERR ' .. msg}, 0) end
local function valid_name(name)
  return type(name) == 'string' and #name > 0 and not find(name, '[^%w_]')
end
local function register_function(...)
  local n = select('#', ...)
  local name, callback, flags, description
  if n == 1 then
    local t = ...
    if type(t) ~= 'table' then
      refuse('calling redis.register_function with a single argument is only applicable to Lua table'
             .. ' (representing named arguments).')
    end
    for k, v in pairs(t) do
      if k == 'function_name' then name = v
      elseif k == 'callback' then callback = v
      elseif k == 'flags' then flags = v
      elseif k == 'description' then description = v
      else refuse('unknown argument given to redis.register_function') end
    end
    if name == nil then refuse('redis.register_function must get a function name argument') end
    if callback == nil then refuse('redis.register_function must get a callback argument') end
  elseif n == 2 then
    name, callback = ...
  else
    refuse('wrong number of arguments to redis.register_function')
  end
  if type(name) == 'number' then name = tostring(name) end
  if not valid_name(name) then
    refuse('Library names can only contain letters, numbers, or underscores(_)'
           .. ' and must be at least one character long')
  end
  if type(callback) ~= 'function' then
    refuse('second argument to redis.register_function must be a function')
  end
  local names = {}
  if flags ~= nil then
    if type(flags) ~= 'table' then
      refuse('flags argument to redis.register_function must be a table representing function flags')
    end
    for _, f in pairs(flags) do
      if type(f) ~= 'string' or not FLAGS[f] then refuse('unknown flag given') end
      names[#names + 1] = f
    end
  end
  if type(description) == 'number' then description = tostring(description) end
  if registering[name] then refuse('Function already exists in the library') end
  registering[name] = true
  local text = type(description) == 'string' and description or false
  registering[#registering + 1] = {name, callback, names, text}
end
local load_redis_fields = {register_function = register_function, log = redis.log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = version, REDIS_VERSION_NUM = version_num}
local load_redis = strict(function(k) return load_redis_fields[k] end)
local function new_env()
  return strict(function(k)
    if loading then
      if k == 'redis' then return load_redis end
      return nil
    end
    if k == 'KEYS' or k == 'ARGV' then return nil end
    return runtime_global(k)
  end)
end
local function load_error(e)
  if type(e) == 'table' and type(e.err) == 'string' then return e.err end
  return 'ERR ' .. tostring(e)
end
-- run a library's code: true and the functions it registered ({name, callback, flags, description}
-- each), or false and the error text
function __kvb_load_library(chunk)
  raw_setfenv(chunk, new_env())
  registering, loading = {}, true
  arm()
  local ok, err = disarm(raw_xpcall(chunk, load_error))
  local found = registering
  registering, loading = nil, false
  if not ok then return false, err end
  return true, found
end
function __kvb_call_function(f, keys, args)
  renew(); arm()
  return disarm(raw_xpcall(function() return f(keys, args) end, on_error))
end
python = nil
os = nil
io = nil
dofile = nil
loadfile = nil
"""

_FORBIDDEN = {
    b"monitor",
    b"multi",
    b"exec",
    b"discard",
    b"watch",
    b"unwatch",
    b"subscribe",
    b"psubscribe",
    b"unsubscribe",
    b"punsubscribe",
    b"ssubscribe",
    b"sunsubscribe",
    b"eval",
    b"evalsha",
    b"eval_ro",
    b"evalsha_ro",
    b"wait",
    b"quit",
    b"auth",
    b"hello",
    b"reset",
    b"fcall",
    b"fcall_ro",
    b"save",
    b"bgsave",
    b"shutdown",
    # the blocking commands Redis 7.0 refuses in scripts (BLMPOP and BZMPOP, and XREAD and
    # XREADGROUP without BLOCK, run without waiting, as in MULTI)
    b"blpop",
    b"brpop",
    b"brpoplpush",
    b"blmove",
    b"bzpopmin",
    b"bzpopmax",
    # a container's subcommands scripts may not call (``container|sub``): all but HELP
    b"cluster|reset",
    b"client|tracking",
    b"client|caching",
    b"client|getredir",
    b"client|trackinginfo",
    b"script|exists",
    b"script|flush",
    b"script|kill",
    b"script|load",
    b"function|delete",
    b"function|dump",
    b"function|flush",
    b"function|kill",
    b"function|list",
    b"function|load",
    b"function|restore",
    b"function|stats",
    b"client|getname",
    b"client|id",
    b"client|info",
    b"client|kill",
    b"client|list",
    b"client|no-evict",
    b"client|no-touch",
    b"client|reply",
    b"client|setinfo",
    b"client|setname",
    b"client|unblock",
    b"config|get",
    b"config|set",
    b"config|resetstat",
    b"config|rewrite",
    b"latency|latest",
    b"latency|history",
    b"latency|reset",
    b"latency|graph",
    b"latency|doctor",
    b"latency|histogram",
}

#: Commands Redis flags ``may_replicate`` (not shown by COMMAND INFO), which read-only scripts may
#: not call as if they wrote.
_MAY_REPLICATE = frozenset({b"publish", b"spublish", b"pfcount"})


class Scripts:
    """The script cache and Lua interpreter of one server.

    The scripts SCRIPT LOAD cached are also kept in the store (:data:`~kv_backend.structures.layout.SCRIPTS`),
    where every server on the directory finds them for EVALSHA; SCRIPT FLUSH deletes them and changes
    the store's mark, which makes every server forget the scripts it compiled.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.bodies: dict[str, bytes] = {}
        self._funcs: dict[str, Any] = {}
        #: Each cached script's shebang flags (``#!lua flags=no-writes,...``); None without a shebang.
        self._flags: dict[str, frozenset[bytes] | None] = {}
        self._lua: Any = None
        self._client: Connection | None = None
        self._read_only = False  # running an EVAL_RO / EVALSHA_RO script
        #: The script or function running now, or the library whose code runs (FUNCTION LOAD).
        self.running: ScriptRun | None = None
        #: The running (or last) script called ``redis.setresp(3)``: its commands reply in RESP3,
        #: and its own reply is converted as a RESP3 script's (booleans stay booleans).
        self._resp3 = False
        #: The store's SCRIPT FLUSH mark when last looked at (None: not yet), and its change token then.
        self._mark: bytes | None = None
        self._token: int | None = None

    def _runtime(self) -> Any:
        if self._lua is None:
            try:
                import lupa.lua51 as module
            except ImportError:
                raise CommandError(
                    "ERR scripting needs the 'lupa' package: "
                    "pip install 'kv-backend[server]' (or pip install lupa)"
                ) from None
            lua = module.LuaRuntime(unpack_returned_tuples=True, encoding=None, register_eval=False)
            compile_kvb = lua.eval("function(src) return loadstring(src, '=kvb') end")
            lua_cjson.install(lua, compile_kvb)
            lua_bit.install(lua, compile_kvb)
            install_msgpack(lua)  # cmsgpack and struct, before the prelude makes views of them
            prelude = compile_kvb(_PRELUDE.encode())
            c_function = compile_kvb((C_FUNCTION + "return c_function").encode())()
            version = self.server.REDIS_VERSION
            major, minor, patch = (int(p) for p in version.split("."))
            sha1 = lambda s: hashlib.sha1(bytes(s)).hexdigest().encode()  # noqa: E731
            number = (major << 16) | (minor << 8) | patch
            prelude(
                self._bridge,
                sha1,
                version.encode(),
                number,
                self._set_resp,
                c_function,
                self._acl_check,
                self._tick,
                HOOK_COUNT,
            )
            self._lua = lua
            self._loader = lua.eval("function(src) return loadstring(src, '@user_script') end")
            g = lua.globals()
            self._runner, g[b"__kvb_run"] = g[b"__kvb_run"], None
            self._load_library, g[b"__kvb_load_library"] = g[b"__kvb_load_library"], None
            self.call_function, g[b"__kvb_call_function"] = g[b"__kvb_call_function"], None
            self.function_loader = lua.eval("function(src) return loadstring(src, '@user_function') end")
            self._lua_type = module.lua_type
        return self._lua

    def _sync(self) -> None:
        """Forget the cached scripts if a SCRIPT FLUSH (of any server on the directory) changed the
        store's mark since the last look; the mark is only read when the store has changed."""
        db = self.server.db
        token = db.change_token()
        if token == self._token:
            return
        mark = db.get(SCRIPTS, b"")
        if mark != self._mark:
            if self._mark is not None:
                self._forget()
            self._mark = mark
        self._token = token

    def _stored(self, sha: str) -> bytes | None:
        """The body of the script SCRIPT LOAD stored under ``sha`` (by any server), or None."""
        if len(sha) != 40:
            return None
        body = self.server.db.get(SCRIPTS + sha.encode("ascii", "replace"))
        return body if body is not None and hashlib.sha1(body).hexdigest() == sha else None

    def load(self, body: bytes, share: bool = False) -> str:
        """Compile and cache a script; return its SHA1.

        ``share`` (SCRIPT LOAD) also keeps its body in the store, where every server on the
        directory finds it for EVALSHA (EVAL's scripts stay in this server's cache).
        """
        self._sync()
        sha = hashlib.sha1(body).hexdigest()
        if share and self._stored(sha) is None:
            self._compile(sha, body)  # a script that does not compile is not stored
            db = self.server.db
            db.put(SCRIPTS + sha.encode(), body)
        self._compile(sha, body)
        return sha

    def _compile(self, sha: str, body: bytes) -> None:
        """Compile ``body`` into the cache under ``sha`` unless it is there."""
        if sha not in self._funcs:
            flags, code = _shebang(body)
            self._runtime()
            loaded = self._loader(code)
            fn, err = loaded if isinstance(loaded, tuple) else (loaded, None)
            if fn is None:
                msg = quoted(err) if isinstance(err, bytes) else str(err)
                raise CommandError(f"ERR Error compiling script (new function): {msg}")
            self._funcs[sha] = fn
            self._flags[sha] = flags
            self.bodies[sha] = body

    def exists(self, sha: bytes) -> bool:
        self._sync()
        text = sha.decode("ascii", "replace").lower()
        return text in self._funcs or self._stored(text) is not None

    def flush(self) -> None:
        """Forget every cached script, in every server on the directory (SCRIPT FLUSH)."""
        db = self.server.db
        with db.locked(), db.batch() as b:
            for key in list(db.keys(prefix=SCRIPTS)):
                if key != SCRIPTS:
                    b.delete(key)
            self._mark = os.urandom(8)
            b.put(SCRIPTS, self._mark)
        self._forget()
        self._token = None  # the mark is read again: another server may flush next

    def _forget(self) -> None:
        self._funcs.clear()
        self._flags.clear()
        self.bodies.clear()

    def eval(self, conn: Connection, command: list[bytes], by_sha: bool, read_only: bool = False) -> Any:
        """Run a script (by body or by SHA1) with ``numkeys key... arg...``: ``command`` is the
        EVAL... call (``read_only``: EVAL_RO, whose script may not call a command that writes)."""
        script, rest = command[1], command[2:]
        if by_sha and len(script) != 40:  # no SHA1: as Redis, NOSCRIPT before the key count is read
            return ErrorReply("NOSCRIPT No matching script. Please use EVAL.")
        numkeys = parse_int(rest[0])
        if numkeys < 0:
            raise CommandError("ERR Number of keys can't be negative")
        if numkeys > len(rest) - 1:
            raise CommandError("ERR Number of keys can't be greater than number of args")
        if by_sha:
            self._sync()
            sha = script.decode("ascii", "replace").lower()
            if sha not in self._funcs:
                body = self._stored(sha)  # SCRIPT LOAD of another server
                if body is None:
                    return ErrorReply("NOSCRIPT No matching script. Please use EVAL.")
                self._compile(sha, body)
        else:
            sha = self.load(script)
        flags = self._flags[sha]
        if flags is not None:  # a shebang: its flags say whether the script may write
            if read_only and b"no-writes" not in flags:
                return ErrorReply("ERR Can not execute a script with write flag using *_ro command.")
            read_only = read_only or b"no-writes" in flags
        lua = self._runtime()
        keys, argv = rest[1 : 1 + numkeys], rest[1 + numkeys :]
        g = lua.globals()
        g.KEYS = lua.table_from(keys)
        g.ARGV = lua.table_from(argv)
        run = ScriptRun(self.server, conn, command, sha, True)
        return self._run(conn, run, read_only, self._runner, self._funcs[sha])

    def run_function(
        self,
        conn: Connection,
        callback: Any,
        name: str,
        words: list[bytes],
        numkeys: int,
        read_only: bool,
        command: list[bytes],
    ) -> Any:
        """Run a library function (FCALL ``command``) with its keys and arguments, as :meth:`eval`
        runs a script (``read_only``: a ``no-writes`` function, which may not call a command that
        writes)."""
        lua = self._runtime()
        keys, argv = lua.table_from(words[:numkeys]), lua.table_from(words[numkeys:])
        run = ScriptRun(self.server, conn, command, name, False)
        return self._run(conn, run, read_only, self.call_function, callback, keys, argv)

    def _run(self, conn: Connection, run: ScriptRun, read_only: bool, call: Any, *args: Any) -> Any:
        """Run a script or function (``call(*args)``, in Lua) for ``conn`` as one transaction: all
        of its writes or none, also across a crash. It starts in RESP2, as in Redis; one that the
        server stops in the middle (SHUTDOWN NOSAVE) raises :class:`Halted`, keeping none of its
        writes."""
        self._client = self.server.script_client(conn)
        self._client.resp3 = self._resp3 = False
        self._read_only = read_only
        self.running = run
        try:
            with self.server.db.transaction():
                outcome = call(*args)
                if run.halted:
                    raise Halted
        finally:
            self.running = None
            run.end()
            self._client.resp3 = False
            self._client = None
            self._read_only = False
        ok, result = (outcome[0], outcome[1]) if isinstance(outcome, tuple) else (outcome, None)
        if not ok:
            return self._raised(result, run.name)
        return self._to_reply(result)

    def _tick(self) -> bytes | None:
        """The Lua hook's call (every :data:`HOOK_COUNT` instructions): the error that stops the
        running code, or None."""
        run = self.running
        return None if run is None else run.tick()

    def load_library(self, chunk: Any) -> Any:
        """Run a library's code (FUNCTION LOAD), for at most :data:`LOAD_TIMEOUT` seconds, as Redis."""
        before, self.running = self.running, ScriptRun(self.server, None, [], "", False)
        try:
            return self._load_library(chunk)
        finally:
            self.running = before

    def kill(self, is_eval: bool) -> Any:
        """SCRIPT KILL (``is_eval``) or FUNCTION KILL: stop the script that runs long, unless it wrote."""
        run = self.running
        if run is None or run.pump is None:  # (nothing else runs while a script runs for less)
            return ErrorReply(NOTBUSY)
        error = run.kill(is_eval)
        return OK if error is None else ErrorReply(error)

    def _set_resp(self, resp3: bool) -> None:
        """``redis.setresp(2|3)``: the protocol the script's commands reply in from now on."""
        self._resp3 = bool(resp3)
        if self._client is not None:
            self._client.resp3 = self._resp3

    def _raised(self, error: Any, sha: str) -> ErrorReply:
        """The reply to a script that raised ``error`` (the handler made it a table): Redis 7's
        ``<err> script: <sha>, on @user_script:<line>.`` (where in the script it was raised)."""
        if self._lua_type(error) != "table":
            return ErrorReply("ERR Error running script")
        message = error[b"err"]
        if message is None:
            return ErrorReply("ERR Error running script")
        text = _reply_text(message) if isinstance(message, bytes) else _text(message)
        source, line = error[b"source"], error[b"line"]
        if source is not None and line is not None:
            text += f" script: {sha}, on {_text(source)}:{_text(line)}."
        return ErrorReply(text)

    # ---------------------------------------------------------- conversion

    def _words(self, args: tuple[Any, ...]) -> list[bytes] | str:
        """The arguments of a ``redis.call`` (or ``redis.acl_check_cmd``) as a command's words, or
        Redis's error for no argument or one that is neither a string nor a number."""
        if not args:
            return "ERR Please specify at least one argument for this redis lib call"
        words: list[bytes] = []
        for a in args:
            if isinstance(a, bytes):
                words.append(a)
            elif isinstance(a, (int, float)) and not isinstance(a, bool):
                words.append(_number_argument(a))
            else:
                return "ERR Lua redis lib command arguments must be strings or integers"
        return words

    def _acl_check(self, *args: Any) -> tuple[bool, Any]:
        """``redis.acl_check_cmd``: true for a command (and subcommand) kvb has, which its only
        user, the default one, may run; Redis's error for an unknown one."""
        words = self._words(args)
        if isinstance(words, str):
            return False, self._lua.table_from({b"err": wire_text(words)})
        cmd = COMMANDS.get(words[0].lower())
        if cmd is None or (
            cmd.subcommands is not None and len(words) > 1 and words[1].upper() not in cmd.subcommands
        ):
            invalid = b"ERR Invalid command passed to redis.acl_check_cmd()"
            return False, self._lua.table_from({b"err": invalid})
        return True, True

    def _bridge(self, *args: Any) -> tuple[bool, Any]:
        lua = self._lua
        words = self._words(args)
        if isinstance(words, str):
            return False, lua.table_from({b"err": wire_text(words)})
        client = self._client
        refused = _refusal(words, self._read_only)
        if refused is None and client is None:
            refused = "ERR This Redis command is not allowed from script"
        if refused is not None:
            return False, lua.table_from({b"err": wire_text(refused)})
        assert client is not None  # (refused above)
        run = self.running
        if run is not None and "write" in COMMANDS[words[0].lower()].flags:
            run.wrote = True  # as Redis: SCRIPT KILL no longer stops it, even if nothing changes
        reply = client.execute(words)
        if isinstance(reply, ErrorReply):
            return False, lua.table_from({b"err": wire_text(_error_table_text(reply.message))})
        return True, self._to_lua(reply)

    def _to_lua(self, value: Any) -> Any:
        """A command's reply as a script sees it: Redis's RESP2 conversion, or after
        ``redis.setresp(3)`` its RESP3 one (null -> nil, map -> ``{map=...}``, set -> ``{set=...}``,
        double -> ``{double=...}``, boolean, verbatim string -> ``{verbatim_string=...}``)."""
        lua = self._lua
        t = type(value)
        if t is bytes or t is int:
            return value
        resp3 = self._resp3
        if value is None or value is NULL_ARRAY:
            return None if resp3 else False
        if t is str:
            return lua.table_from({b"ok": wire_text(value)})
        if t is bool:
            if resp3:
                return value
            return 1 if value else False
        if t is float or t is DoubleText:
            if resp3:
                return lua.table_from({b"double": float(value)})
            return format_float(value) if t is float else bytes(value)
        if t is Verbatim:
            if resp3:
                inner = lua.table_from({b"string": bytes(value), b"format": value.format})
                return lua.table_from({b"verbatim_string": inner})
            return bytes(value)
        if t is ErrorReply:
            return lua.table_from({b"err": wire_text(value.message)})
        if t is dict or t is Pairs:
            pairs = value.items() if t is dict else value
            if resp3:  # a repeated key (XREAD naming a stream twice) keeps its last value, as in Redis
                inner = lua.table_from({self._to_lua(k): self._to_lua(v) for k, v in pairs})
                return lua.table_from({b"map": inner})
            flat: list[Any] = []
            for k, v in pairs:
                flat += [k, v]
            value = flat
        elif t is set or t is frozenset or t is OrderedSet:
            if resp3:
                return lua.table_from({b"set": lua.table_from({self._to_lua(m): True for m in value})})
            if t is not OrderedSet:
                value = sorted(value)
        return lua.table_from([self._to_lua(v) for v in value])

    def _to_reply(self, value: Any) -> Any:
        """A script's return value as the reply to its caller, as Redis 7.0 converts it: Lua
        strings, numbers (truncated) and arrays; tables ``{err=...}``, ``{ok=...}``,
        ``{double=...}``, ``{big_number=...}``, ``{verbatim_string={format=..., string=...}}``,
        ``{map=...}``, ``{set=...}`` (each only with a field of the right Lua type); booleans as
        1 and nil in a RESP2 script, as booleans once it called ``redis.setresp(3)``."""
        if value is None:
            return None
        if value is False or value is True:
            if self._resp3:
                return value
            return 1 if value else None
        if isinstance(value, bytes):
            return value
        if isinstance(value, (int, float)):
            # Redis's (long long) cast: truncated; NaN, infinities and what does not fit in an
            # int64 are its INT64_MIN
            if value != value or not -(2**63) <= value < 2**63:
                return -(2**63)
            return int(value)
        if self._lua_type(value) == "table":
            err = value[b"err"]
            if isinstance(err, bytes):
                return ErrorReply(_reply_text(err))
            ok = value[b"ok"]
            if isinstance(ok, bytes):  # as Redis: CR and LF become spaces
                return _reply_text(ok.replace(b"\r", b" ").replace(b"\n", b" "))
            double = value[b"double"]
            if isinstance(double, (int, float)) and not isinstance(double, bool):
                return _double_reply(float(double))
            big = value[b"big_number"]
            if isinstance(big, bytes):  # as Redis: CR and LF become spaces
                return BigNumber(big.replace(b"\r", b" ").replace(b"\n", b" "))
            verbatim = value[b"verbatim_string"]
            if verbatim is not None and self._lua_type(verbatim) == "table":
                fmt, text = verbatim[b"format"], verbatim[b"string"]
                if isinstance(fmt, bytes) and isinstance(text, bytes):
                    reply = Verbatim(text)
                    # as Redis, the format is read up to a zero byte and padded with spaces
                    reply.format = (c_string(fmt) + b"   ")[:3]
                    return reply
            for kind in (b"map", b"set"):
                inner = value[kind]
                if inner is not None and self._lua_type(inner) == "table":
                    return self._to_collection(inner, kind)
            out = []
            i = 1
            while True:
                item = value[i]
                if item is None:
                    break
                out.append(self._to_reply(item))
                i += 1
            return out
        return None

    def _to_collection(self, table: Any, kind: bytes) -> Any:
        """Redis 7's ``{map={k=v}}`` (a map) and ``{set={m=true}}`` (a set: the keys) script replies."""
        pairs = [(self._to_reply(k), v) for k, v in table.items()]
        if any(isinstance(k, (list, dict, set)) for k, _ in pairs):
            return ErrorReply("ERR map keys and set members in a script reply must be strings or numbers")
        if kind == b"set":
            return {k for k, _ in pairs}
        return {k: self._to_reply(v) for k, v in pairs}


def _double_reply(value: float) -> Any:
    """A script's ``{double=...}`` reply: the number, or for NaN the text Redis 7.0 writes for it
    (``nan``, ``-nan`` when its sign bit is set: ``0/0`` is)."""
    if value != value:
        return DoubleText(b"-nan" if math.copysign(1.0, value) < 0 else b"nan")
    return value


def _number_argument(number: float) -> bytes:
    """A Lua number given to ``redis.call`` as the command sees it, in the notation of Redis 7.0's
    ``%.17g``: an integer below 1e17 as its digits, any other double as a double's text
    (``1.2345678901234568e+17``, ``1e+20``, ``inf``, ``nan``; ``-nan`` when the sign bit is set, as
    for ``0/0``), in the shortest form. (Integers up to 2^63 were sent as their digits,
    which Redis 7.0 writes with an exponent: a script storing one stored other text.)"""
    number = float(number)  # Lua's numbers are doubles: lupa gives an integral one as an int
    if number != number:
        return b"-nan" if math.copysign(1.0, number) < 0 else b"nan"
    return format_float(number)


def _refusal(words: list[bytes], read_only: bool) -> str | None:
    """Redis's error for a command a script may not call as given, checked in Redis's order: an
    unknown command (or subcommand), a wrong argument count, a command scripts may not call, and
    in a read-only script (EVAL_RO) a command that writes or that Redis may replicate."""
    name = words[0].lower()
    cmd = COMMANDS.get(name)
    if cmd is None:
        return "ERR Unknown Redis command called from script"
    arity = cmd.arity
    full = name
    if cmd.subcommands is not None and len(words) > 1:
        sub = cmd.subcommands.get(words[1].upper())
        if sub is None:
            return "ERR Unknown Redis command called from script"
        arity = sub
        full = name + b"|" + words[1].lower()
    if (arity > 0 and len(words) != arity) or (arity < 0 and len(words) < -arity):
        return "ERR Wrong number of args calling Redis command from script"
    if name in _FORBIDDEN or full in _FORBIDDEN:
        return "ERR This Redis command is not allowed from script"
    if read_only and (name in _MAY_REPLICATE or "write" in cmd.flags):
        return "ERR Write commands are not allowed from read-only scripts."
    return None


#: The flags a script's shebang may give (Redis 7.0's; only ``no-writes`` changes what kvb does).
_SHEBANG_FLAGS = frozenset(
    {b"no-writes", b"allow-oom", b"allow-stale", b"no-cluster", b"allow-cross-slot-keys"}
)


def _shebang(body: bytes) -> tuple[frozenset[bytes] | None, bytes]:
    """A script's shebang flags (None without a ``#!`` first line) and the code to compile.

    The shebang is checked as Redis 7.0 checks it (``#!lua``, then ``flags=a,b`` options, words
    split and quoted as an inline command), and left out of the code but for its line feed, so
    that line numbers in errors stay the script's.
    """
    if not body.startswith(b"#!"):
        return None, body
    end = body.find(b"\n")
    if end < 0:
        raise CommandError("ERR Invalid script shebang")
    try:
        parts = split_inline(body[:end])
    except ProtocolError:
        parts = []
    if not parts:
        raise CommandError("ERR Invalid engine in script shebang")
    if parts[0] != b"#!lua":
        raise CommandError(f"ERR Unexpected engine in script shebang: {_text(parts[0])}")
    flags: set[bytes] = set()
    for part in parts[1:]:
        if not part.startswith(b"flags="):
            raise CommandError(f"ERR Unknown lua shebang option: {_text(part)}")
        for flag in part[6:].split(b",") if len(part) > 6 else []:
            if flag not in _SHEBANG_FLAGS:
                raise CommandError(f"ERR Unexpected flag in script shebang: {_text(flag)}")
            flags.add(flag)
    return frozenset(flags), body[end:]


def _error_table_text(message: str) -> str:
    """The ``err`` of the table a command's error becomes in a script, as Redis makes it: the
    first word is the error code (``ERR`` if there is only one word), CR/LF trimmed off the text."""
    code, space, text = message.partition(" ")
    if not space:
        code, text = "ERR", message
    return f"{code} {text.strip(chr(13) + chr(10))}"


def _reply_text(raw: bytes) -> str:
    """A script's status or error text as Redis sends it, a C string: up to its first zero byte;
    bytes that are not UTF-8 are kept (as surrogate escapes, which the encoder writes back)."""
    return c_string(raw).decode("utf-8", "surrogateescape")


def _text(value: Any) -> str:
    return quoted(value) if isinstance(value, bytes) else str(value)
