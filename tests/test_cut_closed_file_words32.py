"""What an open says of a closed data file whose last record was cut short.

Without a hint file, replay stops at the cut record; where its key is whole, replay indexes the key as
damaged (a read raises CorruptionError rather than return an older value), yet the warning said "which
keys they held cannot be known". It now names that key and what reading it does, and says what a read
does of a key none can name (a cut inside the header): it finds the value from before, or none. A
merge output, read through its hint file, was said rightly to name its keys: those tests keep it so.
"""

from __future__ import annotations

import logging
import os

import pytest
from helpers import data_files
from test_backup_hint_damage18 import _merged_store

from kv_backend import DB, record
from kv_backend.errors import CorruptionError
from kv_backend.files import hint_name, list_data_files


def _rotated_store(path: str) -> str:
    """Closed data files a rotation wrote (no hint files), and an active file after them."""
    with DB(path, max_file_size=4096) as db:
        db.put(b"old", b"before")
        for i in range(60):
            db.put(b"k%02d" % i, b"v" * 100)
        db.put(b"after", b"x")
    return path


def _last_record(path: str) -> tuple[bytes, int, int]:
    """The key, offset and size of the last record of the data file at ``path``."""
    with open(path, "rb") as f:
        buf = f.read()
    _t, key, off, size, _ = record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries[-1]
    return key, off, size


def _cut_first_file(store: str, *, inside: str) -> bytes:
    """Cut the last record of the store's first (closed) data file inside its value or its header: its key."""
    first = data_files(store)[0]
    key, off, size = _last_record(first)
    os.truncate(first, off + size - 10 if inside == "value" else off + 5)
    return key


def _open_and_read(store: str, key: bytes, caplog, *, read_only: bool) -> tuple[str, object]:
    """Open the store, read ``key`` (its value, or the CorruptionError raised): the warnings and that."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kv_backend"), DB(store, read_only=read_only) as db:
        try:
            got: object = db.get(key)
        except CorruptionError as exc:
            got = exc
        assert db.get(b"after") in (b"x", b"merge")  # (the active file's record: sound)
    return caplog.text, got


@pytest.mark.parametrize("read_only", [False, True])
def test_a_record_cut_in_its_value_names_its_key_whose_reads_raise(store_path, caplog, read_only):
    store = _rotated_store(store_path)
    assert not os.path.exists(os.path.join(store, hint_name(list_data_files(store)[0])))
    key = _cut_first_file(store, inside="value")
    text, got = _open_and_read(store, key, caplog, read_only=read_only)
    assert isinstance(got, CorruptionError)
    assert f"the record there held the key {key!r}, whose reads raise CorruptionError" in text, text
    assert "which keys they held cannot be known" not in text
    assert "kvb check" in text and "kvb salvage" in text


@pytest.mark.parametrize("read_only", [False, True])
def test_a_record_cut_in_its_header_says_its_key_cannot_be_known_and_what_a_read_finds(
    store_path, caplog, read_only
):
    store = _rotated_store(store_path)
    key = _cut_first_file(store, inside="header")
    text, got = _open_and_read(store, key, caplog, read_only=read_only)
    assert got is None  # (its only record is lost: the key is not found)
    assert "which keys they held cannot be known" in text
    assert "a read of such a key finds the value it had before, or none" in text, text
    assert "kvb check" in text and "kvb salvage" in text


@pytest.mark.parametrize("inside", ["value", "header"])
@pytest.mark.parametrize("read_only", [False, True])
def test_with_a_hint_file_its_keys_are_named_and_raise(store_path, caplog, inside, read_only):
    store = _merged_store(store_path)
    assert os.path.exists(os.path.join(store, hint_name(list_data_files(store)[0])))
    key = _cut_first_file(store, inside=inside)
    text, got = _open_and_read(store, key, caplog, read_only=read_only)
    assert isinstance(got, CorruptionError)
    assert "cannot be known" not in text
    if not read_only:  # (a writer fills the file with zeros up to the size its hint file gives)
        assert "its hint file names the keys it held, whose reads raise CorruptionError" in text
        assert "kvb check" in text and "kvb salvage" in text


def test_a_damaged_region_of_two_records_names_the_first_key_and_says_the_rest_cannot_be_known(
    store_path, caplog
):
    store = _rotated_store(store_path)
    first = data_files(store)[0]
    with open(first, "rb") as f:
        buf = f.read()
    entries = record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries
    (_t, key, off, _s, _), (_t2, key2, off2, _s2, _) = entries[10], entries[11]
    with open(first, "r+b") as f:
        for at in (off, off2):  # the value length of both: far past the end of the file
            f.seek(at + 10)  # (the header: crc 4, type 1, flags 1, key length 4, value length 4, time 8)
            f.write(b"\xff\xff\xff\x7f")
    text, got = _open_and_read(store, key, caplog, read_only=True)
    assert isinstance(got, CorruptionError)
    assert f"the record there held the key {key!r}, whose reads raise CorruptionError" in text, text
    assert "any other record in those bytes is lost with it" in text
    assert "a read of such a key finds the value it had before, or none" in text
    with DB(store, read_only=True) as db:
        assert db.get(key2) is None  # (the second record's key: none names it, and it had no other record)
