"""Set commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.errors import NotAnIntegerError
from kv_backend.server.commands.registry import (
    arg_int,
    arg_positive,
    command,
    limit_option,
    random_count,
    scan_options,
    syntax,
)
from kv_backend.server.protocol import OrderedSet
from kv_backend.structures import CommandError, parse_cursor
from kv_backend.structures.keyspace import intset_order
from kv_backend.structures.parsing import random_repeats

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


def _set_reply(members: set[bytes]) -> Any:
    """SMEMBERS', SINTER's, SUNION's and SDIFF's reply: an intset's members in Redis's order."""
    ordered = intset_order(members)  # (another set's order Redis leaves to its hash table)
    return members if ordered is None else OrderedSet(ordered)


@command("SADD", -3, "write")
def cmd_sadd(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.sadd(args[1], *args[2:])


@command("SREM", -3, "write")
def cmd_srem(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.srem(args[1], *args[2:])


@command("SMEMBERS", 2)
def cmd_smembers(conn: Connection, args: list[bytes]) -> Any:
    return _set_reply(conn.st.smembers(args[1]))


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
    return _set_reply(conn.st.sinter(*args[1:]))


@command("SUNION", -2)
def cmd_sunion(conn: Connection, args: list[bytes]) -> Any:
    return _set_reply(conn.st.sunion(*args[1:]))


@command("SDIFF", -2)
def cmd_sdiff(conn: Connection, args: list[bytes]) -> Any:
    return _set_reply(conn.st.sdiff(*args[1:]))


@command("SPOP", -2, "write")
def cmd_spop(conn: Connection, args: list[bytes]) -> Any:
    if len(args) == 2:
        return conn.st.spop(args[1])
    if len(args) != 3:
        raise syntax()
    count = arg_positive(args[2])
    out = []
    with conn.st.db.locked():
        size = conn.st.scard(args[1])  # WRONGTYPE even for a count of 0, as Redis
        for _ in range(count):
            m = conn.st.spop(args[1])
            if m is None:
                break
            out.append(m)
    if out and count >= size:  # the whole set, in SMEMBERS' order, as Redis answers it
        return OrderedSet(intset_order(out) or sorted(out))
    return set(out) if conn.resp3 else out


@command("SRANDMEMBER", -2)
def cmd_srandmember(conn: Connection, args: list[bytes]) -> Any:
    if len(args) == 2:
        return conn.st.srandmember(args[1])
    if len(args) > 3:
        raise syntax()
    count = random_count(args[2])  # the count before the key's type, as Redis
    members = sorted(conn.st.smembers(args[1]))
    import random

    if count >= len(members):  # the whole set, in SMEMBERS' order, as Redis answers it
        return intset_order(members) or members
    if count >= 0:
        return random.sample(members, count)
    return random.choices(members, k=random_repeats(count)) if members else []


@command("SSCAN", -3)
def cmd_sscan(conn: Connection, args: list[bytes]) -> Any:
    cursor = parse_cursor(args[2])
    if not conn.st.scard(args[1]):  # as Redis: the cursor, the key (WRONGTYPE...), then the options
        return [b"0", []]
    match, count, _ = scan_options(args, 3)
    cursor, members = conn.st.sscan(args[1], cursor, match=match, count=count)
    return [str(cursor).encode(), members]


@command("SMOVE", 4, "write")
def cmd_smove(conn: Connection, args: list[bytes]) -> Any:
    """Move a member from one set to another."""
    return int(conn.st.smove(args[1], args[2], args[3]))


@command("SINTERSTORE", -3, "write")
def cmd_sinterstore(conn: Connection, args: list[bytes]) -> Any:
    """Store the intersection of sets in the destination key."""
    return conn.st.sinterstore(args[1], *args[2:])


@command("SUNIONSTORE", -3, "write")
def cmd_sunionstore(conn: Connection, args: list[bytes]) -> Any:
    """Store the union of sets in the destination key."""
    return conn.st.sunionstore(args[1], *args[2:])


@command("SDIFFSTORE", -3, "write")
def cmd_sdiffstore(conn: Connection, args: list[bytes]) -> Any:
    """Store the difference of sets in the destination key."""
    return conn.st.sdiffstore(args[1], *args[2:])


def numkeys(args: list[bytes], start: int) -> list[bytes]:
    """The keys after a ``numkeys`` argument at ``start``, checked as Redis checks them."""
    try:
        n = arg_int(args[start])
    except NotAnIntegerError:
        n = 0
    if n <= 0:
        raise CommandError("ERR numkeys should be greater than 0")
    if n > len(args) - start - 1:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    return args[start + 1 : start + 1 + n]


@command("SINTERCARD", -3)
def cmd_sintercard(conn: Connection, args: list[bytes]) -> Any:
    """The size of the intersection of sets, counted up to LIMIT (0: no limit)."""
    keys = numkeys(args, 1)
    return conn.st.sintercard(*keys, limit=limit_option(args, 2 + len(keys)))
