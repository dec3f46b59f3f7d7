"""EVAL / EVALSHA / SCRIPT: Lua scripts run atomically against the store (needs the ``lupa`` package).

Scripts see ``KEYS`` and ``ARGV`` and call commands through ``redis.call`` /
``redis.pcall`` with Redis's RESP2 conversion rules (nil bulk -> false,
integers -> numbers, status -> ``{ok=...}``, errors -> ``{err=...}``). A
script runs under the store's write lock, so no other client or process
writes while it runs. Celery's chord bookkeeping relies on this.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from kv_backend.server.protocol import NULL_ARRAY, ErrorReply
from kv_backend.structures import CommandError, format_float, parse_int

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection, Server

_PRELUDE = """
local bridge, sha1 = ...
redis = {}
function redis.call(...)
  local ok, r = bridge(...)
  if not ok then error(r, 2) end
  return r
end
function redis.pcall(...)
  local ok, r = bridge(...)
  return r
end
function redis.error_reply(msg) return {err = msg} end
function redis.status_reply(msg) return {ok = msg} end
function redis.sha1hex(s) return sha1(s) end
function redis.log(level, msg) end
function redis.setresp(n) if n ~= 2 then error("this server runs scripts with RESP2 only") end end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
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
    b"eval",
    b"evalsha",
    b"wait",
    b"script",
    b"quit",
    b"auth",
    b"hello",
    b"reset",
    b"client",
}


class Scripts:
    """The script cache and Lua interpreter of one server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.bodies: dict[str, bytes] = {}
        self._funcs: dict[str, Any] = {}
        self._lua: Any = None
        self._client: Connection | None = None

    def _runtime(self) -> Any:
        if self._lua is None:
            try:
                import lupa.lua51 as module
            except ImportError:
                raise CommandError("ERR scripting needs the 'lupa' package: pip install lupa") from None
            lua = module.LuaRuntime(unpack_returned_tuples=True, encoding=None, register_eval=False)
            lua.execute(_PRELUDE, self._bridge, lambda s: hashlib.sha1(bytes(s)).hexdigest().encode())
            self._lua = lua
            self._loader = lua.eval("function(src) return loadstring(src, '@user_script') end")
            self._runner = lua.eval("function(f) return pcall(f) end")
            self._lua_type = module.lua_type
        return self._lua

    def load(self, body: bytes) -> str:
        """Compile and cache a script; return its SHA1."""
        sha = hashlib.sha1(body).hexdigest()
        if sha not in self._funcs:
            self._runtime()
            loaded = self._loader(body)
            fn, err = loaded if isinstance(loaded, tuple) else (loaded, None)
            if fn is None:
                msg = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
                raise CommandError(f"ERR Error compiling script (new function): {msg}")
            self._funcs[sha] = fn
            self.bodies[sha] = body
        return sha

    def exists(self, sha: bytes) -> bool:
        return sha.decode("ascii", "replace").lower() in self._funcs

    def flush(self) -> None:
        self._funcs.clear()
        self.bodies.clear()

    def eval(self, conn: Connection, script: bytes, rest: list[bytes], by_sha: bool) -> Any:
        """Run a script (by body or by SHA1) with ``numkeys key... arg...``."""
        numkeys = parse_int(rest[0])
        if numkeys < 0:
            raise CommandError("ERR Number of keys can't be negative")
        if numkeys > len(rest) - 1:
            raise CommandError("ERR Number of keys can't be greater than number of args")
        if by_sha:
            sha = script.decode("ascii", "replace").lower()
            if sha not in self._funcs:
                return ErrorReply("NOSCRIPT No matching script. Please use EVAL.")
        else:
            sha = self.load(script)
        lua = self._runtime()
        keys, argv = rest[1 : 1 + numkeys], rest[1 + numkeys :]
        g = lua.globals()
        g.KEYS = lua.table_from(keys)
        g.ARGV = lua.table_from(argv)
        self._client = self.server.script_client(conn)
        try:
            with self.server.db.locked():
                outcome = self._runner(self._funcs[sha])
        finally:
            self._client = None
        ok, result = (outcome[0], outcome[1]) if isinstance(outcome, tuple) else (outcome, None)
        if not ok:
            if isinstance(result, (bytes, str)):
                text = result.decode("utf-8", "replace") if isinstance(result, bytes) else result
                return ErrorReply(_lua_error_text(text))
            reply = self._to_reply(result)
            return reply if isinstance(reply, ErrorReply) else ErrorReply("ERR Error running script")
        return self._to_reply(result)

    # ---------------------------------------------------------- conversion

    def _bridge(self, *args: Any) -> tuple[bool, Any]:
        lua = self._lua
        if not args:
            return False, lua.table_from(
                {b"err": b"ERR Please specify at least one argument for this redis lib call"}
            )
        words: list[bytes] = []
        for a in args:
            if isinstance(a, bytes):
                words.append(a)
            elif isinstance(a, (int, float)) and not isinstance(a, bool):
                words.append(str(int(a) if a == int(a) else a).encode())
            else:
                return False, lua.table_from(
                    {b"err": b"ERR Lua redis lib command arguments must be strings or integers"}
                )
        client = self._client
        if client is None or words[0].lower() in _FORBIDDEN:
            return False, lua.table_from({b"err": b"ERR This Redis command is not allowed from script"})
        reply = client.execute(words)
        if isinstance(reply, ErrorReply):
            return False, lua.table_from({b"err": reply.message.encode()})
        return True, self._to_lua(reply)

    def _to_lua(self, value: Any) -> Any:
        lua = self._lua
        t = type(value)
        if t is bytes or t is int:
            return value
        if value is None or value is NULL_ARRAY:
            return False
        if t is str:
            return lua.table_from({b"ok": value.encode()})
        if t is bool:
            return 1 if value else False
        if t is float:
            return format_float(value)
        if t is ErrorReply:
            return lua.table_from({b"err": value.message.encode()})
        if t is dict:
            flat: list[Any] = []
            for k, v in value.items():
                flat += [k, v]
            value = flat
        elif t in (set, frozenset):
            value = sorted(value)
        return lua.table_from([self._to_lua(v) for v in value])

    def _to_reply(self, value: Any) -> Any:
        if value is None or value is False:
            return None
        if value is True:
            return 1
        if isinstance(value, bytes):
            return value
        if isinstance(value, (int, float)):
            return int(value)
        if self._lua_type(value) == "table":
            err = value[b"err"]
            if err is not None:
                return ErrorReply(err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err))
            ok = value[b"ok"]
            if ok is not None:
                return ok.decode("utf-8", "replace") if isinstance(ok, bytes) else str(ok)
            double = value[b"double"]
            if double is not None:  # Redis 7's {double=...}: a double (RESP2: its text)
                try:
                    return float(double)
                except (TypeError, ValueError):
                    return ErrorReply("ERR the double field of a script reply must be a number")
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


def _lua_error_text(text: str) -> str:
    if text.startswith(("ERR", "WRONGTYPE", "NOSCRIPT")):
        return text
    return f"ERR Error running script: {text}"
