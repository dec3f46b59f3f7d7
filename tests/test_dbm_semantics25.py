"""kv_backend.dbm beside the stdlib's dbm modules, flag by flag and type by type (docs/store.md)."""

from __future__ import annotations

import array
import errno
import mmap
import os
import struct

import pytest
from redis_records_fixture22 import add_redis_keys, assert_redis_keys_whole

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend import Store
from kv_backend.errors import ConfigurationError, InvalidKeyError, InvalidValueError
from kv_backend.structures import Structures


def _buffers() -> list[object]:
    """Bytes-like objects that are neither bytes, bytearray nor memoryview, with their bytes."""
    m = mmap.mmap(-1, 4)
    m.write(b"mmap")
    return [
        pytest.param(array.array("b", b"arr"), b"arr", id="array"),
        pytest.param(array.array("i", [1, 2]), array.array("i", [1, 2]).tobytes(), id="array-of-ints"),
        pytest.param(m, b"mmap", id="mmap"),
    ]


@pytest.mark.parametrize(("obj", "data"), _buffers())
def test_any_bytes_like_object_is_taken_as_its_bytes(tmp_path, obj, data):
    """docs/store.md promised "any other bytes-like object" as its bytes, and Python 3.13's dbm.sqlite3
    takes an array.array or an mmap, key or value; this module refused them with TypeError."""
    with kdbm.open(str(tmp_path / "db"), "c") as db:
        db[b"k"] = obj
        assert db[b"k"] == data
        db[obj] = b"v"
        assert db[data] == b"v"
        assert db[obj] == b"v"
        assert obj in db
        assert db.get(obj) == b"v"
        assert db.setdefault(b"new", obj) == data
        db.update([(obj, obj)])
        assert db[data] == data
        assert db.pop(obj) == data
        assert obj not in db


def test_what_has_no_buffer_is_still_refused(tmp_path):
    with kdbm.open(str(tmp_path / "db"), "c") as db:
        for bad in (1, 1.5, None, [1], object()):
            with pytest.raises(InvalidValueError):
                db[b"k"] = bad
            with pytest.raises(InvalidKeyError):
                db[bad] = b"v"
            assert bad not in db


@pytest.mark.parametrize(("obj", "data"), _buffers())
def test_dbm_sqlite3_takes_them_too(tmp_path, obj, data):
    sqlite_dbm = pytest.importorskip("dbm.sqlite3", reason="dbm.sqlite3 is new in Python 3.13")
    db = sqlite_dbm.open(str(tmp_path / "db.sqlite"), "c")
    try:
        db[b"k"] = obj
        assert db[b"k"] == data
    finally:
        db.close()


@pytest.mark.parametrize("flag", ["C", "rw", "", "cx", "cm"])
def test_a_bad_flag_is_this_modules_error_and_a_value_error(tmp_path, flag):
    """dbm.gnu and dbm.ndbm raise their ``error`` for a flag they do not know (dbm.gnu's docs: "The
    exception error is raised if an invalid flag is specified"), dbm.dumb and dbm.sqlite3 a ValueError.
    This module, whose flags and open_flags are dbm.gnu's, raised a ValueError only, which
    ``except dbm.error:`` missed."""
    import dbm

    path = str(tmp_path / "db")
    for opener in (kdbm.open, kshelve.open):
        with pytest.raises(kdbm.error, match="flag must be") as info:
            opener(path, flag)
        assert isinstance(info.value, ValueError) and isinstance(info.value, ConfigurationError)
        assert isinstance(info.value, dbm.error) and info.value.errno == errno.EINVAL
    assert not os.path.exists(path)


#: Keys a dbm user may write that have the form of the records kvb serve keeps its Redis keys in (a NUL
#: byte, then one of its prefix letters) without being any, with the value of each.
BINARY_KEYS = {
    struct.pack(">H", 109): b"1",  # b"\x00m": a metadata record's form, a value no record has
    "mykey".encode("utf-16-be"): b"2",  # b"\x00m\x00y...": UTF-16-BE text
    "hello".encode("utf-16-be"): b"3",  # b"\x00h\x00e...": a member record's prefix, no length after it
    b"\x00h\x00\x00\x00\x01qf": b"4",  # a member record's form, of a Redis key that does not exist
    b"\x00S" + b"0" * 40: b"5",  # a cached script's form, whose SHA1 is not the value's
    b"\x00F\x01": b"6",
    b"plain": b"7",
}


def _fill(db) -> None:
    for key, value in BINARY_KEYS.items():
        db[key] = value


def test_clear_and_flag_n_empty_a_database_of_binary_keys(tmp_path):
    """clear() and flag "n" left every key of that form, in any database (server or not): a dbm of
    2-byte packed integers or of UTF-16-BE text was not emptied, as every stdlib dbm module empties it."""
    path = str(tmp_path / "db")
    with kdbm.open(path, "c") as db:
        _fill(db)
        db.clear()
        assert len(db) == 0 and db.keys() == []
        _fill(db)
    with kdbm.open(path, "n") as db:
        assert len(db) == 0
        _fill(db)
    with Store(path, key_type=bytes, serializer="raw") as st:
        st.clear()
        assert len(st) == 0


def test_popitem_takes_every_binary_key(tmp_path):
    """popitem() passed over them and raised KeyError while len() still counted them: a
    ``while db: db.popitem()`` loop failed."""
    with kdbm.open(str(tmp_path / "db"), "c") as db:
        _fill(db)
        taken = {}
        while db:
            key, value = db.popitem()
            taken[key] = value
        assert taken == BINARY_KEYS
        with pytest.raises(KeyError, match="empty"):
            db.popitem()


def test_the_records_kvb_serve_wrote_are_still_left_whole(tmp_path):
    """On a directory kvb serve also uses, its records stay whole and the binary keys go."""
    path = str(tmp_path / "kv")
    sha = add_redis_keys(path)
    with kdbm.open(path, "w") as db:
        _fill(db)
        db.clear()
        assert not any(key in db for key in BINARY_KEYS)
    assert_redis_keys_whole(path, sha)
    with kdbm.open(path, "w") as db:
        _fill(db)
        assert {db.popitem()[0] for _ in BINARY_KEYS} == set(BINARY_KEYS)
        with pytest.raises(KeyError, match="only records of Redis keys"):
            db.popitem()
    assert_redis_keys_whole(path, sha)
    with kdbm.open(path, "w") as db:
        _fill(db)
    kdbm.open(path, "n").close()
    with kdbm.open(path, "r") as db:
        assert not any(key in db for key in BINARY_KEYS)
        db.clear()  # nothing of its own left: nothing to do, as in the stdlib
    assert_redis_keys_whole(path, sha)


def test_popitem_does_not_read_every_record_of_a_shared_directory(tmp_path):
    """Telling a record from a key of its form takes a read of its metadata record: popitem() makes
    those reads only when no key of another form is left, so many Redis keys do not slow it down."""
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.mset({f"k{i}": "v" for i in range(300)})
    with kdbm.open(path, "w") as db:
        db[b"mine"] = b"1"
        reads = []
        get = db.db.get
        db.db.get = lambda *a, **k: reads.append(a[0]) or get(*a, **k)  # type: ignore[method-assign]
        assert db.popitem() == (b"mine", b"1")
        assert len(reads) < 10


def test_an_error_about_the_path_names_it_in_filename(tmp_path):
    """dbm.gnu's error for a missing file has the path in ``filename`` (CPython's test_dbm_gnu checks it),
    as dbm.dumb's FileNotFoundError has, and as every OSError of the os module has; this module's had
    None. Its message, which names the path already, is unchanged."""
    (tmp_path / "file").write_text("not a database")
    (tmp_path / "under").write_text("")
    cases = [
        (str(tmp_path / "missing"), "r", kdbm.DatabaseNotFoundError),
        (os.fsencode(tmp_path / "missing"), "w", kdbm.DatabaseNotFoundError),
        (tmp_path / "no" / "parent", "c", kdbm.DatabaseNotFoundError),
        (str(tmp_path / "under" / "db"), "c", kdbm.PathNotADirectoryError),
        (str(tmp_path / "file"), "c", kdbm.error),
    ]
    for file, flag, cls in cases:
        with pytest.raises(cls) as info:
            kdbm.open(file, flag)
        assert info.value.filename == file
        assert str(info.value).startswith(f"[Errno {info.value.errno}] ")
        assert not str(info.value).endswith(f": {file!r}")  # (not named twice)
    with pytest.raises(kdbm.error) as info:
        kshelve.open(str(tmp_path / "missing"), "r")
    assert info.value.filename == str(tmp_path / "missing")
