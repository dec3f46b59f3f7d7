"""The cross-process write lock: ``flock`` paired with a thread lock.

``flock`` locks belong to an open file description, so two threads sharing
the fd would both "hold" it and a forked child would share its parent's
lock. :class:`WriteLock` therefore pairs the file lock with a re-entrant
thread lock, counts nesting so that only the outermost ``acquire`` takes the
``flock``, and reopens the lock file in a child after ``fork()``.

A process killed while holding the lock releases it: the kernel closes its
fds. No lock files with pids are used. NFS does not give these guarantees;
keep stores on a local filesystem.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator

from kv_backend.errors import DatabaseClosedError, KVError, LockTimeoutError, StorageError, TransactionError
from kv_backend.files import new_file_mode, open_regular_in_store, still_at, storage_error
from kv_backend.lock_waiter import LockWaiter
from kv_backend.owners import (
    create_for_store_owner,
    give_to_store_owner,
    grant_store_mode,
    open_noting_creation,
    open_store_file,
)

_flock = fcntl.flock
_LOCK_EX_NB = fcntl.LOCK_EX | fcntl.LOCK_NB
_yield = getattr(os, "sched_yield", lambda: None)
#: Non-blocking retries of a contended write lock before sleeping in the kernel.
SPIN_TRIES = 200
#: How long (seconds) a thread that must not wait for the lock retries it (see WriteLock.no_wait_thread).
NO_WAIT_SPIN = 0.001
#: This process's write locks by lock file, so that a thread about to wait for a lock it already
#: holds through another DB object on the same store is told instead (see WriteLock._contended).
_LOCKS: dict[str, weakref.WeakSet[WriteLock]] = {}
_LOCKS_GUARD = threading.Lock()
#: ``.inside`` is True while this thread updates or reads ``_LOCKS`` under ``_LOCKS_GUARD``. The
#: cyclic garbage collector may run at any allocation there and call ``DB.__del__``, whose close()
#: unregisters its lock: waiting for the guard this very thread holds would hang for ever.
_registry_thread = threading.local()
#: ``.deadline`` (a time.monotonic() value, or None): when a contended acquire of any write lock in
#: this thread gives up with LockTimeoutError (see :func:`waiting_until`).
_wait_limit = threading.local()
#: One token per :func:`waiting_until` block open in any thread of this process. While there is none
#: (nearly always), an acquire neither reads nor clears ``_wait_limit``: a thread-local attribute is
#: looked up and set the slow, generic way, which was 4% of the instructions of a Store's set.
#: (A set of tokens: adding and discarding are atomic, whichever threads open and close blocks.)
_limits_open: set[object] = set()


def _new_guard_in_child() -> None:
    """Give a forked child its own registry guard: another thread of the parent may have held it
    at the fork (opening or closing a store), and the child, which has no such thread, would wait
    for it for ever at its next open, close or contended write."""
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_guard_in_child)


@contextlib.contextmanager
def _registry() -> Iterator[dict[str, weakref.WeakSet[WriteLock]]]:
    """Hold the registry's guard, noting that this thread is inside (see ``_registry_thread``).

    Noted before the guard is taken: setting it may allocate (the thread's first use), and a
    collection there must already find it set.
    """
    _registry_thread.inside = True
    try:
        with _LOCKS_GUARD:
            yield _LOCKS
    finally:
        _registry_thread.inside = False


def held_by_this_thread(path: str) -> bool:
    """Whether this thread holds the write lock whose lock file is ``path`` through a :class:`WriteLock` of
    this process (a ``flock`` of its own on that file would wait for this very thread for ever)."""
    with _registry() as locks:
        return any(lock.held and lock._fd >= 0 for lock in locks.get(path, ()))


@contextlib.contextmanager
def lock_file_taken(path: str, wait: float | None = None) -> Iterator[bool | None]:
    """Hold the write lock whose lock file is ``path`` for the block, through a descriptor of its own opened
    read-only (waited for), where this process may open that file; yield whether it is held. For a read
    that must not fall inside another process's locked step (a store id it is adding: see
    :func:`kv_backend.store_id.add_store_id`) by a process that holds no :class:`WriteLock` keeping writers
    out (a salvage, which only reads its source; a reader that found no lock file at its open). Where this
    thread holds it already through a :class:`WriteLock`, nothing is taken (True). Nothing is created or
    changed: no lock file, or a filesystem without ``flock``, yields None (no lock to take: no process can
    hold one). ``wait``: seconds to wait for the lock at most (tries without blocking, with short pauses),
    then False (another holds it); None waits as long as it is held. A lock file this process may not open
    (one of the store's owner that this user may not read; one that is no regular file) yields False at
    once: another process, its owner's, may hold it, and this one cannot tell."""
    if held_by_this_thread(path):
        yield True
        return
    try:
        fd = open_regular_in_store(path, os.O_RDONLY)  # (without waiting: a FIFO's open waits for a writer)
    except FileNotFoundError:
        yield None
        return
    except OSError:
        yield False
        return
    try:
        held: bool | None
        try:
            held = _flock_within(fd, wait)
        except OSError:
            held = None
        yield held
    finally:
        os.close(fd)  # (which lets the lock go)


def _flock_within(fd: int, wait: float | None) -> bool:
    """Take an exclusive ``flock`` on ``fd``: blocking (``wait`` None), else within ``wait`` seconds, trying
    without blocking with pauses of 1 ms doubling to 50 ms; whether it took."""
    if wait is None:
        _flock(fd, fcntl.LOCK_EX)
        return True
    deadline = time.monotonic() + wait
    pause = 0.001
    while True:
        try:
            _flock(fd, _LOCK_EX_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)


def _taken_after_yield(fd: int) -> bool:
    """One retry of a contended lock: give the CPU away, then a non-blocking ``flock``; whether it took."""
    _yield()
    try:
        _flock(fd, _LOCK_EX_NB)
    except BlockingIOError:
        return False
    return True


#: The deadline of :func:`waiting_until` that waits not at all: the first take of a write lock held
#: elsewhere raises LockTimeoutError at once, without the retries a contended take makes first, as does
#: one this thread holds from before the block (``kvb http``'s writes made on its event loop, which go
#: to a worker thread to wait instead).
NO_WAIT = 0.0


def may_not_wait() -> bool:
    """Whether this thread is in a ``waiting_until(NO_WAIT)`` block and has taken no write lock in it yet:
    then a call must not wait for anything (a transaction of another thread, a catch-up with other
    processes' writes) before it takes the lock, but raise :func:`would_wait` with nothing written."""
    return bool(_limits_open) and getattr(_wait_limit, "deadline", None) == NO_WAIT


def would_wait(store: str) -> LockTimeoutError:
    """The error of a call in a ``waiting_until(NO_WAIT)`` block that would have to wait (see
    :func:`may_not_wait`)."""
    return LockTimeoutError(
        f"the store at {store} must first be caught up with other writers, or a transaction of another "
        "thread must end, and this call may not wait (waiting_until(NO_WAIT)): nothing was written; "
        "make it where it may wait"
    )


def pending_deadline() -> float | None:
    """This thread's :func:`waiting_until` deadline while no take of a write lock has spent it yet, else None:
    how long a call may wait for something else before that take (another thread's transaction to end)."""
    return getattr(_wait_limit, "deadline", None) if _limits_open else None


@contextlib.contextmanager
def deadline_kept() -> Iterator[None]:
    """Give this thread's pending :func:`waiting_until` deadline back once the block has run: around a take
    of a write lock that writes nothing of the call (a catch-up's reload of a merged store), so that the
    call's own take, which comes later, still gives up at it."""
    deadline = pending_deadline()
    yield
    if deadline is not None:
        _wait_limit.deadline = deadline


def held_too_long(store: str) -> LockTimeoutError:
    """The error of a call whose :func:`waiting_until` deadline passed while the write lock of the store at
    ``store`` stayed held by another process or thread (nothing was written)."""
    return LockTimeoutError(
        f"the write lock of the store at {store} stayed held by another process or thread (a long "
        "transaction, a script running long on a kvb serve of the store) for as long as this call could "
        "wait for it: nothing was written; retry later"
    )


@contextlib.contextmanager
def waiting_until(deadline: float) -> Iterator[None]:
    """In this thread, make the first take of a write lock held elsewhere (another process, another
    thread) wait only until ``deadline`` (``time.monotonic()``), then raise LockTimeoutError:
    ``kvb http``'s writes, which must not hold a thread (and their client) for as long as a long
    transaction lasts. Nothing has been written when it is raised, as a write takes the lock before
    it writes; once taken, the lock is waited for as usual (a later take in the same call, once
    something may have been written, must not fail for a deadline).

    Blocks nest: an inner block's deadline holds inside it, and at its exit the outer one's is back,
    unless a take inside the inner block spent it (then the outer block's is spent too)."""
    token = object()
    outer = getattr(_wait_limit, "deadline", None)
    _limits_open.add(token)
    _wait_limit.deadline = deadline
    try:
        yield
    finally:
        _wait_limit.deadline = None if _wait_limit.deadline is None else outer
        _limits_open.discard(token)


#: What ``flock`` on a directory gives on a filesystem that has no locks on directories (some network and
#: FUSE filesystems): no open holds the in-use lock there, and a swap finds none held (see
#: :meth:`WriteLock.hold_directory`).
NO_DIRECTORY_LOCKS = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOLCK, errno.EINVAL, errno.EBADF, errno.ENOSYS}
)


def open_directory(store: str) -> int:
    """Open the store directory ``store`` read-only (close-on-exec), for a ``flock`` on it: the in-use
    lock of an open without a ``STATE`` page (see :meth:`WriteLock.hold_directory`). Raises
    StorageError, saying what to do, where it cannot be opened."""
    try:
        return os.open(store, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise storage_error(exc, f"cannot open the store directory {store}", reading=True) from exc


def directory_shared(store: str) -> int:
    """The store directory ``store`` open (see :func:`open_directory`) with a shared ``flock`` on it, waited
    for: the in-use lock of a process that reads the store without its ``STATE`` page (see
    :meth:`WriteLock.hold_directory`), held until the descriptor returned is closed. On a filesystem
    without locks on directories, open without one (a swap finds none held there either)."""
    fd = open_directory(store)
    try:
        _flock(fd, fcntl.LOCK_SH)
    except OSError as exc:
        if exc.errno not in NO_DIRECTORY_LOCKS:
            os.close(fd)
            raise storage_error(exc, f"cannot lock the store directory {store}") from exc
    except BaseException:
        os.close(fd)
        raise
    return fd


class WouldWait(BaseException):
    """Raised by a contended acquire in the thread a :class:`WriteLock` must not make wait (its
    ``no_wait_thread``: ``kvb serve``'s event loop, which serves its other clients meanwhile and
    runs the command again later). Nothing has been written when it is raised: the lock comes first.
    A BaseException, so that no ``except Exception`` on the way turns it into an error reply."""


class WriteLock:
    """Re-entrant exclusive lock shared by every thread and process of one store."""

    #: The thread (``threading.get_ident()``) whose acquire raises :class:`WouldWait` instead of
    #: waiting for another process or thread, after the usual non-blocking tries; None: every
    #: thread waits.
    no_wait_thread: int | None = None

    def __init__(self, path: str, *, create: bool) -> None:
        self.path = path
        self._create = create
        self._tlock = threading.RLock()
        self._depth = 0
        self._closed = False  # close() ran: a thread that takes the lock afterwards is told so
        #: The thread waiting in the kernel's queue for a thread that waits until a deadline, if any
        #: (see _wait_until); only the thread holding ``_tlock`` uses it.
        self._waiter: LockWaiter | None = None
        #: Times the process forked since the lock was made: a block entered before a fork
        #: holds nothing in the child (see :meth:`after_fork_in_child`).
        self.forks = 0
        #: The store directory, open read-only and share-locked, where the open holding this lock has no
        #: ``STATE`` page to hold its in-use lock on (see :meth:`hold_directory`); -1 otherwise.
        self._dir_fd = -1
        self._fd = self._open()
        self.give_to_store_owner()
        with _registry() as locks:
            locks.setdefault(path, weakref.WeakSet()).add(self)

    def give_to_store_owner(self) -> None:
        """Give the lock file the owner of the store's format file if root runs this (see
        :func:`kv_backend.owners.give_to_store_owner`): root may have just created it, or, for a
        new store, created it before the format file that names the owner."""
        if self._fd >= 0:
            directory = os.path.dirname(self.path)
            give_to_store_owner(self._fd, directory, added=self._added)
            if not self._added:
                # One found keeps its mode, but gets the store's bits it lacks (one an earlier version
                # made under a stricter umask): never narrowed, not even in a files_granting block,
                # where a found LOCK of 0666 became 0640 in a store of 0660 files and the group's
                # other writers could no longer open it.
                grant_store_mode(self._fd, directory)

    def at_its_path(self) -> bool:
        """Whether the lock file this lock holds, and the directory it holds (see :meth:`hold_directory`),
        are still the ones at their paths (see :func:`~kv_backend.files.still_at`); true of one it does not
        hold (no lock file: nobody can write the store)."""
        return (self._fd < 0 or still_at(self._fd, self.path)) and (
            self._dir_fd < 0 or still_at(self._dir_fd, os.path.dirname(self.path))
        )

    def hold_directory(self) -> None:
        """Take the in-use lock of an open that has no ``STATE`` page to take it on (a read-only open of a
        store no writer opened, in a directory it cannot write): a shared ``flock`` on the store directory
        itself, which every process that can list the store can open, held until :meth:`close`. A tool
        that swaps the store out tries for an exclusive one (see :func:`kv_backend.state.kept_unopened`),
        and while it holds that this waits; :meth:`at_its_path` then tells whether the store was swapped."""
        self._dir_fd = directory_shared(os.path.dirname(self.path))

    def _open(self) -> int:
        # A missing LOCK file (any opener makes one: see below) is the store owner's from the start,
        # and no more open than the store's other files (see new_file_mode): made with 0o666, a store
        # of 0600 files copied without its LOCK got a LOCK of 0666 from a process under umask 000.
        # Only one this open makes gets the store's bits (and a files_granting cap): one found keeps
        # its mode, as every store file found does.
        mode = new_file_mode(os.path.dirname(self.path))
        made = create_for_store_owner(self.path, mode)
        self._added = made is not None
        if made is not None:
            return made
        flags = (os.O_RDWR | os.O_CREAT) if self._create else os.O_RDONLY
        try:
            return self._open_noting(flags, mode)
        except FileNotFoundError:
            if self._create:
                raise
            # A read-only open of a store without a LOCK file (copied by hand):
            # create it if the directory allows, so that writers opening later
            # and this reader agree on one lock; if it does not, nobody can
            # write here and no file lock is needed.
            try:
                return self._open_noting(os.O_RDWR | os.O_CREAT, mode)
            except OSError:
                return -1
        except OSError as exc:
            raise storage_error(exc, f"cannot open lock file {self.path}", reading=not self._create) from exc

    def _open_noting(self, flags: int, mode: int) -> int:
        """``os.open`` of the lock file (close-on-exec), noting whether this call created it."""
        fd, created = open_noting_creation(self.path, flags, mode)
        self._added = self._added or created
        return fd

    def acquire(self) -> None:
        """Take the lock, blocking; nested calls in the owning thread are free.

        Critical sections last microseconds, while a process that sleeps in
        ``flock`` takes tens of microseconds to be woken. So a contended
        acquire first retries without blocking a few times, yielding the CPU
        in between (which also lets a preempted holder run), and only then
        sleeps in the kernel.
        """
        deadline = getattr(_wait_limit, "deadline", None) if _limits_open else None
        if deadline is None:
            self._tlock.acquire()
        elif not self._tlock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise self._timed_out()
        if self._depth == 0 and self._fd >= 0:
            try:
                try:
                    _flock(self._fd, _LOCK_EX_NB)
                except BlockingIOError:
                    self._contended(deadline)
                if deadline is not None:
                    _wait_limit.deadline = None  # (taken: see waiting_until)
            except BaseException as exc:
                self._tlock.release()
                if isinstance(exc, OSError) and not isinstance(exc, KVError):
                    raise storage_error(exc, f"cannot lock {self.path}") from exc
                raise
        elif self._depth and deadline == NO_WAIT:
            # This thread holds it already, from outside the waiting_until(NO_WAIT) block (code sharing
            # kvb http's event loop, inside a locked() or transaction() block across an await): a write
            # made here would land inside that block, so it is held elsewhere as far as the block goes.
            self._tlock.release()
            raise self._timed_out()
        elif self._closed and not self._depth:
            self._closed_error()
        self._depth += 1

    def _closed_error(self) -> None:
        """Let the thread lock go and raise: the store was closed while this thread waited for it."""
        self._tlock.release()
        raise DatabaseClosedError.at(os.path.dirname(self.path))

    def _contended(self, deadline: float | None) -> None:
        if deadline == NO_WAIT:  # (first: a hold by this thread through another DB is a holder too)
            raise self._timed_out()
        self._check_not_self_held()
        fd = self._fd
        if self.no_wait_thread is not None and self.no_wait_thread == threading.get_ident():
            self._contended_no_wait(fd)
            return
        for _ in range(SPIN_TRIES):
            if _taken_after_yield(fd):
                return
        if deadline is None:
            _flock(fd, fcntl.LOCK_EX)
            return
        self._wait_until(fd, deadline)

    def _wait_until(self, fd: int, deadline: float) -> None:
        """Wait for the lock in the kernel's queue, as a blocking acquire does, but only until
        ``deadline`` (see :mod:`kv_backend.lock_waiter`): raise LockTimeoutError then."""
        while True:
            waiter = self._waiter
            if waiter is None or waiter.spent:
                flags = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
                waiter = self._waiter = LockWaiter(self.path, flags)
            taken = waiter.wait(deadline - time.monotonic())
            if waiter.done.is_set():
                self._waiter = None
            if taken is not None:
                break
            # It got the lock before this thread could claim it, and let it go: free now, most likely.
            if _taken_after_yield(fd):
                return
        if not taken:
            if waiter.error is not None:
                raise waiter.error
            raise self._timed_out()
        waiter.take_into(fd)

    def _timed_out(self) -> LockTimeoutError:
        return held_too_long(os.path.dirname(self.path))

    def _contended_no_wait(self, fd: int) -> None:
        """:meth:`_contended` in the ``no_wait_thread``: retry for at most :data:`NO_WAIT_SPIN`
        seconds (a yield may give the CPU away for longer on a busy machine), then raise WouldWait."""
        deadline = time.monotonic() + NO_WAIT_SPIN
        while time.monotonic() < deadline:
            if _taken_after_yield(fd):
                return
        raise WouldWait(self.path)

    def _check_not_self_held(self) -> None:
        """Raise if this thread holds the file lock through another WriteLock of this process.

        flock locks belong to open file descriptions: a second DB object on the same store has
        its own, and its acquire would wait for this very thread for ever (a write, or an open,
        through another Store inside a transaction() or locked() block).
        """
        with _registry() as locks:
            others = [lock for lock in locks.get(self.path, ()) if lock is not self]
        if any(lock.held and lock._fd >= 0 for lock in others):
            raise TransactionError(
                f"this thread holds the write lock of the store at {os.path.dirname(self.path)} "
                "through another DB, Store or Structures object on the same path (inside its "
                "transaction() or locked() block), and would wait for itself for ever: use that "
                "object inside the block, or this one after it ends"
            )

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; return whether it was taken."""
        if not self._tlock.acquire(blocking=False):
            return False
        if self._depth == 0 and self._fd >= 0:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._tlock.release()
                return False
            except OSError as exc:
                self._tlock.release()
                raise storage_error(exc, f"cannot lock {self.path}") from exc
        self._depth += 1
        return True

    def is_free(self) -> bool:
        """Whether this thread could take the lock now: one non-blocking try, released at once. A poll
        that must not wait (``kvb serve``'s event loop) looks with this before it takes the lock, which in
        the ``no_wait_thread`` tries for up to :data:`NO_WAIT_SPIN` seconds: the look costs one system
        call for as long as another process holds the lock."""
        if not self.try_acquire():
            return False
        self.release()
        return True

    def release(self) -> None:
        """Release one level of the lock; the ``flock`` goes with the last one."""
        self._depth -= 1
        try:
            fd = self._fd
            if self._depth == 0 and fd >= 0:
                try:
                    _flock(fd, fcntl.LOCK_UN)
                except OSError:
                    if self._fd >= 0:
                        raise
                    # close() in another thread closed the lock file meanwhile, which released the
                    # file lock: nothing is left to unlock.
        finally:
            # Whatever happened, or every other thread of the process would wait for it for ever.
            self._tlock.release()

    @property
    def excludes_writers(self) -> bool:
        """Whether holding the lock keeps every writer out: not where the lock file could not be opened
        (a read-only open of a store without ``LOCK`` in a directory it cannot write), where a writer that
        can create the file may open the store meanwhile and write without waiting for this process."""
        return self._fd >= 0

    @property
    def held(self) -> bool:
        """True while the calling thread holds the lock."""
        return self._depth > 0 and self._tlock._is_owned()  # type: ignore[attr-defined]

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def after_fork_in_child(self) -> None:
        """Give the child its own lock: a new fd (open file description) and thread lock.

        The inherited fd shares the parent's ``flock``; it is closed here, which
        does not release the parent's lock because the parent's fd stays open.
        A directory held (see :meth:`hold_directory`) stays held: the child has the
        store open too, as it keeps the inherited ``STATE`` page's in-use lock.
        """
        old = self._fd
        self._tlock = threading.RLock()
        self._depth = 0
        self._waiter = None  # (the parent's: its thread is not in the child, which closed its fd)
        self.forks += 1
        try:
            self._fd = self._open()
        except StorageError:
            self._fd = -1
            raise
        finally:
            if old >= 0:
                try:
                    os.close(old)
                except OSError:
                    pass

    def hold_threads(self) -> None:
        """Take the thread lock alone (no file lock): wait for this process's other threads to
        finish what they do under the lock, and keep them out until :meth:`release_threads`.

        What ``DB.close()`` holds while it closes the files, so that it closes nothing under
        another thread's write, and that thread's next acquire raises ``DatabaseClosedError``.
        """
        self._tlock.acquire()

    def release_threads(self) -> None:
        """Release the thread lock taken by :meth:`hold_threads`."""
        self._tlock.release()

    def close(self) -> None:
        """Close the lock file; from now on an acquire that is not nested raises ``DatabaseClosedError``."""
        self._closed = True
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        fd, self._dir_fd = self._dir_fd, -1
        if fd >= 0:
            os.close(fd)  # (which lets go of the in-use lock held on the directory, if this was its last)
        if getattr(_registry_thread, "inside", False):
            # Closed by the garbage collector (DB.__del__) inside this thread's own use of the
            # registry: it stays registered, which is harmless (a closed lock, fd -1, is skipped),
            # until it is collected and leaves the weak set by itself.
            return
        with _registry() as registry:
            locks = registry.get(self.path)
            if locks is not None:
                locks.discard(self)
                if not locks:
                    del registry[self.path]  # a process that opens many stores keeps no entry per store


class MergeLock:
    """A non-blocking ``flock`` on ``MERGE.lock``: at most one merge per store."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    def _open(self) -> int:
        # A new lock file is no more open than the store's files (see new_file_mode).
        mode = new_file_mode(os.path.dirname(self.path))
        try:
            return open_store_file(self.path, os.O_RDWR | os.O_CREAT, mode)
        except OSError as exc:  # too many open files (a merge is what a store of many files needs)
            raise storage_error(exc, f"cannot open the merge lock file {self.path}") from exc

    def try_acquire(self) -> bool:
        """Take the merge lock if free; return whether it was taken."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            raise storage_error(exc, f"cannot lock {self.path}") from exc
        self._fd = fd
        return True

    def acquire(self) -> None:
        """Take the merge lock, waiting for a running merge to finish."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException as exc:  # interrupted (Ctrl-C) while waiting: the descriptor is not kept
            os.close(fd)
            if isinstance(exc, OSError):
                raise storage_error(exc, f"cannot lock {self.path}") from exc
            raise
        self._fd = fd

    def forget_in_child(self) -> None:
        """In a forked child: close the inherited fd without touching the parent's lock."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def release(self) -> None:
        """Release the merge lock."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
