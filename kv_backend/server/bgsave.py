"""BGSAVE in the background, as redis-server saves in a child process.

kvb serve's BGSAVE fsyncs the store (:meth:`kv_backend.DB.sync`): every write is in the store's log
before it is answered, and the fsync makes what was written so far survive a power loss. The fsync
runs in a daemon thread, one at a time, so that a stalled disk or a slow network file system holds
up no client: the reply (``Background saving started``) is sent at once, and LASTSAVE and INFO's
persistence fields change when the fsync ends, on the event loop, as redis-server's do when its
child exits. ``DB.sync()`` is made to run beside the loop's own writes (a rotation meanwhile is
fsynced by the file's name) and a ``close()`` (a sync overtaken by it fails, and the close fsyncs
anyway): a server stopping meanwhile does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from kv_backend.threads import start_daemon_thread

if TYPE_CHECKING:
    from kv_backend.server.resp import Server


class BackgroundSaves:
    """The server's BGSAVEs: the one running, if any, one scheduled after it, and what INFO shows."""

    def __init__(self, server: Server) -> None:
        self.server = server
        #: When the running BGSAVE began (time.time()), None while none runs.
        self.started: float | None = None
        #: A BGSAVE (inside EXEC) to begin once the running one has ended (or at the loop's next turn).
        self.scheduled = False
        #: LASTSAVE: when the last SAVE or BGSAVE that succeeded ended (at first: the server's start).
        self.last_save_time = int(time.time())
        #: Whether the last BGSAVE (or SAVE) succeeded; the seconds the last BGSAVE took (-1: none yet).
        self.last_ok = True
        self.last_seconds = -1
        #: INFO's rdb_saves: SAVEs and BGSAVEs begun (CONFIG RESETSTAT zeroes it).
        self.saves = 0

    @property
    def running(self) -> bool:
        return self.started is not None

    def start(self) -> bool:
        """Begin a BGSAVE (none runs): fsync the store in a daemon thread; :meth:`_ended` on the loop.
        False if the thread cannot be started (Python's "can't start new thread": a limit on the
        process's tasks, no memory for its stack), as redis-server's fork fails: logged, and shown
        as ``rdb_last_bgsave_status:err``, nothing left in progress."""
        loop = asyncio.get_running_loop()
        db = self.server.db
        self.started = time.time()
        self.saves += 1

        def run() -> None:
            error: Exception | None = None
            try:
                db.sync()
            except Exception as exc:  # (reported on the loop, as Redis reports a failed bgsave)
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped meanwhile
                loop.call_soon_threadsafe(self._ended, error)

        try:
            start_daemon_thread(run, "kvb-bgsave")
        except RuntimeError as exc:
            self.started = None
            self.last_ok = False
            self.server.log(f"background saving error: cannot start its thread: {exc}")
            return False
        self.server.log("background saving started (an fsync of the store)")
        return True

    def schedule(self) -> None:
        """BGSAVE inside EXEC: begin one once the loop runs again (after the running one, if any)."""
        if not self.scheduled:
            self.scheduled = True
            if not self.running:
                asyncio.get_running_loop().call_soon(self._start_scheduled)

    def _start_scheduled(self) -> None:
        if self.scheduled and not self.running and not self.server.stops:
            self.scheduled = False
            self.start()

    def _ended(self, error: Exception | None) -> None:
        """The BGSAVE's fsync ended (on the loop): LASTSAVE and INFO's fields say so."""
        now = time.time()
        started, self.started = self.started, None
        self.last_seconds = int(now) - int(started if started is not None else now)  # (as Redis: seconds)
        self.last_ok = error is None
        if error is None:
            self.last_save_time = int(now)
            self.server.log("background saving terminated with success")
        else:
            self.server.log(f"background saving error: cannot fsync the store {self.server.path}: {error}")
        if self.scheduled:
            self._start_scheduled()

    def saved(self) -> None:
        """SAVE succeeded (its fsync ran on the loop)."""
        self.saves += 1
        self.last_ok = True
        self.last_save_time = int(time.time())

    def info_lines(self) -> list[str]:
        """INFO persistence's rdb_* fields, as redis-server 7.0 writes them (kvb's store changes are
        all in its log when answered: none is waiting for a save)."""
        started = self.started
        return [
            "rdb_changes_since_last_save:0",
            f"rdb_bgsave_in_progress:{int(started is not None)}",
            f"rdb_last_save_time:{self.last_save_time}",
            f"rdb_last_bgsave_status:{'ok' if self.last_ok else 'err'}",
            f"rdb_last_bgsave_time_sec:{self.last_seconds}",
            f"rdb_current_bgsave_time_sec:{-1 if started is None else int(time.time()) - int(started)}",
            f"rdb_saves:{self.saves}",
        ]
