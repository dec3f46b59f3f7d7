"""Offline verification of a store: every record's lengths and CRC, every hint file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kv_backend import record as rec
from kv_backend.files import data_name, hint_name, list_data_files, prepare_directory, storage_error
from kv_backend.hint import read_hints


@dataclass
class Problem:
    """One damaged spot: the file, the offset, and what is wrong there."""

    path: str
    offset: int
    what: str

    def __str__(self) -> str:
        return f"{self.path} @ {self.offset}: {self.what}"


@dataclass
class CheckReport:
    """What :func:`check` found."""

    files: int = 0
    records: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if no record is damaged."""
        return not self.problems


def check(path: str) -> CheckReport:
    """Read every data file of the store at ``path`` and report damage.

    A torn tail of the newest file (a write that never completed) is reported
    as a note, not a problem: the next writer cuts it off. So are the leftovers
    of a rotation killed before it published the next file: that file, empty,
    with part of its header or with only its header, and the end of the file
    before it, which is still the active one (reserved zeros, a torn write).
    Damage anywhere else is a problem. Hint files that do not match their data
    files are noted; the engine ignores them and replays the data file instead.
    A data file that cannot be read (permissions, an I/O error) raises
    :class:`~kv_backend.errors.StorageError` naming it: nothing about it is known.
    One that a merge in another process removed after it was listed is noted.

    On a live store, a file can look damaged for a moment: a read copies the
    active file page after page while another process appends to it, so a
    record across a page boundary may come out half old and half new. So
    when damage is found, the store is read a second time, and only the
    damage found at the same place both times is reported: damage on disk
    stays where it is.
    """
    report = _check(path)
    if not report.problems:
        return report
    again = _check(path)
    first = {(p.path, p.offset) for p in report.problems}
    again.problems = [p for p in again.problems if (p.path, p.offset) in first]
    return again


def _check(path: str) -> CheckReport:
    """One pass of :func:`check` over the files of the store at ``path``."""
    prepare_directory(path, create=False)
    report = CheckReport()
    fids = list_data_files(path)
    newest = len(fids) - 1  # the file whose unfinished end is an interrupted write, not damage
    rotated = -1  # the file a killed rotation did not finish closing: reserved zeros may follow it
    if fids and fids[-1][1] == 0:
        head = _head(os.path.join(path, data_name(fids[-1])))
        if head is not None and len(head) < rec.FILE_HEADER_SIZE and rec.FILE_HEADER_BYTES.startswith(head):
            newest -= 1  # the file before it is still the active one
        elif head == rec.FILE_HEADER_BYTES and len(fids) > 1 and fids[-2][1] == 0:
            rotated = len(fids) - 2
    for i, fid in enumerate(fids):
        fpath = os.path.join(path, data_name(fid))
        buf = _read(fpath)
        if buf is None:
            report.notes.append(
                f"{fpath}: removed while being checked, by another process (a merge, which copied its "
                "live records into a newer file first): not damage; check again to cover the newer file"
            )
            continue
        report.files += 1
        report.bytes += len(buf)
        if i > newest and rec.FILE_HEADER_BYTES.startswith(buf):
            report.notes.append(
                f"{fpath}: a data file without its header, left by a rotation that was interrupted "
                "(holds no record; the next writer removes it or completes it)"
            )
            continue
        if len(buf) < rec.FILE_HEADER_SIZE or buf[:8] != rec.FILE_MAGIC:
            report.problems.append(Problem(fpath, 0, "missing or damaged file header"))
            continue
        pos = rec.FILE_HEADER_SIZE
        while pos < len(buf):
            res = rec.scan(buf, pos, len(buf), trust_lengths=True)
            report.records += len(res.entries)
            tail = i == newest or i == rotated  # where an unfinished write may end the file
            for off in res.corrupt:
                if tail and _only_zeros_after(buf, off):
                    # The newest file's last record, half-written, with the zeros
                    # reserved past it still in place: a write that never completed.
                    report.records -= 1
                    report.notes.append(
                        f"{fpath} @ {off}: unfinished last record (an interrupted write; "
                        "never returned, cut off on next open)"
                    )
                else:
                    report.problems.append(Problem(fpath, off, "checksum mismatch"))
            if res.stop_reason is None:
                break
            stop_at = res.end
            if tail and res.stop_reason == rec.PREALLOCATED and not buf[stop_at:].strip(b"\0"):
                break  # zeros reserved ahead of the tail by a writer: not data
            what = f"{res.stop_reason}; {len(buf) - stop_at} bytes after it cannot be read"
            if tail:
                report.notes.append(
                    f"{fpath} @ {stop_at}: {what} (an unfinished write, batch or transaction: if "
                    "its writer is alive it is still writing it; if not, it is cut off on next open)"
                )
            else:
                report.problems.append(Problem(fpath, stop_at, what))
            break
        hpath = os.path.join(path, hint_name(fid))
        if os.path.exists(hpath) and read_hints(hpath, len(buf)) is None:
            report.notes.append(f"{hpath}: damaged or stale hint file (ignored; the data file is replayed)")
    return report


def _read(path: str, size: int = -1) -> bytes | None:
    """The bytes of the data file at ``path`` (at most ``size``); None if it no longer exists (a merge
    in another process removed it since it was listed), a StorageError naming it if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(exc, f"cannot read data file {path}") from exc


def _head(path: str) -> bytes | None:
    """The first bytes (up to a file header's worth) of the file at ``path``; None if it is longer."""
    head = _read(path, rec.FILE_HEADER_SIZE + 1)
    return head if head is not None and len(head) <= rec.FILE_HEADER_SIZE else None


def _only_zeros_after(buf: bytes, offset: int) -> bool:
    """True if the record at ``offset`` is followed by nothing but zeros (or the end)."""
    _, _, _, klen, vlen, _ = rec.HEADER.unpack_from(buf, offset)
    return not buf[offset + rec.HEADER_SIZE + klen + vlen :].strip(b"\0")
