"""kv_backend.Store: the mapping protocol, serializers, key types, TTL, batches, views and bad input."""

from __future__ import annotations

import collections
import json
import pickle
import threading
import time

import pytest
from helpers import before_expiry

import kv_backend
from kv_backend import DB, Store
from kv_backend.errors import (
    ConfigurationError,
    DatabaseClosedError,
    InvalidKeyError,
    KeyTooLargeError,
    KVError,
    NotAStoreError,
    ReadOnlyError,
    StoreNotFoundError,
)
from kv_backend.serializers import (
    DeserializationError,
    JSONSerializer,
    PickleSerializer,
    SerializationError,
    get_serializer,
)
from kv_backend.store import KeyEncodingError


@pytest.fixture
def store(store_path):
    s = Store(store_path)
    yield s
    s.close()


# ------------------------------------------------------------ mapping protocol


def test_exported_from_package():
    assert kv_backend.Store is Store
    assert issubclass(Store, collections.abc.MutableMapping)


def test_empty_store(store):
    assert len(store) == 0
    assert list(store) == []
    assert store.keys() == set()
    assert list(store.values()) == []
    assert list(store.items()) == []
    assert "a" not in store
    assert store.get("a") is None
    assert store.get("a", 3) == 3
    with pytest.raises(KeyError):
        store["a"]
    with pytest.raises(KeyError):
        del store["a"]
    with pytest.raises(KeyError):
        store.pop("a")
    with pytest.raises(KeyError):
        store.popitem()
    assert store == {}
    assert not store.keys()


def test_read_write_like_a_dict(store):
    reference = {"one": 1, "two": [2, 2.0], "three": {"x": (3,)}, "none": None, "é✓": b"\x00\xff"}
    for k, v in reference.items():
        store[k] = v
    assert len(store) == len(reference)
    for k, v in reference.items():
        assert k in store
        assert store[k] == v
        assert store.get(k) == v
    assert dict(store) == reference
    assert store == reference
    assert store != {**reference, "extra": 1}
    assert store.keys() == reference.keys()
    assert sorted(store.values(), key=repr) == sorted(reference.values(), key=repr)
    assert next(iter(store.items())) == ("none", None)
    assert ("one", 1) in store.items()
    assert ("one", 2) not in store.items()
    assert [2, 2.0] in store.values()
    assert "missing" not in store.values()
    store["one"] = "uno"
    assert store["one"] == "uno"
    assert len(store) == len(reference)
    del store["one"]
    assert "one" not in store
    assert len(store) == len(reference) - 1


def test_values_are_copies(store):
    value = [1, 2]
    store["k"] = value
    value.append(3)
    assert store["k"] == [1, 2]
    got = store["k"]
    got.append(9)
    assert store["k"] == [1, 2]


def test_pop_popitem_setdefault_update_clear(store):
    store.update({"a": 1, "b": 2}, c=3)
    store.update([("d", 4)])
    assert store.pop("a") == 1
    assert store.pop("a", "gone") == "gone"
    assert store.setdefault("b", 99) == 2
    assert store.setdefault("e", 5) == 5
    assert store["e"] == 5
    assert store.setdefault("n") is None
    assert "n" in store
    assert store.popitem() == ("b", 2)  # smallest key first
    assert dict(store) == {"c": 3, "d": 4, "e": 5, "n": None}
    store.clear()
    assert len(store) == 0 and dict(store) == {}


def test_update_accepts_keys_protocol(store):
    class KeysOnly:
        def keys(self):
            return ["x", "y"]

        def __getitem__(self, key):
            return key.upper()

    store.update(KeysOnly())
    assert dict(store) == {"x": "X", "y": "Y"}


def test_iteration_is_sorted_and_views_are_live(store):
    for k in ["b", "a", "c/2", "c/1", "é", "z"]:
        store[k] = k
    keys = store.keys()
    assert list(keys) == ["a", "b", "c/1", "c/2", "z", "é"]
    store["aa"] = 1
    assert "aa" in keys
    assert len(keys) == 7
    assert list(reversed(keys))[:2] == ["é", "z"]
    assert list(store.keys(prefix="c/")) == ["c/1", "c/2"]
    assert len(store.keys(prefix="c/")) == 2
    assert "c/1" in store.keys(prefix="c/")
    assert "a" not in store.keys(prefix="c/")
    assert list(store.keys(start="c")) == ["c/1", "c/2", "z", "é"]
    assert list(store.keys(start="c/1", reverse=True)) == ["c/1", "b", "aa", "a"]
    assert list(store.items(prefix="c/")) == [("c/1", "c/1"), ("c/2", "c/2")]
    assert list(store.values(prefix="c/", reverse=True)) == ["c/2", "c/1"]
    assert store.keys() & {"a", "nope"} == {"a"}
    assert "KeysView" in repr(store.keys(prefix="c/"))


def test_iterating_while_writing_does_not_break(store):
    for i in range(1500):
        store[f"k{i:05d}"] = i
    seen = []
    for n, key in enumerate(store):
        seen.append(key)
        if n % 100 == 0:
            store[f"new{n}"] = n
            store.pop(f"k{n + 1:05d}", None)
    assert len(seen) >= 1400
    assert len(set(seen)) == len(seen)


def test_unhashable_and_equality(store):
    with pytest.raises(TypeError):
        hash(store)
    store["a"] = 1
    assert store == collections.OrderedDict(a=1)
    assert (store == 5) is False


# ------------------------------------------------------------ serializers


@pytest.mark.parametrize("serializer", ["pickle", "json", PickleSerializer(protocol=2), JSONSerializer()])
def test_plain_data_round_trips(store_path, serializer):
    with Store(store_path, serializer=serializer) as s:
        data = {"n": 1, "f": 1.5, "s": "text ✓", "l": [1, "2", None, True], "d": {"k": [False]}}
        s["v"] = data
        assert s["v"] == data


def test_json_is_plain_json_on_disk(store_path):
    with Store(store_path, serializer="json") as s:
        s["v"] = {"a": [1, 2]}
        s["t"] = (1, 2)
        assert s["t"] == [1, 2]
    with DB(store_path) as db:
        assert json.loads(db[b"v"]) == {"a": [1, 2]}


def test_raw_serializer(store_path):
    with Store(store_path, serializer="raw") as s:
        s["b"] = b"bytes"
        s["ba"] = bytearray(b"arr")
        assert s["b"] == b"bytes" and s["ba"] == b"arr"
        with pytest.raises(SerializationError):
            s["x"] = "str"
        assert "x" not in s


def test_custom_serializer_object(store_path):
    class Upper:
        def dumps(self, value):
            return value.upper().encode()

        def loads(self, data):
            return data.decode().lower()

    with Store(store_path, serializer=Upper()) as s:
        s["k"] = "hello"
        assert s["k"] == "hello"
        assert s.db[b"k"] == b"HELLO"
        with pytest.raises(SerializationError, match="dumps failed"):
            s["k"] = 5  # int has no upper()
        assert s["k"] == "hello"


def test_json_module_itself_works_as_serializer(store_path):
    with Store(store_path, serializer=json) as s:
        s["k"] = {"a": 1}
        assert s["k"] == {"a": 1}


def test_bad_serializer_specs(store_path):
    with pytest.raises(ValueError, match="unknown serializer"):
        Store(store_path, serializer="yaml")
    with pytest.raises(TypeError, match="dumps"):
        Store(store_path, serializer=42)
    with pytest.raises(ValueError):
        PickleSerializer(protocol=99)
    assert get_serializer("json").name == "json"


def test_unpicklable_value_is_refused_and_loses_nothing(store):
    store["k"] = "old"
    lock = threading.Lock()
    with pytest.raises(SerializationError) as info:
        store["k"] = lock
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, pickle.PicklingError)
    assert isinstance(info.value, KVError)
    assert "pickle" in str(info.value)
    with pytest.raises(SerializationError):
        store.set("new", lambda: 1)
    with pytest.raises(SerializationError):
        store.update({"a": 1, "b": lock})
    assert store["k"] == "old"
    assert "new" not in store and "a" not in store
    assert len(store) == 1


@pytest.mark.parametrize("bad", [{1, 2}, object(), float("nan"), b"bytes"])
def test_non_json_value_is_refused(store_path, bad):
    with Store(store_path, serializer="json") as s:
        s["k"] = 1
        with pytest.raises(SerializationError) as info:
            s["k"] = bad
        assert isinstance(info.value, TypeError)
        assert "JSON" in str(info.value)
        assert s["k"] == 1


def test_circular_json_value_is_refused(store_path):
    loop: list = []
    loop.append(loop)
    with Store(store_path, serializer="json") as s, pytest.raises(SerializationError):
        s["k"] = loop


def test_reading_with_the_wrong_serializer_is_a_clear_error(store_path):
    with Store(store_path, serializer="pickle") as s:
        s["k"] = {1, 2}
    with Store(store_path, serializer="json") as s, pytest.raises(DeserializationError) as info:
        s["k"]
    assert isinstance(info.value, ValueError)
    with DB(store_path) as db:
        db[b"p"] = b"not a pickle"
    with Store(store_path) as s, pytest.raises(DeserializationError):
        s["p"]


# ------------------------------------------------------------ keys


def test_str_keys_are_utf8(store):
    store["clé"] = 1
    assert store.db[b"cl\xc3\xa9"] == pickle.dumps(1, pickle.DEFAULT_PROTOCOL)


@pytest.mark.parametrize("bad", [1, 1.5, None, ("t",), b"bytes", bytearray(b"x")])
def test_wrong_key_types_on_str_store(store, bad):
    store["k"] = 1
    with pytest.raises(InvalidKeyError) as info:
        store[bad] = 1
    assert isinstance(info.value, TypeError)
    assert "key_type" in str(info.value)
    with pytest.raises(InvalidKeyError):
        store[bad]
    with pytest.raises(InvalidKeyError):
        store.get(bad)
    with pytest.raises(InvalidKeyError):
        del store[bad]
    assert bad not in store
    assert dict(store) == {"k": 1}


def test_view_bounds_of_the_wrong_type_are_refused_even_when_empty(store_path):
    with Store(store_path) as s:
        s["k"] = 1
        for bad in (b"", 0, b"k", bytearray()):
            with pytest.raises(InvalidKeyError):
                s.keys(prefix=bad)
            with pytest.raises(InvalidKeyError):
                s.items(start=bad)
        assert list(s.keys(prefix="")) == ["k"]
    with Store(store_path, key_type=bytes) as s:
        with pytest.raises(InvalidKeyError):
            s.values(prefix="")
        assert list(s.keys(prefix=b"")) == [b"k"]


def test_bytes_key_store(store_path):
    with Store(store_path, key_type=bytes) as s:
        s[b"a"] = 1
        s[bytearray(b"b")] = 2
        s[memoryview(b"c")] = 3
        assert list(s) == [b"a", b"b", b"c"]
        assert s[b"b"] == 2
        with pytest.raises(InvalidKeyError):
            s["a"] = 1
        assert "a" not in s
        s[b"\xff\xfe"] = "binary"
        assert list(s.keys(prefix=b"\xff")) == [b"\xff\xfe"]
    # the same store seen with str keys: a non-UTF-8 key is reported, not mangled
    with Store(store_path) as s:
        assert s["a"] == 1
        with pytest.raises(KeyEncodingError, match="key_type=bytes"):
            list(s)


def test_bad_key_values(store):
    with pytest.raises(KeyTooLargeError):
        store[""] = 1
    with pytest.raises(KeyTooLargeError):
        store["x" * 70000] = 1
    with pytest.raises(KeyEncodingError) as info:
        store["\udc80"] = 1
    assert isinstance(info.value, ValueError)
    assert "\udc80" not in store
    assert "" not in store and "x" * 70000 not in store  # never storable, so never present
    assert len(store) == 0


def test_bad_key_type_option(store_path):
    with pytest.raises(ConfigurationError):
        Store(store_path, key_type=int)


# ------------------------------------------------------------ engine features


def test_ttl_expire_persist(store):
    def short(life: float) -> tuple[float, float]:
        store.set("short", 1, ttl=life)
        return life, store.ttl("short")

    (life, ttl), expired_by = before_expiry((0.2, 1, 5), short)
    assert 0 < ttl <= life
    store.set("long", 2, ttl=100)
    store["forever"] = 3
    assert 99 < store.ttl("long") <= 100
    assert store.ttl("forever") is None
    with pytest.raises(KeyError):
        store.ttl("missing")
    assert store.persist("long") and store.ttl("long") is None
    assert store.expire("forever", 50) and store.ttl("forever") > 49
    assert not store.expire("missing", 5)
    store.set("gone", 1, ttl=0)
    assert "gone" not in store
    time.sleep(max(expired_by - time.time(), 0) + 0.05)
    assert "short" not in store
    assert store.get("short") is None
    assert sorted(store) == ["forever", "long"]
    assert len(store) == 2


def test_add_and_modify_and_incr(store):
    assert store.add("k", 1)
    assert not store.add("k", 2)
    assert store["k"] == 1
    assert store.modify("k", lambda v: v + 10) == 11
    assert store.modify("list", lambda v: [*v, 1], default=[]) == [1]
    with pytest.raises(KeyError):
        store.modify("missing", lambda v: v)
    with pytest.raises(RuntimeError):
        store.modify("k", lambda v: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(SerializationError):
        store.modify("k", lambda v: threading.Lock())
    assert store["k"] == 11
    assert store.incr("n") == 1
    assert store.incr("n", 2.5) == 3.5
    store["s"] = "text"
    with pytest.raises(TypeError):
        store.incr("s")
    with pytest.raises(TypeError):
        store.incr("n", "1")
    store.set("t", 1, ttl=100)
    store.incr("t")
    assert store.ttl("t") > 99  # keeps its expiry


def test_batch_is_all_or_nothing(store):
    store["keep"] = 0
    with store.batch() as b:
        b.set("a", 1)
        b["b"] = 2
        b.set("c", 3, ttl=100)
        b.delete("keep")
        assert len(b) == 4
        assert "a" not in store  # nothing visible before the block ends
    assert dict(store) == {"a": 1, "b": 2, "c": 3}
    with pytest.raises(SerializationError), store.batch() as b:
        b.set("x", 1)
        b.set("y", threading.Lock())
    with pytest.raises(RuntimeError), store.batch() as b:
        b.set("x", 1)
        del b["a"]
        raise RuntimeError("abort")
    assert dict(store) == {"a": 1, "b": 2, "c": 3}


def test_bad_ttl_in_a_batch_is_the_same_clear_error_as_in_set(store):
    for bad in ("5", b"5", [1]):
        with pytest.raises(TypeError, match="ttl must be a number of seconds or None"):
            store.set("a", 1, ttl=bad)
        with pytest.raises(TypeError, match="ttl must be a number of seconds or None"):
            store.set_many({"a": 1, "b": 2}, ttl=bad)
        with pytest.raises(TypeError, match="ttl must be a number of seconds or None"), store.batch() as b:
            b.set("a", 1, ttl=bad)
    assert dict(store) == {}


def test_get_set_delete_many(store):
    store.set_many({"a": 1, "b": 2, "c": 3})
    store.set_many([("d", 4)], ttl=100)
    store.set_many({})
    assert store.get_many(["a", "c", "zz"]) == {"a": 1, "c": 3}
    store.delete_many(["a", "b", "zz"])
    store.delete_many([])
    assert dict(store) == {"c": 3, "d": 4}
    assert store.ttl("d") > 99
    assert store.delete("c") and not store.delete("c")


def test_locked_and_stats_and_sync(store):
    with store.locked() as s:
        s["a"] = s.get("a", 0) + 1
    store.sync()
    assert store.stats()["keys"] == 1


def test_two_handles_in_one_process_see_each_other(store_path):
    with Store(store_path) as a, Store(store_path) as b:
        a["k"] = 1
        assert b["k"] == 1
        del b["k"]
        assert "k" not in a


# ------------------------------------------------------------ lifecycle and bad input


def test_closed_store_raises_value_error(store_path):
    s = Store(store_path)
    s["k"] = 1
    s.close()
    s.close()  # idempotent
    assert s.closed
    assert "closed" in repr(s)
    for op in (
        lambda: s["k"],
        lambda: s.__setitem__("k", 2),
        lambda: len(s),
        lambda: list(s),
        lambda: s.get("k"),
    ):
        with pytest.raises(DatabaseClosedError) as info:
            op()
        assert isinstance(info.value, ValueError)
    with Store(store_path) as again:
        assert again["k"] == 1


def test_context_manager_closes(store_path):
    with Store(store_path) as s:
        s["k"] = 1
    assert s.closed


def test_read_only_store(store_path):
    with Store(store_path) as s:
        s["k"] = 1
    with Store(store_path, read_only=True) as ro:
        assert ro.read_only and ro["k"] == 1
        with pytest.raises(ReadOnlyError):
            ro["k"] = 2
        with pytest.raises(ReadOnlyError):
            ro.clear()
        with pytest.raises(ReadOnlyError):
            ro.setdefault("new", 1)
        assert ro.setdefault("k", 5) == 1  # a read needs no write
        assert dict(ro) == {"k": 1}


def test_opening_a_non_store_path(tmp_path):
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(NotAStoreError):
        Store(tmp_path / "file.txt")
    with pytest.raises(NotAStoreError):
        Store(tmp_path)  # a directory holding foreign files
    assert (tmp_path / "file.txt").read_text() == "hello"
    with pytest.raises(StoreNotFoundError):
        Store(tmp_path / "missing", read_only=True)


def test_engine_options_are_passed(store_path):
    with Store(store_path, sync="always", max_file_size=4096) as s:
        for i in range(100):
            s[f"k{i}"] = "x" * 100
        assert s.stats()["files"] > 1
        assert s.db.sync_mode == "always"
    with pytest.raises(ConfigurationError):
        Store(store_path, sync="sometimes")


def test_mapping_protocol_details(store):
    assert not store
    for view in (store.keys, store.items, store.values, store.db.keys, store.db.items):
        with pytest.raises(TypeError):
            view(None)  # as dict.keys(None): options are keyword-only, never a silent filter
    store.update(b=2, a=1)
    store.update({"c": 3})
    store.update([("d", 4)], e=5)
    assert bool(store)
    assert list(zip(store.keys(), store.values(), strict=True)) == list(store.items())
    assert len(store.keys()) == len(store.values()) == len(store.items()) == 5
    assert list(store.keys()) == sorted(store)
    with pytest.raises(TypeError):
        store.update(5)
    with pytest.raises(ValueError):
        store.update([("x", 1, 2)])
    with pytest.raises(ValueError):
        store.update([("y",)])
    with pytest.raises(TypeError):
        store.update({"ok": 1}, {"too": "many"})
    with pytest.raises(TypeError):
        store.get()
    with pytest.raises(TypeError):
        store.pop()
    assert "x" not in store and "y" not in store and "ok" not in store
    items = dict(store)
    while store:
        k, v = store.popitem()
        assert items.pop(k) == v
    assert items == {}
    with pytest.raises(KeyError):
        store.popitem()
    store.setdefault("k", [])
    assert store.setdefault("k", [1]) == []
    store["k"] = store["k"] + [1]
    assert store["k"] == [1]


def test_engine_batch_with_a_single_put_reads_back(store_path):
    """Engine regression guard: a DB batch holding exactly one put (no TTL) must read back.

    An earlier DB._write indexed such a batch through its one-put fast path with the size of
    the whole write (record + COMMIT record), so the read failed its CRC check.
    """
    with DB(store_path) as db:
        with db.batch() as b:
            b.put(b"k", b"v")
        assert db[b"k"] == b"v"


def test_single_item_batches_through_the_store(store):
    with store.batch() as b:
        b.set("one", 1)
    store.set_many({"two": 2})
    store.update(three=3)
    store.delete_many(["two"])
    assert dict(store) == {"one": 1, "three": 3}
    with store.batch() as b:
        b.delete("one")
    assert dict(store) == {"three": 3}


def test_batch_on_closed_or_read_only_store(store_path):
    with Store(store_path) as s:
        s["k"] = 1
    with Store(store_path, read_only=True) as ro, pytest.raises(ReadOnlyError), ro.batch() as b:
        b.set("x", 1)
    s = Store(store_path)
    s.close()
    with pytest.raises(DatabaseClosedError), s.batch():
        pass
