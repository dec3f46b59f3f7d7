"""kv_backend.shelve: stdlib shelve semantics flag by flag, writeback, protocol, closing and bad input."""

from __future__ import annotations

import dbm as std_dbm
import gc
import pickle
import shelve
import shutil
import tempfile
import threading

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend.errors import KVError
from kv_backend.serializers import PickleDeserializationError, PickleSerializationError


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "shelf")


def test_is_a_stdlib_shelf(path):
    with kshelve.open(path) as shelf:
        assert isinstance(shelf, shelve.Shelf)
        assert isinstance(shelf, shelve.DbfilenameShelf)
        assert isinstance(shelf.dict, kdbm.Database)


def test_basic_mapping(path):
    with kshelve.open(path) as shelf:
        shelf["a"] = [1, 2]
        shelf["b"] = {"x": (1, "y")}
        shelf["ü"] = None
        assert len(shelf) == 3
        assert shelf["a"] == [1, 2]
        assert shelf.get("b") == {"x": (1, "y")}
        assert shelf.get("missing", 7) == 7
        assert "ü" in shelf and "missing" not in shelf
        assert sorted(shelf) == ["a", "b", "ü"]
        assert sorted(shelf.keys()) == ["a", "b", "ü"]
        assert dict(shelf.items())["a"] == [1, 2]
        del shelf["a"]
        with pytest.raises(KeyError):
            shelf["a"]
        with pytest.raises(KeyError):
            del shelf["a"]
        assert shelf.pop("b") == {"x": (1, "y")}
        assert shelf.setdefault("n", 5) == 5
    with kshelve.open(path, "r") as shelf:
        assert dict(shelf) == {"ü": None, "n": 5}


# ------------------------------------------------------------ flags


def test_flag_c_creates_and_reopens(path):
    with kshelve.open(path, "c") as shelf:
        shelf["k"] = 1
    with kshelve.open(path, "c") as shelf:
        assert shelf["k"] == 1


def test_flag_r_missing_is_an_error(path):
    with pytest.raises(kdbm.error) as info:
        kshelve.open(path, "r")
    assert isinstance(info.value, OSError)
    with pytest.raises(std_dbm.error):  # code written for the stdlib's dbm.error tuple catches it too
        kshelve.open(path, "r")


def test_flag_r_refuses_writes_and_keeps_data(path):
    with kshelve.open(path) as shelf:
        shelf["k"] = [1]
    with kshelve.open(path, "r") as shelf:
        assert shelf["k"] == [1]
        with pytest.raises(kdbm.error):
            shelf["k"] = 2
        with pytest.raises(kdbm.error):
            del shelf["k"]
        with pytest.raises(kdbm.error):
            shelf.clear()
        assert shelf["k"] == [1]
    with kshelve.open(path, "r") as shelf:
        assert dict(shelf) == {"k": [1]}


def test_flag_r_with_writeback_closes_cleanly(path):
    with kshelve.open(path) as shelf:
        shelf["k"] = [1]
    with kshelve.open(path, "r", writeback=True) as shelf:
        shelf["k"].append(2)  # lands in the cache only; a read-only shelf cannot write it back
    with kshelve.open(path, "r") as shelf:
        assert shelf["k"] == [1]


def test_flag_w_needs_an_existing_shelf(path):
    with pytest.raises(kdbm.error, match="'c' or 'n'"):
        kshelve.open(path, "w")
    with kshelve.open(path, "c") as shelf:
        shelf["k"] = 1
    with kshelve.open(path, "w") as shelf:
        shelf["k"] = 2
    with kshelve.open(path, "r") as shelf:
        assert shelf["k"] == 2


def test_flag_n_always_starts_empty(path):
    with kshelve.open(path, "n") as shelf:
        shelf["k"] = 1
    with kshelve.open(path, "n") as shelf:
        assert len(shelf) == 0
        shelf["j"] = 2
    with kshelve.open(path) as shelf:
        assert dict(shelf) == {"j": 2}


def test_bad_flag(path):
    with pytest.raises(ValueError):
        kshelve.open(path, "x")


# ------------------------------------------------------------ writeback


def test_without_writeback_mutations_are_lost(path):
    with kshelve.open(path) as shelf:
        shelf["list"] = [1]
        shelf["list"].append(2)
        assert shelf["list"] == [1]
        assert shelf.cache == {}


def test_writeback_caches_and_writes_back_on_sync_and_close(path):
    with kshelve.open(path, writeback=True) as shelf:
        shelf["list"] = [1]
        assert shelf.cache == {"list": [1]}
        shelf["list"].append(2)
        assert shelf["list"] is shelf["list"]  # served from the cache
        with kshelve.open(path, "r") as other:
            assert other["list"] == [1]  # not written back yet
        shelf.sync()
        assert shelf.cache == {}
        with kshelve.open(path, "r") as other:
            assert other["list"] == [1, 2]
        shelf["list"].append(3)  # read again: cached again
        assert "list" in shelf.cache
    with kshelve.open(path, "r") as shelf:
        assert shelf["list"] == [1, 2, 3]


def test_writeback_delete_drops_cache_entry(path):
    with kshelve.open(path, writeback=True) as shelf:
        shelf["k"] = [1]
        del shelf["k"]
        assert "k" not in shelf.cache
        assert "k" not in shelf
    with kshelve.open(path, "r") as shelf:
        assert "k" not in shelf


def test_writeback_sync_is_all_or_nothing(path):
    with kshelve.open(path, writeback=True) as shelf:
        shelf["a"] = [1]
        shelf["b"] = [2]
        shelf.sync()
        shelf["a"].append(10)
        shelf["b"].append(threading.Lock())  # cannot be pickled any more
        with pytest.raises(PickleSerializationError):
            shelf.sync()
        with kshelve.open(path, "r") as other:
            assert other["a"] == [1] and other["b"] == [2]  # nothing half-written
        shelf.cache["b"].pop()
        shelf.sync()
    with kshelve.open(path, "r") as shelf:
        assert shelf["a"] == [1, 10] and shelf["b"] == [2]


def test_del_of_a_writeback_shelf_writes_back(path):
    shelf = kshelve.open(path, writeback=True)
    shelf["k"] = []
    shelf["k"].append("gc")
    del shelf
    gc.collect()
    with kshelve.open(path, "r") as again:
        assert again["k"] == ["gc"]


# ------------------------------------------------------------ protocol


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_protocol_is_used(path, protocol):
    with kshelve.open(path, protocol=protocol) as shelf:
        shelf["k"] = {"v": [1, 2]}
        raw = shelf.dict[b"k"]
    assert raw == pickle.dumps({"v": [1, 2]}, protocol)
    with kshelve.open(path, "r") as shelf:
        assert shelf["k"] == {"v": [1, 2]}


def test_default_protocol_matches_stdlib(path):
    with kshelve.open(path) as shelf:
        shelf["k"] = 1
        assert shelf._protocol == pickle.DEFAULT_PROTOCOL
        assert shelf.dict[b"k"] == pickle.dumps(1, pickle.DEFAULT_PROTOCOL)


# ------------------------------------------------------------ closing


def test_use_after_close_raises_value_error(path):
    shelf = kshelve.open(path)
    shelf["k"] = 1
    shelf.close()
    shelf.close()  # idempotent
    for op in (
        lambda: shelf["k"],
        lambda: shelf.__setitem__("k", 2),
        lambda: shelf.__delitem__("k"),
        lambda: len(shelf),
        lambda: list(shelf),
        lambda: "k" in shelf,
        lambda: shelf.get("k"),
    ):
        with pytest.raises(ValueError, match="closed shelf"):
            op()


def test_context_manager_closes(path):
    with kshelve.open(path) as shelf:
        shelf["k"] = 1
        db = shelf.dict.db
    assert db.closed
    with pytest.raises(ValueError):
        shelf["k"]


# ------------------------------------------------------------ bad input


def test_non_str_keys_are_type_errors(path):
    with kshelve.open(path) as shelf:
        for bad in (1, b"bytes", None):
            with pytest.raises(TypeError, match="must be str"):
                shelf[bad] = 1
            with pytest.raises(TypeError):
                shelf[bad]
            assert bad not in shelf
        assert len(shelf) == 0


def test_unpicklable_value_stores_nothing(path):
    with kshelve.open(path, writeback=True) as shelf:
        shelf["k"] = "old"
        shelf.sync()
        with pytest.raises(PickleSerializationError) as info:
            shelf["k"] = threading.Lock()
        assert isinstance(info.value, pickle.PicklingError)
        assert isinstance(info.value, TypeError)
        assert isinstance(info.value, KVError)
        assert shelf.cache == {}  # not even cached
        assert shelf["k"] == "old"
    with kshelve.open(path, "r") as shelf:
        assert shelf["k"] == "old"


def test_foreign_value_is_an_unpickling_error(path):
    with kdbm.open(path, "c") as db:
        db["k"] = b"not a pickle"
    with kshelve.open(path) as shelf, pytest.raises(pickle.UnpicklingError) as info:
        shelf["k"]
    assert isinstance(info.value, PickleDeserializationError)


def test_opening_a_stdlib_shelf_is_refused_without_touching_it(tmp_path):
    std_path = str(tmp_path / "stdlib")
    with shelve.open(std_path) as s:
        s["k"] = 1
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(kdbm.error, match="dbm"):
        kshelve.open(std_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with shelve.open(std_path, "r") as s:
        assert s["k"] == 1


def test_stdlib_shelf_class_over_kv_dbm(path):
    with shelve.Shelf(kdbm.open(path, "c"), writeback=True) as shelf:
        shelf["k"] = [1]
        shelf["k"].append(2)
    with kshelve.open(path, "r") as shelf:
        assert shelf["k"] == [1, 2]


# ------------------------------------------------------------ differential test against the stdlib

ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from("abcde"), st.integers(0, 9)),
        st.tuples(st.just("append"), st.sampled_from("abcde"), st.integers(0, 9)),
        st.tuples(st.just("del"), st.sampled_from("abcde"), st.none()),
        st.tuples(st.just("get"), st.sampled_from("abcde"), st.none()),
        st.tuples(st.just("sync"), st.none(), st.none()),
        st.tuples(st.just("reopen"), st.none(), st.none()),
    ),
    max_size=25,
)


def _run(opener, program, writeback):
    shelf = opener("c", writeback)
    trace = []
    try:
        for op, key, arg in program:
            if op == "set":
                shelf[key] = [arg]
            elif op == "append":
                try:
                    shelf[key].append(arg)
                except KeyError:
                    trace.append("missing")
            elif op == "del":
                try:
                    del shelf[key]
                except KeyError:
                    trace.append("missing")
            elif op == "get":
                trace.append(shelf.get(key))
            elif op == "sync":
                shelf.sync()
            else:
                shelf.close()
                shelf = opener("w", writeback)
            trace.append(sorted(shelf.keys()))
        shelf.close()
        shelf = opener("r", False)
        trace.append(dict(shelf))
    finally:
        shelf.close()
    return trace


@settings(max_examples=25, deadline=None)
@given(program=ops, writeback=st.booleans())
def test_same_results_as_stdlib_shelve(program, writeback):
    base = tempfile.mkdtemp(prefix="kvb-shelve-diff-")
    try:
        ours = _run(lambda f, wb: kshelve.open(base + "/kv", f, writeback=wb), program, writeback)
        theirs = _run(lambda f, wb: shelve.open(base + "/std", f, writeback=wb), program, writeback)  # noqa: SIM115
        assert ours == theirs
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_update_is_one_atomic_batch(path):
    with kshelve.open(path, writeback=True) as shelf:
        shelf["keep"] = 1
        with pytest.raises(PickleSerializationError):
            shelf.update({"a": 1, "b": threading.Lock()})
        with pytest.raises(TypeError):
            shelf.update({"c": 1, 5: 2})
        assert "a" not in shelf and "c" not in shelf
        shelf.update({"a": [1]}, b=[2])
        shelf.update([("c", 3)])
        shelf.update()
        assert shelf.cache["a"] == [1]
        shelf["a"].append(10)
    with kshelve.open(path, "r") as shelf:
        assert dict(shelf) == {"keep": 1, "a": [1, 10], "b": [2], "c": 3}
    shelf = kshelve.open(path)
    shelf.close()
    with pytest.raises(ValueError):
        shelf.update({"x": 1})


def test_migrating_a_stdlib_shelf(tmp_path):
    with shelve.open(str(tmp_path / "old")) as old:
        old.update({"a": [1], "b": {"c": 2}})
    with shelve.open(str(tmp_path / "old"), "r") as old, kshelve.open(str(tmp_path / "new"), "n") as new:
        new.update(old)
    with kshelve.open(str(tmp_path / "new"), "r") as new:
        assert dict(new) == {"a": [1], "b": {"c": 2}}


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_failed_open_leaves_nothing_for_del_to_trip_on(path):
    with pytest.raises(kdbm.error):
        kshelve.open(path, "r")
    with pytest.raises(ValueError):
        kshelve.open(path, "z")
    gc.collect()


def test_a_shelf_is_a_store_with_str_keys_and_pickles(path):
    from kv_backend import Store

    with kshelve.open(path) as shelf:
        shelf["from_shelf"] = {"a": (1, 2)}
    with Store(path) as store:
        assert store["from_shelf"] == {"a": (1, 2)}
        store["from_store"] = [3]
    with kshelve.open(path, "r") as shelf:
        assert shelf["from_store"] == [3]
