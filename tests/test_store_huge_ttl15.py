"""A ttl (or expires_at) that is an int too long for str() (#4, #2).

``store.set(k, v, ttl=10**5000)`` raised a bare ``ValueError: Exceeds the limit
(4300 digits) for integer string conversion``: the engine refused the ttl, but
building its error message formatted the number itself. So did ``expire`` and
``expires_at=``. Now each raises the ``ConfigurationError`` it meant to (a
``ValueError``), and nothing is written; a hugely negative ttl still deletes.
"""

from __future__ import annotations

import pytest

from kv_backend import DB, Store
from kv_backend.errors import ConfigurationError

HUGE = 10**5000


@pytest.fixture
def store(store_path):
    with Store(store_path) as s:
        s["kept"] = 1
        yield s


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.set("k", 1, ttl=HUGE),
        lambda s: s.add("k", 1, ttl=HUGE),
        lambda s: s.set_many({"k": 1, "j": 2}, ttl=HUGE),
        lambda s: s.expire("kept", HUGE),
    ],
    ids=["set", "add", "set_many", "expire"],
)
def test_a_huge_int_ttl_raises_configuration_error(store, write):
    with pytest.raises(ConfigurationError, match=r"ttl is too large.*None for a key that never expires"):
        write(store)
    assert dict(store) == {"kept": 1}
    assert store.ttl("kept") is None


def test_a_huge_negative_int_ttl_deletes(store):
    store.set("kept", 2, ttl=-HUGE)
    assert "kept" not in store


@pytest.mark.parametrize("when", [HUGE, -HUGE], ids=["huge", "huge-negative"])
def test_a_huge_int_expires_at_raises_configuration_error(store_path, when):
    with DB(store_path) as db:
        db[b"k"] = b"v"
        with pytest.raises(ConfigurationError, match="expires_at must be a finite UNIX time"):
            db.expire(b"k", expires_at=when)
        assert db[b"k"] == b"v" and db.ttl(b"k") is None
