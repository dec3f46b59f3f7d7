"""More of DB's public API at its edges: bytes-like keys, TTL bounds, counters, change waits, paths."""

from __future__ import annotations

import array

import pytest

from kv_backend import DB
from kv_backend.errors import ConfigurationError


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
