"""Store calls given something that is not what they take raise the project's InvalidArgumentError
(a TypeError) saying what they take, after close() the closed error first, and write nothing.

``get_many(None)`` and ``delete_many(5)`` raised a bare "'NoneType' object is not iterable" (while
``set_many(None)`` said what it takes), ``modify(key, 5)`` "'int' object is not callable" from inside
the engine's update, and ``get_many("ab")`` or ``delete_many("ab")`` on a closed store the argument's
error where every other call after close() raises DatabaseClosedError.
"""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.errors import DatabaseClosedError, InvalidArgumentError


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s["a"] = 1
        yield s


@pytest.mark.parametrize("keys", [None, 5, object()])
@pytest.mark.parametrize("method", ["get_many", "delete_many"])
def test_keys_that_are_not_iterable(store, method, keys):
    with pytest.raises(InvalidArgumentError, match=rf"{method}\(\) takes an iterable of keys") as info:
        getattr(store, method)(keys)
    assert isinstance(info.value, TypeError)
    assert dict(store.items()) == {"a": 1}


@pytest.mark.parametrize("fn", [5, None, "upper"])
def test_modify_with_something_not_callable(store, fn):
    with pytest.raises(InvalidArgumentError, match="modify"):
        store.modify("a", fn)
    with pytest.raises(InvalidArgumentError, match="modify"):
        store.modify("missing", fn, default=0)
    assert dict(store.items()) == {"a": 1}


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_many("ab"),
        lambda s: s.get_many(None),
        lambda s: s.delete_many("ab"),
        lambda s: s.delete_many(None),
        lambda s: s.modify("a", 5),
    ],
    ids=["get_many-str", "get_many-None", "delete_many-str", "delete_many-None", "modify"],
)
def test_after_close_the_closed_error_comes_first(tmp_path, call):
    s = Store(str(tmp_path / "s"))
    s.close()
    with pytest.raises(DatabaseClosedError):
        call(s)
