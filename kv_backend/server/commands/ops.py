"""Operational commands that monitoring and debugging tools call: MONITOR, SLOWLOG, MEMORY, LATENCY,
SHUTDOWN."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from kv_backend.errors import NotAnIntegerError
from kv_backend.server.commands.registry import (
    arg_int,
    command,
    help_only,
    subcommand_syntax_error,
    syntax,
    unknown_subcommand,
    upper,
)
from kv_backend.server.protocol import OK, DoubleText, ErrorReply, Replies, Verbatim
from kv_backend.structures import CommandError
from kv_backend.structures.errors import quoted

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


#: SHUTDOWN's options: kvb has no snapshot to save or skip, no replicas to wait for.
_SHUTDOWN_OPTIONS = frozenset({b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"})


@command("SHUTDOWN", -1)
def cmd_shutdown(conn: Connection, args: list[bytes]) -> Any:
    """Synchronously save the dataset to disk and then shut down the server."""
    options = {upper(a) for a in args[1:]}
    both = {b"NOSAVE", b"SAVE"} <= options
    if not options <= _SHUTDOWN_OPTIONS or both or (b"ABORT" in options and len(options) > 1):
        raise syntax()
    if b"ABORT" in options:  # a shutdown is never in progress: it stops the server at once
        raise CommandError("ERR No shutdown in progress.")
    run = conn.server.scripts.running
    if run is not None:  # (a script runs long: see busy.py) as Redis, only NOSAVE stops it,
        if b"NOSAVE" not in options:  # keeping none of its writes
            return ErrorReply(run.busy_error)
        run.halt()
    # As SIGTERM: the server stops, its store fsynced and closed (Server.close); as in Redis, the
    # client gets no reply, its connection closed.
    conn.server.shut_down(conn)
    conn.close_after_reply = True
    return Replies()


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


_MEMORY_HELP = [
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
]

#: Below this many bytes Redis's MEMORY DOCTOR declines to look (as for an empty instance).
_DOCTOR_MIN_BYTES = 5 * 1024 * 1024
_DOCTOR_EMPTY = (
    "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used "
    "in these conditions. Please, leave for your mission on Earth and fill it with some data. The new "
    "Sam and I will be back to our programming as soon as I finished rebooting.\n"
)
_DOCTOR_FINE = (
    "Hi Sam, I can't find any memory issue in your instance. "
    "I can only account for what occurs on this base.\n"
)


def _memory_samples(args: list[bytes]) -> int:
    """MEMORY USAGE's options after the key: ``SAMPLES n`` (0: all; default 5), checked as Redis."""
    samples = 5
    i = 3
    while i < len(args):
        if upper(args[i]) == b"SAMPLES" and i + 1 < len(args):
            samples = arg_int(args[i + 1])
            if samples < 0:
                raise syntax()
            i += 2
        else:
            raise syntax()
    return samples


def _double(value: float) -> DoubleText:
    return DoubleText(b"%.17g" % value)


def memory_stats(conn: Connection) -> dict[bytes, Any]:
    """MEMORY STATS: Redis 7.0's fields, filled with what kvb knows (docs/redis.md, "MEMORY").

    ``total.allocated`` (and ``peak.allocated``, which kvb does not track apart) is the bytes of
    live records in the store's log, as INFO's used_memory; ``keys.count`` the keys; ``lua.caches``
    the bytes of the cached scripts; the dataset figures follow from these as in Redis. There is
    no replication, AOF buffer, cluster or function: 0; allocator figures are not measured: 0
    bytes, ratios 1.
    """
    server = conn.server
    total = int(server.db.stats().get("live_bytes", 0))
    keys = server.st.dbsize()
    lua = sum(len(body) for body in server.scripts.bodies.values())
    overhead = lua
    dataset = max(total - overhead, 0)
    out: dict[bytes, Any] = {
        b"peak.allocated": total,
        b"total.allocated": total,
        b"startup.allocated": 0,
        b"replication.backlog": 0,
        b"clients.slaves": 0,
        b"clients.normal": 0,
        b"cluster.links": 0,
        b"aof.buffer": 0,
        b"lua.caches": lua,
        b"functions.caches": 0,
    }
    if keys:
        out[b"db.0"] = {
            b"overhead.hashtable.main": 0,
            b"overhead.hashtable.expires": 0,
            b"overhead.hashtable.slot-to-keys": 0,
        }
    out.update(
        {
            b"overhead.total": overhead,
            b"keys.count": keys,
            b"keys.bytes-per-key": total // keys if keys else 0,
            b"dataset.bytes": dataset,
            b"dataset.percentage": _double(dataset * 100 / total if total else 0.0),
            b"peak.percentage": _double(100.0 if total else 0.0),
            b"allocator.allocated": 0,
            b"allocator.active": 0,
            b"allocator.resident": 0,
            b"allocator-fragmentation.ratio": _double(1.0),
            b"allocator-fragmentation.bytes": 0,
            b"allocator-rss.ratio": _double(1.0),
            b"allocator-rss.bytes": 0,
            b"rss-overhead.ratio": _double(1.0),
            b"rss-overhead.bytes": 0,
            b"fragmentation": _double(1.0),
            b"fragmentation.bytes": 0,
        }
    )
    return out


@command(
    "MEMORY",
    -2,
    subcommands={b"DOCTOR": 2, b"HELP": 2, b"MALLOC-STATS": 2, b"PURGE": 2, b"STATS": 2, b"USAGE": -3},
)
def cmd_memory(conn: Connection, args: list[bytes]) -> Any:
    """A container for memory diagnostics commands."""
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _MEMORY_HELP)
    if sub == b"USAGE":
        return conn.st.memory_usage(args[2], _memory_samples(args))
    if sub == b"STATS":
        return memory_stats(conn)
    if sub == b"DOCTOR":
        used = int(conn.server.db.stats().get("live_bytes", 0))
        return Verbatim((_DOCTOR_EMPTY if used < _DOCTOR_MIN_BYTES else _DOCTOR_FINE).encode())
    if sub == b"MALLOC-STATS":  # what a redis-server built without jemalloc answers
        return b"Stats not supported for the current allocator"
    if sub == b"PURGE":
        return OK
    raise unknown_subcommand(args)


_LATENCY_HELP = [
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified "
    "command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
]

_LATENCY_DISABLED = (
    "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may "
    'use "CONFIG SET latency-monitor-threshold <milliseconds>." in order to enable it. If we weren\'t '
    "in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n"
)


@command(
    "LATENCY",
    -2,
    subcommands={
        b"DOCTOR": 2,
        b"GRAPH": 3,
        b"HELP": 2,
        b"HISTOGRAM": -2,
        b"HISTORY": 3,
        b"LATEST": 2,
        b"RESET": -2,
    },
)
def cmd_latency(conn: Connection, args: list[bytes]) -> Any:
    """A container for latency diagnostics commands."""
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _LATENCY_HELP)
    # kvb has no latency monitor: it answers as redis-server with latency-monitor-threshold 0,
    # which has sampled no event, and it keeps no per-command histograms
    if sub in (b"LATEST", b"HISTORY"):
        return []
    if sub == b"RESET":
        return 0
    if sub == b"GRAPH":
        event = quoted(args[2])
        raise CommandError(f"ERR No samples available for event '{event}'")
    if sub == b"DOCTOR":
        return Verbatim(_LATENCY_DISABLED.encode())
    if sub == b"HISTOGRAM":
        return {}
    raise unknown_subcommand(args)
