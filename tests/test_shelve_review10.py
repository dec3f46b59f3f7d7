"""kv_backend.shelve review 10: pop, popitem and setdefault under several processes."""

from __future__ import annotations

import json
import os
import pickle

import pytest
from helpers import exit_code, fork_child

import kv_backend.shelve as kshelve
from kv_backend import DB
from kv_backend.serializers import PickleDeserializationError


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "shelf")


def _race_after_reads(monkeypatch, path, action):
    """Make every read of the shelf be followed by ``action`` on another handle, as if another
    process acted between the mixin's read and its write."""
    other = DB(path)
    read = kshelve.KVShelf.__getitem__

    def racing(self, key):
        try:
            return read(self, key)
        finally:
            action(other, key.encode())

    monkeypatch.setattr(kshelve.KVShelf, "__getitem__", racing)
    return other


def test_pop_with_a_default_never_raises_when_another_process_took_the_key(path, monkeypatch):
    """The mixin's pop() read the key, then deleted it: if another process removed it in between,
    the delete raised KeyError although a default was given. pop() is now one atomic engine
    operation."""
    with kshelve.open(path) as sh:
        sh["k"] = [1]
        other = _race_after_reads(monkeypatch, path, lambda db, k: db.delete(k))
        assert sh.pop("k", None) == [1]
        assert sh.pop("k", None) is None
        with pytest.raises(KeyError):
            sh.pop("k")
        other.close()


def test_popitem_of_a_non_empty_shelf_never_raises_when_another_process_took_the_key(path, monkeypatch):
    """The mixin's popitem() raised KeyError (meaning "empty") when another process removed the
    key it had picked; it now takes the next key, as Store's and the dbm's popitem do."""
    with kshelve.open(path) as sh:
        sh.update({"a": 1, "b": 2})
        other = _race_after_reads(monkeypatch, path, lambda db, k: db.delete(k))
        assert sh.popitem() == ("a", 1)
        other.delete(b"b")
        with pytest.raises(KeyError):
            sh.popitem()
        other.close()


def test_setdefault_returns_what_is_stored_when_another_process_stored_first(path, monkeypatch):
    """The mixin's setdefault() read, then stored its default: a value another process stored in
    between was overwritten, and each process returned its own object. The default is now stored
    only if the key is still absent; otherwise the stored value is returned."""
    with kshelve.open(path) as sh:
        other = _race_after_reads(
            monkeypatch, path, lambda db, k: db.put_if_absent(k, pickle.dumps(["theirs"]))
        )
        assert sh.setdefault("k", ["mine"]) == ["theirs"]
        monkeypatch.undo()
        assert sh["k"] == ["theirs"]
        assert sh.setdefault("new", ["mine"]) == ["mine"]
        other.close()


def test_pop_popitem_setdefault_keep_the_shelf_semantics(path):
    """writeback: pop and popitem return the cached object (mutations included) and drop it; a
    value that is not a pickle raises and stays stored; "r" shelves refuse to remove a key, but a
    missing one still gives the default; closed shelves raise ValueError."""
    with kshelve.open(path, writeback=True) as sh:
        sh["a"] = []
        sh["a"].append(1)
        assert sh.pop("a") == [1]
        assert "a" not in sh.cache
        sh["b"] = []
        sh["b"].append(2)
        assert sh.popitem() == ("b", [2])
        assert sh.setdefault("c", []) == []
        sh["c"].append(3)
        sh.dict.db.put(b"0junk", b"\x80 not a pickle")
    with kshelve.open(path) as sh:
        assert sh["c"] == [3]
        with pytest.raises(PickleDeserializationError):
            sh.pop("0junk")
        with pytest.raises(PickleDeserializationError):
            sh.popitem()  # "0junk" is the smallest key
    with kshelve.open(path, "r") as ro:
        assert ro.pop("missing", 5) == 5
        with pytest.raises(kshelve._kv_dbm.error):
            ro.pop("c")
        with pytest.raises(kshelve._kv_dbm.error):
            ro.setdefault("new", 1)
        assert ro.setdefault("c") == [3]
        assert ro.dict.db.get(b"0junk") == b"\x80 not a pickle"
    sh.close()
    for op in (lambda: sh.pop("c", None), sh.popitem, lambda: sh.setdefault("c")):
        with pytest.raises(ValueError, match="closed shelf"):
            op()


def test_two_processes_popping_every_item_get_each_exactly_once(path):
    """With the mixin's popitem(), two processes emptying one shelf raised KeyError hundreds of
    times while it still held items; now each item goes to exactly one process, none is lost."""
    with kshelve.open(path) as sh:
        sh.update({f"k{i:04d}": i for i in range(300)})
    r, w = os.pipe()

    def drain():
        got = []
        with kshelve.open(path) as s:
            while True:
                try:
                    got.append(s.popitem()[1])
                except KeyError:
                    assert len(s) == 0, "popitem() raised KeyError on a non-empty shelf"
                    break
        os.write(w, json.dumps(got).encode())

    pid = fork_child(drain)
    mine = []
    with kshelve.open(path) as s:
        while True:
            try:
                mine.append(s.popitem()[1])
            except KeyError:
                assert len(s) == 0
                break
    assert exit_code(pid) == 0
    os.close(w)
    with os.fdopen(r) as f:
        theirs = json.load(f)
    assert sorted(mine + theirs) == list(range(300))


def test_the_module_has_every_name_of_the_stdlib_shelve_module(path):
    """The docs say ``import kv_backend.shelve as shelve  # instead of: import shelve``, but the
    module had only open and KVShelf: ``shelve.Shelf(...)`` and ``isinstance(x, shelve.Shelf)``
    then raised AttributeError. It now has every name of ``shelve.__all__``, the same classes."""
    import shelve

    for name in shelve.__all__:
        assert name in kshelve.__all__
        if name != "open":
            # The same classes where the stdlib's take serializer= (3.15); before, subclasses that do
            # (tests/test_shelve_serializer18.py).
            ours, theirs = getattr(kshelve, name), getattr(shelve, name)
            assert ours is theirs if hasattr(shelve, "ShelveError") else issubclass(ours, theirs)
    with kshelve.open(path) as sh:
        assert isinstance(sh, kshelve.Shelf)
        assert isinstance(sh, kshelve.DbfilenameShelf)
        sh["k"] = 1
    with kshelve.Shelf(kshelve._kv_dbm.open(path, "r")) as sh:
        assert sh["k"] == 1


def test_deleting_a_cached_key_another_process_deleted_does_not_bring_it_back(path):
    """With writeback, a process reads a key it has cached from its cache; when another process
    deleted it, ``del shelf[key]`` raised KeyError and left the cached entry, so sync() (or
    close()) wrote the key back: deleted twice, it came back. Deleting it now succeeds and drops
    the cached entry."""
    with kshelve.open(path, writeback=True) as sh, DB(path) as other:
        sh["k"] = [1]
        sh["k"].append(2)
        other.delete(b"k")
        assert sh["k"] == [1, 2]  # served from the cache, as documented
        del sh["k"]
        with pytest.raises(KeyError):
            sh["k"]
        with pytest.raises(KeyError):
            del sh["k"]
        sh.sync()
        assert b"k" not in other
    with kshelve.open(path) as sh:
        assert "k" not in sh


def test_flag_n_refuses_an_ndbm_shelf_as_the_docs_say(tmp_path):
    """docs/store.md said flag "n" replaces a dbm.ndbm shelf at the path, but an ndbm shelf's
    files are the path plus a suffix, which the stdlib's whichdb reports and open refuses, even
    with "n". The docs now say so; this pins the behaviour (files left untouched)."""
    path = str(tmp_path / "state")
    for suffix in (".pag", ".dir"):
        with open(path + suffix, "wb") as f:
            f.write(b"ndbm")
    with pytest.raises(kshelve._kv_dbm.error, match=r"dbm\.ndbm"):
        kshelve.open(path, "n")
    assert sorted(os.listdir(tmp_path)) == ["state.dir", "state.pag"]
