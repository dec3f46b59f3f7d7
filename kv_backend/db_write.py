"""The write side of :class:`kv_backend.db.DB`: appends under the write lock, batches, atomic updates."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from kv_backend import record as rec
from kv_backend.db_common import (
    _ALLOC_FIRST,
    _ALLOC_STEP,
    _FLAG_BATCH,
    _M32,
    _MAX_KEY,
    _MAX_VALUE,
    _MISSING,
    _PUT,
    BytesLike,
    T,
    _check_key,
    _check_value,
    _encode,
    _expiry,
    _expiry_at,
    _Parts,
    _pwrite,
    _time,
)
from kv_backend.errors import (
    DatabaseClosedError,
    InvalidArgumentError,
    InvalidValueError,
    NotAnIntegerError,
    ReadOnlyError,
    StorageError,
    TransactionError,
)
from kv_backend.files import (
    DataFile,
    FileId,
    data_name,
    fsync_dir,
    fsync_file,
    new_file_mode,
    reserve_space,
    storage_error,
    write_all,
    write_zeros,
)
from kv_backend.lazy import load
from kv_backend.mapping import update_pairs
from kv_backend.owners import give_to_store_owner
from kv_backend.state import unpack_tail
from kv_backend.sync_timer import failed_fsync, recovered, refused

#: The DB that a ``locked()`` or ``transaction()`` block gives its ``with ... as`` target.
_W = TypeVar("_W", bound="_Writing")


def _remove_unpublished(path: str) -> None:
    """Remove a data file no process was told about (best effort: recovery drops a headerless one)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


class SpentOps(list):  # type: ignore[type-arg]
    """The operations of a batch whose ``with`` block has ended: adding one raises.

    Without this, a write made through the batch object after its block (a
    stray ``b.put`` after the ``with``) went into a list nobody would apply:
    it was lost without a word.
    """

    def append(self, op: object) -> None:
        raise DatabaseClosedError(
            "this batch was applied (or discarded) when its with block ended, so this write would be "
            "lost; write directly, or start a new batch"
        )


class Batch:
    """Writes collected by :meth:`DB.batch` and applied all together, or not at all."""

    def __init__(self, db: _Writing) -> None:
        self._db = db
        self._ops: list[tuple[int, bytes, bytes, float]] = []

    def put(
        self, key: bytes, value: BytesLike, ttl: float | None = None, *, expires_at: float | None = None
    ) -> None:
        """Add a put of ``key`` to the batch (``ttl <= 0`` makes it a delete).

        ``expires_at`` gives the expiry as an absolute UNIX time instead, e.g. to
        keep a key's current expiry exactly.
        """
        if type(key) is not bytes or not 0 < len(key) <= _MAX_KEY:
            key = _check_key(key)
        if type(value) is not bytes or len(value) > _MAX_VALUE:
            value = _check_value(value)
        if ttl is None and (expires_at is None or (type(expires_at) is float and expires_at == 0.0)):
            self._ops.append((_PUT, key, value, 0.0))  # no expiry: the usual case, checked first
        elif expires_at is not None:
            expiry = _expiry_at(ttl, expires_at)
            if expiry is None:
                self._ops.append((rec.DELETE, key, b"", 0.0))
            else:
                self._ops.append((rec.PUT, key, value, expiry))
        else:
            expiry = _expiry(ttl)  # checks the type first, as DB.put does
            if ttl <= 0:  # type: ignore[operator]
                self._ops.append((rec.DELETE, key, b"", 0.0))
            else:
                self._ops.append((rec.PUT, key, value, expiry))

    def delete(self, key: bytes) -> None:
        """Add a delete of ``key`` to the batch."""
        self._ops.append((rec.DELETE, _check_key(key), b"", 0.0))

    def __len__(self) -> int:
        return len(self._ops)

    def __enter__(self) -> Batch:
        if type(self._ops) is SpentOps:
            self._ops = []  # the same object used for another with block
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        ops, self._ops = self._ops, SpentOps()
        if exc_type is None and ops:
            self._db._commit_batch(ops)


class _Locked(Generic[_W]):
    """What :meth:`DB.locked` returns: holds the write lock for the ``with`` block."""

    __slots__ = ("_db", "_forks")

    def __init__(self, db: _W) -> None:
        self._db = db

    def __enter__(self) -> _W:
        db = self._db
        lock = db._lock
        self._forks = lock.forks
        if lock._depth and lock.held:
            # Nested in this thread's own hold: the view is already current and
            # nobody else can write, so only the nesting count changes.
            lock.acquire()
            return db
        db._check_open_writable()  # (a block that only reads is not refused after a failed fsync)
        db._pre_catch_up()
        lock.acquire()
        try:
            db._writer_catch_up()
        except BaseException:
            lock.release()
            raise
        return db

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        db = self._db
        if db._lock.forks != self._forks:
            # A child forked inside the block: the lock stayed with the parent, and this process
            # got a lock of its own, which it does not hold (releasing it would unbalance it, and
            # its next writes would skip the file lock).
            if exc_type is None:
                raise TransactionError(
                    f"this process was forked inside a locked() block on {db.path}, which holds the "
                    "lock only in the parent process: in the child, the block's reads and writes since "
                    "the fork were not one locked sequence (each write took the lock on its own). "
                    "Take db.locked() in the child itself"
                )
            return
        db._lock.release()


#: The last tail seen while a transaction has written: no tail equals it, so every read catches up
#: first, and there other threads wait for the transaction to end (see ``DB._refresh``).
_IN_TRANSACTION = -1


class _Transaction:
    """The state of the transaction a thread has open on a DB (see :meth:`DB.transaction`)."""

    __slots__ = ("count", "depth", "doomed", "owner")

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.count = 0  # records written so far, all flagged as one batch
        self.depth = 0  # nested blocks joined to this one
        self.doomed = False  # a nested block raised: the whole transaction is discarded


class _TransactionBlock(Generic[_W]):
    """What :meth:`DB.transaction` returns: holds the write lock and commits at the end of the block."""

    __slots__ = ("_db",)

    def __init__(self, db: _W) -> None:
        self._db = db

    def __enter__(self) -> _W:
        db = self._db
        txn = db._txn
        if txn is not None and txn.owner == threading.get_ident():
            txn.depth += 1  # nested in this thread's own transaction: join it
            return db
        _Locked(db).__enter__()
        db._txn = _Transaction()
        return db

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        db = self._db
        txn = db._txn
        if txn is None:
            # A child forked inside the block: the transaction stayed with the parent (see
            # DB._after_fork_in_child), and this process holds no lock to release.
            if exc_type is None:
                raise TransactionError(
                    f"this process was forked inside a transaction on {db.path}, which only the parent "
                    "process commits; the child's writes since the fork were applied one by one. Open "
                    "a transaction in the child itself to group its writes"
                )
            return
        if txn.depth:
            txn.depth -= 1
            if exc_type is not None:
                txn.doomed = True
            return
        if db._closed:
            # close() inside the block (or by another thread): the files are gone, nothing of the
            # block was published, and the next writer's tail recovery cuts its records off.
            db._end_transaction()
            db._lock.release()
            if exc_type is None:
                db._raise_closed_in_transaction()
            return
        try:
            if exc_type is None and not txn.doomed:
                db._commit_transaction(txn)
            else:
                db._discard_transaction(txn)
        finally:
            try:
                if db._txn is txn:
                    # An exception (a KeyboardInterrupt) cut the commit or discard short before it
                    # ended the transaction: other threads' reads would wait for it for ever.
                    db._end_transaction()
            finally:
                db._lock.release()
        if exc_type is None:
            if txn.doomed:
                raise TransactionError(
                    "a block nested in this transaction, or one of its writes, raised, so none of the "
                    "transaction's writes were applied; let the exception leave the outer block, or catch "
                    "it outside the transaction"
                )
            if txn.count:  # (one that only read wrote nothing: no fsync, which flushes the disk's cache)
                db._after_write()


def _parse_int(key: bytes, raw: bytes) -> int:
    """Parse an ASCII decimal integer value the way Redis's INCR does."""
    body = raw[1:] if raw[:1] == b"-" else raw
    if not body.isdigit() or not body.isascii() or (len(body) > 1 and body[:1] == b"0") or raw == b"-0":
        raise NotAnIntegerError(f"the value of {key!r} is not an ASCII decimal integer: {raw[:40]!r}")
    try:
        return int(raw)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits())
        raise NotAnIntegerError(
            f"the value of {key!r} is an integer of {len(body)} digits, more than Python converts "
            "(see sys.set_int_max_str_digits)"
        ) from None


class _Writing(_Parts):
    """The write side of :class:`kv_backend.db.DB`: appends under the write lock, batches, atomic updates."""

    def _check_writable(self) -> None:
        """Raise unless a write may go on: the handle is open and writable, and no failed fsync of its
        sync timer is left unanswered (see :meth:`_retry_failed_fsync`)."""
        self._check_open_writable()
        if self._syncer.failure is not None:
            self._retry_failed_fsync()

    def _check_open_writable(self) -> None:
        """Raise unless the handle is open and was not opened read-only."""
        if self._closed:
            self._raise_closed()
        if self.read_only:
            raise ReadOnlyError(
                f"the store at {self.path} was opened with read_only=True; open it writable to change it"
            )

    def _retry_failed_fsync(self) -> None:
        """The sync timer's fsync failed: fsync the active file before this write, which is refused
        (:class:`~kv_backend.errors.SyncFailedError`, nothing written) if that fails too. One that
        succeeds clears the record, and the write goes on."""
        syncer = self._syncer
        failure = syncer.failure
        if failure is None:
            return
        began = _time()
        try:
            self._fsync_active()  # (clears the record if it succeeds)
        except StorageError as exc:
            self._check_open()  # (closed by another thread meanwhile: say that)
            raise refused(self.path, self._sync_interval or 0.0, failure, exc) from exc
        with contextlib.suppress(AttributeError, DatabaseClosedError):  # (closed meanwhile: its page too)
            st = self._state
            if st is not None:
                st.last_sync.value = began

    def _raise_closed_in_transaction(self) -> None:
        raise DatabaseClosedError(
            f"the store at {self.path} was closed inside a transaction, so none of the transaction's "
            "writes were applied; close it after the with block ends"
        )

    def locked(self: _W) -> _Locked[_W]:
        """Hold the store's cross-process write lock for a read-modify-write sequence.

        Use it as ``with db.locked():``. Inside the block no other process or
        thread can write, and reads see every write published before it. Calls
        may nest; writes inside are applied at once (wrap them in :meth:`batch`
        to make them all-or-nothing).
        """
        return _Locked(self)

    def _pre_catch_up(self) -> None:
        """Replay other processes' writes *before* taking the write lock.

        With several writers, each process must index what the others wrote.
        Doing most of that outside the lock keeps the time the lock is held,
        and so the wait of every other writer, short; the catch-up under the
        lock then only has the last few records left.
        """
        if self._tailw.value != self._seen:
            self._refresh()

    def _writer_catch_up(self) -> None:
        """Bring the view up to date and recover a dead writer's tail (write lock held)."""
        if self._txn is not None:
            return  # this thread's transaction holds the lock: nobody else wrote, and its tail is its own
        if self._tailw.value != self._seen:
            self._refresh()
        if self._intentw.value != self._seen or self._active is None:
            self._recover_tail_locked()
            self._refresh()
            if self._active is None or self._active.fid != self._tail[0]:
                self._full_reload()

    def _write(self, data: bytes, entries: list[tuple[int, bytes, int, int, float]]) -> None:
        """Append ``data`` at the tail, publish it, and index ``entries`` (write lock held).

        ``entries`` are ``(type, key, offset within data, size, expiry)``. The
        intent word announces the new tail before the write, so that the next
        writer can tell a writer died half-way; on an OS error nothing is
        published (see :meth:`_append_at`).
        """
        if self._txn is not None:
            self._write_in_transaction(data, entries)
            return
        (major, _), end = self._tail
        n = len(data)
        if end + n > self.max_file_size and end > rec.FILE_HEADER_SIZE:
            self._rotate()
            (major, _), end = self._tail
        new_end = end + n
        if new_end > self._alloc:
            self._extend(new_end)
        tail = (major << 40) | new_end
        self._append_at(data, end, tail)
        self._rlock.acquire()
        try:
            self._tailw.value = tail
            self._seen = tail
            self._tail = ((major, 0), new_end)
            self._ix.apply(self._active_idx, end, entries)
        finally:
            self._rlock.release()

    def _append_unindexed(self, data: bytes) -> bool:
        """Append ``data`` at the published tail without indexing first (write lock held).

        A put reads nothing, so when other processes wrote since this process
        last looked it does not need their records indexed to append its own:
        it writes at the published tail and leaves every record, its own
        included, to the next catch-up, which replays them in log order outside
        the lock. This keeps the lock held for one ``pwrite`` however busy the
        other writers are. When the ordinary path must run instead (a dead
        writer's tail to recover, a merge or rotation this process has not
        seen, a full file to rotate), it catches up the ordinary way, writes
        nothing and returns False.
        """
        st = self._state
        active = self._active
        tail_now = self._tailw.value
        major, end = unpack_tail(tail_now)
        new_end = end + len(data)
        if (
            st is None
            or active is None
            or not st.initialized
            or self._intentw.value != tail_now
            or st.generation.value != self._gen
            or active.fid[0] != major
            or new_end > self.max_file_size
        ):
            self._writer_catch_up()
            return False
        if new_end > self._alloc:
            self._extend(new_end)
        tail = (major << 40) | new_end
        self._append_at(data, end, tail, published=tail_now)
        self._tailw.value = tail
        return True

    def _append_at(self, data: bytes, end: int, tail: int, published: int | None = None) -> None:
        """Announce ``tail`` as the intent, then write ``data`` at ``end`` of the active file.

        On an OS error the intent goes back to the ``published`` tail (by
        default the one this process saw) and nothing is published; the bytes
        written past the published end are overwritten by the next write.
        """
        active = self._active
        assert active is not None
        self._intentw.value = tail
        try:
            written = _pwrite(active.fd, data, end)
            if written != len(data):
                write_all(active.fd, memoryview(data)[written:], end + written)
        except OSError as exc:
            # What reached the file is overwritten with zeros (blocks it already has: no more room is
            # needed), as reserved space reads: a shorter write that lands there next would otherwise
            # leave the rest of it past the published end, where recovery keeps a record that checks out
            # (one inside a value, say) as a dead writer's, though this write was never acknowledged.
            with contextlib.suppress(OSError):
                write_zeros(active.fd, end, min(end + len(data), os.fstat(active.fd).st_size))
            self._intentw.value = self._seen if published is None else published
            raise storage_error(exc, f"cannot append to {active.path}", self._freeing_advice()) from exc
        active.unsynced = True  # (after the write: an fsync that clears it before then may miss it)

    def _extend(self, new_end: int) -> None:
        """Grow the active file ahead of the tail so mappings need remapping rarely."""
        active = self._active
        assert active is not None
        # Doubling up to a whole step: a small store's reservation stays small (posix_fallocate gives it
        # real blocks), and a growing one remaps a few times more only, while under a step.
        step = _ALLOC_STEP if new_end > _ALLOC_STEP else max(_ALLOC_FIRST, 1 << (new_end - 1).bit_length())
        target = -(-new_end // step) * step
        end = self._tail[1]
        try:
            # Reserved, not only grown: writes into a hole need blocks as they go, and on a full disk
            # failed half-way through a record. Short of room for the whole step, the write's own bytes.
            try:
                reserve_space(active.fd, end, target)
            except OSError as exc:
                if exc.errno != errno.ENOSPC or target == new_end:
                    raise
                reserve_space(active.fd, end, new_end)
            # Map the grown file now, so that writes up to the new size never need to.
            mm = active.remap()
        except OSError as exc:
            raise storage_error(exc, f"cannot grow {active.path}", self._freeing_advice()) from exc
        with self._rlock:
            self._view[1][self._active_idx] = mm
        self._alloc = len(mm)

    def _put_locked(self, key: bytes, value: bytes, expiry: float) -> None:
        # (With the lock held, a transaction open here is this thread's: flag its record at once.)
        data = rec.encode(rec.PUT, key, value, expiry, _FLAG_BATCH if self._txn is not None else 0)
        self._write(data, [(rec.PUT, key, 0, len(data), expiry)])

    def _delete_locked(self, key: bytes) -> None:
        data = rec.encode(rec.DELETE, key, b"", 0.0, _FLAG_BATCH if self._txn is not None else 0)
        self._write(data, [(rec.DELETE, key, 0, len(data), 0.0)])

    def _rotate(self, auto_merge: bool = True) -> None:
        """Close the active file and start the next one (write lock held)."""
        old = self._active
        assert old is not None
        (major, _), end = self._tail
        fid = (major + 1, 0)
        # The next file first: if it cannot be made (disk full), the active file is left as it was.
        f = self._new_data_file(fid)
        try:
            os.ftruncate(old.fd, end)  # drop the preallocated slack: closed files are exact
            if self._files_must_be_durable():
                old.unsynced = False
                fsync_file(old.fd)
        except OSError as exc:
            old.unsynced = True  # (for the next sync(), in case it was cleared above)
            f.close()
            _remove_unpublished(f.path)
            raise storage_error(exc, f"cannot close data file {old.path}", self._freeing_advice()) from exc
        tail = ((major + 1) << 40) | rec.FILE_HEADER_SIZE
        self._rlock.acquire()
        try:
            self._files.append(f)
            self._view[1].append(f.mm if f.mm is not None else b"")
            self._fidx[fid] = len(self._files) - 1
            self._sizes[(major, 0)] = end
            self._active = f
            self._active_idx = len(self._files) - 1
            self._alloc = f.size()
            self._tail = (fid, rec.FILE_HEADER_SIZE)
            self._intentw.value = tail
            self._tailw.value = tail
            self._seen = tail
        finally:
            self._rlock.release()
        old.seal()  # closed for good: its mapping serves the reads
        if auto_merge and self.auto_merge is not None:
            self._maybe_auto_merge()

    def _new_data_file(self, fid: FileId) -> DataFile:
        """Create the data file ``fid`` with its header (not yet published); none is left on failure."""
        path = os.path.join(self.path, data_name(fid))
        try:
            # Not O_TRUNC: a file of that name is one a writer killed in its own rotation left (created,
            # never published), which a backup taken meanwhile copies. Its header is written over in place
            # and what follows it cut, so it never holds fewer bytes than its header: made anew, it held
            # none for a moment, and such a backup failed to read its copy.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, new_file_mode(self.path))
        except OSError as exc:
            raise storage_error(exc, f"cannot create data file {path}", self._freeing_advice()) from exc
        durable = self._files_must_be_durable()
        try:
            try:
                give_to_store_owner(fd, self.path)
                write_all(fd, rec.FILE_HEADER_BYTES, 0)
                os.ftruncate(fd, rec.FILE_HEADER_SIZE)
                if durable:
                    fsync_file(fd)
            finally:
                os.close(fd)
            if durable:
                fsync_dir(self.path)
            return DataFile(self.path, fid, writable=True)
        except OSError as exc:
            _remove_unpublished(path)
            raise storage_error(exc, f"cannot create data file {path}", self._freeing_advice()) from exc

    def _freeing_advice(self) -> str:
        """What frees space for the store's writes on a full disk, with what this process knows of its
        bytes: a merge reclaims the dead ones (overwritten, deleted, expired), and needs room for the
        live records it copies."""
        sizes = dict(self._sizes)
        total = sum(size for fid, size in sizes.items() if fid != self._tail[0]) + self._tail[1]
        live = self._ix.live
        dead = max(total - live, 0)
        where = f"free space on the filesystem of {self.path}"
        if total <= rec.FILE_HEADER_SIZE:  # (nothing indexed yet: a store being opened or created)
            return where
        if dead < total // 20:  # (next to nothing for a merge to reclaim)
            return f"{where} (its {total} bytes are nearly all live records, which a merge keeps)"
        room = f"up to {live} bytes free for the live records it copies" if live else "next to no room free"
        return (
            f"{where}: with {room}, `kvb merge {self.path}` runs and reclaims about {dead} bytes of "
            "overwritten, deleted and expired records"
        )

    def _files_must_be_durable(self) -> bool:
        """Whether a rotation fsyncs the file it closes and the one it creates (and the directory).

        Yes when this process fsyncs its writes, and also when any other writer of
        the store does (it marks ``last_sync`` at open): that writer fsyncs its
        own active file after releasing the lock, and if this process rotated
        meanwhile, the records it had just written sit in the file closed here.
        """
        if self._sync_interval is not None:
            return True
        st = self._state
        return st is not None and bool(st.last_sync.value)

    def _after_write(self) -> None:
        """Apply the sync policy once the write lock is released.

        The fsync runs outside the lock, so concurrent writers in several
        processes fsync at the same time and the kernel commits them together.
        """
        interval = self._sync_interval
        if interval is None:
            return
        txn = self._txn
        if txn is not None and txn.owner == threading.get_ident():
            return  # nothing is published before the transaction commits, which syncs then
        st = self._state
        assert st is not None
        now = _time()
        try:
            if interval:
                since = st.last_sync.value
                if now - since < interval:
                    # Unsynced: the timer fsyncs it about an interval after ``since``, unless an fsync
                    # begins after ``now`` meanwhile (see kv_backend.sync_timer). Armed already, as
                    # for every write but the first of an interval, this costs a store and a read.
                    # (Two threads may store ``written`` out of order, a few instructions apart: the
                    # earlier time kept lets an fsync begun between the two count for both writes.)
                    syncer = self._syncer
                    syncer.written = now
                    if syncer.due or syncer.arm(self, since):
                        return
            if self._active is not None:
                self._fsync_active()
                st.last_sync.value = now
        except (AttributeError, StorageError, DatabaseClosedError) as exc:
            if not self._closed:
                if isinstance(exc, StorageError) and exc.errno is not None:
                    # The write took effect but is not known to be durable, nor, on Linux, are writes
                    # before it: the handle refuses writes until an fsync succeeds, as after the timer's.
                    failed_fsync(self, now, exc, "a write to")
                raise
            # close() of another thread came between the write (published: close() waits for the
            # lock) and this fsync, and closed the state page and the file; it fsynced the active
            # file itself first. The write took effect: it returns as the ones before close() did.

    def _fsync_active(self) -> None:
        """fsync the active data file, if this process writes one (StorageError if that fails); one
        that succeeds clears the record of a failed fsync of the sync timer made before it began."""
        active = self._active
        if active is not None:
            syncer = self._syncer
            failure = syncer.failure
            self._fsync_data_file(active)
            if failure is not None and syncer.clear_failure(failure):
                recovered(self, failure)

    def _sync_written(self) -> None:
        """fsync each data file this handle wrote records to since it last fsynced it; nothing if none.

        What ``close()`` flushes under a sync policy, and what a dbm database's or a shelf's
        ``sync()`` flushes (as ``dbm.gnu``'s: this object's writes). An fsync of a file nothing
        was written to still costs a flush of the disk's cache (milliseconds on some disks), which
        every open, read and close of a shelf paid. Files this handle wrote before a rotation
        (its own or another process's) are flushed too, not only the active file.
        """
        for f in list(self._files):  # (a copy: other threads may rotate meanwhile)
            if f.unsynced:
                self._fsync_data_file(f)

    def _has_unsynced(self) -> bool:
        """Whether this handle wrote records that no fsync has covered yet (what :meth:`_sync_written`
        would flush): the active file's mark first, the cheap and usual answer."""
        active = self._active
        return (active is not None and active.unsynced) or any(f.unsynced for f in self._files)

    def _fsync_data_file(self, active: DataFile) -> None:
        """fsync ``active``, a file this process writes or wrote (StorageError if that fails).

        It may run outside the write lock, so a rotation of another thread may seal the file
        (close its descriptor, whose number a file opened since may reuse) meanwhile: the file
        is then fsynced by its name, for the records written before this call are in it.
        Its ``unsynced`` mark is cleared first: a write that sets it again meanwhile is
        flushed by the next fsync, if not by this one.
        """
        active.unsynced = False
        try:
            self._fsync_file_of(active)
        except BaseException:
            active.unsynced = True
            raise

    def _fsync_file_of(self, active: DataFile) -> None:
        """The body of :meth:`_fsync_data_file`."""
        fd = active.fd
        if fd >= 0:
            try:
                fsync_file(fd)
            except OSError as exc:
                if active.fd == fd:
                    raise storage_error(exc, f"cannot fsync {active.path}") from exc
            if active.fd == fd:
                return
        # Closed under this call: by close() of another thread (which fsynced it unless
        # sync="never"), or by a rotation, which fsyncs it only if some writer has a sync policy.
        self._check_open()
        try:
            fd = os.open(active.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return  # a merge replaced it since, and fsynced its output files
        except OSError as exc:
            raise storage_error(exc, f"cannot fsync {active.path}") from exc
        try:
            fsync_file(fd)
        except OSError as exc:
            raise storage_error(exc, f"cannot fsync {active.path}") from exc
        finally:
            os.close(fd)

    def put(
        self, key: bytes, value: BytesLike, ttl: float | None = None, *, expires_at: float | None = None
    ) -> None:
        """Store ``value`` under ``key``; with ``ttl`` (seconds) it expires then.

        A ``ttl`` of 0 or less stores nothing and removes the key (Django's and
        Redis's "already expired"). ``expires_at`` gives the expiry as an
        absolute UNIX time instead (0: never), e.g. to keep a key's current
        expiry exactly across a read-modify-write; a time already past removes
        the key.
        """
        if type(key) is not bytes or not 0 < len(key) <= _MAX_KEY:
            key = _check_key(key)
        if type(value) is not bytes or len(value) > _MAX_VALUE:
            value = _check_value(value)
        if expires_at is not None:
            at = _expiry_at(ttl, expires_at)
            if at is None:
                self.delete(key)
                return
            expiry = at
        elif ttl is None:
            expiry = 0.0
        else:
            expiry = _expiry(ttl)
            if ttl <= 0:
                self.delete(key)
                return
        txn = self._txn
        if txn is None or txn.owner != threading.get_ident():
            data = _encode(_PUT, key, value, expiry)
        else:
            data = _encode(_PUT, key, value, expiry, _FLAG_BATCH)  # part of this thread's transaction
        if self.read_only or self._closed or self._syncer.failure is not None:
            self._check_writable()  # (the last: a failed fsync of the sync timer, see _retry_failed_fsync)
        if self._tailw.value != self._seen:
            self._refresh()  # replay others' writes before taking the lock, not while holding it
        lock = self._lock
        lock.acquire()
        try:
            fid, end = self._tail
            n = len(data)
            new_end = end + n
            # A writer sets the intent word before the tail word, so an intent
            # equal to the tail this process saw means nobody wrote since.
            if (
                self._txn is None
                and not expiry
                and self._intentw.value == self._seen
                and new_end <= self._alloc
                and new_end <= self.max_file_size
            ):
                # The hottest write path: what _write does for one put without expiry that fits, here
                # rather than in a method of its own (a Python call less: 1.4% of a Store's set), and
                # _append_at inlined. (The fields of a tail word and of a location never overlap, so they
                # are added rather than or-ed: adding integers of two or three machine words is cheaper.)
                tail = (fid[0] << 40) + new_end
                active = self._active
                self._intentw.value = tail
                try:
                    if _pwrite(active.fd, data, end) != n:  # type: ignore[union-attr]
                        raise OSError(errno.EIO, "short write")
                except OSError:
                    self._intentw.value = self._seen
                    self._append_at(data, end, tail)  # retries, or raises the project's StorageError
                active.unsynced = True  # type: ignore[union-attr]  # (after the write: see _fsync_data_file)
                rlock = self._rlock
                rlock.acquire()
                try:
                    self._tailw.value = tail
                    self._seen = tail
                    self._tail = (fid, new_end)
                    ix = self._ix
                    if ix.sink is not None:
                        ix.sink.append(key)
                    kd = ix.kd
                    old = kd.get(key)
                    kd[key] = (self._active_idx << 72) + (end << 32) + n
                    if old is None:
                        ix.live += n
                        if ix.sorted is not None:  # ix.note_insert(key), inlined
                            if key in ix.sorted_del:
                                ix.sorted_del.remove(key)
                            else:
                                adds = ix.sorted_add
                                adds.add(key)
                                if len(adds) > ix.sorted_cap:
                                    ix.check_pending()
                    else:
                        ix.live += n - (old & _M32)
                        if ix.exp:
                            ix.exp.pop(key, None)
                finally:
                    rlock.release()
            elif (
                self._txn is not None
                or self._intentw.value == self._seen  # (expiry, or a full file: _write rotates, extends)
                or not self._append_unindexed(data)  # (false: it caught up, as _write needs)
            ):
                self._write(data, [(_PUT, key, 0, n, expiry)])
        finally:
            lock.release()
        if self._sync_interval is not None:
            self._after_write()

    if TYPE_CHECKING:  # declared, for pyright takes an undeclared alias's type from MutableMapping

        def __setitem__(self, key: bytes, value: BytesLike) -> None: ...

    else:
        __setitem__ = put

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; return True if it existed (and had not expired)."""
        key = _check_key(key)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            existed = key in self
            wrote = key in self._view[0]  # (an expired key's record too: the delete drops it)
            if wrote:
                self._delete_locked(key)
        if wrote:  # (an fsync of nothing written still flushes the disk's cache)
            self._after_write()
        return existed

    def __delitem__(self, key: bytes) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def put_if_absent(self, key: bytes, value: BytesLike, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent (or expired); return whether it was stored.

        Atomic across processes: of many concurrent callers exactly one wins. A ``ttl`` of 0
        or less stores nothing (the value would expire at once) and returns False whether or
        not the key is present: nobody wins what is not stored.
        """
        key = _check_key(key)
        value = _check_value(value)
        _expiry(ttl)  # a bad ttl raises, as for put
        self._check_writable()
        if ttl is not None and ttl <= 0:
            return False
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            if key in self:
                return False
            self.put(key, value, ttl)
        return True

    def incr(self, key: bytes, delta: int = 1) -> int:
        """Add ``delta`` to the integer stored at ``key`` and return the result.

        Values are ASCII decimal, as in Redis; a missing key counts as 0 and
        the key keeps its expiry. Atomic across processes. Raises
        :class:`~kv_backend.errors.NotAnIntegerError` for a non-integer value.
        """
        if not isinstance(delta, int) or isinstance(delta, bool):
            raise InvalidValueError(f"delta must be an int, not {type(delta).__name__}")
        key = _check_key(key)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            found = self._get_record(key)
            if found is None:
                current, expiry = 0, 0.0
            else:
                raw, expiry = found
                current = _parse_int(key, raw)
            result = current + delta
            try:
                data = str(result).encode("ascii")
            except ValueError:  # more digits than str() converts (sys.get_int_max_str_digits())
                raise NotAnIntegerError(
                    f"the result of incrementing {key!r} has more digits than Python converts "
                    "(see sys.set_int_max_str_digits); nothing was written"
                ) from None
            self._put_locked(key, data, expiry)
        self._after_write()
        return result

    # update(key, fn) is DB's own (an atomic read-modify-write); with one mapping or iterable of pairs
    # it is MutableMapping.update, whose values it takes as any bytes-like object.
    @overload  # type: ignore[override]
    def update(self, key: BytesLike, fn: Callable[[bytes | None], bytes | None], /) -> bytes | None: ...
    @overload
    def update(
        self, other: Mapping[bytes, BytesLike] | Iterable[tuple[bytes, BytesLike]] = (), /, **kwargs: Any
    ) -> None: ...
    def update(self, key: Any = (), fn: Any = None, /, **kwargs: Any) -> bytes | None:
        """Atomically replace the value of ``key`` by ``fn(old_value)``.

        ``fn`` receives the current value (None if absent) and returns the new
        one, or None to delete the key. The key keeps its expiry. If ``fn``
        raises, nothing is written. Returns the new value.

        Without ``fn`` it is ``MutableMapping.update``: the pairs of a mapping or
        an iterable of pairs are stored as one atomic batch (code written for any
        mutable mapping can be given a DB).
        """
        if fn is None:
            if isinstance(key, (bytes, bytearray, memoryview)):
                raise InvalidArgumentError(
                    "update(key) needs a function: update(key, fn) replaces the value by fn(old); "
                    "update(mapping) or update(pairs) stores several"
                )
            pairs = update_pairs(key, kwargs)
            if pairs:
                with self.batch() as b:
                    for k, v in pairs:
                        b.put(k, v)
            else:
                self._check_open()  # nothing to write, but use after close() always raises
            return None
        if kwargs:
            raise InvalidArgumentError("update(key, fn) takes no keyword arguments")
        key = _check_key(key)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            found = self._get_record(key)
            old, expiry = found if found is not None else (None, 0.0)
            new: bytes | None = fn(old)
            if self._closed:  # fn closed the store (a Store.modify function, a value's unpickling)
                raise DatabaseClosedError(
                    f"the store at {self.path} was closed by the function given to update() (or "
                    "Store.modify()), so nothing was written; close it after the call returns"
                )
            if new is None:
                if old is None:
                    return None  # nothing to delete, nothing written: no fsync either
                self._delete_locked(key)
            else:
                new = _check_value(new)
                self._put_locked(key, new, expiry)
        self._after_write()
        return new

    def expire(self, key: bytes, ttl: float | None = None, *, expires_at: float | None = None) -> bool:
        """Give ``key`` a new time to live (None: never expire); return whether it exists.

        A ``ttl`` of 0 or less deletes the key, as Redis's EXPIRE does.
        ``expires_at`` gives the expiry as an absolute UNIX time instead (0:
        never); a time already past deletes the key.
        """
        key = _check_key(key)
        if expires_at is None:
            expiry = _expiry(ttl)
            gone = ttl is not None and ttl <= 0
        else:
            at = _expiry_at(ttl, expires_at)
            expiry, gone = (0.0, True) if at is None else (at, False)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            found = self._get_record(key)
            if found is None:
                return False
            if gone:
                self._delete_locked(key)
            elif not expiry and not found[1]:
                # No expiry to remove (persist() of a key that has none, Django's touch(key, None)):
                # rewriting the record would only add the value's size of dead bytes, every call.
                # (A new expiry equal to the old one is written: Redis's EXPIREAT counts as a change
                # of the key for WATCH even then, and kvb serve's WATCH sees the key's writes.)
                return True
            else:
                self._put_locked(key, found[0], expiry)
        self._after_write()
        return True

    def persist(self, key: bytes) -> bool:
        """Remove the expiry of ``key``; return whether it exists."""
        return self.expire(key, None)

    @overload
    def pop(self, key: bytes) -> bytes: ...

    @overload
    def pop(self, key: bytes, default: bytes | T) -> bytes | T: ...

    def pop(self, key: bytes, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``), atomically."""
        key = _check_key(key)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            value = self.get(key, _MISSING)
            if value is _MISSING:
                if default is _MISSING:
                    raise KeyError(key)
                return default
            self._delete_locked(key)
        self._after_write()
        return value

    def popitem(self) -> tuple[bytes, bytes]:
        """Remove and return the pair with the smallest key, atomically; KeyError if empty.

        Of many processes popping at once, each pair goes to exactly one, and none is told the
        store is empty while a key is left.
        The records of Redis keys (of ``kvb serve`` or ``kv_backend.structures`` on the same store) are
        left alone, as by a Store's popitem(): removing one alone damages its Redis key.
        """
        load("kv_backend.structures.layout")  # (fork-safely: see kv_backend.lazy)
        from kv_backend.structures.layout import pop_first  # (not at import: popitem's only)

        return pop_first(self, self._pop_pair, "store")

    def _pop_pair(self, key: bytes) -> tuple[bytes, bytes] | None:
        """Atomically remove ``key`` and return ``(key, value)``; None if it is absent."""
        value = self.pop(key, None)
        return None if value is None else (key, value)

    def setdefault(self, key: bytes, default: BytesLike | None = None) -> bytes:
        """Return the value of ``key``, storing ``default`` first if it is absent, atomically.

        Of many processes calling it at once for an absent key, one stores its ``default`` and
        all of them return that stored value.
        """
        data: bytes | None = None
        while True:
            value = self.get(key)
            if value is not None:
                return value
            if data is None:
                data = _check_value(default)  # checked only when it is to be stored, as by a dict
            if self.put_if_absent(key, data):
                return data

    def batch(self) -> Batch:
        """Collect puts and deletes and apply them all at once, or none of them.

        Use it as ``with db.batch() as b:``. The batch is written as one run of
        records closed by a COMMIT record; an exception inside the block
        discards it, and a crash before the COMMIT record reached the file
        leaves none of it visible.
        """
        self._check_writable()
        return Batch(self)

    def transaction(self: _W) -> _TransactionBlock[_W]:
        """Hold the write lock for a block whose writes all take effect together, or none of them.

        Use it as ``with db.transaction():``. Unlike :meth:`batch`, reads inside
        the block see its own writes, so a sequence of read-modify-writes over
        many keys (a Redis ``MULTI``/``EXEC``, a script) becomes one unit: other
        processes see none of it until the block ends, and a crash before then
        leaves none of it on disk. An exception leaving the block discards
        every write made in it. Blocks nest by joining the outer transaction.
        Other threads of this process that share this DB object wait to write,
        and, once the block has written, to read: they see the store as it was
        before the block or after it, never part of it (see
        docs/protocol.md). So do not wait, inside the block, for another
        thread that reads this DB object: it waits for the block.
        """
        self._check_writable()
        return _TransactionBlock(self)

    def _write_in_transaction(self, data: bytes, entries: list[tuple[int, bytes, int, int, float]]) -> None:
        """Append records of the open transaction, unpublished, and index them (write lock held).

        Every record carries the batch flag, so that until the transaction's
        COMMIT record follows them, recovery (after a crash) and every other
        process (which reads only up to the published tail) ignore them. The
        active file never rotates in the middle: a batch lives in one file.
        """
        txn = self._txn
        assert txn is not None
        if not entries:
            raise AssertionError("an unindexed write (a merge's tail marker) inside a transaction")
        if not all(data[off + 5] & _FLAG_BATCH for _, _, off, _, _ in entries):
            # Every write path encodes a transaction's records with the flag: a plain one among
            # them would end the batch early for recovery and readers, and break its atomicity.
            raise AssertionError("a record without the batch flag inside a transaction")
        (major, _), end = self._tail
        if not txn.count:
            if end + len(data) > self.max_file_size and end > rec.FILE_HEADER_SIZE:
                self._rotate(auto_merge=False)  # nothing of the transaction is written yet: start afresh
                (major, _), end = self._tail
            with self._rlock:
                self._seen = _IN_TRANSACTION  # from now on other threads' reads wait (see _refresh)
                # The same index and mappings in a new view object: a read of another thread
                # that took the view before this write sees it changed once it has looked the
                # key up, and reads again, waiting (see _Reading.get).
                kd, maps = self._view
                self._view = (kd, maps)
        new_end = end + len(data)
        if new_end > self._alloc:
            self._extend(new_end)
        self._append_at(data, end, (major << 40) | new_end)
        try:
            self._rlock.acquire()
            try:
                self._tail = ((major, 0), new_end)
                self._ix.apply(self._active_idx, end, entries)
            finally:
                self._rlock.release()
            txn.count += len(entries)
        except BaseException:
            # Cut short (a KeyboardInterrupt) with its records in the file but not all counted or
            # indexed: a COMMIT would count fewer records than the batch holds, and other processes
            # would drop its first ones. Caught inside the block or not, it can only be discarded.
            txn.doomed = True
            raise

    def _commit_transaction(self, txn: _Transaction) -> None:
        """Append the COMMIT record that closes the transaction's batch, and publish it all."""
        if not txn.count:
            self._end_transaction()
            return
        try:
            if self._syncer.failure is not None:
                self._retry_failed_fsync()  # (refused: the transaction is discarded)
            commit = rec.encode_commit(txn.count)
            (major, _), end = self._tail
            new_end = end + len(commit)
            if new_end > self._alloc:
                self._extend(new_end)
            tail = (major << 40) | new_end
            self._append_at(commit, end, tail)
        except BaseException:
            self._discard_transaction(txn)
            raise
        self._rlock.acquire()
        try:
            self._tailw.value = tail
            self._seen = tail
            self._tail = ((major, 0), new_end)
        finally:
            self._rlock.release()
        self._end_transaction()

    def _discard_transaction(self, txn: _Transaction) -> None:
        """Forget the transaction's writes: cut them off the file and rebuild the view without them."""
        if not txn.count or self._closed:
            self._end_transaction()
            return
        self._zero_unpublished()
        try:
            self._full_reload()  # its tail recovery cuts the uncommitted batch off the active file
        except BaseException:
            # The view still holds writes that were never committed: it must not serve reads.
            with contextlib.suppress(Exception):
                self.close()
            raise
        finally:
            self._end_transaction()

    def _zero_unpublished(self) -> None:
        """Overwrite the discarded batch with zeros and say nobody wrote past the published tail.

        Tail recovery would cut the file at its published end, under this
        process's mappings: a read of another thread that looked the key up
        just before the block first wrote (see docs/protocol.md) and reads its
        record now would touch pages past the end of the file and kill the
        process with SIGBUS. Zeros read as the end of the data, so recovery
        leaves the file as it is, and that read finds a damaged record, which
        it retries (see ``_Reading._stale``). On an OS error recovery cuts the
        batch off as before.
        """
        active = self._active
        tail = self._tailw.value
        major, pub_end = unpack_tail(tail)
        (cur, _), end = self._tail
        if active is None or cur != major or end <= pub_end:
            return
        try:
            write_zeros(active.fd, pub_end, end)
        except OSError:
            return
        self._intentw.value = tail

    def _end_transaction(self) -> None:
        """Close this thread's transaction and wake the other threads whose reads wait for it.

        If the last tail seen is still the transaction's mark, the view holds
        records that were never published (an exception, such as a
        KeyboardInterrupt, came between a write and its count, or in the
        commit): it is rebuilt from the files first, whose tail recovery cuts
        them off, so that no thread reads them and catch-up starts from a
        published tail again.
        """
        try:
            if self._seen == _IN_TRANSACTION and not self._closed:
                try:
                    self._full_reload()
                except BaseException:
                    with contextlib.suppress(Exception):
                        self.close()
                    raise
        finally:
            with self._txn_cond:
                self._txn = None
                self._txn_cond.notify_all()

    def _commit_batch(self, ops: list[tuple[int, bytes, bytes, float]]) -> None:
        parts: list[bytes] = []
        index: list[tuple[int, bytes, int, int, float]] = []
        off = 0
        for rtype, key, value, expiry in ops:
            r = _encode(rtype, key, value, expiry, _FLAG_BATCH)
            parts.append(r)
            index.append((rtype, key, off, len(r), expiry))
            off += len(r)
        if self._txn is None or self._txn.owner != threading.get_ident():
            parts.append(rec.encode_commit(len(ops)))
        # else: part of this thread's transaction, which writes one COMMIT for all its records
        data = b"".join(parts)
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            self._write(data, index)
        self._after_write()

    def clear(self) -> None:
        """Remove every key, atomically (one batch of deletes)."""
        self._check_writable()
        self._pre_catch_up()
        with self._lock:
            self._writer_catch_up()
            keys = list(self._view[0])
            if keys:
                try:
                    self._commit_batch([(rec.DELETE, k, b"", 0.0) for k in keys])
                except StorageError as exc:
                    raise self._no_room_to_clear(exc, keys) from exc

    def _no_room_to_clear(self, exc: StorageError, keys: list[bytes]) -> StorageError:
        """``exc``, a clear's failed batch of deletes of ``keys``, or, on a full disk, the error that says
        how much room the clear needs and what frees it."""
        if exc.errno != errno.ENOSPC:
            return exc
        need = sum(rec.HEADER_SIZE + len(k) for k in keys) + rec.HEADER_SIZE  # (the deletes, the COMMIT)
        err = StorageError(
            errno.ENOSPC,
            f"cannot clear {self.path}: the disk is full (no space left). A clear writes a delete record for "
            f"each of its {len(keys)} keys, about {need} bytes, and they do not fit; nothing was removed. "
            f"Free that much space on the filesystem of {self.path}, then clear again (a merge then "
            "reclaims the space of the cleared records); or, while no process has the store open, remove "
            "the directory, which empties it for good",
        )
        if exc.filename is not None:
            err.filename = exc.filename  # (set to None, str(err) would end in ": None")
        err.advice = "free space, then clear again"
        return err
