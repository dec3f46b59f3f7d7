"""Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, XREAD BLOCK): clients that wait for data.

A blocking command first tries at once, like its non-blocking twin. When
every list (or stream) it names has nothing for it, it returns a :class:`Block` instead of a reply;
the connection then stops running its later commands and waits in
:class:`Waiters` until one of its keys may have data, its timeout passes, or
it disconnects. Clients blocked on one key are served first come, first
served, as Redis serves them.

A key may get data from this server's own commands (which signal the keys
they write, and the waiters are served before the write lock is released)
or from another process writing the same directory; for those, the store's
change token is looked at every :data:`POLL_INTERVAL` seconds while anyone
waits. Serving a waiter pops the element and writes the pop to the log
before the reply is sent, so an element is never both handed out and kept,
and one left unserved (the waiter disconnected, timed out or was unblocked)
stays in its list. A waiter whose connection is closing (the server has read
its end of input: the client process died) is passed over at once, not only
once the event loop reports the connection lost: an element pushed in the same
turn of the loop stays in its list, where redis-server (which frees such a
client after the turn) hands it to the dead client. Nor is one whose end of input has arrived but
not been read yet (the loop was held: another client's script ran while the client died, and the
push came behind it): before an element is handed over, the kernel is asked whether the waiter's
peer hung up (:func:`hung_up`, one ``poll`` per waiter tried), and such a client is closed as at its
end of input.
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kv_backend.locking import WouldWait
from kv_backend.server import bgsave
from kv_backend.server.protocol import NULL_ARRAY
from kv_backend.structures.layout import META

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection, Server

#: How often (seconds) the store is checked for other processes' writes while clients wait.
POLL_INTERVAL = 0.02
#: Every how many checks the keys clients wait on are deleted if they expired (Redis: hz 10).
EXPIRE_EVERY = 5
#: What a wait that ends without data answers (timeout, CLIENT UNBLOCK): Redis's null array.
TIMED_OUT = NULL_ARRAY


#: A peer's end of input, shown even with data still unread before it (Linux's; 0 where there is none).
_RDHUP: int = getattr(select, "POLLRDHUP", 0)


def _poll_hung_up(fd: int) -> bool:
    """Whether the peer of socket ``fd`` closed or shut down its side, or reset it (no wait; POLLHUP,
    POLLERR and POLLNVAL are reported unasked)."""
    poller = select.poll()
    poller.register(fd, _RDHUP | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _peek_hung_up(fd: int) -> bool:
    """Whether socket ``fd`` reads as ended (its peer closed, shut down its side, or reset it) where
    nothing is waiting to be read before the end: a non-blocking ``recv`` with ``MSG_PEEK`` (which
    takes nothing; on a TLS connection it sees ciphertext, which is enough to tell the end)."""
    sock = socket.socket(fileno=fd)
    try:
        return sock.recv(1, socket.MSG_PEEK | _DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:  # reset
        return True
    finally:
        sock.detach()


def hung_up(transport: asyncio.BaseTransport) -> bool:
    """Whether the client at the other end of ``transport`` (TCP, unix socket, or TLS over either: the
    socket under it) has hung up though the event loop has not read that yet. Where the platform has
    POLLRDHUP (Linux), one ``poll`` call; elsewhere a ``MSG_PEEK`` read, which misses an end of input
    behind unread data (the loop reads both, and the waiter is dropped then)."""
    sock = transport.get_extra_info("socket")
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:
        return False
    return _hung_up(fd)


_hung_up = _poll_hung_up if _RDHUP else _peek_hung_up


class Block:
    """What a blocking command returns when it found nothing: what to wait for and how to retry."""

    __slots__ = (
        "args",
        "attempt",
        "by_server",
        "counted",
        "keys",
        "made",
        "pushes",
        "timed_out",
        "timeout",
        "timer",
    )

    def __init__(
        self,
        keys: list[bytes],
        timeout: float,
        attempt: Callable[[], Any],
        pushes: list[bytes] | None = None,
        timed_out: Any = TIMED_OUT,
        by_server: bool = False,
    ) -> None:
        self.keys = keys
        #: The server's own work answers it (a CONFIG SET reading TLS files in a thread: see
        #: kv_backend.server.tlsreload.Changes), not data: no key, no timeout, no CLIENT UNBLOCK.
        self.by_server = by_server
        #: Keys the command adds an element to when it is served (BLMOVE's destination).
        self.pushes = pushes or []
        #: Seconds to wait; 0 waits for ever.
        self.timeout = timeout
        #: Tries the command again: returns its reply, or None while there is still nothing.
        self.attempt = attempt
        self.timer: asyncio.TimerHandle | None = None
        #: What the client gets when the wait ends without data (timeout, CLIENT UNBLOCK ... TIMEOUT).
        self.timed_out = timed_out
        #: The blocked command (set by the server), whose keyspace events are published when served.
        self.args: list[bytes] | None = None
        #: The blocked write command's name (set by the server), for INFO's rdb_changes_since_last_save
        #: when it is served (bgsave.served).
        self.counted: bytes | None = None
        #: The consumers a blocked XREADGROUP made (bgsave.count_served counts them once it is served).
        self.made = 0


class Waiters:
    """The blocked clients of one server, by key, in arrival order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.by_key: dict[bytes, list[Connection]] = {}
        #: Keys written since the waiters were last served (only keys someone waits on).
        self.ready: set[bytes] = set()
        self._token: int | None = None
        self._poll: asyncio.TimerHandle | None = None
        self._polls = 0

    def __len__(self) -> int:
        """How many clients are blocked."""
        return len({id(c) for conns in self.by_key.values() for c in conns})

    def with_timeout(self) -> int:
        """How many blocked clients wait with a timeout (INFO's clients_in_timeout_table, as Redis's)."""
        return len(
            {id(c) for conns in self.by_key.values() for c in conns if c.blocked and c.blocked.timeout > 0}
        )

    def block(self, conn: Connection, blk: Block) -> None:
        """Park ``conn`` until one of ``blk.keys`` may have data or the timeout passes (``by_server``:
        until the server's own work answers it)."""
        conn.blocked = blk
        if blk.by_server:
            return
        for key in dict.fromkeys(blk.keys):
            self.by_key.setdefault(key, []).append(conn)
        loop = asyncio.get_running_loop()
        if blk.timeout > 0:
            blk.timer = loop.call_later(blk.timeout, self._time_out, conn, blk)
        if self._poll is None:
            self._token = self.server.db.change_token()
            self._poll = loop.call_later(POLL_INTERVAL, self._check_others)

    def unblock(self, conn: Connection) -> Block | None:
        """Take ``conn`` off every key it waits on; return what it waited for (None: it was not blocked)."""
        blk = conn.blocked
        if blk is None:
            return None
        conn.blocked = None
        if blk.timer is not None:
            blk.timer.cancel()
            blk.timer = None
        for key in dict.fromkeys(blk.keys):
            conns = self.by_key.get(key)
            if conns is not None:
                if conn in conns:
                    conns.remove(conn)
                if not conns:
                    del self.by_key[key]
                    self.ready.discard(key)
        return blk

    def signal(self, keys: list[bytes] | None) -> None:
        """Note that ``keys`` (None: any key) were written, so their waiters are tried at :meth:`serve`."""
        if keys is None:
            self.ready.update(self.by_key)
        else:
            by_key = self.by_key
            self.ready.update(k for k in keys if k in by_key)

    def serve(self) -> None:
        """Try the waiters of every signalled key, oldest first, while their keys have data.

        The caller holds the store's write lock, or this takes it. A served
        waiter's own writes (BLMOVE pushes) signal further keys, served in the
        same call.
        """
        if not self.ready or self.server.busy is not None:  # none in the middle of a script
            return
        try:
            self._serve_locked()
        except WouldWait:  # another process holds the store's write lock: the next poll tries again
            pass

    def _serve_locked(self) -> None:
        with self.server.db.locked():
            while self.ready:
                key = self.ready.pop()
                for conn in list(self.by_key.get(key, ())):
                    blk = conn.blocked
                    if blk is None:
                        continue
                    transport = conn.transport
                    if transport is None or transport.is_closing():
                        # being closed (a pub/sub backlog over the limit; its end of input read, its
                        # connection_lost not yet run): what it popped could not reach it, and would be lost
                        self.unblock(conn)
                        continue
                    if hung_up(transport):
                        # its end of input arrived, unread (the loop was held): closed as at that end
                        conn.close_now(transport)
                        continue
                    reply = conn.attempt(blk)
                    if reply is None:
                        if META + key in self.server.db:
                            # data this waiter does not take (a list for a BZPOPMIN, a stream with
                            # nothing new for its ID): a later waiter may take it
                            continue
                        break  # the key has no data (left): the later waiters would find none either
                    self.unblock(conn)
                    server = self.server
                    if blk.counted is not None:
                        bgsave.count_served(server, blk.counted, reply, blk.made)
                    if server.watchers:
                        server.touch(_changed(blk, reply))
                    self.signal(blk.pushes)  # a moved element may serve the next waiter at once
                    if server.notify_flags and blk.args is not None:
                        server.notifier.served(blk.args, reply)
                    conn.resume(reply)

    def _time_out(self, conn: Connection, blk: Block) -> None:
        if conn.blocked is blk:
            self.unblock(conn)
            conn.resume(blk.timed_out)

    def _check_others(self) -> None:
        """Serve every waiter when another process wrote to the store since the last look."""
        self._poll = None
        if not self.by_key:
            return
        try:
            self._polls += 1
            if self._polls % EXPIRE_EVERY == 0:
                self._expire_waited()
            token = self.server.db.change_token()
            if token != self._token:
                self._token = token
                self.ready.update(self.by_key)
            # (also those the store's write lock held up: see serve). While another process holds the
            # lock, one try says so, where serve's no-wait acquire would try for up to a millisecond
            if self.ready and self.server.db._lock.is_free():
                self.serve()
        except WouldWait:  # another process holds the store's write lock: next time
            pass
        except Exception as exc:  # the store is unusable: the waiters time out; the loop must go on
            self.server.log(f"cannot serve blocked clients: {exc!r}")
        self._poll = asyncio.get_running_loop().call_later(POLL_INTERVAL, self._check_others)

    def _expire_waited(self) -> None:
        """Delete the keys clients wait on that expired, as Redis's active expiry would, and serve
        their waiters: a client blocked in XREADGROUP on a stream that expires is told it is gone
        (it waited for ever, since an expired key changes nothing in the store until deleted)."""
        gone = self.server.notifier.remove_expired(list(self.by_key))
        if gone:
            self.signal(gone)
            self.serve()

    def close(self) -> None:
        """Cancel every timer (the server is stopping)."""
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        for conns in list(self.by_key.values()):
            for conn in list(conns):
                self.unblock(conn)


def _changed(blk: Block, reply: Any) -> list[bytes]:
    """The keys a served waiter changed, which its watchers' EXEC must see, as Redis signals them:
    BLMOVE/BRPOPLPUSH both of theirs, a pop (BLPOP, BZMPOP...) the key its reply starts with, not
    the other keys it waited on, and XREAD/XREADGROUP none."""
    if blk.pushes:
        return blk.keys + blk.pushes
    if type(reply) is list and reply and type(reply[0]) is bytes:
        return reply[:1]
    return []
