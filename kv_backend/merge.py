"""Merge (compaction): rewrite the live records of closed data files, with hint files.

The protocol, and why every crash point leaves a valid store:

1. Take ``MERGE.lock`` (a non-blocking ``flock``): one merge per store at a time.
2. Under the write lock, close the active file if it holds records (on a full
   disk, where the next file cannot be made, it stays active). The *inputs*
   are all data files older than the active file.
3. Without any store lock: find the last operation on every key among the
   inputs; copy the records of keys whose last operation is a live put into
   new files named ``M-(m+1).data.tmp``, ``M-(m+2).data.tmp`` ... where
   ``(M, m)`` is the newest input, with a hint file for each; fsync them.
   Writers go on appending to the active file meanwhile.
4. Under the write lock (the switch-over): rename each hint, then each data
   file to its final name, fsync the directory, bump the generation, append a
   no-op record so that every process notices the change and reloads its key
   directory (where it finds no room, the outputs are removed again and the
   merge fails), unlink the inputs oldest first (and stray hint files, see
   below) and fsync the directory.

An output is only a copy of the newest live version of some keys among the
inputs, and sorts after every input and before the active file. So a crash
with some outputs renamed and all inputs present changes nothing, and
removing inputs oldest first always leaves a suffix of the inputs next to
complete outputs, which also reads the same. Temporary files of a merge that
died are removed at the next open; so is a hint file without its data file (a
merge killed between renaming an output's two files, or unlinking an input's),
which the next merge removes too. A delete newer than a merged value lives
in a newer file and stays a delete; tombstones themselves are dropped
because every older file is an input.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kv_backend import record as rec
from kv_backend.errors import (
    ConfigurationError,
    CorruptionError,
    DatabaseClosedError,
    KVError,
    MergeInProgressError,
    StorageError,
    TransactionError,
)
from kv_backend.files import (
    MERGE_LOCK_FILE,
    TMP_SUFFIX,
    FileId,
    data_name,
    fsync_dir,
    fsync_file,
    hint_name,
    list_data_files,
    new_file_mode,
    remove_stray_hints,
    storage_error,
    write_all,
)
from kv_backend.hint import KeyColumn, write_hints
from kv_backend.hint import load as load_hints
from kv_backend.keydir import FILE_SHIFT, unpack
from kv_backend.lazy import load, log_warning
from kv_backend.locking import MergeLock
from kv_backend.owners import give_to_store_owner
from kv_backend.threads import start_daemon_thread

if TYPE_CHECKING:
    from kv_backend.db import DB

#: Closed files must hold at least this many bytes before auto-merge considers them.
AUTO_MERGE_MIN_BYTES = 1 << 20
#: The largest merge output, whatever ``max_file_size`` allows: a hint file's
#: locations hold each record's offset in 32 bits (see docs/file-format.md).
MAX_OUTPUT_SIZE = 1 << 32
#: The largest minor id of a data file: its name gives it three digits (docs/file-format.md), and
#: no reader lists a file named with four (0000000007-1000.data).
MAX_MINOR = 999


class InvalidMergeArgumentError(ConfigurationError, TypeError):
    """An argument of :func:`merge` has the wrong type."""


__all__ = [
    "AUTO_MERGE_MIN_BYTES",
    "MAX_MINOR",
    "MAX_OUTPUT_SIZE",
    "InvalidMergeArgumentError",
    "MergeReport",
    "maybe_auto_merge",
    "merge",
]

if TYPE_CHECKING:
    from kv_backend.merge_report import MergeReport as MergeReport
else:

    def __getattr__(name: str) -> Any:
        if name == "MergeReport":  # (a dataclass: its module is imported at its first use, see there)
            return load("kv_backend.merge_report").MergeReport
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"MergeReport"})


def merge(db: DB, progress: Callable[[int, int], None] | None = None, *, wait: bool = False) -> MergeReport:
    """Compact ``db``'s closed files; see the module docstring for the protocol.

    Raises :class:`MergeInProgressError` if another merge of the same store is
    running, unless ``wait`` is true (then it waits for it and merges after;
    refused with :class:`TransactionError` inside this thread's ``locked()``
    block, whose write lock the other merge needs to finish).
    ``progress(done_bytes, total_bytes)`` is called as input bytes are read.
    """
    if progress is not None and not callable(progress):
        # Checked first: called mid-merge, it would fail after the active file was rotated.
        raise InvalidMergeArgumentError(
            "progress must be a callable progress(done_bytes, total_bytes) or None, "
            f"not {type(progress).__name__}"
        )
    db._check_open_writable()  # (not refused after a failed fsync: it fsyncs what it writes itself)
    txn = db._txn
    if txn is not None and txn.owner == threading.get_ident():
        raise TransactionError(
            f"cannot merge {db.path} inside a transaction of the same thread; merge after the block ends"
        )
    if wait and db._lock.held:
        # The running merge needs the write lock this thread holds to finish: the wait would never end.
        raise TransactionError(
            f"cannot merge {db.path} with wait=True inside this thread's locked() block: a merge "
            "running in another process or thread needs the write lock the block holds to finish, "
            "so the wait would never end; merge after the block ends"
        )
    done = threading.Event()  # (made first: the lock is registered as soon as it is taken)
    lock = MergeLock(os.path.join(db.path, MERGE_LOCK_FILE))
    if wait:
        lock.acquire()
    elif not lock.try_acquire():
        who = (
            "another process is" if db._merging is None else "this process (another thread, or auto_merge) is"
        )
        raise MergeInProgressError(
            f"{who} merging {db.path} right now; wait for it to finish, or call merge(wait=True)"
        )
    db._merging = (threading.get_ident(), done, lock)
    try:
        if db._closing:
            # close() began in another thread (while this waited for the merge lock, say) and may
            # have looked for a merge to wait for before this one registered: it would close the
            # files and the write lock under it. (Set before the look, read after registering: one
            # of the two sees the other.)
            db._raise_closed()
        return _merge_locked(db, progress)
    finally:
        db._merging = None
        done.set()  # a close() of another thread waits for this
        lock.release()


def _merge_locked(db: DB, progress: Callable[[int, int], None] | None) -> MergeReport:
    t0 = time.monotonic()
    report: MergeReport = load("kv_backend.merge_report").MergeReport()
    no_room: StorageError | None = None
    with db._lock:
        db._writer_catch_up()
        if db._tail[1] > rec.FILE_HEADER_SIZE:
            try:
                db._rotate(auto_merge=False)
            except StorageError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                # No room for the next file on a full disk: the closed files are merged all the same
                # (room is needed only for the live records they hold), and the active file next time.
                no_room = exc
        active_major = db._tail[0][0]
        inputs = [fid for fid in list_data_files(db.path) if fid[0] < active_major]
    if no_room is not None and not inputs:
        raise no_room  # (a store of one file: nothing can be merged before there is room for the next)
    # Closed files never change, and only a merge (this one: it holds the merge lock) removes them.
    fds = _Inputs(db.path, inputs)
    try:
        if not inputs:
            report.seconds = time.monotonic() - t0
            return report
        sizes = [fds.size(i) for i in range(len(inputs))]
        report.files_before = len(inputs)
        report.bytes_before = sum(sizes)
        total = report.bytes_before
        last, records, hinted = _last_operations(db, inputs, fds, sizes, progress, total)
        report.records_dropped = records - len(last)
        # Packed (input, offset, size): sorted, the records to copy in log order. The keys are read
        # again from the records, so that the index of keys goes before the outputs are written.
        locations = sorted(last.values())
        del last
        outputs = _write_outputs(db, inputs, fds, locations, hinted, report, progress, total)
        del locations  # (before the reload builds the new key directory next to the old)
        try:
            _switch_over(db, inputs, outputs)
        except BaseException as exc:
            # Outputs renamed so far only copy what the inputs still hold; the others are removed.
            _remove_temporaries(db.path, outputs)
            if isinstance(exc, OSError) and not isinstance(exc, KVError):
                what = f"cannot merge {db.path}: cannot put the merged files in place"
                raise storage_error(exc, what) from exc
            raise
        report.files_after = len(outputs)
        report.bytes_after = sum(size for _, size in outputs)
    finally:
        fds.close()
    try:
        db._full_reload()
    except StorageError as exc:
        # The merged files are in place: only this process's view of them could not be built (its
        # old files and the new ones at once need more descriptors than it may have). Say so.
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        raise StorageError(
            exc.errno,
            f"{db.path} was merged ({report.files_before} files into {report.files_after}), but this "
            f"process cannot open the merged files ({cause.strerror}) while it holds the old ones: "
            "close the store and open it again, or raise the open-file limit "
            "(ulimit -n, systemd LimitNOFILE=)",
        ) from exc
    report.seconds = time.monotonic() - t0
    return report


def _refused(store: str, path: str, offset: int, why: str) -> CorruptionError:
    """The error a merge refuses the damaged data file ``path`` of ``store`` with (``why``: what is
    wrong at ``offset`` and what merging would lose)."""
    return CorruptionError(
        f"cannot merge {store}: {path} {why}; nothing was changed. `kvb check` lists the damage; restore "
        "the store from a backup, or copy its readable keys into a new store with "
        f"`kvb salvage {store} NEW_PATH`",
        path,
        offset,
    )


def _unreadable(fd: int, reached: int, size: int) -> str:
    """What :func:`_refused` says of a data file of ``size`` bytes open as ``fd`` that cannot be read past
    ``reached``: zeros from there to its end (which reserved space a rotation left unclosed makes, as the
    recovery of an earlier version left it before a rotation that died: nothing readable is lost with
    it) are named as such."""
    if rec.only_zeros(rec.file_reader(fd), reached, size):
        return (
            f"cannot be read past offset {reached}: the {size - reached} bytes from there to the end of "
            "the file are all zeros. A closed data file ends with its last record: zeros there are space a "
            "writer reserved ahead of its records and nobody cut off (the recovery of an earlier version "
            "left it so in the file before a rotation that died), or records that damage zeroed, which "
            "merging would delete for good (where they are reserved space, a copy made with `kvb salvage` "
            "holds every key the store holds)"
        )
    return (
        f"cannot be read past offset {reached} (a damaged record header), and merging would delete the "
        f"{size - reached} bytes after it"
    )


def _last_operations(
    db: DB,
    inputs: list[FileId],
    fds: _Inputs,
    sizes: list[int],
    progress: Callable[[int, int], None] | None,
    total: int,
) -> tuple[dict[bytes, int], int, set[int]]:
    """Return key -> packed location (:func:`kv_backend.keydir.pack` of input index, offset, size) of
    each key's live last put (a damaged record counts as one, as replay indexes it), the record count,
    and the indexes of the inputs read through their hint files. One int per key, as in the key
    directory: the process merging holds its own key directory besides."""
    last: dict[bytes, int] = {}
    hinted: set[int] = set()
    records = 0
    done = 0
    now = time.time()
    for i, (fid, size) in enumerate(zip(inputs, sizes, strict=True)):
        if size < rec.FILE_HEADER_SIZE:
            # A closed file that lost its records: merging it away would hide that they are lost.
            path = os.path.join(db.path, data_name(fid))
            raise _refused(
                db.path,
                path,
                0,
                "is a closed data file shorter than its header (it lost the records it held, and which "
                "keys they held cannot be known), and merging would delete it",
            )
        top = i << FILE_SHIFT
        hints = load_hints(os.path.join(db.path, hint_name(fid)), size)
        if hints is not None:
            hinted.add(i)
            records += len(hints)
            if any(e and e <= now for e in hints.expiries):
                for key, loc, expiry in zip(hints.keys, hints.locations, hints.expiries, strict=True):
                    if expiry and expiry <= now:
                        last.pop(key, None)
                    else:
                        last[key] = top | loc
            else:
                last.update(zip(hints.keys, [top | loc for loc in hints.locations], strict=True))
        else:
            reached = rec.FILE_HEADER_SIZE
            for base, res in rec.scan_file(fds.fd(i), rec.FILE_HEADER_SIZE, size, trust_lengths=True):
                for rtype, key, off, rsize, expiry in res.entries:
                    records += 1
                    if rtype == rec.PUT and not (expiry and expiry <= now):
                        last[key] = top | ((base + off) << 32) | rsize
                    else:
                        last.pop(key, None)
                reached = base + res.end
            if reached < size:
                # A damaged length: the records after it cannot be found, so the merge
                # could neither copy them nor know which older values they replaced.
                path = os.path.join(db.path, data_name(fid))
                raise _refused(db.path, path, reached, _unreadable(fds.fd(i), reached, size))
        done += size
        if progress is not None:
            progress(done // 2, total)
    return last, records, hinted


def _write_outputs(
    db: DB,
    inputs: list[FileId],
    fds: _Inputs,
    locations: list[int],
    hinted: set[int],
    report: MergeReport,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> list[tuple[FileId, int]]:
    """Copy the live records at ``locations`` (packed, in log order) into temporary output files;
    return [(file id, size)]. A record's key and expiry are its own (a hint file gives the same).

    A damaged record (its lengths are sound: replay stepped over it, and indexed its key as damaged)
    is copied as it is, under the key the input indexed it by, never expiring: dropped, its key would
    read as absent after the merge and no reader would report the damage any more. Its bytes are
    kept so that every reader of the output reads what it read in the input."""
    major = inputs[-1][0]
    minor = max(fid[1] for fid in inputs if fid[0] == major)
    outputs: list[tuple[FileId, int]] = []
    out: _Output | None = None
    done = finished = 0  # (bytes of the inputs done, and how many of them)
    limit = min(db.max_file_size, MAX_OUTPUT_SIZE)
    # The outputs take the minor ids after the newest input's: they must fit in those left, however
    # much there is to copy, or the records of the outputs past 999 were lost (files no reader lists).
    room = MAX_MINOR - minor
    if locations and room < 1:
        raise StorageError(
            errno.EFBIG,
            f"cannot merge {db.path} before its next write: the files of the last merge took every file "
            f"name left after {data_name(inputs[-1])}; nothing was changed (merge again after a write)",
        )
    live = sum(unpack(loc)[2] for loc in locations)
    damaged = _Damaged(db.path, inputs, fds, hinted)
    limit = max(limit, min(-(-live // max(room, 1)) + rec.FILE_HEADER_SIZE, MAX_OUTPUT_SIZE))

    def inputs_done(upto: int) -> None:
        nonlocal done, finished
        while finished < upto:
            done += fds.size(finished)
            finished += 1
            if progress is not None:
                progress(total // 2 + done // 2, total)

    try:
        for loc in locations:
            i, off, size = unpack(loc)
            inputs_done(i)
            data = os.pread(fds.fd(i), size, off)
            if len(data) != size or size < rec.HEADER_SIZE:
                # (A closed input never changes, and its hint file was checked against its size.)
                path = os.path.join(db.path, data_name(inputs[i]))
                raise _refused(db.path, path, off, f"ends inside the record at offset {off}")
            header = rec.HEADER.unpack_from(data)
            key_end = rec.HEADER_SIZE + header[3]
            if (
                rec.crc32(memoryview(data)[4:]) != header[0]
                or header[1] != rec.PUT  # a type unknown to this version: damage, as replay takes it
            ):
                (key, data), expiry = damaged.copy(i, off, data), 0.0
                report.corrupt_kept += 1
            else:
                key, expiry = data[rec.HEADER_SIZE : key_end], header[5]
                if header[2]:  # batch flag: the copy stands alone, so re-encode it without
                    data = rec.encode(rec.PUT, key, data[key_end:], expiry)
                report.records_kept += 1
            full = out is not None and out.end + len(data) > limit and out.end > rec.FILE_HEADER_SIZE
            if out is None or (full and minor < MAX_MINOR):
                if out is not None:
                    outputs.append(out.finish())
                minor += 1
                out = _Output(db.path, (major, minor), db._sync_interval is not None)
            elif out.end + len(data) > MAX_OUTPUT_SIZE:  # (the last minor id, over 4 TiB to copy)
                raise StorageError(
                    errno.EFBIG,
                    f"cannot merge {db.path}: its live records need more than {MAX_MINOR} merged files of "
                    f"{MAX_OUTPUT_SIZE >> 30} GiB; nothing was changed",
                )
            out.add(key, data, expiry)
        inputs_done(len(inputs))
        if out is not None:
            outputs.append(out.finish())
            out = None
    except BaseException as exc:
        if out is not None:
            out.abandon()
        _remove_temporaries(db.path, outputs)
        if isinstance(exc, StorageError) and exc.errno == errno.ENOSPC:
            raise StorageError(
                errno.ENOSPC,
                f"cannot merge {db.path}: the disk is full (no space left) for the {len(locations)} live "
                f"records it copies ({live} bytes, and their hint files); nothing was changed. Free that "
                "much space on its filesystem, then merge again",
            ) from exc
        raise
    return outputs


class _Damaged:
    """The copies of a merge's damaged records, each under the key its input indexed it by: its own key,
    as the scan of its input read it, or, for an input read through its hint file, the hint file's. A
    hint file is loaded again, once, at its input's first damaged record (the merge keeps no key of a
    location, see :func:`_last_operations`)."""

    def __init__(self, store: str, inputs: list[FileId], fds: _Inputs, hinted: set[int]) -> None:
        self._store, self._inputs, self._fds, self._hinted = store, inputs, fds, hinted
        self._hints: dict[int, dict[int, bytes]] = {}

    def copy(self, i: int, off: int, data: bytes) -> tuple[bytes, bytes]:
        """The key of the damaged record ``data`` at ``off`` of input ``i``, and the bytes of its copy:
        ``data`` itself where its header frames a record of that key (a scan of the output reads the
        same damaged record there), else :func:`kv_backend.record.encode_damaged` of the key (damage
        to the key or the lengths of a record a hint file points to, or the zeros of a lost region:
        copied as they are, a scan would read another key there, or none)."""
        _, _, _, klen, vlen, _ = rec.HEADER.unpack_from(data)
        key = data[rec.HEADER_SIZE : rec.HEADER_SIZE + klen]
        if i in self._hinted:
            if i not in self._hints:
                fid = self._inputs[i]
                hints = load_hints(os.path.join(self._store, hint_name(fid)), self._fds.size(i))
                self._hints[i] = {} if hints is None else dict(zip(hints.locations, hints.keys, strict=True))
            indexed = self._hints[i].get(_location(off, len(data)))
            if indexed is not None and (indexed != key or rec.HEADER_SIZE + klen + vlen != len(data)):
                return indexed, rec.encode_damaged(indexed, data[rec.HEADER_SIZE :])
        return key, data


class _Inputs:
    """The input files of a merge, opened one at a time.

    Before Python 3.13 every data file an open store has mapped holds a descriptor already: a
    merge that held one more for each input would need twice as many as the store, so a store
    that opens (and that the open-file error says to merge) could not be merged.
    """

    def __init__(self, directory: str, inputs: list[FileId]) -> None:
        self._paths = [os.path.join(directory, data_name(fid)) for fid in inputs]
        self._sizes: dict[int, int] = {}
        self._open = -1  # which input ``_fd`` is
        self._fd = -1

    def fd(self, i: int) -> int:
        """A descriptor of input ``i``, valid until another input is asked for."""
        if i != self._open:
            self.close()
            try:
                self._fd = os.open(self._paths[i], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as exc:
                what = f"cannot merge {os.path.dirname(self._paths[i])}: cannot open {self._paths[i]}"
                raise storage_error(exc, what) from exc
            self._open = i
        return self._fd

    def size(self, i: int) -> int:
        """The size of input ``i`` (as first looked at: a closed file never changes)."""
        if i not in self._sizes:
            try:
                self._sizes[i] = os.stat(self._paths[i]).st_size
            except OSError as exc:
                what = f"cannot merge {os.path.dirname(self._paths[i])}: cannot read {self._paths[i]}"
                raise storage_error(exc, what) from exc
        return self._sizes[i]

    def close(self) -> None:
        fd, self._fd, self._open = self._fd, -1, -1
        if fd >= 0:
            os.close(fd)


def _remove_temporaries(path: str, outputs: list[tuple[FileId, int]]) -> None:
    """Remove the outputs of a failed merge that still have their temporary names."""
    for fid, _ in outputs:
        for name in (data_name(fid), hint_name(fid)):
            try:
                os.unlink(os.path.join(path, name + TMP_SUFFIX))
            except FileNotFoundError:
                pass


def _location(offset: int, size: int) -> int:
    """A hint file's location of a record."""
    return (offset << 32) | size


class _Output:
    """One output data file being written under a temporary name, with its hints."""

    def __init__(self, directory: str, fid: FileId, durable: bool) -> None:
        self.fid = fid
        self.path = os.path.join(directory, data_name(fid)) + TMP_SUFFIX
        self.hint_path = os.path.join(directory, hint_name(fid)) + TMP_SUFFIX
        self.mode = new_file_mode(directory)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, self.mode)
        except OSError as exc:
            raise storage_error(exc, f"cannot create merge output {self.path}") from exc
        give_to_store_owner(self.fd, directory)
        # The hint file's columns, a few bytes a record (a location packs offset << 32 | size when
        # the hint file is written, where an offset past 32 bits fails).
        self.keys = KeyColumn()
        self.offsets = array("Q")
        self.sizes = array("I")
        self.expiries = array("d")
        self.parts: list[bytes] = [rec.FILE_HEADER_BYTES]
        self.buffered = rec.FILE_HEADER_SIZE
        self.written = 0
        self.end = rec.FILE_HEADER_SIZE

    def add(self, key: bytes, data: bytes, expiry: float) -> None:
        self.keys.append(key)
        self.offsets.append(self.end)
        self.sizes.append(len(data))
        self.expiries.append(expiry)
        self.parts.append(data)
        self.buffered += len(data)
        self.end += len(data)
        if self.buffered >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        if self.parts:
            blob = b"".join(self.parts)
            try:
                write_all(self.fd, blob, self.written)
            except OSError as exc:
                raise storage_error(exc, f"cannot write merge output {self.path}") from exc
            self.written += len(blob)
            self.parts = []
            self.buffered = 0

    def finish(self) -> tuple[FileId, int]:
        """Flush, fsync and write the hint file; the files keep their temporary names."""
        self._flush()
        fd, self.fd = self.fd, -1  # closed once: abandon() must not close a number reused meanwhile
        try:
            try:
                fsync_file(fd)
            finally:
                os.close(fd)
            locations = map(_location, self.offsets, self.sizes)
            write_hints(self.hint_path, self.end, self.keys, locations, self.expiries, self.mode)
        except OSError as exc:  # disk full, I/O error: the merge fails, the store is untouched
            raise storage_error(exc, f"cannot write merge output {self.path} and its hint file") from exc
        return self.fid, self.end

    def abandon(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        for path in (self.path, self.hint_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _switch_over(db: DB, inputs: list[FileId], outputs: list[tuple[FileId, int]]) -> None:
    """Make the outputs live and remove the inputs (see the module docstring)."""
    path = db.path
    fsync_dir(path)
    st = db._state
    assert st is not None
    with db._lock:
        db._writer_catch_up()
        for fid, _ in outputs:
            os.replace(os.path.join(path, hint_name(fid)) + TMP_SUFFIX, os.path.join(path, hint_name(fid)))
            os.replace(os.path.join(path, data_name(fid)) + TMP_SUFFIX, os.path.join(path, data_name(fid)))
        fsync_dir(path)
        st.generation.value = st.generation.value + 1
        # Move the tail so that every process looks, sees the new generation and reloads (listing the
        # files under this lock: after the inputs are gone). Before they go: on a full disk there may
        # be no room for it, and then the merge is undone, the outputs removed again (a store without
        # them reads the same), for a process that never looked would keep every input it holds, and
        # with it their space, for as long as no write moved the tail.
        try:
            db._write(rec.encode_commit(0), [])
        except BaseException as exc:
            for fid, _ in outputs:
                for name in (data_name(fid), hint_name(fid)):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(path, name))
            if isinstance(exc, StorageError) and exc.errno == errno.ENOSPC:
                raise StorageError(
                    errno.ENOSPC,
                    f"cannot merge {path}: the disk is full (no space left) for the record that tells the "
                    f"other processes of the merge (in {db._active.path if db._active else path}); nothing "
                    "was changed. "
                    "Free some space on that filesystem, then merge again",
                ) from exc
            raise
        for fid in inputs:
            for name in (data_name(fid), hint_name(fid)):
                try:
                    os.unlink(os.path.join(path, name))
                except FileNotFoundError:
                    pass
        # The stray hint files a merge killed between two renames or two unlinks left. Safe: a
        # process uses a hint file only for a data file it listed, and replays that file (through
        # its descriptor) if the hint file is gone by the time it reads it.
        remove_stray_hints(path)
        fsync_dir(path)


def maybe_auto_merge(db: DB) -> None:
    """Start a background merge if enough of the store is dead (called after a file closes)."""
    threshold = db.auto_merge
    if threshold is None or db.read_only:
        return
    thread = db._merge_thread
    if thread is not None and thread.is_alive():
        return
    sizes = dict(db._sizes)
    closed = sum(size for fid, size in sizes.items() if fid != db._tail[0])
    total = closed + db._tail[1]
    if closed < AUTO_MERGE_MIN_BYTES or total <= 0:
        return
    dead_enough = max(total - db._ix.live, 0) / total >= threshold
    if not dead_enough and not db._ix.exp:
        return

    def run() -> None:
        try:
            if not dead_enough:
                # Expired records are dead too, though the key directory counts them live until they
                # are dropped from it: a cache whose entries all expire (never overwritten) was never
                # merged. Counted here, not under the write lock the rotation holds: it reads every
                # expiry.
                ix = db._ix
                if max(total - (ix.live - ix.expired()[1]), 0) / total < threshold:
                    return
            merge(db)
        except MergeInProgressError:
            pass  # another process got there first
        except DatabaseClosedError:
            pass  # the store was closed inside a locked() or transaction() block: nothing to merge
        except Exception as exc:  # the writer that noticed must not fail; the next rotation retries
            log_warning(
                __name__, "auto-merge of %s failed (the next file rotation retries): %s", db.path, exc
            )

    thread = start_daemon_thread(run, f"kv_backend auto-merge {db.path}")
    # Published once started: close() joins it, and a thread that is still starting cannot be
    # joined. (A close() that misses it is safe: the merge then finds the store closing, see merge.)
    db._merge_thread = thread
