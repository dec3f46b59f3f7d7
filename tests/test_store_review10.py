"""Store review 10: reads that fail must not lose data, and bad input raises the project's errors."""

from __future__ import annotations

import inspect
import pickle
import zlib

import pytest

import kv_backend.dbm as kdbm
from kv_backend import DB, Store
from kv_backend.errors import ConfigurationError, DatabaseClosedError, InvalidArgumentError, ReadOnlyError
from kv_backend.serializers import (
    DeserializationError,
    JSONSerializer,
    PickleSerializer,
    RawSerializer,
    SerializationError,
)
from kv_backend.store import KeyEncodingError


def test_pop_of_an_unreadable_value_raises_and_keeps_it(tmp_path):
    """pop() deleted the key, then decoded the value: bytes another serializer wrote raised
    DeserializationError with the key already gone. The value is now decoded under the write
    lock before the delete, so the error leaves it stored (readable with the right serializer)."""
    with Store(str(tmp_path / "s"), "json") as s:
        s.db.put(b"a", b"\x80 not json")
        with pytest.raises(DeserializationError):
            s.pop("a")
        with pytest.raises(DeserializationError):
            s.pop("a", None)
        assert s.db.get(b"a") == b"\x80 not json"
        s["b"] = [1]
        assert s.pop("b") == [1]
        assert "b" not in s


def test_popitem_of_an_unreadable_pair_raises_and_keeps_it(tmp_path):
    """popitem() lost the smallest pair when its value could not be decoded, or when its key was
    not UTF-8 in a str store (KeyEncodingError after the delete); both now stay stored."""
    with Store(str(tmp_path / "s"), "json") as s:
        s.db.put(b"a", b"\x80 not json")
        s["b"] = 2
        with pytest.raises(DeserializationError):
            s.popitem()
        assert s.db.get(b"a") == b"\x80 not json"
        del s.db[b"a"]
        s.db.put(b"\xff", b"3")  # not UTF-8: written through the engine
        assert s.popitem() == ("b", 2)
        with pytest.raises(KeyEncodingError, match="key_type=bytes"):
            s.popitem()
        assert s.db.get(b"\xff") == b"3"
    with Store(str(tmp_path / "s"), "json", key_type=bytes) as s:
        assert s.popitem() == (b"\xff", 3)
        with pytest.raises(KeyError):
            s.popitem()


class _TextSerializer:
    """Returns text, as the json module does (stored as UTF-8)."""

    def dumps(self, value):
        return value

    def loads(self, data):
        return data.decode("utf-8")


def test_a_custom_serializer_returning_text_with_lone_surrogates_is_a_serialization_error(tmp_path):
    """dumps() may return str (stored as UTF-8), but text with a lone surrogate has no UTF-8 form:
    encoding it raised a bare UnicodeEncodeError. It is now SerializationError, and nothing is
    written (update() stores none of its pairs)."""
    with Store(str(tmp_path / "s"), _TextSerializer()) as s:
        for write in (
            lambda: s.__setitem__("a", "\ud800"),
            lambda: s.set("a", "x\udfff", ttl=60),
            lambda: s.update({"a": "ok", "b": "\ud800"}),
            lambda: s.setdefault("a", "\ud800"),
        ):
            with pytest.raises(SerializationError, match="surrogates"):
                write()
        assert len(s) == 0
        s["a"] = "é"
        assert s["a"] == "é"


class _Compressed(PickleSerializer):
    """A PickleSerializer subclass that compresses, as a user might write one."""

    def dumps(self, value):
        return zlib.compress(super().dumps(value))

    def loads(self, data):
        return super().loads(zlib.decompress(data))


def test_a_pickle_serializer_subclass_is_used_for_every_value(tmp_path):
    """Store's fast paths (plain pickle.dumps and pickle.loads) were taken for any
    PickleSerializer, so a subclass's dumps was skipped by ``s[k] = v``: the value was stored
    uncompressed, and get() then failed to decompress it (a bare zlib.error). Subclasses are now
    wrapped like any custom serializer: their own methods serve every value, and their failures
    raise DeserializationError."""
    value = {"text": "x" * 1000}
    with Store(str(tmp_path / "s"), _Compressed()) as s:
        s["a"] = value
        s.set("b", value)
        s.update({"c": value, "d": value})
        for k in "abcd":
            assert pickle.loads(zlib.decompress(s.db.get(k.encode()))) == value
            assert s[k] == value
            assert s.get(k) == value
        s.db.put(b"plain", pickle.dumps(value))  # not compressed: the subclass cannot read it
        with pytest.raises(DeserializationError):
            s["plain"]
    with Store(str(tmp_path / "p"), PickleSerializer(protocol=2)) as s:  # the fast path itself
        s["a"] = value
        assert s.db.get(b"a") == pickle.dumps(value, 2)
        assert s["a"] == value


def test_pop_of_a_key_no_store_can_hold_raises_after_close(tmp_path):
    """pop("", default) returned the default on a closed store (the engine checks the key before
    the store being open), where every other call raises DatabaseClosedError; so did the dbm's
    pop(b"", default), and its del db[b""] raised KeyError instead of ClosedError."""
    s = Store(str(tmp_path / "s"))
    s.close()
    for op in (lambda: s.pop("", None), lambda: s.pop("x" * 70_000, None), lambda: s.pop("")):
        with pytest.raises(DatabaseClosedError):
            op()
    db = kdbm.open(str(tmp_path / "d"), "c")
    assert db.pop(b"", 1) == 1
    db.close()
    for op in (lambda: db.pop(b"", 1), lambda: db.__delitem__(b""), lambda: db.pop(b"k" * 70_000)):
        with pytest.raises(kdbm.ClosedError):
            op()


@pytest.mark.parametrize("cls", [PickleSerializer, JSONSerializer, RawSerializer, _Compressed])
def test_a_serializer_class_instead_of_an_instance_is_refused_at_open(tmp_path, cls):
    """serializer=PickleSerializer (the class) was accepted as an object with dumps and loads;
    then every write failed with "dumps() missing 1 required positional argument" and nothing
    said why. It is now a ConfigurationError at open that names the fix, and no store is made."""
    path = tmp_path / "s"
    with pytest.raises(ConfigurationError, match=rf"pass an instance such as {cls.__name__}\(\)"):
        Store(str(path), cls)
    assert not path.exists()
    value = "1" if cls is JSONSerializer else b"1"
    with Store(str(path), cls()) as s:
        s["a"] = value
        assert s["a"] == value


def test_get_many_skips_keys_no_store_can_hold_as_get_does(tmp_path):
    """get(key) returns the default for a key no store can hold (empty, over 65,536 bytes), as
    the docs say, but get_many() raised KeyTooLargeError for one such key among others; it now
    leaves it out, like any absent key. Wrong key types still raise."""
    with Store(str(tmp_path / "s")) as s:
        s["a"] = 1
        assert s.get_many(["a", "", "x" * 70_000, "b"]) == {"a": 1}
        with pytest.raises(TypeError):
            s.get_many(["a", 1])


def test_pop_of_an_absent_key_on_a_read_only_store_needs_no_write(tmp_path):
    """As setdefault() of a present key works read-only ("a read needs no write"), pop() of an
    absent key now gives the default (or KeyError) instead of ReadOnlyError, as a read-only
    shelf or dbm does; removing a present key still raises ReadOnlyError and keeps it."""
    path = str(tmp_path / "s")
    with Store(path) as s:
        s["k"] = 1
    with Store(path, read_only=True) as ro:
        assert ro.pop("missing", 7) == 7
        with pytest.raises(KeyError):
            ro.pop("missing")
        with pytest.raises(ReadOnlyError):
            ro.pop("k", None)
        assert ro["k"] == 1


@pytest.mark.parametrize("ttl", ["10", b"10", True, [1]])
def test_a_ttl_that_is_not_a_number_raises_the_projects_type_error(tmp_path, ttl):
    """A ttl of the wrong type raised a bare TypeError from every write that takes one; it is
    now InvalidArgumentError (a KVError and still a TypeError), and nothing is written."""
    with Store(str(tmp_path / "s")) as s:
        s["k"] = 1
        for write in (
            lambda: s.set("a", 1, ttl=ttl),
            lambda: s.add("a", 1, ttl),
            lambda: s.set_many({"a": 1, "b": 2}, ttl),
            lambda: s.expire("k", ttl),
        ):
            with pytest.raises(InvalidArgumentError, match="ttl must be a number"):
                write()
        assert dict(s) == {"k": 1} and s.ttl("k") is None


def test_a_misspelt_option_is_a_configuration_error_naming_the_options(tmp_path):
    """Store(path, sycn="always") raised DB.__init__'s bare TypeError ("unexpected keyword
    argument"); docs/store.md lists a bad engine option under ConfigurationError. It is now one,
    naming the options there are, and nothing is created."""
    path = tmp_path / "s"
    with pytest.raises(ConfigurationError, match=r"unknown Store option 'sycn'.*max_file_size"):
        Store(str(path), sycn="always")
    assert not path.exists()
    from kv_backend.store import _ENGINE_OPTIONS

    assert set(inspect.signature(DB.__init__).parameters) - {"self", "path"} == _ENGINE_OPTIONS
    with Store(str(path), "json", sync="always", max_file_size=1 << 20, auto_merge=0.5) as s:
        s["a"] = 1


def test_in_after_close_raises_whatever_the_key(tmp_path):
    """``1 in store`` (a key of the wrong type) after close() returned False, where ``"k" in store``
    raises DatabaseClosedError as every call after close() does; it raises too."""
    s = Store(str(tmp_path / "s"))
    s["k"] = 1
    assert 1 not in s and "" not in s  # open: keys no store can hold are absent
    s.close()
    for key in ("k", 1, "", b"bytes"):
        with pytest.raises(DatabaseClosedError):
            key in s  # noqa: B015 - the membership test is what raises
