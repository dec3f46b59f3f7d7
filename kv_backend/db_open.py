"""Opening a store and following other processes: recovery of the tail, full reloads, replay."""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from kv_backend import record as rec
from kv_backend.db_common import (
    _FIRST_FILE,
    _HEADER_SIZE,
    _crc32,
    _PageToCome,
    _Parts,
    _pread,
    _StaticWord,
    _unpack_header,
)
from kv_backend.db_write import _IN_TRANSACTION
from kv_backend.errors import NotAStoreError, StorageError
from kv_backend.files import (
    FORMAT_FILE,
    LOCK_FILE,
    MERGE_LOCK_FILE,
    STATE_FILE,
    TMP_SUFFIX,
    DataFile,
    FileId,
    FormatText,
    data_name,
    format_file_text,
    fsync_dir,
    fsync_file,
    hint_name,
    list_data_files,
    missing_data_files,
    missing_files_text,
    remove_stray_hints,
    storage_error,
    write_all,
    write_zeros,
)
from kv_backend.hint import load as load_hints
from kv_backend.hint import lost_from, zeroed
from kv_backend.keydir import KeyDir
from kv_backend.lazy import log_warning
from kv_backend.locking import (
    MergeLock,
    WriteLock,
    deadline_kept,
    held_too_long,
    may_not_wait,
    pending_deadline,
    would_wait,
)
from kv_backend.owners import (
    give_back_roots_files,
    give_to_owner_of,
    share_with_directory_group,
)
from kv_backend.record import reader_of
from kv_backend.state import (
    REOPENS,
    SYNCING_MARK,
    SharedState,
    held_at_their_paths,
    page_for_reading,
    replaced_at_every_open,
    unpack_tail,
)
from kv_backend.store_id import add_store_id, format_text, new_store_id, parse_store_id, same_format_file
from kv_backend.unpublished import (
    Read,
    closed_at,
    closed_whole,
    data_end,
    end_without_page,
    filled_end,
    holds_nothing,
    kept_end,
    left_as_it_died,
    tail_end,
    tail_files,
    trusted_page,
    trusted_page_of,
)

if TYPE_CHECKING:
    import mmap

#: What an open knows of its store's id before it takes the write lock (see ``_Opening._open_one_store``):
#: True, it created the store with one; the inode number and size of the format file its check read one
#: in (on disk if that file is still in place under the lock); False, it read none.
IdSeen = bool | tuple[int, int]

_LOGGER = "kv_backend.db"  # (the engine's warnings: logging is imported at the first, see kv_backend.lazy)


def _clean_after(path: str, end: int) -> bool:
    """True if nothing but reserved zeros (or the end of the file) follows ``end``.

    Anything else past the published end was written by a writer that did not
    publish it: a dead writer's tail, or, after a power failure, records that
    were fsynced while the state page was not. Recovery then decides what to keep.
    """
    try:
        with open(path, "rb") as f:
            f.seek(end)
            after = f.read(rec.HEADER_SIZE)
    except OSError:
        return False
    if os.path.getsize(path) < end:
        return False
    return not after.strip(b"\0")


def _kept_past(f: DataFile, end: int) -> int:
    """Where the records of the active file ``f`` that tail recovery keeps past its published ``end``
    end (``end`` itself where none follow it, or the file is shorter than ``end``): see
    :func:`~kv_backend.unpublished.kept_end`."""
    try:
        size = f.size()
        return kept_end(f.reader(), end, size) if end <= size else end
    except OSError as exc:
        raise storage_error(exc, f"cannot read the end of {f.path}") from exc


def _log_cut_batch(path: str, at: int, end: int) -> None:
    """Log the cut of a batch without its COMMIT at ``at`` that ended the published part of the data file at
    ``path`` at ``end`` (see DB._cut_open_batch)."""
    log_warning(
        _LOGGER,
        "%s @ %d: a batch without its COMMIT ended the part of the file the STATE page publishes (%d "
        "bytes; damage to the page): it was never applied, and is cut as an unfinished write",
        path,
        at,
        end - at,
    )


def _file_size(path: str) -> int:
    """The size of the file at ``path``, -1 if it cannot be told."""
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _valid_end(fd: int, start: int, size: int) -> int:
    """Return the end of the last complete record (or batch) at or after ``start``."""
    pos = start
    for base, res in rec.scan_file(fd, start, size):
        pos = base + res.end
    return pos


def _replay(
    ix: KeyDir,
    f: DataFile,
    idx: int,
    start: int,
    end: int,
    corrupt: list[tuple[str, int]],
    *,
    published: bool = False,
    read: Read | None = None,
    closed: bool = False,
    open_at: list[int] | None = None,
) -> int:
    """Index the records of ``f`` from ``start`` up to ``end``; return where replay stopped.

    Reads big chunks and scans them in memory. Stops early at a torn or
    implausible record; records with sound lengths but a bad CRC are indexed
    (reading them raises CorruptionError) and listed in ``corrupt``.

    With ``published``, ``end`` is where published records end (a closed file's
    size, the active file's published end), so nothing there is a torn write: a
    header whose lengths cannot be sound (or zeros with data after them) is a
    damaged header, not the end of the data. The batch open there is applied (it
    was published with its COMMIT), reading resumes at the next confirmed sound
    record (:func:`~kv_backend.record.resync`), the damaged region is listed in
    ``corrupt`` and logged, and ``end`` is returned: a writer appends after the
    published end, never over records the damage hides.

    The bytes are read with ``read`` (by default :meth:`DataFile.reader`: the descriptor, or the
    mapping of a sealed file).

    With ``closed`` too (a closed file, whose end is no unfinished write), a batch still open where its
    data ends is ignored, as the format has it, and listed in ``corrupt``, as kvb check reports it: the
    file lost its COMMIT and whatever followed (it was cut at a record boundary). Otherwise, where
    ``open_at`` is given, the offset where such a batch starts is appended to it.
    """
    read = f.reader() if read is None else read
    pos = start
    while True:
        res = None
        base = pos
        for base, res in rec.scan_read(read, pos, end, trust_lengths=True):
            ix.apply(idx, base, res.entries)
            if res.corrupt:
                corrupt.extend((f.path, base + off) for off in res.corrupt)
            pos = base + res.end
        if not published:
            return pos
        if res is None or res.stop_at < 0 or res.stop_reason == "uncommitted batch" or pos >= end:
            if res is not None and res.stop_reason == "uncommitted batch":
                if closed:
                    corrupt.append((f.path, pos))
                elif open_at is not None:
                    open_at.append(pos)
            return end
        at = base + res.stop_at
        if res.pending:
            ix.apply(idx, base, res.pending)  # published, so its COMMIT was too (it lies in the damage)
        damaged = rec.damaged_key(read, at, end)
        if damaged is not None:
            # Its key is likely whole: reading it raises rather than returning an older value.
            ix.apply(idx, 0, [(rec.PUT, damaged[0], at, damaged[1], 0.0)])
        nxt = rec.resync(read, at, end)
        corrupt.append((f.path, at))
        log_warning(
            _LOGGER,
            "%s @ %d: damaged record header (%s); %d bytes skipped up to %s: %s. `kvb check %s` lists "
            "the damage; restore the store from a backup, or copy its readable keys with `kvb salvage`",
            f.path,
            at,
            res.stop_reason,
            (end if nxt is None else nxt) - at,
            "the end of the published data" if nxt is None else f"the next sound record at {nxt}",
            _lost_keys(None if damaged is None else damaged[0]),
            os.path.dirname(f.path),
        )
        if nxt is None:
            return end
        pos = nxt


#: What a read finds of a key whose newest record lay in bytes a data file lost, where nothing names the key.
UNKNOWN_READS = "a read of such a key finds the value it had before, or none"


def _lost_keys(key: bytes | None) -> str:
    """What the warning of a damaged region says of the keys its records held: ``key``, that of the damaged
    header that starts it where its key is whole (indexed as damaged: reading it raises), else none known.
    Whether the region held more records than that one cannot be told (its lengths may be the damage)."""
    if key is None:
        return f"the records there are lost, and which keys they held cannot be known ({UNKNOWN_READS})"
    shown = repr(key) if len(key) <= 100 else f"{key[:100]!r}... ({len(key)} bytes)"
    return (
        f"the record there held the key {shown}, whose reads raise CorruptionError; any other record in "
        f"those bytes is lost with it, and which keys such records held cannot be known ({UNKNOWN_READS})"
    )


def _lost_file(path: str, corrupt: list[tuple[str, int]], *, hinted: bool = False) -> None:
    """List and log a closed data file shorter than its header: it lost its records, as a damaged
    region loses them (see :func:`~kv_backend.unpublished.holds_nothing`); ``hinted`` where its hint
    file still names the keys they held (reading those raises CorruptionError): the region of zeros
    that stands in for them is listed then, as read through the hint file (see
    :func:`~kv_backend.hint.zeroed`)."""
    if not hinted:
        corrupt.append((path, 0))
    which = (
        "its hint file names the keys they held, whose reads raise CorruptionError"
        if hinted
        else f"which keys they held cannot be known ({UNKNOWN_READS})"
    )
    log_warning(
        _LOGGER,
        "%s: a closed data file shorter than its header: the records it held are lost, and %s. "
        "`kvb check %s` lists the damage; restore the store from a backup, or copy its readable keys "
        "with `kvb salvage`",
        path,
        which,
        os.path.dirname(path),
    )


def _replay_tail(
    ix: KeyDir, f: DataFile, idx: int, start: int, end: int, corrupt: list[tuple[str, int]]
) -> int:
    """Catch-up fast path: index a few plain records just published by another process.

    With several writers every process indexes every other process's writes,
    one or two records at a time, so this path is hot. It handles only small
    regions of complete, CRC-valid PUT and DELETE records outside batches and
    hands anything else to :func:`_replay`, which knows all the rules.
    """
    n = end - start
    if n > 8192:
        return _replay(ix, f, idx, start, end, corrupt, published=True)
    buf = _pread(f.fd, n, start)
    if len(buf) != n:
        return _replay(ix, f, idx, start, end, corrupt, published=True)
    items = []
    p = 0
    while p < n:
        if n - p < _HEADER_SIZE:
            return _replay(ix, f, idx, start, end, corrupt, published=True)
        crc, rtype, flags, klen, vlen, expiry = _unpack_header(buf, p)
        size = _HEADER_SIZE + klen + vlen
        if flags or not 0 < rtype < 3 or p + size > n or _crc32(buf[p + 4 : p + size]) != crc:
            return _replay(ix, f, idx, start, end, corrupt, published=True)
        items.append((rtype, buf[p + _HEADER_SIZE : p + _HEADER_SIZE + klen], p, size, expiry))
        p += size
    ix.apply(idx, start, items)
    return end


#: The DBs of this process whose open created their store (wrote its format file): see :func:`took_creation`.
#: (A DB has no room for another attribute.)
_creators: weakref.WeakSet[object] = weakref.WeakSet()


def took_creation(db: object) -> bool:
    """Whether opening ``db`` created its store (wrote the format file, which one open only does, under the
    write lock): of many processes creating one path at once, only that one's creation options apply
    (``kv_backend.dbm.open``'s ``mode``). Answers once: the note is dropped."""
    try:
        _creators.remove(db)
    except KeyError:
        return False
    return True


def _removed(path: str, directory: str) -> None:
    """Remove ``path`` (a file in ``directory``) and fsync the directory, as far as the system allows."""
    try:
        os.unlink(path)
        fsync_dir(directory)
    except OSError:
        pass  # (see _Opening._create_store)


class _InstallLock:
    """``with`` the write lock for the install of a reload's view: where the take fails (LockTimeoutError at a
    ``waiting_until`` deadline: the view stays as it was), the ``files`` opened and mapped for the new view
    are closed first, now, not when the error's traceback goes (a caller that keeps it would keep them)."""

    __slots__ = ("_files", "_lock")

    def __init__(self, lock: WriteLock, files: list[DataFile]) -> None:
        self._lock = lock
        self._files = files

    def __enter__(self) -> None:
        try:
            self._lock.acquire()
        except BaseException:
            for f in self._files:
                f.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class _Opening(_Parts):
    """Opening a store and following other processes: recovery of the tail, full reloads, replay."""

    def _open_one_store(self, found: FormatText | None) -> IdSeen:
        """Create the store if new (``found``, what :func:`~kv_backend.files.format_file_text` read of its
        format file, is None), and open its state page; then make sure that the ``LOCK`` and ``STATE``
        files this open holds are still the ones at their paths. Returns what the open knows of the
        store's id (see :data:`IdSeen`): True where this open created it with one, the inode number and
        size of the format file where the check read one there (an id never changes once on disk, so the
        open need not read the file again to add one, but that read was made without the lock: see
        :meth:`_full_reload`), False where it read none.

        Where one is not, another store directory took the path meanwhile (``kv_restore --replace`` swaps
        the restored store in): this open would hold the old store's locks and read the data files of the
        store now there, and its writes, excluding no one, would go to a store that was never locked.
        It lets go of them and opens the store at the path again (whose page a swap keeps locked until
        it is done: see :func:`~kv_backend.state.kept_unopened`); the data files are listed after this,
        so all of them are that store's. Only a few times: a path swapped at every open is an error.
        """
        for attempt in range(REOPENS):
            has_id: IdSeen = False
            if found is None:
                has_id = self._create_store()
            elif parse_store_id(found) is not None:
                has_id = found.seen
            self._open_state()
            st = self._state
            if st is None:
                self._lock.hold_directory()  # (the in-use lock, which an open takes on its page)
            if held_at_their_paths(self._lock, st):
                if st is None and self._lock.excludes_writers:
                    # (Where its lock keeps writers out: one that made the page could not be followed
                    # under a lock that keeps none out.)
                    self._tailw = _PageToCome(self.path)  # type: ignore[assignment]  # (only read)
                return has_id
            self._state = None
            if st is not None:
                # (The views into the page first: while they hold its mapping, it stays mapped, and
                # where a mapping holds a descriptor of its own, so does the page's in-use lock.)
                self._tailw, self._intentw = _StaticWord(), _StaticWord()
                st.close()
            self._lock.close()
            if attempt == REOPENS - 1:
                break
            found = format_file_text(self.path, create=not self.read_only)
            self._lock = WriteLock(os.path.join(self.path, LOCK_FILE), create=not self.read_only)
        raise replaced_at_every_open(self.path)

    def _create_store(self) -> bool:
        """Create the store (write its format file, with a new id) unless another process did meanwhile;
        whether this one did.

        Where a step fails (the fsync of the file, or of the directory once it is renamed into place), the
        file is removed again, under the lock, before the error is raised: the directory is as it was, and
        the next open creates the store, with an id of its own. A format file left in place would be a
        store whose id the disk may not keep, which other processes may open meanwhile. (Where it cannot be
        removed either, it stays: every reader that records an id makes it durable first, see
        :func:`~kv_backend.store_id.trusted_format`, and the next open uses the store.)"""
        with self._lock:
            marker = os.path.join(self.path, FORMAT_FILE)
            if os.path.exists(marker):
                return False
            tmp = marker + TMP_SUFFIX
            made: str | None = None  # (what is to be removed where a step fails)
            try:
                made = tmp
                with open(tmp, "w", encoding="utf-8") as f:
                    # Root making a store in a directory another user prepared for it (sudo kvb put)
                    # makes it that user's: every file added later gets this file's owner.
                    give_to_owner_of(f.fileno(), self.path)
                    share_with_directory_group(f.fileno(), self.path)
                    f.write(format_text(new_store_id()))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, marker)
                made = marker
                self._lock.give_to_store_owner()  # (made before the format file named the owner)
                fsync_dir(self.path)
            except OSError as exc:
                if made is not None:
                    _removed(made, self.path)
                raise storage_error(exc, f"cannot create a store in {self.path}") from exc
            # (Root only: the files this open made before there was a format file to name the owner, as
            # the state page of an open that read the file of a creator that then removed it.)
            give_back_roots_files(self.path)
            _creators.add(self)
            return True

    def _open_state(self) -> None:
        if self.read_only:
            st = page_for_reading(self.path, add=True)
            if st is None:
                # No writer has opened this store yet, and this process may not make the page for one
                # that will: it reads the store as it is, and looks for a page made later (see
                # _PageToCome). (Or it was swapped meanwhile: see _open_one_store.)
                return
        else:
            st = SharedState(os.path.join(self.path, STATE_FILE), writable=True)
        self._state = st
        self._tailw = st.tail
        self._intentw = st.intent
        if self._sync_interval is not None and not self.read_only:
            self._announce_fsyncs()

    def _announce_fsyncs(self) -> None:
        """Tell every writer of this store, before this process writes, that one of its writers relies
        on fsync: rotations then make the files they close and create durable (see
        _files_must_be_durable). Done at open under a sync policy; a caller that makes the fsyncs itself
        with ``sync="never"`` (kvb serve's group commit) calls it after the open."""
        st = self._state
        if st is not None and not st.last_sync.value:
            st.last_sync.value = SYNCING_MARK

    def _published(self) -> tuple[int, int] | None:
        """Return the published (tail word, generation), or None without a valid page."""
        st = self._state
        if st is None or not st.initialized:
            return None
        return st.tail.value, st.generation.value

    def _recover_tail_locked(self) -> None:
        """Make the state page and the active file agree (caller holds the write lock).

        Bytes past the published end were written by a writer that died before
        publishing (its intent word differs from the tail word). Complete
        records and committed batches among them are kept (they may have been
        fsynced), the first incomplete or damaged one and everything after it
        is cut off. Anything unusual (no page yet, a file shorter than
        published) bumps the generation so that every process rebuilds its
        key directory.
        """
        st = self._state
        assert st is not None and st.writable
        fids = list_data_files(self.path)
        gen = max(self._gen, 0) + 1
        if not fids or fids[-1][1] != 0:
            # No data file yet, or the newest file is a merge output: start a new active file.
            major = fids[-1][0] + 1 if fids else _FIRST_FILE[0]
            self._new_data_file((major, 0))
            if st.initialized:
                gen = max(gen, st.generation.value + 1)
            st.initialize(gen, major, rec.FILE_HEADER_SIZE)
            return
        active = fids[-1]
        path = os.path.join(self.path, data_name(active))
        # (Judged with every file listed, as readers judge it: a damaged page says nothing of which file
        # is the active one, and the store is then recovered as without a page.)
        page = self._trusted_page(fids)
        if page is not None and len(fids) > 1 and 0 <= _file_size(path) < rec.FILE_HEADER_SIZE:
            major = page[0]
            if fids[-2] == (major, 0) and major < active[0]:
                # A rotation that failed (disk full) or died before the next file had its
                # header: the file holds nothing and was never published. The previous file
                # stays the active one, so a full disk does not stop the store from opening.
                try:
                    os.unlink(path)
                except OSError as exc:
                    raise storage_error(exc, f"cannot remove the empty data file {path}") from exc
                # A process that opened the store meanwhile (a reader: it does not recover)
                # listed the file and keeps its descriptor; the next rotation creates a new
                # file of that name, which it must not take for the one it holds. The new
                # generation makes it list the files again at its next catch-up.
                st.generation.value = st.generation.value + 1
                fids.pop()
                active = fids[-1]
                path = os.path.join(self.path, data_name(active))
        for fid in [f for f in fids[:-1] if page is not None and f > (page[0], 0) and f[1] == 0]:
            # Between the file the page names and the newest, one shorter than a header: a rotation
            # that died before its header was whole, which later ones followed (a power failure kept
            # them and not the page). It holds nothing, and left here it would read as a closed file
            # that lost its records once the page names a newer one: removed, as the newest is.
            if 0 <= _file_size(os.path.join(self.path, data_name(fid))) < rec.FILE_HEADER_SIZE:
                try:
                    os.unlink(os.path.join(self.path, data_name(fid)))
                except OSError as exc:
                    raise storage_error(exc, f"cannot remove the empty data file {data_name(fid)}") from exc
                st.generation.value = st.generation.value + 1  # (see above)
                fids.remove(fid)
        start = rec.FILE_HEADER_SIZE
        published = False  # whether ``start`` is this file's published end
        if page is None and st.initialized:
            gen = max(gen, st.generation.value + 1)  # (a damaged page: rebuilt as without one)
        if page is not None:
            tail = st.tail.value
            major, end = unpack_tail(tail)
            if major == active[0]:
                if st.intent.value == tail and _clean_after(path, end):
                    return  # the common case: nothing to recover
                start, gen, published = end, st.generation.value, True
            else:
                gen = max(gen, st.generation.value + 1)
                if (major, 0) in fids and major < active[0]:
                    # A rotation died between creating the next file and publishing it:
                    # finish closing the previous file (cut its reserved zeros, and the torn
                    # write of a writer that died there after the rotation did).
                    closing = os.path.join(self.path, data_name((major, 0)))
                    end = self._cut_closing_batch(closing, major, end, gen)
                    self._close_exactly(closing, end, published=True)
        elif len(fids) > 1 and fids[-2][1] == 0 and 0 <= _file_size(path) <= rec.FILE_HEADER_SIZE:
            # (Once the active file holds a record, the rotation that made it had closed the file
            # before it: that file is closed, damage at its end included. One shorter than its
            # header gets it below: the file before it must be closed first, or its reserved zeros
            # would read as damage once the new file holds a record.)
            self._close_exactly(os.path.join(self.path, data_name(fids[-2])), rec.FILE_HEADER_SIZE)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise storage_error(exc, f"cannot open {path} for recovery") from exc
        try:
            size = os.fstat(fd).st_size
            if size < rec.FILE_HEADER_SIZE:
                os.ftruncate(fd, 0)
                write_all(fd, rec.FILE_HEADER_BYTES, 0)
                end = rec.FILE_HEADER_SIZE
            else:
                if start > size:
                    start = rec.FILE_HEADER_SIZE  # the file lost bytes: rescan it all
                    gen = max(gen, st.generation.value + 1)
                    published = False
                # Without a published end to go by, a damaged record with sound records after it
                # is damage to report, not a torn tail to cut (with everything after it).
                end = _valid_end(fd, start, size) if published else data_end(rec.file_reader(fd), start, size)
                if end < size:
                    os.ftruncate(fd, end)
                    # (Whatever ``sync`` says: a power failure that undid the cut would bring back the records
                    # of a transaction that never committed, into a file a rotation closes later, where
                    # every reader would apply them.)
                    fsync_file(fd)
        except OSError as exc:  # disk full, I/O error
            raise storage_error(exc, f"cannot recover the end of {path}") from exc
        finally:
            os.close(fd)
        if self._files_must_be_durable():
            # The active file may be one a rotation that died created, before the directory fsync that
            # makes its name durable: this writer's acknowledged writes go there (a file's fsync does
            # not make its name durable).
            try:
                fsync_dir(self.path)
            except OSError as exc:
                raise storage_error(exc, f"cannot fsync the directory {self.path}") from exc
        st.initialize(gen, active[0], end)

    def _trusted_page(self, fids: list[FileId]) -> tuple[int, int] | None:
        """The ``(major, end)`` of the tail the state page publishes, None without a valid page or where
        it is damaged (see :func:`~kv_backend.unpublished.trusted_page`)."""
        published = self._published()
        try:
            return trusted_page_of(
                self.path, fids, None if published is None else unpack_tail(published[0]), self._page_intent()
            )
        except OSError as exc:
            raise storage_error(exc, f"cannot read the data files of {self.path}") from exc

    def _page_intent(self) -> tuple[int, int] | None:
        """``(major, end)`` of the state page's intent word (read after its tail: see
        :func:`~kv_backend.unpublished.vouches`), None without a valid page."""
        st = self._state
        return unpack_tail(st.intent.value) if st is not None and st.initialized else None

    def _cut_closing_batch(self, path: str, major: int, end: int, gen: int) -> int:
        """The published ``end`` of the file at ``path`` (of major id ``major``) that a rotation that died
        did not close, moved back to the start of a batch without its COMMIT that ends its published part
        where nothing it keeps follows (see :func:`~kv_backend.unpublished.closed_at`): published there
        first, with the generation ``gen``, so that the batch is unpublished before the file is cut there
        (caller holds the write lock)."""
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                at = closed_at(rec.file_reader(f.fileno()), True, (major, end), end, size)
        except OSError as exc:
            raise storage_error(exc, f"cannot read the end of {path}") from exc
        if not 0 <= at < end:
            return end
        assert self._state is not None
        self._state.initialize(gen, major, at)
        # On disk before the cut: a power failure that kept the cut and not the new end would leave a file
        # shorter than its published end, read as one that lost acknowledged records (damage).
        self._state.flush()
        _log_cut_batch(path, at, end)
        return at

    def _close_exactly(self, path: str, start: int, *, published: bool = False) -> None:
        """Cut the reserved zeros off a file that should have been closed by a rotation.

        With ``published``, ``start`` is the file's published end: nothing after it
        was ever published, so, as tail recovery does for the active file, complete
        records and committed batches there are kept and the first incomplete or
        damaged one is cut off with all that follows (the write of a writer killed
        after the rotation died, which would otherwise read as a damaged record of
        a closed file and hide its key's acknowledged value).
        """
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise storage_error(exc, f"cannot open {path} for recovery") from exc
        try:
            size = os.fstat(fd).st_size
            # Without a published end (``start`` is then the file header's end), only reserved
            # zeros are cut, and a torn last write before them (the file was the active one):
            # anything else after the last good record is damage that `kvb check` must report,
            # never data to throw away.
            if published:
                if rec.FILE_HEADER_SIZE <= size < start:
                    # It lost bytes below its published end: all of it was published (the rotation had
                    # created the next file), so the records it lost were acknowledged. Cut at a record
                    # boundary, it would read as a sound file; filled with zeros up to there, as every
                    # reader reads it until now (unpublished.filled_end), the loss is damage they report.
                    os.ftruncate(fd, start)
                    size = start
                    if self._sync_interval is not None:
                        fsync_file(fd)
                end = _valid_end(fd, min(max(start, rec.FILE_HEADER_SIZE), size), size)
            elif size < rec.FILE_HEADER_SIZE:
                # It lost bytes down to inside its header (it holds no record, whatever they are, as
                # for the active file): it gets its header again, or it would read as a damaged
                # file once closed.
                os.ftruncate(fd, 0)
                write_all(fd, rec.FILE_HEADER_BYTES, 0)
                end = size = rec.FILE_HEADER_SIZE
                if self._sync_interval is not None:
                    fsync_file(fd)
            else:
                end = end_without_page(rec.file_reader(fd), size, closing=True)
            if end < size:
                os.ftruncate(fd, end)
                fsync_file(fd)  # (whatever ``sync`` says, as tail recovery's cut of the active file)
        except OSError as exc:  # disk full (filling it takes blocks where files cannot have holes), I/O error
            raise storage_error(exc, f"cannot finish closing {path}") from exc
        finally:
            os.close(fd)

    def _full_reload(self, has_id: IdSeen = True) -> None:
        """Rebuild the key directory from the data files (open, and after a merge).

        At a writable open of a store that may have no id (``has_id``: see :meth:`_open_one_store`), give
        it one under the lock (see :func:`~kv_backend.store_id.add_store_id`): where the format check read
        none, and where it read one but the file is no longer the one it read (one ``stat``): another
        process was adding that id, and put the old file back when it could not make it durable. Where the
        file is gone (the process creating the store could not make it durable, and removed it: see
        :meth:`_create_store`), this open creates the store.

        Listing and opening the files happens under the write lock, so it sees
        a file set no merge is changing; the replay itself runs outside it, so
        other processes keep writing meanwhile.

        Both takes of the lock (the listing's and the install's) wait only until this thread's pending
        ``waiting_until`` deadline, if it has one: the first take gives it back once it lets the lock go
        (see :func:`~kv_backend.locking.deadline_kept`), as it wrote nothing of the call; another process
        may take the lock during the replay and hold it long. A LockTimeoutError there leaves the view
        as it was (the next call reloads).
        """
        writable = not self.read_only
        with deadline_kept(), self._lock:
            if writable:
                self._clean_merge_leftovers()
                give_back_roots_files(self.path)  # (root only: what earlier versions left root's)
                if self._gen < 0 and not (
                    has_id is True or (has_id is not False and same_format_file(self.path, has_id))
                ):
                    if not os.path.lexists(os.path.join(self.path, FORMAT_FILE)):
                        # (Its creator, whose fsync failed, removed the file the check read: created here.)
                        self._create_store()
                    add_store_id(self.path)  # (at the open alone: a store made before ids gets one)
                self._recover_tail_locked()
                self._fill_lost_locked()
            published = self._published()
            intent = self._page_intent()
            fids = list_data_files(self.path)
            if self._gen < 0 and (missing := missing_data_files(fids)):
                log_warning(_LOGGER, "%s", missing_files_text(self.path, missing))  # (at the open alone)
            if published is not None:
                tail, gen = published
                major, end = unpack_tail(tail)
                active_fid: FileId = (major, 0)
            else:
                tail, gen, end = 0, 0, -1
                active_fid = fids[-1] if fids else _FIRST_FILE
            files: list[DataFile] = []
            for fid in fids:
                try:
                    files.append(DataFile(self.path, fid, writable=writable and fid == fids[-1]))
                    if fid < active_fid:
                        # Closed: it never changes again, and the mapping alone keeps it (see
                        # filemaps), so the open needs no descriptor per file, even for a moment.
                        files[-1].seal()
                except (NotAStoreError, OSError) as exc:
                    # Closed now, not when the error's traceback goes: a caller that keeps it (a test
                    # runner's report) kept thousands of descriptors open, and its next open failed too.
                    for f in files:
                        f.close()
                    if isinstance(exc, NotAStoreError):
                        raise  # another format version: says what to do
                    where = os.path.join(self.path, data_name(fid))  # (which store's: a site's log has many)
                    raise storage_error(exc, f"cannot open data file {where}") from exc
            # Read under the write lock, which a writer holds from its intent to its publication: records
            # past the published end of the file the page names are then none a live writer is writing,
            # but those of one that died (or that a power failure kept while the page lagged them), which
            # the next writer's recovery keeps, whether that file is still the active one or a rotation
            # that died left a newer file after it (a read-only open: a writer's has just done so). Read
            # as it keeps them, never an older value in their place; catch-up replays on from their end.
            kept = -1
            named = [f for f in files if f.fid == active_fid]
            if not writable and end >= 0 and named and self._lock.excludes_writers:
                kept = _kept_past(named[0], end)
        sizes = {f.fid: f.size() for f in files}
        small = bool(files) and sizes[fids[-1]] <= rec.FILE_HEADER_SIZE
        head = files[-1].reader()(0, rec.FILE_HEADER_SIZE) if small else None
        page = (major, end) if published is not None else None
        if (
            page is not None
            and trusted_page(fids, head, page, lambda i: (files[i].reader(), sizes[fids[i]]), intent) is None
        ):
            # A damaged page (a read-only open: a writer's recovery rebuilds it): read as without one,
            # as recovery reads it (``tail`` and ``gen`` kept, so that only a writer's change of the
            # page makes this process look again).
            published, page, end, active_fid = None, None, -1, fids[-1]
        newest, rotated = tail_files(fids, head, page)
        # The files whose records are all published up to ``limit`` below: with a page, the files
        # before the one it names and that one (to its published end); without one, all but the
        # newest file and, while that holds only its header, the one before it (whose ends a crash
        # may have torn, see file-format.md).
        # (A page naming a file that is gone gives no published end: the newest file's is read from its
        # bytes, as without a page, and as tail recovery reads it.)
        gone = published is not None and bool(fids) and fids[-1][1] == 0 and active_fid not in fids
        if published is not None:
            # (Files after the one it names, but the newest, are closed too: recovery adopts the newest.)
            whole = set(fids[:newest]) | ({active_fid} & set(fids))
        else:
            rotating = len(fids) > 1 and fids[-1][1] == 0 and fids[-2][1] == 0
            # (A merge output is never active: with one newest, every file is closed.)
            newest_active = [fid for fid in fids[-1:] if fid[1] == 0]
            open_ends = fids[-2:] if rotating and sizes[fids[-1]] <= rec.FILE_HEADER_SIZE else newest_active
            whole = set(fids) - set(open_ends)
        ix = KeyDir()
        # Where a batch without its COMMIT starts that ends the published part of the active file (a
        # writer's open: see _cut_open_batch).
        open_at: list[int] = []
        # Where such a batch starts in the file a rotation that died did not close, which the page names.
        closing_open: list[int] = []
        cuts = writable and page is not None
        fidx: dict[FileId, int] = {}
        file_sizes: dict[FileId, int] = {}
        corrupt: list[tuple[str, int]] = []
        through_hints: set[str] = set()  # the files read through their hint files
        maps: list[mmap.mmap | bytes] = []
        for idx, f in enumerate(files):
            fidx[f.fid] = idx
            if sizes[f.fid] < rec.FILE_HEADER_SIZE and not holds_nothing(fids, idx, newest, rotated, page):
                hinted = (f.fid != active_fid or f.fid[1] != 0) and (
                    lost_from(self._hint_path(f.fid), sizes[f.fid]) is not None
                )
                _lost_file(f.path, corrupt, hinted=hinted)
            limit = end if (f.fid == active_fid and end >= 0) else sizes[f.fid]
            if f.fid == active_fid and limit == end and kept > end and idx in (newest, rotated):
                # (Not where the newest file is a merge output: recovery then reads the named file whole.)
                limit = kept
            view_bytes: mmap.mmap | bytes | None = None
            hints = None
            if f.fid != active_fid or f.fid[1] != 0:
                # (A merge output is closed even where, newest without a page, it stands for the active
                # file here: read through its hint file, as once recovery has created the active file.)
                hints = load_hints(self._hint_path(f.fid), sizes[f.fid])
                lost = None if hints is not None else lost_from(self._hint_path(f.fid), sizes[f.fid])
                if lost is not None:
                    # It lost bytes below the size its hint file gives (a read-only open: a writer
                    # fills it): read through its hint file as filled with zeros up to there, so that
                    # the keys it lost raise CorruptionError (see hint.lost_from).
                    view_bytes = f.filled(sizes[f.fid], lost)
                    hints = load_hints(self._hint_path(f.fid), lost)
            if hints is not None:
                ix.apply_hints(idx, hints)
                file_sizes[f.fid] = sizes[f.fid] if view_bytes is None else len(view_bytes)
                # The records it lost, where zeros stand in for them (read so, or filled so by a writer's
                # recovery): a read of their keys raises CorruptionError; one damaged region, as kvb
                # check counts it (and replay counts a region).
                read = f.reader() if view_bytes is None else reader_of(view_bytes)
                corrupt.extend((f.path, off) for off in zeroed(hints, read, file_sizes[f.fid])[:1])
                through_hints.add(f.path)
            else:
                size = sizes[f.fid]
                read = f.reader()
                filled = filled_end(fids, idx, newest, page, size)
                if filled is not None:
                    # It lost bytes below its published end before a newer file (a read-only open:
                    # a writer's recovery fills it): read, and served, as recovery fills it, with zeros
                    # up to there (the loss is damage, see unpublished.filled_end), never past the
                    # mapping of what it holds (neither copied into memory: see filemaps.map_filled).
                    view_bytes = f.filled(size, filled)
                    read, size = reader_of(view_bytes), filled
                pub = f.fid in whole and limit <= size
                if (
                    not pub
                    and size >= rec.FILE_HEADER_SIZE
                    and (published is None or limit > size or gone or f.fid > active_fid)
                ):
                    # No published end (a read-only open of a store no writer opened since it was
                    # copied, or whose active file lost bytes, or whose page lags a newer file that a
                    # power failure kept): the end of a file a crash may have left unfinished is read
                    # from its bytes, as tail recovery would (file-format.md, "The end of the active
                    # file").
                    page_end = end if published is not None and f.fid == active_fid else None
                    limit, pub = tail_end(read, size, page_end, closing=idx == rotated), True
                file_sizes[f.fid] = _replay(
                    ix,
                    f,
                    idx,
                    rec.FILE_HEADER_SIZE,
                    limit,
                    corrupt,
                    published=pub,
                    read=read,
                    closed=idx not in (newest, rotated)
                    or closed_whole(idx == rotated, published, limit, size),
                    open_at=open_at
                    if cuts and f.fid == fids[-1] == active_fid
                    else closing_open
                    if idx == rotated and page is not None
                    else None,
                )
                if closing_open and not left_as_it_died(read, limit, size):
                    # (With a page, recovery closes the file a rotation that died left where the records it
                    # keeps past the published end end, a batch open there damage; but where what follows is
                    # what a writer that died leaves, before the batch, which it cuts: see closed_at.)
                    corrupt.append((f.path, closing_open[0]))
            if (sizes[f.fid] if view_bytes is None else len(view_bytes)) >= rec.FILE_HEADER_SIZE and (
                rec.damaged_file_header(read(0, 12))
            ):
                # A damaged file header (its records are read all the same: each has its own CRC), as kvb
                # check counts it; one a file that lost bytes was filled with too (see hint.lost_from).
                corrupt.append((f.path, 0))
            maps.append(view_bytes if view_bytes is not None else f.mm if f.mm is not None else b"")
            if f.fid < active_fid:
                f.seal()  # indexed, and never written again: the mapping alone serves reads
        if self._ix.sorted is not None:
            ix.ensure_sorted()
        active = files[-1] if (files and writable and files[-1].fid == active_fid) else None
        # Install under the write lock too, so no write of this process can fall
        # between the snapshot and the install; anything published since the
        # snapshot is replayed by the next catch-up (``_seen`` is the snapshot's).
        with _InstallLock(self._lock, files):
            if open_at and active is not None and self._cut_open_batch(active, tail, gen, open_at[0]):
                # (This view holds nothing of the batch: installed at the tail published now.)
                assert self._state is not None
                tail, gen = self._state.tail.value, self._state.generation.value
                file_sizes[active_fid] = open_at[0]
            replaced = self._active
            if (
                replaced is not None
                and self._sync_interval is not None
                and (active is None or replaced.fid != active.fid)
            ):
                # A write of another thread may have rotated to ``replaced`` and written there
                # since the snapshot: its fsync, which runs after the lock, would now find the
                # snapshot's (older) active file. Flush it here, before the view goes back.
                self._fsync_data_file(replaced)
            for old in self._files:
                if old.unsynced and (i := fidx.get(old.fid)) is not None:
                    files[i].unsynced = True  # (for close() and sync(): see DB._sync_written)
            with self._rlock:
                if self._ix.sink is not None:
                    # which keys differ from the index being replaced is not known: a follower
                    # must assume every key may have changed (see DB.take_changes)
                    ix.sink = self._ix.sink
                    ix.sink_lost = True
                self._ix = ix
                self._files = files
                self._view = (ix.kd, maps)
                self._fidx = fidx
                self._sizes = file_sizes
                # Damage a read of this process found in a file read through its hint file (whose records
                # are checked only when read) is still there: such a file never changes (a fill only
                # adds zeros), and a merge, which drops its damage, removes it.
                found = set(corrupt)
                corrupt += [c for c in self._corrupt if c[0] in through_hints and c not in found]
                self._corrupt = corrupt
                self._gen = gen
                self._tail = (active_fid, file_sizes.get(active_fid, rec.FILE_HEADER_SIZE))
                self._active = active
                self._active_idx = len(files) - 1
                # What the mapping covers, not the size: another writer may have grown the file
                # since it was mapped (and then failed before writing there), and a write this
                # process indexes itself past its mapping would read back as damaged.
                self._alloc = len(maps[fidx[active_fid]]) if active_fid in fidx else 0
                self._seen = tail

    def _cut_open_batch(self, active: DataFile, tail: int, gen: int, at: int) -> bool:
        """Publish ``at``, where a batch without its COMMIT that ends the published part of the ``active``
        file starts, as its end, and overwrite the batch with zeros; whether it did (caller holds the write
        lock; ``tail`` and ``gen``, the page's words the view was read at, must still be there).

        No writer publishes an end inside a batch (it publishes the batch with its COMMIT): damage to the
        tail word left it there, and what followed was zeroed or cut. No reader applies the batch, but a
        rotation would close the file at that end, and a closed file ending in an open batch is damage,
        which every merge refuses. It is an unfinished write, cut as recovery cuts one: every process
        reads the files again (a new generation), and the zeros read as reserved space."""
        st = self._state
        assert st is not None
        if st.tail.value != tail or st.intent.value != tail or st.generation.value != gen:
            return False  # (another writer published since: the batch is no longer at the end)
        major, end = unpack_tail(tail)
        st.initialize(gen + 1, major, at)
        # On disk before the zeros: a power failure that kept them and not the new end would leave zeros
        # inside the published part, damage every reader reports.
        st.flush()
        try:
            write_zeros(active.fd, at, end)
        except OSError as exc:
            raise storage_error(exc, f"cannot cut the open batch at the end of {active.path}") from exc
        _log_cut_batch(active.path, at, end)
        return True

    def _fill_lost_locked(self) -> None:
        """Fill with zeros up to the size its hint file gives a closed data file that lost bytes below it
        (see :func:`~kv_backend.hint.lost_from`), as every reader reads it until then: read through its
        hint file, the keys whose records it lost raise CorruptionError, never silently gone (caller
        holds the write lock; a new generation makes every process read it again)."""
        fids = list_data_files(self.path)
        for fid in fids:
            path = os.path.join(self.path, data_name(fid))
            if (fid == fids[-1] and fid[1] == 0) or (
                end := lost_from(self._hint_path(fid), _file_size(path))
            ) is None:
                continue
            log_warning(
                _LOGGER,
                "%s: a closed data file that lost bytes below the size its hint file gives (%d of %d "
                "bytes left): filled with zeros, and its hint file names the keys it held, whose reads "
                "raise CorruptionError. `kvb check %s` lists the damage; restore the store from a "
                "backup, or copy its readable keys with `kvb salvage`",
                path,
                _file_size(path),
                end,
                self.path,
            )
            try:
                fd = os.open(path, os.O_RDWR)
                try:
                    os.ftruncate(fd, end)
                    if self._sync_interval is not None:
                        fsync_file(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise storage_error(exc, f"cannot fill {path} up to the size its hint file gives") from exc
            assert self._state is not None
            self._state.generation.value = self._state.generation.value + 1

    def _hint_path(self, fid: FileId) -> str:
        return os.path.join(self.path, hint_name(fid))

    def _clean_merge_leftovers(self) -> None:
        """Remove temporary files of a merge that died (only when no merge runs), and stray hint
        files (caller holds the write lock, under which every merge switches over)."""
        names = os.listdir(self.path)
        remove_stray_hints(self.path, names)
        tmps = [n for n in names if n.endswith(TMP_SUFFIX)]
        if not tmps:
            return
        lock = MergeLock(os.path.join(self.path, MERGE_LOCK_FILE))
        if not lock.try_acquire():
            return
        try:
            for name in tmps:
                try:
                    os.unlink(os.path.join(self.path, name))
                except FileNotFoundError:
                    pass
        finally:
            lock.release()

    def _refresh(self) -> None:
        """Catch up with records other processes published since we last looked.

        While a thread has written in a :meth:`~kv_backend.db.DB.transaction`,
        the last tail seen is a mark no tail equals, so every read comes here:
        the transaction's own thread reads on (its view holds its writes), and
        other threads wait for it to end, so they never read what it may yet
        discard. A thread that may not wait (``kvb http``'s event loop, see
        :func:`~kv_backend.locking.may_not_wait`) gets LockTimeoutError instead,
        having done nothing; one under a ``waiting_until`` deadline waits until
        then at most (see :meth:`_wait_for_transaction`).
        """
        if may_not_wait():
            raise would_wait(self.path)
        txn = self._txn
        if txn is not None:
            if txn.owner == threading.get_ident():
                return
            self._wait_for_transaction()
        self._rlock.acquire()
        try:
            done = self._catch_up()
        finally:
            self._rlock.release()
        if not done:
            with deadline_kept():  # (its takes of the lock write nothing of the call that reads or writes)
                self._full_reload()

    def _wait_for_transaction(self) -> None:
        """Wait for another thread's transaction that has written to end (see :meth:`_refresh`): until this
        thread's ``waiting_until`` deadline at most, if a take of the lock has not spent it (a write of
        ``kvb http``), then raise LockTimeoutError, nothing written, as that take would."""
        me = threading.get_ident()
        deadline = pending_deadline()
        with self._txn_cond:
            # Only while the block has written: one that has not (it may read first, or only
            # read) holds nothing this view lacks, and its catch-up at the lock left none to do.
            while (
                (txn := self._txn) is not None
                and txn.owner != me
                and self._seen == _IN_TRANSACTION
                and not self._closed  # close() wakes them: _catch_up raises DatabaseClosedError
            ):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise held_too_long(self.path)
                self._txn_cond.wait(left)

    def _adopt_page(self) -> bool:
        """Map the state page a writer made since this read-only process opened the store without one (see
        :class:`~kv_backend.db_common._PageToCome`; caller holds ``_rlock``), and take its in-use lock
        too; whether it did. Where it cannot (too short, unreadable to this user), look again later."""
        try:
            # (A call under a waiting_until deadline waits for its in-use lock, which a tool swapping the
            # store out holds exclusively, until then at most: LockTimeoutError, nothing changed, the next
            # read maps it.)
            st = page_for_reading(self.path, add=False, until=pending_deadline())
        except StorageError:
            st = None
        if st is not None and not held_at_their_paths(self._lock, st):
            st.close()  # (another store at the path: a filesystem without locks on directories)
            st = None
        if st is None:
            self._tailw = _PageToCome(self.path)  # type: ignore[assignment]  # (only read)
            return False
        self._state = st
        self._tailw, self._intentw = st.tail, st.intent
        return True

    def _catch_up(self) -> bool:
        """Replay what was published since we last looked (caller holds ``_rlock``).

        Returns False when the file set changed (a merge) and the caller must
        do a full reload instead.
        """
        if self._closed:
            self._raise_closed()
        if self._txn is not None:
            # A transaction began since this thread looked (nobody else can publish while it holds
            # the lock): there is nothing to catch up with, and its tail is not a published one.
            return True
        published = self._published()
        if published is None or published[0] == self._seen:
            # (A read-only open without a page whose look found one made since: mapped, read again.)
            return published is not None or self._state is not None or not self._adopt_page()
        tail, gen = published
        if gen != self._gen:
            return False
        major, end = unpack_tail(tail)
        fid: FileId = (major, 0)
        cur, pos = self._tail
        files = self._files
        maps = self._view[1]
        ix = self._ix
        writable = not self.read_only
        try:
            while True:
                idx = self._fidx.get(cur)
                if idx is None:
                    f = DataFile(self.path, cur, writable=writable and cur == fid)
                    files.append(f)
                    maps.append(f.mm if f.mm is not None else b"")
                    idx = self._fidx[cur] = len(files) - 1
                    if writable and cur == fid:
                        self._active = f
                        self._active_idx = idx
                        self._alloc = len(maps[idx])  # what is mapped (see _full_reload)
                f = files[idx]
                stop = end if cur == fid else f.size()
                if len(maps[idx]) < stop:
                    # Mapped before it is indexed, so that no key points past its file's mapping
                    # if this fails (no descriptor left: mapping one takes one before Python 3.13).
                    maps[idx] = f.remap()
                if cur == fid:
                    self._sizes[cur] = _replay_tail(ix, f, idx, pos, stop, self._corrupt)
                    break
                self._sizes[cur] = _replay(ix, f, idx, pos, stop, self._corrupt, published=True, closed=True)
                f.seal()  # another process closed this file: all of it is indexed and mapped
                cur, pos = (cur[0] + 1, 0), rec.FILE_HEADER_SIZE
                # Indexed up to here: a catch-up that fails further on (the next file cannot be
                # opened) resumes here, and never reads the file just sealed through its fd again.
                self._tail = (cur, pos)
        except FileNotFoundError:
            return False  # the file set changed under us (a merge finished)
        except OSError as exc:  # no descriptor left (EMFILE), an I/O error
            raise storage_error(exc, f"cannot read the writes other processes made to {self.path}") from exc
        self._tail = (fid, end)
        self._seen = tail
        return True
