"""The storage engine: :class:`DB`, a crash-safe, multi-process Bitcask log.

Every write is appended to the active data file under the store's
cross-process write lock and then *published* in the shared state page.
Every process keeps its own key directory (key -> packed file/offset/size)
and, before serving a call, compares one word of the state page with the
value it last saw; when it moved, it replays just the records appended since.
See docs/protocol.md for the full protocol and its crash-safety argument.

:class:`DB` is put together here from its parts: :mod:`kv_backend.db_open`
(opening, tail recovery, replay of other processes' records),
:mod:`kv_backend.db_read` (reads and ordered scans), :mod:`kv_backend.db_write`
(appends, batches, atomic updates) and :mod:`kv_backend.db_common` (constants
and argument checks), with snapshots of the files in :mod:`kv_backend.snapshot`;
this module keeps construction, closing, fork handling
and change notification.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, NoReturn, SupportsIndex, TypeVar

# Imported with the engine, not at the first merge: a child forked while another thread imported
# it would inherit the module's import lock, held by a thread it does not have, and hang at its
# own first merge (or auto-merge) for ever.
from kv_backend import merge as _merge_module
from kv_backend import record as rec
from kv_backend.db_common import (
    _FIRST_FILE,
    DEFAULT_MAX_FILE_SIZE,
    _check_flag,
    _StaticWord,
    _time,
    auto_merge_threshold,
    check_tuning_options,
)
from kv_backend.db_open import _Opening
from kv_backend.db_read import _Reading, empty_key_chunks
from kv_backend.db_write import Batch, _Writing
from kv_backend.errors import (
    ConfigurationError,
    DatabaseClosedError,
    InvalidArgumentError,
    StorageError,
    TransactionError,
)
from kv_backend.files import (
    LOCK_FILE,
    data_name,
    format_file_text,
    store_directory,
)
from kv_backend.keydir import KeyDir
from kv_backend.lazy import load
from kv_backend.locking import WriteLock
from kv_backend.mapping import refuse_pickling
from kv_backend.mounts import warn_if_network
from kv_backend.snapshot import Snapshot, SnapshotFile, take_snapshot
from kv_backend.sync_timer import SyncTimer, failed_fsync

if TYPE_CHECKING:
    from kv_backend.backup import BackupReport, Progress
    from kv_backend.merge import MergeReport

__all__ = ["DB", "Batch", "SnapshotFile"]

#: How often :meth:`DB.wait_for_change` checks the change counter: every 0.2 ms doubling to every
#: ``_WAIT_POLL_FAST`` seconds, for the first 0.1 s of a wait (``_WAIT_POLL_FAST / _WAIT_POLL_SHARE``);
#: then every ``_WAIT_POLL_SHARE`` of the time waited so far, at most every ``_WAIT_POLL_MAX`` seconds
#: (reached after 2.5 s), as the Celery backend's ``get()`` paces its own waits.
_WAIT_POLL_FAST = 0.002
_WAIT_POLL_SHARE = 0.02
_WAIT_POLL_MAX = 0.05

_DB = TypeVar("_DB", bound="DB")  # a DB or subclass, as with DB(...) as db: gives it

# Every open DB of this process, so that a forked child can reopen their locks.
_open_dbs: weakref.WeakSet[DB] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for db in list(_open_dbs):
        db._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _ClosedWord:
    """Stands in for the state page's tail word after close: any use raises."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def value(self) -> int:
        raise DatabaseClosedError.at(self.path)

    @value.setter
    def value(self, _: int) -> None:
        # A write of another thread that close() overtook, publishing its record: it fails as any
        # call after close does (its record, past the published tail, is left to tail recovery).
        raise DatabaseClosedError.at(
            self.path, "was closed by another thread during this write, which may or may not have happened"
        )


class DB(_Opening, _Reading, _Writing, MutableMapping[bytes, bytes]):
    """A durable key-value store in a directory, shared safely by many processes.

    ``sync`` chooses durability against power loss: ``"never"`` (the default)
    leaves flushing to the OS (a killed *process* still loses nothing that
    returned), ``"always"`` fsyncs before each write returns, and a number of
    seconds fsyncs at most that often, a write being on disk within about that
    many seconds even if none follows it (see :mod:`kv_backend.sync_timer`).
    ``max_file_size`` is the size at which the active data file is closed and
    a new one started. ``auto_merge``, a
    fraction between 0 and 1, merges in the background once that share of the
    closed files' bytes is dead (None or 0: never). A DB is equal only to itself.
    """

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        sync: Literal["never", "always"] | float = "never",
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        read_only: bool = False,
        auto_merge: float | None = None,
    ) -> None:
        self._closed = True  # until fully open, so __del__ and close() do nothing
        self.path = store_directory(path)
        self._sync_interval = check_tuning_options(sync, max_file_size, auto_merge)
        # The fsync timer of sync=<seconds>, which also keeps ``sync`` as given (``sync_mode``): one
        # attribute for both, for DB keeps at most 29 (see below).
        self._syncer = SyncTimer(sync, self._sync_interval)
        self.max_file_size = max_file_size
        self.auto_merge = auto_merge_threshold(auto_merge)  # (0: off, as None)
        self.read_only = _check_flag(read_only, "read_only")  # ("false" from a config file opened read-only)
        found = format_file_text(self.path, create=not self.read_only)
        warn_if_network(self.path)
        self._lock = WriteLock(os.path.join(self.path, LOCK_FILE), create=not self.read_only)
        self._rlock = threading.Lock()  # guards this process's view while it changes
        self._state = None
        self._tailw = _StaticWord()
        self._intentw = _StaticWord()
        self._seen = 0
        self._gen = -1
        self._tail = (_FIRST_FILE, 0)
        self._ix = KeyDir()
        self._files = []
        self._view = (self._ix.kd, [])
        self._fidx = {}
        self._sizes = {}
        self._corrupt = []
        self._active = None
        self._active_idx = 0
        self._alloc = 0
        self._txn = None  # the transaction a thread has open (see DB.transaction)
        self._txn_cond = threading.Condition()  # other threads' reads wait on it for that transaction
        self._merge_thread = None
        # (thread ident, set when done, its merge lock) of a merge running in this process: close()
        # waits for it. (DB keeps at most 29 attributes: CPython 3.11 keeps an instance's attributes
        # inline, which makes every self.x of the hot paths cheaper, only up to that many.)
        self._merging = None
        self._closing = False  # close() has begun: a merge that registers after its check must not run
        try:
            has_id = self._open_one_store(found)
            self._closed = False
            self._full_reload(has_id)
        except BaseException:
            self._closed = True
            # (The views into the page first, as close() drops them: while they hold its mapping, it
            # stays mapped, with its descriptor, for as long as a caller keeps the error.)
            self._tailw = self._intentw = _ClosedWord(self.path)
            if self._state is not None:
                self._state.close()
            self._lock.close()
            raise
        _open_dbs.add(self)

    @property
    def sync_mode(self) -> Literal["never", "always"] | float:
        """The ``sync`` setting, as given."""
        return self._syncer.mode

    @sync_mode.setter
    def sync_mode(self, mode: Literal["never", "always"] | float) -> None:
        self._syncer.mode = mode  # (what stats() shows; the policy stays the one the DB was opened with)

    @property
    def sync_failed_at(self) -> float | None:
        """When (a UNIX time) the failed fsync happened that makes this handle refuse its writes
        (:class:`~kv_backend.errors.SyncFailedError`) until an fsync succeeds; None while none is
        recorded (always under ``sync="never"``)."""
        failure = self._syncer.failure
        return None if failure is None else failure[0]

    def sync(self) -> None:
        """Flush everything written so far to stable storage (fsync): the active file, and the
        records this handle wrote to files a rotation (another process's, say) closed since.

        It counts as the store's last fsync for ``sync=<seconds>`` (in every process): the next
        write fsyncs only once the interval has passed since."""
        self._check_open()
        began = _time()  # (before the fsync: a write that comes during it is not taken for fsynced)
        try:
            self._fsync_active()
            self._sync_written()  # (the active file's mark is clear now: not fsynced twice)
            st = self._state
            # Only where some writer fsyncs already (non-zero, see _files_must_be_durable): marked by
            # a sync="never" writer that nobody else fsyncs for, every writer's rotations would fsync.
            if st is not None and not self.read_only and self._active is not None and st.last_sync.value:
                st.last_sync.value = began
        except (StorageError, AttributeError) as exc:
            # (EBADF) close() of another thread closed the file (and the state page) meanwhile: say
            # so, as a sync() that came after it does (close() fsyncs unless sync="never").
            self._check_open()
            if isinstance(exc, StorageError) and exc.errno is not None and self._sync_interval is not None:
                # Under a sync policy, as after a write's failed fsync: writes are refused until one succeeds.
                failed_fsync(self, began, exc, "sync() of")
            raise

    @property
    def store_id(self) -> str | None:
        """The store's id, as its format file names it now (None: a store made before ids, not yet opened
        for writing; see docs/file-format.md).

        Where the file names one, looked at again under the write lock (waited for a second at most:
        :data:`~kv_backend.store_id.ID_LOCK_WAIT`): a process giving a store made before ids its id holds
        it from the rename of the new file through the fsync of the directory, and puts the old file back
        where that fsync fails; a read in between would show an id the store never kept. Where this thread
        holds the lock already (through this DB or another on the store), the read made under that hold is
        the id; where another holds it longer than that second (a long transaction, a caller's own
        ``flock`` of the lock file), the id read first. The store's directory is fsynced before an id is
        answered, and None answered where that fails (an id left on disk unconfirmed is answered once it
        is durable): see :func:`~kv_backend.store_id.trusted_format`."""
        from kv_backend import store_id

        text = store_id.trusted_format(self.path, None if self._closed else self._lock.path)
        return store_id.parse_store_id(text) if text is not None else None

    def stats(self) -> dict[str, Any]:
        """Return counts and sizes: keys, live_bytes, dead_bytes, files and more."""
        self._check_open()
        self._refresh()
        with self._rlock:
            if not self._other_transaction_wrote():
                return self._stats_locked()
        # Another thread's transaction began and wrote since the catch-up, so its unpublished writes
        # are indexed: wait, out of the lock, for it to end (as unordered_keys does).
        return self.stats()

    def _stats_locked(self) -> dict[str, Any]:
        """The body of :meth:`stats` (caller holds ``_rlock``)."""
        ix = self._ix
        sizes = dict(self._sizes)
        sizes[self._tail[0]] = self._tail[1]
        total = sum(sizes.values())
        data_bytes = total - rec.FILE_HEADER_SIZE * len(sizes)
        expired, expired_bytes = ix.expired()
        live = ix.live - expired_bytes  # (an expired record is dead: the next merge drops it)
        return {
            "path": self.path,
            "keys": len(ix.kd) - expired,
            "expired_keys": expired,
            "live_bytes": live,
            "dead_bytes": max(data_bytes - live, 0),
            "total_bytes": total,
            "files": len(self._files),
            "active_file": data_name(self._tail[0]),
            "active_end": self._tail[1],
            "generation": self._gen,
            "corrupt_records": len(self._corrupt),
            "read_only": self.read_only,
            "sync": self.sync_mode,
        }

    def close(self) -> None:
        """Flush according to the sync policy and release files and locks. Idempotent."""
        if self._closed:
            return
        # Before looking for a merge to wait for: a merge() that registers after that look sees
        # this and gives up (see merge.merge), so none runs on under the close.
        self._closing = True
        merge_thread = self._merge_thread
        if (
            merge_thread is not None
            and merge_thread is not threading.current_thread()
            and not self._lock.held
        ):
            # (Inside this thread's locked() or transaction() block the merge may be waiting for the
            # lock this thread holds: it is not waited for, and finds the store closed when it runs.)
            merge_thread.join()
        merging = self._merging
        if merging is not None and merging[0] != threading.get_ident() and not self._lock.held:
            # A merge() called in another thread: closing the files and the lock under it would
            # release the write lock in the middle of its switch-over. (Same exception as above.)
            merging[1].wait()
        # Wait for what other threads of this process do under the write lock (a write, a rotation,
        # a locked() or transaction() block, a discard) to end, and keep them out while the files
        # close: one that waits for the lock now gets DatabaseClosedError when it takes it. Only the
        # thread lock: other processes' writers need not be waited for. (Re-entrant: inside this
        # thread's own block it is taken at once.)
        lock = self._lock
        lock.hold_threads()
        try:
            if self._closed:
                return  # closed by another thread meanwhile
            self._close_held()
        finally:
            lock.release_threads()

    def _close_held(self) -> None:
        """The body of :meth:`close` (caller holds the write lock's thread lock)."""
        try:
            if not self.read_only:
                self._sync_on_close()
        finally:
            # After close's own fsync, before the files close: the timer's thread is joined (unless
            # this is it: a __del__ run there), so that no fsync comes after close() returns.
            self._syncer.stop()
            self._closed = True
            self._tailw = self._intentw = _ClosedWord(self.path)
            with self._txn_cond:
                self._txn_cond.notify_all()  # reads waiting for a transaction: the store is closed
            _open_dbs.discard(self)
            with self._rlock:
                empty_key_chunks(self)  # an iterator over the keys raises at its next step
                for f in self._files:
                    f.close()
                self._files = []
                self._ix = KeyDir()
                self._view = (self._ix.kd, [])
                self._active = None
            if self._state is not None:
                self._state.close()
            self._lock.close()

    def _sync_on_close(self) -> None:
        """Fsync at close what this handle wrote and has not fsynced yet, unless ``sync="never"``.

        The zeros reserved past the tail are left in place: other processes
        may be appending, and cutting them would make every reader remap the
        file on each write. Readers and recovery treat them as end of data.
        """
        if self._sync_interval is None:
            return
        # As _after_write does: a catch-up of another thread (a read's, outside the write lock) may
        # be sealing the active file, another process having rotated, whose descriptor is then gone.
        try:
            self._sync_written()  # (nothing if it wrote nothing, or fsynced every write: "always")
        except StorageError:
            pass

    def _raise_closed(self) -> None:
        raise DatabaseClosedError.at(self.path)

    def _check_open(self) -> None:
        if self._closed:
            self._raise_closed()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __enter__(self: _DB) -> _DB:
        self._check_open()  # a with block on a closed store raises, as any use after close() does
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    # A store is equal only to itself (not to a dict with the same items).
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.read_only else "open")
        return f"<kv_backend.DB {self.path!r} {state}>"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        """``pickle.dumps``, ``copy.copy`` and ``copy.deepcopy`` raise, as for a dbm database or a shelf.

        Pickling failed on a thread lock with a bare TypeError, and a shallow copy shared the
        open files and locks with the original (closing either closed both).
        """
        refuse_pickling("kv_backend DB", getattr(self, "path", None))

    def _after_fork_in_child(self) -> None:
        """Give a forked child its own lock file description and fresh thread locks."""
        if self._closed:
            return
        # Held at the fork: another thread of the parent was changing the view (indexing a write
        # it had already marked seen, replaying, installing a reload), and the child's copy may be
        # half-changed. The child rebuilds it at its next call, below.
        changing = self._rlock.locked()
        self._syncer.after_fork_in_child()  # (first: the close() below stops it)
        self._rlock = threading.Lock()
        self._txn_cond = threading.Condition()
        self._merge_thread = None
        if self._txn is not None:
            # Forked inside a transaction: it stays the parent's, which alone holds the lock and
            # commits or discards it. Its records are indexed here but unpublished, and the tail
            # this process knows lies past them: writing there would overwrite the parent's
            # records. Drop the transaction and rebuild the view at the next call (which waits
            # for the parent's transaction to end, as any process opening the store does).
            self._txn = None
            changing = True
        if changing:
            self._seen = self._gen = -1
        merging, self._merging = self._merging, None  # a merge of the parent's threads is not the child's
        self._closing = False  # nor is a close() of theirs that had not yet closed anything
        if merging is not None:
            merging[2].forget_in_child()
        try:
            self._lock.after_fork_in_child()
        except StorageError:
            self.close()

    def snapshot_files(self) -> Snapshot:
        """Freeze a consistent point-in-time view of the store's files.

        Under the write lock: every published data file (the active one up to
        its published end) and every hint file, each held open (the files that never
        change through a map that keeps no descriptor, see :mod:`kv_backend.snapshot`).
        Closed files never change and being held keeps them readable even if a merge
        removes them, so the caller can copy them at leisure (used by backups).
        Close the returned objects when done. The list's ``store_format`` is the
        store's format file (its id), read under the same lock.
        """
        self._check_open()
        return take_snapshot(self.path, self._lock, self._published)

    def change_token(self) -> int:
        """Return a number that changes whenever any process writes to the store.

        Inside this thread's :meth:`transaction` it also changes with each of
        the transaction's own writes (which are not published until it ends).
        """
        txn = self._txn
        if txn is not None and txn.count and txn.owner == threading.get_ident():
            (major, _), end = self._tail
            return (major << 40) | end  # past the published tail: no token seen before
        return self._tailw.value

    def follow_changes(self, on: bool = True) -> None:
        """Start (or stop) noting the keys that change, for :meth:`take_changes`.

        While on, every record this process indexes notes its key: its own writes
        and those of other processes as it catches up with them. Off (the
        default), nothing is noted and writes cost nothing more.
        """
        _check_flag(on, "on")
        with self._rlock:
            self._ix.sink = [] if on else None
            self._ix.sink_lost = False

    def take_changes(self) -> list[bytes] | None:
        """The keys noted as changed since the last call (see :meth:`follow_changes`), in the
        order they changed (a key may repeat), and forget them.

        First catches up with what other processes published. None means the
        changed keys are not known (a merge or a recovery rebuilt the index from
        the files): any key may have changed. Empty while not following.
        """
        if self._tailw.value != self._seen:
            self._refresh()
        with self._rlock:
            ix = self._ix
            sink = ix.sink
            lost, ix.sink_lost = ix.sink_lost, False
            if sink is None:
                return []
            if sink:
                ix.sink = []
            elif not lost:
                return []
            return None if lost else sink

    def wait_for_change(self, token: int, timeout: float | None = None, since: float | None = None) -> bool:
        """Block until a write by any process changes :meth:`change_token` from ``token``.

        Returns True if a write happened, False on timeout. It watches one word
        of shared memory, without any notification channel between processes:
        every 0.2-2 ms for the first 0.1 s of the wait (a write is seen within
        a millisecond or two), then every 2 % of the time waited so far, at
        most every 50 ms, so a long idle wait costs next to no CPU.
        ``since``, a :func:`time.monotonic` value, is when the caller's own wait
        began, for a caller that waits again after a change it did not want
        (another key written): the pauses grow from then, not from this call,
        which would look every 0.2-2 ms again after each such change.
        Inside this thread's :meth:`transaction` or :meth:`locked` block it
        raises :class:`~kv_backend.errors.TransactionError`: nobody else can
        write while the block holds the write lock.
        """
        if not isinstance(token, int) or isinstance(token, bool):
            # Never equal to the word watched: the wait would end at once, as if a write had happened.
            raise InvalidArgumentError(f"token must be an int from change_token(), not {token!r}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout != timeout):
            # A NaN deadline is never reached: the wait would never end.
            raise ConfigurationError(
                f"timeout must be a number of seconds (or None to wait forever), not {timeout!r}"
            )
        if since is not None and (
            not isinstance(since, (int, float)) or isinstance(since, bool) or since != since
        ):
            raise InvalidArgumentError(
                f"since must be a time.monotonic() value (when the caller's wait began), not {since!r}"
            )
        if self._lock.held:
            # Without this, the wait could only time out (for ever, without a timeout), or, with a
            # token taken after the transaction's own writes, return True at once for no change.
            raise TransactionError(
                f"cannot wait for a change of {self.path} inside this thread's transaction() or "
                "locked() block: no other thread or process can write while it holds the write lock; "
                "wait after the block ends"
            )
        # A duration: measured on the monotonic clock, which a change of the wall clock (NTP, a
        # manual setting) does not move, so the wait neither ends early nor outlasts its timeout.
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        begun = started if since is None else min(since, started)  # (a start still to come: now)
        delay = 0.0002
        while self._tailw.value == token:
            now = time.monotonic()
            # Checking every 2 ms for as long as it waited, an idle blocked caller (blpop()...) woke
            # some 400 times a second and took 1.5 % of a CPU for nothing.
            pause = max(delay, min(_WAIT_POLL_MAX, (now - begun) * _WAIT_POLL_SHARE))
            if deadline is not None:
                left = deadline - now
                if left <= 0:
                    return False
                pause = min(pause, left)
            time.sleep(pause)
            delay = min(delay * 2, _WAIT_POLL_FAST)
        return True

    def backup(
        self, url: str, name: str | None = None, progress: Progress | None = None, **storage_options: Any
    ) -> BackupReport:
        """Copy a consistent snapshot of the store to an fsspec URL; see :mod:`kv_backend.backup`."""
        load("kv_backend.backup")  # (fork-safely: see kv_backend.lazy)
        from kv_backend.backup import backup

        return backup(self, url, name=name, progress=progress, **storage_options)

    def merge(self, progress: Callable[[int, int], None] | None = None, wait: bool = False) -> MergeReport:
        """Compact the store: drop overwritten, deleted and expired records.

        Runs while this and other processes keep reading and writing; returns a
        :class:`kv_backend.merge.MergeReport`. Raises
        :class:`~kv_backend.errors.MergeInProgressError` if another merge is
        running, unless ``wait`` is true. See :mod:`kv_backend.merge`.
        """
        return _merge_module.merge(self, progress=progress, wait=_check_flag(wait, "wait"))

    def _maybe_auto_merge(self) -> None:
        _merge_module.maybe_auto_merge(self)
