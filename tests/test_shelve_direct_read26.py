"""shelf[key] reads straight from the engine (the point read Store[key] inlines, one Python frame)
when no cache can serve it, and otherwise reads as before: the writeback cache, other key encodings,
a closed shelf, damage, undecodable values and other processes' writes give what they gave."""

from __future__ import annotations

import pickle
import threading

import pytest
from helpers import python_calls, run_python
from test_store_fast_read18 import _record_offset

import kv_backend.shelve as kshelve
from kv_backend import Store
from kv_backend import dbm as kdbm
from kv_backend.serializers import PickleDeserializationError


def test_a_read_of_a_plain_shelf_calls_no_other_python_function(tmp_path):
    with kshelve.open(str(tmp_path / "s")) as shelf:
        shelf["k"] = {"a": 1}
        got = []
        assert python_calls(lambda: got.append(shelf["k"])) == ["<lambda>", "__getitem__"]
        assert got == [{"a": 1}]
        with Store(str(tmp_path / "t")) as store:  # (the same for a Store)
            store["k"] = [1]
            assert python_calls(lambda: got.append(store["k"])) == ["<lambda>", "__getitem__"]


def test_store_and_shelf_read_through_code_objects_of_their_own(tmp_path):
    """The interpreter specializes a code object for the types it meets: one shared by Stores and shelves
    used in turn would be respecialized back and forth."""
    assert Store.__getitem__.__code__ is not kshelve.KVShelf.__getitem__.__code__
    with kshelve.open(str(tmp_path / "s")) as shelf, Store(str(tmp_path / "t")) as store:
        for i in range(100):
            shelf[f"k{i}"] = store[f"k{i}"] = i
        assert all(shelf[f"k{i}"] == store[f"k{i}"] == i for i in range(100))


def test_writeback_turned_on_after_open_serves_its_cache(tmp_path):
    with kshelve.open(str(tmp_path / "s")) as shelf:
        shelf["k"] = [1]
        shelf.writeback = True
        first = shelf["k"]
        first.append(2)
        assert shelf["k"] is first  # from the cache, as the stdlib's shelf serves it
        shelf.sync()  # (writes it back and empties the cache)
        shelf.writeback = False
        assert shelf["k"] == [1, 2] and shelf["k"] is not shelf["k"]  # read from the engine again


def test_a_cache_with_entries_is_served_with_writeback_off(tmp_path):
    """The stdlib's shelf reads its cache first whatever writeback is; so does this one."""
    with kshelve.open(str(tmp_path / "s"), writeback=True) as shelf:
        shelf["k"] = cached = [1]
        shelf.writeback = False
        assert shelf["k"] is cached


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16-le", "UTF8"])
def test_keys_of_another_encoding(tmp_path, encoding):
    shelf = kshelve.KVShelf(str(tmp_path / "s"), keyencoding=encoding)
    try:
        shelf["clé"] = 1
        assert shelf["clé"] == 1
        assert shelf.dict["clé".encode(encoding)] == pickle.dumps(1, shelf._protocol)
        with pytest.raises(KeyError):
            shelf["cle"]
        shelf.keyencoding = "utf-8"  # a changed encoding is the one read with
        with pytest.raises(KeyError) if encoding != "UTF8" else _no_error():
            shelf["clé"]
    finally:
        shelf.close()


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_a_closed_shelf_raises_value_error(tmp_path):
    shelf = kshelve.open(str(tmp_path / "s"))
    shelf["k"] = 1
    shelf.close()
    for key in ("k", "absent", "\udcff"):
        with pytest.raises(ValueError, match="closed shelf"):
            shelf[key]


def test_a_shelf_closed_by_another_thread_mid_read_raises_value_error(tmp_path):
    shelf = kshelve.open(str(tmp_path / "s"))
    shelf["k"] = 1
    db = shelf.db
    started, go = threading.Event(), threading.Event()

    class Closing:
        """The shelf's engine as a reader that another thread closes just after it took the view."""

        def __getattr__(self, name: str):
            value = getattr(db, name)
            if name == "_view":
                started.set()
                go.wait(10)
            return value

    object.__setattr__(shelf, "db", Closing())
    results: list[object] = []

    def read() -> None:
        try:
            results.append(shelf["k"])
        except Exception as exc:
            results.append(exc)

    t = threading.Thread(target=read)
    t.start()
    assert started.wait(10)
    shelf.close()
    go.set()
    t.join(10)
    assert len(results) == 1
    assert isinstance(results[0], ValueError) and "closed shelf" in str(results[0])


def test_a_damaged_value_raises_the_dbm_error_and_neighbours_read(tmp_path):
    path = str(tmp_path / "s")
    with kshelve.open(path) as shelf:
        shelf["a"] = "value-of-a"
        shelf["b"] = "value-of-b"
    f, pos = _record_offset(path, b"value-of-a")
    with open(f, "r+b") as fh:
        fh.seek(pos)
        fh.write(b"V")
    with kshelve.open(path) as shelf:
        with pytest.raises(kdbm.error):
            shelf["a"]
        assert shelf["b"] == "value-of-b"


def test_a_key_directory_entry_pointing_at_another_key_raises(tmp_path):
    with kshelve.open(str(tmp_path / "s")) as shelf:
        shelf["a"] = "A"
        shelf["b"] = "B"
        kd = shelf.dict.db._view[0]
        kd[b"a"] = kd[b"b"]
        with pytest.raises(kdbm.error):
            shelf["a"]
        assert shelf["b"] == "B"


def test_undecodable_values(tmp_path):
    path = str(tmp_path / "s")
    with Store(path, serializer="raw") as raw:
        raw["a"] = b"not a pickle"
    with kshelve.open(path) as shelf, pytest.raises(PickleDeserializationError, match="readable pickle"):
        shelf["a"]
    calls = []

    def deserializer(data: bytes) -> object:
        calls.append(data)
        raise LookupError("mine")

    with kshelve.open(path, serializer=lambda v, p: b"x", deserializer=deserializer) as shelf:
        with pytest.raises(LookupError, match="mine"):  # a caller's deserializer's error, unchanged
            shelf["a"]
        assert calls == [b"not a pickle"]  # called once
        shelf.deserializer = lambda data: ("read", data)  # a deserializer set after open is the one used
        assert shelf["a"] == ("read", b"not a pickle")


def test_a_subclass_reads_through_the_shelf(tmp_path):
    class Upper(kshelve.KVShelf):
        def __getitem__(self, key: str) -> object:
            return str(super().__getitem__(key)).upper()

    with Upper(str(tmp_path / "s")) as shelf:
        shelf["k"] = "value"
        assert shelf["k"] == "VALUE"


def test_another_process_writes_and_merges_between_reads(tmp_path):
    path = str(tmp_path / "s")
    with kshelve.open(path) as shelf:
        for i in range(200):
            shelf[f"k{i}"] = i
        assert shelf["k5"] == 5
        run_python(
            """
            import sys
            import kv_backend.shelve as kshelve
            with kshelve.open(sys.argv[1]) as shelf:
                for i in range(200):
                    shelf[f"k{i}"] = -i
                for i in range(0, 200, 2):
                    del shelf[f"k{i}"]
                shelf.reorganize()
            """,
            path,
        )
        for i in range(200):
            if i % 2:
                assert shelf[f"k{i}"] == -i
            else:
                with pytest.raises(KeyError):
                    shelf[f"k{i}"]
