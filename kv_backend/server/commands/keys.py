"""Commands on keys of any type: DEL, EXISTS, EXPIRE and friends, TTL, TYPE, KEYS, SCAN, RENAME..."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.errors import NotAnIntegerError
from kv_backend.server.commands.registry import (
    LLONG_MAX,
    arg_int,
    command,
    help_reply,
    now_ms,
    scan_options,
    syntax,
    upper,
)
from kv_backend.server.protocol import OK
from kv_backend.structures import CommandError, parse_cursor
from kv_backend.structures.errors import c_string, quoted

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


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
        opt = upper(a)
        if opt not in (b"NX", b"XX", b"GT", b"LT"):
            raise CommandError(f"ERR Unsupported option {quoted(a)}")
        flags.add(opt)
    if b"NX" in flags and len(flags) > 1:
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {b"GT", b"LT"} <= flags:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    name = args[0].decode("ascii", "replace").lower()
    n = arg_int(args[2])
    # As Redis: the time in milliseconds, plus the current time for EXPIRE/PEXPIRE, must fit in
    # a signed 64-bit number (a negative time only deletes the key)
    if scale == 1.0 and abs(n) > LLONG_MAX // 1000:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    ms = n * 1000 if scale == 1.0 else n
    base = 0 if absolute else now_ms()
    if ms > LLONG_MAX - base:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    at = (base + ms) / 1000
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
        t = conn.st.expiretime(key)
    except KeyError:
        return -2
    if t is None:
        return -1
    # Redis keeps the expiry as 64-bit milliseconds; the stored float can round past the largest
    # (PEXPIREAT k 9223372036854775807), so it is read back as at most that, then made relative
    t_ms = min(round(t * 1000), LLONG_MAX)
    if not absolute:
        t_ms = max(t_ms - now_ms(), 0)
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
    cursor = parse_cursor(args[1])  # a malformed cursor is refused before the options, as in Redis
    match, count, typ = scan_options(args, 2, allow_type=True)
    cursor, names = conn.st.scan(cursor, match=match, count=count, type=typ)
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
    if len(args) > 2 or (len(args) == 2 and upper(args[1]) not in (b"ASYNC", b"SYNC")):
        raise syntax()
    conn.st.flushdb()
    return OK


@command("FLUSHALL", -1, "write")
def cmd_flushall(conn: Connection, args: list[bytes]) -> Any:
    return cmd_flushdb(conn, args)


@command("RANDOMKEY", 1)
def cmd_randomkey(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.randomkey()


@command("COPY", -3, "write")
def cmd_copy(conn: Connection, args: list[bytes]) -> Any:
    """Copy a key (any type, with its TTL) to another name: DB 0 only, REPLACE to overwrite."""
    replace = False
    i = 3
    while i < len(args):
        opt = upper(args[i])
        if opt == b"REPLACE":
            replace = True
        elif opt == b"DB" and i + 1 < len(args):
            db = arg_int(args[i + 1])
            if not -(2**31) <= db < 2**31:  # Redis reads it as a C int
                raise CommandError("ERR value is out of range, value must between -2147483648 and 2147483647")
            if db != 0:  # as Redis run with one database
                raise CommandError("ERR DB index is out of range")
            i += 1
        else:
            raise syntax()
        i += 1
    return int(conn.st.copy(args[1], args[2], replace=replace))


@command("DUMP", 2)
def cmd_dump(conn: Connection, args: list[bytes]) -> Any:
    """Serialize a key's value in Redis's DUMP format (RESTORE, here or in redis-server, takes it)."""
    return conn.st.dump(args[1])


@command("RESTORE", -4, "write")
def cmd_restore(conn: Connection, args: list[bytes]) -> Any:
    """Create a key from a DUMP payload: ``key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]``.

    As Redis: the options are read first, then the key must be free (or REPLACE given), then the
    TTL and the payload are checked. IDLETIME and FREQ are checked and ignored: kvb keeps no
    access times or frequencies.
    """
    replace = absttl = False
    idle = freq = False
    i = 4
    while i < len(args):
        opt = upper(args[i])
        more = i + 1 < len(args)
        if opt == b"REPLACE":
            replace = True
        elif opt == b"ABSTTL":
            absttl = True
        elif opt == b"IDLETIME" and more and not freq:
            if arg_int(args[i + 1]) < 0:
                raise CommandError("ERR Invalid IDLETIME value, must be >= 0")
            idle = True
            i += 1
        elif opt == b"FREQ" and more and not idle:
            if not 0 <= arg_int(args[i + 1]) <= 255:
                raise CommandError("ERR Invalid FREQ value, must be >= 0 and <= 255")
            freq = True
            i += 1
        else:
            raise syntax()
        i += 1
    st = conn.st
    if not replace and st.exists(args[1]):  # before the TTL is read, as in Redis
        raise CommandError("BUSYKEY Target key name already exists.")
    st.restore(args[1], arg_int(args[2]), args[3], replace=replace, absttl=absttl)
    return OK


def _db_index(raw: bytes, message: str | None = None) -> int:
    """A database index (MOVE, SWAPDB) read as Redis reads it, a C int (``message``: Redis's error
    for either mistake, when the command has its own)."""
    try:
        db = arg_int(raw)
    except NotAnIntegerError:
        if message is None:
            raise
        raise CommandError(message) from None
    if not -(2**31) <= db < 2**31:  # Redis's range error (or its own message)
        raise CommandError(
            message or "ERR value is out of range, value must between -2147483648 and 2147483647"
        )
    return db


@command("MOVE", 3, "write")
def cmd_move(conn: Connection, args: list[bytes]) -> Any:
    """Move a key to another database: kvb has only database 0, so, as redis-server run with one
    database, every call is refused (another index is out of range, 0 is the key's own)."""
    if _db_index(args[2]) != 0:
        raise CommandError("ERR DB index is out of range")
    raise CommandError("ERR source and destination objects are the same")


@command("SWAPDB", 3, "write")
def cmd_swapdb(conn: Connection, args: list[bytes]) -> Any:
    """Swap two databases: with kvb's one database only ``SWAPDB 0 0`` (which changes nothing) is OK."""
    first = _db_index(args[1], "ERR invalid first DB index")
    second = _db_index(args[2], "ERR invalid second DB index")
    if first != 0 or second != 0:
        raise CommandError("ERR DB index is out of range")
    return OK


@command("TOUCH", -2)
def cmd_touch(conn: Connection, args: list[bytes]) -> Any:
    """How many of the keys exist (kvb keeps no access times to update)."""
    return conn.st.touch(*args[1:])


_OBJECT_HELP = help_reply(
    "OBJECT",
    [
        ("ENCODING <key>", "The internal representation Redis 7.2 would use for the key's value."),
        ("FREQ <key>", "Refused: access frequencies are kept only under an LFU maxmemory policy."),
        ("IDLETIME <key>", "Seconds since the key was last used: always 0, kvb keeps no access times."),
        ("REFCOUNT <key>", "How many references Redis would hold to the value."),
    ],
)


@command(
    "OBJECT",
    -2,
    subcommands={b"ENCODING": 3, b"FREQ": 3, b"IDLETIME": 3, b"REFCOUNT": 3, b"HELP": 2},
)
def cmd_object(conn: Connection, args: list[bytes]) -> Any:
    """Facts about a key's value: ENCODING, REFCOUNT, IDLETIME, FREQ, HELP."""
    sub = upper(args[1])
    if sub == b"HELP":
        return _OBJECT_HELP
    st = conn.st
    if sub == b"ENCODING":
        encoding = st.object_encoding(args[2])
        return None if encoding is None else encoding.encode()
    if sub == b"REFCOUNT":
        return st.object_refcount(args[2])
    if not st.exists(args[2]):  # a missing key answers null before anything else, as in Redis
        return None
    if sub == b"IDLETIME":
        return 0
    raise CommandError(  # FREQ, under kvb's (fixed) noeviction policy
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
        "that when switching between policies at runtime LRU and LFU data will take some time to adjust."
    )


def _sort(conn: Connection, args: list[bytes], readonly: bool) -> Any:
    """SORT and SORT_RO: the options are read (and checked, a bad LIMIT number at once) before the
    key's type; a BY pattern without ``*`` anywhere means no sorting even if a later BY has one."""
    by: bytes | None = None
    nosort = False
    offset, count = 0, -1
    get: list[bytes] = []
    desc = alpha = False
    store: bytes | None = None
    i = 2
    while i < len(args):
        opt, left = upper(args[i]), len(args) - i - 1
        if opt == b"ASC":
            desc = False
        elif opt == b"DESC":
            desc = True
        elif opt == b"ALPHA":
            alpha = True
        elif opt == b"LIMIT" and left >= 2:
            offset, count = arg_int(args[i + 1]), arg_int(args[i + 2])
            i += 2
        elif opt == b"STORE" and left >= 1 and not readonly:
            store = args[i + 1]
            i += 1
        elif opt == b"BY" and left >= 1:
            by = args[i + 1]
            nosort = nosort or b"*" not in c_string(by)
            i += 1
        elif opt == b"GET" and left >= 1:
            get.append(args[i + 1])
            i += 1
        else:
            raise syntax()
        i += 1
    return conn.st.sort(
        args[1], by, offset, count, get, desc, alpha, store, nosort=nosort, script=conn.kind == "script"
    )


@command("SORT", -2, "write")
def cmd_sort(conn: Connection, args: list[bytes]) -> Any:
    """Sort a list, set or sorted set (BY, LIMIT, GET, ASC/DESC, ALPHA), or STORE the result."""
    return _sort(conn, args, readonly=False)


@command("SORT_RO", -2)
def cmd_sort_ro(conn: Connection, args: list[bytes]) -> Any:
    """SORT without STORE, for replicas and read-only scripts."""
    return _sort(conn, args, readonly=True)
