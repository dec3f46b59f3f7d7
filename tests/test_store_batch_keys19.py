"""A Store batch treats a key no store can hold (empty, or over 65,536 bytes) as the Store does.

``b.delete("")`` in ``with s.batch() as b:`` made the whole batch fail when the block ended
(KeyTooLargeError), writing none of its sets, while ``s.delete("")`` returns False and
``s.delete_many([""])`` leaves such a key out: it is absent, and the batch's delete "ignores a
missing key". It is now left out of the batch. ``b.set("", v)`` raised only when the block ended,
far from the line at fault; it raises at the call, and the block writes nothing, as before.
"""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.errors import ConfigurationError, DatabaseClosedError, InvalidArgumentError, KeyTooLargeError

UNSTORABLE = ["", "x" * 65537]


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s["old"] = 0
        yield s


@pytest.mark.parametrize("key", UNSTORABLE, ids=["empty", "too-long"])
def test_deleting_an_unstorable_key_in_a_batch_is_ignored(store, key):
    with store.batch() as b:
        b["a"] = 1
        b.delete(key)
        del b[key]
        b.delete("old")
    assert dict(store.items()) == {"a": 1}


@pytest.mark.parametrize("key", UNSTORABLE, ids=["empty", "too-long"])
def test_setting_an_unstorable_key_raises_at_the_call_and_writes_nothing(store, key):
    with pytest.raises(KeyTooLargeError), store.batch() as b:
        b["a"] = 1
        b.set(key, 2)
        pytest.fail("the set should have raised")
    assert dict(store.items()) == {"old": 0}


def test_a_bytes_store_batch_too(tmp_path):
    with Store(str(tmp_path / "b"), "raw", key_type=bytes) as s:
        with s.batch() as b:
            b[b"a"] = b"1"
            b.delete(b"")
        assert dict(s.items()) == {b"a": b"1"}
        with pytest.raises(KeyTooLargeError), s.batch() as b:
            b[b""] = b"2"


def test_after_close_the_closed_error_comes_first(tmp_path):
    s = Store(str(tmp_path / "s"))
    with pytest.raises(DatabaseClosedError), s.batch() as b:
        s.close()
        b.set("", 1)


@pytest.mark.parametrize("ttl", ["x", float("nan"), True])
def test_a_bad_ttl_raises_at_the_call_too(store, ttl):
    with pytest.raises((InvalidArgumentError, ConfigurationError)), store.batch() as b:
        b["a"] = 1
        b.set("b", 2, ttl=ttl)
        pytest.fail("the set should have raised")
    assert dict(store.items()) == {"old": 0}
    with store.batch() as b:  # a good one is taken as before
        b.set("c", 3, ttl=100)
        b.set("d", 4, ttl=0)  # (0 or less: deleted, as by set())
    assert store["c"] == 3 and 0 < store.ttl("c") <= 100 and "d" not in store


def test_after_close_a_bad_ttl_gives_the_closed_error(tmp_path):
    s = Store(str(tmp_path / "s"))
    with pytest.raises(DatabaseClosedError), s.batch() as b:
        s.close()
        b.set("a", 1, ttl="x")
