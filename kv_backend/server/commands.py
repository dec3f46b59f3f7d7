"""The Redis commands served by ``kvb serve``: argument parsing and replies over :class:`Structures`.

Each command is a function ``(conn, args) -> reply`` registered with its
Redis arity (negative: at least that many words, command name included) and
flags: ``noauth`` runs before AUTH, ``pubsub`` runs in RESP2 subscribe mode,
``tx`` is a transaction command that MULTI does not queue, ``write`` changes data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kv_backend.errors import NotAnIntegerError
from kv_backend.server.blocking import TIMED_OUT, Block
from kv_backend.server.protocol import NULL_ARRAY, OK, ErrorReply, Push, Replies, Verbatim
from kv_backend.structures import (
    CommandError,
    WrongTypeError,
    check_add_id,
    glob_match,
    parse_float,
    parse_int,
)

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection

Handler = Callable[["Connection", list[bytes]], Any]


class Command:
    """A registered command: its handler, arity and flags (and, for a container, its subcommands)."""

    __slots__ = ("arity", "flags", "handler", "name", "subcommands")

    def __init__(self, name: str, handler: Handler, arity: int, flags: frozenset[str]) -> None:
        self.name = name
        self.handler = handler
        self.arity = arity
        self.flags = flags
        self.subcommands: dict[bytes, int] | None = None

    def subcommand_error(self, args: list[bytes]) -> str | None:
        """Redis's error for an unknown subcommand or a wrong argument count (checked before MULTI queues)."""
        if self.subcommands is None:
            return None
        sub = args[1].upper()
        arity = self.subcommands.get(sub)
        if arity is None:
            return (
                f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                f"Try {self.name.upper()} HELP."
            )
        if (arity > 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
            return f"ERR wrong number of arguments for '{self.name}|{sub.decode().lower()}' command"
        return None


COMMANDS: dict[bytes, Command] = {}


def command(
    name: str, arity: int, *flags: str, subcommands: dict[bytes, int] | None = None
) -> Callable[[Handler], Handler]:
    """Register a handler under ``name`` (``subcommands``: name -> arity, for a container command)."""

    def deco(fn: Handler) -> Handler:
        cmd = Command(name.lower(), fn, arity, frozenset(flags))
        cmd.subcommands = subcommands
        COMMANDS[name.lower().encode()] = cmd
        return fn

    return deco


def syntax() -> CommandError:
    return CommandError("ERR syntax error")


def _int(raw: bytes) -> int:
    return parse_int(raw)


def _positive(raw: bytes) -> int:
    """A count that must be a non-negative integer (Redis's one message for both mistakes)."""
    try:
        n = parse_int(raw)
    except NotAnIntegerError:
        n = -1
    if n < 0:
        raise CommandError("ERR value is out of range, must be positive")
    return n


def _upper(raw: bytes) -> bytes:
    return raw.upper()


def _pairs(args: list[bytes], start: int, name: str) -> list[tuple[bytes, bytes]]:
    rest = args[start:]
    if not rest or len(rest) % 2:
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    return list(zip(rest[::2], rest[1::2], strict=True))


def _scan_opts(
    args: list[bytes], start: int, allow_type: bool = False
) -> tuple[bytes | None, int, str | None]:
    match, count, typ = None, 10, None
    i = start
    while i < len(args):
        opt = _upper(args[i])
        if i + 1 >= len(args):
            raise syntax()
        if opt == b"MATCH":
            match = args[i + 1]
        elif opt == b"COUNT":
            count = _int(args[i + 1])
            if count < 1:
                raise syntax()
        elif opt == b"TYPE" and allow_type:
            typ = args[i + 1].decode("utf-8", "replace")
        else:
            raise syntax()
        i += 2
    return match, count, typ


# ------------------------------------------------------------- connection


@command("PING", -1, "pubsub")
def cmd_ping(conn: Connection, args: list[bytes]) -> Any:
    if len(args) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if conn.in_subscribe_mode() and not conn.resp3:
        return [b"pong", args[1] if len(args) > 1 else b""]
    return args[1] if len(args) > 1 else "PONG"


@command("ECHO", 2)
def cmd_echo(conn: Connection, args: list[bytes]) -> Any:
    return args[1]


@command("QUIT", -1, "noauth", "pubsub", "tx")
def cmd_quit(conn: Connection, args: list[bytes]) -> Any:
    conn.close_after_reply = True
    return OK


@command("RESET", 1, "noauth", "pubsub", "tx")
def cmd_reset(conn: Connection, args: list[bytes]) -> Any:
    conn.reset()
    return "RESET"


@command("SELECT", 2)
def cmd_select(conn: Connection, args: list[bytes]) -> Any:
    if _int(args[1]) != 0:
        raise CommandError("ERR DB index is out of range (this server has one database, 0)")
    return OK


@command("AUTH", -2, "noauth", "pubsub")
def cmd_auth(conn: Connection, args: list[bytes]) -> Any:
    if len(args) > 3:
        raise syntax()
    password = args[-1]
    user = args[1] if len(args) == 3 else b"default"
    return conn.authenticate(user, password)


@command("HELLO", -1, "noauth", "pubsub")
def cmd_hello(conn: Connection, args: list[bytes]) -> Any:
    proto = None
    if len(args) > 1:
        try:
            proto = _int(args[1])
        except NotAnIntegerError:
            return ErrorReply("ERR Protocol version is not an integer or out of range")
        if proto not in (2, 3):
            return ErrorReply("NOPROTO unsupported protocol version")
    i = 2
    setname = None
    while i < len(args):
        opt = _upper(args[i])
        if opt == b"AUTH" and i + 2 < len(args):
            result = conn.authenticate(args[i + 1], args[i + 2])
            if isinstance(result, ErrorReply):
                return result
            i += 3
        elif opt == b"SETNAME" and i + 1 < len(args):
            setname = args[i + 1]
            i += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'")
    if not conn.authed:
        return ErrorReply(
            "NOAUTH HELLO must be called with the client already authenticated, "
            "otherwise the HELLO <proto> AUTH <user> <pass> option can be used"
        )
    if setname is not None:
        conn.name = setname
    if proto is not None:
        conn.resp3 = proto == 3
    from kv_backend import __version__

    return {
        b"server": b"redis",
        b"version": conn.server.REDIS_VERSION.encode(),
        b"proto": 3 if conn.resp3 else 2,
        b"id": conn.id,
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
        b"kvb_version": __version__.encode(),
    }


@command("CLIENT", -2)
def cmd_client(conn: Connection, args: list[bytes]) -> Any:
    sub = _upper(args[1])
    if sub == b"ID" and len(args) == 2:
        return conn.id
    if sub == b"SETNAME" and len(args) == 3:
        if any(c <= 32 or c >= 127 for c in args[2]):
            raise CommandError("ERR Client names cannot contain spaces, newlines or special characters.")
        conn.name = args[2] or None
        return OK
    if sub == b"GETNAME" and len(args) == 2:
        return conn.name
    if sub == b"SETINFO" and len(args) == 4:
        if _upper(args[2]) not in (b"LIB-NAME", b"LIB-VER"):
            raise CommandError(f"ERR Unrecognized option '{args[2].decode('utf-8', 'replace')}'")
        conn.lib[_upper(args[2]).decode()] = args[3]
        return OK
    if sub in (b"LIST", b"INFO"):
        conns = [conn] if sub == b"INFO" else list(conn.server.clients.values())
        return Verbatim(b"".join(c.describe() + b"\n" for c in conns))
    if sub == b"UNBLOCK" and len(args) in (3, 4):
        how = _upper(args[3]) if len(args) == 4 else b"TIMEOUT"
        if how not in (b"TIMEOUT", b"ERROR"):
            raise CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
        target = conn.server.clients.get(_int(args[2]))
        if target is None or target.blocked is None:
            return 0
        conn.server.waiters.unblock(target)
        unblocked = ErrorReply("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        target.resume(TIMED_OUT if how == b"TIMEOUT" else unblocked)
        return 1
    if sub in (b"NO-EVICT", b"NO-TOUCH") and len(args) == 3:
        return OK
    if sub == b"REPLY" and len(args) == 3:
        return OK
    raise CommandError(
        "ERR unknown subcommand or wrong number of arguments for "
        f"'{args[1].decode('utf-8', 'replace')}'. Try CLIENT HELP."
    )


@command("COMMAND", -1)
def cmd_command(conn: Connection, args: list[bytes]) -> Any:
    def info(c: Command) -> list[Any]:
        flags = ["write" if "write" in c.flags else "readonly"]
        first = 1 if c.arity not in (1, -1) and c.name not in _NOKEY else 0
        return [c.name.encode(), c.arity, flags, first, first, 1 if first else 0]

    if len(args) == 1:
        return [info(c) for c in COMMANDS.values()]
    sub = _upper(args[1])
    if sub == b"COUNT":
        return len(COMMANDS)
    if sub == b"INFO":
        names = [a.lower() for a in args[2:]] or list(COMMANDS)
        return [info(COMMANDS[n]) if n in COMMANDS else None for n in names]
    if sub == b"DOCS":
        names = [a.lower() for a in args[2:]] or list(COMMANDS)
        return {
            n: {b"summary": (COMMANDS[n].handler.__doc__ or "").encode(), b"arity": COMMANDS[n].arity}
            for n in names
            if n in COMMANDS
        }
    if sub == b"LIST":
        return [c.name.encode() for c in COMMANDS.values()]
    raise CommandError(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try COMMAND HELP.")


_NOKEY = {
    "ping",
    "echo",
    "quit",
    "reset",
    "select",
    "auth",
    "hello",
    "client",
    "command",
    "config",
    "info",
    "dbsize",
    "flushdb",
    "flushall",
    "randomkey",
    "keys",
    "scan",
    "multi",
    "exec",
    "discard",
    "unwatch",
    "publish",
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "pubsub",
    "time",
    "eval",
    "evalsha",
    "script",
    "lastsave",
    "save",
    "bgsave",
    "wait",
}


@command("CONFIG", -2)
def cmd_config(conn: Connection, args: list[bytes]) -> Any:
    sub = _upper(args[1])
    if sub == b"GET" and len(args) >= 3:
        params = conn.server.config()
        out: dict[bytes, bytes] = {}
        for pattern in args[2:]:
            for k, v in params.items():
                if glob_match(pattern.lower(), k):
                    out[k] = v
        return out
    if sub == b"SET" and len(args) >= 4:
        raise CommandError(
            "ERR CONFIG SET is not supported: configure kvb serve with its command line options"
        )
    if sub == b"RESETSTAT" and len(args) == 2:
        return OK
    raise CommandError(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try CONFIG HELP.")


@command("INFO", -1)
def cmd_info(conn: Connection, args: list[bytes]) -> Any:
    return Verbatim(conn.server.info([a.lower() for a in args[1:]]))


@command("TIME", 1)
def cmd_time(conn: Connection, args: list[bytes]) -> Any:
    now = time.time()
    return [str(int(now)).encode(), str(int((now % 1) * 1_000_000)).encode()]


@command("LASTSAVE", 1)
def cmd_lastsave(conn: Connection, args: list[bytes]) -> Any:
    return int(time.time())


@command("SAVE", 1)
def cmd_save(conn: Connection, args: list[bytes]) -> Any:
    conn.server.db.sync()
    return OK


@command("BGSAVE", -1)
def cmd_bgsave(conn: Connection, args: list[bytes]) -> Any:
    conn.server.db.sync()
    return "Background saving started"


# --------------------------------------------------------------- strings


@command("GET", 2)
def cmd_get(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.get(args[1])


@command("SET", -3, "write")
def cmd_set(conn: Connection, args: list[bytes]) -> Any:
    st = conn.st
    if len(args) == 3:
        return OK if st.set(args[1], args[2]) else None
    flags, unit, raw = _string_options(args, 3, _SET_OPTIONS)
    ex, exat = _expire_value(raw, unit, "set") if unit is not None else (None, None)
    nx, xx, keepttl, get = (opt in flags for opt in (b"NX", b"XX", b"KEEPTTL", b"GET"))
    result = st.set(args[1], args[2], ex=ex, nx=nx, xx=xx, keepttl=keepttl, get=get, exat=exat)
    if get:
        return result
    return OK if result else None


_EXPIRE_UNITS = (b"EX", b"PX", b"EXAT", b"PXAT")
_SET_OPTIONS = frozenset({b"NX", b"XX", b"GET", b"KEEPTTL", *_EXPIRE_UNITS})
_GETEX_OPTIONS = frozenset({b"PERSIST", *_EXPIRE_UNITS})
_EXCLUDES = {b"NX": b"XX", b"XX": b"NX"}


def _string_options(
    args: list[bytes], start: int, allowed: frozenset[bytes]
) -> tuple[set[bytes], bytes | None, bytes]:
    """SET's and GETEX's options as Redis reads them: ``(flags, expire unit or None, its raw value)``.

    An option may repeat; NX and XX, and an expire with KEEPTTL or PERSIST,
    exclude each other. The expire value is checked later, after the options
    (and, for GETEX, after the key), as Redis checks it.
    """
    flags: set[bytes] = set()
    unit: bytes | None = None
    raw = b""
    i = start
    while i < len(args):
        opt = _upper(args[i])
        if opt not in allowed:
            raise syntax()
        if opt in _EXPIRE_UNITS:
            if unit not in (None, opt) or b"KEEPTTL" in flags or b"PERSIST" in flags or i + 1 >= len(args):
                raise syntax()
            unit, raw = opt, args[i + 1]
            i += 1
        elif _EXCLUDES.get(opt) in flags or (opt in (b"KEEPTTL", b"PERSIST") and unit is not None):
            raise syntax()
        else:
            flags.add(opt)
        i += 1
    return flags, unit, raw


def _expire_value(raw: bytes, unit: bytes, command: str) -> tuple[float | None, float | None]:
    """An expire argument checked as Redis does: ``(seconds to live, None)`` for EX/PX,
    ``(None, Unix time in seconds)`` for EXAT/PXAT."""
    n = _int(raw)
    if n <= 0 or n > 2**62 // 1000:
        raise CommandError(f"ERR invalid expire time in '{command}' command")
    seconds = n / 1000 if unit in (b"PX", b"PXAT") else float(n)
    return (seconds, None) if unit in (b"EX", b"PX") else (None, seconds)


@command("SETEX", 4, "write")
def cmd_setex(conn: Connection, args: list[bytes]) -> Any:
    n = _int(args[2])
    if n <= 0:
        raise CommandError("ERR invalid expire time in 'setex' command")
    conn.st.set(args[1], args[3], ex=float(n))
    return OK


@command("PSETEX", 4, "write")
def cmd_psetex(conn: Connection, args: list[bytes]) -> Any:
    n = _int(args[2])
    if n <= 0:
        raise CommandError("ERR invalid expire time in 'psetex' command")
    conn.st.set(args[1], args[3], ex=n / 1000)
    return OK


@command("SETNX", 3, "write")
def cmd_setnx(conn: Connection, args: list[bytes]) -> Any:
    return int(conn.st.setnx(args[1], args[2]))


@command("MGET", -2)
def cmd_mget(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.mget(*args[1:])


@command("MSET", -3, "write")
def cmd_mset(conn: Connection, args: list[bytes]) -> Any:
    conn.st.mset(dict(_pairs(args, 1, "mset")))
    return OK


@command("MSETNX", -3, "write")
def cmd_msetnx(conn: Connection, args: list[bytes]) -> Any:
    return int(conn.st.msetnx(dict(_pairs(args, 1, "msetnx"))))


@command("GETDEL", 2, "write")
def cmd_getdel(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.getdel(args[1])


@command("GETSET", 3, "write")
def cmd_getset(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.getset(args[1], args[2])


@command("GETEX", -2, "write")
def cmd_getex(conn: Connection, args: list[bytes]) -> Any:
    flags, unit, raw = _string_options(args, 2, _GETEX_OPTIONS)
    st = conn.st
    if unit is None:
        return st.getex(args[1], persist=b"PERSIST" in flags)
    if st.get(args[1]) is None:  # a missing key (or WRONGTYPE) before the expire value, as Redis
        return None
    ex, exat = _expire_value(raw, unit, "getex")
    return st.getex(args[1], ex=ex, exat=exat)


@command("APPEND", 3, "write")
def cmd_append(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.append(args[1], args[2])


@command("STRLEN", 2)
def cmd_strlen(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.strlen(args[1])


@command("GETRANGE", 4)
def cmd_getrange(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.getrange(args[1], _int(args[2]), _int(args[3]))


@command("INCR", 2, "write")
def cmd_incr(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.incrby(args[1], 1)


@command("DECR", 2, "write")
def cmd_decr(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.incrby(args[1], -1)


@command("INCRBY", 3, "write")
def cmd_incrby(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.incrby(args[1], _int(args[2]))


@command("DECRBY", 3, "write")
def cmd_decrby(conn: Connection, args: list[bytes]) -> Any:
    n = _int(args[2])
    if n == -(2**63):
        raise CommandError("ERR decrement would overflow")
    return conn.st.incrby(args[1], -n)


@command("INCRBYFLOAT", 3, "write")
def cmd_incrbyfloat(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.incrbyfloat_text(args[1], args[2])


# ------------------------------------------------------------------ keys


@command("DEL", -2, "write")
def cmd_del(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.delete(*args[1:])


@command("UNLINK", -2, "write")
def cmd_unlink(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.delete(*args[1:])


@command("EXISTS", -2)
def cmd_exists(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.exists(*args[1:])


def _expire(conn: Connection, args: list[bytes], scale: float, absolute: bool) -> int:
    """EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT: the options, then the time, then the key."""
    flags: set[bytes] = set()
    for a in args[3:]:
        opt = _upper(a)
        if opt not in (b"NX", b"XX", b"GT", b"LT"):
            raise CommandError(f"ERR Unsupported option {a.decode('utf-8', 'replace')}")
        flags.add(opt)
    if b"NX" in flags and len(flags) > 1:
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {b"GT", b"LT"} <= flags:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    name = args[0].decode("ascii", "replace").lower()
    n = _int(args[2])
    if abs(n) > 2**62 // 1000:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    at = n * scale if absolute else time.time() + n * scale
    st = conn.st
    with st.db.locked():
        try:
            current = st.expiretime(args[1])
        except KeyError:
            return 0
        if b"NX" in flags and current is not None:
            return 0
        if b"XX" in flags and current is None:
            return 0
        if b"GT" in flags and (current is None or at <= current):
            return 0
        if b"LT" in flags and current is not None and at >= current:
            return 0
        return int(st.expireat(args[1], at))  # a time already past deletes the key


@command("EXPIRE", -3, "write")
def cmd_expire(conn: Connection, args: list[bytes]) -> Any:
    return _expire(conn, args, 1.0, absolute=False)


@command("PEXPIRE", -3, "write")
def cmd_pexpire(conn: Connection, args: list[bytes]) -> Any:
    return _expire(conn, args, 0.001, absolute=False)


@command("EXPIREAT", -3, "write")
def cmd_expireat(conn: Connection, args: list[bytes]) -> Any:
    return _expire(conn, args, 1.0, absolute=True)


@command("PEXPIREAT", -3, "write")
def cmd_pexpireat(conn: Connection, args: list[bytes]) -> Any:
    return _expire(conn, args, 0.001, absolute=True)


def _ttl(conn: Connection, key: bytes, ms: bool, absolute: bool = False) -> int:
    """TTL/PTTL (time left) or EXPIRETIME/PEXPIRETIME (``absolute``): -2 missing, -1 no expiry."""
    try:
        t = conn.st.expiretime(key) if absolute else conn.st.ttl(key)
    except KeyError:
        return -2
    if t is None:
        return -1
    t_ms = round(t * 1000)
    return t_ms if ms else (t_ms + 500) // 1000  # Redis rounds half a second up


@command("TTL", 2)
def cmd_ttl(conn: Connection, args: list[bytes]) -> Any:
    return _ttl(conn, args[1], ms=False)


@command("PTTL", 2)
def cmd_pttl(conn: Connection, args: list[bytes]) -> Any:
    return _ttl(conn, args[1], ms=True)


@command("EXPIRETIME", 2)
def cmd_expiretime(conn: Connection, args: list[bytes]) -> Any:
    return _ttl(conn, args[1], ms=False, absolute=True)


@command("PEXPIRETIME", 2)
def cmd_pexpiretime(conn: Connection, args: list[bytes]) -> Any:
    return _ttl(conn, args[1], ms=True, absolute=True)


@command("PERSIST", 2, "write")
def cmd_persist(conn: Connection, args: list[bytes]) -> Any:
    return int(conn.st.persist(args[1]))


@command("TYPE", 2)
def cmd_type(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.type(args[1])


@command("KEYS", 2)
def cmd_keys(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.keys(args[1])


@command("SCAN", -2)
def cmd_scan(conn: Connection, args: list[bytes]) -> Any:
    match, count, typ = _scan_opts(args, 2, allow_type=True)
    cursor, names = conn.st.scan(args[1], match=match, count=count, type=typ)
    return [str(cursor).encode(), names]


@command("RENAME", 3, "write")
def cmd_rename(conn: Connection, args: list[bytes]) -> Any:
    try:
        conn.st.rename(args[1], args[2])
    except KeyError:
        raise CommandError("ERR no such key") from None
    return OK


@command("RENAMENX", 3, "write")
def cmd_renamenx(conn: Connection, args: list[bytes]) -> Any:
    try:
        return int(conn.st.rename(args[1], args[2], nx=True))
    except KeyError:
        raise CommandError("ERR no such key") from None


@command("DBSIZE", 1)
def cmd_dbsize(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.dbsize()


@command("FLUSHDB", -1, "write")
def cmd_flushdb(conn: Connection, args: list[bytes]) -> Any:
    if len(args) > 2 or (len(args) == 2 and _upper(args[1]) not in (b"ASYNC", b"SYNC")):
        raise syntax()
    conn.st.flushdb()
    return OK


@command("FLUSHALL", -1, "write")
def cmd_flushall(conn: Connection, args: list[bytes]) -> Any:
    return cmd_flushdb(conn, args)


@command("RANDOMKEY", 1)
def cmd_randomkey(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.randomkey()


# ---------------------------------------------------------------- hashes


@command("HSET", -4, "write")
def cmd_hset(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hset_pairs(args[1], _pairs(args, 2, "hset"))


@command("HMSET", -4, "write")
def cmd_hmset(conn: Connection, args: list[bytes]) -> Any:
    conn.st.hset_pairs(args[1], _pairs(args, 2, "hmset"))
    return OK


@command("HSETNX", 4, "write")
def cmd_hsetnx(conn: Connection, args: list[bytes]) -> Any:
    return int(conn.st.hsetnx(args[1], args[2], args[3]))


@command("HGET", 3)
def cmd_hget(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hget(args[1], args[2])


@command("HMGET", -3)
def cmd_hmget(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hmget(args[1], *args[2:])


@command("HGETALL", 2)
def cmd_hgetall(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hgetall(args[1])


@command("HDEL", -3, "write")
def cmd_hdel(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hdel(args[1], *args[2:])


@command("HINCRBY", 4, "write")
def cmd_hincrby(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hincrby(args[1], args[2], _int(args[3]))


@command("HINCRBYFLOAT", 4, "write")
def cmd_hincrbyfloat(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hincrbyfloat_text(args[1], args[2], args[3])


@command("HEXISTS", 3)
def cmd_hexists(conn: Connection, args: list[bytes]) -> Any:
    return int(conn.st.hexists(args[1], args[2]))


@command("HLEN", 2)
def cmd_hlen(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hlen(args[1])


@command("HSTRLEN", 3)
def cmd_hstrlen(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hstrlen(args[1], args[2])


@command("HKEYS", 2)
def cmd_hkeys(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hkeys(args[1])


@command("HVALS", 2)
def cmd_hvals(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hvals(args[1])


@command("HSCAN", -3)
def cmd_hscan(conn: Connection, args: list[bytes]) -> Any:
    match, count, _ = _scan_opts(args, 3)
    cursor, items = conn.st.hscan(args[1], args[2], match=match, count=count)
    flat: list[bytes] = []
    for k, v in items.items():
        flat += [k, v]
    return [str(cursor).encode(), flat]


# ----------------------------------------------------------------- lists


@command("LPUSH", -3, "write")
def cmd_lpush(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.lpush(args[1], *args[2:])


@command("RPUSH", -3, "write")
def cmd_rpush(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.rpush(args[1], *args[2:])


@command("LPUSHX", -3, "write")
def cmd_lpushx(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.lpushx(args[1], *args[2:])


@command("RPUSHX", -3, "write")
def cmd_rpushx(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.rpushx(args[1], *args[2:])


def _pop(conn: Connection, args: list[bytes], left: bool) -> Any:
    if len(args) > 3:
        raise CommandError(f"ERR wrong number of arguments for '{args[0].decode('latin-1').lower()}' command")
    if len(args) == 3:
        count = _positive(args[2])
        out = conn.st.lpop(args[1], count) if left else conn.st.rpop(args[1], count)
        return NULL_ARRAY if out is None else out
    return conn.st.lpop(args[1]) if left else conn.st.rpop(args[1])


@command("LPOP", -2, "write")
def cmd_lpop(conn: Connection, args: list[bytes]) -> Any:
    return _pop(conn, args, True)


@command("RPOP", -2, "write")
def cmd_rpop(conn: Connection, args: list[bytes]) -> Any:
    return _pop(conn, args, False)


@command("LRANGE", 4)
def cmd_lrange(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.lrange(args[1], _int(args[2]), _int(args[3]))


@command("LLEN", 2)
def cmd_llen(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.llen(args[1])


@command("LINDEX", 3)
def cmd_lindex(conn: Connection, args: list[bytes]) -> Any:
    if not conn.st.llen(args[1]):  # a missing key (or WRONGTYPE) before the index, as Redis
        return None
    return conn.st.lindex(args[1], _int(args[2]))


@command("LSET", 4, "write")
def cmd_lset(conn: Connection, args: list[bytes]) -> Any:
    if not conn.st.llen(args[1]):  # a missing key (or WRONGTYPE) before the index, as Redis
        raise CommandError("ERR no such key")
    conn.st.lset(args[1], _int(args[2]), args[3])
    return OK


@command("LREM", 4, "write")
def cmd_lrem(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.lrem(args[1], _int(args[2]), args[3])


@command("LTRIM", 4, "write")
def cmd_ltrim(conn: Connection, args: list[bytes]) -> Any:
    conn.st.ltrim(args[1], _int(args[2]), _int(args[3]))
    return OK


@command("LINSERT", 5, "write")
def cmd_linsert(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.linsert(args[1], args[2].decode("latin-1"), args[3], args[4])


@command("RPOPLPUSH", 3, "write")
def cmd_rpoplpush(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.rpoplpush(args[1], args[2])


@command("LMOVE", 5, "write")
def cmd_lmove(conn: Connection, args: list[bytes]) -> Any:
    a, b = _upper(args[3]), _upper(args[4])
    if a not in (b"LEFT", b"RIGHT") or b not in (b"LEFT", b"RIGHT"):
        raise syntax()
    return conn.st.lmove(args[1], args[2], a.decode(), b.decode())


_LLONG_MAX = (1 << 63) - 1


def _timeout(raw: bytes) -> float:
    """A blocking command's timeout in seconds (0: for ever), checked as Redis checks it."""
    seconds = parse_float(raw, "ERR timeout is not a float or out of range", overflow=True)
    if seconds * 1000 > _LLONG_MAX - time.time() * 1000:  # as Redis 7.2: the deadline must fit in ms
        raise CommandError("ERR timeout is out of range")
    if seconds < 0:
        raise CommandError("ERR timeout is negative")
    return seconds


def try_or_block(
    conn: Connection,
    keys: list[bytes],
    timeout: float,
    attempt: Callable[[], Any],
    empty: Any,
    pushes: list[bytes] | None = None,
) -> Any:
    """Run ``attempt`` now; when it finds nothing, wait for ``keys``.

    Where a client may not block (inside EXEC, in a script) the answer is ``empty`` at once;
    a wait that times out answers a null array, as Redis answers every blocked list command.
    """
    reply = attempt()
    if reply is not None:
        return reply
    if not conn.can_block:  # inside EXEC or a script: answer at once, as Redis does
        return empty
    return Block(keys, timeout, attempt, pushes)


def _blocking_pop(conn: Connection, args: list[bytes], left: bool) -> Any:
    keys = args[1:-1]
    timeout = _timeout(args[-1])
    pop_first = conn.st.pop_first

    def attempt() -> list[bytes] | None:
        found = pop_first(keys, left)
        return None if found is None else list(found)

    return try_or_block(conn, keys, timeout, attempt, NULL_ARRAY)


@command("BLPOP", -3, "write")
def cmd_blpop(conn: Connection, args: list[bytes]) -> Any:
    """Pop the first element of the first non-empty list, waiting up to timeout seconds (0: for ever)."""
    return _blocking_pop(conn, args, True)


@command("BRPOP", -3, "write")
def cmd_brpop(conn: Connection, args: list[bytes]) -> Any:
    """Pop the last element of the first non-empty list, waiting up to timeout seconds (0: for ever)."""
    return _blocking_pop(conn, args, False)


def _blocking_move(conn: Connection, src: bytes, dst: bytes, a: bytes, b: bytes, raw_timeout: bytes) -> Any:
    timeout = _timeout(raw_timeout)
    st = conn.st
    wherefrom, whereto = a.decode(), b.decode()
    return try_or_block(conn, [src], timeout, lambda: st.lmove(src, dst, wherefrom, whereto), None, [dst])


@command("BLMOVE", 6, "write")
def cmd_blmove(conn: Connection, args: list[bytes]) -> Any:
    """LMOVE that waits up to timeout seconds (0: for ever) for the source list to have an element."""
    a, b = _upper(args[3]), _upper(args[4])
    if a not in (b"LEFT", b"RIGHT") or b not in (b"LEFT", b"RIGHT"):
        raise syntax()
    return _blocking_move(conn, args[1], args[2], a, b, args[5])


@command("BRPOPLPUSH", 4, "write")
def cmd_brpoplpush(conn: Connection, args: list[bytes]) -> Any:
    """RPOPLPUSH that waits up to timeout seconds (0: for ever) for the source list to have an element."""
    return _blocking_move(conn, args[1], args[2], b"RIGHT", b"LEFT", args[3])


# ------------------------------------------------------------------ sets


@command("SADD", -3, "write")
def cmd_sadd(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.sadd(args[1], *args[2:])


@command("SREM", -3, "write")
def cmd_srem(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.srem(args[1], *args[2:])


@command("SMEMBERS", 2)
def cmd_smembers(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.smembers(args[1])


@command("SISMEMBER", 3)
def cmd_sismember(conn: Connection, args: list[bytes]) -> Any:
    return int(conn.st.sismember(args[1], args[2]))


@command("SMISMEMBER", -3)
def cmd_smismember(conn: Connection, args: list[bytes]) -> Any:
    return [int(x) for x in conn.st.smismember(args[1], *args[2:])]


@command("SCARD", 2)
def cmd_scard(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.scard(args[1])


@command("SINTER", -2)
def cmd_sinter(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.sinter(*args[1:])


@command("SUNION", -2)
def cmd_sunion(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.sunion(*args[1:])


@command("SDIFF", -2)
def cmd_sdiff(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.sdiff(*args[1:])


@command("SPOP", -2, "write")
def cmd_spop(conn: Connection, args: list[bytes]) -> Any:
    if len(args) == 2:
        return conn.st.spop(args[1])
    if len(args) != 3:
        raise syntax()
    count = _positive(args[2])
    out = []
    with conn.st.db.locked():
        conn.st.scard(args[1])  # WRONGTYPE even for a count of 0, as Redis
        for _ in range(count):
            m = conn.st.spop(args[1])
            if m is None:
                break
            out.append(m)
    return set(out) if conn.resp3 else out


@command("SRANDMEMBER", -2)
def cmd_srandmember(conn: Connection, args: list[bytes]) -> Any:
    if len(args) == 2:
        return conn.st.srandmember(args[1])
    if len(args) > 3:
        raise syntax()
    count = _int(args[2])  # the count before the key's type, as Redis
    members = sorted(conn.st.smembers(args[1]))
    import random

    if count >= 0:
        return random.sample(members, min(count, len(members)))
    return [random.choice(members) for _ in range(-count)] if members else []


@command("SSCAN", -3)
def cmd_sscan(conn: Connection, args: list[bytes]) -> Any:
    match, count, _ = _scan_opts(args, 3)
    cursor, members = conn.st.sscan(args[1], args[2], match=match, count=count)
    return [str(cursor).encode(), members]


# ----------------------------------------------------------- sorted sets


def _scored(conn: Connection, items: list[tuple[bytes, float]]) -> list[Any]:
    if conn.resp3:
        return [[m, s] for m, s in items]
    from kv_backend.structures import format_float

    flat: list[Any] = []
    for m, s in items:
        flat += [m, format_float(s)]
    return flat


@command("ZADD", -4, "write")
def cmd_zadd(conn: Connection, args: list[bytes]) -> Any:
    opts: set[bytes] = set()
    i = 2
    while i < len(args) and _upper(args[i]) in (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"):
        opts.add(_upper(args[i]))
        i += 1
    rest = args[i:]
    if not rest or len(rest) % 2:
        raise syntax()
    pairs = list(zip(rest[1::2], rest[::2], strict=True))  # scores are read after the options are checked
    result = conn.st.zadd(
        args[1],
        pairs,
        nx=b"NX" in opts,
        xx=b"XX" in opts,
        gt=b"GT" in opts,
        lt=b"LT" in opts,
        ch=b"CH" in opts,
        incr=b"INCR" in opts,
    )
    if b"INCR" in opts:
        return _score_reply(conn, result)
    return result


def _score_reply(conn: Connection, score: float | None) -> Any:
    if score is None or conn.resp3:
        return score
    from kv_backend.structures import format_float

    return format_float(score)


@command("ZINCRBY", 4, "write")
def cmd_zincrby(conn: Connection, args: list[bytes]) -> Any:
    return _score_reply(conn, conn.st.zincrby(args[1], parse_float(args[2]), args[3]))


@command("ZREM", -3, "write")
def cmd_zrem(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zrem(args[1], *args[2:])


@command("ZSCORE", 3)
def cmd_zscore(conn: Connection, args: list[bytes]) -> Any:
    return _score_reply(conn, conn.st.zscore(args[1], args[2]))


@command("ZMSCORE", -3)
def cmd_zmscore(conn: Connection, args: list[bytes]) -> Any:
    return [_score_reply(conn, s) for s in conn.st.zmscore(args[1], *args[2:])]


@command("ZCARD", 2)
def cmd_zcard(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zcard(args[1])


@command("ZCOUNT", 4)
def cmd_zcount(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zcount(args[1], args[2], args[3])


def _range_opts(args: list[bytes], start: int, allow_by: bool) -> dict[str, Any]:
    opts: dict[str, Any] = {"withscores": False, "limit": None, "by": None, "rev": False}
    i = start
    while i < len(args):
        opt = _upper(args[i])
        if opt == b"WITHSCORES":
            opts["withscores"] = True
        elif opt == b"LIMIT" and i + 2 < len(args):
            opts["limit"] = (_int(args[i + 1]), _int(args[i + 2]))
            i += 2
        elif allow_by and opt in (b"BYSCORE", b"BYLEX") and opts["by"] is None:
            if opt == b"BYLEX":
                raise CommandError("ERR BYLEX ranges are not supported by this server")
            opts["by"] = "score"
        elif allow_by and opt == b"REV" and not opts["rev"]:
            opts["rev"] = True
        else:
            raise syntax()
        i += 1
    return opts


def _by_score(conn: Connection, key: bytes, lo: bytes, hi: bytes, opts: dict[str, Any], rev: bool) -> Any:
    start, num = opts["limit"] if opts["limit"] else (None, None)
    if rev:
        items = conn.st.zrevrangebyscore(key, hi, lo, start, num, withscores=True)
    else:
        items = conn.st.zrangebyscore(key, lo, hi, start, num, withscores=True)
    if opts["withscores"]:
        return _scored(conn, items)
    return [m for m, _ in items]


@command("ZRANGE", -4)
def cmd_zrange(conn: Connection, args: list[bytes]) -> Any:
    opts = _range_opts(args, 4, allow_by=True)
    if opts["by"] == "score":
        lo, hi = (args[3], args[2]) if opts["rev"] else (args[2], args[3])
        return _by_score(conn, args[1], lo, hi, opts, opts["rev"])
    if opts["limit"] and opts["limit"][1] != -1:  # Redis lets "LIMIT <offset> -1" pass, and ignores it
        raise CommandError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    items = conn.st.zrange(args[1], _int(args[2]), _int(args[3]), desc=opts["rev"], withscores=True)
    return _scored(conn, items) if opts["withscores"] else [m for m, _ in items]


@command("ZREVRANGE", -4)
def cmd_zrevrange(conn: Connection, args: list[bytes]) -> Any:
    opts = _range_opts(args, 4, allow_by=False)
    if opts["limit"]:
        raise syntax()
    items = conn.st.zrange(args[1], _int(args[2]), _int(args[3]), desc=True, withscores=True)
    return _scored(conn, items) if opts["withscores"] else [m for m, _ in items]


@command("ZRANGEBYSCORE", -4)
def cmd_zrangebyscore(conn: Connection, args: list[bytes]) -> Any:
    return _by_score(conn, args[1], args[2], args[3], _range_opts(args, 4, allow_by=False), rev=False)


@command("ZREVRANGEBYSCORE", -4)
def cmd_zrevrangebyscore(conn: Connection, args: list[bytes]) -> Any:
    return _by_score(conn, args[1], args[3], args[2], _range_opts(args, 4, allow_by=False), rev=True)


@command("ZRANK", 3)
def cmd_zrank(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zrank(args[1], args[2])


@command("ZREVRANK", 3)
def cmd_zrevrank(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zrevrank(args[1], args[2])


@command("ZREMRANGEBYSCORE", 4, "write")
def cmd_zremrangebyscore(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zremrangebyscore(args[1], args[2], args[3])


@command("ZREMRANGEBYRANK", 4, "write")
def cmd_zremrangebyrank(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.zremrangebyrank(args[1], _int(args[2]), _int(args[3]))


@command("ZSCAN", -3)
def cmd_zscan(conn: Connection, args: list[bytes]) -> Any:
    match, count, _ = _scan_opts(args, 3)
    cursor, items = conn.st.zscan(args[1], args[2], match=match, count=count)
    from kv_backend.structures import format_float

    flat: list[bytes] = []
    for m, s in items:
        flat += [m, format_float(s)]
    return [str(cursor).encode(), flat]


# --------------------------------------------------------------- streams


def _stream_options(args: list[bytes], i: int, xadd: bool) -> tuple[dict[str, Any], int]:
    """Parse XADD/XTRIM options from ``args[i]`` on, in any order, as Redis does.

    ``MAXLEN|MINID [=|~] threshold``, ``LIMIT n`` and (XADD) ``NOMKSTREAM``;
    returns the keyword arguments and, for XADD, the index of the entry ID.
    """
    options: dict[str, Any] = {}
    n = len(args)
    while i < n:
        word = _upper(args[i])
        more = n - i - 1
        if word in (b"MAXLEN", b"MINID") and more >= 1:
            key = "maxlen" if word == b"MAXLEN" else "minid"
            other = "minid" if key == "maxlen" else "maxlen"
            if other in options:
                raise CommandError(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
                )
            i += 1
            if args[i] in (b"=", b"~") and more >= 2:
                options["approximate"] = args[i] == b"~"
                i += 1
            options[key] = _int(args[i]) if key == "maxlen" else args[i]
        elif word == b"LIMIT" and more >= 1:
            options["limit"] = _int(args[i + 1])
            i += 1
        elif xadd and word == b"NOMKSTREAM":
            options["nomkstream"] = True
        elif xadd:
            check_add_id(args[i], syntax_only=True)  # as Redis: the ID is read before the options are checked
            break
        else:
            raise syntax()
        i += 1
    if "limit" in options and "maxlen" not in options and "minid" not in options:
        raise CommandError("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
    if not xadd and "maxlen" not in options and "minid" not in options:
        raise CommandError("ERR syntax error, XTRIM must be called with a trimming strategy")
    return options, i


@command("XADD", -5, "write")
def cmd_xadd(conn: Connection, args: list[bytes]) -> Any:
    """Append an entry to a stream (NOMKSTREAM, MAXLEN/MINID [=|~] n [LIMIT n], * or an ID)."""
    options, i = _stream_options(args, 2, xadd=True)
    rest = args[i + 1 :]
    if i >= len(args) or not rest or len(rest) % 2:
        raise CommandError("ERR wrong number of arguments for 'xadd' command")
    return conn.st.xadd(args[1], list(zip(rest[::2], rest[1::2], strict=True)), args[i], **options)


@command("XLEN", 2)
def cmd_xlen(conn: Connection, args: list[bytes]) -> Any:
    """The number of entries in a stream."""
    return conn.st.xlen(args[1])


def _xrange(conn: Connection, args: list[bytes], reverse: bool) -> Any:
    st = conn.st
    lo, hi = (args[3], args[2]) if reverse else (args[2], args[3])
    st.check_stream_range(lo, hi)
    count = None
    rest = args[4:]
    if rest:
        if len(rest) != 2 or _upper(rest[0]) != b"COUNT":
            raise syntax()
        count = max(0, _int(rest[1]))
        if count == 0:  # as Redis: an empty array for a missing key, a null array for a stream
            kind = st.type(args[1])
            if kind not in ("none", "stream"):
                raise WrongTypeError()
            return [] if kind == "none" else NULL_ARRAY
    entries = st.xrevrange(args[1], hi, lo, count) if reverse else st.xrange(args[1], lo, hi, count)
    return entries_reply(entries)


def entries_reply(entries: list[tuple[bytes, list[tuple[bytes, bytes]]]]) -> list[Any]:
    """Stream entries as Redis sends them: ``[id, [field, value, ...]]`` each."""
    return [[xid, [w for pair in pairs for w in pair]] for xid, pairs in entries]


@command("XRANGE", -4)
def cmd_xrange(conn: Connection, args: list[bytes]) -> Any:
    """Entries of a stream between two IDs (- + and (exclusive), oldest first, [COUNT n]."""
    return _xrange(conn, args, reverse=False)


@command("XREVRANGE", -4)
def cmd_xrevrange(conn: Connection, args: list[bytes]) -> Any:
    """Entries of a stream between two IDs, newest first (end first), [COUNT n]."""
    return _xrange(conn, args, reverse=True)


def block_ms(raw: bytes) -> float:
    """The BLOCK argument of XREAD/XREADGROUP (milliseconds, 0: for ever), in seconds."""
    try:
        ms = parse_int(raw)
    except NotAnIntegerError:
        raise CommandError("ERR timeout is not an integer or out of range") from None
    if ms < 0:
        raise CommandError("ERR timeout is negative")
    return ms / 1000


@command("XREAD", -4)
def cmd_xread(conn: Connection, args: list[bytes]) -> Any:
    """Entries after the given IDs of one or more streams: [COUNT n] [BLOCK ms] STREAMS key... id..."""
    count: int | None = None
    block: float | None = None
    i = 1
    while i < len(args):
        word = _upper(args[i])
        if word == b"COUNT" and i + 1 < len(args):
            count = max(0, _int(args[i + 1]))
            i += 2
        elif word == b"BLOCK" and i + 1 < len(args):
            block = block_ms(args[i + 1])
            i += 2
        elif word == b"STREAMS":
            break
        else:
            raise syntax()
    rest = args[i + 1 :]
    if i >= len(args) or not rest or len(rest) % 2:
        raise CommandError(
            "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
        )
    half = len(rest) // 2
    st = conn.st
    positions = st.stream_positions(list(zip(rest[:half], rest[half:], strict=True)))
    resp3 = conn.resp3

    def attempt() -> Any:
        found = st.xread_after(positions, count)
        if not found:
            return None
        streams = [(name, entries_reply(entries)) for name, entries in found]
        return dict(streams) if resp3 else [list(s) for s in streams]

    if block is None:
        reply = attempt()
        return NULL_ARRAY if reply is None else reply
    return try_or_block(conn, [name for name, _ in positions], block, attempt, NULL_ARRAY)


@command("XDEL", -3, "write")
def cmd_xdel(conn: Connection, args: list[bytes]) -> Any:
    """Delete stream entries by ID; the number deleted."""
    return conn.st.xdel(args[1], *args[2:])


@command("XTRIM", -4, "write")
def cmd_xtrim(conn: Connection, args: list[bytes]) -> Any:
    """Trim a stream: MAXLEN|MINID [=|~] threshold [LIMIT n]; the number of entries deleted."""
    options, _ = _stream_options(args, 2, xadd=False)
    return conn.st.xtrim(args[1], **options)


# ---------------------------------------------------------- transactions


@command("MULTI", 1, "tx")
def cmd_multi(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    conn.multi = []
    conn.multi_error = False
    return OK


@command("DISCARD", 1, "tx")
def cmd_discard(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    conn.multi = None
    conn.unwatch()
    return OK


@command("EXEC", 1, "tx")
def cmd_exec(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is None:
        raise CommandError("ERR EXEC without MULTI")
    queued, conn.multi = conn.multi, None
    watched, dirty = dict(conn.watched), conn.watch_dirty
    conn.unwatch()
    if conn.multi_error:
        return ErrorReply("EXECABORT Transaction discarded because of previous errors.")
    st = conn.st
    if dirty:
        return NULL_ARRAY
    with st.db.locked():
        for key, token in watched.items():
            if st.watch_token(key) != token:
                return NULL_ARRAY
        can_block, conn.can_block = conn.can_block, False  # blocking commands answer at once in EXEC
        try:
            return [conn.execute(cmd_args) for cmd_args in queued]
        finally:
            conn.can_block = can_block


@command("WATCH", -2, "tx")
def cmd_watch(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    for key in args[1:]:
        conn.watch(key)
    return OK


@command("UNWATCH", 1, "tx")
def cmd_unwatch(conn: Connection, args: list[bytes]) -> Any:
    conn.unwatch()
    return OK


# --------------------------------------------------------------- pub/sub


@command("PUBLISH", 3)
def cmd_publish(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.publish(args[1], args[2])


def _sub_replies(conn: Connection, kind: bytes, names: list[bytes], add: bool, pattern: bool) -> Any:
    subs = conn.patterns if pattern else conn.channels
    registry = conn.server.patterns if pattern else conn.server.channels
    out = Replies()
    if not add and not names:
        names = sorted(subs)
        if not names:
            return Push([kind, None, conn.subscription_count()])
    for name in names:
        if add:
            subs.add(name)
            registry.setdefault(name, set()).add(conn)
        else:
            subs.discard(name)
            members = registry.get(name)
            if members is not None:
                members.discard(conn)
                if not members:
                    del registry[name]
        out.append(Push([kind, name, conn.subscription_count()]))
    return out


@command("SUBSCRIBE", -2, "pubsub")
def cmd_subscribe(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR Command not allowed inside a transaction")
    return _sub_replies(conn, b"subscribe", args[1:], True, False)


@command("PSUBSCRIBE", -2, "pubsub")
def cmd_psubscribe(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR Command not allowed inside a transaction")
    return _sub_replies(conn, b"psubscribe", args[1:], True, True)


@command("UNSUBSCRIBE", -1, "pubsub")
def cmd_unsubscribe(conn: Connection, args: list[bytes]) -> Any:
    return _sub_replies(conn, b"unsubscribe", args[1:], False, False)


@command("PUNSUBSCRIBE", -1, "pubsub")
def cmd_punsubscribe(conn: Connection, args: list[bytes]) -> Any:
    return _sub_replies(conn, b"punsubscribe", args[1:], False, True)


@command("PUBSUB", -2)
def cmd_pubsub(conn: Connection, args: list[bytes]) -> Any:
    sub = _upper(args[1])
    server = conn.server
    if sub == b"CHANNELS":
        pattern = args[2] if len(args) > 2 else b"*"
        return sorted(c for c in server.channels if glob_match(pattern, c))
    if sub == b"NUMSUB":
        out: list[Any] = []
        for ch in args[2:]:
            out += [ch, len(server.channels.get(ch, ()))]
        return out
    if sub == b"NUMPAT" and len(args) == 2:
        return len(server.patterns)
    raise CommandError(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try PUBSUB HELP.")


# ------------------------------------------------------------- scripting


@command("EVAL", -3, "write")
def cmd_eval(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.scripts.eval(conn, args[1], args[2:], by_sha=False)


@command("EVALSHA", -3, "write")
def cmd_evalsha(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.scripts.eval(conn, args[1], args[2:], by_sha=True)


@command("SCRIPT", -2)
def cmd_script(conn: Connection, args: list[bytes]) -> Any:
    sub = _upper(args[1])
    scripts = conn.server.scripts
    if sub == b"LOAD" and len(args) == 3:
        return scripts.load(args[2]).encode()
    if sub == b"EXISTS" and len(args) >= 3:
        return [int(scripts.exists(a)) for a in args[2:]]
    if sub == b"FLUSH":
        scripts.flush()
        return OK
    raise CommandError(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. Try SCRIPT HELP.")


# The consumer-group commands register themselves in COMMANDS when imported.
from kv_backend.server import groups as _groups  # noqa: E402

del _groups
