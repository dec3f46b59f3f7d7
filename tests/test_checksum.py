"""The record CRC: every implementation computes zlib's checksum, and stores move between them."""

from __future__ import annotations

import os
import sys
import zlib

import pytest
from helpers import run_python
from hypothesis import given
from hypothesis import strategies as st

from kv_backend import DB, checksum


@given(st.binary(max_size=5000), st.integers(0, 64))
def test_crc_equals_zlib_on_bytes_and_views(data: bytes, skip: int) -> None:
    assert checksum.crc32(data) == zlib.crc32(data)
    view = memoryview(data)[min(skip, len(data)) :]
    assert checksum.crc32(view) == zlib.crc32(view)


def test_isal_is_used_when_installed() -> None:
    pytest.importorskip("isal", reason="isal is not installed on this platform; zlib's CRC is used")
    fn, name = checksum.pick_crc32("")
    assert name == "isal"
    assert fn(b"123456789") == 0xCBF43926  # the CRC-32 check value


def test_falls_back_to_zlib_without_isal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "isal", None)  # makes "from isal import ..." raise ImportError
    assert checksum.pick_crc32("") == (zlib.crc32, "zlib")


def test_environment_forces_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVB_CRC", "zlib")
    assert checksum.pick_crc32() == (zlib.crc32, "zlib")


def test_stores_written_with_either_crc_read_with_the_other(tmp_path) -> None:
    """A store written by a process on zlib's CRC opens, merges and reads under this one, and back."""
    path = str(tmp_path / "db")
    code = """
        import os, sys
        os.environ["KVB_CRC"] = "zlib"  # before kv_backend picks its CRC
        from kv_backend import DB, checksum
        assert checksum.IMPLEMENTATION == "zlib"
        with DB(sys.argv[1]) as db:
            if sys.argv[2] == "write":
                for i in range(500):
                    db.put(b"k%d" % i, os.urandom(i % 300))
                db.put(b"sentinel", b"from zlib")
            else:
                assert db[b"sentinel"] == b"from this process", db.get(b"sentinel")
                assert len(db) == 501
    """
    run_python(code, path, "write")
    with DB(path) as db:
        assert db[b"sentinel"] == b"from zlib"
        assert len(db) == 501
        db.merge(wait=True)  # rewrites every record and writes hint files with this process's CRC
        db.put(b"sentinel", b"from this process")
    assert any(name.endswith(".hint") for name in os.listdir(path))
    run_python(code, path, "read")
