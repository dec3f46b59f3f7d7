"""Review 12 of the engine: defects found, each with the test that shows it fixed."""

from __future__ import annotations

import os
import struct
import zlib

import pytest

from kv_backend import DB, CorruptionError
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.salvage import salvage


def _records(path: str) -> list[tuple[int, bytes, bytes]]:
    """(offset, key, value) of every record of the data file at ``path``."""
    with open(path, "rb") as f:
        buf = f.read()
    out, pos = [], rec.FILE_HEADER_SIZE
    while pos + rec.HEADER_SIZE <= len(buf) and buf[pos : pos + rec.HEADER_SIZE].strip(b"\0"):
        _, _, _, klen, vlen, _ = rec.HEADER.unpack_from(buf, pos)
        end = pos + rec.HEADER_SIZE + klen + vlen
        out.append((pos, buf[pos + rec.HEADER_SIZE : pos + rec.HEADER_SIZE + klen], buf[end - vlen : end]))
        pos = end
    return out


def _retype(path: str, offset: int, rtype: int) -> None:
    """Give the record at ``offset`` the type ``rtype`` and a CRC that matches (a newer writer's record)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        head = bytearray(f.read(rec.HEADER_SIZE))
        head[4] = rtype
        klen, vlen = struct.unpack_from("<II", head, 6)
        body = bytes(head[4:]) + f.read(klen + vlen)
        f.seek(offset)
        f.write(struct.pack("<I", zlib.crc32(body)) + bytes([rtype]))


def _store_with_unknown_type(path: str, *, closed: bool) -> str:
    """A store whose newest record of b"c" has an unknown type (CRC matching), with records after it."""
    with DB(path) as db:
        db.put(b"a", b"1")
        db.put(b"c", b"old-c")
        db.put(b"c", b"new-c")
        db.put(b"z", b"after")
        if closed:
            db._rotate(auto_merge=False)
            db.put(b"y", b"in the active file")
        name = os.path.join(path, "0000000001-000.data")
    off = next(o for o, _k, v in _records(name) if v == b"new-c")
    _retype(name, off, 9)
    return name


@pytest.mark.parametrize("closed", [True, False], ids=["closed file", "active file"])
def test_a_sound_record_of_an_unknown_type_is_damage_not_the_end_of_the_data(store_path, tmp_path, closed):
    """A CRC-valid record of an unknown type ended its file's data silently: every record after it
    was ignored (b"z" was gone, b"c" read as its older value) and `kvb check` found nothing wrong
    in a closed file. It is damage now, skipped by its length: the records after it are read, its
    key raises CorruptionError, check reports it, and merge drops it as damaged."""
    name = _store_with_unknown_type(store_path, closed=closed)
    for read_only in (True, False):
        with DB(store_path, read_only=read_only) as db:
            assert db.get(b"z") == b"after"
            assert db.get(b"a") == b"1"
            with pytest.raises(CorruptionError, match="unknown type 9") as err:
                db.get(b"c")
            assert err.value.path == name
            with pytest.raises(CorruptionError):
                db.get_with_expiry(b"c")
            assert db.stats()["corrupt_records"] == 1
    report = check(store_path)
    assert [(p.path, p.what.split(" (")[0]) for p in report.problems] == [(name, "unknown record type 9")]
    salvaged = salvage(store_path, str(tmp_path / "copy"))
    assert salvaged.damaged_keys == [b"c"]
    with DB(store_path) as db:
        merged = db.merge()
        assert merged.corrupt_dropped == 1
        assert db.get(b"c") is None  # dropped with its damage: never the older value
        assert db.get(b"z") == b"after"
    assert check(store_path).ok
