"""Stream consumer-group commands: XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO, XSETID.

Argument parsing and error order follow Redis 7.2; the work is done by
:class:`kv_backend.structures.groups.StreamGroups`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import (
    arg_int,
    command,
    help_reply,
    int_or_error,
    subcommand_syntax_error,
    syntax,
    upper,
)
from kv_backend.server.commands.streams import entries_reply, read_options, stream_read, streams_reply
from kv_backend.server.protocol import NULL_ARRAY, OK
from kv_backend.structures import CommandError
from kv_backend.structures.errors import quoted
from kv_backend.structures.groups import _strict_id as strict_stream_id

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


def _entry(entry: tuple[bytes, list[tuple[bytes, bytes]] | None]) -> list[Any]:
    """One entry as Redis sends it; a pending entry deleted from the stream has a null body."""
    xid, pairs = entry
    return [xid, NULL_ARRAY if pairs is None else [w for pair in pairs for w in pair]]


_XGROUP_HELP = help_reply(
    "XGROUP",
    [
        (
            "CREATE <key> <groupname> <id|$> [option]",
            "Create a consumer group reading after <id> ($: only new entries). Options:\n"
            "* MKSTREAM\n  Create an empty stream when the key does not exist.\n"
            "* ENTRIESREAD entries_read\n  Set the group's count of entries read (for lag).",
        ),
        ("CREATECONSUMER <key> <groupname> <consumer>", "Add a consumer to a group."),
        ("DELCONSUMER <key> <groupname> <consumer>", "Remove a consumer and its pending entries."),
        ("DESTROY <key> <groupname>", "Delete a group."),
        (
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "Move the group's last delivered ID (and entries-read counter).",
        ),
    ],
)


_XGROUP_SUBCOMMANDS = {
    b"CREATE": -5,
    b"SETID": -5,
    b"DESTROY": 4,
    b"CREATECONSUMER": 5,
    b"DELCONSUMER": 5,
    b"HELP": 2,
}


@command("XGROUP", -2, "write", subcommands=_XGROUP_SUBCOMMANDS)
def cmd_xgroup(conn: Connection, args: list[bytes]) -> Any:
    """Manage consumer groups: CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER, HELP."""
    sub = upper(args[1])
    if sub == b"HELP":
        return _XGROUP_HELP
    st = conn.st
    key, group = args[2], args[3]
    mkstream = False
    entries_read: int | None = None
    i = 5
    while i < len(args):
        word = upper(args[i])
        if sub == b"CREATE" and word == b"MKSTREAM":
            mkstream = True
            i += 1
        elif sub in (b"CREATE", b"SETID") and word == b"ENTRIESREAD" and i + 1 < len(args):
            entries_read = arg_int(args[i + 1])
            if entries_read < -1:
                raise CommandError("ERR value for ENTRIESREAD must be positive or -1")
            i += 2
        else:
            raise subcommand_syntax_error(args)
    if sub == b"CREATE":
        if len(args) > 8:
            raise subcommand_syntax_error(args)
        st.xgroup_create(key, group, args[4], mkstream=mkstream, entries_read=entries_read)
        return OK
    if sub == b"SETID":
        if len(args) not in (5, 7):
            raise subcommand_syntax_error(args)
        st.xgroup_setid(key, group, args[4], entries_read=entries_read)
        return OK
    if sub == b"DESTROY":
        return st.xgroup_destroy(key, group)
    if sub == b"CREATECONSUMER":
        return st.xgroup_createconsumer(key, group, args[4])
    return st.xgroup_delconsumer(key, group, args[4])


@command("XREADGROUP", -7, "write")
def cmd_xreadgroup(conn: Connection, args: list[bytes]) -> Any:
    """Read as a consumer of a group: GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key... id..."""
    options = read_options(conn, args, group=True)
    group, consumer, streams = options.group, options.consumer, options.streams
    if group is None or consumer is None:
        raise CommandError("ERR Missing GROUP option for XREADGROUP")
    count, block, noack = options.count, options.block, options.noack
    st = conn.st
    if block is None:  # the usual read: once, without the retries (and their closures) a wait needs
        found = st.xreadgroup(group, consumer, streams, count, noack=noack)
        reply = streams_reply([(name, [_entry(e) for e in entries]) for name, entries in found], conn.resp3)
        return NULL_ARRAY if reply is None else reply
    tries = 0

    def read() -> list[tuple[bytes, list[Any]]]:
        nonlocal tries
        tries += 1  # a retry of a blocked read leaves the consumer's seen-time alone
        if tries > 1:
            st._check_still_grouped(group, streams)
        found = st.xreadgroup(group, consumer, streams, count, noack=noack, touch=tries == 1)
        return [(name, [_entry(e) for e in entries]) for name, entries in found]

    return stream_read(conn, [name for name, _ in streams], block, read)


@command("XACK", -4, "write")
def cmd_xack(conn: Connection, args: list[bytes]) -> Any:
    """Acknowledge entries of a group; the number that were pending."""
    return conn.st.xack(args[1], args[2], *args[3:])


@command("XPENDING", -3)
def cmd_xpending(conn: Connection, args: list[bytes]) -> Any:
    """A group's pending entries: a summary, or [IDLE ms] start end count [consumer] for the entries."""
    n = len(args)
    if n != 3 and not 6 <= n <= 9:
        raise syntax()
    st = conn.st
    if n == 3:
        total, lo, hi, consumers = st.xpending(args[1], args[2])
        if not total:
            return [0, None, None, NULL_ARRAY]
        return [total, lo, hi, [[c, str(k).encode()] for c, k in consumers]]
    start = 3
    idle = 0
    if upper(args[3]) == b"IDLE":
        idle = arg_int(args[4])
        if n < 8:
            raise syntax()
        start = 5
    count = max(0, arg_int(args[start + 2]))
    consumer = args[start + 3] if start + 3 < n else None  # as Redis, anything after it is ignored
    rows = st.xpending_range(args[1], args[2], args[start], args[start + 1], count, consumer, idle)
    return [list(row) for row in rows]


@command("XCLAIM", -6, "write")
def cmd_xclaim(conn: Connection, args: list[bytes]) -> Any:
    """Take pending entries over: key group consumer min-idle-time id... [IDLE|TIME|RETRYCOUNT|FORCE|...]."""
    st = conn.st
    st.require_group(args[1], args[2])
    min_idle = int_or_error(args[4], "ERR Invalid min-idle-time argument for XCLAIM")
    j = 5
    ids = []
    while j < len(args):
        try:
            st.check_entry_id(args[j])
        except CommandError:
            break
        ids.append(args[j])
        j += 1
    options: dict[str, Any] = {}
    while j < len(args):
        word = upper(args[j])
        more = j + 1 < len(args)
        if word == b"FORCE":
            options["force"] = True
        elif word == b"JUSTID":
            options["justid"] = True
        elif word in (b"IDLE", b"TIME", b"RETRYCOUNT") and more:
            j += 1
            text = word.decode()
            value = int_or_error(args[j], f"ERR Invalid {text} option argument for XCLAIM")
            options[text.lower()] = value
            if word == b"TIME":
                options.pop("idle", None)
            elif word == b"IDLE":
                options.pop("time", None)
        elif word == b"LASTID" and more:
            j += 1
            st.check_entry_id(args[j])
            options["lastid"] = args[j]
        else:
            raise CommandError(f"ERR Unrecognized XCLAIM option '{quoted(args[j])}'")
        j += 1
    claimed = st.xclaim(args[1], args[2], args[3], min_idle, ids, **options)
    return claimed if options.get("justid") else [_entry(e) for e in claimed]


@command("XAUTOCLAIM", -6, "write")
def cmd_xautoclaim(conn: Connection, args: list[bytes]) -> Any:
    """Claim idle pending entries from a start ID on: key group consumer min-idle start [COUNT n] [JUSTID]."""
    min_idle = int_or_error(args[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM")
    st = conn.st
    st.check_stream_range(args[5], b"+")
    count = 100
    justid = False
    j = 6
    while j < len(args):
        word = upper(args[j])
        if word == b"COUNT" and j + 1 < len(args):
            count = int_or_error(args[j + 1], "ERR COUNT must be > 0")
            # as Redis: at most LONG_MAX over the larger of an ID's size (16 bytes) and its
            # attempts factor (10), which it sizes its arrays by
            if count < 1 or count > ((1 << 63) - 1) // 16:
                raise CommandError("ERR COUNT must be > 0")
            j += 2
        elif word == b"JUSTID":
            justid = True
            j += 1
        else:
            raise syntax()
    cursor, claimed, deleted = st.xautoclaim(args[1], args[2], args[3], min_idle, args[5], count, justid)
    return [cursor, claimed if justid else [_entry(e) for e in claimed], deleted]


def _map(info: dict[str, Any]) -> dict[bytes, Any]:
    """An XINFO result as a Redis map (bytes keys; entries, nested maps and lists converted)."""
    out: dict[bytes, Any] = {}
    for k, v in info.items():
        if k in ("first-entry", "last-entry"):
            v = None if v is None else _entry(v)
        elif k == "entries":
            v = entries_reply(v)
        elif isinstance(v, list):
            v = [_map(x) if isinstance(x, dict) else list(x) for x in v]
        out[k.encode()] = v
    return out


_XINFO_HELP = help_reply(
    "XINFO",
    [
        ("CONSUMERS <key> <groupname>", "The consumers of a group."),
        ("GROUPS <key>", "The consumer groups of a stream."),
        (
            "STREAM <key> [FULL [COUNT <count>]]",
            "Facts about a stream (FULL: with its entries, groups and pending entries).",
        ),
    ],
)


@command("XINFO", -2, subcommands={b"CONSUMERS": 4, b"GROUPS": 3, b"STREAM": -3, b"HELP": 2})
def cmd_xinfo(conn: Connection, args: list[bytes]) -> Any:
    """Facts about a stream: STREAM key [FULL [COUNT n]], GROUPS key, CONSUMERS key group, HELP."""
    sub = upper(args[1])
    if sub == b"HELP":
        return _XINFO_HELP
    st = conn.st
    st.require_stream(args[2])  # as Redis: "no such key" or WRONGTYPE before anything else
    if sub == b"CONSUMERS":
        return [_map(c) for c in st.xinfo_consumers(args[2], args[3])]
    if sub == b"GROUPS":
        return [_map(g) for g in st.xinfo_groups(args[2])]
    options = args[3:]
    full, count = False, 10
    if options:
        if len(options) not in (1, 3) or upper(options[0]) != b"FULL":
            raise subcommand_syntax_error(args)
        full = True
        if len(options) == 3:
            if upper(options[1]) != b"COUNT":
                raise subcommand_syntax_error(args)
            count = arg_int(options[2])
    return _map(st.xinfo_stream(args[2], full=full, count=count))


@command("XSETID", -3, "write")
def cmd_xsetid(conn: Connection, args: list[bytes]) -> Any:
    """Set a stream's last ID: key last-id [ENTRIESADDED n] [MAXDELETEDID id]."""
    st = conn.st
    st.check_entry_id(args[2])
    options: dict[str, Any] = {}
    i = 3
    while i < len(args):
        word = upper(args[i])
        if word == b"ENTRIESADDED" and i + 1 < len(args):
            options["entries_added"] = arg_int(args[i + 1])
            if options["entries_added"] < 0:
                raise CommandError("ERR entries_added must be positive")
        elif word == b"MAXDELETEDID" and i + 1 < len(args):
            st.check_entry_id(args[i + 1])
            options["max_deleted_id"] = args[i + 1]
            # as Redis: checked as soon as the option is read, before any later option
            if strict_stream_id(args[2]) < strict_stream_id(args[i + 1]):
                raise CommandError(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"
                )
        else:
            raise syntax()
        i += 2
    st.xsetid(args[1], args[2], **options)
    return OK
