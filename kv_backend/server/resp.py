"""``kvb serve``: a Redis-protocol (RESP2/RESP3) server over a kv_backend store.

One asyncio event loop serves every connection. Commands run directly in the
loop (engine calls take microseconds), each reply is written only after the
engine has written the change to the log, so an acknowledged write survives
the server being killed. Other processes may use the same directory at the
same time (through :class:`kv_backend.structures.Structures` or another
server) and see the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import os
import resource
import signal
import ssl
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from time import perf_counter
from typing import Any, Literal

from kv_backend.db import DB
from kv_backend.errors import (
    ConfigurationError,
    KeyTooLargeError,
    KVError,
    NotAnIntegerError,
    SyncFailedError,
)
from kv_backend.locking import WouldWait
from kv_backend.server import (
    bgsave,
    clientlimit,
    close_synced,
    listen_error,
    log_line,
    protected,
    systemd,
    tlsreload,
    unixsock,
)
from kv_backend.server.blocking import Block, Waiters
from kv_backend.server.busy import Halted
from kv_backend.server.commands import COMMANDS
from kv_backend.server.commands.geo import store_key as geo_store_key
from kv_backend.server.commands.metadata import sort_keys
from kv_backend.server.commands.registry import CONTAINERS
from kv_backend.server.functions import Functions
from kv_backend.server.groupcommit import GroupCommit, HeldTransport
from kv_backend.server.listen import AcceptedTransport, Listeners, addresses, listen_tcp, listen_unix
from kv_backend.server.loading import LOADING_GRACE, open_in_background
from kv_backend.server.notify import EXPIRED, Notifier, format_flags
from kv_backend.server.protocol import OK, ErrorReply, Parser, ProtocolError, Push, Replies, encode
from kv_backend.server.scripting import Scripts
from kv_backend.server.tls import TLSSettings, config_entries
from kv_backend.server.tracking import ClientTracking, Tracking
from kv_backend.structures import StructureError, Structures, glob_match
from kv_backend.structures.errors import ForeignRecordError, c_string, printed, quoted
from kv_backend.structures.foreign import first_foreign
from kv_backend.structures.parsing import keyword

__all__ = ["Connection", "Server", "serve"]

#: How long a stopping server waits for clients to take the replies they were given (see _drain).
DRAIN_SECONDS = 5.0
#: A subscriber whose unsent output grows past this is disconnected (as Redis's pubsub buffer limit).
MAX_PUBSUB_BACKLOG = 32 * 1024 * 1024
#: Reading from a client pauses while this much output waits to be sent.
HIGH_WATER = 4 * 1024 * 1024
#: How often (seconds) expired keys are looked for while ``expired`` events are on (Redis: hz 10).
SWEEP_INTERVAL = 0.1
#: INFO's instantaneous_ops_per_sec, as Redis's: the mean of the command rates of the last
#: :data:`OPS_SAMPLES` intervals of :data:`OPS_INTERVAL` seconds.
OPS_INTERVAL = 0.1
OPS_SAMPLES = 16

_TX_ALLOWED = {b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"}
#: The reply, while the store opens, to a command that needs it (Redis's, which clients recognise).
LOADING_ERROR = "LOADING Redis is loading the dataset in memory"
#: The reply to a command that waited busy-reply-threshold milliseconds for the store's write lock,
#: which another process holds (see Connection._lock_busy).
LOCK_BUSY = (
    "BUSY another process holds the store's write lock (a script running long on another kvb serve of "
    "this directory, or a long transaction): the command did not run; retry it later, or raise "
    "busy-reply-threshold to wait longer"
)
#: How often (seconds) a server whose clients wait for the store's write lock tries it again.
LOCK_RETRY = 0.002
#: For how long (seconds) a client's wait for the lock tries it for up to a millisecond each time;
#: a longer wait only looks (see Server._retry_lock).
LOCK_SPIN_WAIT = 0.1
#: Commands Redis answers while loading that need the store here: refused with LOADING.
_NEED_THE_STORE = frozenset({b"watch", b"client|tracking"})
#: Refused inside MULTI, as Redis refuses its ``no_multi`` commands.
_NO_MULTI = frozenset({b"save", b"shutdown"})
_SUBSCRIBE_ALLOWED = (
    "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
    "are allowed in this context"
)


class Connection(asyncio.Protocol):
    """One client: its protocol version, authentication, transaction and subscriptions."""

    def __init__(self, server: Server, transport_kind: str = "tcp") -> None:
        self.server = server
        if not server.loading:  # else given when it is open (Server.loaded), or made (connection_made)
            self.st = server.st
        self.id = next(server.ids)
        self.kind = transport_kind
        #: Accepted on the TLS port (its transport is the event loop's TLS one, set up after the handshake).
        self.tls = False
        self.transport: asyncio.Transport | None = None
        #: The transport it was accepted on, until the event loop's takes over (see connection_made).
        self.accepted: AcceptedTransport | None = None
        self.parser = Parser(limited=server.requirepass is not None)
        self.resp3 = False
        self.authed = server.requirepass is None
        self.name: bytes | None = None
        self.lib: dict[str, bytes] = {}
        self.multi: list[list[bytes]] | None = None
        self.multi_error = False
        self.watched: dict[bytes, Any] = {}
        #: Where the store's log ended when each key was watched: for a key missing then, or a
        #: hash, EXEC reads the log written since for what its token cannot show (another process
        #: creating and removing it, or overwriting one field: Structures.created_since...).
        self.watch_marks: dict[bytes, tuple[int, int]] = {}
        self.watch_dirty = False
        #: CLIENT NO-EVICT and NO-TOUCH (nothing is evicted, and no access time kept, here: they
        #: only show in CLIENT LIST's flags; RESET leaves them, as redis-server 7.0 does).
        self.no_evict = self.no_touch = False
        #: The client's subscriptions, in the order made (dicts as ordered sets): PUNSUBSCRIBE with no
        #: pattern confirms the patterns in that order, as redis-server 7.0 (which keeps them in a list).
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        #: SSUBSCRIBE's shard channels: a namespace of their own, counted apart (as in Redis).
        self.shard_channels: dict[bytes, None] = {}
        self.close_after_reply = False
        #: The client shut down its side while its commands were held: close once they have run.
        self.eof = False
        #: When this client started to wait for the store's write lock, which another process holds
        #: (None: it does not wait); ``parked``: its pending commands wait to run again.
        self.lock_since: float | None = None
        self.parked = False
        self.pending: list[list[bytes]] = []
        #: Bytes of the commands in ``pending`` received while it waited (blocked, or parked), which
        #: count against client-query-buffer-limit as redis-server's unread query buffer does.
        self.waiting_bytes = 0
        self.queued = False
        self.peer = self.local = ""
        self.created = self.last_active = time.time()
        self.last_command = b""
        self._paused = False
        #: The error reply to malformed input, sent (then the connection closed) after the
        #: commands received before it have run.
        self.protocol_error: bytes | None = None
        #: What a blocking command waits for (BLPOP...); later commands wait with it.
        self.blocked: Block | None = None
        #: False inside EXEC and scripts, where blocking commands answer at once.
        self.can_block = transport_kind != "script"
        #: CLIENT REPLY: OFF drops every reply until ON; SKIP drops the next ``skip_replies``
        #: (its own and the next command's); the blocked command's reply is dropped if so flagged.
        self.reply_off = False
        self.skip_replies = 0
        self.drop_blocked_reply = False
        #: MONITOR lines of this monitor's own commands, sent after the command's reply (as Redis).
        self.own_lines: list[bytes] = []
        #: The script command (EVAL...) last shown to the monitors before it ran: one that waited
        #: for the store's write lock runs again (see :meth:`_lock_busy`) and is not shown twice.
        self.shown_first: list[bytes] | None = None
        #: CLIENT TRACKING's settings (None: off).
        self.tracking: ClientTracking | None = None
        #: While this client's commands run: the tracking messages for it, sent after the replies
        #: of the commands that came before them (see :meth:`_reply`).
        self.tracking_out: list[bytes] | None = None
        #: While this client's pipeline runs: the replies so far, sent together once it ends; a
        #: message for this client (its own PUBLISH, a keyspace event of its own write) joins them
        #: in turn, after the replies of the commands before the one that sent it, as in Redis.
        self.batch: list[bytes] | None = None

    # -------------------------------------------------------- asyncio hooks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        accepted = self.accepted
        if accepted is not None:  # the event loop takes the socket over (see kv_backend.server.listen)
            self.accepted = None
            if accepted.take_over(transport):  # type: ignore[arg-type]
                held = self.transport
                if isinstance(held, HeldTransport):  # (what it holds goes out on the loop's transport)
                    held.inner = transport
                else:
                    self.transport = transport  # type: ignore[assignment]
            return
        self.transport = self._held(transport)
        if isinstance(transport, AcceptedTransport):
            self.accepted = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or self.kind)
        local = transport.get_extra_info("sockname")
        self.local = f"{local[0]}:{local[1]}" if isinstance(local, tuple) else f"{local or self.kind}:0"
        if self.kind == "unix":  # (its own end has no name: as redis-server, the socket's path, as laddr)
            self.peer = self.local
        server = self.server
        server.clients[self.id] = self
        server.connections_received += 1
        if not server.loading:  # (the store opened after this connection was accepted: see __init__)
            self.st = server.st

    def _held(self, transport: Any) -> asyncio.Transport:
        """``transport``, or with ``--appendfsync always`` its writes and close held until the fsync
        of the writes they may tell of (see kv_backend.server.groupcommit)."""
        commit = self.server.group_commit
        return transport if commit is None else HeldTransport(transport, commit)  # type: ignore[return-value]

    def connection_lost(self, exc: Exception | None) -> None:
        self.detach()
        self.transport = None

    def eof_received(self) -> bool:
        """The client shut down its side of the connection (it sends nothing more). Commands held
        while the store opens (see :meth:`Server.schedule`) are answered first, as those of any
        read are, and the connection closed then (True keeps it open meanwhile)."""
        server = self.server
        if self.parked or (self.queued and (server.holding_back or server.lock_waiters)):
            self.eof = True  # (its commands may wait for the store's write lock: see _lock_busy)
            return True
        if _awaits_server(self):
            self.eof = True  # (its CONFIG SET reads TLS files in a thread: answered, then closed)
            return True
        commit = server.group_commit
        if commit is not None and self.transport is not None:  # (--appendfsync always)
            if self.queued:
                self.eof = True  # (closed once they ran: Server.flush, after their held replies)
                return True
            if commit.scheduled:
                self.transport.close()  # once its held replies are sent (see groupcommit)
                return True
        return False

    def detach(self) -> None:
        """Leave the server: its client list, the keys blocked clients wait on, WATCH, MONITOR,
        pub/sub and tracking. Done once the connection is lost, and by CLIENT KILL at once, as Redis
        frees a killed client: an element pushed later in the same pipeline must not be handed to
        a client being closed (it would be lost), nor a message counted for it."""
        self.server.clients.pop(self.id, None)
        self.server.lock_waiters.discard(self)
        if self.blocked is not None:
            self.server.waiters.unblock(self)
        self.server.watchers.discard(self)
        self.server.monitors.discard(self)
        self.drop_subscriptions()
        if self.tracking is not None:
            self.server.tracking.disable(self)

    def pause_writing(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or self.protocol_error is not None:  # closing: read no more, as Redis
            return
        self.last_active = time.time()  # CLIENT LIST's idle
        commands = self._parse(transport, data)
        if not commands:
            return
        if self.pending or self.blocked is not None:  # (they wait, held, as Redis holds them unparsed)
            self.waiting_bytes += _size(commands)
            if self.waiting_bytes + self.parser.pending_size > self.server.client_query_buffer_limit:
                self._close_over_query_buffer_limit(transport)
                return
        if self.pending:
            self.pending.extend(commands)
        else:
            self.pending = commands
        self.server.schedule(self)

    def _parse(self, transport: asyncio.Transport, data: bytes) -> list[list[bytes]]:
        """The commands ``data`` completes; on a protocol error, reply it and close the connection
        once the commands received before the bad one have run (as Redis does)."""
        try:
            commands = self.parser.feed(data)
            if self.parser.pending_size > self.server.client_query_buffer_limit:
                self._close_over_query_buffer_limit(transport)
                return []
            return commands
        except ProtocolError as exc:
            # latin-1: the byte a message quotes ("expected '$', got '\xff'") goes back as it came, but
            # a CR or LF as a space (ErrorReply's), as Redis: it would end the error line early
            message = ErrorReply(f"ERR {exc}").message
            self.protocol_error = b"-" + message.encode("latin-1") + b"\r\n"
            if not exc.commands and not self.pending and self.blocked is None:
                self._close_on_protocol_error(transport)
            return exc.commands

    def _close_over_query_buffer_limit(self, transport: asyncio.Transport) -> None:
        """As redis-server: a client whose requests still arriving hold more than client-query-buffer-limit
        bytes is closed without a reply (a request that large cannot be run), and the log says so."""
        parser = self.parser
        start = parser.chunks[0][parser.start : parser.start + 64] if parser.chunks else b""
        self.server.log(
            "Closing client that reached max query buffer length (client-query-buffer-limit "
            f"{self.server.client_query_buffer_limit}): {self.describe().decode('utf-8', 'replace')} "
            f"(qbuf initial bytes: {start!r})"
        )
        self.parser = Parser()  # (what it held is let go at once)
        self.close_now(transport)

    def close_now(self, transport: asyncio.Transport) -> None:
        """Close the connection at once, running none of the commands it holds (behind a blocking one),
        and leave the server now, as CLIENT KILL (see :meth:`detach`: an element pushed meanwhile must not
        go to a closed client): a client over the query buffer limit, or one that hung up while blocked
        before the event loop read its end of input (see :func:`kv_backend.server.blocking.hung_up`), as
        Redis frees a client at its end of input."""
        self.pending = []
        self.waiting_bytes = 0
        self.detach()
        transport.close()
        self.transport = None

    def _close_on_protocol_error(self, transport: asyncio.Transport) -> None:
        """Send the protocol error the client's input ended with, and close the connection."""
        transport.write(self.protocol_error or b"")
        transport.close()
        self.transport = None

    def run_held(self) -> None:
        """Before AUTH, requests are parsed one at a time: run each after the one before it."""
        while self.parser.held and self.blocked is None and not self.parked and self.transport is not None:
            self.pending = self._parse(self.transport, b"")
            self.run_pending()

    def run_pending(self) -> None:
        """Execute the commands received so far and send their replies (called by :meth:`Server.flush`)."""
        if self.blocked is not None:
            return  # the commands wait until the blocking one is answered
        commands, self.pending = self.pending, []
        self.waiting_bytes = 0
        transport = self.transport
        if transport is None or not commands:
            if transport is not None and self.protocol_error is not None:
                self._close_on_protocol_error(transport)
            return
        tracking = self.server.tracking.clients  # a live set: empty (no wrapper, no cost) while nobody tracks
        # As Redis, clients blocked on a key a command wrote are served right after that command,
        # before the next one (of this pipeline or of another client) can take what it added.
        waiters = self.server.waiters
        if len(commands) == 1:  # the usual case: one command per read, no list to join
            try:
                transport.write(self._reply_tracked(commands[0]) if tracking else self._reply(commands[0]))
            except WouldWait:  # the store's write lock is another process's: run it again later
                self.pending = commands
                self.server.park(self)
                return
            if waiters.ready:
                waiters.serve()
        else:
            self.batch = out = []
            try:
                for i, args in enumerate(commands):
                    try:
                        out.append(self._reply_tracked(args) if tracking else self._reply(args))
                    except WouldWait:  # the store's write lock is another process's: later
                        self.pending = commands[i:]
                        self.server.park(self)
                        break
                    if waiters.ready:
                        waiters.serve()
                    if self.close_after_reply:
                        break
                    if self.blocked is not None:
                        self.pending = commands[i + 1 :]
                        break
            except Halted:  # the server stops (SHUTDOWN NOSAVE in a script): what ran is answered
                transport.write(b"".join(out))
                raise
            finally:
                self.batch = None
            transport.write(b"".join(out))
        if self.pending:  # (what still waits: behind a blocked command, or parked)
            self.waiting_bytes = _size(self.pending)
        if self.close_after_reply:
            transport.close()
            self.transport = None
        elif self.protocol_error is not None and not self.pending and self.blocked is None:
            self._close_on_protocol_error(transport)

    def _reply_tracked(self, args: list[bytes]) -> bytes:
        """:meth:`_reply` while some client tracks keys: with the tracking messages for this client,
        those for what changed before the command ahead of its reply, those for what it (or anybody
        meanwhile) changed after, so that a client never reads a value after the message that says
        it changed.
        """
        tracking = self.server.tracking
        pushes: list[bytes]
        self.tracking_out = pushes = []
        try:
            tracking.absorb(None)
            if tracking.max_keys and len(tracking.table) > tracking.max_keys:
                tracking.limit()  # as Redis, before each command
            before = b"".join(pushes)
            pushes.clear()
            data = self._reply(args)
            state = self.tracking
            if state is not None and state.caching and self.multi is None and args[0].lower() != b"client":
                state.caching = False  # CLIENT CACHING holds for one command (or one MULTI ... EXEC)
            if tracking.clients:
                # what changed is this client's doing (NOLOOP) only while nobody else could write
                tracking.absorb(self if self.server.holding_lock else None)
        finally:
            self.tracking_out = None
        return before + data + b"".join(pushes) if pushes or before else data

    def _reply(self, args: list[bytes]) -> bytes:
        """Run one command and return its encoded reply (nothing after CLIENT REPLY OFF or SKIP)."""
        reply = self.execute(args)
        if self.reply_off or self.skip_replies:
            if self.skip_replies:
                self.skip_replies -= 1
            if type(reply) is Block:
                self.server.waiters.block(self, reply)
                self.drop_blocked_reply = True
                return b""
            if type(reply) not in (Push, Replies):  # (un)subscribe confirmations are pushes: sent, as Redis
                return b""
        try:
            if self.own_lines:  # MONITOR lines of its own command(s) follow the reply
                lines, self.own_lines = self.own_lines, []
                if not self.close_after_reply:  # QUIT: nothing more is sent, as in Redis
                    return encode(reply, self.resp3) + b"".join(lines)
            return encode(reply, self.resp3)
        except TypeError as exc:
            if type(reply) is Block:  # nothing to pop yet: wait, and answer later (see resume)
                self.server.waiters.block(self, reply)
                return b""
            # A reply the serializer does not know: a bug, reported, not fatal.
            self.server.log(f"cannot encode the reply to {args[0][:30]!r}: {exc}")
            return b"-ERR internal error: unencodable reply\r\n"

    def attempt(self, blk: Block) -> Any:
        """Retry a blocked command: its reply (errors as :class:`ErrorReply`), or None while still empty."""
        try:
            return blk.attempt()
        except Exception as exc:
            return self._error(exc, "blocking command")

    def resume(self, reply: Any) -> None:
        """Send the answer of the command this client was blocked on, then run what it sent since."""
        transport = self.transport
        if transport is None:
            return
        if self.drop_blocked_reply:  # it was sent under CLIENT REPLY OFF or SKIP
            self.drop_blocked_reply = False
        else:
            transport.write(encode(reply, self.resp3))
        if self.pending or self.parser.held or self.protocol_error is not None:
            self.server.schedule(self)

    # ------------------------------------------------------------ commands

    def execute(self, args: list[bytes]) -> Any:
        """Run one command and return its reply (errors are returned as :class:`ErrorReply`)."""
        name = args[0].lower()
        cmd = COMMANDS.get(name)
        if cmd is None:
            if self.multi is not None:
                self.multi_error = True
            shown = _shown(args)
            return ErrorReply(f"ERR unknown command '{printed(args[0])}', with args beginning with: {shown}")
        if (cmd.arity > 0 and len(args) != cmd.arity) or (cmd.arity < 0 and len(args) < -cmd.arity):
            if name == b"exec":
                return self._refuse_exec(f"wrong number of arguments for '{cmd.name}' command")
            if self.multi is not None:
                self.multi_error = True
            return ErrorReply(f"ERR wrong number of arguments for '{cmd.name}' command")
        self.server.commands_processed += 1  # INFO's total_commands_processed (queued ones too)
        # queued ones too; a bare COMMAND (the only container that may stand alone) is "command"
        self.last_command = name + b"|" + args[1].lower() if cmd.container and len(args) > 1 else name
        if cmd.subcommands is not None:
            wrong = cmd.subcommand_error(args)
            if wrong is not None:
                if self.multi is not None:
                    self.multi_error = True
                return ErrorReply(wrong)
        if not self.authed and "noauth" not in cmd.flags:
            if name == b"exec":
                return self._refuse_exec("NOAUTH Authentication required.")
            return ErrorReply("NOAUTH Authentication required.")
        if self.multi is not None and name in _NO_MULTI:
            self.multi_error = True  # (EXEC then discards the transaction)
            return ErrorReply("ERR Command not allowed inside a transaction")
        if not self.resp3 and self.in_subscribe_mode() and "pubsub" not in cmd.flags:
            if name == b"exec":
                return self._refuse_exec(_SUBSCRIBE_ALLOWED.format(cmd.name))
            # as Redis, a subcommand by its full name ("client|kill"; it is known by now)
            full = self.last_command.decode() if cmd.subcommands is not None else cmd.name
            return ErrorReply("ERR " + _SUBSCRIBE_ALLOWED.format(full))
        server = self.server
        if server.loading and self._needs_the_store(name):
            if name == b"exec":
                return self._refuse_exec(LOADING_ERROR)
            if self.multi is not None:
                self.multi_error = True  # as Redis: EXEC then discards the transaction
            return ErrorReply(LOADING_ERROR)
        busy = server.busy  # a script runs long: only what Redis allows then runs (see busy.py)
        if busy is not None and self.kind != "script" and self.last_command not in _allowed_while_busy():
            if name == b"exec":
                return self._refuse_exec(busy)
            if self.multi is not None:
                self.multi_error = True
            return ErrorReply(busy)
        monitors = server.monitors
        if monitors and self in monitors and _flagged(args, _KEYSPACE):
            return ErrorReply("ERR Replica can't interact with the keyspace")  # a monitor is a replica
        if self.multi is not None and name not in _TX_ALLOWED:
            self.multi.append(args)
            return "QUEUED"
        writes = "write" in cmd.flags
        if server.lock_contended and (writes or (name == b"exec" and self.multi and not self.multi_error)):
            return self._lock_busy(name)  # (before it changes anything: see Server.flush)
        if server.tracking.clients:
            server.track(self, name, args)
        # WATCH: as in Redis, only a write that changed something makes a watcher's EXEC fail.
        # Every change appends to the log and so moves the store's change token: a command that
        # left it alone (DEL of a missing key, SET ... NX of an existing one...) changed nothing.
        token = deleted = before = keys = None
        notifying = server.notify_flags  # keyspace notifications: off (0) unless CONFIG SET
        slow = server.slowlog_seconds  # SLOWLOG: every command is timed, as in Redis (None: off)
        start = perf_counter() if slow is not None else 0.0
        # a write that watchers or blocked clients must hear of (a write command cannot add either)
        signals = writes and (server.watchers or server.blocked_keys)
        # INFO's rdb_changes_since_last_save: what a write changed (the commands a transaction or a
        # script runs are counted each, as in Redis), by the store's change token. Never in the way of
        # the command: a store it cannot look at (closed) is left to the command to answer. On every
        # write's path, so kept cheap: one number from the command table, one token read before and
        # one after (the one before serves WATCH too), bgsave.count only for those counted apart.
        counted = cmd.counted
        if counted:
            try:
                before_token = server.db.change_token()
                size = bgsave.size(server.st, name, args) if counted == _APART and name in _MEASURED else -1
            except Exception:
                counted = _NOT_COUNTED
        try:
            if monitors and name in _MONITORED_FIRST and args is not self.shown_first:
                server.feed_monitors(self, args)  # a script shows before its commands
                self.shown_first = args  # once, though it waits for the lock and runs again
            if writes and (signals or notifying):  # the keys it writes, worked out once
                keys = _written_keys(name, args)
            if notifying:
                before = server.notifier.before(name, args, keys, writes)
            if signals and server.watchers:
                token = before_token if counted else server.db.change_token()
                if name in _BY_TOKEN:  # the watched keys it names, as they are before it changes some
                    deleted = server.watched_tokens(keys)
            if writes or server.holding_lock or name not in _READS:
                reply = cmd.handler(self, args)
            else:  # a read, without the lock: it must see the store at one moment (_read_again)
                db = server.db
                token, seen = db._tailw.value, db._seen  # (db.change_token(), for less)
                try:
                    reply = cmd.handler(self, args)
                except Exception:
                    if db._seen == seen or db._tailw.value == token:
                        raise
                    reply = self._read_again(cmd.handler, args)
                else:
                    if db._seen != seen and db._tailw.value != token:
                        reply = self._read_again(cmd.handler, args)
        except WouldWait:  # a command that takes the store's write lock itself (DUMP, LCS, EVAL_RO...)
            return self._lock_busy(name)
        except Exception as exc:
            if server.slowlog_seconds is not None:
                server.slowlog_check(self, args, start)
            if monitors and name not in _MONITORED_FIRST:
                server.feed_monitors(self, args)
            return self._error(exc, cmd.name, args)
        # the threshold as the command left it (CONFIG SET slowlog-log-slower-than 0 logs itself)
        slow = server.slowlog_seconds
        if slow is not None and (not start or perf_counter() - start >= slow) and type(reply) is not Block:
            server.slowlog_check(self, args, start)  # (a blocked command is not logged)
        if monitors and name not in _MONITORED_FIRST:  # as Redis: once run, errors included
            server.feed_monitors(self, args)
        if before is not None and type(reply) is not ErrorReply:
            if type(reply) is Block:
                reply.args = args  # its events are published when it is served
            if type(reply) is not Block or name == b"xreadgroup":  # a blocked XREADGROUP made its consumer
                server.notifier.after(name, args, reply, before, keys)
        if counted and type(reply) is Block:
            reply.counted = name  # (counted when it is served: bgsave.count_served)
            if counted == _APART and name in _MEASURED:  # (the consumer a blocked XREADGROUP made)
                with contextlib.suppress(Exception):
                    reply.made = bgsave.measured(server, name, args, size)
        elif counted and type(reply) not in _UNCOUNTED_REPLIES:
            if counted == _APART:
                bgsave.count(server, name, args, reply, before_token, size)
            else:  # (most writes: SET, INCR, LPUSH, HSET...) as bgsave.count would, inline
                try:
                    if server.db.change_token() != before_token:
                        if counted == _ONE_PER_CHANGE:
                            server.bgsaves.changes += 1
                        else:  # (LPUSH, HSET, MSET...: each key, field or element it names)
                            server.bgsaves.changes += bgsave.arguments_counted(args, *cmd.counted_args)
                except Exception as exc:  # (the reply is sent whatever happens here)
                    bgsave.not_counted(server, name, exc)
        if signals and type(reply) is not Block:
            if server.watchers and (token is None or server.db.change_token() != token):
                if deleted is None:
                    server.touch(reply[:1] if name in _POPS and type(reply) is list else keys)
                else:
                    server.touch([k for k, t in deleted.items() if server.st.watch_token(k) != t])
            server.waiters.signal(keys)
        return reply

    def _lock_busy(self, name: bytes) -> ErrorReply:
        """This command needs the store's write lock, which another process holds (a script running
        long on another server of the directory...): raise WouldWait, so that the server runs it
        again once the lock is free and serves its other clients meanwhile, until this client has
        waited ``busy-reply-threshold`` milliseconds; then the error (the command does not run)."""
        server = self.server
        now = time.monotonic()
        if self.lock_since is None:
            self.lock_since = now
            server.lock_waiters.add(self)
        if (now - self.lock_since) * 1000 < server.busy_reply_threshold:
            server.commands_processed -= 1  # (counted when it runs)
            raise WouldWait(server.path)
        if name == b"exec":
            return self._refuse_exec(LOCK_BUSY)
        return ErrorReply(LOCK_BUSY)

    def _needs_the_store(self, name: bytes) -> bool:
        """While the store opens: whether this command is refused with LOADING. EXEC only when it
        would run a transaction: without MULTI, or after a queued command's error, it answers that
        error, as Redis does."""
        if name == b"exec":
            return self.multi is not None and not self.multi_error
        return self.last_command not in _answered_while_loading()

    def _refuse_exec(self, why: str) -> ErrorReply:
        """An EXEC refused before it runs (wrong arity, NOAUTH, subscribe mode): as in Redis, the
        transaction is discarded (its watches too) and the reply is EXECABORT with the reason,
        where kvb answered the bare error and kept the transaction for the next EXEC."""
        self.multi = None
        self.unwatch()
        return ErrorReply(f"EXECABORT Transaction discarded because of: {why}")

    def _read_again(self, handler: Callable[[Connection, list[bytes]], Any], args: list[bytes]) -> Any:
        """Run a read-only command again, under the store's write lock, where nobody writes.

        A read takes no lock, and catches up with other processes' writes as it goes: one that
        caught up after its first read (its view of the store changed while the store's change
        token moved) may have mixed two states (MGET a b reading ``a`` before another server's
        MULTI/EXEC and ``b`` after it). A read that caught up only at its first read, before it
        looked at anything, saw one state. It has no effect to repeat (Redis's ``readonly``
        commands; the OBJECT, MEMORY and XINFO subcommands).
        """
        with self.server.db.locked():
            return handler(self, args)

    def _error(self, exc: Exception, command: str, args: list[bytes] | None = None) -> ErrorReply:
        """The error reply for an exception raised by the command ``args``."""
        if isinstance(exc, KeyTooLargeError):
            # The engine's text counts the engine key, which adds a prefix (and a field or member)
            # to the name: "1 to 65536 bytes, got 65537" for a name of 65535 bytes misleads. (A
            # Structures write raises KeyNameTooLongError, a StructureError: one reply for both.)
            return ErrorReply(
                "ERR key name too long: kvb holds a string's name of up to 65534 bytes, a hash's or "
                "set's name and one field or member of up to 65530 together, a sorted set's of up to "
                "65522, a list's name of up to 65522 and a stream's of up to 65514 bytes (with one of "
                "its consumer groups' names, 65510)"
            )
        if isinstance(exc, StructureError):
            return ErrorReply(str(exc))
        if isinstance(exc, NotAnIntegerError):
            return ErrorReply("ERR value is not an integer or out of range")
        if isinstance(exc, SyncFailedError):  # a write refused after a failed background fsync, as Redis
            return ErrorReply(f"MISCONF Errors writing to the AOF file: {exc.reason}")
        if isinstance(exc, (KVError, ValueError, TypeError, OverflowError)):
            return ErrorReply(f"ERR {exc}")
        foreign = _foreign_key(self.server.db, args) if args else None
        if foreign is not None:  # not a bug: another front end wrote the key's metadata record
            return ErrorReply(str(ForeignRecordError(foreign)))
        # A bug must cost one reply, never the server.
        self.server.log(f"error in {command}: {exc!r}")
        return ErrorReply(f"ERR internal error in '{command}': {type(exc).__name__}")

    def authenticate(self, user: bytes | None, password: bytes) -> Any:
        """Check AUTH credentials (the only user is ``default``; ``user`` None: the one-argument AUTH).

        Without ``--requirepass`` the default user has no password, as in Redis: a named login
        as ``default`` (``AUTH default x``, ``HELLO 3 AUTH default x``, what a client sends for
        ``redis://default:x@...``) succeeds, and only the one-argument form is an error.
        """
        secret = self.server.requirepass
        if secret is None:
            if user == b"default":
                self.authed = True
                return OK
            if user is not None:
                return ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")
            return ErrorReply(
                "ERR AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?"
            )
        if user in (None, b"default") and hmac.compare_digest(password, os.fsencode(secret)):  # constant time
            self.authed = True
            self.parser.limited = False
            return OK
        return ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")

    def watch(self, key: bytes) -> None:
        """Remember a key for the next EXEC (WATCH)."""
        if key not in self.watched:
            self.watch_marks[key] = self.st.watch_mark()  # (first: a write in between is read)
            self.watched[key] = self.st.watch_token(key)
        self.server.watchers.add(self)

    def unwatch(self) -> None:
        """Forget all watched keys."""
        self.watched.clear()
        self.watch_marks.clear()
        self.watch_dirty = False
        self.server.watchers.discard(self)

    def in_subscribe_mode(self) -> bool:
        """Whether the client subscribed to anything (channels, patterns or shard channels)."""
        return bool(self.channels or self.patterns or self.shard_channels)

    def subscription_count(self) -> int:
        """The count (UN)SUBSCRIBE and P(UN)SUBSCRIBE replies carry: shard channels are not in it."""
        return len(self.channels) + len(self.patterns)

    def drop_subscriptions(self) -> None:
        server = self.server
        for mine, registry in (
            (self.channels, server.channels),
            (self.patterns, server.patterns),
            (self.shard_channels, server.shard_channels),
        ):
            for name in mine:
                members = registry.get(name)
                if members is not None:
                    members.discard(self)
                    if not members:
                        del registry[name]
            mine.clear()

    def reset(self) -> None:
        """RESET: back to a fresh connection's state (a MONITOR client stops monitoring)."""
        self.server.monitors.discard(self)
        self.drop_subscriptions()
        self.multi = None
        self.multi_error = False
        self.unwatch()
        self.resp3 = False
        self.name = None
        self.reply_off = False
        self.skip_replies = 0
        if self.tracking is not None:
            self.server.tracking.disable(self)
        self.authed = self.server.requirepass is None
        self.parser.limited = not self.authed

    def push(self, message: Push) -> None:
        """Send a pub/sub message; drop a subscriber that does not read its messages."""
        transport = self.transport
        if transport is None:
            return
        if self.batch is not None:  # sent by a command of its own pipeline: after the replies before it
            self.batch.append(encode(message, self.resp3))
            return
        if transport.get_write_buffer_size() > MAX_PUBSUB_BACKLOG:
            self.server.log(f"client {self.id} ({self.peer}) closed: pub/sub output backlog over the limit")
            transport.abort()
            self.transport = None
            return
        transport.write(encode(message, self.resp3))

    def describe(self) -> bytes:
        """One CLIENT LIST line, with Redis 7.2's fields in its order (clients parse them by name).

        Buffer fields Redis has and this server does not keep (argv-mem,
        rbs...) are 0; ``omem`` is what waits in the transport's write buffer, ``multi-mem`` the
        bytes of the arguments of the commands queued in MULTI.
        """
        now = time.time()
        text = _text
        flags = (  # Redis's letters, in its order
            ("O" if self in self.server.monitors else "")
            + ("P" if self.in_subscribe_mode() else "")
            + ("x" if self.multi is not None else "")
            + ("b" if self.blocked is not None else "")
            + _tracking_flags(self.tracking)
            + ("d" if self.watch_dirty else "")
            + ("U" if self.kind == "unix" else "")
            + ("e" if self.no_evict else "")
            + ("T" if self.no_touch else "")
        )
        transport = self.transport
        omem = transport.get_write_buffer_size() if transport is not None else 0
        sock = transport.get_extra_info("socket") if transport is not None else None
        qbuf = self.parser.have
        queued = _size(self.multi) if self.multi else 0  # (held in memory until EXEC or DISCARD)
        return (
            f"id={self.id} addr={self.peer} laddr={self.local} fd={sock.fileno() if sock else -1} "
            f"name={text(self.name)} age={int(now - self.created)} idle={int(now - self.last_active)} "
            f"flags={flags or 'N'} db=0 sub={len(self.channels)} psub={len(self.patterns)} "
            f"ssub={len(self.shard_channels)} "
            f"multi={-1 if self.multi is None else len(self.multi)} qbuf={qbuf} qbuf-free=0 argv-mem=0 "
            f"multi-mem={queued} rbs=0 rbp=0 obl=0 oll=0 omem={omem} tot-mem={qbuf + queued + omem} "
            f"events={'rw' if omem else 'r'} cmd={text(self.last_command)} user=default "
            f"redir={self.tracking.redirect if self.tracking is not None else -1} "
            f"resp={3 if self.resp3 else 2} lib-name={text(self.lib.get('LIB-NAME'))} "
            f"lib-ver={text(self.lib.get('LIB-VER'))}"
        ).encode()


def _awaits_server(conn: Connection) -> bool:
    """Whether ``conn`` waits for the server's own work to answer it (a CONFIG SET reading TLS files
    in a thread: see kv_backend.server.tlsreload.Changes), not for data as a blocking command."""
    return conn.blocked is not None and conn.blocked.by_server


def _size(commands: list[list[bytes]]) -> int:
    """Bytes of the arguments of ``commands``."""
    return sum(len(arg) for args in commands for arg in args)


def _tracking_flags(state: ClientTracking | None) -> str:
    """CLIENT LIST's tracking flags: ``t`` tracking, ``R`` its redirect is gone, ``B`` BCAST."""
    if state is None:
        return ""
    return "t" + ("R" if state.broken else "") + ("B" if state.bcast else "")


def _text(value: bytes | None) -> str:
    """A client-supplied name for CLIENT LIST (None: empty)."""
    return (value or b"").decode("utf-8", "replace")


class Server:
    """State shared by all connections: the store, clients, pub/sub registry, scripts."""

    REDIS_VERSION = "7.2.0"

    db: DB
    st: Structures

    def __init__(
        self, path: str, requirepass: str | None = None, *, loading: bool = False, appendfsync: str = "no"
    ) -> None:
        """A server of the store at ``path``, opened here unless ``loading``: then commands that need
        the store are answered ``LOADING`` until :meth:`loaded` is given it (see :func:`serve`).
        ``appendfsync``: when the store fsyncs its writes, as Redis's setting (:data:`APPENDFSYNC`)."""
        self.path = os.path.abspath(path)
        if appendfsync not in APPENDFSYNC:
            choices = ", ".join(APPENDFSYNC)
            raise ConfigurationError(f"appendfsync must be one of {choices}, not {appendfsync!r}")
        #: appendfsync: the store's sync policy, in Redis's words (fixed while the server runs).
        self.appendfsync = appendfsync
        #: With ``always``: the output held until the fsync of each event-loop turn's writes (the
        #: store is opened with the engine's sync="never"; see kv_backend.server.groupcommit).
        self.group_commit = GroupCommit(self) if appendfsync == "always" else None
        #: Whether the store is still being opened; :data:`LOADING_GRACE` seconds into it, held
        #: commands are answered (see :meth:`schedule`).
        self.loading = loading
        self.loading_since = time.time()
        self.holding_back = loading
        self.requirepass = requirepass or None
        self.clients: dict[int, Connection] = {}
        #: The most clients served at once (see kv_backend.server.clientlimit; CONFIG SET maxclients).
        self.maxclients = clientlimit.DEFAULT_MAXCLIENTS
        #: tcp-keepalive: seconds of silence before a TCP client's connection is probed (0: never), as
        #: in Redis; a CONFIG SET applies to the connections made after it.
        self.tcp_keepalive = 300
        #: client-query-buffer-limit: the most bytes a client's requests still arriving may hold (its
        #: unparsed input and the arguments of an unfinished command) before it is closed, as in Redis.
        self.client_query_buffer_limit = 1 << 30
        #: protected-mode: without a password, only clients on this machine are served (see protected.py).
        self.protected_mode = True
        #: loglevel: "debug" also logs what only debugging needs (a failed TLS handshake); the others
        #: (verbose, notice, warning) log what kvb serve always logs.
        self.loglevel = "notice"
        #: The TLS port's settings and context (see kv_backend.server.tls), None without --tls-port
        #: (CONFIG SET tls-* changes them: see kv_backend.server.tlsreload; the context is None while
        #: no TLS port is open).
        self.tls: TLSSettings | None = None
        self.tls_context: ssl.SSLContext | None = None
        #: TLS handshakes under way (they count against maxclients), and those that failed (INFO).
        self.tls_handshakes = 0
        self.tls_handshake_failures = 0
        #: CONFIG SETs of TLS settings, their files read off the event loop one after the other.
        self.tls_changes = tlsreload.Changes(self)
        #: BGSAVE: its fsync runs in a thread, one at a time; LASTSAVE and INFO persistence (bgsave.py).
        self.bgsaves = bgsave.BackgroundSaves(self)
        self.channels: dict[bytes, set[Connection]] = {}
        self.patterns: dict[bytes, set[Connection]] = {}
        self.shard_channels: dict[bytes, set[Connection]] = {}
        self.watchers: set[Connection] = set()
        #: MONITOR clients: every command run is shown to them (see :meth:`feed_monitors`).
        self.monitors: set[Connection] = set()
        #: SLOWLOG: commands that took at least ``slowlog_slower_than`` µs (negative: none are
        #: logged), newest first, at most ``slowlog_max_len`` of them; as Redis's defaults.
        self.slowlog: deque[list[Any]] = deque()
        self.slowlog_slower_than = 10000
        #: The same threshold in seconds (minus a nanosecond against float rounding), None if off:
        #: what the per-command test compares with, so that a fast command costs one subtraction.
        self.slowlog_seconds: float | None = 0.009999999
        self.slowlog_max_len = 128
        self.slowlog_next_id = 0
        #: CONFIG SET hz's value, shown by CONFIG GET and INFO's configured_hz; kvb's timers keep
        #: their own pace (INFO's hz), whatever it says.
        self.configured_hz = 10
        #: The eviction settings CONFIG SET takes and CONFIG GET shows, which change nothing: kvb evicts
        #: no key (maxmemory 0, noeviction), as redis-server with those settings does not either.
        self.eviction_settings = {b"maxmemory-samples": b"5", b"maxmemory-eviction-tenacity": b"10"}
        self.waiters = Waiters(self)
        #: The keys blocked clients wait on (the waiters' own dict: a cheap "anyone blocked?" test).
        self.blocked_keys = self.waiters.by_key
        self._queue: list[Connection] = []
        self.ids = itertools.count(1)
        self.scripts = Scripts(self)
        self.functions = Functions(self, self.scripts)
        self.started = time.time()
        # INFO's stats (CONFIG RESETSTAT zeroes them)
        self.connections_received = 0
        self.commands_processed = 0
        self.rejected_connections = 0
        self.ops_rates: deque[float] = deque([0.0] * OPS_SAMPLES, maxlen=OPS_SAMPLES)
        self._ops_sampled = (time.monotonic(), 0)
        self._ops_timer: asyncio.TimerHandle | None = None
        #: INFO's run_id: 40 random hex digits, new for each server process, as in Redis.
        self.run_id = os.urandom(20).hex()
        self.host = ""
        self.port = 0
        self.unixsocket = ""
        self._script_conn: Connection | None = None
        #: The keyspace-event classes switched on (notify-keyspace-events); 0: none, the default.
        self.notify_flags = 0
        self.notifier = Notifier(self)
        self._sweep: asyncio.TimerHandle | None = None
        #: CLIENT TRACKING: the tracking clients and the keys they read.
        self.tracking = Tracking(self)
        #: The client whose script (or function) runs now: its commands' reads are that client's.
        self.script_caller: Connection | None = None
        #: Whether :meth:`flush` holds the store's write lock (no other process can write meanwhile).
        self.holding_lock = False
        #: Whether :meth:`flush` found the store's write lock another process's: what needs it waits
        #: (see Connection._lock_busy), and the loop serves the other clients meanwhile.
        self.lock_contended = False
        #: The clients waiting for the write lock (their lock_since set), and those of them whose
        #: commands wait to run again (see :meth:`park`).
        self.lock_waiters: set[Connection] = set()
        self._parked: list[Connection] = []
        self._lock_retry: asyncio.TimerHandle | None = None
        #: Set to stop the server (SIGTERM, SIGINT, SHUTDOWN); :func:`_run` makes it.
        self.stopping: asyncio.Event | None = None
        #: busy-reply-threshold (alias lua-time-limit): after so many milliseconds a running script
        #: lets the server answer other clients (BUSY, SCRIPT KILL...: see busy.py).
        self.busy_reply_threshold = 5000
        #: While a script runs long: the error other clients get (its BUSY), else None.
        self.busy: str | None = None
        #: The listening sockets (fd, address family, connection kind), for busy.Pump.
        self.listening: list[tuple[int, int, str]] = []
        #: The listeners, and the addresses the host named at start (listen.addresses): CONFIG SET
        #: tls-port opens a listener there.
        self.listeners: Listeners | None = None
        self.listen_addresses: list[tuple[Any, ...]] = []
        #: The server stops: no command runs any more (SHUTDOWN NOSAVE cut a script short...).
        self.halting = False
        #: kvb serve's exit status: 1 once a second SIGINT forced the stop, as Redis exits then.
        self.exit_status = 0
        self._signalled = False
        _tracked_read(b"get", [b"get"])  # fills _READONLY and _READS
        if not loading:
            committing = self.group_commit is not None
            self.loaded(*open_store(self.path, APPENDFSYNC[appendfsync], group_commit=committing))

    def loaded(self, db: DB, st: Structures) -> None:
        """The store is open: serve it, and run the commands held meanwhile."""
        self.db, self.st = db, st
        for conn in self.clients.values():
            conn.st = st
        self.loading = False
        self.release_held()

    def release_held(self) -> None:
        """Stop holding commands back (the store is open, or has taken :data:`LOADING_GRACE` seconds
        to open so far: what waits is answered, LOADING where it needs the store)."""
        self.holding_back = False
        if self._queue:
            asyncio.get_running_loop().call_soon(self.flush)

    def shut_down(self, conn: Connection) -> None:
        """SHUTDOWN: stop as SIGTERM does, once the commands received so far have run and their
        replies are sent."""
        self.log(f"SHUTDOWN from {conn.peer if conn.kind == 'tcp' else conn.kind}: stopping")
        if self.stopping is not None:
            self.stopping.set()

    def on_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM or SIGINT, as Python sees it at once: the event loop stops the server when it next
        runs (so, as Redis, only once a running script has ended); a SIGINT after a first signal
        stops it at once, as Redis's "You insist" (exit status 1): a running script is cut short,
        keeping none of its writes, and slow readers are not waited for."""
        again, self._signalled = self._signalled, True
        run = self.scripts.running
        if again and signum == signal.SIGINT:
            self.log("SIGINT again: stopping at once" + (", the running script cut short" if run else ""))
            self.exit_status = 1
            if run is not None:
                run.halt()
        elif run is not None and not run.loading:
            self.log(
                f"{signal.Signals(signum).name} received while a script runs: stopping once it ends "
                "(SCRIPT KILL or FUNCTION KILL ends one that has not written; SHUTDOWN NOSAVE or a "
                "second SIGINT stops the server at once, keeping none of the script's writes)"
            )

    def sample_ops(self) -> None:
        """Note the rate of commands since the last sample, then again in :data:`OPS_INTERVAL`
        seconds (started by :func:`_run`, as Redis samples it in its cron)."""
        now = time.monotonic()
        then, count = self._ops_sampled
        done = self.commands_processed - count
        self.ops_rates.append(done / (now - then) if done > 0 and now > then else 0.0)
        self._ops_sampled = (now, self.commands_processed)
        self._ops_timer = asyncio.get_running_loop().call_later(OPS_INTERVAL, self.sample_ops)

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: zero the counters INFO stats reports."""
        self.connections_received = self.commands_processed = self.rejected_connections = 0
        self.tls_handshake_failures = 0
        self.bgsaves.saves = 0
        self.ops_rates.extend([0.0] * OPS_SAMPLES)
        self._ops_sampled = (time.monotonic(), 0)

    def log(self, message: str) -> None:
        """Write one line to stderr, in one write (see :func:`~kv_backend.server.log_line`)."""
        log_line(message)

    @property
    def stops(self) -> bool:
        """Whether the server is stopping (SHUTDOWN received, or its clients being closed): no new
        background work (a BGSAVE, a TLS change) starts then."""
        return self.halting or (self.stopping is not None and self.stopping.is_set())

    def debug(self, message: str) -> None:
        """Log ``message`` if loglevel is debug."""
        if self.loglevel == "debug":
            self.log(message)

    def script_client(self, caller: Connection) -> Connection:
        """The pseudo-client scripts run their commands as (authenticated, RESP2, no transaction)."""
        if self._script_conn is None:
            self._script_conn = Connection(self, "script")
            self._script_conn.authed = True
        self.script_caller = caller
        return self._script_conn

    def track(self, conn: Connection, name: bytes, args: list[bytes]) -> None:
        """Before a command runs while some client tracks: remember the keys a read-only command
        reads (for the script's caller, inside a script), note a FLUSHALL/FLUSHDB."""
        if name in (b"flushall", b"flushdb"):
            self.tracking.flushed = True  # every tracking client is told to drop everything
            return
        if not _tracked_read(name, args):
            return
        if conn.kind == "script":
            conn = self.script_caller  # type: ignore[assignment]
            if conn is None:
                return
        if conn.tracking is None:
            return
        from kv_backend.server.commands import metadata

        try:
            keys = [k for k, _ in metadata.keys_of(args)]
        except Exception:  # a call that names no keys (or does not fit the command)
            return
        self.tracking.remember(conn, keys)

    def schedule(self, conn: Connection) -> None:
        """Queue a connection with received commands for the next :meth:`flush`."""
        if not self._queue and not self.holding_back:
            asyncio.get_running_loop().call_soon(self.flush)
        if not conn.queued:
            conn.queued = True
            self._queue.append(conn)

    def flush(self) -> None:
        """Run the commands of every queued connection under one hold of the store's write lock.

        Commands that arrived in the same event-loop turn share one lock
        acquisition (group execution); each write still reaches the log before
        its reply is sent.
        """
        queue, self._queue = self._queue, []
        if self.halting:
            return
        lock = None
        if not self.loading and _any_may_write(queue):
            try:
                lock = self.db.locked()
                lock.__enter__()
            except WouldWait:  # another process holds it: the commands that need it wait (_lock_busy)
                lock = None
                self.lock_contended = True
            except Exception as exc:  # the store is unusable: still answer (with errors) rather than hang
                self.log(f"cannot take the store's write lock: {exc!r}")
                lock = None
            else:
                if self.lock_waiters:
                    self._lock_free()
        self.holding_lock = lock is not None
        try:
            for conn in queue:
                conn.queued = False
                conn.run_pending()
                if conn.parser.held:
                    conn.run_held()
                if conn.eof and conn.transport is not None and not conn.parked and not _awaits_server(conn):
                    conn.transport.close()
            if self.waiters.ready:
                self.waiters.serve()  # under the same lock hold as the writes that fed them
            if self.tracking.clients:
                self.tracking.absorb(None)  # what served waiters changed
                self.tracking.settle()  # BCAST: one message per prefix for all these commands
        except Halted:  # SHUTDOWN NOSAVE while a script ran: nothing more runs, the server stops
            self.halting = True
        finally:
            self.holding_lock = self.lock_contended = False
            if lock is not None:
                lock.__exit__(None, None, None)
            if self.group_commit is not None:
                self.group_commit.after_commands()  # (writes that sent nothing: CLIENT REPLY OFF...)

    def park(self, conn: Connection) -> None:
        """Run a client's pending commands again in :data:`LOCK_RETRY` seconds: the first needs the
        store's write lock, which another process holds (see Connection._lock_busy)."""
        conn.parked = True
        self._parked.append(conn)
        self._retry_lock_later()

    def _retry_lock_later(self) -> None:
        if self._lock_retry is None and not self.halting:
            self._lock_retry = asyncio.get_running_loop().call_later(LOCK_RETRY, self._retry_lock)

    def _retry_lock(self) -> None:
        """See whether the write lock is free (one try). Run the parked clients' commands again
        (their flush tries the lock, for up to a millisecond) if it is, if they have waited only a
        little (under load the lock changes hands often), or to refuse them once they have waited
        long enough; the others wait for the next look, costing nothing meanwhile."""
        self._lock_retry = None
        if self.db._lock.is_free():
            self._lock_free()  # (a client refused for waiting too long waits afresh)
        now = time.monotonic()
        young, refused = now - LOCK_SPIN_WAIT, now - self.busy_reply_threshold / 1000
        parked, self._parked = self._parked, []
        for conn in parked:
            since = conn.lock_since
            if since is None or since > young or since <= refused:
                conn.parked = False
                if conn.transport is not None:
                    self.schedule(conn)
            else:
                self._parked.append(conn)
        if self.lock_waiters or self._parked:
            self._retry_lock_later()

    def _lock_free(self) -> None:
        """The write lock was free: a client that waited for it waits afresh next time."""
        for conn in self.lock_waiters:
            conn.lock_since = None
        self.lock_waiters.clear()

    def refuse_lock_waits(self, refuse: bool) -> None:
        """Make the event loop's thread raise WouldWait where it would wait for the store's write lock
        (see Connection._lock_busy), or wait again (the server stops)."""
        self.db._lock.no_wait_thread = threading.get_ident() if refuse else None

    def watched_tokens(self, keys: list[bytes] | None) -> dict[bytes, Any]:
        """The current WATCH token of each of ``keys`` (None: every key) that a client watches."""
        watched = {k for conn in self.watchers for k in conn.watched}
        if keys is not None:
            watched.intersection_update(keys)
        return {k: self.st.watch_token(k) for k in watched}

    def touch(self, keys: list[bytes] | None) -> None:
        """Mark watched keys as changed (None: every key) so that their watchers' EXEC fails."""
        for conn in self.watchers:
            if keys is None or any(k in conn.watched for k in keys):
                conn.watch_dirty = True

    def feed_monitors(self, conn: Connection, args: list[bytes]) -> None:
        """Show a command to the MONITOR clients, in Redis's line format and argument escaping.

        Admin commands (CONFIG, MONITOR, SLOWLOG...) are not shown, and passwords (AUTH, HELLO's
        AUTH) are ``(redacted)``, as in Redis. A monitor's own commands are shown to it after
        their reply.
        """
        if _flagged(args, _UNMONITORED):
            return
        now = time.time()
        if conn.kind == "script":
            where = "lua"
        elif conn.kind == "unix":
            where = "unix:" + self.unixsocket
        else:
            where = conn.peer
        shown = " ".join(_repr(a) for a in _redacted(args))
        line = f"+{int(now)}.{int(now % 1 * 1_000_000):06d} [0 {where}] {shown}\r\n".encode("latin-1")
        for monitor in list(self.monitors):
            if monitor is conn:
                monitor.own_lines.append(line)
            elif monitor.transport is not None:
                monitor.transport.write(line)

    def set_slowlog_threshold(self, micros: int) -> None:
        """CONFIG SET slowlog-log-slower-than: log commands taking at least ``micros`` µs (negative: none)."""
        self.slowlog_slower_than = micros
        self.slowlog_seconds = None if micros < 0 else max(micros / 1_000_000 - 1e-9, 0.0)

    def slowlog_check(self, conn: Connection, args: list[bytes], start: float) -> None:
        """Log a command that ran from ``start`` (perf_counter; 0: not timed) to now if it took long
        enough (SLOWLOG)."""
        micros = int((perf_counter() - start) * 1_000_000) if start else 0
        if micros < self.slowlog_slower_than or _flagged(args, _UNSLOWLOGGED):
            return
        shown = _redacted(args)
        if len(shown) > SLOWLOG_MAX_ARGC:  # as Redis: the first 31, then how many more there were
            more = len(shown) - SLOWLOG_MAX_ARGC + 1
            shown = [*shown[: SLOWLOG_MAX_ARGC - 1], b"... (%d more arguments)" % more]
        shown = [
            a
            if len(a) <= SLOWLOG_MAX_STRING
            else a[:SLOWLOG_MAX_STRING] + b"... (%d more bytes)" % (len(a) - SLOWLOG_MAX_STRING)
            for a in shown
        ]
        if conn.kind == "script":
            addr = "?:0"
        elif conn.kind == "unix":
            addr = self.unixsocket + ":0"
        else:
            addr = conn.peer
        entry = [self.slowlog_next_id, int(time.time()), micros, shown, addr.encode(), conn.name or b""]
        self.slowlog_next_id += 1
        self.slowlog.appendleft(entry)
        while len(self.slowlog) > self.slowlog_max_len:
            self.slowlog.pop()

    def publish(self, channel: bytes, message: bytes) -> int:
        """Deliver a message to the channel's and matching patterns' subscribers; return how many."""
        count = 0
        for conn in list(self.channels.get(channel, ())):
            conn.push(Push([b"message", channel, message]))
            count += 1
        for pattern, conns in list(self.patterns.items()):
            if glob_match(pattern, channel, star_matches_all=False):
                for conn in list(conns):
                    conn.push(Push([b"pmessage", pattern, channel, message]))
                    count += 1
        return count

    def spublish(self, channel: bytes, message: bytes) -> int:
        """Deliver a message to a shard channel's subscribers (SSUBSCRIBE); return how many."""
        conns = list(self.shard_channels.get(channel, ()))
        for conn in conns:
            conn.push(Push([b"smessage", channel, message]))
        return len(conns)

    def set_notify_flags(self, flags: int) -> None:
        """Switch keyspace notifications (CONFIG SET notify-keyspace-events); ``x`` sweeps expired keys."""
        self.notify_flags = flags
        if flags & EXPIRED and self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep_expired)

    def _sweep_expired(self) -> None:
        """Report keys that expired, as Redis's active expiry cycle does, every :data:`SWEEP_INTERVAL`."""
        self._sweep = None
        if not self.notify_flags & EXPIRED:
            return
        try:
            if not self.loading:
                self.notifier.sweep()
                if self.group_commit is not None:
                    self.group_commit.after_commands()  # (its deletions fsynced this turn too)
        except WouldWait:  # another process holds the store's write lock: next time
            pass
        except Exception as exc:  # the store is unusable: try again later; the loop must go on
            self.log(f"cannot sweep expired keys: {exc!r}")
        self._sweep = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep_expired)

    def _buffer_lines(self) -> list[str]:
        """INFO's client_recent_max_input_buffer and client_recent_max_output_buffer: the most bytes a
        client holds now, of requests still arriving (what client-query-buffer-limit bounds) and of
        replies not yet sent (Redis: the most over its last seconds)."""
        held = sent = 0
        for conn in self.clients.values():
            held = max(held, conn.parser.pending_size + conn.waiting_bytes)
            if conn.transport is not None:
                sent = max(sent, conn.transport.get_write_buffer_size())
        return [f"client_recent_max_input_buffer:{held}", f"client_recent_max_output_buffer:{sent}"]

    def config(self) -> dict[bytes, bytes]:
        """The parameters CONFIG GET reports."""
        return {
            b"port": str(self.port).encode(),
            b"bind": self.host.encode(),
            b"unixsocket": self.unixsocket.encode(),
            b"dir": self.path.encode(),
            b"databases": b"1",
            b"save": b"",
            b"appendonly": b"yes",
            b"appendfsync": self.appendfsync.encode(),
            b"maxmemory": b"0",
            b"maxmemory-policy": b"noeviction",
            **self.eviction_settings,
            b"maxmemory-clients": b"0",
            b"timeout": b"0",
            b"tcp-keepalive": str(self.tcp_keepalive).encode(),
            b"protected-mode": b"yes" if self.protected_mode else b"no",
            b"requirepass": b"",
            b"proto-max-bulk-len": b"536870912",
            b"client-query-buffer-limit": str(self.client_query_buffer_limit).encode(),
            b"hll-sparse-max-bytes": b"3000",
            b"maxclients": str(self.maxclients).encode(),
            b"io-threads": b"1",
            b"notify-keyspace-events": format_flags(self.notify_flags),
            b"slowlog-log-slower-than": str(self.slowlog_slower_than).encode(),
            b"slowlog-max-len": str(self.slowlog_max_len).encode(),
            b"latency-monitor-threshold": b"0",
            b"tracking-table-max-keys": str(self.tracking.max_keys).encode(),
            b"hz": str(self.configured_hz).encode(),
            b"busy-reply-threshold": str(self.busy_reply_threshold).encode(),
            b"lua-time-limit": str(self.busy_reply_threshold).encode(),
            b"loglevel": self.loglevel.encode(),
            **config_entries(self.tls),
        }

    def info(self, sections: list[bytes]) -> bytes:
        """The INFO text for the requested sections (all if none)."""
        from kv_backend import __version__

        want = set(sections) - {b"all", b"everything", b"default"}
        # The store's figures only for the sections that show them: counting the keys walks every
        # name, which INFO server or clients (a version check, a monitoring probe) must not wait for.
        # (Nothing of the store while it opens: INFO is one of the commands answered then, as in Redis.)
        loading = self.loading
        stats = self.db.stats() if not loading and (not want or b"memory" in want) else {}
        keys = self.st.dbsize() if not loading and (not want or b"keyspace" in want) else 0
        expiring, avg_ttl = self.st.expiring() if keys else (0, 0)
        now = time.time()
        uptime = int(now - self.started)
        uname = os.uname()
        used = stats.get("live_bytes", 0)
        tracked_keys, tracked_items, tracked_prefixes = self.tracking.counts()
        # Redis's own fields, in its order (clients and test suites read them: redis-py's reads
        # arch_bits); kvb_version is kvb's; fields of Redis's build and allocator have neutral values.
        parts = {
            b"server": [
                f"redis_version:{self.REDIS_VERSION}",
                f"kvb_version:{__version__}",
                "redis_git_sha1:00000000",
                "redis_git_dirty:0",
                f"redis_build_id:kvb-{__version__}",
                "redis_mode:standalone",
                f"os:{uname.sysname} {uname.release} {uname.machine}",
                f"arch_bits:{struct.calcsize('P') * 8}",
                f"process_id:{os.getpid()}",
                f"process_supervised:{'systemd' if systemd.supervised() else 'no'}",
                f"run_id:{self.run_id}",
                f"tcp_port:{self.port}",
                f"server_time_usec:{int(now * 1_000_000)}",
                f"uptime_in_seconds:{uptime}",
                f"uptime_in_days:{uptime // 86400}",
                "hz:10",
                f"configured_hz:{self.configured_hz}",
                f"lru_clock:{int(now) & 0xFFFFFF}",
                f"executable:{sys.executable}",
                "config_file:",
                "io_threads_active:0",
            ],
            b"clients": [
                f"connected_clients:{len(self.clients)}",
                "cluster_connections:0",
                f"maxclients:{self.maxclients}",
                *self._buffer_lines(),
                f"blocked_clients:{len(self.waiters)}",
                f"tracking_clients:{len(self.tracking.clients)}",
                f"clients_in_timeout_table:{self.waiters.with_timeout()}",
            ],
            b"memory": [
                f"used_memory:{used}",
                f"used_memory_human:{_human_bytes(used)}",
                f"used_memory_disk:{stats.get('total_bytes', 0)}",
                "maxmemory:0",
                "maxmemory_human:0B",
                "maxmemory_policy:noeviction",
            ],
            # (in Redis's order; loading_start_time only while loading, as Redis's loading_* fields)
            b"persistence": [
                f"loading:{int(loading)}",
                "async_loading:0",
                *self.bgsaves.info_lines(),
                "aof_enabled:1",
                # (err while the store refuses writes after a failed fsync, as Redis's after a failed write)
                f"aof_last_write_status:{'ok' if loading or self.db.sync_failed_at is None else 'err'}",
                *([f"loading_start_time:{int(self.loading_since)}"] if loading else []),
            ],
            # Only what kvb serve counts: no keyspace_hits/misses or network byte counters.
            b"stats": [
                f"total_connections_received:{self.connections_received}",
                f"total_commands_processed:{self.commands_processed}",
                f"instantaneous_ops_per_sec:{int(sum(self.ops_rates) / OPS_SAMPLES)}",
                f"rejected_connections:{self.rejected_connections}",
                f"kvb_tls_handshake_failures:{self.tls_handshake_failures}",
                "evicted_keys:0",  # (noeviction: nothing is)
                f"pubsub_channels:{sum(1 for c in self.channels.values() if c)}",
                f"pubsub_patterns:{sum(1 for c in self.patterns.values() if c)}",
                f"pubsubshard_channels:{sum(1 for c in self.shard_channels.values() if c)}",
                f"tracking_total_keys:{tracked_keys}",
                f"tracking_total_items:{tracked_items}",
                f"tracking_total_prefixes:{tracked_prefixes}",
            ],
            b"replication": ["role:master", "connected_slaves:0"],
            b"cpu": _cpu_lines(),
            b"cluster": ["cluster_enabled:0"],
            b"keyspace": [f"db0:keys={keys},expires={expiring},avg_ttl={avg_ttl}"] if keys else [],
        }
        out = []
        for name, lines in parts.items():
            if want and name not in want:
                continue
            out.append("# " + ("CPU" if name == b"cpu" else name.decode().capitalize()))
            out.extend(lines)
            out.append("")
        return "\r\n".join(out).encode()

    def close(self) -> None:
        if self._ops_timer is not None:
            self._ops_timer.cancel()
            self._ops_timer = None
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self.waiters.close()
        self.tracking.close()
        if self._lock_retry is not None:
            self._lock_retry.cancel()
            self._lock_retry = None
        if not self.loading:
            self.refuse_lock_waits(False)
            if self.bgsaves.running:  # (not waited for: the close fsyncs the store all the same)
                self.log("closing the store while a background save runs: not waited for (the close fsyncs)")
            close_synced(self.db, self.log)


def _cpu_lines() -> list[str]:
    """INFO's cpu section, as Redis writes it: seconds of system and user CPU time of the process, of
    its children that ended, and of the thread that runs the commands (this one) where the OS says."""
    lines = []
    for suffix, who in (
        ("", resource.RUSAGE_SELF),
        ("_children", resource.RUSAGE_CHILDREN),
        ("_main_thread", getattr(resource, "RUSAGE_THREAD", None)),
    ):
        if who is not None:
            usage = resource.getrusage(who)
            lines += [
                f"used_cpu_sys{suffix}:{usage.ru_stime:.6f}",
                f"used_cpu_user{suffix}:{usage.ru_utime:.6f}",
            ]
    return lines


def _human_bytes(n: int) -> str:
    """A byte count as Redis's INFO writes its ``*_human`` fields: ``512B``, ``1.50K``, ``2.00M``..."""
    for unit, size in (("P", 1 << 50), ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


async def _run(server: Server, host: str, port: int, unixsocket: str | None) -> None:
    loop = asyncio.get_running_loop()
    stop = server.stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # (not the main thread)
            loop.add_signal_handler(sig, stop.set)
            # Python's handler runs at once, also while a script runs (see Server.on_signal); the
            # loop still learns of the signal through its wakeup descriptor.
            signal.signal(sig, server.on_signal)
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
        # As redis-server: a closed terminal (or a reload signal) does not stop the server. (Off the
        # main thread asyncio refuses it with RuntimeError, uvloop before 0.18 with ValueError.)
        loop.add_signal_handler(
            signal.SIGHUP, server.log, "SIGHUP ignored: stop kvb serve with SIGTERM or SIGINT"
        )
    listeners = server.listeners = Listeners(server)
    tls = server.tls
    places = []
    if port or tls is None:  # (as redis-server: with a TLS port, port 0 is no plaintext port)
        try:
            tcp = await listen_tcp(host, port)
        except OSError as exc:
            raise listen_error(host, port, exc) from exc
        listeners.add(tcp, "tcp")
        server.listen_addresses = addresses(tcp)
        sockname = tcp[0].getsockname()
        server.host, server.port = str(sockname[0]), int(sockname[1])
        places.append(f"{server.host}:{server.port}")
    if tls is not None:
        try:
            secure = await listen_tcp(host, tls.port)
        except OSError as exc:
            listeners.close()
            raise listen_error(host, tls.port, exc, "--tls-port") from exc
        listeners.add(secure, "tls")
        server.listen_addresses = server.listen_addresses or addresses(secure)
        server.host = str(secure[0].getsockname()[0])
        places.append(f"{server.host}:{tls.port} (TLS)")
    protected.warn_at_start(server, host)
    server.sample_ops()
    where = " and ".join(places)
    bound = None
    if unixsocket:
        try:
            unixsock.claim(unixsocket)  # a stale socket file goes; a live server's is refused
            listeners.add([listen_unix(unixsocket)], "unix")
        except (OSError, KVError) as exc:  # not the TCP port's fault: not serve()'s "choose another --port"
            listeners.close()
            if isinstance(exc, KVError):
                raise
            raise KVError(
                f"cannot listen on the unix socket {unixsocket}: {exc.strerror or exc}; "
                "choose another --unixsocket"
            ) from exc
        bound = unixsock.identity(unixsocket)
        server.unixsocket = unixsocket
        where += f" and {unixsocket}"
    failed = True  # (then kvb serve's one line is the error's)
    try:
        if await _open(server, stop, where):
            server.log(f"serving {server.path} on {where} (Redis protocol, pid {os.getpid()})")
            systemd.notify("READY=1", f"STATUS=serving {server.path} on {where}")
            await stop.wait()
        failed = False
    finally:
        systemd.notify("STOPPING=1")
        listeners.close()
        await _drain(server)
        if unixsocket:
            unixsock.release(unixsocket, bound)  # unless another server has bound the path since
        if not failed:
            server.log("stopped")


async def _drain(server: Server) -> None:
    """Close every client's connection once the replies it was given are sent: run no command
    more, wait at most :data:`DRAIN_SECONDS` (or until a second SIGINT) for clients that read
    slowly, then drop the connections left (their writes are in the store all the same)."""
    server.halting = True
    server.waiters.close()  # (a blocked client's timeout would answer a connection being closed)
    for conn in list(server.clients.values()):
        if conn.transport is not None:
            conn.transport.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_SECONDS
    # (a TLS client is gone once its replies and the close_notify are sent: kv_backend.server.tlsclose)
    while server.clients and loop.time() < deadline and not server.exit_status:
        await asyncio.sleep(0.01)
    for conn in list(server.clients.values()):
        if conn.transport is not None:
            if conn.transport.get_write_buffer_size():
                server.log(f"client {conn.id} ({conn.peer}) closed before its replies were all sent")
            conn.transport.abort()
    await asyncio.sleep(0)


async def _open(server: Server, stop: asyncio.Event, where: str) -> bool:
    """Open the server's store while it listens (commands that need it are answered LOADING after
    :data:`LOADING_GRACE` seconds); True once it is open, False if told to stop first. An open that
    fails raises its error (the server stops, and ``kvb serve`` exits with its message)."""
    loop = asyncio.get_running_loop()

    def grace_over() -> None:
        server.log(
            f"listening on {where} while {server.path} opens: commands that need the store are "
            "answered LOADING until it is open"
        )
        systemd.notify(f"STATUS=opening {server.path} (commands that need it are answered LOADING)")
        server.release_held()

    sync = APPENDFSYNC[server.appendfsync]
    opening = open_in_background(
        partial(_open_and_vacuum, server.path, sync, server.group_commit is not None), _close_opened
    )
    grace = loop.call_later(LOADING_GRACE, grace_over)
    stopping = asyncio.ensure_future(stop.wait())
    either: set[asyncio.Future[Any]] = {opening, stopping}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        grace.cancel()
        stopping.cancel()
    if not opening.done():
        opening.cancel()  # the store is closed once open (the thread cannot be stopped)
        server.log(f"stopping before {server.path} is open")
        return False
    db, st, vacuumed = opening.result()
    if vacuumed:
        server.log(f"removed {vacuumed} records of expired keys")
    server.loaded(db, st)
    server.refuse_lock_waits(True)  # (another process's script must not stop the event loop)
    return True


#: kvb serve's ``appendfsync`` values (Redis's) and the engine's ``sync`` policy each gives the store:
#: ``always`` fsyncs the writes of each event-loop turn, once, before any reply of that turn is sent
#: (the server makes that fsync: see kv_backend.server.groupcommit), ``everysec`` within about a
#: second of a write (a timer thread fsyncs an idle store), ``no`` leaves flushing to the OS (a killed
#: process loses nothing answered either way; a power failure may lose the last writes).
APPENDFSYNC: dict[str, Literal["never", "always"] | float] = {
    "always": "never",
    "everysec": 1.0,
    "no": "never",
}


def open_store(
    path: str, sync: Literal["never", "always"] | float = "never", *, group_commit: bool = False
) -> tuple[DB, Structures]:
    """The store at ``path`` (opened with the engine's ``sync`` policy) and its Redis structures;
    ``group_commit``: the server fsyncs the store's writes itself (``--appendfsync always``, see
    kv_backend.server.groupcommit), so every writer's rotations are told to be durable, as under a
    sync policy (the files they close and create, and the directory, fsynced)."""
    db = DB(path, sync=sync)
    try:
        if group_commit and not db.read_only:
            db._announce_fsyncs()  # (before anything is written: the sweep of expired keys, say)
        return db, Structures(db)
    except BaseException:
        db.close()
        raise


def _open_and_vacuum(
    path: str, sync: Literal["never", "always"] | float, group_commit: bool = False
) -> tuple[DB, Structures, int]:
    """Open the store and drop the records of expired keys (run by :func:`_open`, in a thread)."""
    db, st = open_store(path, sync, group_commit=group_commit)
    try:
        return db, st, st.vacuum()
    except BaseException:
        db.close()
        raise


def _close_opened(opened: tuple[DB, Structures, int]) -> None:
    opened[0].close()


_READ_ONLY = frozenset(name for name, cmd in COMMANDS.items() if "write" not in cmd.flags) - {
    b"exec",
    b"multi",
}
#: Whether a command may write, by its name as clients usually spell it (lower or upper case).
_MAY_WRITE = {n: name not in _READ_ONLY for name in COMMANDS for n in (name, name.upper())}


#: Command names (``client|list`` for a subcommand) by a flag they have (see _flagged_names).
_BY_FLAG: dict[str, frozenset[bytes]] = {}


def _flagged_names(flag: str) -> frozenset[bytes]:
    """The commands and subcommands (``client|list``) that have ``flag`` in COMMAND INFO."""
    names = _BY_FLAG.get(flag)
    if names is None:
        from kv_backend.server.commands import metadata

        infos = [sub for info in metadata.described() for sub in (info, *info.subcommands)]
        names = _BY_FLAG[flag] = frozenset(i.name.encode() for i in infos if flag in i.flags)
    return names


#: How INFO's rdb_changes_since_last_save counts a command (Command.counted, bgsave.counted_as), and
#: the writes counted by a size read before and after them (bgsave.MEASURED).
_NOT_COUNTED, _ONE_PER_CHANGE, _APART = bgsave.NOT_COUNTED, bgsave.ONE_PER_CHANGE, bgsave.COUNTED_APART
_MEASURED = bgsave.MEASURED
#: Replies of a write that is not counted: it blocked (counted when served) or answered an error.
_UNCOUNTED_REPLIES = frozenset({Block, ErrorReply})


def _answered_while_loading() -> frozenset[bytes]:
    """The commands answered while the store opens: Redis's ``loading`` ones (INFO, AUTH, HELLO,
    CLIENT, CONFIG, pub/sub...) but those that need the store."""
    return _flagged_names("loading") - _NEED_THE_STORE


def _allowed_while_busy() -> frozenset[bytes]:
    """The commands other clients may run while a script runs long (Redis's ``allow_busy`` ones:
    AUTH, HELLO, MULTI, DISCARD, WATCH, SCRIPT KILL, FUNCTION KILL, SHUTDOWN...); the others are
    answered BUSY."""
    return _flagged_names("allow_busy")


def _may_write(commands: list[list[bytes]]) -> bool:
    """Whether any of these commands may write (then a flush takes the write lock once for all)."""
    for args in commands:
        writes = _MAY_WRITE.get(args[0])
        if writes is None:
            writes = args[0].lower() not in _READ_ONLY  # mixed case or unknown: as Redis, case-blind
        if writes:
            return True
    return False


def _foreign_key(db: DB, args: list[bytes]) -> bytes | None:
    """The first key ``args`` name whose metadata record another front end wrote (see
    :func:`~kv_backend.structures.layout.foreign_meta`), or None."""
    from kv_backend.server.commands import metadata

    try:
        keys = [k for k, _ in metadata.keys_of(args)]
    except Exception:  # a call that names no keys
        return None
    return first_foreign(db, keys)


def _any_may_write(queue: list[Connection]) -> bool:
    """Whether a command pending on any of these connections may write."""
    for conn in queue:  # noqa: SIM110 - a plain loop: any() over a generator costs more, once per flush
        if _may_write(conn.pending):
            return True
    return False


#: Commands shown to MONITOR clients before they run (the commands of a script follow them);
#: every other command is shown once it has run (so EXEC follows the commands it ran).
_MONITORED_FIRST = frozenset({b"eval", b"evalsha", b"eval_ro", b"evalsha_ro", b"fcall", b"fcall_ro"})
#: Commands (and ``container|sub``) MONITOR does not show: Redis's admin and skip_monitor ones.
_UNMONITORED: set[bytes] = set()
#: Commands SLOWLOG does not log (skip_slowlog: EXEC, whose commands are logged one by one).
_UNSLOWLOGGED: set[bytes] = set()
#: A SLOWLOG entry keeps at most this many arguments, each cut to this many bytes (as Redis).
SLOWLOG_MAX_ARGC = 32
SLOWLOG_MAX_STRING = 128
#: Commands a MONITOR client may not send (as a replica, it may not read or write keys).
_KEYSPACE: set[bytes] = set()
_CONTAINERS = frozenset(name.encode() for name in CONTAINERS)


#: Read-only commands (and ``container|sub``): a tracking client is told when the keys they read change.
_READONLY: set[bytes] = set()
#: The names of the read-only commands and of the containers with read-only subcommands: those
#: :meth:`Connection.execute` checks for a change of the store while they ran (see
#: :meth:`Connection._read_again`; filled with :data:`_READONLY`).
_READS: set[bytes] = set()


def _tracked_read(name: bytes, args: list[bytes]) -> bool:
    """Whether a call is of a read-only command whose keys a tracking client is told about (as in
    Redis, not EVAL_RO/EVALSHA_RO/FCALL_RO themselves: the commands they run are)."""
    if not _READONLY:
        from kv_backend.server.commands.metadata import described

        for info in described():
            for one in (info, *info.subcommands):
                if "readonly" in one.flags and one.name not in ("eval_ro", "evalsha_ro", "fcall_ro"):
                    _READONLY.add(one.name.encode())
                    _READS.add(one.name.split("|")[0].encode())
    if len(args) > 1 and name in _CONTAINERS:
        return name + b"|" + args[1].lower() in _READONLY
    return name in _READONLY


def _flagged(args: list[bytes], which: set[bytes]) -> bool:
    """Whether the command (or its subcommand) is in ``which`` (:data:`_UNMONITORED`, :data:`_KEYSPACE`)."""
    if not _UNMONITORED:
        from kv_backend.server.commands.metadata import described

        for info in described():
            for one in (info, *info.subcommands):
                flags = set(one.flags)
                if {"admin", "skip_monitor"} & flags and one.name.encode() not in _MONITORED_FIRST:
                    _UNMONITORED.add(one.name.encode())
                if "skip_slowlog" in flags:
                    _UNSLOWLOGGED.add(one.name.encode())
                if {"write", "readonly", "may_replicate"} & flags:
                    _KEYSPACE.add(one.name.encode())
    name = args[0].lower()
    if len(args) > 1 and name in _CONTAINERS:
        return name in which or name + b"|" + args[1].lower() in which
    return name in which


def _shown(args: list[bytes]) -> str:
    """The arguments an unknown command's error quotes, as Redis quotes them: each up to its first
    NUL byte, added while less than 128 bytes are shown, the last cut to fill 128."""
    shown = b""
    for arg in args[1:]:
        if len(shown) >= 128:
            break
        shown += b"'" + c_string(arg)[: 128 - len(shown)] + b"' "
    return quoted(shown)


#: The parameters whose values CONFIG SET's entry in SLOWLOG hides: Redis's (its passwords) and the TLS
#: keys' passphrases (which Redis shows there, and kvb nowhere).
_SECRET_CONFIGS = frozenset(
    (b"requirepass", b"masterauth", b"tls-key-file-pass", b"tls-client-key-file-pass")
)


def _redacted(args: list[bytes]) -> list[bytes]:
    """The arguments MONITOR and SLOWLOG show: passwords replaced as Redis replaces them (only those
    its parsing reached: ``AUTH a b c`` is a syntax error shown as it is, as is a HELLO it rejected
    before its AUTH option), and CONFIG SET's secrets (:data:`_SECRET_CONFIGS`)."""
    name = args[0].lower()
    if name == b"auth":
        return args if len(args) > 3 else [args[0]] + [b"(redacted)"] * (len(args) - 1)
    if name == b"config" and len(args) > 3 and args[1].lower() == b"set":
        secret = [i + 1 for i in range(2, len(args) - 1, 2) if args[i].lower() in _SECRET_CONFIGS]
        return [b"(redacted)" if i in secret else arg for i, arg in enumerate(args)]
    if name != b"hello" or len(args) < 3:
        return args
    if args[1] not in (b"2", b"3"):
        return args  # NOPROTO (or not a number): refused before the options are read
    out = list(args)
    i = 2
    while i < len(out):
        more = len(out) - 1 - i
        word = keyword(out[i])
        if word == b"AUTH" and more >= 2:
            out[i + 1] = out[i + 2] = b"(redacted)"
            i += 3
        elif word == b"SETNAME" and more:
            i += 2
        else:
            break
    return out


#: How MONITOR writes each byte of an argument (as Redis's sdscatrepr: C escapes, else \xHH).
_REPR = [chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in range(256)]
for _byte, _escaped in {34: '\\"', 92: "\\\\", 10: "\\n", 13: "\\r", 9: "\\t", 7: "\\a", 8: "\\b"}.items():
    _REPR[_byte] = _escaped
del _byte, _escaped


def _repr(arg: bytes) -> str:
    return '"' + "".join([_REPR[b] for b in arg]) + '"'


def _written_keys(name: bytes, args: list[bytes]) -> list[bytes] | None:
    """The keys a write command changes (None: possibly all of them)."""
    if name in (b"del", b"unlink"):
        return args[1:]
    if name in (b"mset", b"msetnx"):
        return args[1::2]
    if name in (b"rename", b"renamenx", b"rpoplpush", b"lmove", b"brpoplpush", b"blmove", b"smove"):
        return args[1:3]
    if name == b"copy":
        return args[2:3]
    if name == b"bitop":
        return args[2:3]  # BITOP op destkey key...: only the destination is written
    if name in (b"blpop", b"brpop", b"bzpopmin", b"bzpopmax"):
        return args[1:-1]
    if name in (b"lmpop", b"zmpop", b"blmpop", b"bzmpop"):  # [timeout] numkeys key ...
        return _mpop_written(args, 1 if name in (b"lmpop", b"zmpop") else 2)
    if name == b"xgroup":
        return args[2:3]  # XGROUP DESTROY answers clients blocked on the group with NOGROUP
    if name == b"xreadgroup":
        return []
    if name in (b"flushdb", b"flushall"):
        return None
    if name in (b"eval", b"evalsha", b"eval_ro", b"evalsha_ro", b"fcall", b"fcall_ro"):
        return []  # a script's commands report the keys they write themselves
    if name == b"sort":
        return [key for key, _ in sort_keys(args)[1:]]  # only a STORE key is written
    if name in (b"georadius", b"georadiusbymember"):
        return geo_store_key(args)  # only a STORE / STOREDIST key is written
    return args[1:2]


def _mpop_written(args: list[bytes], first: int) -> list[bytes]:
    """The keys of ``numkeys key...`` at ``args[first]`` (LMPOP, ZMPOP...). Keyspace notifications
    ask before the command checks numkeys: one that is no number names no key here, and the
    command then answers Redis's error for it."""
    try:
        return args[first + 1 : first + 1 + max(int(args[first]), 0)]
    except ValueError:
        return []


#: Commands whose every change to a key shows in its WATCH token (its metadata record): deleting
#: it (the token goes to None) or, for SMOVE, adding or removing a member (the set's size). They
#: change exactly the watched keys whose token differs afterwards: SMOVE of a member already in the
#: destination leaves the destination alone, as in Redis.
_BY_TOKEN = frozenset({b"del", b"unlink", b"flushdb", b"flushall", b"smove"})

#: Pops from the first non-empty of several keys: their reply starts with the key they popped
#: from, the only one they changed (a null reply: none).
_POPS = frozenset({b"blpop", b"brpop", b"bzpopmin", b"bzpopmax", b"lmpop", b"zmpop", b"blmpop", b"bzmpop"})


def _loop_factory() -> Any:
    """uvloop's event loop when it is installed (0.23 or newer), else asyncio's.

    Set ``KVB_EVENT_LOOP=asyncio`` to force the standard loop, ``uvloop`` to require uvloop's; any
    other value is a :class:`~kv_backend.errors.ConfigurationError` (a typo must not pass unseen).
    """
    choice = os.environ.get("KVB_EVENT_LOOP", "").strip().lower()
    if choice not in ("", "asyncio", "uvloop"):
        raise ConfigurationError(
            f"KVB_EVENT_LOOP must be 'asyncio' (the standard event loop) or 'uvloop', or unset "
            f"(uvloop's when installed), not {os.environ['KVB_EVENT_LOOP']!r}"
        )
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigurationError(
                "KVB_EVENT_LOOP=uvloop but the uvloop package cannot be imported: install it "
                "(pip install 'kv-backend[server]') or unset KVB_EVENT_LOOP"
            ) from None
        return None
    version: str = getattr(uvloop, "__version__", "0")
    if _version_tuple(version) < MIN_UVLOOP:
        # Before 0.23 a transport's small writes wait for the loop's next turn, which a script that
        # runs long holds up: clients would get no BUSY reply while it runs (see kv_backend.server.busy).
        if choice == "uvloop":
            raise ConfigurationError(
                f"KVB_EVENT_LOOP=uvloop but uvloop {version} is older than "
                f"{'.'.join(map(str, MIN_UVLOOP))}, whose transports send replies at once: upgrade it "
                "(pip install -U 'uvloop>=0.23') or unset KVB_EVENT_LOOP"
            )
        return None
    return uvloop.new_event_loop


#: The oldest uvloop the server runs on (its transports hold small writes until the loop turns before).
MIN_UVLOOP = (0, 23)


def _version_tuple(version: str) -> tuple[int, ...]:
    """``(0, 21, 0)`` of ``"0.21.0"`` (a part that is not a number ends it: ``"0.22.0rc1"`` -> (0, 22))."""
    parts: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def _run_on_new_loop(main: Coroutine[Any, Any, None], loop_factory: Callable[[], Any] | None) -> None:
    """Run ``main`` to its end on a fresh event loop, then cancel what is left and close the loop.

    What ``asyncio.Runner(loop_factory=...)`` does, written out because
    Python 3.10 has no ``asyncio.Runner`` (and ``asyncio.run`` takes no loop factory there).
    """
    loop = (loop_factory or asyncio.new_event_loop)()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def serve(
    path: str,
    host: str = "127.0.0.1",
    port: int = 6380,
    requirepass: str | None = None,
    unixsocket: str | None = None,
    protected_mode: bool = True,
    tls: TLSSettings | None = None,
    loglevel: str = "notice",
    tls_context: ssl.SSLContext | None = None,
    appendfsync: str = "no",
) -> int:
    """Serve the store at ``path`` over the Redis protocol until SIGTERM/SIGINT (blocking); return
    the exit status (1 when a second SIGINT forced the stop, as redis-server exits then, else 0).
    ``protected_mode``: without ``requirepass``, serve only clients on this machine, as Redis.
    ``tls``: also listen on a TLS port (only there if ``port`` is 0); a certificate or key that
    cannot be loaded is a ConfigurationError raised before the store is opened. ``tls_context``: the
    context ``tls`` gives (:func:`kv_backend.server.tls.configure`), where the caller has built it
    already (kvb serve, which checks its options with it): not built again. Run in the main thread, it
    handles SIGTERM, SIGINT and SIGHUP while it serves, and puts the handlers it found back when it
    returns or raises. ``appendfsync``: ``always``, ``everysec`` or ``no`` (the default, the
    fastest), when the store fsyncs its writes (:data:`APPENDFSYNC`)."""
    from kv_backend.server.tls import configure

    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, not {port!r}")
    if tls is None:
        context = None
    elif tls_context is not None:
        context = tls_context
    else:
        context = configure(tls)
    loop_factory = _loop_factory()  # (a bad KVB_EVENT_LOOP is refused before the store is opened)
    server = Server(path, requirepass=requirepass, loading=True, appendfsync=appendfsync)  # opened in _open
    server.protected_mode = protected_mode
    server.loglevel = loglevel
    server.tls, server.tls_context = tls, context
    try:
        clientlimit.start_limit(server)  # (as redis-server: descriptors for its clients, or fewer clients)
        with _handlers_kept(signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            _run_on_new_loop(_run(server, host, port, unixsocket), loop_factory)
    finally:
        server.close()
    return server.exit_status


@contextlib.contextmanager
def _handlers_kept(*signums: int) -> Any:
    """Put the Python handlers of ``signums`` back as they were once the block ends: the server's own
    (_run's, which its event loop's close does not take back) must not outlive it in a program that
    goes on, where a child it forks later would ignore the SIGTERM that ends it. In the main thread only,
    where alone handlers can be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
