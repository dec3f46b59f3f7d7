"""Store, shelve and dbm edge cases: keys that can never be stored in views, and more."""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.errors import ConfigurationError, DatabaseClosedError, KeyTooLargeError
from kv_backend.serializers import DeserializationError, PickleSerializer, SerializationError


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({"a": 1, "b": 2})
        yield s


@pytest.mark.parametrize("key", ["", "x" * 70_000])
def test_views_never_hold_a_key_that_cannot_be_stored(store, key):
    """Like ``key in store``, a view's ``in`` is False for an empty or over-long key (it raised
    KeyTooLargeError), so set operations with such keys work as they do on dict views."""
    assert key not in store
    assert key not in store.keys()  # noqa: SIM118 - the view itself is tested
    assert (key, 1) not in store.items()
    assert store.keys() & {key, "a"} == {"a"}
    assert not {key} <= store.keys()
    assert store.keys() - {key} == {"a", "b"}
    assert store.items() & {(key, 1), ("a", 1)} == {("a", 1)}
    assert store.keys(prefix="a") & {key, "a"} == {"a"}


def test_json_nested_too_deep_to_decode_is_a_deserialization_error(tmp_path):
    """JSON data nested deeper than the decoder can go (written by another program: the json
    serializer is the one for untrusted writers) raised a bare RecursionError on read; it is
    now DeserializationError like any other unreadable value, and the store stays usable."""
    with Store(str(tmp_path / "j"), "json") as s:
        s.db.put(b"deep", b"[" * 100_000 + b"]" * 100_000)
        with pytest.raises(DeserializationError, match="not UTF-8 JSON"):
            s["deep"]
        with pytest.raises(DeserializationError):
            s.get("deep")
        s["ok"] = [[1]]
        assert s["ok"] == [[1]]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.update({}),
        lambda s: s.update(),
        lambda s: s.set_many({}),
        lambda s: s.set_many([]),
        lambda s: s.delete_many([]),
        lambda s: s.get_many([]),
    ],
)
def test_bulk_calls_with_nothing_to_do_raise_after_close(tmp_path, call):
    """The docs promise that every call after close() raises DatabaseClosedError; the bulk
    calls returned quietly when given no keys, hiding a use of a closed store."""
    s = Store(str(tmp_path / "s"))
    s.close()
    with pytest.raises(DatabaseClosedError):
        call(s)


def test_a_store_whose_serializer_is_a_module_can_be_pickled(tmp_path):
    """The docs offer serializer=json (the module) and say a Store can be pickled, e.g. for a
    multiprocessing worker; pickling such a store raised "cannot pickle 'module' object".
    The module is now sent by name and imported on the other side."""
    import json
    import pickle

    with Store(str(tmp_path / "s"), json) as s:
        s["k"] = {"a": [1, 2]}
        assert s.db.get(b"k") == b'{"a": [1, 2]}'
        with pickle.loads(pickle.dumps(s)) as copy:
            assert copy.serializer.inner is json
            assert copy["k"] == {"a": [1, 2]}
            copy["j"] = [3]
        assert s.db.get(b"j") == b"[3]"


class CountingSerializer:
    """A user serializer that fails and counts its calls (as one that logs or meters would)."""

    def __init__(self) -> None:
        self.calls = 0

    def dumps(self, value):
        self.calls += 1
        raise RuntimeError("cannot encode")

    def loads(self, data):
        self.calls += 1
        raise RuntimeError("cannot decode")


def test_a_failing_user_serializer_is_called_once_per_read_or_write(tmp_path):
    """store[k] = v and store[k] called a user serializer's failing dumps/loads twice (the fast
    path retried through the checked path, which is the same call for a user serializer): a
    serializer that logs, meters or does costly work saw every failure twice."""
    ser = CountingSerializer()
    with Store(str(tmp_path / "s"), ser) as s:
        with pytest.raises(SerializationError, match="cannot encode"):
            s["k"] = 1
        assert ser.calls == 1
        s.db.put(b"k", b"data")
        ser.calls = 0
        with pytest.raises(DeserializationError, match="cannot decode"):
            s["k"]
        assert ser.calls == 1


@pytest.mark.parametrize(
    "serializer",
    ["PICKLE", "yaml", pytest.param(lambda: PickleSerializer(protocol=99), id="protocol-99")],
)
def test_a_bad_serializer_option_is_a_configuration_error(tmp_path, serializer):
    """An unknown serializer name or pickle protocol raised a bare ValueError, outside
    kv_backend.errors, while every other bad option (key_type, sync, max_file_size...) raises
    ConfigurationError (still a ValueError); no store is created."""
    with pytest.raises(ConfigurationError):
        Store(str(tmp_path / "s"), serializer() if callable(serializer) else serializer)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("front", ["dbm", "shelve"])
@pytest.mark.parametrize("view", ["items", "values"])
def test_dbm_and_shelf_views_skip_a_key_another_process_deletes_mid_walk(tmp_path, front, view):
    """Many processes may use one dbm database or shelf at once, and Store's views already
    skip a key deleted during the walk; the dbm and shelf items()/values() raised KeyError
    instead, in the middle of the caller's loop (here the other process is another DB)."""
    import kv_backend.dbm
    import kv_backend.shelve
    from kv_backend import DB

    path = str(tmp_path / "d")
    if front == "dbm":
        m = kv_backend.dbm.open(path, "c")
        keys = [b"k0", b"k1", b"k2", b"k3"]
        for k in keys:
            m[k] = k
    else:
        m = kv_backend.shelve.open(path)
        keys = ["k0", "k1", "k2", "k3"]
        for k in keys:
            m[k] = k
    with m, DB(path) as other:
        seen = []
        for entry in getattr(m, view)():
            other.delete(b"k2")
            seen.append(entry)
        kept = [k for k in keys if k not in ("k2", b"k2")]
        assert seen == ([(k, k) for k in kept] if view == "items" else kept)
        assert (keys[0], keys[0]) in m.items() and keys[0] in m.values()
        assert (keys[2], keys[2]) not in m.items() and keys[2] not in m.values()
        assert len(getattr(m, view)()) == 3


def test_a_write_through_a_store_batch_after_its_block_raises(tmp_path):
    """As for DB.batch(): a b.set() after the block was silently lost; it now raises."""
    with Store(str(tmp_path / "s")) as s:
        with s.batch() as b:
            b.set("a", 1)
        with pytest.raises(DatabaseClosedError, match="would be lost"):
            b.set("b", 2)
        with pytest.raises(DatabaseClosedError):
            b["c"] = 3
        with pytest.raises(DatabaseClosedError):
            b.delete("a")
        with pytest.raises(ZeroDivisionError), s.batch() as b2:
            b2.set("d", 4)
            raise ZeroDivisionError
        with pytest.raises(DatabaseClosedError):
            b2.set("d", 4)
        assert dict(s) == {"a": 1}


def test_reversed_store_gives_the_keys_backwards_like_reversed_dict(tmp_path):
    """reversed(d) works on a dict (Python 3.8+) and on Store's views, but reversed(store)
    raised "'Store' object is not reversible"; it now yields the keys from the largest down."""
    with Store(str(tmp_path / "s")) as s:
        assert list(reversed(s)) == []
        s.update({"b": 2, "a": 1, "c": 3})
        assert list(reversed(s)) == ["c", "b", "a"] == list(reversed(s.keys()))
    with Store(str(tmp_path / "b"), key_type=bytes) as s:
        s[b"\xff"] = 1
        s[b"a"] = 2
        assert list(reversed(s)) == [b"\xff", b"a"]


def test_dbm_clear_and_popitem_are_not_cut_short_by_another_process(tmp_path):
    """Database.clear() was the mixin's loop of popitem(), each reading its key after listing
    it: a key another process deleted in between raised KeyError, which ended clear() quietly
    with keys left behind (and made popitem() report a non-empty database as empty). clear()
    is now one atomic batch, and popitem() retries with the next key, as Store's does."""
    import kv_backend.dbm
    from kv_backend import DB

    path = str(tmp_path / "d")
    with kv_backend.dbm.open(path, "c") as m, DB(path) as other:
        real_get = m._get

        def get_racing_another_process(key, default):
            other.delete(key)  # another process deletes the key just listed
            return real_get(key, default)

        for k in (b"a", b"b", b"c"):
            m[k] = k
        m._get = get_racing_another_process
        assert m.popitem() == (b"a", b"a")  # taken by this process's atomic pop
        other.delete(b"b")
        assert m.popitem() == (b"c", b"c")  # b is gone: the next key
        with pytest.raises(KeyError):
            m.popitem()
        for k in (b"a", b"b", b"c"):
            m[k] = k
        m.clear()
        assert len(m) == 0 and len(other) == 0


def test_shelf_clear_does_not_unpickle_the_values(tmp_path):
    """Shelf.clear() came from the mixin, which reads (unpickles) every value as it pops it:
    one value that cannot be unpickled (written by another program) made clear() fail.
    It now removes every entry at once, and clears the writeback cache."""
    import kv_backend.shelve

    path = str(tmp_path / "sh")
    with kv_backend.shelve.open(path, writeback=True) as shelf:
        shelf["a"] = [1]
        shelf.dict.db.put(b"foreign", b"not a pickle")
        shelf.clear()
        assert len(shelf) == 0 and shelf.cache == {}
    with kv_backend.shelve.open(path) as shelf:
        assert dict(shelf) == {}


@pytest.mark.parametrize(("protocol", "error"), [(99, ValueError), ("2", TypeError), (2.0, TypeError)])
def test_shelve_refuses_a_bad_pickle_protocol_at_open(tmp_path, protocol, error):
    """shelve.open(path, protocol=99) opened, then every write raised PickleSerializationError
    (a TypeError, where the stdlib's shelf raises ValueError) blaming the value ("cannot pickle
    a value of type int"). A bad protocol is now refused at open, with the stdlib's exception
    class (ConfigurationError is a ValueError), before any directory is created."""
    import kv_backend.shelve

    with pytest.raises(error, match="protocol"):
        kv_backend.shelve.open(str(tmp_path / "sh"), protocol=protocol)
    assert not (tmp_path / "sh").exists()
    for ok in (None, 0, 5, -1):
        with kv_backend.shelve.open(str(tmp_path / f"ok{ok}"), protocol=ok) as shelf:
            shelf["k"] = [1]
            assert shelf["k"] == [1]


@pytest.mark.parametrize("key", ["", "x" * 70_000])
def test_get_and_pop_with_a_default_treat_an_unstorable_key_as_absent(tmp_path, key):
    """As ``in`` does: a key the store cannot hold is absent, so get/pop with a default give it back."""
    with Store(str(tmp_path / "s")) as s:
        s["a"] = 1
        assert key not in s
        assert s.get(key) is None and s.get(key, 7) == 7
        assert s.pop(key, 7) == 7
        with pytest.raises(KeyError):
            s.pop(key)  # no default: absent, as for del (tests/test_mapping_leftovers18.py)
        with pytest.raises(KeyTooLargeError):
            s[key] = 1  # a write says why
        assert dict(s) == {"a": 1}


def test_incr_on_a_value_that_is_not_a_number_raises_the_projects_type_error(tmp_path):
    from kv_backend.errors import InvalidValueError

    with Store(str(tmp_path / "s")) as s:
        s["n"] = "5"
        with pytest.raises(InvalidValueError, match="needs a number") as caught:
            s.incr("n")
        assert isinstance(caught.value, TypeError)  # as before, for callers catching TypeError
        with pytest.raises(InvalidValueError, match="delta"):
            s.incr("m", "1")
        assert s["n"] == "5" and "m" not in s
