"""Offline verification of a store: every record's lengths and CRC, every hint file."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from kv_backend import record as rec
from kv_backend.files import (
    FORMAT_FILE,
    STATE_FILE,
    data_name,
    hint_name,
    missing_data_files,
    missing_files_text,
    prepare_directory,
    read_format,
    storage_error,
    user_name,
)
from kv_backend.hint import entries_at, lost_from, usable_at
from kv_backend.owners import roots_files
from kv_backend.record import reader_of
from kv_backend.state import read_unswapped
from kv_backend.store_id import LINE_END, as_read, format_repair, not_utf8, parse_store_id
from kv_backend.unpublished import (
    MAX_LOSS,
    PASSES,
    closed_at,
    closed_whole,
    data_end,
    end_without_page,
    filled_end,
    holds_nothing,
    names_a_gone_file,
    page_and_files,
    page_end,
    tail_end,
    tail_files,
    trusted_page_of,
    zero_filled,
)


@dataclass
class Problem:
    """One damaged spot: the file, the offset, and what is wrong there."""

    path: str
    offset: int
    what: str
    hint: str = ""
    """For an entry of a hint file that points to no sound record of its key: that hint file's name
    (the data file is sound there; without the hint file, an open replays it and reads every key)."""
    key: bytes | None = field(default=None, compare=False)
    """For a damaged record whose lengths are sound: its key, as the record holds it (the key whose
    reads raise, where the record is its newest: the one to restore from a backup)."""
    lost: int = field(default=0, compare=False)
    """For a damaged record header: the bytes from ``offset`` that cannot be read as records."""

    def __str__(self) -> str:
        key = "" if self.key is None else f" (a record of the key {self.key!r})"
        return f"{self.path} @ {self.offset}: {self.what}{key}"


@dataclass
class CheckReport:
    """What :func:`check` found."""

    files: int = 0
    records: int = 0
    bytes: int = 0
    """The bytes of the data files read as records and headers (or found damaged)."""
    reserved: int = 0
    """The zero bytes a writer reserved past the end of the active file's data (fallocated space the
    next writes fill): read, but no data, so not in :attr:`bytes`."""
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if nothing is damaged: no record, no hint entry, not the format file."""
        return not self.problems


#: What a closed data file shorter than its header is (see :func:`~kv_backend.unpublished.holds_nothing`).
LOST_FILE = (
    "a closed data file shorter than its header: it lost the records it held, and which keys they held "
    "cannot be known (copy the readable keys with `kvb salvage`, or restore the store from a backup)"
)


def check(path: str) -> CheckReport:
    """Read every data file of the store at ``path`` and report damage.

    A torn tail of the newest file (a write that never completed) is reported
    as a note, not a problem: the next writer cuts it off. A damaged record
    before the end the ``STATE`` page gives as published is no such write
    (readers raise CorruptionError for it): it is a problem. So are the leftovers
    of a rotation killed before it published the next file: that file, empty,
    with part of its header or with only its header, and the end of the file
    before it, which is still the active one (reserved zeros, a torn write).
    Damage anywhere else is a problem. Hint files that do not match their data
    files are noted; the engine ignores them and replays the data file instead.
    A data file that cannot be read (permissions, an I/O error) raises
    :class:`~kv_backend.errors.StorageError` naming it: nothing about it is known.

    A merge in another process removes the files it merged while this lists and reads them: a
    listing across its unlinks can hold an older input and miss a newer one (a gap in the names,
    which says a file was deleted), and a hint file can go between two readings of it. So a pass
    that finds a file it listed removed starts over against the files there then, up to
    :data:`PASSES` times; a hint file is read through one descriptor. Should every pass find one
    removed, the last is reported, with a note that the store changed too often to check, and none
    of the notes the listing decides (a missing file, a damaged page).

    On a live store, a file can look damaged for a moment: a read copies the
    active file page after page while another process appends to it, so a
    record across a page boundary may come out half old and half new. So
    when damage is found, the store is read a second time, and only the
    damage found at the same place both times is reported: damage on disk
    stays where it is.

    A damaged format file (see :func:`format_problem`) is a problem too, the first; the data files are
    checked all the same.

    A data file is read :data:`WINDOW` bytes at a time (a record or batch
    larger than that, whole), so memory does not grow with the files' size.
    """
    prepare_directory(path, create=False)
    with read_unswapped(path):  # (a swap deleting the store meanwhile would have it read two stores)
        damaged = format_problem(path)
        report = check_kept(path)
    report.problems[:0] = [damaged] if damaged else []
    return report


def format_problem(path: str) -> Problem | None:
    """The damage of the format file of the store at ``path``, if any, its lines read as every reader reads
    them (a line feed, a carriage return or the pair of them ends one: see
    :data:`~kv_backend.store_id.LINE_END`): bytes that are not UTF-8, a second line that is neither empty
    nor the store's id (``id`` and 32 lowercase hex digits), or lines after it that are not blank. Readers
    take its first line alone, which the open checks, so the store opens and its data reads; but a backup
    fails on bytes that are not UTF-8, and the store has no id, or one whose line is followed by damage.
    The problem says how to cut the file back to its sound lines, as a backup's error does
    (:func:`~kv_backend.store_id.format_repair`). Not part of :func:`check_kept`: a restore checks the data
    it copied, and writes the format file the backup recorded as it is."""
    marker = os.path.join(path, FORMAT_FILE)
    try:
        text = read_format(path, -1, "strict", newline="")  # (the bytes as they are: offsets exact)
    except UnicodeDecodeError as exc:
        data = bytes(exc.object)
        what = (
            f"{not_utf8(data, exc.start)}: damage to the format file, on which every backup fails (it "
            "records the file as text)"
        )
        return Problem(marker, exc.start, f"{what}; {format_repair(marker, data, exc.start)}")
    except OSError as exc:
        raise storage_error(exc, f"cannot read {marker}") from exc
    data = text.encode()
    pieces = LINE_END.split(text)  # (its lines, each followed by what ended it)
    lines = pieces[::2]

    def start(line: int) -> int:  # (the offset of the first byte of ``lines[line]``)
        return len("".join(pieces[: 2 * line]).encode())

    second = lines[1] if len(lines) > 1 else ""
    if second and parse_store_id(as_read(text)) is None:
        at = start(1)
        shown = second if len(second) <= 50 else second[:50] + "..."
        what = (
            f"a second line that is not the store's id (id and 32 lowercase hex digits) but {shown!r}: "
            "damage to the format file (or the line of a newer kv_backend), which gives the store no id"
        )
        return Problem(marker, at, f"{what}; {format_repair(marker, data, at)}")
    bad = next((i for i in range(2, len(lines)) if lines[i].strip()), None)
    if bad is None:
        return None
    at = start(bad)
    what = (
        f"lines after the second that are not blank (from line {bad + 1} on, {len(data) - at} bytes): "
        "damage to the format file (or lines of a newer kv_backend), which readers ignore"
    )
    return Problem(marker, at, f"{what}; {format_repair(marker, data, at)}")


def check_kept(path: str) -> CheckReport:
    """:func:`check` of the store at ``path``, which the caller keeps from every other process (a restore,
    the directory it builds the store in, which it holds an exclusive lock on): without the shared in-use
    lock, which that lock would keep this waiting for, for ever."""
    report = _settled(path)
    if not report.problems:
        return report
    again = _settled(path)
    first = {(p.path, p.offset) for p in report.problems}
    again.problems = [p for p in again.problems if (p.path, p.offset) in first]
    return again


def _settled(path: str) -> CheckReport:
    """A pass of :func:`check` over the store at ``path`` during which no merge removed a file it listed,
    starting over up to :data:`PASSES` times; failing that, the last pass, noted so."""
    for _ in range(PASSES):
        report, removed = _check(path)
        if not removed:
            return report
    shown = ", ".join(removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
    report.notes.append(
        f"{path}: the store changed too often to check: in each of {PASSES} passes, a merge in another "
        f"process removed files the pass had listed (the last: {shown}), having copied their live records "
        "into newer files: not damage. What was read is checked; check again to cover the newer files"
    )
    return report


def _check(path: str) -> tuple[CheckReport, list[str]]:
    """One pass of :func:`check` over the files of the store at ``path``, and the data files it listed that
    were removed (by a merge) before it opened them: where there are any, the pass notes nothing the
    listing decides, which the merge may have made wrong."""
    prepare_directory(path, create=False)
    report = CheckReport()
    removed: list[str] = []
    page_note = ""
    # (Listed, then the page, then listed again where a file made while the first listing ran is missing
    # from it: see unpublished.page_and_files.) The page is read before the data files: whatever a writer
    # publishes meanwhile lies past its end.
    published, intent, fids = page_and_files(path)
    head = _head(os.path.join(path, data_name(fids[-1]))) if fids else None
    try:
        page = trusted_page_of(path, fids, published, intent)
    except OSError as exc:
        raise storage_error(exc, f"cannot read the data files of {path}") from exc
    if page is None and published is not None:
        why = (
            f"it names {data_name((published[0], 0))}, which is gone, older than the newest data file"
            if names_a_gone_file(fids, published)
            else f"its intent word does not vouch for its tail, or it publishes an end inside a record of "
            f"{data_name((published[0], 0))}, or inside a batch that committed after it, or in zeros after a "
            "batch without its COMMIT, or more than "
            f"{MAX_LOSS >> 20} MiB past its end where newer files follow it"
        )
        page_note = (
            f"{os.path.join(path, STATE_FILE)}: a damaged page ({why}): ignored, as by every reader; the "
            "next writer rebuilds it"
        )
        published = None
    # The file whose unfinished end is an interrupted write, not damage, and the file a killed
    # rotation did not finish closing (reserved zeros may follow it).
    newest, rotated = tail_files(fids, head, published)
    for i, fid in enumerate(fids):
        fpath = os.path.join(path, data_name(fid))
        buf = opened = _read(fpath)
        if buf is None:
            removed.append(fpath)  # (by a merge, which copied its live records into newer files first)
            continue
        try:
            size = len(buf)
            report.files += 1
            if size < rec.FILE_HEADER_SIZE and holds_nothing(fids, i, newest, rotated, published):
                # (Shorter than a header, the active file or a newer one, or without a page the one a
                # rotation that died did not close: recovery removes it or gives it its header,
                # whatever its bytes, and it holds no record. One the page names lost bytes, and its
                # end is read from them, as for an active file cut anywhere else: nothing there.)
                report.bytes += size
                report.notes.append(
                    f"{fpath}: a data file without its header, left by a rotation that was interrupted "
                    "(holds no record; the next writer removes it or completes it)"
                )
                continue
            # (A tail file is one where an unfinished write may end the file.)
            tail = i in (newest, rotated)
            hpath = os.path.join(path, hint_name(fid))
            filled = filled_end(fids, i, newest, published, size)
            cut = None  # (where it lost bytes below the size its hint file gives: its size)
            if filled is None and not tail:
                filled = lost_from(hpath, size)
                cut = None if filled is None else size
            if filled is not None:
                # It lost bytes below its published end, or below the size its hint file gives: read
                # as recovery fills it, with zeros up to there (see unpublished.filled_end and
                # hint.lost_from), so that the records it lost are damage.
                buf, size = _Reader(zero_filled(reader_of(buf), size, filled), filled), filled
            problems, records = _header_problems(buf[:12], size, fpath)
            report.problems += problems
            if not records:
                report.bytes += size
                continue
            # Where the published records of a tail file end: a damaged record before that is no
            # unfinished write (readers raise CorruptionError for it), whatever follows it.
            end, closes = 0, -1
            reserved_before = report.reserved
            if tail:
                end = tail_end(reader_of(buf), size, page_end(published, fid), closing=i == rotated)
                tail = not closed_whole(i == rotated, published, end, size)
                closes = closed_at(reader_of(buf), i == rotated, published, end, size)
            if closes >= 0:
                # Recovery closes it there: up to there a closed file (a batch open at its end is damage),
                # then what it cuts (see unpublished.closed_at).
                if _check_records(buf, closes, fpath, False, report) == closes < size:
                    _check_unpublished(buf, closes, size, fpath, report)
            else:
                found = len(report.problems)
                size = _check_records(buf, size, fpath, tail, report, published_end=end)
                if not tail:
                    _name_hinted_keys(report.problems[found:], buf, hpath, size, cut)
            report.bytes += size - (report.reserved - reserved_before)
            _check_hint_file(hpath, buf, size, fpath, tail, report)
        finally:
            if isinstance(opened, _DataFile):
                opened.close()
    _note_roots_files(path, report)
    _note_unlisted_merge_outputs(path, report)
    if removed:
        return report, removed
    if page_note:
        report.notes.append(page_note)
    if missing := missing_data_files(fids):
        report.notes.append(missing_files_text(path, missing))
    return report, removed


#: The files a merge of an earlier version named past minor id 999 (``0000000007-1000.data``).
_UNLISTED_OUTPUT_RE = re.compile(r"\A\d{10}-\d{4,}\.(?:data|hint)\Z")


def _note_unlisted_merge_outputs(path: str, report: CheckReport) -> None:
    """Note the data and hint files of the store at ``path`` with a minor id of four digits or more:
    a merge of an earlier version named its outputs past the 999th so, and no reader lists them (see
    file-format.md). Not damage of the store, whose records they are not part of, but the keys they
    held were missing from it since that merge, unless written again after it."""
    try:
        names = sorted(n for n in os.listdir(path) if _UNLISTED_OUTPUT_RE.match(n))
    except OSError as exc:
        raise storage_error(exc, f"cannot list the store {path}") from exc
    if not names:
        return
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    report.notes.append(
        f"{path}: {len(names)} file(s) with a four-digit minor id ({shown}), outputs of a merge by an "
        "earlier kv_backend version that filled more than 999 files: no reader lists them, so their "
        "records are not part of the store, and the keys they held have been missing from it since "
        "that merge unless written again after it (a backup made before that merge holds them: restore it "
        "into another directory and copy them from there). Keep these files, and do not rename them: "
        "they are the only copy of what that merge wrote there, and as store files they would bring back "
        "keys deleted or overwritten since"
    )


def _note_roots_files(path: str, report: CheckReport) -> None:
    """Note the files of the store at ``path`` that are root's while the store is another user's
    (see :func:`kv_backend.owners.roots_files`): not damage, but that user's processes fail on them."""
    names = roots_files(path)
    if not names:
        return
    try:
        uid = os.stat(os.path.join(path, FORMAT_FILE)).st_uid
    except OSError:  # (removed meanwhile)
        return
    owner = user_name(uid) or str(uid)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    report.notes.append(
        f"{path}: {len(names)} file(s) owned by root in this store of user {owner} ({shown}), left by a "
        f"command root ran with an earlier kv_backend: {owner}'s processes may fail on them with permission "
        f"denied (at the next write, rotation or merge). Open the store for writing once as root (`sudo kvb "
        f"merge {path}`), which gives root's files in it to {owner}, or chown them to {owner}"
    )


#: The keys a problem names at most, of those a hint file names in a damaged region.
SHOWN_KEYS = 5


def _name_hinted_keys(
    problems: list[Problem], buf: bytes | _DataFile, hpath: str, size: int, cut: int | None
) -> None:
    """Say in each of ``problems``, found in a closed data file (``buf``, ``size`` bytes) read through the
    hint file at ``hpath``, of bytes that cannot be read as records, which keys of the hint file lie in
    them, whose reads raise CorruptionError (the hint file names them, where a replay could not), as the
    engine's warning says; and, where the file was cut short at ``cut`` (read as zeros up to ``size``,
    see hint.lost_from), in the problem those bytes start at (a damaged header, or the record the cut
    falls in), that it lost bytes below the size its hint file gives."""
    regions: list[tuple[Problem, int]] = []
    for p in problems:
        if p.lost:
            regions.append((p, p.lost))
        elif cut is not None and p.key is not None and p.offset < cut:
            _crc, _type, _flags, klen, vlen, _ts = rec.HEADER.unpack_from(
                buf[p.offset : p.offset + rec.HEADER_SIZE]
            )
            if cut < p.offset + rec.HEADER_SIZE + klen + vlen:  # (the record the cut falls in)
                regions.append((p, rec.HEADER_SIZE + klen + vlen))
    if not regions:
        return
    try:
        with open(hpath, "rb") as f:
            read = rec.file_reader(f.fileno())
            if not usable_at(read, os.fstat(f.fileno()).st_size, size):
                return  # (none, or one the engine ignores: it replays the data file, as check reads it)
            entries = list(entries_at(read))
    except OSError:
        return
    for p, length in regions:
        keys = [key for key, off, _ in entries if p.offset <= off < p.offset + length]
        if cut is not None and p.offset <= cut < p.offset + length:
            p.what += f"; the file lost bytes below the size its hint file gives ({cut} of {size} bytes left)"
        if keys:
            shown = ", ".join(
                repr(k) if len(k) <= 100 else f"{k[:100]!r}... ({len(k)} bytes)" for k in keys[:SHOWN_KEYS]
            )
            more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
            which = "the keys they held" if p.lost else "its key"  # (the bytes of a header; a record)
            p.what += f"; its hint file names {which} ({shown}{more}), whose reads raise CorruptionError"


def _check_hint_file(
    hpath: str, buf: bytes | _DataFile, size: int, fpath: str, tail: bool, report: CheckReport
) -> None:
    """Check the hint file at ``hpath``, if any, of the data file ``fpath`` (``size`` bytes, read as ``buf``)
    into ``report``, read through one descriptor: a merge that removes it with its data file meanwhile
    (read already) leaves nothing to check. One that does not check out is noted (the engine replays the
    data file); one that does (and is not a ``tail`` file's, which no engine reads through a hint file) is
    checked entry by entry."""
    stale = f"{hpath}: damaged or stale hint file (ignored; the data file is replayed)"
    try:
        f = open(hpath, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    except OSError:
        report.notes.append(stale)  # (unreadable: the engine, which cannot load it, replays the data file)
        return
    with f:
        read = rec.file_reader(f.fileno())
        if not usable_at(read, os.fstat(f.fileno()).st_size, size):
            report.notes.append(stale)
        elif not tail:
            _check_hints(entries_at(read), hpath, buf, fpath, report)


def _check_hints(
    entries: Iterable[tuple[bytes, int, int]],
    hpath: str,
    buf: bytes | _DataFile,
    fpath: str,
    report: CheckReport,
) -> None:
    """Report the ``entries`` of the hint file at ``hpath``, one the engine reads the data file ``buf``
    through, that point to no sound record of their key (the engine checks a record only when its
    value is read: the key then raises CorruptionError), but where the data file's own check found
    damage already: at the entry's record, or a region of zeros it lies in (where the file lost
    bytes below the size the hint file gives, see hint.lost_from)."""
    known = {p.offset for p in report.problems if p.path == fpath}
    hname = os.path.basename(hpath)
    report.problems += _hint_problems(entries, hname, reader_of(buf), fpath, known)


def _hint_problems(
    entries: Iterable[tuple[bytes, int, int]],
    hname: str,
    read: Callable[[int, int], bytes],
    fpath: str,
    known: set[int],
) -> list[Problem]:
    """The ``entries`` of the hint file ``hname`` that point to no sound record of their key in the data
    file ``fpath`` (read with ``read``), at none of the ``known`` offsets of its own damage (see
    :func:`_check_hints`)."""
    problems = []
    read = _windowed(read)
    for key, off, size in entries:
        body = read(off, max(size, rec.HEADER_SIZE))
        if (
            not body[: rec.HEADER_SIZE].strip(b"\0")
            or (
                size >= rec.HEADER_SIZE
                and len(body) == size
                and body[4] == rec.PUT
                and rec.HEADER.unpack_from(body)[3] == len(key)
                and body[rec.HEADER_SIZE : rec.HEADER_SIZE + len(key)] == key
                and rec.sound_size(reader_of(body), 0, size) == size
            )
            or off in known
        ):
            continue
        problems.append(
            Problem(
                fpath,
                off,
                f"the hint file {hname} points here for the key {key!r}, where no sound "
                "record of it lies: reading the key raises CorruptionError (remove the hint file while "
                "no process has the store open, and the data file is replayed instead)",
                hname,
            )
        )
    return problems


def _windowed(read: Callable[[int, int], bytes]) -> Callable[[int, int], bytes]:
    """``read(offset, n)`` a :data:`WINDOW` at a time where the reads follow each other: the records a
    hint file points to, in the order a merge wrote them, each read through a call of ``read`` of its
    own (a syscall, where a backup reads its snapshot) made the check of a file's hint entries take
    three times as long as that of all its records. A read elsewhere (a hint file in another order)
    reads what it asks for alone."""
    start, window, last = 0, b"", 0  # (where the window starts, its bytes, where the last read ended)

    def windowed(offset: int, n: int) -> bytes:
        nonlocal start, window, last
        follows, last = last <= offset <= last + rec.HEADER_SIZE, offset + n
        if start <= offset and offset + n <= start + len(window):
            return window[offset - start : offset - start + n]
        if n >= WINDOW or not follows:
            return read(offset, n)
        start, window = offset, read(offset, WINDOW)
        return window[:n]

    return windowed


def snapshot_problems(
    read: Callable[[int, int], bytes],
    size: int,
    name: str,
    *,
    tail: bool,
    closing: bool = False,
    hints: tuple[str, Callable[[int, int], bytes], int] | None = None,
) -> list[Problem]:
    """The damaged spots of one data file of a backup's snapshot (``size`` bytes, read with
    ``read(offset, n)``): what :func:`check` of a restored copy reports for it. ``tail`` for the
    newest files, whose end may be an unfinished write (not damage), as :func:`check` allows;
    ``closing`` for the one a rotation that died did not finish closing (see ``end_without_page``);
    ``hints``, the name, ``read(offset, n)`` and size of its hint file, copied with it: its entries that point
    to no sound record of their key count too, as :func:`check` counts them.

    A backup copies damage as it is, and a restore refuses it: the backup tells at once, from the
    bytes it copied (records in files with a hint file are never checked when a store opens).
    """
    if tail and (size < rec.FILE_HEADER_SIZE or read(0, size) == rec.FILE_HEADER_BYTES):
        return []  # a rotation's new file, not finished: holds no record (see check)
    report = CheckReport()
    report.problems, records = _header_problems(read(0, 12), size, name)
    if not records:
        return report.problems
    # (A restored copy has no STATE page: where a newest file's data ends is read from its bytes.)
    end = end_without_page(read, size, closing=closing) if tail else 0
    tail = tail and not closed_whole(closing, None, end, size)
    size = _check_records(_Reader(read, size), size, name, tail, report, published_end=end)
    if hints is not None and not tail and usable_at(hints[1], hints[2], size):
        known = {p.offset for p in report.problems}
        report.problems += _hint_problems(entries_at(hints[1]), hints[0], read, name, known)
    return report.problems


def _header_problems(head: bytes, size: int, path: str) -> tuple[list[Problem], bool]:
    """What is wrong with the header of a data file of ``size`` bytes (at least a header's unless it is
    a closed file that lost its records) whose first 12 bytes are ``head``, and whether its records are
    to be checked: they are after a damaged header (the engine reads them: each has its own CRC), not
    after one naming another format version (the engine refuses the store: they may mean something
    else)."""
    if size < rec.FILE_HEADER_SIZE:
        return [Problem(path, 0, LOST_FILE)], False
    if rec.damaged_file_header(head):
        return [Problem(path, 0, "missing or damaged file header")], True
    version = rec.foreign_version(head)
    if version is None:
        return [], True
    what = (
        f"the file header names format version {version}, not {rec.FILE_VERSION} (written by another "
        "kv_backend version, or damaged): the store does not open; its records are not checked"
    )
    return [Problem(path, 8, what)], False


#: Bytes of a data file scanned at a time: what :func:`check` holds in memory, whatever the file's
#: size, unless one record (or one batch, written at once) is larger: then that record or batch.
WINDOW = 1 << 20


def _check_records(
    buf: bytes | _DataFile, size: int, fpath: str, tail: bool, report: CheckReport, *, published_end: int = 0
) -> int:
    """Scan the records of one data file, ``size`` bytes, window after window (see :data:`WINDOW`),
    into ``report``; return the size it had (less if another process cut it meanwhile). In a ``tail``
    file, what follows ``published_end`` is read by the unpublished rules (:func:`_check_unpublished`).

    The findings are those of one scan of the whole file: a window ends at a committed record, and
    where a scan stopped only because the window ends (a record or batch runs past it), that
    record or batch is scanned again in a larger window.
    """
    pos = rec.FILE_HEADER_SIZE
    window = WINDOW
    while pos < size:
        if tail and pos >= published_end:
            _check_unpublished(buf, pos, size, fpath, report)
            break
        # In a tail file, the published records first: one that seems to run past their end is a
        # damaged header (as for replay, which reads no further), not a record to step over.
        cap = published_end if tail and pos < published_end <= size else size
        chunk = buf[pos : min(pos + window, cap)]
        end = pos + len(chunk)
        if len(chunk) < min(window, cap - pos):
            size = end  # the file is shorter than it was: a writer cut reserved zeros (or a torn tail) off it
        res = rec.scan(chunk, 0, len(chunk), trust_lengths=True, final=end == cap)
        needed = 0 if end == cap or res.stop_reason is None else _window_needed(chunk, res, cap - pos)
        # Records and damage before where the scan stopped are what a scan of the whole file finds.
        report.records += len(res.entries)
        for off in res.corrupt:
            if needed and off >= res.end:
                continue  # in the batch scanned again in the next window
            report.problems.append(Problem(fpath, pos + off, _damage(chunk, off), key=_key_of(chunk, off)))
        if needed:
            window = max(needed, WINDOW) if res.end else max(needed, 2 * window)
            pos += res.end
            continue
        if res.stop_reason is None:
            pos = end
            window = WINDOW
            continue
        stop_at = pos + res.end
        at = pos + res.stop_at
        # Up to ``limit`` every record was published: what stops the scan there is a damaged header,
        # not an unfinished write, and reading resumes after it as replay does (file-format.md).
        limit = published_end if tail else size
        if res.stop_reason != "uncommitted batch" and at < limit:
            report.records += len(res.pending or ())  # their batch was published with its COMMIT
            nxt = rec.resync(reader_of(buf), at, limit)
            lost = (limit if nxt is None else nxt) - at
            resumes = "nothing after it can be read" if nxt is None else f"reading resumes @ {nxt}"
            report.problems.append(
                Problem(
                    fpath,
                    at,
                    f"damaged record header ({res.stop_reason}): {lost} bytes cannot be read as "
                    f"records (what they held is lost); {resumes}",
                    lost=lost,
                )
            )
            if nxt is not None:
                pos, window = nxt, WINDOW
                continue
            if limit < size:
                pos, window = limit, WINDOW
                continue
            break
        what = f"{res.stop_reason}; {size - stop_at} bytes after it cannot be read"
        if tail and at == published_end < size:
            # A batch without its COMMIT ends the published part (damage to the page's end: a writer cuts
            # it, see DB._cut_open_batch); what follows that end is read as recovery reads it, by itself.
            what = f"{res.stop_reason} at the published end ({published_end - stop_at} bytes)"
            _note_unfinished(report, fpath, stop_at, what)
            _check_unpublished(buf, published_end, size, fpath, report)
        elif tail:
            _note_unfinished(report, fpath, stop_at, what)
        else:
            report.problems.append(Problem(fpath, stop_at, what))
        break
    return size


def _check_unpublished(buf: bytes | _DataFile, pos: int, size: int, fpath: str, report: CheckReport) -> None:
    """What follows the published end ``pos`` of a tail file of ``size`` bytes, read as tail recovery
    reads it (file-format.md, the unpublished part): its complete records and committed batches are
    kept, and the data ends at the first record that does not check out, or a COMMIT that does not
    match its batch: the write of a writer that died before publishing it (if it is alive, it is
    writing it still), cut off on next open with all that follows, a note and not damage (bytes a
    writer cut meanwhile read as zeros)."""
    read = reader_of(buf)
    end = pos
    why: str | None = None
    for base, res in rec.scan_read(read, pos, size):
        report.records += len(res.entries)
        end, why = base + res.end, res.stop_reason
    data = rec.zeros_start(read, end, size)  # (the zeros a writer reserved after it are no data)
    report.reserved += size - max(data, end)
    if data <= end:
        return
    kept = data_end(read, end, size)  # (what a reading without a page would keep after it)
    if kept > end:
        # Records that check out follow it: a killed writer leaves no such thing (nothing it wrote
        # follows its unfinished last write), so the page lags records written after its end.
        report.problems.append(Problem(fpath, end, _lagging_page(why, kept)))
        return
    _note_unfinished(report, fpath, end, f"{why}; {data - end} bytes after it cannot be read")


def _lagging_page(why: str | None, kept: int) -> str:
    """What :func:`check` reports for a record past the published end that records which check out
    follow, up to ``kept``: the next writer cuts them (file-format.md, "The end of the active file")."""
    return (
        f"{why} past the end the STATE page publishes, with records that check out after it (up to "
        f"@ {kept}), which a killed writer cannot leave: the page lags records written after its end (it "
        "reaches the disk later than they do, so a power failure can keep them and not it; under "
        "sync='always' they may have been acknowledged). The next writer to open the store cuts them off "
        "with this record, as tail recovery does past the published end; to keep them, remove the STATE "
        "file while no process has the store open: without a page, recovery keeps them, and this record "
        "is damage"
    )


def _note_unfinished(report: CheckReport, fpath: str, at: int, what: str) -> None:
    report.notes.append(
        f"{fpath} @ {at}: {what} (an unfinished write, batch or transaction: if its writer is alive it "
        "is still writing it; if not, it is cut off on next open)"
    )


def _key_of(chunk: bytes, off: int) -> bytes | None:
    """The key of the damaged record with sound lengths at ``off`` in ``chunk`` (None for one without)."""
    klen = rec.HEADER.unpack_from(chunk, off)[3]
    return bytes(chunk[off + rec.HEADER_SIZE : off + rec.HEADER_SIZE + klen]) if klen else None


def _damage(chunk: bytes, off: int) -> str:
    """What is wrong with the damaged record at ``off`` in ``chunk``: its CRC, or (the CRC matching)
    a type this version does not know or a COMMIT without a count, which only a newer writer or a
    CRC collision makes."""
    crc, rtype, _, klen, vlen, _ = rec.HEADER.unpack_from(chunk, off)
    if rec.crc32(chunk[off + 4 : off + rec.HEADER_SIZE + klen + vlen]) == crc:
        if rtype not in rec.RECORD_TYPES:
            return f"unknown record type {rtype} (written by a newer kv_backend, or damaged)"
        if rtype == rec.COMMIT:
            return (
                f"a COMMIT whose value is {vlen} bytes, not a 4-byte count "
                "(written by a newer kv_backend, or damaged)"
            )
    return "checksum mismatch"


def _window_needed(chunk: bytes, res: rec.ScanResult, rest: int) -> int:
    """0 if the scan ``res`` of ``chunk`` stopped where a scan of the whole file (``rest`` bytes from
    the chunk's start on) stops too; else the size of the window that scanning again from
    ``res.end`` needs (a guess for a batch that runs past the chunk: the next window doubles it)."""
    if res.stop_reason not in ("truncated header", "truncated record", "uncommitted batch"):
        return 0  # damage or zeros inside the chunk: a larger window ends the same way
    p = res.end
    n = len(chunk)
    while n - p >= rec.HEADER_SIZE:  # the records the scan took up to where it stopped
        _, _, _, klen, vlen, _ = rec.HEADER.unpack_from(chunk, p)
        after = p + rec.HEADER_SIZE + klen + vlen
        if after > n:
            # A record that runs past the chunk: past the end of the file too, it is torn.
            return 0 if after > rest else after - res.end
        p = after
    if p < n and p + rec.HEADER_SIZE > rest:
        return 0  # a header cut by the end of the file itself
    return 2 * n - res.end if p == n else p + rec.HEADER_SIZE - res.end


class _DataFile:
    """The bytes of a data file, read on demand: ``len()`` is its size when opened, and a slice is
    read from the file (``os.pread``) when asked for, so that a check holds no more of a file in
    memory than it looks at. A slice past the end of a file cut since it was opened comes out short."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._size = os.fstat(f.fileno()).st_size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: slice) -> bytes:
        start, stop, _ = index.indices(self._size)
        return os.pread(self._f.fileno(), max(stop - start, 0), start) if stop > start else b""

    def close(self) -> None:
        self._f.close()


class _Reader(_DataFile):
    """The bytes of a file read through ``read(offset, n)`` (a backup's snapshot), sliced as a
    :class:`_DataFile` is."""

    def __init__(self, read: Callable[[int, int], bytes], size: int) -> None:  # no file of its own
        self._read = read
        self._size = size

    def __getitem__(self, index: slice) -> bytes:
        start, stop, _ = index.indices(self._size)
        return self._read(start, stop - start) if stop > start else b""

    def data_from(self, pos: int) -> int:
        """What ``read`` tells of where its file holds bytes (see :func:`kv_backend.record.data_from`)."""
        return rec.data_from(self._read, pos, rec.NO_DATA)

    def close(self) -> None:
        pass  # the caller owns what ``read`` reads


def _read(path: str, size: int = -1) -> bytes | _DataFile | None:
    """The bytes of the data file at ``path``: at most ``size``, or with ``size`` -1 all of them, as a
    :class:`_DataFile` that reads them when sliced (to close); None if it no longer exists (a merge
    in another process removed it since it was listed), a StorageError naming it if it cannot be read."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller (a _DataFile) or below
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(exc, f"cannot read data file {path}") from exc
    try:
        if size >= 0:
            with f:
                return f.read(size)
        return _DataFile(f)
    except OSError as exc:
        f.close()
        raise storage_error(exc, f"cannot read data file {path}") from exc


def _head(path: str) -> bytes | None:
    """The first bytes (up to a file header's worth) of the file at ``path``; None if it is longer."""
    head = _read(path, rec.FILE_HEADER_SIZE + 1)  # bytes, as for any size but -1
    return head if isinstance(head, bytes) and len(head) <= rec.FILE_HEADER_SIZE else None
