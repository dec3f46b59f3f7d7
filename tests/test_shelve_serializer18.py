"""kv_backend.shelve takes Python 3.15's ``serializer=``/``deserializer=``, raises ``ShelveError``
and has ``Shelf.reorganize()`` on every Python, so code written for the new shelve runs on it."""

from __future__ import annotations

import dbm.dumb
import json
import os
import pickle
import shelve
from typing import Any

import pytest

import kv_backend.shelve as kshelve
from kv_backend.errors import ConfigurationError, InvalidValueError, KVError


def _dumps(obj: Any, protocol: int) -> bytes:
    return json.dumps(obj).encode()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "shelf")


def test_open_takes_a_serializer_and_a_deserializer(path):
    """``shelve.open(p, serializer=f, deserializer=g)`` raised TypeError: values are now what they make."""
    calls: list[int] = []

    def dumps(obj: Any, protocol: int) -> str:
        calls.append(protocol)
        return json.dumps(obj)  # a str is stored as UTF-8, as dbm stores a str value

    with kshelve.open(path, protocol=2, serializer=dumps, deserializer=json.loads) as sh:
        sh["a"] = {"x": [1, 2]}
        assert calls == [2]  # given the shelf's protocol, called once
        assert sh.dict[b"a"] == b'{"x": [1, 2]}'
        assert sh["a"] == {"x": [1, 2]} and sh.get("a") == {"x": [1, 2]}
        sh.update({"b": 2}, c=3)
        assert sh.setdefault("d", [4]) == [4] and sh.setdefault("d", 0) == [4]
        assert dict(sh.items()) == {"a": {"x": [1, 2]}, "b": 2, "c": 3, "d": [4]}
        assert sorted(sh.values(), key=str) == sorted([{"x": [1, 2]}, 2, 3, [4]], key=str)
        assert sh.pop("b") == 2 and sh.popitem() == ("a", {"x": [1, 2]})
        assert sh.serializer is dumps and sh.deserializer is json.loads
    with kshelve.open(path, "r") as plain, pytest.raises(pickle.UnpicklingError):
        plain["c"]  # without them, values are pickles: this one is not
    with kshelve.open(path) as plain:
        assert plain.serializer is pickle.dumps and plain.deserializer is pickle.loads


def test_writeback_uses_the_serializer_and_writes_back_only_changed_entries(path):
    with kshelve.open(path, serializer=_dumps, deserializer=json.loads) as sh:
        sh["read"], sh["changed"] = [1], [1]
    with kshelve.open(path, writeback=True, serializer=_dumps, deserializer=json.loads) as sh:
        assert sh["read"] == [1]
        sh["changed"].append(2)
        sh.dict[b"read"] = b"[9]"  # another writer, meanwhile: an entry only read is not written back
        sh.sync()
        assert sh.dict[b"changed"] == b"[1, 2]" and sh.dict[b"read"] == b"[9]"


def test_only_one_of_them_raises_shelve_error_and_creates_nothing(path):
    for kwargs in ({"serializer": _dumps}, {"deserializer": json.loads}):
        with pytest.raises(kshelve.ShelveError) as info:
            kshelve.open(path, **kwargs)
        assert "serializer" in str(info.value) and "deserializer" in str(info.value)
        assert isinstance(info.value, ConfigurationError) and isinstance(info.value, KVError)
        if hasattr(shelve, "ShelveError"):  # Python 3.15: the stdlib's class itself
            assert kshelve.ShelveError is shelve.ShelveError
        assert not os.path.exists(path)
    with pytest.raises(kshelve.ShelveError):
        kshelve.open(path, serializer="json", deserializer="json")  # not callables
    assert "ShelveError" in kshelve.__all__


def test_their_errors_reach_the_caller_unchanged_and_nothing_is_stored(path):
    class Refused(Exception):
        pass

    def refuse(obj: Any, protocol: int) -> bytes:
        raise Refused("no")

    with kshelve.open(path, serializer=refuse, deserializer=json.loads) as sh:
        with pytest.raises(Refused):
            sh["a"] = 1
        with pytest.raises(Refused):
            sh.update(a=1)
        assert "a" not in sh and len(sh) == 0
        sh.dict[b"bad"] = b"{not json"
        with pytest.raises(json.JSONDecodeError):
            sh["bad"]
        with pytest.raises(json.JSONDecodeError):
            sh.pop("bad")
        assert b"bad" in sh.dict  # a value that cannot be read stays stored
    with kshelve.open(path, serializer=lambda o, p: 5, deserializer=json.loads) as sh:
        with pytest.raises(InvalidValueError, match="serializer must return bytes"):
            sh["a"] = 1
        assert len(sh) == 1  # only "bad"


def test_reorganize_writes_back_the_cache_and_reclaims_space(path):
    with kshelve.open(path, writeback=True) as sh:
        for i in range(20):
            sh["k"] = list(range(i))
        sh["k"].append("cached")
        dead = sh.dict.db.stats()["dead_bytes"]
        assert sh.reorganize() is None
        assert sh.dict.db.stats()["dead_bytes"] < dead / 4  # the merge ran
        assert pickle.loads(sh.dict[b"k"])[-1] == "cached"
    with kshelve.open(path, "r") as sh, pytest.raises(kshelve._kv_dbm.ReadOnlyDatabaseError):
        sh.reorganize()
    sh = kshelve.open(path)
    sh.close()
    with pytest.raises(ValueError, match="closed shelf"):
        sh.reorganize()


def test_the_shelf_classes_take_them_too(tmp_path):
    d: dict[bytes, bytes] = {}
    sh = kshelve.Shelf(d, serializer=_dumps, deserializer=json.loads)
    assert isinstance(sh, shelve.Shelf)
    sh["k"] = [1]
    assert d == {b"k": b"[1]"} and sh["k"] == [1]
    sh.reorganize()  # a dict has none: only the write-back
    with pytest.raises(kshelve.ShelveError):
        kshelve.Shelf({}, serializer=_dumps)
    plain = kshelve.Shelf(d)  # pickle by default
    plain["p"] = 1
    assert pickle.loads(d[b"p"]) == 1

    name = str(tmp_path / "dumb")
    with pytest.raises(kshelve.ShelveError):
        kshelve.DbfilenameShelf(name, deserializer=json.loads)
    assert os.listdir(tmp_path) == []  # refused before the database was created
    with kshelve.DbfilenameShelf(name, serializer=_dumps, deserializer=json.loads) as fsh:
        assert isinstance(fsh, shelve.DbfilenameShelf)
        fsh["k"] = {"a": 1}
        assert fsh["k"] == {"a": 1}
    with dbm.open(name) as raw:
        assert raw[b"k"] == b'{"a": 1}'


def test_bsddb_shelf_reads_its_entries_with_the_deserializer():
    class Cursor(dict):  # the bsddb interface the class expects (no such module in Python 3)
        def first(self):
            return next(iter(self.items()))

        last = previous = first

        def set_location(self, key):
            return key, self[key]

        def __next__(self):
            return self.first()

    db = Cursor({b"k": b"[1, 2]"})
    sh = kshelve.BsdDbShelf(db, serializer=_dumps, deserializer=json.loads)
    assert isinstance(sh, shelve.BsdDbShelf)
    for entry in (sh.first(), sh.last(), sh.previous(), sh.next(), sh.set_location(b"k")):
        assert entry == ("k", [1, 2])


def test_a_dumb_dbm_file_is_still_refused_by_name(tmp_path):
    """Unchanged: kv_backend.shelve opens only its own store directories."""
    name = str(tmp_path / "dumb")
    dbm.dumb.open(name, "c").close()
    with pytest.raises(kshelve._kv_dbm.error):
        kshelve.open(name + ".dat", serializer=_dumps, deserializer=json.loads)
