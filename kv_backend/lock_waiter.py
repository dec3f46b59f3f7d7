"""A wait for a store's write lock that its thread may give up: ``kvb http``'s writes, which wait at
most ``--lock-timeout`` seconds (see :func:`kv_backend.locking.waiting_until`).

A blocking ``flock`` cannot end at a deadline, and polling with non-blocking tries is no substitute:
the kernel hands a released lock to the processes sleeping in ``flock``, and a busy writer that takes
the lock again at once leaves a poller hardly any moment to find it free (measured: 32 of 40 HTTP
writes gave up against a process writing in a loop, where blocking writes all went through in 1.5 s).
So the blocking ``flock`` is made by a daemon thread on an open file description of its own
(:class:`LockWaiter`), queued with the other processes' waiters; the thread that wants the lock waits
for it until its deadline. If the lock comes in time, that description becomes the lock's (``dup2``
onto the lock's descriptor, which then holds the lock); if not, the waiter stays queued for the
store's next write that waits, and once it gets the lock with nobody waiting for it, it lets the lock
go at once (closing its description). One waiter per lock at a time: a lock held for hours costs one
thread and one descriptor, whatever the number of writes that gave up.
"""

from __future__ import annotations

import fcntl
import os
import threading

#: Waiters whose descriptor is open, so that a forked child closes its copies of them (it has not
#: their threads: a copy of a description that gets the lock would hold it for as long as the child
#: lives). Added and removed, and their descriptors closed, under ``_GUARD``, which a fork waits for.
_OPEN: set[LockWaiter] = set()
_GUARD = threading.Lock()


def _before_fork() -> None:
    _GUARD.acquire()


def _after_fork_in_parent() -> None:
    _GUARD.release()


def _after_fork_in_child() -> None:
    global _GUARD
    for waiter in _OPEN:
        os.close(waiter.fd)
    _OPEN.clear()
    _GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


class LockWaiter:
    """A blocking ``flock`` of a lock file on a description of its own, made by a daemon thread."""

    def __init__(self, path: str, flags: int) -> None:
        with _GUARD:
            self.fd = os.open(path, flags | os.O_CLOEXEC)
            _OPEN.add(self)
        self._state = threading.Lock()
        self.done = threading.Event()
        self.waiting = False  # a thread waits for the lock now (else the waiter lets it go)
        self.granted = False  # it got the lock for the thread waiting: that thread takes its fd
        self.error: OSError | None = None
        try:
            threading.Thread(target=self._run, name="kvb-lock-waiter", daemon=True).start()
        except BaseException:  # (no thread to be had: nothing will use the descriptor)
            self.close()
            raise

    def _run(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            self.error = exc
        with self._state:
            self.granted = self.waiting and self.error is None
            self.done.set()
        if not self.granted:
            self.close()  # (nobody wants the lock now: closing the description releases it)

    @property
    def spent(self) -> bool:
        """Whether it ended without giving the lock to anybody (a new waiter is needed)."""
        return self.done.is_set() and not self.granted

    def wait(self, seconds: float) -> bool | None:
        """Wait up to ``seconds`` for the lock: True if it came (then the caller owns :attr:`fd`),
        False if not (or :attr:`error`), None if the waiter had already ended, having let the lock go
        with nobody waiting for it (the caller needs a new one)."""
        with self._state:
            if self.done.is_set():
                return None if self.error is None else False
            self.waiting = True
        try:
            self.done.wait(max(seconds, 0.0))
        except BaseException:  # (interrupted: a lock got for a thread that leaves is let go)
            if self._stop_waiting():
                self.close()
            raise
        return self._stop_waiting()

    def _stop_waiting(self) -> bool:
        with self._state:
            self.waiting = False
            return self.granted

    def take_into(self, fd: int) -> None:
        """Make ``fd`` (the lock's descriptor) refer to this waiter's description, which holds the lock."""
        os.dup2(self.fd, fd, inheritable=False)
        self.close()

    def close(self) -> None:
        with _GUARD:
            if self in _OPEN:
                _OPEN.discard(self)
                os.close(self.fd)
