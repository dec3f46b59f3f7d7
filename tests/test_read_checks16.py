"""The checks every point read makes, pinned for the fast paths of DB.get and Store[key].

A read must refuse a record whose checksum fails, one that holds another key (also one of the
same length that differs in a single byte, whose checksum is sound) and one of a type that holds
no value, whether it comes through DB.get, DB.ttl or Store[key]; sound records read as stored.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB, Store, record
from kv_backend.errors import CorruptionError


def _record_offset(db: DB, key: bytes) -> tuple[str, int]:
    """The path of the data file holding ``key``'s record and the record's offset in it."""
    loc = db._ix.kd[key]
    return db._files[loc >> 72].path, (loc >> 32) & ((1 << 40) - 1)


def test_a_record_of_another_key_of_the_same_length_is_refused(tmp_path: str) -> None:
    with DB(str(tmp_path / "s")) as db:
        db.put(b"key-0001", b"one")
        db.put(b"key-0002", b"two")
        db.put(b"key-000x", b"other", ttl=1000)
        # The key directory points key-0001 at key-0002's record: sound checksum, same length,
        # the keys differing in their last byte only.
        db._ix.kd[b"key-0001"] = db._ix.kd[b"key-0002"]
        with pytest.raises(CorruptionError, match="holds another key"):
            db.get(b"key-0001")
        with pytest.raises(CorruptionError, match="holds another key"):
            db.ttl(b"key-0001")
        db._ix.kd[b"key-0001"] = db._ix.kd[b"key-000x"]  # one with an expiry
        with pytest.raises(CorruptionError, match="holds another key"):
            db.get(b"key-0001")
        assert db.get(b"key-0002") == b"two"
        assert db.get(b"key-000x") == b"other"


def test_store_reads_refuse_a_record_of_another_key(tmp_path: str) -> None:
    with Store(str(tmp_path / "s")) as s:
        s["user:1"] = {"name": "one"}
        s["user:2"] = {"name": "two"}
        s.db._ix.kd[b"user:1"] = s.db._ix.kd[b"user:2"]
        with pytest.raises(CorruptionError, match="holds another key"):
            s["user:1"]
        assert s["user:2"] == {"name": "two"}


@pytest.mark.parametrize("where", ["value", "key", "header"])
def test_a_damaged_byte_fails_the_checksum(tmp_path: str, where: str) -> None:
    with Store(str(tmp_path / "s")) as s:
        s["user:1"] = {"name": "one"}
        s["user:2"] = {"name": "two"}
        data_path, off = _record_offset(s.db, b"user:1")
        at = {
            "value": off + record.HEADER_SIZE + len(b"user:1") + 3,
            "key": off + record.HEADER_SIZE + 2,
            "header": off + 14,  # a byte of the expiry, which a plain read never looks at otherwise
        }[where]
        # Damaged under the open store (another process, the disk): its mapping shows the change.
        with open(data_path, "r+b") as f:
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0x10]))
        with pytest.raises(CorruptionError, match="checksum"):
            s["user:1"]
        with pytest.raises(CorruptionError, match="checksum"):
            s.db.get(b"user:1")
        assert s["user:2"] == {"name": "two"}


def test_a_record_of_a_type_without_a_value_is_refused(tmp_path: str) -> None:
    path = str(tmp_path / "s")
    with DB(path) as db:
        db.put(b"k1", b"value")
        data_path, off = _record_offset(db, b"k1")
        size = db._ix.kd[b"k1"] & 0xFFFFFFFF
        # Rewrite the record in place as a DELETE of the same key and size, with a sound CRC.
        with open(data_path, "r+b") as f:
            f.seek(off)
            old = f.read(size)
            body = bytes([record.DELETE]) + old[5:]
            f.seek(off)
            f.write(record.crc32(body).to_bytes(4, "little") + body)
        with pytest.raises(CorruptionError, match="type 2"):
            db.get(b"k1")


def test_sound_records_read_as_stored(tmp_path: str) -> None:
    with Store(str(tmp_path / "s")) as s:
        values = {f"key-{i:04d}": {"id": i, "tags": ["a"] * (i % 5)} for i in range(300)}
        for k, v in values.items():
            s[k] = v
        for k, v in values.items():
            assert s[k] == v
        assert s.db.get(b"key-0001", None) is not None
        assert s.db.get(b"absent", "default") == "default"
        assert os.path.isdir(s.path)
