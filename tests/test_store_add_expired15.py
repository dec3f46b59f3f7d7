"""``Store.add`` and ``DB.put_if_absent`` with a ttl of 0 or less (#4, #2).

``add(key, value, ttl=0)`` on an absent key returned True, "stored", though
nothing was stored (a ttl <= 0 means already expired): every caller "won" the
same key at once, and code that takes ``add`` as a cross-process lock or a
first-writer test went on as the winner with nothing held. It now returns False,
present key or not, and leaves a present key as it was; a bad ttl still raises.
"""

from __future__ import annotations

import pytest

from kv_backend import DB, Store
from kv_backend.errors import DatabaseClosedError, InvalidArgumentError, ReadOnlyError


@pytest.mark.parametrize("ttl", [0, -1, -0.5, -(10**400)], ids=["0", "-1", "-0.5", "-10**400"])
def test_add_with_an_expired_ttl_stores_nothing_and_says_so(tmp_path, ttl):
    with Store(str(tmp_path / "s")) as s:
        assert s.add("k", 1, ttl=ttl) is False
        assert "k" not in s and len(s) == 0
        s["held"] = "old"
        assert s.add("held", "new", ttl=ttl) is False
        assert s["held"] == "old" and s.ttl("held") is None  # a present key is left as it was
        assert s.add("k", 2, ttl=60) is True  # a positive ttl still stores
        assert s["k"] == 2


@pytest.mark.parametrize("ttl", [0, -3])
def test_put_if_absent_with_an_expired_ttl_returns_false(tmp_path, ttl):
    with DB(str(tmp_path / "db")) as db:
        assert db.put_if_absent(b"k", b"v", ttl) is False
        assert b"k" not in db
        assert db.put_if_absent(b"k", b"v") is True


def test_add_with_an_expired_ttl_still_checks_its_arguments(tmp_path):
    path = str(tmp_path / "s")
    s = Store(path)
    with pytest.raises(InvalidArgumentError):
        s.add("k", 1, ttl="0")
    Store(path).close()
    with Store(path, read_only=True) as ro, pytest.raises(ReadOnlyError):
        ro.add("k", 1, ttl=0)
    s.close()
    with pytest.raises(DatabaseClosedError):
        s.add("k", 1, ttl=0)
