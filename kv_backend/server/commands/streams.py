"""Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XREAD, XDEL, XTRIM."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import arg_int, block_ms, command, syntax, try_or_block, upper
from kv_backend.server.protocol import NULL_ARRAY, Pairs
from kv_backend.structures import CommandError, WrongTypeError, check_add_id, check_stream_id
from kv_backend.structures.errors import c_string

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


def _stream_options(args: list[bytes], i: int, xadd: bool) -> tuple[dict[str, Any], int]:
    """Parse XADD/XTRIM options from ``args[i]`` on, in any order, as Redis does.

    ``MAXLEN|MINID [=|~] threshold``, ``LIMIT n`` and (XADD) ``NOMKSTREAM``;
    returns the keyword arguments and, for XADD, the index of the entry ID.
    """
    options: dict[str, Any] = {}
    n = len(args)
    while i < n:
        word = upper(args[i])
        more = n - i - 1
        if word in (b"MAXLEN", b"MINID") and more >= 1:
            key = "maxlen" if word == b"MAXLEN" else "minid"
            if "maxlen" in options or "minid" in options:  # Redis says so for MAXLEN given twice too
                raise CommandError(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
                )
            i += 1
            mark = c_string(args[i])  # Redis tests the one character and the NUL after it
            if mark in (b"=", b"~") and more >= 2:
                options["approximate"] = mark == b"~"
                i += 1
            # Each threshold is checked where it stands, as Redis does (before a later bad ID).
            if key == "maxlen":
                options[key] = arg_int(args[i])
                if options[key] < 0:
                    raise CommandError("ERR The MAXLEN argument must be >= 0.")
            else:
                check_stream_id(args[i])
                options[key] = args[i]
        elif word == b"LIMIT" and more >= 1:
            options["limit"] = arg_int(args[i + 1])
            if options["limit"] < 0:
                raise CommandError("ERR The LIMIT argument must be >= 0.")
            i += 1
        elif xadd and word == b"NOMKSTREAM":
            options["nomkstream"] = True
        elif xadd:
            check_add_id(args[i], syntax_only=True)  # as Redis: the ID is read before the options are checked
            break
        else:
            raise syntax()
        i += 1
    # Then, as Redis checks them before the fields and the key: a LIMIT (but LIMIT 0, no limit) needs
    # a strategy, XTRIM needs one, and any LIMIT needs ~.
    strategy = "maxlen" in options or "minid" in options
    if options.get("limit") and not strategy:
        raise CommandError("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
    if not xadd and not strategy:
        raise CommandError("ERR syntax error, XTRIM must be called with a trimming strategy")
    if "limit" in options and not options.get("approximate"):
        raise CommandError("ERR syntax error, LIMIT cannot be used without the special ~ option")
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
    # As Redis: COUNT may come more than once (the last one counts), each value is read where it
    # stands, so a bad value before a stray word is a bad integer, not a syntax error.
    i = 4
    while i < len(args):
        if upper(args[i]) != b"COUNT" or i + 1 == len(args):
            raise syntax()
        count = max(0, arg_int(args[i + 1]))
        i += 2
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


@command("XREAD", -4)
def cmd_xread(conn: Connection, args: list[bytes]) -> Any:
    """Entries after the given IDs of one or more streams: [COUNT n] [BLOCK ms] STREAMS key... id..."""
    options = read_options(conn, args, group=False)
    st = conn.st
    positions = st.stream_positions(options.streams)

    def read() -> list[tuple[bytes, list[Any]]]:
        return [(name, entries_reply(entries)) for name, entries in st.xread_after(positions, options.count)]

    return stream_read(conn, [name for name, _ in positions], options.block, read)


class ReadOptions:
    """The options of an XREAD or XREADGROUP call (see :func:`read_options`)."""

    __slots__ = ("block", "consumer", "count", "group", "noack", "streams")

    def __init__(self) -> None:
        self.count: int | None = None
        self.block: float | None = None
        self.noack = False
        self.group: bytes | None = None
        self.consumer: bytes | None = None
        self.streams: list[tuple[bytes, bytes]] = []


def read_options(conn: Connection, args: list[bytes], group: bool) -> ReadOptions:
    """XREAD's or (``group``) XREADGROUP's options, read as Redis reads them: in any order until
    STREAMS, which must have words after it (else, or if missing, a syntax error); GROUP and NOACK
    are XREADGROUP's (XREAD says so); an odd number of words after STREAMS is unbalanced."""
    out = ReadOptions()
    i, n = 1, len(args)
    while i < n:
        word = upper(args[i])
        more = n - i - 1
        if word == b"BLOCK" and more:
            out.block = block_ms(conn, args[0], args[i + 1])
            i += 2
        elif word == b"COUNT" and more:
            out.count = max(0, arg_int(args[i + 1]))
            i += 2
        elif word == b"STREAMS" and more:
            rest = args[i + 1 :]
            if len(rest) % 2:
                raise CommandError(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be "
                    "specified."
                )
            half = len(rest) // 2
            out.streams = list(zip(rest[:half], rest[half:], strict=True))
            return out
        elif word == b"GROUP" and more >= 2:
            if not group:
                raise CommandError(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
                )
            out.group, out.consumer = args[i + 1], args[i + 2]
            i += 3
        elif word == b"NOACK":
            if not group:
                raise CommandError(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
                )
            out.noack = True
            i += 1
        else:
            raise syntax()
    raise syntax()  # (no STREAMS)


def stream_read(
    conn: Connection,
    keys: list[bytes],
    block: float | None,
    read: Callable[[], list[tuple[bytes, list[Any]]]],
) -> Any:
    """The reply of XREAD/XREADGROUP: ``read()``'s streams (a map over RESP3), or a wait for ``keys``.

    With nothing to read, a null array at once, or after ``block`` seconds when given.
    """
    resp3 = conn.resp3

    def attempt() -> Any:
        return streams_reply(read(), resp3)

    if block is None:
        reply = attempt()
        return NULL_ARRAY if reply is None else reply
    return try_or_block(conn, keys, block, attempt, NULL_ARRAY)


def streams_reply(found: list[tuple[bytes, list[Any]]], resp3: bool) -> Any:
    """The streams XREAD/XREADGROUP found, as sent: a map over RESP3, else an array; None if none.

    A stream named twice is answered twice, in RESP3 too (a map with a repeated key), as Redis does.
    """
    if not found:
        return None
    return Pairs(found) if resp3 else [list(s) for s in found]


@command("XDEL", -3, "write")
def cmd_xdel(conn: Connection, args: list[bytes]) -> Any:
    """Delete stream entries by ID; the number deleted."""
    return conn.st.xdel(args[1], *args[2:])


@command("XTRIM", -4, "write")
def cmd_xtrim(conn: Connection, args: list[bytes]) -> Any:
    """Trim a stream: MAXLEN|MINID [=|~] threshold [LIMIT n]; the number of entries deleted."""
    options, _ = _stream_options(args, 2, xadd=False)
    return conn.st.xtrim(args[1], **options)
