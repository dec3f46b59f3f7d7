"""Copy the readable keys of a damaged store into a new store (``kvb salvage SRC DST``).

Merge refuses a store whose damaged record header hides records of a file;
this module copies what can be read instead. It replays every data file of
the source exactly as the engine does (log order, deletes, batches only with
their COMMIT, expiry; a merged file through its hint file when that checks
out, as the engine reads it), and where a record cannot be read it *resynchronises*
as replay does (:func:`kv_backend.record.resync`): it looks forward for the
next offset where a sound record starts (lengths in bounds, CRC matching)
that is followed at once by another sound record or by nothing but zeros,
and goes on from there.

A false resynchronisation (bytes inside the damaged region taken for a
record) needs a value that itself holds the exact bytes of two whole
records in a row (a stored data file, say; or of one followed only by
zeros to the end of the file), or 32-bit CRC collisions
over two headers with sound lengths: such records would be copied as if
they were real."""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kv_backend import record as rec
from kv_backend.errors import KVError, NotDurableError
from kv_backend.filemaps import map_cuttable, map_file, map_filled
from kv_backend.files import (
    LOCK_FILE,
    STATE_FILE,
    FileId,
    check_new_store_target,
    data_name,
    hint_name,
    missing_data_files,
    missing_directories,
    missing_files_text,
    prepare_directory,
    refuse_filled_meanwhile,
    refuse_unusable_path,
    store_directory,
)
from kv_backend.hint import Hints, lost_from
from kv_backend.hint import load as load_hints
from kv_backend.keydir import FILE_SHIFT, M32, M40, pack
from kv_backend.owners import new_path_owner
from kv_backend.record import reader_of
from kv_backend.state import read_unswapped
from kv_backend.store_id import give_store_id, parse_store_id, read_store_id, trusted_format
from kv_backend.unpublished import (
    PASSES,
    closed_at,
    closed_whole,
    end_without_page,
    filled_end,
    holds_nothing,
    page_and_files,
    page_end,
    tail_end,
    tail_files,
    trusted_page,
)

_BATCH_SIZE = 1000
_BATCH_BYTES = 4 << 20
"""A batch of the copy holds at most this many records, and stops at the first that brings it to this
many bytes: its values, their records and the batch's bytes are all held while it is written."""
DAMAGED = -1
"""In the index of newest records: the key's newest record is damaged (never a packed location)."""

# The newest records: key -> packed location (kv_backend.keydir.pack: file index, offset, size) or
# DAMAGED; and key -> expiry for the keys that expire. One int per key, as in the engine's key
# directory: a store that opens can be salvaged in about the memory its key directory takes.
Newest = dict[bytes, int]
Expiries = dict[bytes, float]
# A record as replay applies it: (key, packed location, None for a delete, or DAMAGED; expiry).
Item = tuple[bytes, int | None, float]


class SalvageError(KVError):
    """``kvb salvage`` cannot start or finish (the target is not empty, a file cannot be read...)."""


class SalvageNotDurableError(SalvageError, NotDurableError):
    """:func:`salvage` moved the new store into place, but could not make that move durable: an
    fsync of ``directory`` (the one above the new store, or one the salvage created above it) failed
    (``reason``). The store is there and may be used, but a crash or power failure before the system
    writes that directory may undo the salvage. ``report`` is the salvage's report. The message says
    what to do."""

    report: SalvageReport | None


@dataclass
class DamagedRegion:
    """Bytes of a source data file that salvage could not read as records."""

    path: str
    offset: int
    length: int

    def __str__(self) -> str:
        return f"{self.path} @ {self.offset}: {self.length} damaged bytes skipped"


@dataclass
class SalvageReport:
    """What :func:`salvage` copied and what it had to skip."""

    src: str
    dst: str
    keys_copied: int = 0
    records_read: int = 0
    records_skipped: int = 0
    """Records not applied: damaged (CRC mismatch) or in a batch that cannot be shown to have committed
    (one still open at the end of a closed file; not one a record without the batch flag interrupts,
    which the format ignores as a whole, as replay and kvb check do).

    Not counted (a note instead): the write a crash cut short at the end of the active file, a torn
    last record or a batch or transaction whose COMMIT never came, which replay ignores too."""
    regions: list[DamagedRegion] = field(default_factory=list)
    damaged_keys: list[bytes] = field(default_factory=list)
    """Keys whose newest record is damaged: not copied (their newest value is unreadable)."""
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True if nothing was skipped: the copy holds exactly what the source holds."""
        return not (self.regions or self.damaged_keys or self.records_skipped)

    def __str__(self) -> str:
        lines = [
            f"salvaged {self.src} into {self.dst}: {self.keys_copied} keys copied, "
            f"{self.records_read} records read, {self.records_skipped} skipped"
        ]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"DAMAGED: {r}" for r in self.regions]
        lines += [f"not copied (newest record damaged): {k!r}" for k in self.damaged_keys]
        if self.regions:
            lines.append(
                "records inside a damaged region are lost: which keys they held, and so which copied keys "
                "had a newer value or a delete there, cannot be known; check the copy against a backup"
            )
        return "\n".join(lines)


def salvage(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    progress: Callable[[int, int], None] | None = None,
) -> SalvageReport:
    """Copy the newest readable value of every key of store ``src`` into the new store ``dst``.

    ``src`` is only read (never written or repaired: it is the evidence; its
    write lock is taken for one read of its id alone, at the end; it holds the
    shared in-use lock of its directory, so that ``kv_restore --replace``
    does not swap it out meanwhile); run this on a
    store no process is writing. ``dst``, outside ``src``, must not
    exist or be an empty directory; the copy is built next to it and moved
    into place when complete. Keys are written in log order with their
    expiry; expired keys, deleted keys and batches without their COMMIT are
    not copied, exactly as replay would have it. A record whose CRC fails is
    not copied, and neither is an older value of its key. Beyond a region
    that cannot be read as records, reading resumes at the next sound record
    (see the module docstring for what a false match takes).
    """
    src = store_directory(src)
    refuse_unusable_path(
        os.fsdecode(dst),
        "the path to salvage into",
        "name a new or empty directory ('.' for the working one)",
    )
    dst = os.path.abspath(os.fspath(dst))
    prepare_directory(src, create=False)
    if src == dst:
        raise SalvageError(f"cannot salvage {src} into itself; give a new directory as the target")
    real_src = os.path.realpath(src)
    if os.path.commonpath([real_src, os.path.realpath(dst)]) == real_src:
        raise SalvageError(
            f"cannot salvage {src} into {dst}, which lies inside it: the damaged store is only read, "
            "never written; give a new directory outside it as the target"
        )
    report = SalvageReport(src, dst)
    if os.path.islink(dst) and os.path.isdir(dst):
        # A link to an empty directory (as for restore): the copy goes into that directory and the
        # link stays; a directory cannot be renamed over a link (which failed after all the work).
        dst = os.path.realpath(dst)
    check_new_store_target(dst, "salvage", SalvageError)
    with read_unswapped(src):  # (a swap deleting it meanwhile would have the copy hold two stores' keys)
        return _salvage(src, dst, report, progress)


def _salvage(
    src: str, dst: str, report: SalvageReport, progress: Callable[[int, int], None] | None
) -> SalvageReport:
    """:func:`salvage` of ``src`` into ``dst`` (both checked), ``src`` kept in use."""
    from kv_backend.db import DB

    published, intent, fids, maps = _listed_and_mapped(src)
    if missing := missing_data_files(fids):
        report.notes.append(missing_files_text(src, missing))
    paths = [os.path.join(src, data_name(fid)) for fid in fids]
    try:
        total = sum(len(m) for m in maps)
        done = 0
        now = time.time()
        newest: Newest = {}
        exp: Expiries = {}
        # The active file (an unfinished write at its end is no damage), and the file before a
        # rotation killed before publishing the next (active still).
        head = bytes(maps[-1]) if maps and len(maps[-1]) <= rec.FILE_HEADER_SIZE else None
        page = trusted_page(fids, head, published, lambda i: (reader_of(maps[i]), len(maps[i])), intent)
        if page is None and published is not None:
            report.notes.append(
                f"{os.path.join(src, STATE_FILE)}: a damaged page (ignored, as by every reader)"
            )
            published = None
        last, rotated = tail_files(fids, head, published)
        if last < len(maps) - 1:
            # A rotation killed before the next file had its whole header: that file holds
            # nothing, and the one before it is still the active file.
            report.notes.append(f"{paths[-1]}: a data file without its header (an interrupted rotation)")
        for i, buf in enumerate(maps[: last + 1]):
            if len(buf) < rec.FILE_HEADER_SIZE and holds_nothing(fids, i, last, rotated, published):
                # (The active file cut inside its header, or without a page the file a rotation that
                # died did not close: recovery gives it its header again, and it holds nothing.)
                report.notes.append(f"{paths[i]}: a data file without its header (holds no record)")
                done += len(buf)
                continue
            filled = filled_end(fids, i, last, published, len(buf))
            if filled is None and i not in (last, rotated):
                filled = lost_from(os.path.join(src, hint_name(fids[i])), len(buf))
            if filled is not None:
                # It lost bytes below its published end, or below the size its hint file gives: read
                # (and copied from) as recovery fills it, with zeros up to there (see
                # unpublished.filled_end and hint.lost_from): the records it lost are damage.
                maps[i] = _map_data_file(paths[i], (len(buf), filled))
                total += filled - len(buf)
                if isinstance(buf, mmap.mmap):
                    buf.close()
                buf = maps[i]
            # Before the active file's published end, a damaged record is damage (readers raise
            # CorruptionError for it), not the unfinished last write it can look like.
            end, closes = 0, -1
            tail = i in (last, rotated)
            if tail and len(buf) >= rec.FILE_HEADER_SIZE:
                end = tail_end(reader_of(buf), len(buf), page_end(published, fids[i]), closing=i == rotated)
                tail = not closed_whole(i == rotated, published, end, len(buf))
                closes = closed_at(reader_of(buf), i == rotated, published, end, len(buf))
            head = bytes(buf[:12])
            if len(buf) < rec.FILE_HEADER_SIZE or rec.damaged_file_header(head) or rec.foreign_version(head):
                # (Read all the same, through its hint file too. Another version's records rarely check
                # out as this one's: read as damage where they do not.)
                report.regions.append(DamagedRegion(paths[i], 0, min(len(buf), rec.FILE_HEADER_SIZE)))
            hints = None
            if i not in (last, rotated):
                hints = load_hints(os.path.join(src, hint_name(fids[i])), len(buf))
            if hints is not None:
                _apply_hints(buf, i, paths[i], hints, newest, exp, report)
            else:
                _replay(buf, i, paths[i], tail, newest, exp, report, published_end=end, closes=closes)
            done += len(buf)
            if progress is not None:
                progress(done // 2, total)
        report.damaged_keys = sorted(k for k, loc in newest.items() if loc == DAMAGED)
        offsets, to_write = _live_offsets(newest, exp, len(maps), now)
        del newest  # (the keys are read again from the records: the copy's key directory holds them)
        # (the copy's temporary directory: locked while this runs, so that the next salvage into dst
        # deletes those a salvage killed midway left, and only those)
        from kv_backend.backup import claim_beside, fsync_upwards, keep_directory_access

        parent = os.path.dirname(dst)
        owner = new_path_owner(missing_directories(dst))  # (root salvaging under a service's directory)
        made, tmp, claim = claim_beside(dst, "salvage", os.stat(src).st_mode, owner, SalvageError)
        try:
            copied = written = 0
            batches = _batches(_records(maps, offsets))
            # sync='always': every batch, and every file the copy closes, is on disk before the rename.
            with DB(tmp, sync="always") as db:
                for chunk in batches:
                    with db.batch() as b:
                        for key, value, size in chunk:
                            b.put(key, value, expires_at=exp.get(key, 0.0))
                            copied += 1
                            written += size
                    if progress is not None:
                        progress(total // 2 + written * (total - total // 2) // to_write, total)
            source_id = _source_id(src)  # (the copy is that store, as a restored one is)
            if source_id is not None and not give_store_id(tmp, source_id):
                raise SalvageError(f"cannot give the copy in {tmp} the id of {src}: nothing was salvaged")
            copy_id = read_store_id(tmp)  # (another salvage's copy of the same store has it too)
            try:
                # The copy holds what the source holds: an empty directory prepared for it keeps its
                # mode (and owner), a new one gets no permission the source's directory withholds.
                refuse_filled_meanwhile(
                    dst, "salvage", SalvageError, copy_id
                )  # (a worker that started meanwhile)
                keep_directory_access(dst, tmp, os.stat(src).st_mode, owner)
                os.rename(tmp, dst)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    refuse_filled_meanwhile(dst, "salvage", SalvageError, copy_id)
                raise SalvageError(
                    f"cannot move the copy into place at {dst}: {exc.strerror or exc}"
                ) from exc
            report.keys_copied = copied
            # The rename, and the directories created for it (or the store goes with them), made
            # durable while the copy's directory is still claimed, as a restore does.
            failed = fsync_upwards(parent, made)
            if failed is not None:
                d, reason, error = failed
                raise SalvageNotDurableError(
                    f"salvaged {src} into {dst}, but cannot make that durable: cannot fsync the directory "
                    f"{d}: {reason}. The new store is in place, but a crash or power failure before the "
                    f"system writes that directory may undo the salvage: check the disk (the system log "
                    f"says why), then run `sync {d}`; once it succeeds, the salvage is durable",
                    report,
                    d,
                    reason,
                ) from error
        except SalvageNotDurableError:
            raise  # (the new store is in place: nothing to remove)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(claim)
        if progress is not None:
            progress(total, total)
    finally:
        for m in maps:
            if isinstance(m, mmap.mmap):
                m.close()
    return report


def _source_id(src: str) -> str | None:
    """The id of the store ``src`` for its copy: where its format file names one, read again under its write
    lock, taken for that read alone, where this process can take it within
    :data:`~kv_backend.store_id.ID_LOCK_WAIT` seconds.

    A process giving a store made before ids its id holds that lock from the rename of the new format file
    through the fsync of the directory, and where the fsync fails puts the old file back (see
    :func:`~kv_backend.store_id.add_store_id`): the first read may fall in between, and the copy would be
    given an id its source never kept. Without a lock file (no process can be adding an id), or where this
    thread holds the lock already (a ``locked()`` block of the program salvaging), the first read is the id
    (see :func:`~kv_backend.locking.lock_file_taken`); so it is where another holds the lock longer (a
    salvage run under ``flock LOCK``, by a program or a user keeping writers out meanwhile, as
    docs/engine.md suggests: it would wait for its own caller for ever; a long transaction), or where this
    user may not open the lock file (its owner's): there alone, it may be one the owner's process is
    adding and takes back (see :func:`~kv_backend.store_id.trusted_format`). The id is
    given only once the source's directory is fsynced (see :func:`~kv_backend.store_id.trusted_format`):
    where that fails, none (the copy gets its own)."""
    text = trusted_format(src, os.path.join(src, LOCK_FILE))
    return parse_store_id(text) if text is not None else None  # (none: the copy gets its own when opened)


def _live_offsets(newest: Newest, exp: Expiries, files: int, now: float) -> tuple[list[array[int]], int]:
    """The offsets of the records to copy, file by file in log order, and their total size: the newest
    record of every key that is neither damaged nor expired at ``now``."""
    offsets = [array("Q") for _ in range(files)]
    to_write = 0
    for key, loc in newest.items():
        if loc != DAMAGED and not (key in exp and exp[key] <= now):
            offsets[loc >> FILE_SHIFT].append((loc >> 32) & M40)
            to_write += loc & M32
    for i, offs in enumerate(offsets):
        offsets[i] = array("Q", sorted(offs))
    return offsets, max(to_write, 1)


class _Gone(SalvageError):
    """A data file listed is gone: a merge in another process removed it (see :func:`_listed_and_mapped`)."""


def _listed_and_mapped(
    src: str,
) -> tuple[tuple[int, int] | None, tuple[int, int] | None, list[FileId], list[bytes | mmap.mmap]]:
    """The STATE page's tail and intent words and the data files of the store ``src``, listed (then the
    page: see kvb check) and mapped; listed and mapped again where a merge in another process removed one
    before it was mapped (a listing across its unlinks may miss a file between two it holds: a gap in the
    names, a file deleted, it says), up to :data:`~kv_backend.unpublished.PASSES` times.

    A live writer may cut the file the page names past its published end (a rotation, a merge's among
    them, cuts off the zeros reserved after the data), and the newest file, of minor id 0, past its header
    (one a rotation made after the page was read): their bytes past there are copied
    (:func:`~kv_backend.filemaps.map_cuttable`), for reading a map past such a cut kills the process
    (SIGBUS). Without a page, a writer that opens the store cuts the newest file where its data ends
    (tail recovery), which only its bytes past there are copied for: not all of it, maybe a gigabyte; so
    it does a file whose published end lies past its end (it lost bytes, or the page is damaged), and,
    without a page, the file before the newest, which recovery closes (cuts) where a rotation died."""
    for _ in range(PASSES):
        published, intent, fids = page_and_files(src)
        newest = rec.FILE_HEADER_SIZE if published is not None else _DATA_END
        keep = {fid: newest for fid in fids[-1:] if fid[1] == 0}
        if published is not None:
            keep[(published[0], 0)] = published[1]
        elif len(fids) > 1 and fids[-2][1] == 0:
            keep[fids[-2]] = _CLOSING_END  # (a rotation that died did not close it: recovery does)
        maps: list[bytes | mmap.mmap] = []
        try:
            for fid in fids:
                maps.append(_map_data_file(os.path.join(src, data_name(fid)), keep=keep.get(fid)))
        except BaseException as exc:
            for m in maps:
                if isinstance(m, mmap.mmap):
                    m.close()
            if isinstance(exc, _Gone):
                continue
            raise
        return published, intent, fids, maps
    raise SalvageError(
        f"cannot salvage {src}: the store changed too often to read it, a merge in another process "
        f"removing files it had listed, {PASSES} times in a row; salvage it while no process writes to it"
    )


#: The ``keep`` of :func:`_map_data_file` that is where the file's data ends with no published end to go by
#: (:func:`~kv_backend.unpublished.end_without_page`): where tail recovery cuts it.
_DATA_END = -1
#: The ``keep`` of the file before the newest where no page says whether a rotation closed it: where tail
#: recovery would cut it, finishing that rotation (``end_without_page(closing=True)``).
_CLOSING_END = -2


def _map_data_file(
    path: str, filled: tuple[int, int] | None = None, *, keep: int | None = None
) -> bytes | mmap.mmap:
    """The data file at ``path``, mapped (holding no descriptor, see :mod:`kv_backend.filemaps`); with
    ``keep``, the bytes past it copied (a file a live writer may cut there: see
    :func:`~kv_backend.filemaps.map_cuttable`; :data:`_DATA_END`: where its data ends); with ``filled`` =
    ``(size, end)``, its first ``size`` bytes followed by zeros up to ``end``."""
    try:
        with open(path, "rb") as f:
            if filled is not None:
                return map_filled(f.fileno(), *filled)
            size = os.fstat(f.fileno()).st_size
            if keep in (_DATA_END, _CLOSING_END) or (keep is not None and keep > size):
                # (A published end past the file's end, which lost bytes or whose page is damaged: a writer's
                # recovery reads it from its header then, and cuts it where its data ends, as without a page.)
                read = rec.file_reader(f.fileno())
                closing = keep == _CLOSING_END
                keep = end_without_page(read, size, closing=closing) if size > rec.FILE_HEADER_SIZE else 0
            if keep is not None:
                return map_cuttable(f.fileno(), size, keep)
            return map_file(f.fileno(), size) if size else b""
    except FileNotFoundError as exc:
        raise _Gone(f"cannot read {path}: {exc.strerror or exc}") from exc
    except OSError as exc:
        from kv_backend.backup import whose  # (not at import: salvage does without backups otherwise)

        advice = whose(exc)
        if exc.errno == errno.ENOMEM:
            advice = (
                ". The system refused a memory map: salvage maps every data file of the store at once, and a"
                " process may have only so many (Linux: vm.max_map_count, 65,530 by default). Raise the limit"
                " (sysctl -w vm.max_map_count=262144, as root) and salvage again; the store is left as it was"
            )
        raise SalvageError(f"cannot read {path}: {exc.strerror or exc}{advice}") from exc


def _batches(records: Iterator[tuple[bytes, bytes, int]]) -> Iterator[list[tuple[bytes, bytes, int]]]:
    """``records`` in lists of at most ``_BATCH_SIZE`` records and, but for a record larger alone,
    about ``_BATCH_BYTES`` bytes (a thousand values of a megabyte held 3 GB at once)."""
    chunk: list[tuple[bytes, bytes, int]] = []
    held = 0
    for item in records:
        chunk.append(item)
        held += item[2]
        if len(chunk) == _BATCH_SIZE or held >= _BATCH_BYTES:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def _records(maps: list[bytes | mmap.mmap], offsets: list[array[int]]) -> Iterator[tuple[bytes, bytes, int]]:
    """``(key, value, record size)`` of the PUT records at ``offsets`` (sound: replay checked them)."""
    for buf, offs in zip(maps, offsets, strict=True):
        for off in offs:
            klen, vlen = rec.HEADER.unpack_from(buf, off)[3:5]
            key_end = off + rec.HEADER_SIZE + klen
            value_end = key_end + vlen
            yield bytes(buf[key_end - klen : key_end]), bytes(buf[key_end:value_end]), value_end - off


def _apply_hints(
    buf: bytes | mmap.mmap,
    fi: int,
    path: str,
    hints: Hints,
    newest: Newest,
    exp: Expiries,
    report: SalvageReport,
) -> None:
    """Apply the entries of a merged data file's hint file that checks out, as the engine does (it reads
    the file through it): a record it points to is damaged, its key not copied, unless it is a sound
    PUT of that key and size (what a read checks); the expiry comes from the hint file. The damaged
    regions are those of the file's records, read as replay reads them (as kvb check reports them: a
    region of zeros, or one a damaged length hides, once, however many records it holds), and each
    other entry that points to a damaged record."""
    damaged: list[DamagedRegion] = []
    for key, loc, expiry in zip(hints.keys, hints.locations, hints.expiries, strict=True):
        off, size, klen = loc >> 32, loc & M32, len(key)
        if (
            _sound_at(buf, off, off + size) == size
            and buf[off + 4] == rec.PUT
            and rec.HEADER.unpack_from(buf, off)[3] == klen
            and buf[off + rec.HEADER_SIZE : off + rec.HEADER_SIZE + klen] == key
        ):
            report.records_read += 1
            _index(newest, exp, key, pack(fi, off, size), expiry)
        else:
            report.records_skipped += 1
            damaged.append(DamagedRegion(path, off, size))
            _index(newest, exp, key, DAMAGED, 0.0)
    if damaged:
        records = SalvageReport(report.src, report.dst)
        _replay(buf, fi, path, False, {}, {}, records)
        starts = {r.offset for r in records.regions}
        report.regions += records.regions + [
            r
            for r in damaged
            if r.offset not in starts and bytes(buf[r.offset : r.offset + rec.HEADER_SIZE]).strip(b"\0")
        ]


def _index(newest: Newest, exp: Expiries, key: bytes, loc: int | None, expiry: float) -> None:
    """Make ``loc`` (None: a delete) the newest record of ``key``."""
    if loc is None:
        newest.pop(key, None)
    else:
        newest[key] = loc
    if expiry and loc is not None and loc != DAMAGED:
        exp[key] = expiry
    elif exp:
        exp.pop(key, None)


def _sound_at(buf: bytes | mmap.mmap, pos: int, end: int) -> int:
    """The size of the sound record at ``pos`` (lengths in bounds, type known, CRC matching), else 0."""
    if end - pos < rec.HEADER_SIZE:
        return 0
    crc, rtype, _flags, klen, vlen, _expiry = rec.HEADER.unpack_from(buf, pos)
    if rtype not in rec.RECORD_TYPES or klen > rec.MAX_KEY_SIZE or vlen > rec.MAX_VALUE_SIZE:
        return 0
    if (klen == 0) != (rtype == rec.COMMIT) or (rtype == rec.COMMIT and vlen != 4):
        return 0  # (a COMMIT without a 4-byte count: damage, as replay takes it)
    size: int = rec.HEADER_SIZE + klen + vlen
    if pos + size > end or rec.crc32(buf[pos + 4 : pos + size]) != crc:
        return 0
    return size


def _zeros_from(buf: bytes | mmap.mmap, pos: int) -> bool:
    """True if ``buf`` holds only zero bytes from ``pos`` on (space reserved ahead of the tail)."""
    return rec.only_zeros(reader_of(buf), pos, len(buf))


def _replay(
    buf: bytes | mmap.mmap,
    fi: int,
    path: str,
    tail: bool,
    newest: Newest,
    exp: Expiries,
    report: SalvageReport,
    *,
    published_end: int = 0,
    closes: int = -1,
) -> None:
    """Apply the records of one data file to ``newest`` (key -> packed location, DAMAGED if its newest
    record is damaged; a delete removes the key) and ``exp``. In a ``tail`` file, what follows
    ``published_end`` may be an unfinished write; before it, damage is damage. ``closes``: where
    recovery closes the file (unpublished.closed_at), a batch open there being damage, as at the end
    of a closed file."""
    end = len(buf)
    pos = rec.FILE_HEADER_SIZE
    # The open batch: its records (key, location, None for a delete or DAMAGED; expiry), or None.
    pending: list[Item] | None = None
    pending_at = pos  # where the open batch starts

    def apply(items: list[Item]) -> None:
        for key, loc, expiry in items:
            _index(newest, exp, key, loc, expiry)

    def drop_pending(unfinished: bool = False, *, interrupted: bool = False) -> None:
        """Drop the open batch; ``unfinished``: it ends the active file, a write a crash cut short
        (a batch or transaction whose COMMIT never came), which replay ignores too: no damage;
        ``interrupted``: a record without the batch flag follows it, and the format ignores it as a
        whole, as replay and kvb check do (its damaged records count as damage all the same)."""
        nonlocal pending
        if pending is not None:
            if unfinished:
                report.notes.append(
                    f"{path} @ {pending_at}: {len(pending)} record(s) of a batch whose COMMIT never "
                    "reached the file (a batch or transaction cut by a crash; skipped, as replay does)"
                )
            elif not interrupted:
                report.records_skipped += len(pending)
            # A damaged record's batch flag cannot be trusted: its key may have been written alone.
            apply([item for item in pending if item[1] == DAMAGED])
            pending = None

    def unfinished_from(at: int) -> None:
        """The data ends at ``at``, in the unfinished last write of a crashed writer (no damage)."""
        drop_pending(unfinished=True)
        report.notes.append(
            f"{path} @ {at}: {end - at} bytes of an unfinished last write (skipped, as replay does)"
        )

    confirmed = -1  # damaged records whose lengths point at or before this offset are confirmed

    def _confirms(nxt: int, lim: int, key_end: int) -> bool:
        """rec.confirmed_to, remembering how far it reached: a run of damaged records is walked once
        (asking for each record of a run of n anew walked the rest of the run: n * n / 2 checksums)."""
        nonlocal confirmed
        reach = rec.confirmed_to(buf, nxt, lim, key_end)
        confirmed = max(confirmed, reach)
        return reach >= 0

    def lost_commit() -> None:
        """A batch still open where a closed file's data ends: it lost its COMMIT and what followed (cut at
        a record boundary), a damaged region as kvb check reports it."""
        report.regions.append(DamagedRegion(path, pending_at, pos - pending_at))
        drop_pending()

    while pos < end:
        if pos == closes and pending is not None:
            lost_commit()
        if (
            end - pos >= rec.HEADER_SIZE
            and not buf[pos : pos + rec.HEADER_SIZE].strip(b"\0")
            and _zeros_from(buf, pos)
        ):
            if not tail or pos < published_end:
                # Published data, where zeros are no space reserved ahead of a tail: they replaced
                # records (a damaged region, as replay and kvb check take it). A batch open there
                # was published with its COMMIT: it committed.
                if pending is not None:
                    apply(pending)
                    pending = None
                report.regions.append(DamagedRegion(path, pos, (published_end if tail else end) - pos))
            break
        # Published records end at ``published_end`` in the newest file: one that seems to run past
        # it has a damaged length, as replay takes it (it reads no further there).
        lim = published_end if tail and pos < published_end else end
        size = _sound_at(buf, pos, lim)
        unpublished = tail and pos >= published_end
        if not size and unpublished:
            # Past the published end of the newest file (or the end recovery finds without one): the
            # tail of a write that never completed, where replay and tail recovery stop (what it
            # held was never acknowledged: not damage, as for kvb check).
            unfinished_from(pos)
            break
        if not size:
            whole = lim - pos >= rec.HEADER_SIZE
            crc, rtype, _, klen, vlen, _ = rec.HEADER.unpack_from(buf, pos) if whole else (0, 0, 0, 0, 0, 0.0)
            nxt = pos + rec.HEADER_SIZE + klen + vlen
            if (
                whole
                and (crc or rtype or klen or vlen)
                and klen <= rec.MAX_KEY_SIZE
                and vlen <= rec.MAX_VALUE_SIZE
                and nxt <= lim
                and (nxt <= confirmed or _confirms(nxt, lim, pos + rec.HEADER_SIZE + klen if klen else 0))
            ):
                # Sound lengths, confirmed by what follows: one damaged record (a CRC mismatch).
                report.records_skipped += 1
                report.regions.append(DamagedRegion(path, pos, nxt - pos))
                if klen:
                    key = bytes(buf[pos + rec.HEADER_SIZE : pos + rec.HEADER_SIZE + klen])
                    item: Item = (key, DAMAGED, 0.0)
                    if pending is not None:
                        pending.append(item)
                    else:
                        apply([item])
                elif pending is not None:
                    # Only a COMMIT has no key: a damaged one still closes the batch before it.
                    apply(pending)
                    pending = None
                pos = nxt
                continue
            # Damaged lengths: resynchronise at the next sound record.
            found = rec.resync(reader_of(buf), pos, lim)
            nxt = lim if found is None else found
            if pending is not None:
                # Published data: the batch was published with its COMMIT, which lies in the
                # damaged region; it committed, as replay takes it.
                apply(pending)
                pending = None
            damaged = rec.damaged_key(reader_of(buf), pos, lim)
            if damaged is not None:
                apply([(damaged[0], DAMAGED, 0.0)])  # its key is likely whole: not copied, as replay has it
            report.regions.append(DamagedRegion(path, pos, nxt - pos))
            pos = nxt
            continue
        _, rtype, flags, klen, vlen, expiry = rec.HEADER.unpack_from(buf, pos)
        n = rec.COUNT.unpack_from(buf, pos + rec.HEADER_SIZE)[0] if rtype == rec.COMMIT else 0
        if unpublished and rtype == rec.COMMIT and n != (0 if pending is None else len(pending)):
            # A COMMIT that does not match its batch, or closes none, past the published end ends
            # the data there, as for recovery (file-format.md, the unpublished part): the tail of a
            # write that never completed (nothing after it was acknowledged).
            unfinished_from(pos)
            break
        report.records_read += 1
        loc_key = bytes(buf[pos + rec.HEADER_SIZE : pos + rec.HEADER_SIZE + klen])
        if rtype == rec.COMMIT:
            if pending is None:
                # (A COMMIT whose records are gone: nothing to apply. They were damaged, and count
                # where they lie, as replay and kvb check take it: file-format.md, rule 2.)
                pass
            elif n == len(pending):
                apply(pending)
                pending = None
            else:
                # Published data, where a COMMIT always ends a batch that committed: a damaged record,
                # or a damaged region, made the count differ. Its last n records are the batch (all
                # of them if fewer), as replay takes it (file-format.md, rule 2); the damaged records
                # among those before them count, the others are not the batch's, as for replay.
                cut = max(len(pending) - n, 0)
                apply([item for item in pending[:cut] if item[1] == DAMAGED] + pending[cut:])
                pending = None
            pos += size
            continue
        item = (loc_key, pack(fi, pos, size) if rtype == rec.PUT else None, expiry)
        if flags & rec.FLAG_BATCH:
            if pending is None:
                pending, pending_at = [], pos
            pending.append(item)
        else:
            drop_pending(interrupted=True)
            apply([item])
        pos += size
    if pending is not None and (not tail or pos == closes):
        lost_commit()
    drop_pending(unfinished=tail)
