"""This session's new code attacked: review 13 (issues #2, #4, #5, #6, #7)."""

from __future__ import annotations

import os
import pickle
import random
import struct

import pytest

from kv_backend import DB
from kv_backend import backup as kv_backup
from kv_backend import record as rec
from kv_backend import shelve as kv_shelve
from kv_backend.salvage import salvage


def test_shelf_writeback_entry_read_from_another_protocol_is_not_written_back(tmp_path):
    """An entry read with writeback and left alone was written back at close when another
    process had stored it with another pickle protocol (or as a set of str under another hash
    seed): its fingerprint was the stored pickle's, never the one this shelf makes of the same
    object, so close() undid that process's later write to it."""
    path = str(tmp_path / "s")
    with kv_shelve.open(path, protocol=2) as other:
        other["k"] = {"tags": ["x"], "n": 1}
        other["s"] = {"alpha", "beta"}
    reader = kv_shelve.open(path, writeback=True)
    assert reader["k"] == {"tags": ["x"], "n": 1}
    assert reader["s"] == {"alpha", "beta"}
    with kv_shelve.open(path, protocol=2) as other:
        other["k"] = {"tags": ["y"], "n": 2}
        del other["s"]
    reader.close()
    with kv_shelve.open(path) as check:
        assert check["k"] == {"tags": ["y"], "n": 2}
        assert "s" not in check


def test_shelf_writeback_mutated_entry_read_from_another_protocol_is_written_back(tmp_path):
    """The fingerprint taken of what this shelf would write still sees a mutation."""
    path = str(tmp_path / "s")
    with kv_shelve.open(path, protocol=2) as other:
        other["k"] = {"tags": ["x"]}
    with kv_shelve.open(path, writeback=True) as shelf:
        shelf["k"]["tags"].append("z")
    with kv_shelve.open(path) as check:
        assert check["k"] == {"tags": ["x", "z"]}
        assert pickle.loads(check.dict[b"k"]) == {"tags": ["x", "z"]}


def test_resync_past_a_value_of_small_int32s_checksums_little(monkeypatch):
    """Reading on after a damaged header whose value is an array of int32 ones (a numpy array, a
    bitmap) took about 4 s per MB: every 4 bytes looked like a header of 64 KiB key and value, and
    each was checksummed whole (131 KB) before its lengths were seen to lead nowhere. The record the
    lengths lead to must look like a record (or the data end in zeros) before any checksum."""
    value = struct.pack("<262144i", *([1] * 262144))  # 1 MiB
    damaged = bytearray(rec.encode(rec.PUT, b"arr", value))
    damaged[6:10] = struct.pack("<I", 0x7FFFFFFF)
    after = rec.encode(rec.PUT, b"z", b"last")
    more = rec.encode(rec.PUT, b"r", random.Random(3).randbytes(256 << 10))
    buf = bytes(damaged) + after + rec.encode(rec.DELETE, b"y", b"") + more
    hashed = [0]
    real = rec.crc32

    def counting(data, value=0):
        hashed[0] += len(data)
        if hashed[0] > 8 << 20:
            pytest.fail("resync checksummed more than 8 MiB to read past a 1 MiB value")
        return real(data, value)

    monkeypatch.setattr(rec, "crc32", counting)
    assert rec.resync(lambda o, n: buf[o : o + n], 0, len(buf)) == len(damaged)


def test_resync_takes_a_record_followed_by_zeros_to_the_end_whatever_lies_past_it():
    """A sound record followed by fewer zero bytes than a header up to the region's end is
    confirmed, whatever the file holds past that end (another writer's unpublished bytes)."""
    record = rec.encode(rec.PUT, b"k", b"v")
    for zeros in (0, 5, 21, 22, 40):
        buf = b"\xff" * 5 + record + bytes(zeros) + b"\xff" * 30
        assert rec.resync(lambda o, n, buf=buf: buf[o : o + n], 0, len(buf) - 30) == 5, zeros


def _removed_before_its_claim(monkeypatch):
    """Let another restore's (or salvage's) clean-up remove the first temporary directory made
    before it is claimed, as happens when it runs between the mkdir and the claim."""
    real = kv_backup.claim_directory
    removed = []

    def racing(path):
        if not removed:
            removed.append(path)
            os.rmdir(path)
        return real(path)

    monkeypatch.setattr(kv_backup, "claim_directory", racing)
    return removed


def test_a_restore_whose_new_directory_another_cleaned_up_takes_another(store_path, tmp_path, monkeypatch):
    """Another restore into the same parent (its remove_abandoned_copies) may remove a new
    temporary directory before it is claimed: claim_directory raised FileNotFoundError there, and
    the restore failed ("cannot create a directory next to ...: No such file or directory", 1
    restore in 300 with a cleaner running), where a taken one makes it choose another name."""
    url = "file://" + str(tmp_path / "bk")
    with DB(store_path) as db:
        db.put(b"k", b"v")
        kv_backup.backup(db, url, name="b1")
    removed = _removed_before_its_claim(monkeypatch)
    dest = str(tmp_path / "parent" / "x")
    kv_backup.restore(url, dest, "b1")
    assert removed
    with DB(dest) as db:
        assert db.get(b"k") == b"v"
    assert os.listdir(tmp_path / "parent") == ["x"]


def test_a_salvage_whose_new_directory_another_cleaned_up_takes_another(store_path, tmp_path, monkeypatch):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    removed = _removed_before_its_claim(monkeypatch)
    dest = str(tmp_path / "parent" / "x")
    salvage(store_path, dest)
    assert removed
    with DB(dest) as db:
        assert db.get(b"k") == b"v"
    assert os.listdir(tmp_path / "parent") == ["x"]
