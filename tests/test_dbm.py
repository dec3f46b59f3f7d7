"""kv_backend.dbm: the stdlib dbm interface, flag by flag, modes, errors and whichdb."""

from __future__ import annotations

import dbm as std_dbm
import dbm.dumb
import os
import shutil
import stat
import tempfile

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

import kv_backend.dbm as kdbm
from kv_backend.errors import DatabaseClosedError, KVError, ReadOnlyError


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "db")


def test_error_class():
    assert issubclass(kdbm.error, OSError)
    assert issubclass(kdbm.error, KVError)
    assert issubclass(kdbm.ReadOnlyDatabaseError, kdbm.error)
    assert issubclass(kdbm.ReadOnlyDatabaseError, ReadOnlyError)
    assert issubclass(kdbm.ClosedError, kdbm.error)
    assert issubclass(kdbm.ClosedError, DatabaseClosedError)


def test_bytes_and_str_keys_and_values(path):
    with kdbm.open(path, "c") as db:
        db[b"b"] = b"bytes"
        db["s"] = "str ✓"
        db[bytearray(b"ba")] = bytearray(b"arr")
        assert db["b"] == b"bytes"
        assert db[b"s"] == "str ✓".encode()
        assert db[b"ba"] == b"arr"
        assert db.keys() == [b"b", b"ba", b"s"]
        assert isinstance(db.keys(), list)
        assert sorted(db) == [b"b", b"ba", b"s"]
        assert len(db) == 3
        assert "s" in db and b"s" in db and b"zz" not in db and 5 not in db
        assert db.get("b") == b"bytes"
        assert db.get("zz") is None
        assert db.get("zz", b"d") == b"d"
        assert db.setdefault("b", b"other") == b"bytes"
        assert db.setdefault("new", "v") == b"v"
        assert db.setdefault("empty") == b""
        assert db["new"] == b"v"
        del db["new"]
        with pytest.raises(KeyError):
            db["new"]
        with pytest.raises(KeyError):
            del db["new"]
        assert db.firstkey() == b"b"
        assert db.nextkey(b"b") == b"ba"
        assert db.nextkey("s") is None
        db.sync()


def test_wrong_types_are_type_errors(path):
    with kdbm.open(path, "c") as db:
        with pytest.raises(TypeError):
            db[1] = b"v"
        with pytest.raises(TypeError):
            db[b"k"] = 1
        with pytest.raises(TypeError):
            db[None]
        assert len(db) == 0


def test_keys_the_engine_cannot_store(path):
    """Empty and over-long keys: absent on reads, dbm.error (and ValueError) on writes."""
    too_long = b"k" * 65537
    with kdbm.open(path, "c") as db:
        db[b"kept"] = b"v"
        for key in (b"", "", too_long):
            assert key not in db
            assert db.get(key) is None and db.get(key, b"d") == b"d"
            with pytest.raises(KeyError):
                db[key]
            with pytest.raises(KeyError):
                del db[key]
            for write in (lambda k: db.__setitem__(k, b"v"), lambda k: db.setdefault(k, b"v")):
                with pytest.raises(kdbm.KeySizeError, match="1 to 65536 bytes") as info:
                    write(key)
                assert isinstance(info.value, kdbm.error) and isinstance(info.value, ValueError)
        assert dict(db.items()) == {b"kept": b"v"}


def test_a_value_the_engine_cannot_store_is_a_dbm_error(path, monkeypatch):
    import kv_backend.db_write as db_write
    import kv_backend.record as record

    # A limit of 8 bytes stands in for writing a 1 GiB value.
    monkeypatch.setattr(db_write, "_MAX_VALUE", 8)
    monkeypatch.setattr(record, "MAX_VALUE_SIZE", 8)
    with kdbm.open(path, "c") as db:
        with pytest.raises(kdbm.ValueSizeError) as info:
            db[b"k"] = b"123456789"
        assert isinstance(info.value, kdbm.error) and isinstance(info.value, ValueError)
        assert b"k" not in db


def test_default_flag_is_r(path):
    with pytest.raises(kdbm.error):
        kdbm.open(path)
    kdbm.open(path, "c").close()
    with kdbm.open(path) as db, pytest.raises(kdbm.error):
        db["k"] = b"v"


def test_flag_r(path):
    with kdbm.open(path, "c") as db:
        db["k"] = "v"
    with kdbm.open(path, "r") as db:
        assert db["k"] == b"v"
        with pytest.raises(kdbm.ReadOnlyDatabaseError) as info:
            db["k"] = "x"
        assert "flag 'r'" in str(info.value)
        with pytest.raises(kdbm.error):
            del db["k"]
        with pytest.raises(kdbm.error):
            db.setdefault("other", b"1")
        with pytest.raises(std_dbm.error):  # the stdlib's dbm.error tuple catches it
            db["k"] = "x"
        assert db.setdefault("k", b"z") == b"v"
    with kdbm.open(path, "r") as db:
        assert dict(db) == {b"k": b"v"}


def test_flag_w(path):
    with pytest.raises(kdbm.error) as info:
        kdbm.open(path, "w")
    assert info.value.errno == 2
    assert not os.path.exists(path)
    kdbm.open(path, "c").close()
    with kdbm.open(path, "w") as db:
        db["k"] = "v"
    with kdbm.open(path, "w") as db:
        assert db["k"] == b"v"


def test_flag_c(path):
    with kdbm.open(path, "c") as db:
        db["k"] = "v"
    with kdbm.open(path, "c") as db:
        assert db["k"] == b"v"


def test_flag_c_needs_the_parent_directory(tmp_path):
    with pytest.raises(kdbm.error):
        kdbm.open(str(tmp_path / "no" / "such" / "db"), "c")


def test_flag_n(path):
    with kdbm.open(path, "n") as db:
        db["k"] = "v"
        with kdbm.open(path, "r") as reader:
            assert reader["k"] == b"v"
            with kdbm.open(path, "n") as again:
                assert len(again) == 0
            assert len(reader) == 0  # an open reader sees the database emptied
        assert "k" not in db


@pytest.mark.parametrize("flag", ["x", "", "rw", "cq", "R", 1])
def test_bad_flags(path, flag):
    with pytest.raises((ValueError, TypeError)):
        kdbm.open(path, flag)
    assert not os.path.exists(path)


def test_gnu_style_modifiers(path):
    with kdbm.open(path, "cs") as db:
        assert db.db.sync_mode == "always"
        db["k"] = "v"
    with kdbm.open(path, "wfu") as db:
        assert db.db.sync_mode == "never"
        assert db["k"] == b"v"


@pytest.mark.parametrize(
    ("mode", "umask", "expected"),
    [(0o666, 0o022, 0o644), (0o600, 0o022, 0o600), (0o640, 0o002, 0o640), (0o666, 0o077, 0o600)],
)
def test_mode_of_a_new_database(path, mode, umask, expected):
    old = os.umask(umask)
    try:
        kdbm.open(path, "c", mode).close()
    finally:
        os.umask(old)
    dir_mode = stat.S_IMODE(os.stat(path).st_mode)
    assert dir_mode == expected | ((expected & 0o444) >> 2)
    names = os.listdir(path)
    assert names
    for name in names:
        assert stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) == expected, name


def test_mode_is_ignored_for_an_existing_database(path):
    kdbm.open(path, "c", 0o600).close()
    kdbm.open(path, "c", 0o666).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_bad_mode(path):
    with pytest.raises(TypeError):
        kdbm.open(path, "c", "0666")


def test_use_after_close(path):
    db = kdbm.open(path, "c")
    db["k"] = "v"
    db.close()
    db.close()
    assert db.closed
    for op in (
        lambda: db["k"],
        lambda: db.__setitem__("k", "v"),
        lambda: len(db),
        db.keys,
        lambda: "k" in db,
    ):
        with pytest.raises(kdbm.error) as info:
            op()
        assert isinstance(info.value, kdbm.ClosedError)
        assert "closed" in str(info.value)


def test_non_store_paths_are_refused_untouched(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("data")
    for flag in ("c", "w", "r"):
        with pytest.raises(kdbm.error, match=r"not a kv_backend|no database"):
            kdbm.open(str(plain), flag)
    assert plain.read_text() == "data"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes").write_text("x")
    for flag in ("c", "n"):
        with pytest.raises(kdbm.error):
            kdbm.open(str(folder), flag)
    assert os.listdir(folder) == ["notes"]
    dumb_path = str(tmp_path / "dumb")
    with dbm.dumb.open(dumb_path, "c") as d:
        d["k"] = "v"
    with pytest.raises(kdbm.error, match=r"dbm\.dumb"):
        kdbm.open(dumb_path, "c")


def test_flag_n_replaces_a_plain_file_as_the_stdlib_does(tmp_path):
    """'n' is "always a new, empty database": a file at the path (even garbage) gives way to it."""
    plain = tmp_path / "old.db"
    plain.write_bytes(b"garbage that is no database")
    with kdbm.open(str(plain), "n") as db:
        db[b"k"] = b"v"
    assert plain.is_dir()
    with kdbm.open(str(plain), "r") as db:
        assert db[b"k"] == b"v"


def test_whichdb(tmp_path):
    store = str(tmp_path / "store")
    kdbm.open(store, "c").close()
    assert kdbm.whichdb(store) == "kv_backend.dbm"
    assert std_dbm.whichdb(store) is None  # the stdlib cannot recognise a directory
    assert kdbm.whichdb(str(tmp_path / "missing")) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert kdbm.whichdb(str(empty)) == ""
    with dbm.dumb.open(str(tmp_path / "dumb"), "c") as d:
        d["k"] = "v"
    assert kdbm.whichdb(str(tmp_path / "dumb")) == "dbm.dumb"


def test_reorganize(path):
    pytest.importorskip("kv_backend.merge")
    with kdbm.open(path, "c") as db:
        for i in range(200):
            db["k"] = str(i)
        db.reorganize()
        assert db["k"] == b"199"
    with kdbm.open(path, "r") as db, pytest.raises(kdbm.error):
        db.reorganize()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(["a", b"b", "c", b"\xff"]), st.binary(max_size=3)),
        st.tuples(st.just("del"), st.sampled_from(["a", b"b", "c", b"\xff"]), st.none()),
        st.tuples(st.just("setdefault"), st.sampled_from(["a", b"b"]), st.binary(max_size=2)),
        st.tuples(st.just("reopen"), st.none(), st.none()),
    ),
    max_size=20,
)


def _run(opener, program):
    db = opener("c")
    trace = []
    try:
        for op, key, arg in program:
            if op == "set":
                db[key] = arg
            elif op == "del":
                try:
                    del db[key]
                except KeyError:
                    trace.append("missing")
            elif op == "setdefault":
                trace.append(db.setdefault(key, arg))
            else:
                db.close()
                db = opener("w")
            trace.append((sorted(db.keys()), len(db), db.get(key) if key is not None else None))
    finally:
        db.close()
    return trace


@settings(max_examples=25, deadline=None)
@given(program=ops)
def test_same_results_as_dbm_dumb(program):
    base = tempfile.mkdtemp(prefix="kvb-dbm-diff-")
    try:
        ours = _run(lambda f: kdbm.open(base + "/kv", f), program)
        theirs = _run(lambda f: dbm.dumb.open(base + "/dumb", f), program)  # noqa: SIM115
        assert ours == theirs
    finally:
        shutil.rmtree(base, ignore_errors=True)
