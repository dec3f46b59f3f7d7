"""get_many and delete_many given one str or bytes key instead of a list (#4).

``store.delete_many("user:1")`` iterated the string and deleted the keys "u",
"s", "e", "r", ":" and "1" (whatever they held), leaving "user:1" in place, and
``get_many("user:1")`` answered for those one-character keys. A single str or
bytes is now refused with ``InvalidArgumentError`` (a ``TypeError``) before
anything is read or deleted.
"""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.errors import InvalidArgumentError


@pytest.fixture
def store(store_path):
    with Store(store_path) as s:
        s.update({c: c for c in "user:1"})
        s["user:1"] = "the user"
        yield s


def test_delete_many_refuses_one_str_key(store):
    before = dict(store)
    with pytest.raises(InvalidArgumentError, match=r"pass \[key\]") as info:
        store.delete_many("user:1")
    assert isinstance(info.value, TypeError)
    assert dict(store) == before
    store.delete_many(["user:1"])
    assert "user:1" not in store and store["u"] == "u"


def test_get_many_refuses_one_str_key(store):
    with pytest.raises(InvalidArgumentError, match="iterable of keys"):
        store.get_many("user:1")
    assert store.get_many(["user:1", "missing"]) == {"user:1": "the user"}
    assert store.get_many(iter(["u", "s"])) == {"u": "u", "s": "s"}


@pytest.mark.parametrize("keys", [b"ab", bytearray(b"ab"), memoryview(b"ab")], ids=lambda k: type(k).__name__)
def test_a_bytes_store_refuses_one_bytes_key(tmp_path, keys):
    with Store(str(tmp_path / "b"), key_type=bytes) as s:
        s[b"ab"] = 1
        for method in (s.get_many, s.delete_many):
            with pytest.raises(InvalidArgumentError, match="iterable of keys"):
                method(keys)
        assert s[b"ab"] == 1
