"""kv_backend.Store used directly from Python with the keys, values and arguments a program may
pass: what comes back is what docs/store.md promises, and failures are the project's errors."""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.errors import ConfigurationError, InvalidArgumentError, InvalidValueError, TransactionError
from kv_backend.structures import Structures


def test_get_many_of_a_bytes_store_takes_any_bytes_like_key_and_returns_bytes_keys(store_path):
    """A bytes store takes bytearray and memoryview keys everywhere, but get_many() used the key as
    given for the result's dict: a bytearray or memoryview raised "unhashable type" (after reading
    the values). Its keys are bytes, as iteration returns them."""
    with Store(store_path, key_type=bytes) as s:
        s[b"a"] = 1
        s[b"b"] = 2
        got = s.get_many([bytearray(b"a"), memoryview(b"xb")[1:], b"missing"])
        assert got == {b"a": 1, b"b": 2}
        assert all(type(k) is bytes for k in got)


def test_an_empty_path_is_refused_instead_of_opening_the_working_directory(tmp_path, monkeypatch):
    """Store("") (a setting left empty, say) opened the current directory as the store: an empty
    one silently became a store, another gave "<cwd> is not a kv_backend store" for a directory
    the caller never named. An empty path is a ConfigurationError, a path that is no path an
    InvalidArgumentError (it was Python's bare TypeError), and nothing is created."""
    monkeypatch.chdir(tmp_path)
    for path in ("", b""):
        with pytest.raises(ConfigurationError, match="empty"):
            Store(path)
        with pytest.raises(ConfigurationError, match="empty"):
            Structures(path)
    for path in (None, 5):
        with pytest.raises(InvalidArgumentError):
            Store(path)
    assert list(tmp_path.iterdir()) == []
    with Store(".") as s:  # the working directory, named
        s["k"] = 1
    assert (tmp_path / "KVB_FORMAT").exists()


def test_a_second_store_on_one_path_in_a_thread_holding_the_lock_raises_instead_of_hanging(store_path):
    """Inside s1.transaction() (or locked()), a write through, or the opening of, another Store on
    the same path in the same thread waited for the lock that thread holds: for ever. It raises
    TransactionError saying to use the first object, and the block goes on."""
    with Store(store_path) as s1, Store(store_path) as s2:
        with s1.transaction():
            s1["a"] = 1
            with pytest.raises(TransactionError, match="this thread holds the write lock"):
                s2["b"] = 2
            with pytest.raises(TransactionError, match="this thread holds the write lock"):
                Store(store_path)
            s1["c"] = 3
        with s1.locked(), pytest.raises(TransactionError):
            s2.pop("a")
        assert dict(s2) == {"a": 1, "c": 3}
        s2["b"] = 2  # the lock is free again
        assert dict(s1) == {"a": 1, "b": 2, "c": 3}


def test_closed_stores_leave_no_entry_in_the_registry_of_write_locks(tmp_path):
    from kv_backend import locking

    before = len(locking._LOCKS)
    for i in range(3):
        with Store(str(tmp_path / str(i))) as s:
            s["k"] = 1
    assert len(locking._LOCKS) == before


@pytest.mark.parametrize("delta", [float("nan"), float("inf"), float("-inf")])
def test_incr_by_a_delta_that_is_not_finite_is_refused(tmp_path, delta):
    """``incr(k, nan)`` stored NaN (and an infinity made every later incr NaN or infinite), where
    the docs promise InvalidValueError for a delta that is not a number, and Redis's INCRBYFLOAT
    refuses both; nothing is written."""
    with Store(str(tmp_path / "s")) as store:
        store["n"] = 1.5
        with pytest.raises(InvalidValueError):
            store.incr("n", delta)
        with pytest.raises(InvalidValueError):
            store.incr("fresh", delta)
        assert store["n"] == 1.5 and "fresh" not in store


def test_incr_that_would_overflow_a_float_is_refused(tmp_path):
    with Store(str(tmp_path / "s"), serializer="json") as store:
        store["big"] = 1.7e308
        with pytest.raises(InvalidValueError):
            store.incr("big", 1.7e308)
        assert store["big"] == 1.7e308
        assert store.incr("big", -0.7e308) == 1.0e308


class _Int64:
    """A number that is not an ``int`` subclass, registered as a numbers.Integral, as NumPy's
    integer scalars (``numpy.int64``) are."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __float__(self) -> float:
        return float(self.value)

    def __index__(self) -> int:
        return self.value

    def __le__(self, other: object) -> bool:
        return self.value <= other  # type: ignore[operator]

    def __lt__(self, other: object) -> bool:
        return self.value < other  # type: ignore[operator]


import numbers  # noqa: E402

numbers.Integral.register(_Int64)


@pytest.mark.parametrize("ttl", [_Int64(30), "Decimal", "Fraction"])
def test_a_ttl_of_another_number_type_is_taken(tmp_path, ttl):
    """``ttl=numpy.int64(30)`` (a count of seconds from a NumPy computation), a Decimal or a
    Fraction was refused as "not a number", where numpy.float64 (a float subclass) was taken."""
    from decimal import Decimal
    from fractions import Fraction

    ttl = {"Decimal": Decimal("30.5"), "Fraction": Fraction(61, 2)}.get(ttl, ttl)  # type: ignore[call-overload]
    with Store(str(tmp_path / "s")) as store:
        store.set("k", 1, ttl=ttl)
        left = store.db.ttl(b"k")
        assert left is not None and 29 < left <= 30.5
        with pytest.raises(InvalidArgumentError):
            store.set("k", 1, ttl=True)
        with pytest.raises(InvalidArgumentError):
            store.set("k", 1, ttl="30")
        assert store.db.expire(b"k", ttl) is True
