"""List commands, blocking pops included."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import (
    arg_int,
    arg_positive,
    block_timeout,
    command,
    mpop_args,
    non_negative,
    syntax,
    try_or_block,
    try_or_block_pop,
    upper,
)
from kv_backend.server.protocol import NULL_ARRAY, OK
from kv_backend.structures import CommandError
from kv_backend.structures.lists import RANK_ZERO

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


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
        count = arg_positive(args[2])
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
    return conn.st.lrange(args[1], arg_int(args[2]), arg_int(args[3]))


@command("LLEN", 2)
def cmd_llen(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.llen(args[1])


@command("LINDEX", 3)
def cmd_lindex(conn: Connection, args: list[bytes]) -> Any:
    if not conn.st.llen(args[1]):  # a missing key (or WRONGTYPE) before the index, as Redis
        return None
    return conn.st.lindex(args[1], arg_int(args[2]))


@command("LSET", 4, "write")
def cmd_lset(conn: Connection, args: list[bytes]) -> Any:
    if not conn.st.llen(args[1]):  # a missing key (or WRONGTYPE) before the index, as Redis
        raise CommandError("ERR no such key")
    conn.st.lset(args[1], arg_int(args[2]), args[3])
    return OK


@command("LREM", 4, "write")
def cmd_lrem(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.lrem(args[1], arg_int(args[2]), args[3])


@command("LTRIM", 4, "write")
def cmd_ltrim(conn: Connection, args: list[bytes]) -> Any:
    conn.st.ltrim(args[1], arg_int(args[2]), arg_int(args[3]))
    return OK


@command("LINSERT", 5, "write")
def cmd_linsert(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.linsert(args[1], args[2].decode("latin-1"), args[3], args[4])


@command("RPOPLPUSH", 3, "write")
def cmd_rpoplpush(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.rpoplpush(args[1], args[2])


@command("LMOVE", 5, "write")
def cmd_lmove(conn: Connection, args: list[bytes]) -> Any:
    a, b = upper(args[3]), upper(args[4])
    if a not in (b"LEFT", b"RIGHT") or b not in (b"LEFT", b"RIGHT"):
        raise syntax()
    return conn.st.lmove(args[1], args[2], a.decode(), b.decode())


def _blocking_pop(conn: Connection, args: list[bytes], left: bool) -> Any:
    keys = args[1:-1]
    timeout = block_timeout(args[-1])
    pop_first = conn.st.pop_first

    def pop(names: list[bytes]) -> list[bytes] | None:
        found = pop_first(names, left)
        return None if found is None else list(found)

    return try_or_block_pop(conn, keys, timeout, pop)


@command("BLPOP", -3, "write")
def cmd_blpop(conn: Connection, args: list[bytes]) -> Any:
    """Pop the first element of the first non-empty list, waiting up to timeout seconds (0: for ever)."""
    return _blocking_pop(conn, args, True)


@command("BRPOP", -3, "write")
def cmd_brpop(conn: Connection, args: list[bytes]) -> Any:
    """Pop the last element of the first non-empty list, waiting up to timeout seconds (0: for ever)."""
    return _blocking_pop(conn, args, False)


def _blocking_move(conn: Connection, src: bytes, dst: bytes, a: bytes, b: bytes, raw_timeout: bytes) -> Any:
    timeout = block_timeout(raw_timeout)
    st = conn.st
    wherefrom, whereto = a.decode(), b.decode()
    return try_or_block(conn, [src], timeout, lambda: st.lmove(src, dst, wherefrom, whereto), None, [dst])


@command("BLMOVE", 6, "write")
def cmd_blmove(conn: Connection, args: list[bytes]) -> Any:
    """LMOVE that waits up to timeout seconds (0: for ever) for the source list to have an element."""
    a, b = upper(args[3]), upper(args[4])
    if a not in (b"LEFT", b"RIGHT") or b not in (b"LEFT", b"RIGHT"):
        raise syntax()
    return _blocking_move(conn, args[1], args[2], a, b, args[5])


@command("BRPOPLPUSH", 4, "write")
def cmd_brpoplpush(conn: Connection, args: list[bytes]) -> Any:
    """RPOPLPUSH that waits up to timeout seconds (0: for ever) for the source list to have an element."""
    return _blocking_move(conn, args[1], args[2], b"RIGHT", b"LEFT", args[3])


@command("LPOS", -3)
def cmd_lpos(conn: Connection, args: list[bytes]) -> Any:
    """Index of matching elements: RANK (which match, negative from the tail), COUNT, MAXLEN."""
    rank, count, maxlen = 1, None, 0
    i = 3
    while i < len(args):
        opt = upper(args[i])
        if i + 1 >= len(args):
            raise syntax()
        if opt == b"RANK":
            rank = arg_int(args[i + 1])
            if rank == -(2**63):  # as Redis 7.2: its magnitude does not fit
                raise CommandError(
                    "ERR value is out of range, value must between -9223372036854775807 and "
                    "9223372036854775807"
                )
            if rank == 0:
                raise CommandError(RANK_ZERO)
        elif opt == b"COUNT":
            count = non_negative(args[i + 1], "ERR COUNT can't be negative")
        elif opt == b"MAXLEN":
            maxlen = non_negative(args[i + 1], "ERR MAXLEN can't be negative")
        else:
            raise syntax()
        i += 2
    return conn.st.lpos(args[1], args[2], rank=rank, count=count, maxlen=maxlen)


def _mpop_args(args: list[bytes], first: int) -> tuple[list[bytes], bool, int]:
    """LMPOP's and BLMPOP's ``numkeys key... LEFT|RIGHT [COUNT n]``: the keys, whether LEFT, the count."""
    keys, end, count = mpop_args(args, first, (b"LEFT", b"RIGHT"))
    return keys, end == b"LEFT", count


@command("LMPOP", -4, "write")
def cmd_lmpop(conn: Connection, args: list[bytes]) -> Any:
    """Pop up to COUNT elements from the first non-empty list: [key, [elements]]."""
    keys, left, count = _mpop_args(args, 1)
    found = conn.st.lmpop(keys, left, count)
    return NULL_ARRAY if found is None else [found[0], found[1]]


@command("BLMPOP", -5, "write")
def cmd_blmpop(conn: Connection, args: list[bytes]) -> Any:
    """LMPOP that waits up to timeout seconds (0: for ever) for one of the lists to have an element."""
    keys, left, count = _mpop_args(args, 2)
    timeout = block_timeout(args[1])  # after the other arguments, as Redis checks them
    lmpop = conn.st.lmpop

    def pop(names: list[bytes]) -> list[Any] | None:
        found = lmpop(names, left, count)
        return None if found is None else [found[0], found[1]]

    return try_or_block_pop(conn, keys, timeout, pop)
