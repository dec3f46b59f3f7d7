"""kv_backend.dbm review 10: behaviour the stdlib's dbm modules have and this one lacked."""

from __future__ import annotations

import dbm.dumb

import pytest

import kv_backend.dbm as kdbm


def test_setdefault_returns_a_present_value_whatever_the_default(tmp_path):
    """dbm.gnu and dbm.dumb return a present key's value without looking at ``default``; this
    module converted ``default`` first, so setdefault(key, None) raised TypeError for a key that
    was there. The default is now checked only when it is to be stored."""
    with dbm.dumb.open(str(tmp_path / "dumb"), "c") as std, kdbm.open(str(tmp_path / "kv"), "c") as db:
        for d in (std, db):
            d[b"k"] = b"v"
            assert d.setdefault(b"k", None) == b"v"
            assert d.setdefault("k", 1) == b"v"
            with pytest.raises(TypeError):
                d.setdefault(b"missing", None)
            assert b"missing" not in d
    with kdbm.open(str(tmp_path / "kv"), "r") as ro:
        assert ro.setdefault(b"k", None) == b"v"
