"""A pickle (or JSON) Store with str keys on a directory holding Redis keys of kvb serve or
kv_backend.structures: the records' keys are text (a string's ``"\\x00mgreeting"``, a hash field's
``"\\x00h\\x00\\x00\\x00\\x01hf"``), so iteration lists them, and reading one raised the serializer's
generic "not a readable pickle ... another serializer?". Now every read of one (``[]``, ``get``,
``get_many``, ``items()``, ``values()``, ``pop``, ``setdefault``) raises the same error type
saying it is a record of a Redis key and what to do, and leaves the record stored; other unreadable
values keep the serializer's message. (``popitem()`` passes over the records of Redis keys: see
test_popitem_leaves_redis_records21.py.)
"""

from __future__ import annotations

import pickle

import pytest

from kv_backend import DB, Store
from kv_backend.serializers import DeserializationError, PickleDeserializationError
from kv_backend.structures import Structures

READS = {
    "getitem": lambda st: st["\x00mgreeting"],
    "get": lambda st: st.get("\x00mgreeting"),
    "get_many": lambda st: st.get_many(["mine", "\x00mgreeting"]),
    "items": lambda st: list(st.items()),
    "values": lambda st: list(st.values()),
    "pop": lambda st: st.pop("\x00mgreeting"),
    "setdefault": lambda st: st.setdefault("\x00mgreeting", 1),
}


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.set("greeting", "hello")
        s.hset("h", "f", "v")
    return path


@pytest.mark.parametrize("serializer", ["pickle", "json"])
@pytest.mark.parametrize("read", READS)
def test_reading_a_redis_record_says_what_it_is(path, read, serializer):
    with Store(path, serializer=serializer) as st:
        st["mine"] = 1
        assert "\x00mgreeting" in list(st)  # listed: its key is text
        with pytest.raises(DeserializationError) as info:
            READS[read](st)
        message = str(info.value)
        assert message.startswith("the stored value of key b'\\x00")
        assert "is not a value of this Store: it is a record of a Redis key of kvb serve" in message
        assert "a Store cannot read its records as values; give it a directory of its own" in message
        assert "kv_backend.Store(path, key_type=bytes)" in message
        if serializer == "pickle":
            assert isinstance(info.value, PickleDeserializationError)
            assert isinstance(info.value, pickle.UnpicklingError)
        assert isinstance(info.value.__cause__, DeserializationError)  # the serializer's own, kept
        assert st["mine"] == 1
    with Structures(path) as s:  # nothing removed
        assert s.get("greeting") == b"hello" and s.hgetall("h") == {b"f": b"v"}


def test_other_unreadable_values_keep_the_serializers_message(tmp_path):
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"plain", b"not a pickle")
        db.put(b"\x00own", b"not a pickle")  # a NUL key that cannot be a Redis record
    with Store(path) as st:
        for key in ("plain", "\x00own"):
            with pytest.raises(PickleDeserializationError, match="not a readable pickle") as info:
                st[key]
            assert "Redis" not in str(info.value)
            with pytest.raises(PickleDeserializationError, match="not a readable pickle"):
                st.get(key)


def test_a_shelf_reading_one_says_so_too(path):
    from kv_backend import shelve

    with shelve.open(path) as shelf:
        shelf["mine"] = 1
        for read in (lambda: shelf["\x00mgreeting"], lambda: shelf.pop("\x00mgreeting")):
            with pytest.raises(PickleDeserializationError) as info:
                read()
            message = str(info.value)
            assert "is not a readable pickle" in message
            assert "a shelf cannot read its records as values; give it a directory of its own" in message
        assert shelf["mine"] == 1 and "\x00mgreeting" in shelf
    with DB(path) as db:
        db.put(b"plain", b"not a pickle")
    with shelve.open(path) as shelf, pytest.raises(PickleDeserializationError) as info:
        shelf["plain"]
    assert str(info.value).endswith("it was not written by a shelf")
