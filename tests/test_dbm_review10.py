"""kv_backend.dbm review 10: behaviour the stdlib's dbm modules have and this one lacked."""

from __future__ import annotations

import dbm.dumb
import os
import stat

import pytest

import kv_backend.dbm as kdbm
from kv_backend import DB
from kv_backend.errors import InvalidKeyError, InvalidValueError


def test_setdefault_returns_a_present_value_whatever_the_default(tmp_path):
    """dbm.gnu and dbm.dumb return a present key's value without looking at ``default``; this
    module converted ``default`` first, so setdefault(key, None) raised TypeError for a key that
    was there. The default is now checked only when it is to be stored."""
    with dbm.dumb.open(str(tmp_path / "dumb"), "c") as std, kdbm.open(str(tmp_path / "kv"), "c") as db:
        for d in (std, db):
            d[b"k"] = b"v"
            assert d.setdefault(b"k", None) == b"v"
            assert d.setdefault("k", 1) == b"v"
            with pytest.raises(TypeError):
                d.setdefault(b"missing", None)
            assert b"missing" not in d
    with kdbm.open(str(tmp_path / "kv"), "r") as ro:
        assert ro.setdefault(b"k", None) == b"v"


@pytest.mark.parametrize(
    ("dir_mode", "mode", "files", "after"),
    [(0o755, 0o600, 0o600, 0o700), (0o2775, 0o640, 0o640, 0o2750), (0o700, 0o666, 0o644, 0o700)],
)
def test_mode_applies_when_an_existing_empty_directory_becomes_the_database(
    tmp_path, dir_mode, mode, files, after
):
    """mode was applied only when dbm.open made the directory: in an existing empty directory
    (0o755) open(path, "c", 0o600) left the new store's files 0o644, readable by everyone, and
    files made later too. The files now get mode, and the directory loses the access mode does
    not grant (it gains none, and keeps its setgid bit)."""
    path = str(tmp_path / "db")
    os.mkdir(path)
    os.chmod(path, dir_mode)
    old = os.umask(0o022)
    try:
        with kdbm.open(path, "c", mode) as db:
            db[b"k"] = b"v"
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == after
    for name in os.listdir(path):
        assert stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) == files, name
    with kdbm.open(path, "c", 0o666) as db:  # now an existing database: left as it is
        assert db[b"k"] == b"v"
    assert stat.S_IMODE(os.stat(path).st_mode) == after


def test_pop_with_a_default_never_raises_when_another_process_took_the_key(tmp_path, monkeypatch):
    """The mixin's pop() read the key, then deleted it: if another process removed it in between,
    the delete raised KeyError although a default was given (and both processes had the value).
    pop() is now one atomic engine operation; "r" databases still give the default for a missing
    key and refuse to remove a present one."""
    path = str(tmp_path / "db")
    with kdbm.open(path, "c") as db, DB(path) as other:
        db[b"k"] = b"v"
        read = kdbm.Database.__getitem__

        def racing(self, key):
            try:
                return read(self, key)
            finally:
                other.delete(key if isinstance(key, bytes) else key.encode())

        monkeypatch.setattr(kdbm.Database, "__getitem__", racing)
        assert db.pop("k", None) == b"v"
        assert db.pop(b"k", None) is None
        with pytest.raises(KeyError):
            db.pop(b"k")
        assert db.pop(b"", 1) == 1  # a key no database can hold is absent
        monkeypatch.undo()
        db[b"k"] = b"v"
    with kdbm.open(path, "r") as ro:
        assert ro.pop(b"missing", 2) == 2
        with pytest.raises(kdbm.ReadOnlyDatabaseError):
            ro.pop(b"k")
        assert ro[b"k"] == b"v"
    with pytest.raises(kdbm.ClosedError):
        ro.pop(b"k", None)


def test_wrong_types_raise_the_projects_type_errors(tmp_path):
    """Keys and values of other types than bytes and str raised a bare TypeError; they now raise
    InvalidKeyError and InvalidValueError (KVErrors, and still TypeErrors as in dbm.gnu and
    dbm.dumb), and nothing is written."""
    with kdbm.open(str(tmp_path / "db"), "c") as db:
        for op in (
            lambda: db.__setitem__(1, b"v"),
            lambda: db[None],
            lambda: db.get(1.5),
            lambda: db.__delitem__(1),
            lambda: db.setdefault(1, b"v"),
            lambda: db.pop(1, None),
            lambda: db.nextkey(1),
        ):
            with pytest.raises(InvalidKeyError):
                op()
        for op in (
            lambda: db.__setitem__(b"k", 1),
            lambda: db.setdefault(b"k", None),
            lambda: db.update({b"a": b"1", b"k": None}),
        ):
            with pytest.raises(InvalidValueError):
                op()
        assert db.get(b"k") is None
        assert 1 not in db


def test_update_is_one_atomic_batch(tmp_path):
    """The mixin's update() wrote pair by pair: a bad value, or a key the engine cannot store,
    left the pairs before it written. update() now checks every pair, then writes them as one
    batch (as Store.update and the shelf's update do); the dict.update forms all work."""
    path = str(tmp_path / "db")
    with kdbm.open(path, "c") as db:
        with pytest.raises(InvalidValueError):
            db.update({b"a": b"1", b"b": None})
        with pytest.raises(kdbm.KeySizeError):
            db.update([(b"a", b"1"), (b"", b"2")])
        with pytest.raises(kdbm.KeySizeError):
            db.update({b"a": b"1"}, c=b"3", **{"k" * 65537: b"v"})
        assert len(db) == 0
        db.update({b"a": b"1"}, b="2")
        db.update([("c", "3"), (bytearray(b"d"), memoryview(b"4"))])
        db.update(_KeysOnly(), e=b"6")
        db.update()
        assert dict(db.items()) == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4", b"e": b"6", b"f": b"5"}
    with kdbm.open(path, "r") as ro, pytest.raises(kdbm.ReadOnlyDatabaseError):
        ro.update({b"x": b"1", b"y": b"2"})
    with pytest.raises(kdbm.ClosedError):
        ro.update({b"x": b"1", b"y": b"2"})


class _KeysOnly:
    """An object with keys() and [] only, as dict.update accepts."""

    def keys(self):
        return [b"f"]

    def __getitem__(self, key):
        return b"5"


def test_files_added_later_are_no_more_open_than_mode(tmp_path):
    """mode was applied to the files a new database starts with; files the engine added later
    (a data file at each rotation, a merge's data and hint files, the merge lock) got 0o666 less
    the umask of the process that made them: with mode=0o640 and the common umask 002 they were
    0o664, writable by the group the 0o750 directory lets in. They now get no more than the
    store's first files grant the group and others."""
    path = str(tmp_path / "db")
    old = os.umask(0o002)
    try:
        with kdbm.open(path, "c", 0o640) as db:
            db.db.max_file_size = 4096  # rotate often
            for i in range(20):
                db[b"k%d" % i] = b"x" * 1000
            db.reorganize()
            db[b"after"] = b"merge"
    finally:
        os.umask(old)
    names = os.listdir(path)
    assert any(n.endswith(".hint") for n in names) and len([n for n in names if n.endswith(".data")]) > 1
    for name in names:
        assert stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) == 0o640, name
    with kdbm.open(path, "r") as db:
        assert db[b"k19"] == b"x" * 1000 and db[b"after"] == b"merge"
