"""The readers of a store's format file (``KVB_FORMAT``) share one read (``files.read_format``: open, read,
``fstat``), each keeping its own answer where the file is missing, unreadable or damaged: the open's format
check raises the project's errors, ``read_store_id``/``read_store_id_seen`` answer no id, and a snapshot's
``read_format_file`` answers the first line alone (an undecodable file raises CorruptionError)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kv_backend import DB
from kv_backend.errors import CorruptionError, NotAStoreError, StorageError
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT, format_file_text, read_format
from kv_backend.snapshot import read_format_file
from kv_backend.store_id import read_store_id, read_store_id_seen

ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "s"
    with DB(str(path)):
        pass
    return path


def _write(store: Path, data: bytes) -> None:
    (store / FORMAT_FILE).write_bytes(data)


def test_a_format_file_with_an_id_reads_alike_everywhere(store):
    _write(store, f"{FORMAT_TEXT}id {ID}\r\nmore\n".encode())
    st = os.stat(store / FORMAT_FILE)
    text = format_file_text(str(store), create=False)
    assert text == f"{FORMAT_TEXT}id {ID}\nmore\n"  # (universal newlines, as before)
    assert text is not None and text.seen == (st.st_ino, st.st_size)
    assert read_store_id(str(store)) == ID
    assert read_store_id_seen(str(store)) == (ID, (st.st_ino, st.st_size))
    assert read_format_file(str(store)) == f"{FORMAT_TEXT}id {ID}\nmore\n"
    assert type(read_format_file(str(store))) is str
    assert read_format(str(store)).seen == (st.st_ino, st.st_size)


def test_the_open_check_and_read_store_id_read_4096_characters_a_snapshot_all(store):
    _write(store, f"{FORMAT_TEXT}id {ID}\n".encode() + b"x" * 5000)
    assert len(format_file_text(str(store), create=False) or "") == 4096
    assert len(read_format_file(str(store))) == len(FORMAT_TEXT) + 36 + 5000


def test_a_missing_format_file(store):
    os.unlink(store / FORMAT_FILE)
    assert read_store_id(str(store)) is None
    assert read_store_id_seen(str(store)) == (None, (-1, -1))
    assert read_format_file(str(store)) == FORMAT_TEXT
    with pytest.raises(OSError):
        read_format(str(store))


def test_a_format_file_that_cannot_be_read(store):
    os.unlink(store / FORMAT_FILE)
    os.mkdir(store / FORMAT_FILE)  # (read raises IsADirectoryError, whoever runs this)
    with pytest.raises(StorageError, match="cannot read"):
        format_file_text(str(store), create=False)
    assert read_store_id_seen(str(store)) == (None, (-1, -1))
    assert read_format_file(str(store)) == FORMAT_TEXT


def test_an_empty_or_damaged_format_file(store):
    _write(store, b"")
    assert read_format_file(str(store)) == FORMAT_TEXT
    assert read_store_id(str(store)) is None
    with pytest.raises(NotAStoreError):
        format_file_text(str(store), create=False)
    _write(store, FORMAT_TEXT.encode() + b"id \xff\n")
    assert read_store_id(str(store)) is None
    assert format_file_text(str(store), create=False) == FORMAT_TEXT + "id \ufffd\n"
    with pytest.raises(CorruptionError, match="not UTF-8"):  # (a bare UnicodeDecodeError before)
        read_format_file(str(store))
