"""Operational commands that monitoring and debugging tools call: MONITOR, SLOWLOG, MEMORY, LATENCY."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from kv_backend.errors import NotAnIntegerError
from kv_backend.server.commands.registry import arg_int, command, subcommand_syntax_error
from kv_backend.server.protocol import OK, Replies
from kv_backend.structures import CommandError

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("MONITOR", 1)
def cmd_monitor(conn: Connection, args: list[bytes]) -> Any:
    """Listen for all requests received by the server in real time."""
    if not conn.can_block:  # inside EXEC: a client there expects one reply per command
        raise CommandError("ERR MONITOR isn't allowed for DENY BLOCKING client")
    monitors = conn.server.monitors
    if conn in monitors:
        return Replies()  # as Redis: a second MONITOR is ignored, without a reply
    monitors.add(conn)
    return OK


_SLOWLOG_HELP = [
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
]


@command("SLOWLOG", -2, subcommands={b"GET": -2, b"HELP": 2, b"LEN": 2, b"RESET": 2})
def cmd_slowlog(conn: Connection, args: list[bytes]) -> Any:
    """A container for slow log commands."""
    sub = args[1].upper()
    log = conn.server.slowlog
    if sub == b"HELP":
        return _SLOWLOG_HELP
    if sub == b"LEN":
        return len(log)
    if sub == b"RESET":
        log.clear()
        return OK
    if sub == b"GET" and len(args) <= 3:
        count = 10
        if len(args) == 3:
            try:
                count = arg_int(args[2])
            except NotAnIntegerError:
                count = -2
            if count < -1:
                raise CommandError("ERR count should be greater than or equal to -1")
        entries = list(log) if count == -1 else list(itertools.islice(log, count))
        return [list(e) for e in entries]
    raise subcommand_syntax_error(args)
