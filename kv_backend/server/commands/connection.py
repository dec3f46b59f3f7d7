"""Connection and server commands: PING, AUTH, HELLO, CLIENT, COMMAND, CONFIG, INFO..."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from kv_backend.errors import NotAnIntegerError
from kv_backend.server import clientlimit, ports, tlsreload
from kv_backend.server.blocking import Block
from kv_backend.server.commands import metadata
from kv_backend.server.commands.registry import (
    LLONG_MAX,
    arg_int,
    command,
    help_only,
    help_reply,
    int_or_error,
    now_ms,
    subcommand_syntax_error,
    syntax,
    unknown_subcommand,
    upper,
)
from kv_backend.server.protocol import OK, ErrorReply, OrderedSet, Pairs, Verbatim
from kv_backend.server.tls import config_entries
from kv_backend.structures import CommandError, glob_match
from kv_backend.structures.errors import c_string, quoted

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection, Server


@command("PING", -1, "pubsub")
def cmd_ping(conn: Connection, args: list[bytes]) -> Any:
    if len(args) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if conn.in_subscribe_mode() and not conn.resp3:
        return [b"pong", args[1] if len(args) > 1 else b""]
    return args[1] if len(args) > 1 else "PONG"


@command("ECHO", 2)
def cmd_echo(conn: Connection, args: list[bytes]) -> Any:
    return args[1]


@command("QUIT", -1, "noauth", "pubsub", "tx")
def cmd_quit(conn: Connection, args: list[bytes]) -> Any:
    conn.close_after_reply = True
    return OK


@command("RESET", 1, "noauth", "pubsub", "tx")
def cmd_reset(conn: Connection, args: list[bytes]) -> Any:
    conn.reset()
    return "RESET"


@command("SELECT", 2)
def cmd_select(conn: Connection, args: list[bytes]) -> Any:
    if arg_int(args[1]) != 0:
        raise CommandError("ERR DB index is out of range (this server has one database, 0)")
    return OK


@command("AUTH", -2, "noauth")
def cmd_auth(conn: Connection, args: list[bytes]) -> Any:
    if len(args) > 3:
        raise syntax()
    password = args[-1]
    user = args[1] if len(args) == 3 else None
    return conn.authenticate(user, password)


_BAD_NAME = "ERR Client names cannot contain spaces, newlines or special characters."


def _printable(value: bytes) -> bool:
    """Whether a client name or library name/version has only the bytes Redis allows in one
    (``!`` to ``~``): CLIENT LIST separates its fields with spaces and its lines with newlines."""
    return all(33 <= c <= 126 for c in value)


@command("HELLO", -1, "noauth")
def cmd_hello(conn: Connection, args: list[bytes]) -> Any:
    proto = None
    if len(args) > 1:
        try:
            proto = arg_int(args[1])
        except NotAnIntegerError:
            return ErrorReply("ERR Protocol version is not an integer or out of range")
        if proto not in (2, 3):
            return ErrorReply("NOPROTO unsupported protocol version")
    i = 2
    setname = None
    while i < len(args):
        opt = upper(args[i])
        if opt == b"AUTH" and i + 2 < len(args):
            result = conn.authenticate(args[i + 1], args[i + 2])
            if isinstance(result, ErrorReply):
                return result
            i += 3
        elif opt == b"SETNAME" and i + 1 < len(args):
            setname = args[i + 1]
            if not _printable(setname):  # as CLIENT SETNAME, checked where Redis checks it
                raise CommandError(_BAD_NAME)
            i += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{quoted(args[i])}'")
    if not conn.authed:
        return ErrorReply(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
            "AUTH <user> <pass> option can be used to authenticate the client and select the RESP "
            "protocol version at the same time"
        )
    if setname is not None:
        conn.name = setname or None  # "" removes the name, as CLIENT SETNAME ""
    if proto is not None:
        conn.resp3 = proto == 3
    from kv_backend import __version__

    return {
        b"server": b"redis",
        b"version": conn.server.REDIS_VERSION.encode(),
        b"proto": 3 if conn.resp3 else 2,
        b"id": conn.id,
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
        b"kvb_version": __version__.encode(),
    }


_CLIENT_HELP = help_reply(
    "CLIENT",
    [
        ("CACHING YES|NO", "Track (OPTIN: YES) or not (OPTOUT: NO) the keys the next command reads."),
        ("GETNAME", "This connection's name (nil if it has none)."),
        ("GETREDIR", "The client ID tracking messages are redirected to (0: none; -1: tracking is off)."),
        ("ID", "This connection's numeric ID."),
        ("INFO", "One CLIENT LIST line, for this connection."),
        ("KILL <ip:port>", "Close the connection whose address is <ip:port>."),
        (
            "KILL <filter> <value> [<filter> <value> ...]",
            "Close every connection that passes all filters; reply how many. Filters:\n"
            "* ID <client-id>\n* ADDR <ip:port>\n* LADDR <ip:port>\n* USER default\n"
            "* TYPE NORMAL|PUBSUB|MASTER|REPLICA\n* SKIPME YES|NO (YES, the default, spares this connection)",
        ),
        (
            "LIST [TYPE NORMAL|PUBSUB|MASTER|REPLICA] [ID <client-id> ...]",
            "One line per connection: address, name, age, idle time, flags, subscriptions...",
        ),
        ("NO-EVICT ON|OFF", "Accepted and ignored: kvb serve does not evict clients."),
        ("NO-TOUCH ON|OFF", "Accepted and ignored: keys have no access times here."),
        ("REPLY ON|OFF|SKIP", "Turn replies off (OFF), back on (ON), or skip the next command's (SKIP)."),
        ("SETINFO LIB-NAME|LIB-VER <value>", "Record the client library's name or version (shown by LIST)."),
        ("SETNAME <name>", "Name this connection (no spaces)."),
        (
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]] [OPTIN] [OPTOUT] [NOLOOP]",
            "Client-side caching: be told (invalidate) when keys this connection read change.",
        ),
        ("TRACKINGINFO", "This connection's tracking settings."),
        (
            "UNBLOCK <client-id> [TIMEOUT|ERROR]",
            "End another client's blocking call, as a timeout or an error.",
        ),
    ],
)


#: CLIENT's subcommands and their arities, as Redis's (checked before the handler runs).
_CLIENT_SUBCOMMANDS = {
    b"CACHING": 3,
    b"GETNAME": 2,
    b"GETREDIR": 2,
    b"HELP": 2,
    b"ID": 2,
    b"INFO": 2,
    b"KILL": -3,
    b"LIST": -2,
    b"NO-EVICT": 3,
    b"NO-TOUCH": 3,
    b"REPLY": 3,
    b"SETINFO": 4,
    b"SETNAME": 3,
    b"TRACKING": -3,
    b"TRACKINGINFO": 2,
    b"UNBLOCK": -3,
}


@command("CLIENT", -2, subcommands=_CLIENT_SUBCOMMANDS)
def cmd_client(conn: Connection, args: list[bytes]) -> Any:
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _CLIENT_HELP)
    if sub == b"ID" and len(args) == 2:
        return conn.id
    if sub == b"SETNAME" and len(args) == 3:
        if not _printable(args[2]):
            raise CommandError(_BAD_NAME)
        conn.name = args[2] or None
        return OK
    if sub == b"GETNAME" and len(args) == 2:
        return conn.name
    if sub == b"SETINFO" and len(args) == 4:
        if upper(args[2]) not in (b"LIB-NAME", b"LIB-VER"):
            raise CommandError(f"ERR Unrecognized option '{quoted(args[2])}'")
        if not _printable(args[3]):  # (Redis 7.2's check) a space would forge CLIENT LIST fields
            what = quoted(args[2])
            raise CommandError(f"ERR {what} cannot contain spaces, newlines or special characters.")
        conn.lib[upper(args[2]).decode()] = args[3]
        return OK
    if sub == b"INFO":
        if len(args) != 2:
            raise CommandError("ERR wrong number of arguments for 'client|info' command")
        return Verbatim(conn.describe() + b"\n")
    if sub == b"LIST":
        conns = list(conn.server.clients.values())
        if len(args) == 4 and upper(args[2]) == b"TYPE":
            kind = _client_type_arg(args[3])
            conns = [c for c in conns if _client_type(c) == kind]
        elif len(args) >= 4 and upper(args[2]) == b"ID":
            # as Redis: IDs read as integers are, all checked first; the clients in their order
            # (one given twice is listed twice)
            wanted = [int_or_error(raw, "ERR Invalid client ID") for raw in args[3:]]
            clients = conn.server.clients
            conns = [clients[i] for i in wanted if i in clients]
        elif len(args) != 2:
            raise CommandError("ERR syntax error")
        return Verbatim(b"".join(c.describe() + b"\n" for c in conns))
    if sub == b"KILL" and len(args) >= 3:
        return _client_kill(conn, args)
    if sub == b"UNBLOCK" and len(args) in (3, 4):
        how = upper(args[3]) if len(args) == 4 else b"TIMEOUT"
        if how not in (b"TIMEOUT", b"ERROR"):
            raise CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
        target = conn.server.clients.get(arg_int(args[2]))
        if target is None or target.blocked is None or target.blocked.by_server:
            return 0  # (as Redis: a CONFIG SET waiting for its TLS files is no blocking command)
        blk = conn.server.waiters.unblock(target)
        unblocked = ErrorReply("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        target.resume(blk.timed_out if how == b"TIMEOUT" and blk is not None else unblocked)
        return 1
    if sub in (b"NO-EVICT", b"NO-TOUCH") and len(args) == 3:
        switch = upper(args[2])
        if switch not in (b"ON", b"OFF"):
            raise syntax()
        if sub == b"NO-EVICT":
            conn.no_evict = switch == b"ON"
        else:
            conn.no_touch = switch == b"ON"
        return OK
    if sub == b"TRACKING":
        return conn.server.tracking.command(conn, args)
    if sub == b"CACHING":
        return _client_caching(conn, args[2])
    if sub == b"GETREDIR":
        return conn.tracking.redirect if conn.tracking is not None else -1
    if sub == b"TRACKINGINFO":
        state = conn.tracking
        return {
            b"flags": OrderedSet(state.flags() if state is not None else [b"off"]),
            b"redirect": state.redirect if state is not None else -1,
            b"prefixes": list(state.prefixes) if state is not None else [],
        }
    if sub == b"REPLY" and len(args) == 3:
        mode = upper(args[2])
        if mode == b"ON":
            conn.reply_off, conn.skip_replies = False, 0
        elif mode == b"OFF":
            conn.reply_off = True
        elif mode == b"SKIP":
            if not conn.reply_off:
                conn.skip_replies = 2  # this command's reply and the next one's
        else:
            raise syntax()
        return OK
    raise subcommand_syntax_error(args)


def _client_caching(conn: Connection, value: bytes) -> Any:
    """CLIENT CACHING YES|NO: track (OPTIN) or not (OPTOUT) the keys of the next command."""
    state = conn.tracking
    if state is None:
        raise CommandError(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode "
            "with OPTIN or OPTOUT mode enabled"
        )
    word = upper(value)
    if word == b"YES":
        if not state.optin:
            raise CommandError("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
    elif word == b"NO":
        if not state.optout:
            raise CommandError("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
    else:
        raise syntax()
    state.caching = True
    return OK


_CLIENT_TYPES = (b"NORMAL", b"MASTER", b"REPLICA", b"SLAVE", b"PUBSUB")


def _client_type_arg(raw: bytes) -> bytes:
    kind = upper(raw)
    if kind not in _CLIENT_TYPES:
        raise CommandError(f"ERR Unknown client type '{quoted(raw)}'")
    return b"REPLICA" if kind == b"SLAVE" else kind


def _client_type(c: Connection) -> bytes:
    """A client's type for CLIENT LIST/KILL TYPE: subscribed clients are pubsub (no replicas here)."""
    return b"PUBSUB" if c.in_subscribe_mode() else b"NORMAL"


def _client_kill(conn: Connection, args: list[bytes]) -> Any:
    """CLIENT KILL addr:port (OK, or no such client), or by filters (the number of clients killed)."""
    clients = list(conn.server.clients.values())
    if len(args) == 3:  # the old form
        found = [c for c in clients if c.peer.encode() == args[2]]
        if not found:
            raise CommandError("ERR No such client")
        _kill(conn, found[0])
        return OK
    skip_me = True
    # filter by filter, as Redis reads them; a filter given again replaces the earlier one, as there
    filters: dict[bytes, Callable[..., bool]] = {}  # each called with a client alone
    for i in range(2, len(args), 2):
        if i + 1 >= len(args):
            raise CommandError("ERR syntax error")
        key, value = upper(args[i]), args[i + 1]
        if key == b"ID":
            wanted = int_or_error(value, "ERR client-id should be greater than 0")
            if wanted <= 0:
                raise CommandError("ERR client-id should be greater than 0")
            filters[key] = lambda c, wanted=wanted: c.id == wanted
        elif key == b"TYPE":
            kind = _client_type_arg(value)
            filters[key] = lambda c, kind=kind: _client_type(c) == kind
        elif key == b"ADDR":
            filters[key] = lambda c, value=value: c.peer.encode() == value
        elif key == b"LADDR":
            filters[key] = lambda c, value=value: c.local.encode() == value
        elif key == b"USER":
            if value != b"default":
                raise CommandError(f"ERR No such user '{quoted(value)}'")
        elif key == b"SKIPME" and upper(value) in (b"YES", b"NO"):
            skip_me = upper(value) == b"YES"
        else:
            raise CommandError("ERR syntax error")
    killed = [
        c for c in clients if not (skip_me and c is conn) and all(match(c) for match in filters.values())
    ]
    for c in killed:
        _kill(conn, c)
    return len(killed)


def _kill(conn: Connection, target: Connection) -> None:
    """Close ``target``'s connection (the calling client's only after this reply)."""
    if target is conn:
        conn.close_after_reply = True
    elif target.transport is not None:
        target.detach()  # now, not when the loop sees the connection closed (see Connection.detach)
        target.transport.close()
        target.transport = None


_COMMAND_HELP = help_reply(
    "COMMAND",
    [
        ("(no subcommand)", "Name, arity, flags, key positions... of every command (as COMMAND INFO)."),
        ("COUNT", "How many commands kvb serve knows."),
        (
            "DOCS [<command-name> ...]",
            "Summary, since, group, complexity and arguments of the given commands (default: all).",
        ),
        ("GETKEYS <full-command>", "The keys in a call of a command."),
        ("GETKEYSANDFLAGS <full-command>", "The keys in a call of a command, with what it does to them."),
        (
            "INFO [<command-name> ...]",
            "Redis 7's ten fields for the given commands (default: all): name, arity, flags, first key,\n"
            "last key, key step, ACL categories, tips, key specifications, subcommands.",
        ),
        (
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "The names of all commands and subcommands (or those that pass the filter).",
        ),
    ],
)

_COMMAND_SUBCOMMANDS = {
    b"COUNT": 2,
    b"DOCS": -2,
    b"GETKEYS": -4,
    b"GETKEYSANDFLAGS": -4,
    b"HELP": 2,
    b"INFO": -2,
    b"LIST": -2,
}


@command("COMMAND", -1, subcommands=_COMMAND_SUBCOMMANDS)
def cmd_command(conn: Connection, args: list[bytes]) -> Any:
    if len(args) == 1:
        return [info.reply() for info in metadata.described()]
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _COMMAND_HELP)
    if sub == b"COUNT":
        return len(metadata.described())
    if sub == b"INFO":
        if len(args) == 2:
            return [info.reply() for info in metadata.described()]
        return [info.reply() if info else None for info in map(metadata.lookup, args[2:])]
    if sub == b"DOCS":
        found = metadata.described() if len(args) == 2 else [metadata.lookup(a) for a in args[2:]]
        # (a command named twice is answered twice, as Redis does: a map whose keys may repeat)
        return Pairs((info.name.encode(), info.docs()) for info in found if info is not None)
    if sub == b"LIST":
        if len(args) == 2:
            return metadata.names()
        if len(args) != 5 or upper(args[2]) != b"FILTERBY" or upper(args[3]) not in _LIST_FILTERS:
            raise syntax()
        return metadata.names(upper(args[3]), args[4])
    if sub == b"GETKEYS":
        return [key for key, _ in metadata.keys_of(args[2:])]
    if sub == b"GETKEYSANDFLAGS":
        return [[key, OrderedSet(flags)] for key, flags in metadata.keys_of(args[2:])]
    raise unknown_subcommand(args)


_LIST_FILTERS = (b"MODULE", b"ACLCAT", b"PATTERN")


_CONFIG_HELP = help_reply(
    "CONFIG",
    [
        (
            "GET <pattern> [<pattern> ...]",
            "The settings whose names match a glob pattern, with their values.",
        ),
        (
            "SET <directive> <value> [<directive> <value> ...]",
            "Change settings, all or none: notify-keyspace-events, slowlog-log-slower-than,\n"
            "slowlog-max-len, tracking-table-max-keys and busy-reply-threshold (lua-time-limit)\n"
            "are honoured, as are port, tls-port and the TLS certificate, key, CA, protocols and\n"
            "ciphers (for the TLS connections made after it); save, appendonly, hz,\n"
            "maxmemory-samples and maxmemory-eviction-tenacity are accepted and ignored; the\n"
            "others keep the value kvb serve was started with.",
        ),
        ("RESETSTAT", "Reset the counters INFO stats reports (connections and commands)."),
        ("REWRITE", "Refused: kvb serve has no configuration file."),
    ],
)


@command("CONFIG", -2, subcommands={b"GET": -3, b"HELP": 2, b"RESETSTAT": 2, b"REWRITE": 2, b"SET": -4})
def cmd_config(conn: Connection, args: list[bytes]) -> Any:
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _CONFIG_HELP)
    if sub == b"GET" and len(args) >= 3:
        return _config_get(conn.server.config(), args[2:])
    if sub == b"SET" and len(args) >= 4:
        return _config_set(conn, args)
    if sub == b"RESETSTAT" and len(args) == 2:
        conn.server.reset_stats()
        return OK
    if sub == b"REWRITE" and len(args) == 2:
        raise CommandError("ERR The server is running without a config file")
    raise unknown_subcommand(args)


def _config_get(params: dict[bytes, bytes], names: list[bytes]) -> dict[bytes, bytes]:
    """CONFIG GET's answer, as Redis makes it: a name with no glob character (``*?[``) is looked up
    in any case and answered as it was given (``MAXMEMORY``); a pattern answers each parameter it
    matches (in any case) by the parameter's own name; a parameter is answered once, under the
    first name that found it."""
    out: dict[bytes, bytes] = {}
    found: set[bytes] = set()
    for name in names:
        low = name.lower()
        if not any(c in b"*?[" for c in c_string(name)):  # (Redis's strpbrk reads a C string)
            if low in params and low not in found:
                found.add(low)
                out[name] = params[low]
            continue
        for k, v in params.items():
            if k not in found and glob_match(low, k):
                found.add(k)
                out[k] = v
    return out


def _config_failed(name: bytes, why: str) -> CommandError:
    """Redis's error for a CONFIG SET that names a known parameter it cannot set to this value."""
    return CommandError(f"ERR CONFIG SET failed (possibly related to argument '{quoted(name)}') - {why}")


def _config_set(conn: Connection, args: list[bytes]) -> Any:
    """CONFIG SET name value [name value ...]: checked in full before anything changes (all or none)."""
    if len(args) % 2:  # a name without its value (CONFIG SET with too few words is the arity error)
        raise CommandError("ERR syntax error")
    server = conn.server
    current = server.config()
    seen: set[bytes] = set()
    changes: list[tuple[bytes, Any]] = []
    for raw, value in zip(args[2::2], args[3::2], strict=True):
        name = raw.lower()
        kind = _CONFIG_KINDS.get(name)
        if kind is None:
            shown = quoted(raw)
            raise CommandError(f"ERR Unknown option or number of arguments for CONFIG SET - '{shown}'")
        if kind == "immutable":
            raise _config_failed(raw, "can't set immutable config")
        if kind == "protected":
            raise _config_failed(raw, "can't set protected config")
        if name in seen:
            raise _config_failed(raw, "duplicate parameter")
        seen.add(name)
        changes.append((name, value))
    applied: list[tuple[bytes, Any]] = []
    for name, value in changes:  # Redis checks the values in order, after the names
        checked = _check_config_value(name, value)
        kind = _CONFIG_KINDS[name]
        if name == b"requirepass":  # (CONFIG GET hides it: compared with the password in force)
            if not hmac.compare_digest(checked, os.fsencode(server.requirepass or "")):
                raise _config_failed(
                    name,
                    "kvb serve cannot change it (the password given at start stays for as long as it runs)",
                )
        elif kind == "fixed" and checked != _check_config_value(name, current[name]):
            start = _START_OPTIONS.get(name)
            hint = f": restart kvb serve with {start} {checked.decode('utf-8', 'replace')}" if start else ""
            raise _config_failed(
                name,
                f"kvb serve cannot change it (it is {current[name].decode('utf-8', 'replace')!r} "
                f"for as long as it runs{hint})",
            )
        if name == b"maxclients":  # as Redis: the limit of open files raised to fit them, if it can be
            allowed, _ = clientlimit.fit(checked)
            if allowed < checked:
                raise _config_failed(
                    name,
                    "The operating system is not able to handle the specified number of clients, "
                    f"try with {allowed}",
                )
        applied.append((name, checked))
    # (inside EXEC, which answers its commands together, a CONFIG SET cannot wait: built at once)
    names_tls = any(name in tlsreload.FIELDS for name, _ in applied)
    if names_tls and conn.can_block and (server.tls_changes.busy() or tlsreload.to_build(server, applied)):
        return _config_set_later(conn, args, applied)
    return _apply_config(server, applied)


def _config_set_later(conn: Connection, args: list[bytes], applied: list[tuple[bytes, Any]]) -> Block:
    """A CONFIG SET that reads TLS files, or waits for one that does: its files are read, and its
    context built, in a thread (see :class:`~kv_backend.server.tlsreload.Changes`) while the other
    clients are served; this client waits for its reply, its later commands with it (as behind a
    blocking command; CLIENT UNBLOCK cannot end the wait). A client gone meanwhile does not stop it."""
    server = conn.server
    start = perf_counter()
    waiting = Block([], 0, lambda: None, by_server=True)  # (it waits for the server, not for data)

    def finish(built: tlsreload.Built | None) -> None:
        try:
            reply = _apply_config(server, applied, built)
        except Exception as exc:
            reply = conn._error(exc, "config", args)
        slow = server.slowlog_seconds  # (as execute logs a command that ran as long)
        if slow is not None and perf_counter() - start >= slow:
            server.slowlog_check(conn, args, start)
        if conn.blocked is waiting:
            conn.blocked = None
            conn.resume(reply)
        if conn.eof and conn.transport is not None:  # (it shut down its side: closed once answered)
            server.schedule(conn)

    server.tls_changes.submit(applied, finish)
    return waiting


def _apply_config(
    server: Server, applied: list[tuple[bytes, Any]], built: tlsreload.Built | None = None
) -> Any:
    """Put CONFIG SET's checked values ``applied`` in force, all or none (``built``: the TLS context
    made for them off the event loop; else it is built here)."""
    try:  # (new ports bound, a new TLS context built, before anything changes)
        port_change, tls_change = _prepare_listeners(server, applied, built)
    except ports.Refused as refused:
        raise _config_failed(refused.name, refused.reason) from None
    if port_change is not None:
        ports.commit(server, port_change)
    if tls_change is not None:
        tlsreload.commit(server, tls_change)
    for name, checked in applied:
        if name == b"notify-keyspace-events":
            server.set_notify_flags(checked)
        elif name == b"slowlog-log-slower-than":
            server.set_slowlog_threshold(checked)
        elif name == b"slowlog-max-len":
            server.slowlog_max_len = checked
        elif name == b"tracking-table-max-keys":
            server.tracking.max_keys = checked
        elif name == b"hz":
            server.configured_hz = checked
        elif name in server.eviction_settings:
            server.eviction_settings[name] = str(checked).encode()
        elif name in (b"busy-reply-threshold", b"lua-time-limit"):
            server.busy_reply_threshold = checked
        elif name == b"maxclients":  # (the clients served already stay, as in Redis)
            server.maxclients = checked
        elif name == b"tcp-keepalive":  # (for the connections made from now on, as in Redis)
            server.tcp_keepalive = checked
        elif name == b"client-query-buffer-limit":  # (every client's next read, as in Redis)
            server.client_query_buffer_limit = checked
        elif name == b"protected-mode":  # (for the connections made from now on, as in Redis)
            server.protected_mode = checked == b"yes"
        elif name == b"loglevel":
            server.loglevel = checked.decode()
    return OK


def _prepare_listeners(
    server: Server, applied: list[tuple[bytes, Any]], built: tlsreload.Built | None = None
) -> tuple[ports.Change | None, tlsreload.Change | None]:
    """The plaintext port's and the TLS settings' changes CONFIG SET's ``applied`` values make, bound
    and built (:class:`~kv_backend.server.ports.Refused` if one cannot be, the other given up). As in
    Redis, the one whose parameter comes first is made first: where both fail, it is the one named."""
    names = [name for name, _ in applied]
    tls_first = next((i for i, name in enumerate(names) if name in tlsreload.FIELDS), len(names))
    port_first = names.index(b"port") if b"port" in names else len(names)
    port_change = tls_change = None
    try:
        if tls_first < port_first:
            tls_change = tlsreload.prepare(server, applied, built)
        port_change = ports.prepare(server, applied)
        if tls_first > port_first:
            tls_change = tlsreload.prepare(server, applied, built)
    except ports.Refused:
        for change in (port_change, tls_change):
            if change is not None:
                change.abandon()
        raise
    return port_change, tls_change


#: What CONFIG SET does with each parameter CONFIG GET reports: ``honour`` it, ``ignore`` a valid
#: value (harmless: kvb logs every write before replying, whatever snapshot or AOF settings say),
#: ``show`` a valid value without acting on it (``hz``: kvb's timers keep their pace), keep a
#: ``fixed`` one (accepted only as its current value), or refuse an ``immutable`` or ``protected``
#: one as Redis does.
_CONFIG_KINDS = {
    b"notify-keyspace-events": "honour",
    b"slowlog-log-slower-than": "honour",
    b"slowlog-max-len": "honour",
    b"tracking-table-max-keys": "honour",
    b"busy-reply-threshold": "honour",
    b"lua-time-limit": "honour",  # (Redis's old name of busy-reply-threshold)
    b"latency-monitor-threshold": "fixed",
    b"hz": "show",
    b"save": "ignore",
    b"appendonly": "ignore",
    b"appendfsync": "fixed",
    b"port": "honour",  # (see kv_backend.server.ports)
    b"bind": "fixed",
    b"maxmemory": "fixed",
    b"maxmemory-policy": "fixed",
    b"maxmemory-samples": "show",
    b"maxmemory-eviction-tenacity": "show",
    b"maxmemory-clients": "fixed",
    b"timeout": "fixed",
    b"tcp-keepalive": "honour",
    b"protected-mode": "honour",
    b"requirepass": "fixed",
    b"proto-max-bulk-len": "fixed",
    b"client-query-buffer-limit": "honour",
    b"hll-sparse-max-bytes": "fixed",
    b"maxclients": "honour",
    b"databases": "immutable",
    b"unixsocket": "immutable",
    b"io-threads": "immutable",
    b"dir": "protected",
    b"loglevel": "honour",
    # The TLS port's (kvb serve --tls-*): those Python's ssl module can set are honoured (see
    # kv_backend.server.tlsreload), the others keep Redis's defaults.
    **dict.fromkeys(config_entries(None), "fixed"),
    **dict.fromkeys(tlsreload.FIELDS, "honour"),
}

#: The ``fixed`` parameters a ``kvb serve`` option sets at start, and that option (named in the error
#: of a CONFIG SET that would change it). appendfsync: the engine keeps the sync policy a store was
#: opened with for as long as it is open.
_START_OPTIONS = {b"appendfsync": "--appendfsync"}

_POLICIES = (
    "volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, "
    "noeviction"
)
_MEMORY_UNITS = {b"": 1, b"b": 1, b"k": 1000, b"kb": 1024, b"m": 1000**2, b"mb": 1024**2}
_MEMORY_UNITS.update({b"g": 1000**3, b"gb": 1024**3})


def _memory(name: bytes, value: bytes) -> int:
    """A memory value (``100``, ``1mb``, ``2G``...), as Redis reads one (a C string: up to a NUL)."""
    low = c_string(value).lower()
    digits = low.rstrip(b"kmgb")
    unit = low[len(digits) :]
    if not digits.isdigit() or unit not in _MEMORY_UNITS:
        raise _config_failed(name, "argument must be a memory value")
    return int(digits) * _MEMORY_UNITS[unit]


def _memory_or_percent(name: bytes, value: bytes) -> int:
    """A memory value or a percentage (``5%``, at most 100), as Redis reads one: 0 and 0% alike."""
    digits = c_string(value)
    if digits.endswith(b"%"):
        if not digits[:-1].isdigit():
            raise _config_failed(name, "argument must be a memory or percent value")
        if int(digits[:-1]) > 100:
            raise _config_failed(name, "percentage argument must be less or equal to 100")
        return -int(digits[:-1])  # (a percentage, told apart from a size by its sign)
    try:
        return _memory(name, value)
    except CommandError:
        raise _config_failed(name, "argument must be a memory or percent value") from None


def _bounded(name: bytes, value: bytes, low: int, high: int) -> int:
    """An integer setting, read as Redis reads one (``+5``, ``05``, ``-0``, `` 5``, ``1_0`` are not)."""
    try:
        n = arg_int(value)
    except NotAnIntegerError:
        raise _config_failed(name, "argument couldn't be parsed into an integer") from None
    if not low <= n <= high:
        raise _config_failed(name, f"argument must be between {low} and {high} inclusive")
    return n


#: The parameters CONFIG SET takes as one of a few words: those words, as Redis's error lists them.
_ONE_OF = {
    b"appendfsync": "everysec, always, no",
    b"maxmemory-policy": _POLICIES,
    b"loglevel": "debug, verbose, notice, warning",
    b"tls-auth-clients": "no, yes, optional",
}
#: The parameters CONFIG SET takes as yes or no.
_YES_NO = frozenset(
    (
        b"appendonly",
        b"protected-mode",
        b"tls-replication",
        b"tls-cluster",
        b"tls-prefer-server-ciphers",
        b"tls-session-caching",
    )
)


def _check_config_value(name: bytes, value: bytes) -> Any:
    """The value CONFIG SET would give ``name``, or Redis's error for a value it does not take."""
    from kv_backend.server.notify import BAD_CLASS, parse_flags

    if name == b"notify-keyspace-events":
        flags = parse_flags(value)
        if flags is None:
            raise _config_failed(name, BAD_CLASS)
        return flags
    word = upper(value).lower()  # a yes/no or one-of value, compared as Redis compares it (a C string)
    if name in _YES_NO:
        if word not in (b"yes", b"no"):
            raise _config_failed(name, "argument must be 'yes' or 'no'")
        return word
    if (choices := _ONE_OF.get(name)) is not None:
        if word.decode("utf-8", "replace") not in choices.split(", "):
            raise _config_failed(name, f"argument(s) must be one of the following: {choices}")
        return word
    if name == b"save":
        words = value.split()
        if len(words) % 2 or not all(w.isdigit() for w in words):
            raise _config_failed(name, "Invalid save parameters")
        return value
    if name in (b"maxmemory", b"hll-sparse-max-bytes"):
        return _memory(name, value)
    if name == b"maxmemory-clients":  # a memory value, or a percentage of maxmemory (0: no limit)
        return _memory_or_percent(name, value)
    if name == b"maxmemory-samples":
        return _bounded(name, value, 1, 2147483647)
    if name == b"maxmemory-eviction-tenacity":
        return _bounded(name, value, 0, 100)
    if name in (b"timeout", b"tcp-keepalive", b"tls-session-cache-size", b"tls-session-cache-timeout"):
        return _bounded(name, value, 0, 2147483647)
    if name == b"maxclients":
        return _bounded(name, value, 1, 4294967295)
    if name in (b"proto-max-bulk-len", b"client-query-buffer-limit"):
        n = _memory(name, value)  # a memory value: plain digits too, leading zeros and all
        if not 1048576 <= n <= (1 << 63) - 1:
            raise _config_failed(name, "argument must be between 1048576 and 9223372036854775807 inclusive")
        return n
    if name in (b"port", b"tls-port"):
        return _bounded(name, value, 0, 65535)
    if name == b"hz":  # any int, taken as Redis takes it: brought into 1 to 500
        return min(max(_bounded(name, value, 0, 2147483647), 1), 500)
    if name in (b"tracking-table-max-keys", b"busy-reply-threshold", b"lua-time-limit"):
        return _bounded(name, value, 0, (1 << 63) - 1)
    if name in (b"slowlog-log-slower-than", b"slowlog-max-len", b"latency-monitor-threshold"):
        try:
            n = arg_int(value)
        except NotAnIntegerError:
            raise _config_failed(name, "argument couldn't be parsed into an integer") from None
        low = -1 if name == b"slowlog-log-slower-than" else 0
        if n < low:
            raise _config_failed(name, f"argument must be between {low} and 9223372036854775807 inclusive")
        return n
    return value


@command("WAIT", 3)
def cmd_wait(conn: Connection, args: list[bytes]) -> Any:
    """Wait for replicas to acknowledge the writes so far: with none, 0 (at once if none is asked for)."""
    numreplicas = arg_int(args[1])
    timeout = int_or_error(args[2], "ERR timeout is not an integer or out of range")
    if timeout < 0:
        raise CommandError("ERR timeout is negative")
    if timeout > LLONG_MAX - now_ms():  # as Redis 7.2: the deadline must fit in milliseconds
        raise CommandError("ERR timeout is out of range")
    if numreplicas <= 0 or not conn.can_block:  # inside MULTI: at once, as Redis
        return 0
    return Block([], timeout / 1000, lambda: None, timed_out=0)  # no replica will ever acknowledge


@command("INFO", -1)
def cmd_info(conn: Connection, args: list[bytes]) -> Any:
    return Verbatim(conn.server.info([c_string(a).lower() for a in args[1:]]))  # (Redis: sdsnew(C string))


@command("TIME", 1)
def cmd_time(conn: Connection, args: list[bytes]) -> Any:
    now = time.time()
    return [str(int(now)).encode(), str(int((now % 1) * 1_000_000)).encode()]


@command("LASTSAVE", 1)
def cmd_lastsave(conn: Connection, args: list[bytes]) -> Any:
    """When the last SAVE or BGSAVE that succeeded ended (the server's start before any), as Redis."""
    return conn.server.bgsaves.last_save_time


@command("SAVE", 1)
def cmd_save(conn: Connection, args: list[bytes]) -> Any:
    """Fsync the store now, on the event loop (SAVE blocks in Redis too); refused while a BGSAVE runs."""
    saves = conn.server.bgsaves
    if saves.running:
        raise CommandError("ERR Background save already in progress")
    try:
        conn.server.db.sync()
    except OSError as exc:
        commit = conn.server.group_commit
        if commit is not None:  # (--appendfsync always: writes are refused until an fsync succeeds)
            commit.record_failure(exc, "SAVE of")
        raise
    saves.saved()
    return OK


@command("BGSAVE", -1)
def cmd_bgsave(conn: Connection, args: list[bytes]) -> Any:
    """BGSAVE [SCHEDULE]: fsync the store in a thread (bgsave.py), answered at once with Redis's
    replies: one already running is an error (SCHEDULE too, as in Redis 7.0, where it only waits for
    another kind of child); inside EXEC it is scheduled, to begin once the transaction has run."""
    if len(args) > 2 or (len(args) == 2 and upper(args[1]) != b"SCHEDULE"):
        raise syntax()
    saves = conn.server.bgsaves
    if saves.running:
        raise CommandError("ERR Background save already in progress")
    if not conn.can_block:  # inside EXEC (scripts may not call it)
        saves.schedule()
        return "Background saving scheduled"
    if not saves.start():
        raise CommandError("ERR")  # (redis-server's reply when it cannot fork: the log says why)
    return "Background saving started"
