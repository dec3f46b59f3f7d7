"""kv_backend.salvage and `kvb salvage`: copying the readable keys of a damaged store."""

from __future__ import annotations

import os
import time

import pytest
from helpers import data_files, fingerprint
from test_cli import run

from kv_backend import DB, record
from kv_backend.check import check
from kv_backend.errors import CorruptionError
from kv_backend.files import list_data_files
from kv_backend.salvage import SalvageError, salvage


def records(path: str) -> list[tuple[int, bytes, int, int, float]]:
    """(type, key, offset, size, expiry) of every applied record of a sound data file."""
    with open(path, "rb") as f:
        buf = f.read()
    return record.scan(buf, record.FILE_HEADER_SIZE, len(buf), trust_lengths=True).entries


def contents(store: str) -> dict[bytes, tuple[bytes, float | None]]:
    with DB(store, read_only=True) as db:
        return {k: db.get_with_expiry(k) for k in db}  # type: ignore[misc]


@pytest.fixture
def store(store_path):
    """Three+ files: 80 puts (k00..k79), a batch, 5 deletes, keys with a TTL and an expired one."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(80):
            db.put(b"k%02d" % i, b"v%02d" % i * 30)
        db.put(b"gone", b"x", expires_at=time.time() + 0.05)
        with db.batch() as b:
            b.put(b"b1", b"1")
            b.put(b"b2", b"2")
            b.delete(b"k00")
        for i in range(1, 6):
            db.delete(b"k%02d" % i)
        db.put(b"ttl", b"t", ttl=3600)
        time.sleep(0.06)
    assert len(list_data_files(store_path)) >= 3
    return store_path


def expected() -> dict[bytes, bytes]:
    out = {b"k%02d" % i: b"v%02d" % i * 30 for i in range(6, 80)}
    out.update({b"b1": b"1", b"b2": b"2", b"ttl": b"t"})
    return out


def values(store: str) -> dict[bytes, bytes]:
    return {k: v for k, (v, _) in contents(store).items()}


def test_a_clean_store_is_copied_exactly(store, tmp_path, capsys):
    before = fingerprint(store)
    dst = str(tmp_path / "copy")
    code, out, _ = run(capsys, "salvage", store, dst)
    assert code == 0, out
    assert "77 keys copied, " in out and "0 skipped" in out and "DAMAGED" not in out
    assert contents(dst) == contents(store)  # values and exact expiries
    assert values(dst) == expected() and b"gone" not in values(dst)
    assert contents(dst)[b"ttl"][1] is not None
    assert fingerprint(store) == before
    assert check(dst).ok
    # The target exists now: a second salvage into it is refused, with exit code 2.
    code, _, err = run(capsys, "salvage", store, dst)
    assert code == 2 and "not empty" in err
    # An empty existing directory is fine.
    os.mkdir(tmp_path / "empty")
    assert salvage(store, tmp_path / "empty").clean


def test_a_flipped_bit_in_a_value_loses_only_that_record(store, tmp_path):
    first = data_files(store)[0]
    _, key, off, size, _ = records(first)[10]
    with open(first, "r+b") as f:
        f.seek(off + size - 3)
        f.write(b"#")
    before = fingerprint(store)
    report = salvage(store, tmp_path / "copy")
    assert not report.clean
    assert [(r.path, r.offset, r.length) for r in report.regions] == [(first, off, size)]
    assert report.damaged_keys == [key] and report.records_skipped == 1
    want = expected()
    del want[key]
    assert values(str(tmp_path / "copy")) == want
    assert fingerprint(store) == before
    assert check(str(tmp_path / "copy")).ok


def test_a_damaged_length_is_skipped_by_resynchronising(store, tmp_path, capsys):
    first = data_files(store)[0]
    _, key, off, size, _ = records(first)[7]
    with open(first, "r+b") as f:
        f.seek(off + 10)
        f.write(b"\x00\x01\x00\x00")  # value length 256: sound, but wrong
    with DB(store) as db, pytest.raises(CorruptionError, match="kvb salvage"):
        db.merge()
    before = fingerprint(store)
    dst = str(tmp_path / "copy")
    code, out, _ = run(capsys, "salvage", store, dst)
    assert code == 1
    assert f"DAMAGED: {first} @ {off}: {size} damaged bytes skipped" in out
    assert "cannot be known" in out
    want = expected()
    del want[key]
    assert values(dst) == want
    assert fingerprint(store) == before
    assert check(dst).ok


def test_garbage_inserted_in_the_middle(store, tmp_path):
    first = data_files(store)[0]
    _, _, off, _, _ = records(first)[20]
    with open(first, "rb") as f:
        buf = f.read()
    junk = bytes(range(7, 7 + 37))
    with open(first, "wb") as f:
        f.write(buf[:off] + junk + buf[off:])
    report = salvage(store, tmp_path / "copy")
    assert [(r.offset, r.length) for r in report.regions] == [(off, 37)]
    assert report.damaged_keys == []
    assert values(str(tmp_path / "copy")) == expected()


def test_a_truncated_file_keeps_what_comes_before_and_after(store, tmp_path):
    first = data_files(store)[0]
    entries = records(first)
    _, _, off, _, _ = entries[30]
    with open(first, "r+b") as f:
        f.truncate(off + 25)
    report = salvage(store, tmp_path / "copy")
    assert [(r.offset, r.length) for r in report.regions] == [(off, 25)]
    lost = {key for _, key, _, _, _ in entries[30:]}
    want = {k: v for k, v in expected().items() if k not in lost}
    assert values(str(tmp_path / "copy")) == want


def test_batches_and_deletes(store_path, tmp_path):
    with DB(store_path, max_file_size=1 << 20) as db:
        db.put(b"a", b"old-a")
        db.put(b"b", b"old-b")
        db.put(b"d", b"old-d")
        with db.batch() as b:  # its first record's length is damaged below: the batch is cut
            b.put(b"a", b"new-a")
            b.put(b"b", b"new-b")
        db.delete(b"d")
        with db.batch() as b:  # a damaged record inside a batch: the rest of it applies
            b.put(b"e", b"e")
            b.put(b"f", b"f")
        db.put(b"z", b"z")
        with db.batch() as b:  # the tail: its COMMIT never reached the file
            b.put(b"z", b"uncommitted")
    path = data_files(store_path)[-1]
    entries = records(path)
    by_key = {(key, i): off for i, (_, key, off, _, _) in enumerate(entries)}
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    a_new = by_key[(b"a", 3)]
    buf[a_new + 10 : a_new + 14] = (999).to_bytes(4, "little")
    f_off = by_key[(b"f", 7)]
    buf[f_off + 23] ^= 1
    _, _, z_off, z_size, _ = entries[8]
    end = z_off + z_size + len(record.encode(record.PUT, b"z", b"uncommitted", flags=record.FLAG_BATCH))
    with open(path, "wb") as f:
        f.write(bytes(buf[: end + 5]))  # the last batch, and 5 bytes of its COMMIT
    report = salvage(store_path, tmp_path / "copy")
    got = values(str(tmp_path / "copy"))
    # The file is shorter than its published end, so the page does not describe it: where its data
    # ends is read from its bytes, and sound records after the damaged length (not a torn write,
    # which only ever ends the data) show it is damage: the batch's COMMIT applies its last record,
    # and "a" (whose newest record is the damaged one) is not copied.
    assert got == {b"b": b"new-b", b"e": b"e", b"z": b"z"}
    assert report.damaged_keys == [b"a", b"f"]
    assert len(report.regions) == 2


def test_refusals(store, tmp_path):
    with pytest.raises(SalvageError, match="into itself"):
        salvage(store, store)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SalvageError, match="not a directory"):
        salvage(store, tmp_path / "file")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
