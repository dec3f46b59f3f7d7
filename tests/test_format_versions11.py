"""A store or data file of another format version is refused, never read as this one."""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend.errors import NotAStoreError


def _store(tmp_path) -> str:
    path = str(tmp_path / "s")
    with DB(path) as db:
        db.put(b"k", b"v")
    return path


def test_a_data_file_of_another_version_is_refused(tmp_path):
    path = _store(tmp_path)
    (name,) = [n for n in os.listdir(path) if n.endswith(".data")]
    with open(os.path.join(path, name), "r+b") as f:
        f.seek(8)
        f.write((2).to_bytes(4, "little"))
    for read_only in (False, True):
        with pytest.raises(NotAStoreError, match=r"format version 2.*reads version 1 only"):
            DB(path, read_only=read_only)


def test_a_damaged_magic_is_left_to_the_records_checks(tmp_path):
    path = _store(tmp_path)
    (name,) = [n for n in os.listdir(path) if n.endswith(".data")]
    with open(os.path.join(path, name), "r+b") as f:
        f.write(b"XXXXXXXX")
    with DB(path, read_only=True) as db:
        assert db.get(b"k") == b"v"


@pytest.mark.parametrize("line", ["kv_backend store, format 10", "kv_backend store, format 1.5", ""])
def test_a_store_marker_of_another_format_is_refused(tmp_path, line):
    path = _store(tmp_path)
    with open(os.path.join(path, "KVB_FORMAT"), "w") as f:
        f.write(line + "\n")
    with pytest.raises(NotAStoreError, match="unsupported format"):
        DB(path)


def test_the_store_marker_may_carry_more_lines(tmp_path):
    path = _store(tmp_path)
    with open(os.path.join(path, "KVB_FORMAT"), "a") as f:
        f.write("a note an operator left\n")
    with DB(path) as db:
        assert db.get(b"k") == b"v"
