"""DB.update: update(key, fn) as before, and MutableMapping's update(mapping or pairs) too."""

from __future__ import annotations

from collections.abc import MutableMapping

import pytest

from kv_backend import DB
from kv_backend.errors import InvalidArgumentError, InvalidKeyError


def _fill(m: MutableMapping[bytes, bytes]) -> None:
    """Code written for any mutable mapping."""
    m.update({b"a": b"1"})
    m.update([(b"b", b"2")])
    m.update({b"c": b"3"}.items())


def test_mutable_mapping_update(tmp_path):
    with DB(str(tmp_path / "s")) as db, DB(str(tmp_path / "t")) as other:
        _fill(db)
        assert dict(db.items()) == {b"a": b"1", b"b": b"2", b"c": b"3"}
        other.update(db)
        assert dict(other.items()) == dict(db.items())
        other.update()
        assert len(other) == 3


def test_read_modify_write_is_unchanged(tmp_path):
    with DB(str(tmp_path / "s")) as db:
        assert db.update(b"n", lambda old: (old or b"") + b"x") == b"x"
        assert db.update(bytearray(b"n"), lambda old: old + b"y") == b"xy"
        assert db.update(b"n", lambda old: None) is None and b"n" not in db


def test_bad_calls_store_nothing(tmp_path):
    with DB(str(tmp_path / "s")) as db:
        with pytest.raises(InvalidArgumentError, match="needs a function"):
            db.update(b"k")  # type: ignore[call-overload]
        with pytest.raises(InvalidArgumentError, match="no keyword"):
            db.update(b"k", lambda old: b"v", ttl=5)  # type: ignore[call-overload]
        with pytest.raises(InvalidKeyError):
            db.update({b"good": b"1", "bad": b"2"})  # type: ignore[dict-item]
        with pytest.raises(InvalidKeyError):
            db.update(x=b"1")  # keyword names are str, never keys of a DB
        assert len(db) == 0
