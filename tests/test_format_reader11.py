"""A second, independent reader of the on-disk format, checked against DB: a guard for docs/file-format.md.

The reader below (``read_store`` and its helpers) was written from docs/file-format.md (and the
STATE page's layout in docs/protocol.md) alone, without reading kv_backend's code, and imports
nothing from kv_backend. The tests make stores with the real engine in many states (overwrites,
deletes, expiry, batches and transactions committed, discarded and cut by a crash, torn tails,
rotations, merges with hint files, a merge killed at each of its renames, processes writing at
once, damaged records) and check that the reader sees exactly what DB sees. If the format changes
without the document (and this reader) changing with it, they fail.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import struct
import sys
import time
import zlib

import pytest
from helpers import exit_code, fork_child, kill_at_call

from kv_backend import DB, CorruptionError

# ---------------------------------------------------------------------------------------------
# The reader, from docs/file-format.md.

HEADER = struct.Struct("<IBBIId")  # crc, type, flags, key length, value length, expiry
PUT, DELETE, COMMIT = 1, 2, 3
DATA_NAME = re.compile(r"^(\d{10})-(\d{3})\.data$")
MAX_KEY = 65536
MAX_VALUE = 1 << 30
NOT_ZERO = re.compile(rb"[^\0]")
DAMAGED = "DAMAGED"  # a key whose newest record is damaged: reading it must raise
REGION = "REGION"  # (an operation that applies nothing: a damaged region the readers report)


def _record(buf: bytes, pos: int) -> tuple | None:
    """The record at ``pos``, or None where the data ends in every file."""
    if len(buf) - pos < 22:
        return None
    crc, rtype, flags, klen, vlen, expiry = HEADER.unpack_from(buf, pos)
    if crc == rtype == klen == vlen == 0:
        return None  # reserved zeros
    end = pos + 22 + klen + vlen
    if end > len(buf) or klen > MAX_KEY:
        return None
    # A record that cannot be read (an unknown type, a COMMIT without a 4-byte count) is damage,
    # as a CRC mismatch is, even with a matching CRC.
    readable = rtype in (PUT, DELETE) or (rtype == COMMIT and vlen == 4)
    good = readable and zlib.crc32(buf[pos + 4 : end]) == crc
    key = buf[pos + 22 : pos + 22 + klen]
    return good, rtype, flags, key, buf[pos + 22 + klen : end], expiry, end


def _scan(
    buf: bytes, start: int, limit: int, published: bool, rule3: bool = True, by_end: bool | None = None
) -> tuple[list[tuple], int, int]:
    """Read the records from ``start`` to ``limit``: (the operations they apply, end of the data,
    where the record that stopped the reading starts). Without ``rule3``, the published rules
    stop at a damaged header, and ``limit`` (the end of a file, no published end) confirms nothing
    unless ``by_end`` says it does (a published end)."""
    by_end = rule3 if by_end is None else by_end
    buf = buf[:limit]
    ops: list[tuple] = []
    batch: list[tuple] | None = None
    pos = data_end = start
    while True:
        r = _record(buf, pos)
        key_end = pos + 22 + len(r[3]) if r is not None and r[3] else 0
        if published and r is not None and not r[0] and not _confirmed(buf, r[6], by_end, key_end):
            r = None  # a damaged record whose lengths nothing confirms: a damaged header (rule 1)
        if r is None:
            if not published or pos >= len(buf) or not rule3:
                break
            # A damaged header in the published part (rule 3): the open batch committed, its key
            # (if it has a sound one) is damaged; resume at the next confirmed sound record.
            if batch is not None:
                ops.extend(batch)
                batch = None
            ops.append((REGION, b"", b"", 0.0))
            if len(buf) - pos >= 22:
                klen = HEADER.unpack_from(buf, pos)[3]
                # (not where the zeros that end the data reach into it: no key was written there)
                key_end = pos + 22 + klen
                if 0 < klen <= MAX_KEY and key_end <= len(buf) and not _end_zeros(buf, key_end):
                    ops.append((DAMAGED, buf[pos + 22 : pos + 22 + klen], b"", 0.0))
            pos = _resume(buf, pos)
            if pos is None:
                return ops, len(buf), len(buf)
            data_end = pos
            continue
        good, rtype, flags, key, value, expiry, end = r
        if not good:
            if not published:
                break
            ops.append((REGION, b"", b"", 0.0))
            if key:
                op = (DAMAGED, key, b"", 0.0)
                (batch if batch is not None else ops).append(op)
            elif batch is not None:
                ops.extend(batch)  # a damaged COMMIT applies its batch
                batch = None
        elif rtype == COMMIT:
            count = struct.unpack("<I", value)[0]
            if batch is None and count == 0:
                pass  # no-op marker
            elif batch is not None and count == len(batch):
                ops.extend(batch)
                batch = None
            elif not published:
                break  # the tail of a write that never completed
            else:
                if batch:
                    cut = max(len(batch) - count, 0)
                    ops.extend(op for op in batch[:cut] if op[0] == DAMAGED)
                    ops.extend(batch[cut:])
                batch = None
        elif flags & 1:
            if batch is None:
                batch = []
            batch.append((rtype, key, value, expiry))
            pos = end
            continue  # a batch moves the end of the data only with its COMMIT
        else:
            if batch is not None:
                ops.extend(op for op in batch if op[0] == DAMAGED)
                batch = None
            ops.append((rtype, key, value, expiry))
        pos = end
        if batch is None:
            data_end = pos
    if published and batch is not None and pos >= len(buf):
        ops.append((REGION, b"open batch", b"", 0.0))  # (at the end of a closed file: damage)
    return ops, data_end, pos


def _sound(buf: bytes, pos: int) -> int | None:
    """The end of the sound record at ``pos`` (rule 3 of the published part), else None."""
    r = _record(buf, pos)
    if r is None or not r[0] or (r[1] == COMMIT) == bool(r[3]) or len(r[4]) > MAX_VALUE:
        return None
    return r[6]


def _confirmed(buf: bytes, pos: int, by_end: bool = True, key_end: int = 0) -> bool:
    """Rule 1: the lengths of a damaged record that point to ``pos`` are confirmed (``by_end``: the
    published end, the end of ``buf``, confirms them, unless the zeros that end it reach into the key
    of the record whose lengths point there, which ends at ``key_end``)."""
    while pos != len(buf):
        r = _record(buf, pos)
        if r is None:
            return False
        if _sound(buf, pos) is not None:
            return True
        key_end = pos + 22 + len(r[3]) if r[3] else 0
        pos = r[6]
    return by_end and not _end_zeros(buf, key_end)


def _end_zeros(buf: bytes, key_end: int) -> bool:
    """Whether the zeros that end ``buf`` reach into the key that ends at ``key_end`` (none: 0 or less)."""
    return 0 < key_end <= len(buf) and not buf[key_end - 1 :].strip(b"\0")


def _resume(buf: bytes, pos: int) -> int | None:
    """Where reading resumes after the damaged header at ``pos``: the first confirmed sound record."""
    c = pos + 1
    while c < len(buf) - 21:
        if NOT_ZERO.search(buf, c, c + 22) is None:
            # A header of zeros is no record, nor is any up to the next byte that is not zero (the
            # reserved zeros of an active file: stepping through them byte by byte took seconds).
            nxt = NOT_ZERO.search(buf, c + 22)
            if nxt is None:
                return None
            c = nxt.start() - 21
            continue
        if _resumes_at(buf, c):
            return c
        c += 1
    return None


def _sound_lengths(buf: bytes, pos: int) -> int | None:
    """The end of the record at ``pos`` if its header is not zeros and its lengths are sound."""
    if len(buf) - pos < 22 or not buf[pos : pos + 22].strip(b"\0"):
        return None
    klen, vlen = HEADER.unpack_from(buf, pos)[3:5]
    end = pos + 22 + klen + vlen
    return None if klen > MAX_KEY or vlen > MAX_VALUE or end > len(buf) else end


def _may_be_torn(buf: bytes, pos: int) -> bool:
    """Whether what starts at ``pos`` can be a writer's torn last write: reserved zeros to the end of
    the file, or a record with sound lengths followed by nothing but zeros."""
    end = _sound_lengths(buf, pos)
    return not buf[pos if end is None else end :].strip(b"\0")


def _unfinished_transaction(buf: bytes, pos: int) -> bool:
    """Whether what follows ``pos``, where the data of the file before a newest one holding at most a header
    ends without a page, is a transaction a writer died in: up to reserved zeros that run to the end of the
    file, records of a batch that check out and no other record that checks out (no COMMIT, none without
    the batch flag, nor a COMMIT reached by the lengths of bytes that are no record), bytes that are no
    record around them; or two or more records of a batch, none of which checks out, with sound lengths,
    each ending where the next starts and the last past the zeros' start."""
    zeros = len(buf.rstrip(b"\0"))
    start, found = pos, False
    while pos < zeros:
        end = _sound(buf, pos)
        if end is not None:
            r = _record(buf, pos)
            if r is None or r[1] == COMMIT or not r[2] & 1:
                return False
            found, pos = True, end
            continue
        # (bytes that are no record, whose lengths lead over damaged records to a sound one, which confirms
        # them: a COMMIT among them, sound or damaged without a key, ends a batch that committed)
        keyless, step = False, pos
        while step < zeros and (nxt := _sound_lengths(buf, step)) is not None:
            keyless = keyless or HEADER.unpack_from(buf, step)[3] == 0
            if nxt < zeros and _sound(buf, nxt) is not None:
                r = _record(buf, nxt)
                if r is None or keyless or r[1] == COMMIT or not r[2] & 1:
                    return False
                break
            step = nxt
        # (where reading would resume after bytes that are no record: the next confirmed sound record)
        pos = next((c for c in range(pos + 1, zeros) if _resumes_at(buf, c)), zeros)
    if found or zeros == len(buf):
        return found and zeros < len(buf)
    pos, count = start, 0  # (every record of it damaged)
    while pos < zeros and (end := _sound_lengths(buf, pos)) is not None and buf[pos + 5] & 1:
        pos, count = end, count + 1
    return count > 1 and pos >= zeros


def _resumes_at(buf: bytes, pos: int) -> bool:
    """A confirmed sound record starts at ``pos``: one followed by another, or by zeros to the end."""
    end = _sound(buf, pos)
    return end is not None and (_sound(buf, end) is not None or not buf[end:].strip(b"\0"))


def _end_without_page(buf: bytes) -> int:
    """Where the data of a file with no published end ends (step 2 of "The end of the active file")."""
    _, best, stop = _scan(buf, 16, len(buf), published=False)
    pos = best
    while True:
        while (nxt := _sound_lengths(buf, pos)) is not None:
            _, pos, after = _scan(buf, nxt, len(buf), published=False)
            if pos > nxt:
                best, stop = pos, after
            else:
                pos = nxt
        # Where nothing more follows that way: the data ends there if what stopped the reading can
        # be a torn last write; otherwise it is damage, read by rules 1 and 2, else by rule 3.
        if stop >= len(buf) or _may_be_torn(buf, stop) or _unfinished_transaction(buf, best):
            return best
        _, pos, after = _scan(buf, best, len(buf), published=True, rule3=False)
        if pos > best:  # damaged records (confirmed) or batches holding them, by rules 1 and 2
            best, stop = pos, after
            continue
        resume = _resume(buf, stop)
        if resume is None:
            return best
        _, pos, stop = _scan(buf, resume, len(buf), published=False)
        if pos > resume:
            best = pos


def _state_words(path: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The tail and the intent word of a valid STATE page, each as (major id, end), else None."""
    try:
        with open(os.path.join(path, "STATE"), "rb") as f:
            page = f.read(4096)
    except FileNotFoundError:
        return None
    if len(page) < 40 or page[:8] != b"KVBSTAT2" or struct.unpack_from("<I", page, 8)[0] != 2:
        return None
    tail, intent = (int.from_bytes(page[at : at + 8], sys.byteorder) for at in (16, 32))
    if tail & ((1 << 40) - 1) < 16:
        return None  # a published end inside a file header: not a valid page
    return (tail >> 40, tail & ((1 << 40) - 1)), (intent >> 40, intent & ((1 << 40) - 1))


def _page_past_a_closed_end(
    path: str, ids: list[tuple[int, int]], page: tuple[int, int], intent: tuple[int, int]
) -> bool:
    """Whether the page names a data file that newer files follow (no merge output newest, and not only
    a newest file shorter than a header), with a published end past that file's end, and its intent
    word does not vouch for its tail (equal to it, in the same file at or past its end, or the end of
    the next file's header), or that end lies more than 64 MiB past the file's end, more than a power
    failure takes: a damaged page."""
    named = (page[0], 0)
    if named not in ids or named == ids[-1] or ids[-1][1] != 0:
        return False
    newest = os.path.getsize(os.path.join(path, f"{ids[-1][0]:010d}-{ids[-1][1]:03d}.data"))
    if named == ids[-2] and newest < 16:
        return False  # (the file before a newest one shorter than a header is still the active one)
    size = os.path.getsize(os.path.join(path, f"{page[0]:010d}-000.data"))
    if size >= page[1]:
        return False
    return not _vouched(page, intent) or page[1] - size > 64 << 20


def _intent_past_the_file(path: str, page: tuple[int, int], intent: tuple[int, int]) -> bool:
    """Whether the file the page names reaches its end while the intent word names an end in that file
    more than 64 MiB past the file's end: a writer grows the file over its write before it stores its
    intent, and a power failure takes no more than that, so that intent is damaged, and the page too."""
    name = os.path.join(path, f"{page[0]:010d}-000.data")
    if intent[0] != page[0] or not os.path.exists(name):
        return False
    size = os.path.getsize(name)
    return page[1] <= size and intent[1] - size > 64 << 20


def _vouched(page: tuple[int, int], intent: tuple[int, int]) -> bool:
    """Whether the intent word vouches for the page's tail: equal to it, in the same file at or past its
    end, or the end of the next file's header. A page whose intent does not is damaged."""
    return (intent[0] == page[0] and intent[1] >= page[1]) or intent == (page[0] + 1, 16)


def _page_inside_a_record(
    path: str, ids: list[tuple[int, int]], page: tuple[int, int], intent: tuple[int, int]
) -> bool:
    """Whether the page names a data file (minor id 0; no merge output newest) whose published end is
    not followed by what a writer leaves (22 zero bytes, where the intent word equals the tail, or a
    header of type 1 to 3, flags up to 1 and lengths in bounds) and lies inside a sound record of it,
    following its sound records one after the other from its header, or inside a damaged record of a batch
    open there that reaching it stops at: a damaged page."""
    named = (page[0], 0)
    if named not in ids or ids[-1][1] != 0:
        return False
    with open(os.path.join(path, f"{page[0]:010d}-000.data"), "rb") as f:
        buf = f.read()
    if not 16 < page[1] < len(buf):
        return False
    _, rtype, flags, klen, vlen, _ = HEADER.unpack(buf[page[1] : page[1] + 22].ljust(22, b"\0"))
    head = buf[page[1] : page[1] + 22]
    if (rtype == 0 and not head.strip(b"\0") and intent == page) or (
        0 < rtype <= COMMIT and flags <= 1 and klen <= MAX_KEY and vlen <= MAX_VALUE
    ):
        return False
    pos = 16
    while pos < page[1]:
        nxt = _sound(buf, pos)
        if nxt is None:
            # (a damaged record whose lengths the sound record right after it confirms: stepped over)
            lengths = _sound_lengths(buf, pos)
            nxt = lengths if lengths is not None and _sound(buf, lengths) is not None else None
        if nxt is None:
            # (a damaged region: up to where reading resumes, unless that is past the end)
            nxt = _resume(buf, pos)
            if nxt is None or nxt > page[1]:
                end = page[1]
                return _inside_an_open_batch(buf, pos, end) or _zeros_after_an_open_batch(buf, pos, end)
        pos = nxt
    return pos > page[1]


def _zeros_after_an_open_batch(buf: bytes, pos: int, end: int) -> bool:
    """Whether only zeros lie from ``pos`` (where reaching the end stopped) to the published ``end``, where
    the intent word lies past it (zeros at the end with the intent equal to the tail are what a writer
    leaves), after a batch open there (read from the header by the published rules): a damaged page."""
    if buf[pos:end].strip(b"\0"):
        return False
    _, data_end, stop = _scan(buf, 16, pos, published=True, rule3=False, by_end=True)
    return stop >= pos and data_end < pos


def _inside_an_open_batch(buf: bytes, pos: int, end: int) -> bool:
    """Whether the published ``end`` lies inside the damaged record at ``pos`` (where no reading resumes
    before the end), its lengths sound and inside the file, where a batch is open (read from the header by
    the published rules), with no sound record between its start and the end: a damaged page."""
    after = _sound_lengths(buf, pos)
    if after is None or after <= end:
        return False
    _, data_end, stop = _scan(buf, 16, pos, published=True, rule3=False, by_end=True)
    if stop < pos or data_end >= pos:
        return False
    part = buf[:end]
    return all(_sound(part, c) is None for c in range(pos + 1, end - 21))


def _left_by_a_dead_writer(buf: bytes, pos: int) -> bool:
    """Whether what follows ``pos`` is what a writer that died there leaves: read by the unpublished rules
    (records of its batch, then what they keep after them), they stop at the end of the file or at what
    can be an unfinished last write (zeros to the end of the file, or a record whose lengths point inside
    the file with only zeros after: not one the end of the file cuts, as a writer grows a file before it
    writes there), and not at once at a COMMIT counting other than the records of a batch that follow
    ``pos``."""
    _, kept, stop = _scan(buf, pos, len(buf), published=False)
    r = _record(buf, stop)
    if kept == pos and r is not None and r[0] and r[1] == COMMIT:
        return False
    return stop >= len(buf) or _may_be_torn(buf, stop)


def _cut_at(buf: bytes, pos: int) -> bool:
    """Whether recovery cuts everything after ``pos``, the published end of the file a rotation that died
    did not close, and a batch open there with it: read by the unpublished rules, nothing is kept after
    ``pos``, and the reading stops at the end of the file or at what can be an unfinished last write, not
    at a COMMIT (one that counts other records than follow ``pos``)."""
    _, kept, stop = _scan(buf, pos, len(buf), published=False)
    r = _record(buf, stop)
    if kept != pos or (r is not None and r[0] and r[1] == COMMIT):
        return False
    return stop >= len(buf) or _may_be_torn(buf, stop)


def _page_inside_a_batch(path: str, ids: list[tuple[int, int]], page: tuple[int, int]) -> bool:
    """Whether the page names a data file (minor id 0; no merge output newest) whose published end is a
    record boundary inside a batch that committed after it (docs/protocol.md, "The state page"): the
    record there is a batch's or a COMMIT, what follows is not what a writer that died there leaves, and
    either the file read from its header by the published rules has a batch open at the end, or a damaged
    header stops that reading and, read from the end by the unpublished rules, k records of a batch are
    followed by a COMMIT of a count above k: a damaged page."""
    named = (page[0], 0)
    if named not in ids or ids[-1][1] != 0:
        return False
    with open(os.path.join(path, f"{page[0]:010d}-000.data"), "rb") as f:
        buf = f.read()
    end = page[1]
    if not 16 < end <= len(buf) - 22:
        return False
    rtype, flags, klen = HEADER.unpack_from(buf, end)[1:4]
    # (a damaged record without a key is a COMMIT, as rule 1 has it)
    damaged_commit = klen == 0 and buf[end : end + 22].strip(b"\0") and _sound(buf, end) is None
    if not (flags & 1 or rtype == COMMIT or damaged_commit) or _left_by_a_dead_writer(buf, end):
        return False
    _, data_end, stop = _scan(buf, 16, end, published=True, rule3=False, by_end=True)
    if stop >= end:
        return data_end < end  # (a batch open at the end)
    k, pos = 0, end  # a damaged header stopped the reading: the COMMIT after the end decides
    while (r := _record(buf, pos)) is not None and r[0] and r[2] & 1 and r[1] != COMMIT:
        k, pos = k + 1, r[6]
    return r is not None and r[0] and r[1] == COMMIT and struct.unpack("<I", r[4])[0] > k


def _hint_entries(hint: bytes, data_size: int) -> list[tuple[bytes, int, int, float]] | None:
    if len(hint) < 40 or hint[:8] != b"KVBHINT\0":
        return None
    version, n, size, crc, _reserved, total = struct.unpack_from("<IIQIIQ", hint, 8)
    if version != 3 or size != data_size or len(hint) != 40 + 20 * n + total:
        return None
    if zlib.crc32(hint[40:]) != crc:
        return None
    klens = struct.unpack_from(f"<{n}I", hint, 40)
    locations = struct.unpack_from(f"<{n}Q", hint, 40 + 4 * n)
    expiries = struct.unpack_from(f"<{n}d", hint, 40 + 12 * n)
    if sum(klens) != total:
        return None
    entries, p = [], 40 + 20 * n
    for klen, loc, expiry in zip(klens, locations, expiries, strict=True):
        offset, size = loc >> 32, loc & 0xFFFFFFFF
        if offset + size > data_size:
            return None
        entries.append((hint[p : p + klen], offset, size, expiry))
        p += klen
    return entries


def _hinted_ops(entries: list[tuple[bytes, int, int, float]], buf: bytes) -> list[tuple]:
    ops: list[tuple] = []
    for key, offset, size, expiry in entries:
        rec = buf[offset : offset + size]
        klen, vlen = HEADER.unpack_from(rec.ljust(22, b"\0"))[3:5]
        good = len(rec) >= 22 and zlib.crc32(rec[4:]) == HEADER.unpack_from(rec)[0]
        if good and 22 + klen + vlen == size and rec[22 : 22 + klen] == key:
            ops.append((PUT, key, rec[22 + klen :], expiry))
        else:
            ops.append((DAMAGED, key, b"", 0.0))
    return ops


def read_store(
    path: str, now: float | None = None, use_hints: bool = True, regions: list | None = None
) -> dict:
    """{key: (value, expiry) or DAMAGED} of the store at ``path``, as a writer opening it sees it.

    ``regions`` gets the name of the data file of each damaged region the records of the data files show
    (damaged records, damaged headers, a batch open at the end of a closed file); damage a hint file or a
    file shorter than its header shows is not counted there."""
    now = time.time() if now is None else now
    with open(os.path.join(path, "KVB_FORMAT"), "rb") as f:
        assert f.readline() == b"kv_backend store, format 1\n"
    ids = sorted((int(m[1]), int(m[2])) for m in map(DATA_NAME.match, os.listdir(path)) if m)
    words = _state_words(path)
    page = None if words is None else words[0]
    # (naming a file that is gone, older than the active one: damage to its major id)
    gone = page is not None and ids[-1][1] == 0 and page[0] < ids[-1][0] and (page[0], 0) not in ids
    if page is not None and (
        gone
        or not _vouched(page, words[1])
        or _intent_past_the_file(path, page, words[1])
        or _page_inside_a_record(path, ids, page, words[1])
        or _page_inside_a_batch(path, ids, page)
        or _page_past_a_closed_end(path, ids, page, words[1])
    ):
        page = None  # a damaged page: read as without one
    view: dict = {}
    for i, fid in enumerate(ids):
        name = os.path.join(path, f"{fid[0]:010d}-{fid[1]:03d}")
        with open(name + ".data", "rb") as f:
            buf = f.read()
        newest = os.path.getsize(os.path.join(path, f"{ids[-1][0]:010d}-{ids[-1][1]:03d}.data"))
        before_active = i == len(ids) - 2 and fid[1] == 0 and ids[-1][1] == 0 and newest <= 16
        # (a newest file shorter than a header holds nothing: where the page names the one before, that
        # one is active)
        active = (i == len(ids) - 1 and fid[1] == 0) or (
            before_active and page is not None and newest < 16 and page[0] == fid[0]
        )
        # (a file the page names that newer files follow: read as the file before the active one)
        lagged = page is not None and page[0] == fid[0] and fid[1] == 0 and not active and ids[-1][1] == 0
        before_active = (before_active or lagged) and not active
        if not active and os.path.exists(name + ".hint"):
            # A data file shorter than the size its hint file gives, which checks out for that size with
            # records past the data file's end, the last of them ending at that size: it lost bytes, read
            # as if zeros followed them.
            with open(name + ".hint", "rb") as f:
                hint = f.read()
            described = struct.unpack_from("<Q", hint, 16)[0] if len(hint) >= 40 else 0
            entries = _hint_entries(hint, described) if described > len(buf) else None
            if entries and len(buf) < max(off + size for _, off, size, _ in entries) == described:
                buf += bytes(described - len(buf))  # (one cut inside its header too)
        if len(buf) < 16:
            continue  # holds nothing, or lost the records it held, which nothing says (damage)
        # Another version is refused; a damaged magic is not (the records carry their own CRCs), nor
        # is a version field of 0, which no version writes (damage too).
        assert buf[:8] != b"KVBDATA\0" or struct.unpack_from("<I", buf, 8)[0] in (0, 1), name
        if lagged:
            # A file the page names before a newer one, shorter than its published end (it lost
            # bytes): read as if zeros followed its bytes up to that end.
            buf += bytes(max(page[1] - len(buf), 0))
        named = page is not None and page[0] == fid[0] and fid[1] == 0 and len(buf) >= page[1]
        limit = len(buf)
        cut = False  # whether a batch open where the data ends is an unfinished write, cut by recovery
        if (active or before_active) and named:
            limit = _scan(buf, page[1], len(buf), published=False)[1]
            # (the file a rotation that died did not close too, where it is cut at its published end)
            cut = _cut_at(buf, page[1])
        elif active:
            limit = _end_without_page(buf)
        elif before_active and page is None:
            limit = _end_without_page(buf)
            if not _may_be_torn(buf, limit) and not _unfinished_transaction(buf, limit):
                limit = len(buf)  # damage, not what a rotation that died left
        ops = None
        if use_hints and not active and os.path.exists(name + ".hint"):
            with open(name + ".hint", "rb") as f:
                entries = _hint_entries(f.read(), len(buf))
            if entries is not None:
                ops = _hinted_ops(entries, buf)
        if ops is None:
            ops = _scan(buf, 16, limit, published=True)[0]
        for kind, key, value, expiry in ops:
            if kind == REGION:
                if regions is not None and not ((active or cut) and key):
                    regions.append(name)
            elif kind == DAMAGED:
                view[key] = DAMAGED
            elif kind == DELETE or (expiry != 0.0 and expiry <= now):
                view.pop(key, None)
            else:
                view[key] = (value, expiry)
    return view


# ---------------------------------------------------------------------------------------------
# Comparing with DB.


def db_view(path: str, read_only: bool = False) -> dict:
    """What DB reads from ``path``, in the reader's terms (expiries to within the ttl's rounding)."""
    now = time.time()
    out: dict = {}
    with DB(path, read_only=read_only) as db:
        for key in list(db.keys()):
            try:
                value = db.get(key)
            except CorruptionError:
                out[key] = DAMAGED
                continue
            if value is not None:
                ttl = db.ttl(key)
                out[key] = (value, 0.0 if ttl is None else now + ttl)
    return out


def assert_same(path: str, *, read_only_too: bool = True) -> dict:
    """The reader (with and without hint files) and DB see the same keys, values and expiries.

    The reader goes first: a writer's open runs tail recovery, which may cut the files.
    """
    mine = read_store(path)
    assert read_store(path, use_hints=False) == mine
    views = [db_view(path, read_only=True)] if read_only_too else []
    views.append(db_view(path))
    for theirs in views:
        assert mine.keys() == theirs.keys()
        for key, got in mine.items():
            want = theirs[key]
            if got == DAMAGED or want == DAMAGED:
                assert got == want, key
            else:
                assert got[0] == want[0], key
                assert abs(got[1] - want[1]) < 1.0, key
    return mine


def records(path: str) -> list[tuple[int, int, int, bytes, int, int]]:
    """(offset, type, flags, key, key length, value length) of the records of a data file."""
    with open(path, "rb") as f:
        buf = f.read()
    out, pos = [], 16
    while pos + 22 <= len(buf) and buf[pos : pos + 22].strip(b"\0"):
        _, rtype, flags, klen, vlen, _ = HEADER.unpack_from(buf, pos)
        out.append((pos, rtype, flags, buf[pos + 22 : pos + 22 + klen], klen, vlen))
        pos += 22 + klen + vlen
    return out


def data_files(path: str) -> list[str]:
    return sorted(os.path.join(path, n) for n in os.listdir(path) if DATA_NAME.match(n))


def patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


# ---------------------------------------------------------------------------------------------
# The cases.


def test_a_history_of_every_kind_of_write_across_rotations_and_merges(store_path):
    rnd = random.Random(11)
    with DB(store_path, max_file_size=4096) as db:
        for i in range(250):
            key = b"k%d" % rnd.randrange(40)
            r = rnd.random()
            if r < 0.12:
                db.delete(key)
            elif r < 0.2:
                with db.batch() as b:
                    b.put(key, b"b%d" % i)
                    b.delete(key + b"!")
                    b.put(key + b"?", os.urandom(rnd.randrange(300)), ttl=100)
            elif r < 0.26:
                with db.transaction():
                    db.put(key, b"t" * rnd.randrange(400))
                    db.incr(b"counter")
            elif r < 0.3:
                with pytest.raises(RuntimeError), db.transaction():
                    db.put(key, b"discarded" * rnd.randrange(60))
                    raise RuntimeError
            elif r < 0.33:
                with pytest.raises(RuntimeError), db.batch() as b:
                    b.put(key, b"never")
                    raise RuntimeError
            else:
                db.put(key, os.urandom(rnd.randrange(1, 300)), ttl=rnd.choice([None, None, 1000, 0.01]))
        db.put(b"expired", b"x", expires_at=time.time() + 0.01)
        db.put(b"empty", b"")
    time.sleep(0.02)
    assert len(data_files(store_path)) > 5
    assert_same(store_path)
    with DB(store_path, max_file_size=4096) as db:
        db.merge()
        db.put(b"after", b"merge")
    assert any(n.endswith(".hint") for n in os.listdir(store_path))
    assert_same(store_path)


def test_a_transaction_cut_by_sigkill_and_torn_tails(store_path, tmp_path):
    with DB(store_path) as db:
        db.put(b"a", b"0")
        db.put(b"b", b"0")

    def child() -> None:
        db = DB(store_path)
        db.put(b"c", b"acknowledged")
        with db.transaction():
            db.put(b"a", b"in the block")
            db.delete(b"b")
            db.put(b"d", b"x" * 500)
            os.kill(os.getpid(), signal.SIGKILL)

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    cases = {}
    for how in ("as killed", "cut", "zeroed"):
        path = str(tmp_path / how.replace(" ", "-"))
        shutil.copytree(store_path, path)
        active = data_files(path)[-1]
        last = records(active)[-1]
        assert last[3] == b"d"  # the block's last record, with no COMMIT after it
        half = last[0] + (22 + last[4] + last[5]) // 2
        if how == "cut":  # a write torn by the crash at the end of the file
            with open(active, "r+b") as f:
                f.truncate(half)
        elif how == "zeroed":  # ... or in front of reserved zeros
            patch(active, half, bytes(last[0] + 22 + last[4] + last[5] - half))
        cases[how] = assert_same(path, read_only_too=False)
    for view in cases.values():
        assert view == {b"a": (b"0", 0.0), b"b": (b"0", 0.0), b"c": (b"acknowledged", 0.0)}


@pytest.mark.parametrize(
    "call, killed_at",
    # every rename (each output's hint file, then its data file), then among the inputs' removal
    [("replace", 1), ("replace", 2), ("replace", 3), ("replace", 4), ("unlink", 1), ("unlink", 4)],
)
def test_a_merge_killed_at_each_step(store_path, call, killed_at):
    rnd = random.Random(11)
    with DB(store_path, max_file_size=8192) as db:
        for i in range(400):
            db.put(b"k%d" % rnd.randrange(120), os.urandom(rnd.randrange(200)), ttl=rnd.choice([None, 1e4]))
            if i % 9 == 0:
                db.delete(b"k%d" % rnd.randrange(120))

    def child() -> None:
        kill_at_call(call, killed_at)  # (the child's own os module)
        with DB(store_path, max_file_size=8192) as db:
            db.merge()

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    assert_same(store_path)


def test_processes_writing_at_once(store_path):
    DB(store_path, max_file_size=4096).close()

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        with DB(store_path, max_file_size=4096) as db:
            for i in range(150):
                key = b"k%d" % rnd.randrange(30)
                if rnd.random() < 0.15:
                    with db.batch() as b:
                        b.put(key, b"%d-%d" % (seed, i))
                        b.delete(key + b"!")
                elif rnd.random() < 0.1:
                    db.delete(key)
                else:
                    db.put(key, b"%d-%d." % (seed, i) * rnd.randrange(1, 40))
            if seed == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    pids = [fork_child(lambda s=s: writer(s)) for s in range(3)]
    assert sorted(exit_code(pid) for pid in pids) == [-signal.SIGKILL, 0, 0]
    assert_same(store_path)


def _store(path: str) -> tuple[list[str], dict[bytes, tuple]]:
    """A store of two closed files and an active one; returns its data files and its records by key."""
    with DB(path, max_file_size=4096) as db:
        db.put(b"a", b"old-a")
        db.put(b"b", b"old-b")
        db.put(b"c", b"old-c")
        db.put(b"a", b"new-a")
        with db.batch() as b:
            b.put(b"b", b"batch-b")
            b.put(b"d", b"batch-d")
        db.put(b"e", b"e")
        db.put(b"pad", b"x" * 4000)
        db.put(b"f", b"f")
        db.put(b"pad2", b"y" * 4000)
        db.put(b"g", b"g")
        db.put(b"h", b"h")
    files = data_files(path)
    assert len(files) == 3
    recs = {}
    for i, name in enumerate(files):
        for r in records(name):
            recs[(i, r[3], r[1], r[2])] = r
    return files, recs


def _refresh_crc(path: str, offset: int) -> None:
    with open(path, "rb") as f:
        buf = f.read()
    klen, vlen = HEADER.unpack_from(buf, offset)[3:5]
    patch(path, offset, struct.pack("<I", zlib.crc32(buf[offset + 4 : offset + 22 + klen + vlen])))


DAMAGE = {
    # name: (file index, key, record type, flags) of the record to damage, how, expected changes
    "newest value": ((0, b"a", PUT, 0), "value", {b"a": DAMAGED}),
    "batch record": ((0, b"d", PUT, 1), "value", {b"d": DAMAGED}),
    "batch flag": ((0, b"b", PUT, 1), "flag", {b"b": DAMAGED}),
    "commit count": ((0, b"", COMMIT, 0), "value", {}),
    "commit count 1, crc good": ((0, b"", COMMIT, 0), "count1", {b"b": (b"old-b", 0.0)}),
    "commit count 5, crc good": ((0, b"", COMMIT, 0), "count5", {}),
    # Its 26 bytes read as a COMMIT with a 2-byte key (the count's first bytes) and a 2-byte value.
    "commit without a count, crc good": (
        (0, b"", COMMIT, 0),
        "countless",
        {b"b": (b"old-b", 0.0), b"d": None, b"\x02\x00": DAMAGED},
    ),
    "unknown type": ((0, b"c", PUT, 0), "type", {b"c": DAMAGED}),
    "unknown type, crc good": ((0, b"c", PUT, 0), "type+crc", {b"c": DAMAGED}),
    "last of a closed file": ((1, b"f", PUT, 0), "value", {b"f": DAMAGED}),
    "middle of the active file": ((2, b"g", PUT, 0), "value", {b"g": DAMAGED}),
    "end of the active file": ((2, b"h", PUT, 0), "value", {b"h": DAMAGED}),
    # Damaged lengths in the published part: reading resumes at the next confirmed sound record.
    "key length in a closed file": ((0, b"c", PUT, 0), "klen", {b"c": None}),
    # ... and a key whose newest record that is counts as damaged, where its key length is sound.
    "value length of a newest value": ((0, b"a", PUT, 0), "vlen", {b"a": DAMAGED}),
    "value length in a batch": ((0, b"d", PUT, 1), "vlen", {b"d": DAMAGED}),
    "value length, sound but wrong": ((0, b"c", PUT, 0), "vlen+50", {b"c": DAMAGED}),
    "zeroed header in a closed file": ((0, b"e", PUT, 0), "zeros", {b"e": None}),
    "key length of the last record of a closed file": ((1, b"f", PUT, 0), "klen", {b"f": None}),
    "zeroed header in the active file": ((2, b"g", PUT, 0), "zeros", {b"g": None}),
}


@pytest.mark.parametrize("page", ["state", "no state"])
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_records(tmp_path, case, page):
    path = str(tmp_path / "s")
    files, recs = _store(path)
    clean = read_store(path)
    where, how, changes = DAMAGE[case]
    r = recs[where]
    name = files[where[0]]
    if how == "value":
        patch(name, r[0] + 22 + r[4], b"\xff")
    elif how == "klen":
        patch(name, r[0] + 6, struct.pack("<I", 0x7FFFFFFF))
    elif how == "vlen":
        patch(name, r[0] + 10, struct.pack("<I", 0x3FFFFFFF))
    elif how == "vlen+50":  # lands inside the next record: nothing sound where it points
        patch(name, r[0] + 10, struct.pack("<I", r[5] + 50))
    elif how == "zeros":
        patch(name, r[0], bytes(22))
    elif how == "flag":
        patch(name, r[0] + 5, b"\x00")
    elif how == "countless":
        patch(name, r[0] + 6, struct.pack("<II", 2, 2))
        _refresh_crc(name, r[0])
    elif how.startswith("count"):
        patch(name, r[0] + 22, struct.pack("<I", int(how[5:])))
        _refresh_crc(name, r[0])
    else:
        patch(name, r[0] + 4, b"\x09")
        if how == "type+crc":
            _refresh_crc(name, r[0])
    if page == "no state":
        os.unlink(os.path.join(path, "STATE"))
    regions: list = []
    read_store(path, regions=regions)
    with DB(path, read_only=True) as db:  # (the damage each reports, before a writer's recovery)
        assert db.stats()["corrupt_records"] == len(regions)
    view = assert_same(path)
    if page == "no state" and case == "end of the active file":
        # Without a published end, a damaged last record reads as a torn write: recovery cuts it.
        # (Not so at the end of the file before it: the active file holds records, so the rotation
        # that made it had closed that file.)
        changes = {where[1]: None}
    if page == "no state" and case == "zeroed header in the active file":
        # ... but zeros with a record after them are no space reserved ahead of the tail: damage,
        # and reading resumes at the next sound record.
        changes = {b"g": None}
    expected = dict(clean)
    for key, value in changes.items():
        if value is None:
            del expected[key]
        else:
            expected[key] = value
    assert view == expected


def test_temporary_files_are_removed_by_a_writer_that_opens_the_store(store_path):
    """docs/file-format.md said any open removed them; a read-only open leaves them (it never writes)."""
    DB(store_path).close()
    leftover = os.path.join(store_path, "0000000009-001.data.tmp")
    with open(leftover, "wb") as f:
        f.write(b"KVBDATA\0\1\0\0\0\0\0\0\0")
    DB(store_path, read_only=True).close()
    assert os.path.exists(leftover)
    assert read_store(store_path) == {}
    DB(store_path).close()
    assert not os.path.exists(leftover)
