"""Hash commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import arg_int, arg_pairs, command, random_count_with, scan_options
from kv_backend.server.protocol import OK
from kv_backend.structures import parse_cursor

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("HSET", -4, "write")
def cmd_hset(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.hset_pairs(args[1], arg_pairs(args, 2, "hset"))


@command("HMSET", -4, "write")
def cmd_hmset(conn: Connection, args: list[bytes]) -> Any:
    conn.st.hset_pairs(args[1], arg_pairs(args, 2, "hmset"))
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
    return conn.st.hincrby(args[1], args[2], arg_int(args[3]))


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
    cursor = parse_cursor(args[2])
    if not conn.st.hlen(args[1]):  # as Redis: the cursor, the key (WRONGTYPE...), then the options
        return [b"0", []]
    match, count, _ = scan_options(args, 3)
    cursor, items = conn.st.hscan(args[1], cursor, match=match, count=count)
    flat: list[bytes] = []
    for k, v in items.items():
        flat += [k, v]
    return [str(cursor).encode(), flat]


@command("HRANDFIELD", -2)
def cmd_hrandfield(conn: Connection, args: list[bytes]) -> Any:
    """Random fields of a hash: count > 0 distinct, < 0 possibly repeated; WITHVALUES."""
    if len(args) == 2:
        return conn.st.hrandfield(args[1])
    count, withvalues = random_count_with(args, b"WITHVALUES")
    chosen = conn.st.hrandfield(args[1], count, withvalues)
    if not withvalues:
        return chosen
    if conn.resp3:
        return [[f, v] for f, v in chosen]
    return [x for pair in chosen for x in pair]
