"""Reading on after a damaged header costs a bounded amount of work per byte, whatever the damaged
bytes hold, and finds exactly the offset the rule (docs/file-format.md, rule 3) names.

A damaged record whose value is an array of int32 ones followed, 4 bytes aligned, by another such
value made every 4 bytes of the first a candidate header (64 KiB key and value) whose lengths lead to
another such header: each was checksummed whole, 131 KB, so about 4.3 GB per damaged spot.
"""

from __future__ import annotations

import os
import random
import struct
import time
import zlib

import pytest
from test_format_reader11 import DAMAGED, assert_same, records

from kv_backend import DB, checksum
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.salvage import salvage

ONES = struct.pack("<32768i", *([1] * 32768))  # 128 KiB


def _spot() -> tuple[bytes, int]:
    """A damaged header whose value is ONES, then a record whose value is ONES too (a key of 4 bytes
    aligns the second array with where the first one's candidates lead), then sound records; and
    where reading must resume (the second record)."""
    damaged = bytearray(rec.encode(rec.PUT, b"arr", ONES))
    damaged[10:14] = struct.pack("<I", 0x3FFFFFFF)  # a value length past the data
    rest = rec.encode(rec.PUT, b"arr2", ONES) + rec.encode(rec.PUT, b"z", b"last")
    rest += rec.encode(rec.DELETE, b"y", b"")
    return bytes(damaged) + rest, len(damaged)


def test_the_bytes_checksummed_do_not_grow_with_the_candidates_sizes(monkeypatch):
    buf, want = _spot()
    hashed = [0]
    real = rec.crc32

    def counting(data, value=0):
        hashed[0] += len(data)
        if hashed[0] > 64 << 20:
            pytest.fail("resync checksummed more than 64 MiB to read past 256 KiB (each candidate whole)")
        return real(data, value)

    monkeypatch.setattr(rec, "crc32", counting)
    assert rec.resync(lambda o, n: buf[o : o + n], 0, len(buf)) == want


def test_reading_past_int32_arrays_takes_bounded_time(monkeypatch):
    """Eight such spots, with the standard library's CRC (and the pure-Python combination that goes
    with it, as on a machine without ISA-L): about 10 s of CPU before, about 1 s after. (ISA-L's CRC
    is fast enough that its cost was mostly Python's per candidate: 2.2 s before, 0.8 s after.)"""
    monkeypatch.setattr(rec, "crc32", zlib.crc32)
    monkeypatch.setattr(checksum, "crc32_combine", checksum._crc32_combine)
    spots = [_spot() for _ in range(8)]
    start = time.process_time()
    for buf, want in spots:
        assert rec.resync(lambda o, n, buf=buf: buf[o : o + n], 0, len(buf)) == want
    used = time.process_time() - start
    assert used < 4, f"{used:.2f} s of CPU to read past 8 damaged headers"


def _reference(buf: bytes, pos: int, end: int) -> int | None:
    """Rule 3 read literally: the first offset after ``pos`` where a sound record starts (any flags
    byte: its reserved bits are ignored) followed by another sound record or by zeros up to ``end``."""

    def sound(at: int) -> int:
        if min(end, len(buf)) - at < rec.HEADER_SIZE:
            return 0
        size = rec._plausible_size(buf, at)
        if not size or at + size > end or len(buf) < at + size:
            return 0
        return size if zlib.crc32(buf[at + 4 : at + size]) == struct.unpack_from("<I", buf, at)[0] else 0

    for c in range(pos + 1, end - rec.HEADER_SIZE + 1):
        size = sound(c)
        if size and (sound(c + size) or not buf[c + size : end].strip(b"\0")):
            return c
    return None


def _random_region(rnd: random.Random) -> bytes:
    parts = []
    for _ in range(rnd.randrange(1, 8)):
        kind = rnd.randrange(6)
        if kind == 0:
            parts.append(rnd.randbytes(rnd.randrange(60)))
        elif kind == 1:
            parts.append(bytes(rnd.randrange(40)))
        elif kind == 2:  # int32 ones: headers every 4 bytes, with lengths past any small region
            parts.append(struct.pack("<39i", *([1] * 39))[: rnd.randrange(160)])
        else:
            rtype = rnd.choice([rec.PUT, rec.PUT, rec.DELETE, rec.COMMIT])
            key = b"" if rtype == rec.COMMIT else rnd.randbytes(rnd.randrange(1, 6))
            if rtype == rec.COMMIT:
                value = struct.pack("<I", rnd.randrange(3))
            else:
                value = rnd.randbytes(rnd.randrange(90))
            r = bytearray(rec.encode(rtype, key, value, flags=rnd.choice([0, 0, 1, 2])))
            if kind == 3 and rnd.random() < 0.3:
                r[rnd.randrange(len(r))] ^= 1 << rnd.randrange(8)
            parts.append(bytes(r))
    return b"".join(parts)


@pytest.mark.parametrize("direct", [True, False])
def test_resync_finds_what_the_rule_names(monkeypatch, direct):
    """Against the rule read literally, across read windows and prefix-CRC steps of a few bytes, a
    region longer than the file included; checksumming every candidate from prefix CRCs (not
    ``direct``) changes no decision."""
    monkeypatch.setattr(rec, "_RESYNC_WINDOW", 48)
    monkeypatch.setattr(checksum, "RANGE_STEP", 8)
    if not direct:
        monkeypatch.setattr(rec, "_DIRECT_CRC", 0)
    rnd = random.Random(14)
    found = 0
    for trial in range(1500):
        buf = _random_region(rnd)
        pos = rnd.randrange(len(buf) + 1)
        end = len(buf) + (rnd.randrange(30) if trial % 7 == 0 else 0)  # a file that lost bytes
        want = _reference(buf, pos, end)
        found += want is not None
        assert rec.resync(lambda o, n, buf=buf: buf[o : o + n], pos, end) == want, trial
    assert found > 300


def test_replay_check_salvage_and_the_reader_agree_on_such_a_store(store_path, tmp_path):
    with DB(store_path) as db:
        db.put(b"a", b"1")
        db.put(b"arr", b"older")
        db.put(b"arr", ONES)
        db.put(b"arr2", ONES)
        db.put(b"z", b"last")
    active = os.path.join(store_path, sorted(n for n in os.listdir(store_path) if n.endswith(".data"))[-1])
    where = next(r[0] for r in records(active) if r[3] == b"arr" and r[5] == len(ONES))
    with open(active, "r+b") as f:
        f.seek(where + 10)
        f.write(struct.pack("<I", 0x3FFFFFFF))
    start = time.process_time()
    view = assert_same(store_path)  # the reader, DB read-only and DB opening it for writing
    assert view == {b"a": (b"1", 0.0), b"arr": DAMAGED, b"arr2": (ONES, 0.0), b"z": (b"last", 0.0)}
    report = check(store_path)
    assert [p.offset for p in report.problems] == [where]
    assert f"reading resumes @ {where + 22 + 3 + len(ONES)}" in report.problems[0].what
    copy = salvage(store_path, str(tmp_path / "copy"))
    assert copy.damaged_keys == [b"arr"]
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == {b"a": b"1", b"arr2": ONES, b"z": b"last"}
    assert time.process_time() - start < 30  # the reader checksums every candidate (a few seconds)
