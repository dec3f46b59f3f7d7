"""The timer that keeps ``sync=<seconds>``'s promise when a store goes idle.

Under ``sync=<seconds>`` a write fsyncs the active file on its own path once the store's last fsync (by
any of its processes: the ``last_sync`` word of the state page) is at least that old; a write that comes
sooner returns without one. The first such write arms this timer, which fsyncs the active file about
that many seconds after the last fsync, unless an fsync that began after the latest such write (another
write's, a ``sync()``, another process's) made it durable meanwhile. A write that returned is so on disk
within about the interval even when nothing follows it, as Redis's ``appendfsync everysec`` promises.

One daemon thread per :class:`~kv_backend.db.DB` handle at most, started by its first write that needs
it, sleeping on a condition until the due time; it takes no lock a writer waits for, and fsyncs outside
its own. ``close()`` stops and joins it after its own fsync; a forked child starts its own at its first
such write.

A failed fsync is logged on the ``kv_backend.db`` logger, never raised in the thread, and recorded on
the handle (``failure``): writes acknowledged before it may not be on disk, so, as Redis refuses writes
with ``-MISCONF`` after a failed background fsync, each write of the handle first fsyncs the active
file itself, and is refused (:class:`~kv_backend.errors.SyncFailedError`, nothing written) where that
fails too. Any fsync of the handle that succeeds clears the record (a write's, ``sync()``'s, or this
timer's, which tries again about every interval while it is recorded). The record is this handle's
alone: other handles and processes find the failure through their own fsyncs, and a forked child
starts without it.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Literal

from kv_backend import db_common
from kv_backend.errors import StorageError, SyncFailedError
from kv_backend.lazy import log_warning
from kv_backend.threads import start_daemon_thread

if TYPE_CHECKING:
    from kv_backend.db_write import _Writing

#: How late after its due time the timer fsyncs: this share of the interval, at most ``_SLACK_MAX``
#: seconds. In a busy store the next write fsyncs on its own path within it, and the timers of every
#: process, all due at the same moment, find that fsync done and do nothing (due at the very moment, each
#: process fsynced).
_SLACK_SHARE = 0.1
_SLACK_MAX = 0.05

_LOGGER = "kv_backend.db"

#: While the timer's retries keep failing, their warning is logged at most this often (seconds): the
#: first failure is always logged, and the retries, one an interval, would flood the log.
_RETRY_LOG_EVERY = 60.0


class SyncTimer:
    """The fsync timer of one DB handle, and its ``sync`` setting (``mode``, as given).

    ``due`` (wall-clock seconds; 0.0: none pending) is what a write's path reads, without a lock: a
    write that returns unsynced sets ``written`` (when it wrote) and arms the timer only if ``due`` is
    0.0. The rest is read and changed under ``cond``.
    """

    __slots__ = ("cond", "delay", "due", "failure", "logged", "mode", "since", "stopped", "thread", "written")

    def __init__(self, mode: Literal["never", "always"] | float, interval: float | None) -> None:
        self.mode = mode
        #: How long after the last fsync the timer fsyncs (None: no timer for this ``sync``).
        self.delay = interval + min(interval * _SLACK_SHARE, _SLACK_MAX) if interval else None
        self.due = 0.0
        #: When the latest write that returned unsynced wrote (``_time()`` after its ``pwrite``).
        self.written = 0.0
        #: The last fsync's time as the timer last saw it: ``due`` is ``since + delay``.
        self.since = 0.0
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.stopped = False
        #: A failed fsync of this timer not followed by one of the handle that succeeded: (when the
        #: first of them failed, a UNIX time; the latest one's error), a new tuple at each failure.
        #: Read without a lock by every write; set and cleared under ``cond``.
        self.failure: tuple[float, OSError] | None = None
        #: When the warning of a failed fsync was last logged.
        self.logged = 0.0

    def record_failure(self, when: float, exc: OSError) -> bool:
        """Note that the timer's fsync failed at ``when``, and try again about an interval later;
        whether to log it (the first failure, then a retry's at most every ``_RETRY_LOG_EVERY``)."""
        with self.cond:
            first = self.failure
            self.failure = (when if first is None else first[0], exc)
            # (Only a thread of its own waits for ``due``: one set without it would be taken by a write
            # for an fsync to come, see arm().)
            if not self.stopped and self.delay is not None and not self.due and self.thread is not None:
                self.due = when + self.delay
                self.cond.notify()
            if first is None or not 0 <= when - self.logged < _RETRY_LOG_EVERY:
                self.logged = when
                return True
            return False

    def clear_failure(self, seen: tuple[float, OSError]) -> bool:
        """An fsync that began while ``seen`` was the recorded failure succeeded: forget it (not a
        failure recorded since, which that fsync may have begun before); whether it was forgotten."""
        with self.cond:
            if self.failure is not seen:
                return False
            self.failure = None
            return True

    def arm(self, db: _Writing, since: float) -> bool:
        """Make sure an fsync comes ``delay`` after ``since`` (the last fsync a write that returned
        unsynced saw); True if one will, False if none can (closed, or no thread can be started: the
        write then fsyncs on its own path)."""
        if sys.is_finalizing():
            return False  # (see stop(); nor can a thread be started)
        with self.cond:
            if self.stopped or self.delay is None:
                return False
            if self.due:
                return True  # (armed by another thread meanwhile)
            self.since = since
            self.due = since + self.delay
            if self.thread is not None:
                self.cond.notify()
                return True
            try:
                self.thread = start_daemon_thread(
                    _run, f"kv_backend sync timer {db.path}", (weakref.ref(db, self._dropped), self)
                )
            except RuntimeError:  # no thread can be started (at interpreter exit, or out of threads)
                self.due = 0.0
                return False
            return True

    def _dropped(self, _ref: object) -> None:
        """The DB was garbage-collected: its thread ends (``__del__`` closed it, which stops it too)."""
        self.stop(join=False)

    def stop(self, join: bool = True) -> None:
        """End the thread (for good: nothing arms it again), and wait for it unless called in it."""
        if sys.is_finalizing():
            # A __del__ closing the DB at the interpreter's exit: daemon threads run no more, and this
            # one may have been stopped holding ``cond`` (it took the lock, then found no interpreter
            # to run in): neither taken nor waited for.
            self.stopped = True
            self.due = 0.0
            return
        with self.cond:
            self.stopped = True
            self.due = 0.0
            self.cond.notify_all()
        thread = self.thread
        if join and thread is not None and thread is not threading.current_thread():
            thread.join()

    def after_fork_in_child(self) -> None:
        """Forget the parent's thread (the child has none) and its pending fsync (the parent's timer
        makes it): the child's first write that returns unsynced starts its own."""
        self.cond = threading.Condition()  # (the parent's thread may have held it at the fork)
        self.thread = None
        self.due = self.written = self.since = 0.0
        self.failure = None  # (the parent's: its writes go on being refused there, not here)

    def _wait(self) -> bool:
        """Wait (``cond`` held) until an fsync is due; False once stopped."""
        delay = self.delay
        assert delay is not None
        while not self.stopped:
            due = self.due
            if not due:
                self.cond.wait()
                continue
            left = due - db_common._time()
            if left <= 0 or left > delay:  # (more than the delay ahead: the clock was set back)
                return True
            self.cond.wait(left)
        return False

    def _decide(self, db: _Writing) -> float | None:
        """Whether to fsync now (``cond`` held): the time the fsync begins at, or None.

        ``due`` goes to 0.0 first: a write that comes from now on arms the timer again.
        """
        self.due = 0.0
        st = db._state
        if st is None:
            return None
        if self.failure is not None:
            return db_common._time()  # a retry: only an fsync of this handle clears the record
        try:
            last = st.last_sync.value
        except AttributeError:  # closed meanwhile (its page with it): close() fsynced what it wrote
            return None
        now = db_common._time()
        if self.written <= last <= now:  # (later than now: the clock was set back, nothing is known)
            return None  # an fsync began after the latest unsynced write: it is durable
        if last != self.since:
            # An fsync began since the timer was armed, but before the latest unsynced write: that write
            # is due an interval after that fsync (it saw it, or came after it began).
            self.since = last
            self.due = last + (self.delay or 0.0)
            return None
        return now


def _run(ref: weakref.ReferenceType[_Writing], timer: SyncTimer) -> None:
    """The timer's thread: fsync each time writes are due, until stopped or the DB is gone."""
    while True:
        with timer.cond:
            if not timer._wait():
                return
            db = ref()
            if db is None:
                return
            began = timer._decide(db)
        if began is not None:
            _fsync(db, began)
        del db  # (not under ``cond``: a __del__ of the DB, run here, closes it and stops this thread)


def _fsync(db: _Writing, began: float) -> None:
    """fsync the active file as a write's path does, outside every lock, and mark the shared
    ``last_sync``; a failure is logged and recorded (never raised in this thread)."""
    try:
        db._fsync_active()
        st = db._state
        if st is not None:
            st.last_sync.value = began
    except Exception as exc:
        if db._closed:
            return  # closed meanwhile: close() fsynced what this handle wrote
        if isinstance(exc, OSError):
            failed_fsync(db, db_common._time(), exc, "the sync timer of")
        else:  # (not an fsync's failure: logged, and not recorded)
            log_warning(_LOGGER, "the sync timer of %s could not fsync (%s)", db.path, exc)


def failed_fsync(db: _Writing, when: float, exc: OSError, by: str) -> None:
    """Record that an fsync of ``db`` failed at ``when`` (``exc``; made ``by`` "the sync timer of", "a
    write to" or "sync() of" the store), so that its writes are refused until one succeeds, and log it
    (the first failure, then at most every ``_RETRY_LOG_EVERY`` seconds while they go on failing)."""
    syncer = db._syncer
    if not syncer.record_failure(when, exc):
        return  # (a retry that failed again, logged less often)
    retry = f", or this timer's, which tries again every {syncer.delay:.3g} s" if syncer.thread else ""
    log_warning(
        _LOGGER,
        "%s could not fsync (%s): the writes since the last fsync may not be on disk; its writes are "
        "refused until an fsync succeeds (sync(), a write's own%s)",
        f"{by} {db.path}",
        exc,
        retry,
    )


def recovered(db: _Writing, failure: tuple[float, OSError]) -> None:
    """Log that an fsync of ``db`` succeeded after its timer's failed (``failure``)."""
    log_warning(
        _LOGGER,
        "the store at %s was fsynced again after the failed fsync of its sync timer (at %s): its writes are "
        "accepted again; writes made before that failure may still be lost (see docs/engine.md)",
        db.path,
        _stamp(failure[0]),
    )


def _stamp(when: float) -> str:
    """``when`` (a UNIX time) as a UTC date and time, to the millisecond."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d} UTC"


def refused(path: str, interval: float, failure: tuple[float, OSError], exc: StorageError) -> SyncFailedError:
    """The error of a write to the store at ``path`` (``sync=interval``) refused after the timer's fsync
    failed (``failure``), the write's own fsync having failed too (``exc``)."""
    when, cause = failure
    reason = os.strerror(cause.errno) if cause.errno else str(cause)
    stamp = _stamp(when)
    retry = f"the sync timer tries the fsync again every {interval:g} s, and " if interval else ""
    advice = (
        f"check the disk: free space on its filesystem, I/O errors in the kernel log (dmesg, journalctl "
        f"-k), then `kvb check {path}`; {retry}sync() or the next write tries it again"
    )
    again = str(exc.strerror or exc).rstrip(".")
    err = SyncFailedError(
        exc.errno or errno.EIO,
        f"write refused: an fsync of the store at {path} failed at {stamp} ({reason}), so writes made before "
        "it may not be on disk, and writes are refused until an fsync succeeds; this write's own fsync "
        f"failed too ({again}), so nothing was written. To do: {advice}",
    )
    err.failed_at = when
    err.reason = reason
    err.advice = advice
    return err
