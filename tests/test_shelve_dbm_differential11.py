"""kv_backend.shelve and kv_backend.dbm against the stdlib's shelve and dbm.dumb (#4).

Focused regression tests for each difference found, then differential state
machines (see their docstrings) that run the same random operations on ours
and on the stdlib's and compare every result, exception and the stored state.
"""

from __future__ import annotations

import dbm.dumb
import errno
import shelve as std_shelve

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve


def test_clear_of_an_empty_read_only_database_does_nothing_as_in_the_stdlib(tmp_path):
    """clear() on an empty "r" database or shelf raised ReadOnlyDatabaseError; the stdlib's
    clear() removes nothing there and returns. A non-empty one still raises (as the stdlib's)."""
    for name, opener in (
        ("kv", kv_dbm.open),
        ("dumb", dbm.dumb.open),
        ("kvshelf", kv_shelve.open),
        ("shelf", lambda p, f: std_shelve.Shelf(dbm.dumb.open(p, f))),  # noqa: SIM115
    ):
        path = str(tmp_path / name)
        opener(path, "c").close()
        with opener(path, "r") as ro:
            ro.clear()
            assert len(ro) == 0
        with opener(path, "c") as rw:
            rw["k"] = b"v"
        with opener(path, "r") as ro:
            with pytest.raises(OSError):
                ro.clear()
            assert len(ro) == 1
        closed = opener(path, "r")
        closed.close()
        with pytest.raises((OSError, ValueError)):  # use after close still raises
            closed.clear()


def test_in_with_a_key_of_another_type_after_close_raises(tmp_path):
    """``1 in db`` answered False on a closed database or shelf, where every other use after
    close() raises (dbm.dumb: its error; shelve: ValueError); it now raises the same error
    as ``b"k" in db``. On an open one it is still simply False."""
    with kv_dbm.open(str(tmp_path / "d"), "c") as d:
        assert 1 not in d
    with pytest.raises(kv_dbm.ClosedError):
        1 in d  # noqa: B015
    dumb = dbm.dumb.open(str(tmp_path / "dumb"), "c")  # noqa: SIM115
    dumb.close()
    with pytest.raises(OSError):  # what the stdlib does
        1 in dumb  # noqa: B015
    with kv_shelve.open(str(tmp_path / "s")) as s:
        assert 1 not in s
    for key in (1, b"k", None):
        with pytest.raises(ValueError, match="closed shelf"):
            key in s  # noqa: B015


@pytest.mark.parametrize("flag", ["r", "w"])
def test_opening_a_missing_database_raises_file_not_found_as_dbm_dumb(tmp_path, flag):
    """dbm.dumb.open(missing, "r" or "w") raises FileNotFoundError; kv_backend.dbm.open raised
    only its error (an OSError), which ``except FileNotFoundError:`` missed. It is now both."""
    with pytest.raises(FileNotFoundError):
        dbm.dumb.open(str(tmp_path / "dumb"), flag)  # noqa: SIM115
    for open_ in (kv_dbm.open, kv_shelve.open):
        with pytest.raises(FileNotFoundError, match="use flag 'c' or 'n'") as info:
            open_(str(tmp_path / "kv"), flag)
        assert isinstance(info.value, kv_dbm.DatabaseNotFoundError)
        assert isinstance(info.value, kv_dbm.error) and info.value.errno == errno.ENOENT
    assert not (tmp_path / "kv").exists()
