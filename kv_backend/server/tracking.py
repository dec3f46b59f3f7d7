"""Client-side caching (``CLIENT TRACKING``): telling clients which keys they cached have changed.

As in Redis 7.0, a tracking client in the default mode is told once about each
key it read (with a read-only command) when that key next changes; in BCAST
mode it is told about every key under its prefixes that changes. RESP3 clients
get an ``invalidate`` push; a client may instead REDIRECT the messages to
another connection, which, in RESP2, receives them as ``message``s of the
``__redis__:invalidate`` channel once subscribed to anything. A null key list
(FLUSHALL, FLUSHDB) means "drop everything".

The changes come from the engine, not from the commands: while anyone tracks,
the store notes every key it indexes (:meth:`kv_backend.db.DB.follow_changes`),
this server's writes and the ones it catches up with from other processes
(other servers, ``Structures`` in-process) alike. Those are looked at after
each command and, while nobody sends any, every :data:`POLL_INTERVAL`
seconds; expired keys are deleted (and so announced) every
:data:`SWEEP_INTERVAL`. Where the store cannot say which keys changed (a merge
or a recovery rebuilt its index) every tracking client gets the null message.
With nobody tracking, none of this runs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from kv_backend.locking import WouldWait
from kv_backend.server.notify import EXPIRED
from kv_backend.server.protocol import Push, encode
from kv_backend.structures import CommandError
from kv_backend.structures.errors import quoted
from kv_backend.structures.layout import ALL_PREFIXES, META, member_name
from kv_backend.structures.parsing import keyword

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection, Server

#: How often (seconds) the store is checked for other processes' writes while a client tracks.
POLL_INTERVAL = 0.02
#: How often (seconds) expired keys are deleted while a client tracks (Redis: hz 10).
SWEEP_INTERVAL = 0.1
#: Where RESP2 clients receive the messages of the clients that redirect to them.
CHANNEL = b"__redis__:invalidate"
#: CONFIG tracking-table-max-keys's default (Redis 7.0's).
MAX_KEYS = 1_000_000

_MEMBER_PREFIXES = frozenset(ALL_PREFIXES) - {META}


class ClientTracking:
    """One client's CLIENT TRACKING settings."""

    __slots__ = ("bcast", "broken", "caching", "noloop", "optin", "optout", "prefixes", "redirect")

    def __init__(self) -> None:
        self.redirect = 0
        self.bcast = self.optin = self.optout = self.noloop = False
        #: CLIENT CACHING was given for the next command (YES under OPTIN, NO under OPTOUT).
        self.caching = False
        #: The client it redirects to is gone.
        self.broken = False
        self.prefixes: list[bytes] = []

    def flags(self) -> list[bytes]:
        """CLIENT TRACKINGINFO's flags, in Redis's order."""
        out = [b"on"]
        if self.bcast:
            out.append(b"bcast")
        if self.optin:
            out.append(b"optin")
            if self.caching:
                out.append(b"caching-yes")
        if self.optout:
            out.append(b"optout")
            if self.caching:
                out.append(b"caching-no")
        if self.noloop:
            out.append(b"noloop")
        if self.broken:
            out.append(b"broken_redirect")
        return out


def redis_name(key: bytes) -> bytes | None:
    """The Redis key an engine key belongs to (None: none, such as the function libraries)."""
    tag = key[:2]
    if tag == META:
        return key[2:]
    if tag in _MEMBER_PREFIXES:
        return member_name(key)
    return None


class Tracking:
    """The tracking clients of one server, the keys they read, and the messages they are sent."""

    def __init__(self, server: Server) -> None:
        self.server = server
        #: The clients with tracking on (the server's cheap "anyone tracking?" test).
        self.clients: set[Connection] = set()
        #: Key -> ids of the clients in the default mode that read it since it last changed.
        self.table: dict[bytes, set[int]] = {}
        #: How many (key, client) pairs :attr:`table` holds (INFO's tracking_total_items), kept up
        #: to date as Redis keeps it: a sum over a table of a million keys would stall INFO.
        self.items = 0
        #: BCAST prefix -> its clients; keys changed under it since the last :meth:`settle`.
        self.prefixes: dict[bytes, set[Connection]] = {}
        self.bcast_keys: dict[bytes, dict[bytes, Connection | None]] = {}
        #: A FLUSHALL/FLUSHDB ran: the next :meth:`absorb` sends the null message.
        self.flushed = False
        #: CONFIG tracking-table-max-keys: at most this many keys in :attr:`table` (0: no limit).
        self.max_keys = MAX_KEYS
        #: How many :meth:`limit` calls in a row left the table over the limit (each does more).
        self._over = 0
        self._token: int | None = None
        #: An :meth:`absorb` could not catch up with the store: another process merged it and a
        #: process holds the write lock, which the reload needs. The poll tries again once it is free.
        self._behind = False
        self._poll: asyncio.TimerHandle | None = None
        self._sweep: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ CLIENT TRACKING

    def command(self, conn: Connection, args: list[bytes]) -> Any:
        """CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT] [NOLOOP]."""
        redirect = 0
        bcast = optin = optout = noloop = False
        prefixes: list[bytes] = []
        i = 3
        while i < len(args):
            word = keyword(args[i])
            more = i + 1 < len(args)
            if word == b"REDIRECT" and more:
                i += 1
                if redirect:
                    raise CommandError("ERR A client can only redirect to a single other client")
                try:
                    redirect = int(args[i])
                except ValueError:
                    raise CommandError("ERR value is not an integer or out of range") from None
                if not -(1 << 63) <= redirect < 1 << 63 or args[i] != str(redirect).encode():
                    raise CommandError("ERR value is not an integer or out of range")
                if redirect not in self.server.clients:
                    raise CommandError("ERR The client ID you want redirect to does not exist")
            elif word == b"BCAST":
                bcast = True
            elif word == b"OPTIN":
                optin = True
            elif word == b"OPTOUT":
                optout = True
            elif word == b"NOLOOP":
                noloop = True
            elif word == b"PREFIX" and more:
                i += 1
                prefixes.append(args[i])
            else:
                raise CommandError("ERR syntax error")
            i += 1
        mode = keyword(args[2])
        if mode == b"OFF":
            self.disable(conn)
            return "OK"
        if mode != b"ON":
            raise CommandError("ERR syntax error")
        old = conn.tracking
        if prefixes and not bcast:
            raise CommandError("ERR PREFIX option requires BCAST mode to be enabled")
        if old is not None and old.bcast != bcast:
            raise CommandError(
                "ERR You can't switch BCAST mode on/off before disabling tracking for this client, "
                "and then re-enabling it with a different mode."
            )
        if bcast and (optin or optout):
            raise CommandError("ERR OPTIN and OPTOUT are not compatible with BCAST")
        if optin and optout:
            raise CommandError("ERR You can't specify both OPTIN mode and OPTOUT mode")
        if old is not None and ((optin and old.optout) or (optout and old.optin)):
            raise CommandError(
                "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, "
                "and then re-enabling it with a different mode."
            )
        if bcast:
            _check_prefixes(old.prefixes if old is not None else [], prefixes)
        state = old if old is not None else ClientTracking()
        state.redirect = redirect
        state.broken = False
        state.optin, state.optout, state.noloop = optin, optout, noloop
        state.bcast = bcast
        if bcast:
            for prefix in prefixes or [b""]:
                if prefix not in state.prefixes:
                    state.prefixes.append(prefix)
                    self.prefixes.setdefault(prefix, set()).add(conn)
            state.prefixes.sort()
        if old is None:
            self.enable(conn, state)
        return "OK"

    def enable(self, conn: Connection, state: ClientTracking) -> None:
        """Turn tracking on for ``conn`` (the first tracking client starts following the store)."""
        conn.tracking = state
        if not self.clients:
            db = self.server.db
            db.follow_changes(True)
            self._token = db.change_token()
            loop = asyncio.get_running_loop()
            self._poll = loop.call_later(POLL_INTERVAL, self._check_others)
            self._sweep = loop.call_later(SWEEP_INTERVAL, self._sweep_expired)
        self.clients.add(conn)

    def disable(self, conn: Connection) -> None:
        """Turn tracking off for ``conn`` (the last one stops following the store)."""
        state = conn.tracking
        if state is None:
            return
        conn.tracking = None
        self.clients.discard(conn)
        for prefix in state.prefixes:
            members = self.prefixes.get(prefix)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self.prefixes[prefix]
                    self.bcast_keys.pop(prefix, None)
        if not self.clients:
            self.close()
            self.server.db.follow_changes(False)

    def close(self) -> None:
        """Stop the timers and forget every read key (nobody tracks, or the server stops)."""
        for timer in (self._poll, self._sweep):
            if timer is not None:
                timer.cancel()
        self._poll = self._sweep = None
        self.table.clear()
        self.items = 0
        self.bcast_keys.clear()
        self.flushed = self._behind = False
        self._over = 0

    # ------------------------------------------------------------ reads

    def remember(self, conn: Connection, keys: list[bytes]) -> None:
        """Note that ``conn`` read ``keys`` (a read-only command), unless OPTIN/OPTOUT say not to."""
        state = conn.tracking
        if state is None or state.bcast:
            return
        if (state.optin and not state.caching) or (state.optout and state.caching):
            return
        table = self.table
        cid = conn.id
        for key in keys:
            ids = table.get(key)
            if ids is None:
                table[key] = {cid}
                self.items += 1
            elif cid not in ids:
                ids.add(cid)
                self.items += 1

    def limit(self) -> None:
        """Bring the table back to :attr:`max_keys` keys, as Redis 7.0 does before each command
        and ten times a second: forget the keys read longest ago (Redis: random ones) as if they
        had changed, so that their readers are told to drop them. At most 100 keys per call,
        100 more each call in a row that leaves the table over the limit (so that lowering the
        limit a lot cannot stall the server in one go)."""
        table = self.table
        most = self.max_keys
        if not most or len(table) <= most:
            self._over = 0
            return
        clients = self.server.clients
        for _ in range(100 * (self._over + 1)):
            name = next(iter(table))
            ids = table.pop(name)
            self.items -= len(ids)
            for cid in sorted(ids):
                target = clients.get(cid)
                state = target.tracking if target is not None else None
                if state is not None and not state.bcast:
                    self.send(target, [name])  # type: ignore[arg-type]
            if len(table) <= most:
                self._over = 0
                return
        self._over += 1

    def counts(self) -> tuple[int, int, int]:
        """INFO's tracking_total_keys, _items (key and client pairs) and _prefixes."""
        return len(self.table), self.items, len(self.prefixes)

    # ------------------------------------------------------------ changes

    def absorb(self, modifier: Connection | None) -> None:
        """Send the messages for the keys changed since the last look (``modifier``: the client
        whose command changed them, for NOLOOP; None: other processes, expiry, served waiters).
        While the changes cannot be read without waiting for the write lock (the event loop never
        waits), they stay for the poll to send once the lock is free."""
        try:
            changes = self.server.db.take_changes()
        except WouldWait:
            self._behind = True
            return
        except Exception as exc:  # what changed cannot be read: no cached value may be trusted
            self.server.log(f"cannot follow the store for tracking clients: {exc!r}")
            changes = None
        if self.flushed or changes is None:
            self.flushed = False
            self.flush_all()
            return
        if not changes:
            return
        names = []
        for key in changes:
            name = redis_name(key)
            if name is not None:
                names.append(name)
        if names:
            self.invalidate(list(dict.fromkeys(names)), modifier)

    def invalidate(self, names: list[bytes], modifier: Connection | None) -> None:
        """Tell the clients that read these keys (and the BCAST ones under their prefixes)."""
        table = self.table
        clients = self.server.clients
        prefixes = self.prefixes
        for name in names:
            ids = table.pop(name, None)
            if ids:
                self.items -= len(ids)
                for cid in sorted(ids):
                    target = clients.get(cid)
                    state = target.tracking if target is not None else None
                    if state is None or state.bcast or (state.noloop and target is modifier):
                        continue
                    self.send(target, [name])  # type: ignore[arg-type]
            if prefixes:
                for prefix in prefixes:
                    if name.startswith(prefix):
                        self.bcast_keys.setdefault(prefix, {})[name] = modifier

    def settle(self) -> None:
        """Send the BCAST messages for what changed since the last call (one per prefix and client)."""
        if not self.bcast_keys:
            return
        pending, self.bcast_keys = self.bcast_keys, {}
        for prefix in sorted(pending):
            changed = pending[prefix]
            for conn in sorted(self.prefixes.get(prefix, ()), key=lambda c: c.id):
                state = conn.tracking
                if state is None:
                    continue
                keys = sorted(k for k, who in changed.items() if not (state.noloop and who is conn))
                if keys:
                    self.send(conn, keys)

    def flush_all(self) -> None:
        """Send the null message (drop everything) to every tracking client, and forget read keys."""
        self.table.clear()
        self.items = 0
        self.bcast_keys.clear()
        for conn in sorted(self.clients, key=lambda c: c.id):
            self.send(conn, None)

    def send(self, conn: Connection, keys: list[bytes] | None) -> None:
        """Deliver one message to ``conn`` or the client it redirects to."""
        state = conn.tracking
        if state is None:
            return
        target = conn
        if state.redirect:
            target = self.server.clients.get(state.redirect)  # type: ignore[assignment]
            if target is None:
                state.broken = True
                if conn.resp3:
                    _deliver(conn, Push([b"tracking-redir-broken", state.redirect]))
                return
        if target.resp3:
            _deliver(target, Push([b"invalidate", keys]))
        elif state.redirect and target.in_subscribe_mode():
            _deliver(target, Push([b"message", CHANNEL, keys]))

    # ------------------------------------------------------------ timers

    def _check_others(self) -> None:
        """Send the messages for other processes' writes, when the store changed since the last look."""
        self._poll = None
        if not self.clients:
            return
        server = self.server
        try:
            token = server.db.change_token()
            if token != self._token or (self._behind and server.db._lock.is_free()):
                self._token = token
                self._behind = False
                self.absorb(None)  # (behind again if the lock was taken meanwhile)
                self.settle()
        except WouldWait:  # another process holds the store's write lock
            self._behind = True
        except Exception as exc:  # the store is unusable: try again later; the loop must go on
            server.log(f"cannot follow the store for tracking clients: {exc!r}")
        if self.clients:
            self._poll = asyncio.get_running_loop().call_later(POLL_INTERVAL, self._check_others)

    def _sweep_expired(self) -> None:
        """Delete keys that expired (so that their readers are told), as Redis's active expiry does."""
        self._sweep = None
        if not self.clients:
            return
        server = self.server
        try:
            if server.notify_flags & EXPIRED:
                server.notifier.sweep()  # deletes them and publishes their ``expired`` events
            else:
                st = server.st
                for name in st.expired_names(200):
                    st.remove_expired(name)
            self.absorb(None)
            self.settle()
            self.limit()  # as Redis's cron: even while no command comes
        except WouldWait:  # another process holds the store's write lock: next time
            pass
        except Exception as exc:  # the store is unusable: try again later; the loop must go on
            server.log(f"cannot sweep expired keys for tracking clients: {exc!r}")
        if self.clients:
            self._sweep = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep_expired)


def _deliver(conn: Connection, message: Push) -> None:
    """Send a message now, or after the replies of the commands ``conn`` is running (so that a
    reply read before a change never arrives after the message that it changed)."""
    out = conn.tracking_out
    if out is not None:
        out.append(encode(message, conn.resp3))
    else:
        conn.push(message)


def _check_prefixes(existing: list[bytes], new: list[bytes]) -> None:
    """Refuse BCAST prefixes that overlap (one starts the other), as Redis does."""
    for i, prefix in enumerate(new):
        for old in existing:
            if old.startswith(prefix) or prefix.startswith(old):
                raise CommandError(
                    f"ERR Prefix '{_show(prefix)}' overlaps with an existing prefix '{_show(old)}'. "
                    "Prefixes for a single client must not overlap."
                )
        for other in new[i + 1 :]:
            if other.startswith(prefix) or prefix.startswith(other):
                raise CommandError(
                    f"ERR Prefix '{_show(prefix)}' overlaps with another provided prefix '{_show(other)}'. "
                    "Prefixes for a single client must not overlap."
                )


def _show(value: bytes) -> str:
    return quoted(value)
