"""String commands: GET, SET and its options, counters, ranges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import LLONG_MAX, arg_int, arg_pairs, command, now_ms, syntax, upper
from kv_backend.server.protocol import OK
from kv_backend.structures import CommandError

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("GET", 2)
def cmd_get(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.get(args[1])


@command("SET", -3, "write")
def cmd_set(conn: Connection, args: list[bytes]) -> Any:
    st = conn.st
    if len(args) == 3:
        return OK if st.set(args[1], args[2]) else None
    flags, unit, raw = _string_options(args, 3, _SET_OPTIONS)
    exat = _expire_value(raw, unit, "set") if unit is not None else None
    nx, xx, keepttl, get = (opt in flags for opt in (b"NX", b"XX", b"KEEPTTL", b"GET"))
    result = st.set(args[1], args[2], nx=nx, xx=xx, keepttl=keepttl, get=get, exat=exat)
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
        opt = upper(args[i])
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


def _expire_value(raw: bytes, unit: bytes, command: str) -> float:
    """An expire argument checked as Redis does, as the Unix time (seconds) the key expires at.

    It must be positive, and the absolute time it gives must fit in a signed 64-bit number of
    milliseconds (so PXAT takes up to 2**63-1, EX about 2**63/1000 less the current time). As
    in Redis, EX/PX count from the current time in whole milliseconds, so PTTL right after
    ``SET k v PX 50000`` is at most 50000.
    """
    n = arg_int(raw)
    seconds_unit = unit in (b"EX", b"EXAT")
    if n <= 0 or (seconds_unit and n > LLONG_MAX // 1000):
        raise CommandError(f"ERR invalid expire time in '{command}' command")
    ms = n * 1000 if seconds_unit else n
    base = now_ms() if unit in (b"EX", b"PX") else 0
    if ms > LLONG_MAX - base:
        raise CommandError(f"ERR invalid expire time in '{command}' command")
    return (base + ms) / 1000


@command("SETEX", 4, "write")
def cmd_setex(conn: Connection, args: list[bytes]) -> Any:
    at = _expire_value(args[2], b"EX", "setex")  # the same limits as SET ... EX
    conn.st.set(args[1], args[3], exat=at)
    return OK


@command("PSETEX", 4, "write")
def cmd_psetex(conn: Connection, args: list[bytes]) -> Any:
    at = _expire_value(args[2], b"PX", "psetex")  # the same limits as SET ... PX
    conn.st.set(args[1], args[3], exat=at)
    return OK


@command("SETNX", 3, "write")
def cmd_setnx(conn: Connection, args: list[bytes]) -> Any:
    return int(conn.st.setnx(args[1], args[2]))


@command("MGET", -2)
def cmd_mget(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.mget(*args[1:])


@command("MSET", -3, "write")
def cmd_mset(conn: Connection, args: list[bytes]) -> Any:
    conn.st.mset(dict(arg_pairs(args, 1, "mset")))
    return OK


@command("MSETNX", -3, "write")
def cmd_msetnx(conn: Connection, args: list[bytes]) -> Any:
    return int(conn.st.msetnx(dict(arg_pairs(args, 1, "msetnx"))))


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
    return st.getex(args[1], exat=_expire_value(raw, unit, "getex"))


@command("APPEND", 3, "write")
def cmd_append(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.append(args[1], args[2])


@command("STRLEN", 2)
def cmd_strlen(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.strlen(args[1])


@command("GETRANGE", 4)
def cmd_getrange(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.getrange(args[1], arg_int(args[2]), arg_int(args[3]))


@command("SUBSTR", 4)
def cmd_substr(conn: Connection, args: list[bytes]) -> Any:
    """GETRANGE's old name."""
    return conn.st.getrange(args[1], arg_int(args[2]), arg_int(args[3]))


@command("LCS", -3)
def cmd_lcs(conn: Connection, args: list[bytes]) -> Any:
    """The longest common subsequence of two strings (LEN, IDX, MINMATCHLEN, WITHMATCHLEN)."""
    getlen = getidx = withmatchlen = False
    minmatchlen = 0
    i = 3
    try:
        while i < len(args):
            opt = upper(args[i])
            if opt == b"IDX":
                getidx = True
            elif opt == b"LEN":
                getlen = True
            elif opt == b"WITHMATCHLEN":
                withmatchlen = True
            elif opt == b"MINMATCHLEN" and i + 1 < len(args):
                minmatchlen = max(arg_int(args[i + 1]), 0)
                i += 1
            else:
                raise syntax()
            i += 1
    except Exception:
        if any(conn.st.type(key) not in ("string", "none") for key in args[1:3]):  # checked first
            raise CommandError("ERR The specified keys must contain string values") from None
        raise
    return conn.st.lcs(
        args[1], args[2], len=getlen, idx=getidx, minmatchlen=minmatchlen, withmatchlen=withmatchlen
    )


@command("SETRANGE", 4, "write")
def cmd_setrange(conn: Connection, args: list[bytes]) -> Any:
    """Overwrite part of a string at an offset, padding with zero bytes."""
    return conn.st.setrange(args[1], arg_int(args[2]), args[3])


@command("INCR", 2, "write")
def cmd_incr(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.incrby(args[1], 1)


@command("DECR", 2, "write")
def cmd_decr(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.incrby(args[1], -1)


@command("INCRBY", 3, "write")
def cmd_incrby(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.incrby(args[1], arg_int(args[2]))


@command("DECRBY", 3, "write")
def cmd_decrby(conn: Connection, args: list[bytes]) -> Any:
    n = arg_int(args[2])
    if n == -(2**63):
        raise CommandError("ERR decrement would overflow")
    return conn.st.incrby(args[1], -n)


@command("INCRBYFLOAT", 3, "write")
def cmd_incrbyfloat(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.incrbyfloat_text(args[1], args[2])
