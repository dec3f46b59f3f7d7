"""Snapshots of a store's files, as backups copy them: taken under the write lock, with or without an
open :class:`~kv_backend.db.DB`.

A backup needs the store's file list, the active file's published end and each file held so that a merge
cannot take it away (see :class:`SnapshotFile`), not the key directory: :func:`store_snapshot` takes
them from a store's directory with the lock and the state page alone, so that a backup of a store that
is not open (``kvb backup``) does not replay its whole log first.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kv_backend import record as rec
from kv_backend.errors import CorruptionError, StorageError
from kv_backend.filemaps import MAPS_HOLD_FD, map_file
from kv_backend.files import (
    FORMAT_FILE,
    FORMAT_TEXT,
    LOCK_FILE,
    FileId,
    FormatText,
    data_name,
    foreign_version_error,
    hint_name,
    list_data_files,
    prepare_directory,
    read_format,
    storage_error,
)
from kv_backend.hint import lost_from
from kv_backend.locking import WriteLock
from kv_backend.state import (
    REOPENS,
    SharedState,
    held_at_their_paths,
    page_for_reading,
    page_intent,
    replaced_at_every_open,
    unpack_tail,
)
from kv_backend.store_id import add_store_id, format_repair, not_utf8, trusted_format
from kv_backend.unpublished import closed_at, kept_end, tail_files, trusted_page_of

__all__ = ["Snapshot", "SnapshotFile", "read_format_file", "store_snapshot", "take_snapshot"]


class SnapshotFile:
    """One file of a frozen snapshot: its name, an open fd (or, once :meth:`let_go`, a read-only map of it
    and its identity), and how many bytes belong to it."""

    __slots__ = ("closing", "fd", "filled_from", "ident", "length", "mm", "name", "path", "tail")

    def __init__(self, name: str, fd: int, length: int, path: str = "") -> None:
        self.name = name
        self.fd = fd
        self.path = path
        self.mm: mmap.mmap | bytes = b""
        self.ident = (-1, -1)  # (st_dev, st_ino) of the file, once let go of
        self.length = length
        self.filled_from = length
        """Where zeros stand for the bytes up to ``length`` (a file that lost bytes below its published
        end, read as recovery fills it: see :func:`kv_backend.unpublished.filled_end`)."""
        self.tail = False
        """Whether the data file may end in an unfinished write (no published end bounds it)."""
        self.closing = False
        """Whether that is the file a rotation that died did not finish closing (see kvb check)."""

    def let_go(self) -> None:
        """Close the fd of a file that never changes again (a closed data file, a hint file), keeping
        the file through a read-only map that holds no descriptor (see :mod:`kv_backend.filemaps`):
        a merge that removes the file meanwhile leaves it readable, as the fd did, and a snapshot of
        any number of files holds a few descriptors. Reads open the file again by its name, where it
        is still the file mapped (an I/O error of the disk is then a StorageError, where a read of
        the map would end the process with SIGBUS), and read the map where it is gone."""
        st = os.fstat(self.fd)
        if st.st_size:
            try:
                self.mm = map_file(self.fd, st.st_size)
            except (OSError, ValueError):  # (out of map areas; cut meanwhile, by another program)
                return  # the fd is kept
        self.ident = (st.st_dev, st.st_ino)
        fd, self.fd = self.fd, -1
        os.close(fd)

    def read(self, offset: int, size: int) -> bytes:
        """Read up to ``size`` bytes at ``offset`` (never past ``length``)."""
        size = max(0, min(size, self.length - offset))
        held = max(0, min(size, self.filled_from - offset))
        try:
            data = self._pread(held, offset) if held else b""
        except OSError as exc:  # an I/O error of the disk the store is on
            raise storage_error(exc, f"cannot read {self.name} of the store") from exc
        return data + bytes(size - held) if len(data) == held else data

    def reader(self) -> Callable[[int, int], bytes]:
        """:meth:`read` as ``read(offset, n)``, telling where the file holds no bytes (the zeros that
        stand for what it lost: see :func:`kv_backend.record.data_from`), which a check of the snapshot
        skips unread."""
        return rec.zeros_past(self.read, self.filled_from)

    def _pread(self, n: int, offset: int) -> bytes:
        if self.fd >= 0:
            return os.pread(self.fd, n, offset)
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:  # removed by a merge, no descriptor left: the map holds its bytes
            return self.mm[offset : offset + n]
        try:
            if ((st := os.fstat(fd)).st_dev, st.st_ino) != self.ident:
                return self.mm[offset : offset + n]  # (not the file the snapshot holds)
            return os.pread(fd, n, offset)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the fd, or the map."""
        fd, self.fd = self.fd, -1
        mm, self.mm = self.mm, b""
        if fd >= 0:
            os.close(fd)
        if isinstance(mm, mmap.mmap):
            try:
                mm.close()
            except BufferError:
                pass

    def __repr__(self) -> str:
        return f"<SnapshotFile {self.name} {self.length} bytes>"


class Snapshot(list[SnapshotFile]):
    """The files of a snapshot (see :func:`take_snapshot`), and ``store_format``: the content of the
    store's format file (its id on the second line, where it has one), read under the write lock the
    files were frozen under. A process giving the store an id holds that lock until the id is on disk
    (see :func:`~kv_backend.store_id.add_store_id`): an id read here is one a backup may record."""

    store_format: str = FORMAT_TEXT


def read_format_file(path: str, lock_path: str | None = None) -> str:
    """The content of the format file of the store at ``path`` as a backup records it: the whole file, the
    first line alone where it is empty or cannot be read (the store then has no id), or where it names an
    id that is not trusted (see :func:`~kv_backend.store_id.trusted_format`, with ``keep_first`` False:
    looked at again under the write lock whose lock file is ``lock_path``, the store's ``LOCK`` by default,
    waited for a second at most, and the directory fsynced). CorruptionError where the file is not UTF-8
    text (see :func:`_read_whole`)."""
    text = trusted_format(path, lock_path or os.path.join(path, LOCK_FILE), _read_whole, keep_first=False)
    return str(text) if text else FORMAT_TEXT


def _read_whole(path: str) -> FormatText:
    """The whole format file of the store at ``path`` (see :func:`read_format_file`), which a manifest
    records as text: CorruptionError where it holds bytes that are not UTF-8 (damage; the store itself
    opens, its first line being whole, and ``kvb check`` and ``kvb salvage`` read it)."""
    try:
        return read_format(path, -1, "strict")
    except UnicodeDecodeError as exc:
        raise _undecodable_format(path, exc) from exc


def _undecodable_format(path: str, exc: UnicodeDecodeError) -> CorruptionError:
    """The error of a backup of the store at ``path`` whose format file is not UTF-8 (``exc``, from a
    decode of the whole file), saying what to do: cut the file back to its sound lines."""
    marker = os.path.join(path, FORMAT_FILE)
    data = bytes(exc.object)
    return CorruptionError(
        f"{marker} holds {not_utf8(data, exc.start)}: damage to the file, which a backup records as text, so "
        "nothing was backed up: repair it, then back the store up again. The store's data is not affected "
        "(kvb check reads it, kvb salvage copies it into a new store); "
        + format_repair(marker, data, exc.start),
        marker,
        exc.start,
    )


def take_snapshot(
    path: str, lock: WriteLock, published_now: Callable[[], tuple[int, int] | None]
) -> Snapshot:
    """Freeze the files of the store at ``path`` under ``lock`` (see :meth:`kv_backend.DB.snapshot_files`);
    ``published_now()`` reads the state page's (tail word, generation), None without a valid page.

    The snapshot holds every data and hint file (a merge may remove them while a backup copies them):
    those that never change again through a read-only map that keeps no descriptor (see
    :meth:`SnapshotFile.let_go`), the newest data files and the one the page names (which a writer's
    recovery may cut past what the snapshot holds of them) through a descriptor each. Where maps keep a
    descriptor (see :data:`kv_backend.filemaps.MAPS_HOLD_FD`), every file keeps its descriptor, and
    where the process runs out of them (a store of more files than the soft limit, often 1,024), the
    soft limit is raised to the hard one, as far as it allows, and the snapshot taken again.
    """
    try:
        return _take_snapshot(path, lock, published_now)
    except StorageError as exc:
        if not (isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.EMFILE and _more_fds()):
            raise
    return _take_snapshot(path, lock, published_now)


def _more_fds() -> bool:
    """Raise this process's soft limit of open files to its hard limit; whether it rose."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return True
    except (ImportError, ValueError, OSError):
        pass
    return False


def _keep_past(named: SnapshotFile, end: int, closing: tuple[int, int] | None = None) -> None:
    """Copy of the data file the page names the records tail recovery keeps after its published ``end``
    (see :func:`~kv_backend.unpublished.kept_end`; caller holds the write lock). ``closing``, the page's
    tail where that file is the one a rotation that died did not close: copied up to where recovery closes
    it (:func:`~kv_backend.unpublished.closed_at`: before a batch open at that end that it cuts)."""
    size = os.fstat(named.fd).st_size
    if named.length == end and (end < size or (closing is not None and end == size)):
        named.length = size  # (what ``read`` reads)
        if closing is not None:
            named.length = closed_at(named.read, True, closing, end, size)
        else:
            named.length = kept_end(named.read, end, size)


def _take_snapshot(
    path: str, lock: WriteLock, published_now: Callable[[], tuple[int, int] | None]
) -> Snapshot:
    """The body of :func:`take_snapshot`."""
    out = Snapshot()
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        with lock:
            # (Under this lock, which a process adding an id holds until the id is on disk; or, where it
            # keeps no writer out (a reader that found no LOCK file), under the LOCK file a writer may have
            # made since, waited for a second at most, then without the id: see store_id.trusted_format.)
            out.store_format = read_format_file(path, lock.path)
            published = published_now()
            fids = list_data_files(path)
            if (
                published is not None
                and trusted_page_of(path, fids, unpack_tail(published[0]), page_intent(path)) is None
            ):
                published = None  # a damaged page: copied as without one, as every reader reads it
            active_major, active_end = unpack_tail(published[0]) if published else (-1, -1)
            data: list[SnapshotFile] = []
            data_fids: list[FileId] = []  # (the ids of ``data``)
            named: SnapshotFile | None = None  # the data file the page names
            let_go = not MAPS_HOLD_FD  # (where maps hold a descriptor each, the fds are kept instead)
            for fid in fids:
                name = data_name(fid)
                after = published is not None and fid[0] > active_major  # (a merge output is older)
                fd = os.open(os.path.join(path, name), flags)
                length = os.fstat(fd).st_size
                if (
                    after
                    and length < rec.FILE_HEADER_SIZE
                    and (fid != fids[-1] or (len(fids) > 1 and fids[-2] == (active_major, 0)))
                ):
                    # Created by a rotation that died before its header was whole: it holds
                    # nothing, and recovery removes it (kvb check does not count it). (Recovery gives
                    # a newest one its header where the page names no file just before it: copied, so
                    # that the file before it reads as closed, as it does here.)
                    os.close(fd)
                    continue
                out.append(SnapshotFile(name, fd, length, os.path.join(path, name)))
                data.append(out[-1])
                data_fids.append(fid)
                if after:
                    # The header of a rotation that died before publishing it (recovery adopts
                    # it): copied, so that the file before it reads as closed, as it does here,
                    # and damage to that header is counted as kvb check counts it.
                    # Only the newest may end in an unfinished write (any between the page's file and
                    # it is closed, as recovery leaves it), and one shorter than a header holds nothing.
                    out[-1].tail = fid == fids[-1] and length != rec.FILE_HEADER_SIZE
                if fid == (active_major, 0):
                    named = out[-1]
                    out[-1].length = min(length, active_end)
                    # A file that lost bytes since: the page no longer describes it (see kvb check)
                    # and its end is read from its bytes, unless a rotation that died had created
                    # the next file: then all of it was published (recovery closes it whole).
                    out[-1].tail = length < active_end
                if let_go and fid not in fids[-2:] and fid != (active_major, 0):
                    # Closed (what may end in an unfinished write, or be cut by a writer's recovery, is
                    # among the two newest files or the one the page names): it never changes again.
                    out[-1].let_go()
                hname = hint_name(fid)
                try:
                    hfd = os.open(os.path.join(path, hname), flags)
                except FileNotFoundError:
                    continue
                snap = out[-1]
                lost = (
                    lost_from(os.path.join(path, hname), snap.length) if fid != fids[-1] or fid[1] else None
                )
                if lost is not None:
                    # It lost bytes below the size its hint file gives: copied as recovery fills it,
                    # with zeros up to there, so that the loss is damage (see hint.lost_from).
                    snap.filled_from, snap.length = snap.length, lost
                out.append(SnapshotFile(hname, hfd, os.fstat(hfd).st_size, os.path.join(path, hname)))
                if let_go:
                    out[-1].let_go()  # (never changes: written whole before it was renamed into place)
            if named is not None and data[-1] is named and not named.tail and lock.excludes_writers:
                # Records after the active file's published end, under the write lock, which a writer
                # holds from its intent to its publication: those of a writer that died (or that a
                # power failure kept while the page lagged them), copied as recovery keeps them, as a
                # read-only open reads them, or a restore would give an older value in their place.
                _keep_past(named, active_end)
            if named is not None and data[-1] is not named:
                named.tail = False
                if data_fids[-1][1] == 0 and rec.FILE_HEADER_SIZE <= named.length < active_end:
                    # It lost bytes below its published end before a newer file: copied as recovery
                    # fills it, with zeros up to there, so that the loss is damage, counted here and
                    # refused by a restore (see unpublished.filled_end).
                    named.filled_from, named.length = named.length, active_end
                if data_fids[-1][1] == 0 and lock.excludes_writers:
                    # Records after its published end (a page a power failure kept older than them and
                    # than the rotation after them, which they were acknowledged before): copied as
                    # recovery keeps them, or a restore would give an older value in their place. (As
                    # for the active file, only under a lock that keeps every writer out.) A batch open at
                    # its published end with none of them after it is cut as recovery cuts it.
                    _keep_past(named, active_end, (active_major, active_end))
            if named is None and data:
                for snap in data:
                    snap.tail = False  # (set below from scratch: no file the page names comes before them)
                # No published end (a store no writer opened since it was copied, open read-only,
                # or whose page names a file that is gone): the files whose end may be an
                # unfinished write are those kvb check allows.
                head = data[-1].read(0, rec.FILE_HEADER_SIZE + 1)
                newest, rotated = tail_files(
                    data_fids,
                    head if len(head) <= rec.FILE_HEADER_SIZE else None,
                    (active_major, active_end) if published is not None else None,
                )
                # (after the newest: a file holding part of a header, which holds nothing)
                for i in [*range(max(newest, 0), len(data)), rotated]:
                    if i >= 0:
                        data[i].tail = True
                if rotated >= 0:
                    data[rotated].closing = True
    except BaseException as exc:
        for f in out:
            f.close()
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            # Too many open files (the snapshot holds one more descriptor per file), an I/O error.
            raise storage_error(exc, f"cannot snapshot the files of {path}") from exc
        raise
    return out


def _open_locks(path: str) -> tuple[WriteLock, SharedState | None]:
    """The lock file and the state page (None without one) of the store at ``path``, as a read-only
    open takes them: of one store, opened again where another directory took the path meanwhile (see
    :func:`~kv_backend.state.held_at_their_paths`); the files are listed after this."""
    for _ in range(REOPENS):
        prepare_directory(path, create=False)
        lock = WriteLock(os.path.join(path, LOCK_FILE), create=False)
        state = None
        try:
            state = page_for_reading(path, add=False)
            if state is None:
                lock.hold_directory()  # (the in-use lock, which an open takes on its page)
            if held_at_their_paths(lock, state):
                return lock, state
        except BaseException:
            _let_go(lock, state)
            raise
        _let_go(lock, state)
    raise replaced_at_every_open(path)


def _let_go(lock: WriteLock, state: SharedState | None) -> None:
    if state is not None:
        state.close()
    lock.close()


@contextmanager
def store_snapshot(path: str, *, add_id: bool = False) -> Iterator[Snapshot]:
    """A snapshot of the files of the store at ``path``, which is not opened: no key directory is built.

    The store must exist (nothing is created, as a read-only open has it). While the block runs the
    state page stays mapped with its shared lock, as an open store holds it (see
    :func:`kv_backend.state.in_use`); the files are closed when it ends.

    ``add_id``: give a store without an id one first (see :func:`~kv_backend.store_id.add_store_id`),
    under the write lock the snapshot holds, as a writable open would: where this user may not (not the
    format file's owner, a read-only filesystem), the store goes without, as before. ``kvb backup``'s.
    """
    lock, state = _open_locks(path)
    try:

        def published_now() -> tuple[int, int] | None:
            if state is None or not state.initialized:
                return None
            return state.tail.value, state.generation.value

        if add_id and lock.excludes_writers:
            with lock:  # (the snapshot's take is nested in it: the lock is taken once, and let go here)
                add_store_id(path)
                snapshot = take_snapshot(path, lock, published_now)
        else:
            snapshot = take_snapshot(path, lock, published_now)
        try:
            for snap in snapshot:
                # Records of another format version may check out and mean something else: refused as
                # an open refuses them.
                if snap.name.endswith(".data") and snap.length >= rec.FILE_HEADER_SIZE:
                    version = rec.foreign_version(snap.read(0, 12))
                    if version is not None:
                        raise foreign_version_error(os.path.join(path, snap.name), version)
            yield snapshot
        finally:
            for snap in snapshot:
                snap.close()
    finally:
        _let_go(lock, state)
