"""str keys (and dbm values) that cannot be encoded: the stdlib's UnicodeEncodeError, and the project's."""

from __future__ import annotations

import pytest

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
import kv_backend.store
from kv_backend.errors import KeyEncodingError, KVError, UnencodableKeyError, UnencodableTextError

BAD = "a\udc80b"


def test_store_keeps_its_error_class():
    assert kv_backend.store.KeyEncodingError is KeyEncodingError


def test_dbm_key_and_value(tmp_path):
    with kdbm.open(str(tmp_path / "d"), "c") as db:
        db[b"kept"] = b"1"
        for op in (
            lambda: db.__setitem__(BAD, b"v"),
            lambda: db[BAD],
            lambda: db.get(BAD),
            lambda: db.setdefault(BAD, b"v"),
            lambda: db.__delitem__(BAD),
        ):
            with pytest.raises(UnencodableKeyError) as info:
                op()
            err = info.value
            assert isinstance(err, UnicodeEncodeError) and isinstance(err, KeyEncodingError)
            assert (err.encoding, err.object, err.start, err.end) == ("utf-8", BAD, 1, 2)
            assert "key 'a\\udc80b' cannot be encoded as utf-8" in str(err)
        with pytest.raises(UnencodableTextError) as info:
            db[b"k"] = BAD
        assert isinstance(info.value, UnicodeEncodeError) and isinstance(info.value, KVError)
        assert not isinstance(info.value, KeyEncodingError)
        assert dict(db.items()) == {b"kept": b"1"}


@pytest.mark.parametrize(("keyencoding", "bad"), [("utf-8", BAD), ("latin-1", "price in \u20ac")])
def test_shelf_keys(tmp_path, keyencoding, bad):
    with kshelve.KVShelf(str(tmp_path / "s"), keyencoding=keyencoding) as sh:
        sh["kept"] = [1]
        for op in (
            lambda: sh.__setitem__(bad, 1),
            lambda: sh[bad],
            lambda: sh.get(bad),
            lambda: bad in sh,
            lambda: sh.__delitem__(bad),
            lambda: sh.pop(bad),
            lambda: sh.setdefault(bad, 2),
            lambda: sh.update({bad: 1, "other": 2}),
        ):
            with pytest.raises(UnencodableKeyError) as info:
                op()
            assert isinstance(info.value, UnicodeEncodeError)
            assert info.value.encoding == keyencoding
        assert dict(sh) == {"kept": [1]}
