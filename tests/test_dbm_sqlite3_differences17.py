"""kv_backend.dbm beside Python 3.13's dbm.sqlite3 (docs/store.md). Numbers: dbm.sqlite3 stores an
int or a float as its decimal text; kv_backend.dbm refuses them with a TypeError, and str(n) is the way.
"""

from __future__ import annotations

import pytest
from helpers import spawn_python

import kv_backend.dbm as kdbm
from kv_backend.errors import InvalidKeyError, InvalidValueError


@pytest.mark.parametrize("number", [1, 1.5])
def test_a_number_is_refused_and_its_text_is_stored(tmp_path, number):
    with kdbm.open(str(tmp_path / "db"), "c") as db:
        with pytest.raises(InvalidValueError, match="must be bytes or str"):
            db["n"] = number
        with pytest.raises(InvalidKeyError, match="must be bytes or str"):
            db[number] = "v"
        with pytest.raises(TypeError):
            db.get(number)
        assert number not in db
        db["n"] = str(number)
        db[str(number)] = "v"
        assert db["n"] == str(number).encode()
        assert db.get(str(number).encode()) == b"v"


@pytest.mark.parametrize("number", [1, 1.5])
def test_dbm_sqlite3_stores_a_number_as_its_text(tmp_path, number):
    sqlite_dbm = pytest.importorskip("dbm.sqlite3", reason="dbm.sqlite3 is new in Python 3.13")
    db = sqlite_dbm.open(str(tmp_path / "db.sqlite"), "c")
    try:
        db["n"] = number
        db[number] = "v"
        assert db["n"] == str(number).encode()  # what the docs say kv_backend.dbm stores for str(n)
        assert db[str(number)] == b"v"
    finally:
        db.close()


def test_dbm_sqlite3_shares_a_database_between_processes(tmp_path):
    # What docs/store.md grants 3.13's dbm.sqlite3 beside kv_backend: another process's write is
    # seen without reopening, and a process killed after a write leaves it stored.
    sqlite_dbm = pytest.importorskip("dbm.sqlite3", reason="dbm.sqlite3 is new in Python 3.13")
    path = str(tmp_path / "db.sqlite")
    db = sqlite_dbm.open(path, "c")
    try:
        db["before"] = "1"
        child = spawn_python(
            """
import os, sys
import dbm.sqlite3
db = dbm.sqlite3.open(sys.argv[1], "w")
assert db["before"] == b"1"
db["from-child"] = "2"
os.kill(os.getpid(), 9)
""",
            path,
        )
        assert child.wait(timeout=60) == -9
        assert db["from-child"] == b"2"
    finally:
        db.close()


def test_dbm_sqlite3_setdefault_and_equality_as_the_docs_say(tmp_path):
    sqlite_dbm = pytest.importorskip("dbm.sqlite3", reason="dbm.sqlite3 is new in Python 3.13")
    theirs = sqlite_dbm.open(str(tmp_path / "db.sqlite"), "c")
    try:
        assert theirs.setdefault(b"k", "text") == "text"  # the default as given
        with pytest.raises(sqlite_dbm.error):
            theirs.setdefault(b"absent")  # its default None is refused
        assert theirs == {b"k": b"text"}
        with pytest.raises(TypeError):
            hash(theirs)
    finally:
        theirs.close()
    with kdbm.open(str(tmp_path / "kv"), "c") as ours:
        assert ours.setdefault(b"k", "text") == b"text"  # the stored bytes
        assert ours.setdefault(b"absent") == b""
        assert ours != {b"k": b"text", b"absent": b""}
        assert hash(ours) == hash(ours)
