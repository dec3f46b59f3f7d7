"""The record format of data files, and the scanner that replays them.

A data file is a 16-byte file header followed by records. Every record is::

    offset size field
    0      4    CRC-32 (as zlib.crc32) of bytes 4..end of the record
    4      1    type: 1 = PUT, 2 = DELETE, 3 = COMMIT (end of a batch)
    5      1    flags: bit 0 = the record belongs to a batch
    6      4    key length, unsigned
    10     4    value length, unsigned
    14     8    expiry: absolute UNIX time as a float, 0.0 = never
    22     ...  key, then value

All integers are little-endian. A batch is a run of records with the batch
flag followed by one COMMIT record whose value is the record count as a
little-endian u32; a batch without its COMMIT record never took effect. A
COMMIT record with a count of 0 outside a batch is a no-op marker.
See docs/file-format.md for the full description.
"""

from __future__ import annotations

import functools
import mmap
import os
import re
import struct
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from kv_backend.checksum import RANGE_STEP, RangeCrc
from kv_backend.checksum import crc32 as crc32  # also the engine's, merge's and the tools'
from kv_backend.filemaps import filled_from

HEADER = struct.Struct("<IBBIId")
HEADER_SIZE = HEADER.size  # 22
# The part of the header covered by the CRC (everything after it).
BODY_HEADER = struct.Struct("<BBIId")

FILE_MAGIC = b"KVBDATA\x00"
FILE_VERSION = 1
FILE_HEADER = struct.Struct("<8sII")  # magic, version, reserved
FILE_HEADER_SIZE = FILE_HEADER.size  # 16
FILE_HEADER_BYTES = FILE_HEADER.pack(FILE_MAGIC, FILE_VERSION, 0)

PUT = 1
DELETE = 2
COMMIT = 3
#: Every record type this format version writes; a reader takes any other as damage.
RECORD_TYPES = (PUT, DELETE, COMMIT)
FLAG_BATCH = 1

PREALLOCATED = "preallocated space"

MAX_KEY_SIZE = 65536
MAX_VALUE_SIZE = 1 << 30  # 1 GiB
COUNT = struct.Struct("<I")

_pack_body = BODY_HEADER.pack


def damaged_file_header(head: bytes | memoryview | mmap.mmap) -> bool:
    """Whether a data file's first 12 bytes (of a file at least a header long) are a damaged header:
    the magic is not whole, or the version field reads 0, which no version writes (a zeroed block,
    not another format version). The file's records are read all the same: each has its own CRC."""
    return bytes(head[:8]) != FILE_MAGIC or int.from_bytes(head[8:12], "little") == 0


def foreign_version(head: bytes | memoryview | mmap.mmap) -> int | None:
    """The format version a data file's first 12 bytes name when the header is not damaged
    (:func:`damaged_file_header`) and the version is not this one's (a store this version refuses,
    docs/file-format.md), else None."""
    if len(head) < 12 or damaged_file_header(head):
        return None
    version = int.from_bytes(head[8:12], "little")
    return None if version == FILE_VERSION else version


#: From this size on, :func:`encode` copies a value once, not twice (two CRC calls cost more below it).
_LARGE_VALUE = 1 << 16


def encode(rtype: int, key: bytes, value: bytes, expiry: float = 0.0, flags: int = 0) -> bytes:
    """Return the bytes of one record (header, key, value) with its CRC."""
    if len(value) < _LARGE_VALUE:
        body = _pack_body(rtype, flags, len(key), len(value), expiry) + key + value
        return crc32(body).to_bytes(4, "little") + body
    # A large value is copied once, into the record: a put holds it twice at most, not three times.
    head = _pack_body(rtype, flags, len(key), len(value), expiry) + key
    return crc32(value, crc32(head)).to_bytes(4, "little") + head + value


def encode_damaged(key: bytes, value: bytes) -> bytes:
    """Return a PUT record of ``key`` whose CRC does not match: sound lengths and a key, so that every
    reader reads it as the damaged record of ``key`` (a merge writes one for a damaged record whose own
    bytes no longer say which key it belongs to, see docs/file-format.md)."""
    record = encode(PUT, key, value)
    return (int.from_bytes(record[:4], "little") ^ 0xFFFFFFFF).to_bytes(4, "little") + record[4:]


@functools.lru_cache(maxsize=64)
def encode_commit(count: int) -> bytes:
    """Return the COMMIT record that closes a batch of ``count`` records (small counts are cached)."""
    return encode(COMMIT, b"", COUNT.pack(count))


class ScanResult(NamedTuple):
    """What :func:`scan` found in a region of a data file."""

    entries: list[tuple[int, bytes, int, int, float]]
    """Applied records in log order: (type, key, offset, size, expiry)."""
    end: int
    """Offset just past the last record that was applied (batches only as a whole)."""
    stop_reason: str | None
    """``None`` if the region was consumed to its end, else why the scan stopped."""
    corrupt: list[int]
    """Offsets of records whose lengths were sound but whose CRC failed or that cannot be read."""
    stop_at: int = -1
    """Where the record that stopped the scan starts (``end`` is before it when a batch was open),
    the region's end for an ``"uncommitted batch"``; -1 when the region was consumed to its end."""
    pending: list[tuple[int, bytes, int, int, float]] | None = None
    """The records of the batch still open where the scan stopped, as in ``entries``."""


#: Why a scan of published data stopped at a damaged record with sound lengths: nothing sound follows
#: where they point, so they cannot be trusted (a damaged header, as for lengths that are not sound).
UNCONFIRMED = "damaged lengths"


def scan(
    buf: bytes | memoryview | mmap.mmap,
    start: int,
    end: int,
    *,
    trust_lengths: bool = False,
    final: bool = True,
) -> ScanResult:
    """Replay the records of ``buf[start:end]``.

    ``buf`` holds the file from offset 0 (or at least up to ``end``). The scan
    stops at the first incomplete or implausible record, and never applies a
    batch whose COMMIT record it has not seen. With ``trust_lengths`` (used for
    regions another writer already published), a record whose lengths are
    sound but whose CRC fails, or that cannot be read though its CRC matches
    (an unknown type, a COMMIT without a 4-byte count), is still indexed, so
    that reading it raises :class:`~kv_backend.errors.CorruptionError`, and
    scanning continues.

    In a published region every batch is followed by its COMMIT (a writer
    appends both in one write, and recovery cuts a torn one before anything is
    published after it), so there the fields a damaged record can no longer
    vouch for (its type, batch flag or count) do not decide what happens to the
    records around it: a damaged record belongs to the batch being read if
    there is one, a damaged record without a key is a damaged COMMIT that
    closes it, the ``n`` records before a COMMIT of count ``n`` are its batch,
    and a damaged record is indexed even when the batch it seemed part of is
    dropped.

    A damaged record is stepped over by its lengths only when they are confirmed: what they point
    to is the end of the region, a sound record, or a damaged record confirmed in turn
    (docs/file-format.md, rule 1; the end of the region not where the zeros that end it reach into
    the record's key, see :func:`key_in_end_zeros`). Otherwise the scan stops there with
    :data:`UNCONFIRMED`. Without ``final`` (``end`` is not the region's end, only the buffer's), a
    confirmation that needs bytes past ``end`` stops the scan as a ``"truncated record"`` would, to be
    read again in a larger buffer.
    """
    unpack = HEADER.unpack_from
    hsize = HEADER_SIZE
    entries: list[tuple[int, bytes, int, int, float]] = []
    append = entries.append
    corrupt: list[int] = []
    pending: list[tuple[int, bytes, int, int, float]] | None = None
    committed_end = start
    pos = start
    # Slicing bytes is cheaper than slicing a memoryview for small records.
    mv = buf if isinstance(buf, bytes) else memoryview(buf)
    stop: str | None = None
    valid_types = RECORD_TYPES
    confirmed_to = start  # the damaged records before this offset have confirmed lengths
    while pos < end:
        if end - pos < hsize:
            stop = "truncated header"
            break
        crc, rtype, flags, klen, vlen, expiry = unpack(mv, pos)
        if not (crc or rtype or klen or vlen):
            stop = PREALLOCATED  # zero bytes: space reserved ahead of the tail
            break
        size = hsize + klen + vlen
        if pos + size > end or rtype not in valid_types or klen > MAX_KEY_SIZE:
            if pos + size > end:
                stop = "truncated record"
                break
            if klen > MAX_KEY_SIZE or not trust_lengths:
                stop = "invalid header"
                break
            # Published, with sound lengths: a damaged type byte, or (its CRC matching) a type only a
            # newer writer or a CRC collision makes. Either way a damaged record, skipped by its
            # length so that the records after it are still read.
            sound = False
        else:
            # A published COMMIT without a count, its CRC matching, is damage too: only a newer
            # writer or a CRC collision makes one (unpublished, it ends the data: see below).
            sound = crc32(mv[pos + 4 : pos + size]) == crc and (
                rtype != COMMIT or vlen == 4 or not trust_lengths
            )
        if not sound:
            if not trust_lengths:
                stop = "checksum mismatch"
                break
            if pos >= confirmed_to:
                reach = _confirm(mv, pos + size, end, final, pos + hsize + klen if klen else 0)
                if reach < 0:
                    stop = "truncated record" if reach == -1 else UNCONFIRMED
                    break
                confirmed_to = reach
            corrupt.append(pos)
            pending = _index_damaged(mv, pos, size, klen, pending, entries)
            pos += size
            if pending is None:
                committed_end = pos
            continue
        if rtype == COMMIT:
            n = COUNT.unpack_from(mv, pos + hsize)[0] if vlen == 4 else -1
            if n == 0 and pending is None:
                # An empty batch: a no-op marker (merge writes one to move the tail).
                pos += size
                committed_end = pos
                continue
            if pending is None or n != len(pending):
                if not trust_lengths or n < 0:
                    # A COMMIT without its records: the batch is incomplete.
                    pending = None
                    stop = "orphan commit"
                    break
                # Published: the n records before this COMMIT are its batch; any
                # missing from ``pending`` were damaged and are indexed already.
                if pending:
                    cut = max(len(pending) - n, 0)
                    _keep_damaged(pending[:cut], corrupt, append)
                    entries.extend(pending[cut:])
                pending = None
                pos += size
                committed_end = pos
                continue
            entries.extend(pending)
            pending = None
            pos += size
            committed_end = pos
            continue
        key = bytes(mv[pos + hsize : pos + hsize + klen])  # a copy even from a memoryview
        item = (rtype, key, pos, size, expiry)
        if flags & FLAG_BATCH:
            if pending is None:
                pending = []
            pending.append(item)
            pos += size
            continue
        if pending is not None:
            # A plain record after an unfinished batch: that batch never committed.
            if corrupt:
                _keep_damaged(pending, corrupt, append)
            pending = None
        append(item)
        pos += size
        committed_end = pos
    if pending is not None and stop is None:
        stop = "uncommitted batch"
    return ScanResult(entries, committed_end, stop, corrupt, pos if stop is not None else -1, pending)


def _confirm(mv: bytes | memoryview | mmap.mmap, p: int, end: int, final: bool, key_end: int = 0) -> int:
    """Whether the lengths of a damaged record that point to ``p`` are confirmed: return the offset
    of what confirms them (``end``, or a sound record, reached through damaged records with sound
    lengths, which it confirms too); -2 if they are not; -1 if that takes bytes past ``end``,
    which is not the region's end (not ``final``).

    ``key_end`` is where that record's key ends (0 for a record without a key). ``end`` confirms no
    record whose key the zeros that end the region reach into (see :func:`key_in_end_zeros`): such a
    key is no record's, and the record a damaged header (docs/file-format.md, rule 1)."""
    while True:
        if p == end:
            if not final:
                return -1
            return -2 if key_end and key_in_end_zeros(_bytes_of(mv), key_end, end) else p
        if end - p < HEADER_SIZE:
            return -2 if final else -1
        crc, rtype, _flags, klen, vlen, _expiry = HEADER.unpack_from(mv, p)
        if not (crc or rtype or klen or vlen) or klen > MAX_KEY_SIZE:
            return -2  # zeros, or a key length no record has: a damaged header
        size = HEADER_SIZE + klen + vlen
        if p + size > end:
            return -2 if final else -1
        if (
            rtype in RECORD_TYPES
            and (klen == 0) == (rtype == COMMIT)
            and (rtype != COMMIT or vlen == 4)
            and crc32(mv[p + 4 : p + size]) == crc
        ):
            return p
        key_end = p + HEADER_SIZE + klen if klen else 0
        p += size


def _index_damaged(
    mv: bytes | memoryview,
    pos: int,
    size: int,
    klen: int,
    pending: list[tuple[int, bytes, int, int, float]] | None,
    entries: list[tuple[int, bytes, int, int, float]],
) -> list[tuple[int, bytes, int, int, float]] | None:
    """Index the damaged record at ``pos`` of a published region (see :func:`scan`); return the
    batch still being read (None if there is none, or the record closed it)."""
    if klen == 0:
        # Only a COMMIT has no key: a damaged one still closes the batch before it.
        if pending is not None:
            entries.extend(pending)
        return None
    # Indexed as a put that never expires (its type and expiry cannot be trusted), so that
    # reading the key raises instead of silently returning an older value or nothing.
    item = (PUT, bytes(mv[pos + HEADER_SIZE : pos + HEADER_SIZE + klen]), pos, size, 0.0)
    if pending is not None:
        pending.append(item)
        return pending
    entries.append(item)
    return None


def _keep_damaged(
    dropped: list[tuple[int, bytes, int, int, float]],
    corrupt: list[int],
    append: Callable[[tuple[int, bytes, int, int, float]], None],
) -> None:
    """Index the damaged records among the records of a dropped batch (see :func:`scan`).

    A damaged record's batch flag cannot be trusted, so it may have been a
    record of its own: its key must raise on reading rather than silently
    return an older value.
    """
    if not dropped or not corrupt:
        return
    bad = set(corrupt)
    for item in dropped:
        if item[2] in bad:
            append(item)


#: How many bytes replay, merge and recovery scan at once. The records of a chunk are indexed as a list
#: of tuples, about 200 bytes per small record: an 8 MiB chunk (some 180,000 records of 45 bytes) held
#: 40 MB besides the key directory at every open, where 2 MiB holds 10 MB and scans as fast.
SCAN_CHUNK = 2 << 20


def scan_file(
    fd: int, start: int, end: int, *, trust_lengths: bool = False, chunk: int = SCAN_CHUNK
) -> Iterator[tuple[int, ScanResult]]:
    """Scan ``fd`` from ``start`` to ``end`` in big chunks; yield ``(offset of the chunk, result)``.

    Offsets in each result are relative to its chunk. A record (or batch) cut by
    a chunk boundary is read again at the start of the next chunk, and one
    bigger than a chunk doubles the chunk size. Iteration ends at ``end``, at
    the end of the file, or after the chunk whose scan stopped at a torn or
    damaged record; ``offset + result.end`` of the last item is where it stopped.
    """
    return scan_read(file_reader(fd), start, end, trust_lengths=trust_lengths, chunk=chunk)


def file_reader(fd: int) -> Callable[[int, int], bytes]:
    """``read(offset, n)``: the bytes of the file open as ``fd`` (fewer at its end), as the readers
    of this module (:func:`scan_read`, :func:`resync`, :func:`damaged_key`...) take them. It tells
    nothing of where the file holds data (see :func:`data_from`): every byte up to its size is read."""
    return functools.partial(_pread_at, fd)


def _pread_at(fd: int, pos: int, n: int) -> bytes:
    return os.pread(fd, n, pos)


def _bytes_of(buf: bytes | memoryview | mmap.mmap) -> Callable[[int, int], bytes]:
    """:func:`reader_of` ``buf``, a memoryview's slices copied into bytes."""
    return lambda offset, n: bytes(buf[offset : offset + n])


def reader_of(buf: Any) -> Callable[[int, int], bytes]:
    """``read(offset, n)`` over the bytes of ``buf`` (bytes, an mmap: anything sliced as bytes are),
    as :func:`file_reader` reads a file. Where ``buf`` is a map of a file followed by zeros it does not
    hold (:func:`kv_backend.filemaps.map_filled`), or has a ``data_from(pos)`` of its own, the reader
    tells where those zeros are (see :func:`data_from`)."""
    read = lambda offset, n: buf[offset : offset + n]  # noqa: E731 - (an attribute is set on it)
    find = getattr(buf, _DATA_FROM, None)
    if find is None and (size := filled_from(buf)) is not None:
        find = functools.partial(_held_below, size, None)
    if find is not None:
        setattr(read, _DATA_FROM, find)
    return read


#: The name of the attribute of a ``read(offset, n)`` that tells where its file holds no bytes: a
#: function of an offset ``pos`` giving the first offset at or after it where ``read`` may return a byte
#: that is not zero (:data:`NO_DATA` for none). See :func:`data_from`.
_DATA_FROM = "data_from"
#: What ``data_from`` gives where a file holds no byte from an offset on.
NO_DATA = 1 << 62


def data_from(read: Callable[[int, int], bytes], pos: int, end: int) -> int:
    """The first offset in ``[pos, end)`` where ``read`` may return a byte that is not zero, as far as it
    is known without reading the bytes before it; ``end`` where none may. A reader tells it of the zeros
    it reads that no byte of its file holds: past a file's real size (one that lost bytes, read as zeros
    up to its published end: :func:`zeros_past`, or a map :func:`kv_backend.filemaps.map_filled` made).
    :func:`resync` and the searches for zeros skip them in one step instead of reading them (64 MiB of
    them took a reader up to 0.7 s). ``pos`` (no skip) where ``read`` tells nothing. Where a file holds
    data is never asked of the file system (``SEEK_DATA``): one that misreports a hole would have the
    readers skip records."""
    find = getattr(read, _DATA_FROM, None)
    if find is None or pos >= end:
        return pos
    at: int = find(pos)
    return min(max(at, pos), end)


def _held_below(size: int, inner: Callable[[int], int] | None, pos: int) -> int:
    """``data_from`` of a file read as zeros from ``size`` on (``inner``, that of its bytes, if known)."""
    if pos >= size:
        return NO_DATA
    at = pos if inner is None else inner(pos)
    return at if at < size else NO_DATA


def zeros_past(
    read: Callable[[int, int], bytes], size: int, held: Callable[[int, int], bytes] | None = None
) -> Callable[[int, int], bytes]:
    """``read``, telling that the bytes it reads from ``size`` on are zeros its file does not hold (a
    file that lost bytes, read as if zeros followed them up to its published end: see
    :func:`data_from`), and of the first ``size`` what ``held`` (by default ``read``), which reads them,
    tells; ``read`` itself is left as it is."""

    def told(offset: int, n: int) -> bytes:
        return read(offset, n)

    inner = getattr(read if held is None else held, _DATA_FROM, None)
    setattr(told, _DATA_FROM, functools.partial(_held_below, size, inner))
    return told


def scan_read(
    read: Callable[[int, int], bytes],
    start: int,
    end: int,
    *,
    trust_lengths: bool = False,
    chunk: int = SCAN_CHUNK,
    open_end: bool = False,
) -> Iterator[tuple[int, ScanResult]]:
    """:func:`scan_file` of the bytes ``read(offset, n)`` returns (fewer at the end of the file).

    With ``open_end``, ``end`` confirms no damaged record's lengths (see :func:`scan`): it is where
    the file ends, not where published data does."""
    pos = start
    while pos < end:
        n = min(chunk, end - pos)
        buf = read(pos, n)
        got = len(buf)
        final = (got < n or n == end - pos) and not open_end
        res = scan(buf, 0, got, trust_lengths=trust_lengths, final=final)
        yield pos, res
        pos += res.end
        if res.stop_reason is None:
            if got < n:
                return  # the file is shorter than ``end``
            continue
        if got < n or got == end - (pos - res.end):
            return  # a real stop: the region ends in a torn or damaged record
        if res.stop_reason not in _NEEDS_BYTES or _runs_past(buf, res.stop_at, end - (pos - res.end)):
            # Damage that no more bytes can change: read no further. (Reading again from the stop in
            # larger chunks read the rest of the region into memory, ~2x the file at a damaged header.)
            return
        if res.end == 0:
            chunk *= 2  # one record (or batch) is bigger than the chunk


#: The stops of :func:`scan` that more bytes than its buffer held may change: a record or batch that
#: goes on past it, or the confirmation of a damaged record's lengths.
_NEEDS_BYTES = frozenset({"truncated header", "truncated record", "uncommitted batch"})


def _runs_past(buf: bytes, at: int, room: int) -> bool:
    """Whether the record header at ``at`` of ``buf`` (if whole there) declares a record that no bytes
    can complete: a key length above the limit, or an end past ``room``, where the region ends."""
    if at < 0 or at + HEADER_SIZE > len(buf):
        return False
    klen: int
    vlen: int
    _, _, _, klen, vlen, _ = HEADER.unpack_from(buf, at)
    return klen > MAX_KEY_SIZE or at + HEADER_SIZE + klen + vlen > room


#: The type and lengths of a header that may start a sound record: a known type, any flags byte (bits
#: 1 to 7 are reserved, and every reader ignores them), a key length of at most 65536 and a value
#: length below 2^31 (the exact bounds and the CRC are checked after). Its first byte is a character
#: class, which ``re`` scans for quickly.
_MAYBE_RECORD = re.compile(rb"[\x01-\x03][\s\S]{3}[\x00\x01]\x00[\s\S]{3}[\x00-\x40]")
_RESYNC_WINDOW = 1 << 20
#: Records up to this size are checksummed directly; larger ones from prefix CRCs (:class:`RangeCrc`).
_DIRECT_CRC = 2 * RANGE_STEP


def _plausible_size(head: bytes | memoryview, at: int) -> int:
    """The size of the record whose header is ``head[at : at + 22]`` if every check of
    :func:`sound_size` but the CRC and the region's end passes, else 0."""
    _crc, rtype, _flags, klen, vlen, _expiry = HEADER.unpack_from(head, at)
    if rtype not in RECORD_TYPES or klen > MAX_KEY_SIZE or vlen > MAX_VALUE_SIZE:
        return 0
    if (klen == 0) != (rtype == COMMIT) or (rtype == COMMIT and vlen != 4):
        return 0
    size: int = HEADER_SIZE + klen + vlen
    return size


def sound_size(read: Callable[[int, int], bytes], pos: int, end: int, crcs: RangeCrc | None = None) -> int:
    """The size of the sound record at ``pos`` (a known type, lengths in bounds and inside ``end``, a
    COMMIT with a 4-byte count and no key, any other record with a key, the CRC matching), else 0.

    ``read(offset, n)`` returns the bytes of the file (fewer at its end); ``crcs``, reading the same
    bytes from an offset at or before ``pos + 4``, checksums a large record (see :func:`resync`).
    """
    head = read(pos, HEADER_SIZE) if end - pos >= HEADER_SIZE else b""
    if len(head) < HEADER_SIZE:
        return 0
    size = _plausible_size(head, 0)
    if not size or pos + size > end:
        return 0
    return size if _crc_matches(read, crcs, pos, size, COUNT.unpack_from(head)[0]) else 0


def holds_put(read: Callable[[int, int], bytes], pos: int, size: int, key: bytes) -> bool:
    """Whether a sound PUT of ``key``, ``size`` bytes long, lies at ``pos``: what a read of the key through
    a hint file entry checks (its lengths, type, key and CRC)."""
    head = read(pos, HEADER_SIZE)
    return (
        len(head) == HEADER_SIZE
        and head[4] == PUT
        and HEADER.unpack(head)[3] == len(key)
        and read(pos + HEADER_SIZE, len(key)) == key
        and sound_size(read, pos, pos + size) == size
    )


def _crc_matches(
    read: Callable[[int, int], bytes], crcs: RangeCrc | None, pos: int, size: int, crc: int
) -> bool:
    """Whether the record of ``size`` bytes at ``pos`` has the CRC ``crc`` (see :func:`sound_size`)."""
    if crcs is not None and size > _DIRECT_CRC:
        return crcs.crc(pos + 4, pos + size) == crc
    body = read(pos + 4, size - 4)
    return len(body) == size - 4 and crc32(body) == crc


def resync(read: Callable[[int, int], bytes], pos: int, end: int) -> int | None:
    """Where reading goes on after the damaged header at ``pos`` of a published region ending at
    ``end`` (see docs/file-format.md, "Damaged lengths"): the first offset after ``pos`` where a
    sound record starts that is confirmed, that is, followed at once by another sound record, or
    by nothing but zero bytes up to ``end`` (none included). None if there is no such offset: the
    damage runs to ``end``.

    The confirmation rules out what a lone record's bytes inside a value would otherwise cause (a
    value that holds an encoded record, followed by anything else): only a value holding two whole
    records in a row (or one followed by nothing but zeros up to ``end``), or a 32-bit CRC
    collision twice over, can still be taken for records. ``read(offset, n)`` returns the
    file's bytes; they are read a window at a time.
    """
    zeros_from = -1  # where the zero bytes ending the region start, once needed
    # Every candidate's CRC: derived from prefix CRCs, so that checking candidates that overlap (a
    # value of small int32s followed by another: every 4 bytes a header of 64 KiB key and value whose
    # lengths lead to another) reads each byte once, not once per candidate (4 GB per such damaged spot).
    crcs: RangeCrc | None = None
    for p, window, at in _candidates(read, pos + 1, end):
        # What the candidate's lengths lead to must look like a record, or be where the zeros
        # ending the region start, before either record is checksummed: a value of small int32s
        # (01 00 00 00...) looks like a header of 64 KiB key and value every 4 bytes, and
        # checksumming each of them whole took seconds per megabyte.
        size = _plausible_size(window, at)
        c = p + at
        nxt = c + size
        if not size or nxt > end:
            continue
        w = nxt - p
        if w + HEADER_SIZE <= len(window):
            head = window[w : w + HEADER_SIZE]
        else:
            head = read(nxt, min(HEADER_SIZE, end - nxt))  # nothing past the region's end
        if len(head) == HEADER_SIZE and _plausible_size(head, 0):
            zeros = False
        elif head.strip(b"\0"):
            continue
        else:
            if zeros_from < 0:
                zeros_from = zeros_start(read, pos, end)
            zeros = nxt >= zeros_from
            if not zeros:
                continue
        if crcs is None:
            crcs = RangeCrc(read, pos + 1, crc32)
        # (sound_size(c) but for what the tests above found already)
        if _crc_matches(read, crcs, c, size, COUNT.unpack_from(window, at)[0]) and (
            zeros or sound_size(read, nxt, end, crcs)
        ):
            return c
    return None


def _candidates(read: Callable[[int, int], bytes], p: int, end: int) -> Iterator[tuple[int, bytes, int]]:
    """The offsets from ``p`` on where a record may start before ``end`` (its type byte one the format
    knows), as ``(window start, window, offset in the window)``: read a window at a time, the windows
    overlapping by a header less a byte, so that each candidate's whole header lies in its window. Zeros
    ``read`` tells its file does not hold (:func:`data_from`) are skipped unread: a type byte is never 0."""
    while p <= end - HEADER_SIZE:
        if (held := data_from(read, p + 4, end)) > p + 4:
            p = held - 4  # (a record there has its type byte where the file holds bytes)
            continue
        window = read(p, min(_RESYNC_WINDOW, end - p))
        last = len(window) - HEADER_SIZE  # a candidate's whole header lies in the window
        if last < 0:
            return
        # A record at window offset ``i`` has its type at ``i + 4``; the candidates are 0 .. last.
        i = 4
        while (m := _MAYBE_RECORD.search(window, i, last + 14)) is not None:
            i = m.start() + 1
            yield p, window, m.start() - 4
        p += last + 1


def sound_within(read: Callable[[int, int], bytes], start: int, end: int) -> bool:
    """Whether a sound record (:func:`sound_size`, lying inside ``end``) starts anywhere in ``[start, end)``,
    confirmed or not; read a window at a time, the headers that may start one found, and checksummed from
    prefix CRCs, as :func:`resync` does (candidates that overlap read each byte once)."""
    crcs = RangeCrc(read, start + 1, crc32)
    return any(sound_size(read, p + at, end, crcs) for p, _, at in _candidates(read, start, end))


def only_zeros(read: Callable[[int, int], bytes], pos: int, end: int) -> bool:
    """True if only zero bytes (space reserved ahead of the data) lie between ``pos`` and ``end``,
    read a window at a time; bytes the file does not hold count as zeros (those ``read`` tells of,
    :func:`data_from`, are not read)."""
    step = _RESYNC_WINDOW
    while (pos := data_from(read, pos, end)) < end:
        if read(pos, min(step, end - pos)).strip(b"\0"):
            return False
        pos += step
    return True


def zeros_start(read: Callable[[int, int], bytes], pos: int, end: int) -> int:
    """Where the zero bytes that end ``[pos, end)`` start (``end`` if it ends in another byte), read
    back from ``end`` a window at a time (a span ``read`` tells its file holds no bytes in, see
    :func:`data_from`, is passed unread, the span doubled each time)."""
    span = _RESYNC_WINDOW
    while end > pos:
        start = max(pos, end - span)
        if data_from(read, start, end) >= end:
            end, span = start, span * 2  # (nothing held there: zeros)
            continue
        if span > _RESYNC_WINDOW:
            span = _RESYNC_WINDOW  # (bytes held in there: read back from ``end`` a window at a time)
            continue
        data = read(start, end - start).rstrip(b"\0")
        if data:
            return start + len(data)
        end = start
    return pos


def damaged_key(read: Callable[[int, int], bytes], pos: int, end: int) -> tuple[bytes, int] | None:
    """The key of the damaged header at ``pos`` of a published region ending at ``end``, and the
    size to index it with (its own, cut at ``end``): None if its key length is 0, above 65536,
    or its key runs past ``end``. Replay indexes that key as damaged, so that reading it raises
    rather than returning an older value (docs/file-format.md, rule 3)."""
    head = read(pos, HEADER_SIZE) if end - pos >= HEADER_SIZE else b""
    if len(head) < HEADER_SIZE:
        return None
    _, _, _, klen, vlen, _ = HEADER.unpack(head)
    key_end = pos + HEADER_SIZE + klen
    if not 0 < klen <= MAX_KEY_SIZE or key_end > end or key_in_end_zeros(read, key_end, end):
        return None
    return read(pos + HEADER_SIZE, klen), min(HEADER_SIZE + klen + vlen, end - pos)


def key_in_end_zeros(read: Callable[[int, int], bytes], key_end: int, end: int) -> bool:
    """Whether the zero bytes that end the published region ending at ``end`` reach into the key of a
    damaged record that ends at ``key_end`` (its last byte is one of them): zeros that stand in for
    bytes a file lost (read as zeros, or filled with them by recovery) or reserved zeros, never a key
    that was written. Such a key is not taken: it would list a key nobody wrote, ``b"\\x00" * n`` or
    a key's first bytes followed by zeros (docs/file-format.md, rules 1 and 3)."""
    return only_zeros(read, key_end - 1, end)


def confirmed_to(buf: bytes | memoryview | mmap.mmap, p: int, end: int, key_end: int = 0) -> int:
    """Whether the lengths of a damaged record of a published region ending at ``end`` (all of it
    in ``buf``), which point to ``p``, are confirmed (see :func:`scan`; ``key_end``: where its key
    ends, 0 without one, see :func:`_confirm`): the offset of what confirms them (``end``, or the sound
    record reached through damaged records whose lengths it confirms too, so that they need not be
    looked at again), or -1 if they are not."""
    return max(_confirm(buf, p, end, True, key_end), -1)
