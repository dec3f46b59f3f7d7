"""``kvb serve --appendfsync always``: group commit, as redis-server's.

The store is opened with the engine's ``sync="never"``, and the server makes the fsyncs: every byte
the server would send a client (replies, pub/sub messages, MONITOR lines, tracking pushes) and every
close it makes is held while this handle's writes are not yet fsynced. Once per event-loop turn,
after the commands of that turn have run, :class:`GroupCommit` fsyncs what the handle wrote, then
sends the held bytes in their order and makes the held closes: one fsync for all the writes of a
turn, and no reply, not even a read's, leaves before the writes it may have seen are on disk (Redis
fsyncs its append-only file in ``beforeSleep``, before it answers the clients).

While nothing is written and not yet fsynced, bytes go out at once (a read-only workload pays one
test per reply). If the fsync fails, the connections given held bytes that turn are closed without
them (the client sees a dropped connection: the outcome of its commands unknown, as after a crash),
and the failure is recorded on the handle: its writes are refused (``-MISCONF``) until an fsync
succeeds (see :func:`kv_backend.sync_timer.failed_fsync`).
"""

from __future__ import annotations

import asyncio
import errno
import time
from typing import TYPE_CHECKING, Any

from kv_backend.errors import KVError, StorageError
from kv_backend.sync_timer import failed_fsync

if TYPE_CHECKING:
    from kv_backend.server.resp import Server

__all__ = ["GroupCommit", "HeldTransport", "inner"]


class GroupCommit:
    """A server's held output and its one commit per event-loop turn (see the module's docstring)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        #: What waits for the commit, in order: (transport, bytes), or (transport, None) for a close.
        self.held: list[tuple[HeldTransport, bytes | None]] = []
        #: The commit is scheduled (some output is held this turn).
        self.scheduled = False
        #: How many times a commit fsynced (for tests and benchmarks).
        self.fsyncs = 0
        #: While a script runs long (kv_backend.server.busy): output goes out at once, as Redis
        #: answers then without an fsync (BUSY, SCRIPT KILL..., nothing the script wrote).
        self.bypass = False

    def holding(self) -> bool:
        """Whether output must wait for the commit: some is held already (its order is kept), the
        handle wrote what is not fsynced yet, or a BGSAVE's fsync runs (it clears the handle's marks
        of unsynced writes before it ends)."""
        if self.scheduled:
            return True
        server = self.server
        if self.bypass:
            return False
        if server.loading:
            return False
        db = server.db
        if db._syncer.failure is not None:
            return False  # writes are refused (MISCONF) until an fsync succeeds: nothing to wait for
        return db._has_unsynced() or server.bgsaves.running

    def hold(self, transport: HeldTransport, data: bytes | None) -> None:
        """Keep ``data`` (None: a close) for ``transport`` until the commit."""
        self.held.append((transport, data))
        if data is not None:
            transport.held_bytes += len(data)
        if not self.scheduled:
            self.scheduled = True
            # After the other callbacks ready in this turn (those that run commands among them):
            # asyncio's and uvloop's loops run only the callbacks that were ready when the turn
            # began, so this one runs at the next turn, first of the callbacks made ready meanwhile.
            asyncio.get_running_loop().call_soon(self.commit)

    def script_runs_long(self, running: bool) -> None:
        """A script runs long (``running``: other clients are served, answered BUSY, until it ends)
        or has ended. First, what is held is committed (fsynced and sent): nothing sent meanwhile
        may overtake it. Then output goes out unheld until the script ends."""
        if running:
            self.commit()
        self.bypass = running

    def after_commands(self) -> None:
        """The commands of this turn have run: have the commit fsync their writes this turn, also
        those that sent nothing (under CLIENT REPLY OFF, say), as Redis fsyncs before it sleeps."""
        if not self.scheduled and self.holding():
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.commit)

    def commit(self) -> None:
        """fsync what the handle wrote, then send what was held and make the held closes; if the
        fsync fails, close the connections given held bytes instead (see the module's docstring)."""
        self.scheduled = False
        held, self.held = self.held, []
        try:
            self.sync()
        except (KVError, OSError) as exc:
            self._failed(held, exc)
            return
        for transport, data in held:
            transport.held_bytes = 0
            if transport.dropped:
                continue  # (aborted meanwhile: a server that stops drops what slow clients left)
            if data is None:
                transport.inner.close()
            else:
                transport.inner.write(data)

    def sync(self) -> None:
        """fsync the files the handle wrote to since it last did (nothing if none), the active
        file too while a BGSAVE's fsync runs (that fsync may not have ended)."""
        server = self.server
        if server.loading:
            return
        db = server.db
        if db._closed:
            return  # (close() fsynced)
        if server.bgsaves.running or db._syncer.failure is not None:
            db._fsync_active()  # (one that succeeds clears a recorded failure: writes are taken again)
            self.fsyncs += 1
        if db._has_unsynced():
            db._sync_written()
            self.fsyncs += 1

    def record_failure(self, exc: BaseException, by: str) -> None:
        """Record on the handle that an fsync of the store failed (the commit's, ``by`` it, or a
        SAVE's or BGSAVE's), and log it: its writes are refused (MISCONF) until one succeeds."""
        db = self.server.db
        if not db._closed:
            failed_fsync(db, time.time(), _cause(exc), by)

    def _failed(self, held: list[tuple[HeldTransport, bytes | None]], exc: Exception) -> None:
        """The commit's fsync failed: drop the connections given held bytes, record and log it."""
        server = self.server
        dropped: dict[int, HeldTransport] = {}
        for transport, _ in held:
            transport.held_bytes = 0
            dropped[id(transport)] = transport
        for transport in dropped.values():
            transport.dropped = True
            transport.inner.abort()
        self.record_failure(exc, "the group commit of")
        server.log(
            f"cannot fsync the store {server.path}: {exc}; {len(dropped)} connection(s) closed without "
            "the replies that fsync covered, and writes are refused (MISCONF) until an fsync succeeds"
        )


class HeldTransport:
    """A connection's transport whose writes and close wait for the server's commit while it holds
    output (:meth:`GroupCommit.holding`); everything else is the transport's own."""

    def __init__(self, transport: Any, commit: GroupCommit) -> None:
        self.inner = transport
        self._commit = commit
        self._closing = False
        #: Aborted (by a failed commit, or a server that stops): nothing more is sent.
        self.dropped = False
        #: Bytes of its writes held now (counted as unsent: CLIENT LIST, the pub/sub backlog limit).
        self.held_bytes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, data: Any) -> None:
        if self._closing or self.dropped:
            return
        commit = self._commit
        if commit.holding():
            commit.hold(self, bytes(data))
        else:
            self.inner.write(data)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self.dropped:
            return
        commit = self._commit
        if commit.holding():
            commit.hold(self, None)
        else:
            self.inner.close()

    def abort(self) -> None:
        self._closing = self.dropped = True
        self.inner.abort()

    def is_closing(self) -> bool:
        return self._closing or self.dropped or bool(self.inner.is_closing())

    def get_write_buffer_size(self) -> int:
        return int(self.inner.get_write_buffer_size()) + self.held_bytes


def inner(transport: Any) -> Any:
    """The transport under a :class:`HeldTransport` (any other: itself)."""
    return transport.inner if isinstance(transport, HeldTransport) else transport


def _cause(exc: BaseException) -> OSError:
    """``exc`` as the OSError a failed fsync is recorded with."""
    return exc if isinstance(exc, OSError) else StorageError(errno.EIO, str(exc))
