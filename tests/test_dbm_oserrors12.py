"""kv_backend.dbm.open's OS errors against dbm.dumb's (#4).

``dbm.dumb.open`` lets the OSError the system gives through: ``NotADirectoryError``
for a path under a file, ``PermissionError`` for a directory the process may not
search, ``FileNotFoundError`` for a missing database. ``kv_backend.dbm.open`` raised
its plain ``error`` for the first two with "c" and "n", and with "r" and "w" said
that no database was there (a ``FileNotFoundError``, errno ENOENT). Now each is an
``error`` and an instance of the stdlib's class, with the system's errno.
"""

from __future__ import annotations

import dbm.dumb
import errno
import os
import shutil
import tempfile

import pytest
from helpers import patch_engine, run_as_nobody

import kv_backend.dbm as kv_dbm
from kv_backend.errors import KVError


def _kind(exc: OSError) -> tuple[str, int | None]:
    """(the builtin OSError subclass ``exc`` is an instance of, its errno)."""
    for cls in (FileNotFoundError, NotADirectoryError, PermissionError):
        if isinstance(exc, cls):
            return cls.__name__, exc.errno
    return "OSError", exc.errno


def _compare(cases: list[tuple[str, str]]) -> list[tuple[str, str, object, object]]:
    """(path, flag, what dbm.dumb raised, what kv_backend.dbm raised) for each case (None: no error)."""
    out = []
    for path, flag in cases:
        theirs = ours = None
        try:
            dbm.dumb.open(path + "-dumb", flag).close()
        except OSError as exc:
            theirs = _kind(exc)
        try:
            kv_dbm.open(path, flag).close()
        except kv_dbm.error as exc:
            assert isinstance(exc, KVError)
            assert str(exc).count("[Errno") == 1, str(exc)  # the errno once, not the engine's again
            ours = _kind(exc)
        except Exception as exc:  # reported by the comparison
            ours = ("not kv_backend.dbm.error", repr(exc))
        out.append((path, flag, theirs, ours))
    return out


def test_a_path_under_a_file_raises_not_a_directory_error_as_dbm_dumb(tmp_path):
    (tmp_path / "afile").write_bytes(b"")
    base = str(tmp_path / "afile" / "db")
    results = _compare([(base, flag) for flag in "rwcn"])
    for _path, flag, theirs, ours in results:
        assert theirs == ("NotADirectoryError", errno.ENOTDIR), (flag, theirs)
        assert ours == theirs, (flag, ours)
    with pytest.raises(kv_dbm.PathNotADirectoryError):
        kv_dbm.open(base, "c")


def test_a_missing_database_with_flag_r_raises_file_not_found_as_dbm_dumb(tmp_path):
    for _path, _flag, theirs, ours in _compare([(str(tmp_path / "missing"), "r")]):
        assert theirs == ours == ("FileNotFoundError", errno.ENOENT)


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root, to run as nobody")
def test_a_directory_without_permission_raises_permission_error_as_dbm_dumb():
    base = tempfile.mkdtemp(prefix="kvb-dbm-oserr-")
    try:
        os.chmod(base, 0o755)
        os.mkdir(f"{base}/locked", 0o700)  # root's alone: nobody may not search it
        kv_dbm.open(f"{base}/private", "c", 0o600).close()  # a database nobody may not open
        ro = f"{base}/readable"
        kv_dbm.open(ro, "c", 0o644).close()  # one nobody may read but not write
        cases = [(f"{base}/locked/db", flag) for flag in "rwcn"]
        cases += [(f"{base}/private", flag) for flag in "rwcn"]

        def attempt():
            results = _compare(cases)
            with kv_dbm.open(ro, "r") as db:
                assert len(db) == 0
            try:
                kv_dbm.open(ro, "w")
            except PermissionError as exc:
                assert isinstance(exc, kv_dbm.PermissionDeniedError) and exc.errno == errno.EACCES
                assert "flag 'r'" in str(exc) and "read_only" not in str(exc), str(exc)
            else:
                raise AssertionError("opened a database it may not write with flag 'w'")
            return results

        for path, flag, theirs, ours in run_as_nobody(attempt):
            if os.path.basename(path) != "private":
                assert theirs == ("PermissionError", errno.EACCES), (path, flag, theirs)
            assert ours == ("PermissionError", errno.EACCES), (path, flag, ours)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_write_on_a_full_disk_raises_this_module_error(tmp_path, monkeypatch):
    """The module promises that failures raise its ``error``; a write that found the disk full
    raised the engine's StorageError, which ``except kv_backend.dbm.error:`` missed (for a dbm
    database and a shelf). It is an ``error`` now, with the errno ENOSPC; the database is usable
    again once there is room."""
    import kv_backend.shelve as kv_shelve

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    with kv_dbm.open(str(tmp_path / "d"), "c") as db, kv_shelve.open(str(tmp_path / "s")) as shelf:
        db[b"a"] = b"1"
        shelf["a"] = 1
        patch_engine(monkeypatch, "_pwrite", full)
        for write in (
            lambda: db.__setitem__(b"b", b"2"),
            lambda: db.update({b"b": b"2", b"c": b"3"}),
            lambda: db.setdefault(b"b", b"2"),
            lambda: shelf.__setitem__("b", 2),
            lambda: shelf.update({"b": 2, "c": 3}),
        ):
            with pytest.raises(kv_dbm.error) as info:
                write()
            assert info.value.errno == errno.ENOSPC
            assert "disk is full" in str(info.value)
        monkeypatch.undo()
        db[b"b"] = b"2"
        shelf["b"] = 2
        assert dict(db.items()) == {b"a": b"1", b"b": b"2"}
        assert dict(shelf) == {"a": 1, "b": 2}


@pytest.mark.parametrize("flag", ["r", "c", "n"])
def test_a_directory_that_is_not_a_database_is_named_once(tmp_path, flag):
    """Opening a directory that holds other files said "[Errno 22] [Errno 22] ... is not a
    kv_backend store": the engine's error text, errno included, inside this module's error."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_bytes(b"")
    with pytest.raises(kv_dbm.error) as info:
        kv_dbm.open(str(other), flag)
    assert info.value.errno == errno.EINVAL
    assert str(info.value).count("[Errno") == 1, str(info.value)
    assert "is not a kv_backend store" in str(info.value)
    assert os.listdir(other) == ["x"]
