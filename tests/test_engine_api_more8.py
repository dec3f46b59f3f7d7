"""More of DB's public API at its edges: bytes-like keys, TTL bounds, counters, change waits, paths."""

from __future__ import annotations

import array
import os

import pytest

from kv_backend import DB
from kv_backend.errors import ConfigurationError, DatabaseClosedError, NotAnIntegerError


@pytest.fixture
def db(tmp_path):
    with DB(str(tmp_path / "db")) as d:
        yield d


@pytest.mark.parametrize(
    "make",
    [
        lambda b: memoryview(bytearray(b)),  # writable: cannot be hashed
        lambda b: memoryview(array.array("B", b)),  # writable too, through the array's buffer
        lambda b: bytearray(b),
        lambda b: memoryview(b),
    ],
    ids=["writable-memoryview", "array-memoryview", "bytearray", "memoryview"],
)
def test_reads_accept_every_bytes_like_key_that_writes_accept(db, make):
    """put() copies a bytearray or memoryview key, so get(), [] and ``in`` take the same key
    (a writable memoryview made get() and ``in`` raise a bare "cannot hash" ValueError)."""
    db.put(make(b"k"), b"v")
    assert db.get(make(b"k")) == b"v"
    assert db[make(b"k")] == b"v"
    assert make(b"k") in db
    assert make(b"missing") not in db
    assert db.get(make(b"missing"), b"d") == b"d"


@pytest.mark.parametrize("timeout", [float("nan"), "1", b"1"])
def test_wait_for_change_refuses_a_timeout_that_is_not_a_number(db, timeout):
    """A NaN timeout made wait_for_change() wait forever (its deadline is never reached) and a
    str one raised a bare "unsupported operand" TypeError: both are now a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="timeout must be a number"):
        db.wait_for_change(db.change_token(), timeout)


def test_wait_for_change_still_takes_zero_negative_and_infinite_timeouts(db):
    token = db.change_token()
    assert db.wait_for_change(token, 0) is False
    assert db.wait_for_change(token, -1) is False
    db.put(b"k", b"v")
    assert db.wait_for_change(token, float("inf")) is True


HUGE = 10**400  # an int too large for a float


@pytest.mark.parametrize(
    "write",
    [
        lambda db: db.put(b"k", b"v", ttl=HUGE),
        lambda db: db.put(b"k", b"v", expires_at=HUGE),
        lambda db: db.put(b"k", b"v", expires_at=-HUGE),
        lambda db: db.expire(b"k", HUGE),
        lambda db: db.expire(b"k", expires_at=HUGE),
        lambda db: db.batch().put(b"k", b"v", ttl=HUGE),
        lambda db: db.batch().put(b"k", b"v", expires_at=HUGE),
        lambda db: db.put_if_absent(b"new", b"v", ttl=HUGE),
    ],
)
def test_a_ttl_or_expiry_too_large_for_a_float_is_a_configuration_error(db, write):
    """An int TTL or expires_at beyond a float's range raised a bare OverflowError from
    math.isfinite(); it is now the ConfigurationError of any other unusable expiry, and
    nothing is written."""
    db.put(b"k", b"old")
    with pytest.raises(ConfigurationError):
        write(db)
    assert db.get(b"k") == b"old"
    assert db.ttl(b"k") is None
    assert b"new" not in db


def test_a_negative_ttl_too_large_for_a_float_deletes_like_any_ttl_below_zero(db):
    db.put(b"a", b"v")
    db.put(b"a", b"v", ttl=-HUGE)
    assert b"a" not in db
    db.put(b"b", b"v")
    assert db.expire(b"b", -HUGE) is True
    assert b"b" not in db
    db.put(b"c", b"v")
    with db.batch() as b:
        b.put(b"c", b"v", ttl=-HUGE)
    assert b"c" not in db


def test_incr_beyond_pythons_int_conversion_limit_is_a_not_an_integer_error(db):
    """A counter (or a result) with more digits than int()/str() convert (4,300 by default)
    made incr() raise a bare ValueError from int(): it is now NotAnIntegerError (the engine's
    error for a value incr cannot count with), and nothing is written."""
    db.put(b"long", b"1" * 5000)
    with pytest.raises(NotAnIntegerError, match="5000 digits"):
        db.incr(b"long")
    assert db[b"long"] == b"1" * 5000
    db.put(b"n", b"7")
    with pytest.raises(NotAnIntegerError, match="nothing was written"):
        db.incr(b"n", 10**5000)
    assert db[b"n"] == b"7"
    assert db.incr(b"n", -(10**30)) == 7 - 10**30  # large but convertible: still counts


def test_a_bytes_path_opens_the_store_like_a_str_path(tmp_path):
    """DB(b"/path") (and Store(b"/path")) raised "Can't mix strings and bytes in path
    components" from deep inside the opening code, though open(), os functions and the stdlib's
    shelve and dbm take a bytes path: it now opens the same store, and .path is a str."""
    import pathlib

    from kv_backend import Store

    path = tmp_path / "db"
    with DB(os.fsencode(path)) as db:
        assert db.path == str(path)
        db.put(b"k", b"v")
    with DB(pathlib.PurePath(path)) as db:
        assert db[b"k"] == b"v"
    with Store(os.fsencode(tmp_path / "s")) as s:
        s["k"] = 1
        assert s.path == str(tmp_path / "s")
    with pytest.raises(TypeError):
        DB(42)  # type: ignore[arg-type]


def test_a_write_through_a_batch_after_its_block_raises_instead_of_being_lost(db):
    """b.put()/b.delete() after the with block (a stray line at the wrong indentation) went
    into a list nobody would apply, so the write was silently lost; it now raises
    DatabaseClosedError and says so. Reusing the object for another with block still works."""
    with db.batch() as b:
        b.put(b"a", b"1")
    with pytest.raises(DatabaseClosedError, match="would be lost"):
        b.put(b"b", b"2")
    with pytest.raises(DatabaseClosedError):
        b.delete(b"a")
    assert db.get(b"a") == b"1" and b"b" not in db
    with pytest.raises(RuntimeError), db.batch() as b2:
        b2.put(b"c", b"3")
        raise RuntimeError
    with pytest.raises(DatabaseClosedError):
        b2.put(b"c", b"3")
    assert b"c" not in db
    with b:
        b.put(b"d", b"4")
    assert db[b"d"] == b"4"
