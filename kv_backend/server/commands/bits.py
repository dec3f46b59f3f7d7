"""Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import command, syntax

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("SETBIT", 4, "write")
def cmd_setbit(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.setbit(args[1], args[2], args[3])


@command("GETBIT", 3)
def cmd_getbit(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.getbit(args[1], args[2])


@command("BITCOUNT", -2)
def cmd_bitcount(conn: Connection, args: list[bytes]) -> Any:
    st = conn.st
    if len(args) > 5:
        # As Redis 7: the key is looked up first, so a missing key counts 0 whatever follows it.
        if st.get(args[1]) is None:
            return 0
        raise syntax()
    return st.bitcount(args[1], *args[2:])


@command("BITPOS", -3)
def cmd_bitpos(conn: Connection, args: list[bytes]) -> Any:
    st = conn.st
    if len(args) > 6:
        # As Redis 7: the bit is read, then the key looked up, so a missing key answers (-1 for a 1
        # bit, 0 for a 0) whatever follows it; only an existing string's call is a syntax error.
        answer = st.bitpos(args[1], args[2])
        if st.get(args[1]) is None:
            return answer
        raise syntax()
    return st.bitpos(args[1], *args[2:])


@command("BITOP", -4, "write")
def cmd_bitop(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.bitop(args[1], args[2], *args[3:])


@command("BITFIELD", -2, "write")
def cmd_bitfield(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.bitfield(args[1], *args[2:])


@command("BITFIELD_RO", -2)
def cmd_bitfield_ro(conn: Connection, args: list[bytes]) -> Any:
    # Redis's form only (BITFIELD_RO k i8 0 is a syntax error; the in-process method also takes redis-py's)
    return conn.st._bitfield(args[1], tuple(args[2:]), readonly=True)
