"""Replay (an open, read-only or not) stopped by damage in a published data file read the rest of
the file into memory: at a damaged header it read again from there in chunks twice as large each
time until one reached the end of the file, so an open of a store whose 24 MB file was damaged near
its start peaked at ~40 MB (1.5 times the file) and read it 5 times over. It stops at once where no
more bytes can change what it found (damage), and reads on from the next sound record as before."""

from __future__ import annotations

import logging
import os
import struct
import tracemalloc

import pytest

from kv_backend import DB, CorruptionError
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files

_VALUE = 60_000


def _damaged_store(store: str, damage: str) -> tuple[str, int]:
    """A store whose closed ~24 MB data file is damaged at ~1 MB (``damage``: a zeroed stretch, a key
    length no record has, or a value length past the file's end); its path and the damaged offset."""
    with DB(store, max_file_size=1 << 30) as db:
        for i in range(400):
            db.put(b"k%03d" % i, bytes([i % 251]) * _VALUE)
        db._rotate()  # (closed: every byte of it published)
    path = os.path.join(store, data_name(list_data_files(store)[0]))
    at = 16 + 16 * (22 + 4 + _VALUE)  # the header of k016
    with open(path, "r+b") as f:
        if damage == "zeros":
            f.seek(at)
            f.write(bytes(2_000_000))
        else:
            f.seek(at + 6)
            f.write(struct.pack("<I", 70_000) if damage == "key length" else struct.pack("<II", 4, 1 << 30))
    return path, at


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("damage", ["zeros", "key length", "value length"])
@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "writer"])
def test_replay_stopped_by_damage_does_not_read_the_rest_of_the_file_into_memory(
    store_path, caplog, damage, read_only
):
    path, at = _damaged_store(store_path, damage)
    size = os.path.getsize(path)
    caplog.set_level(logging.ERROR, logger="kv_backend.db")  # (the warning names the damage; not kept here)
    peak = _peak(lambda: DB(store_path, read_only=read_only).close())
    assert peak < size // 4, (peak, size)  # (2 MiB chunks, and what they index)
    with DB(store_path, read_only=read_only) as db:
        assert db.stats()["corrupt_records"] == 1
        assert all(db[b"k%03d" % i] == bytes([i % 251]) * _VALUE for i in range(16))
        lost = range(16, 16 + 2_000_000 // (22 + 4 + _VALUE) + 2) if damage == "zeros" else [16]
        after = [i for i in range(17, 400) if i not in lost]
        assert all(db[b"k%03d" % i] == bytes([i % 251]) * _VALUE for i in after)
        if damage == "value length":
            with pytest.raises(CorruptionError):
                db.get(b"k016")  # (its key is whole: it raises rather than reading as absent)
        else:
            assert db.get(b"k016") is None  # (its key cannot be told: the region's keys are unknown)
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(path, at)]
