"""Store/shelve/dbm: a key no store can hold is absent for del/pop/ttl/delete, and after close()
every call raises the closed error first, whatever its key or other arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend import Store
from kv_backend.errors import DatabaseClosedError, InvalidKeyError, KeyTooLargeError

UNSTORABLE = ["", "x" * 70_000]


@pytest.mark.parametrize("key", UNSTORABLE)
def test_del_and_pop_of_a_key_no_store_can_hold_raise_key_error(tmp_path, key):
    """``del s[""]`` and ``s.pop("")`` raised KeyTooLargeError (a ValueError), which ``except
    KeyError`` missed, while ``"" in s`` is False and a dict (and kv_backend.dbm) give KeyError."""
    with Store(str(tmp_path / "s")) as s:
        s["a"] = 1
        with pytest.raises(KeyError) as info:
            del s[key]
        assert not isinstance(info.value, KeyTooLargeError) and info.value.args == (key,)
        with pytest.raises(KeyError) as info:
            s.pop(key)
        assert not isinstance(info.value, KeyTooLargeError) and info.value.args == (key,)
        with pytest.raises(KeyError):
            s.ttl(key)  # "KeyError if absent"
        assert s.delete(key) is False
        assert s.expire(key, 10) is False and s.persist(key) is False
        s.delete_many([key, "a"])  # missing keys are ignored, and this one is missing
        assert dict(s) == {}
        with pytest.raises(KeyTooLargeError):
            s[key] = 1  # a write still says why
        with pytest.raises(InvalidKeyError):
            del s[1]  # a key of the wrong type keeps its typed error
        with pytest.raises(InvalidKeyError):
            s.pop(1, None)


def test_a_read_only_store_gives_key_error_too(tmp_path):
    Store(str(tmp_path / "s")).close()
    with Store(str(tmp_path / "s"), read_only=True) as s:
        with pytest.raises(KeyError):
            s.pop("")
        assert s.pop("", 5) == 5


def _store_calls(s: Store[Any]) -> dict[str, Callable[[], object]]:
    return {
        "s[1]": lambda: s[1],
        "s['\\ud800']": lambda: s["\ud800"],
        "s.get(1)": lambda: s.get(1),
        "s.get('\\ud800')": lambda: s.get("\ud800"),
        "s[1] = 2": lambda: s.__setitem__(1, 2),
        "s[''] = 2": lambda: s.__setitem__("", 2),
        "s.set(1, 2)": lambda: s.set(1, 2),
        "s.set('', 2)": lambda: s.set("", 2),
        "s.add(1, 2)": lambda: s.add(1, 2),
        "del s[1]": lambda: s.__delitem__(1),
        "del s['']": lambda: s.__delitem__(""),
        "s.delete('')": lambda: s.delete(""),
        "s.pop(1)": lambda: s.pop(1),
        "s.pop('', 0)": lambda: s.pop("", 0),
        "s.ttl(1)": lambda: s.ttl(1),
        "s.ttl('')": lambda: s.ttl(""),
        "s.expire(1, 1)": lambda: s.expire(1, 1),
        "s.persist('')": lambda: s.persist(""),
        "s.modify(1, f, 0)": lambda: s.modify(1, lambda v: v, 0),
        "s.incr(1)": lambda: s.incr(1),
        "s.incr('a', 'x')": lambda: s.incr("a", "x"),
        "s.setdefault(1)": lambda: s.setdefault(1),
        "s.keys(prefix=1)": lambda: s.keys(prefix=1),
        "s.set_many({1: 2})": lambda: s.set_many({1: 2}),
        "s.delete_many([1])": lambda: s.delete_many([1]),
        "s.delete_many([''])": lambda: s.delete_many([""]),
        "s.update({1: 2})": lambda: s.update({1: 2}),
        "s.update(5)": lambda: s.update(5),
        "s |= 5": lambda: s.__ior__(5),
        "s['a'] = f": lambda: s.__setitem__("a", lambda: 0),  # unpicklable
        "s.set('a', f)": lambda: s.set("a", lambda: 0),
        "s.add('a', f)": lambda: s.add("a", lambda: 0),
        "s.set_many({'a': f})": lambda: s.set_many({"a": lambda: 0}),
        "s.setdefault('b', f)": lambda: s.setdefault("b", lambda: 0),
        "s.set('a', 1, ttl='x')": lambda: s.set("a", 1, ttl="x"),
        "s.add('a', 1, ttl='x')": lambda: s.add("a", 1, ttl="x"),
        "s.expire('a', 'x')": lambda: s.expire("a", "x"),
        "s.set_many({'a': 1}, ttl='x')": lambda: s.set_many({"a": 1}, ttl="x"),
        "s.keys(reverse='yes')": lambda: s.keys(reverse="yes"),
        "s.items(start=1)": lambda: s.items(start=1),
    }


def test_every_store_call_after_close_raises_the_closed_error_first(tmp_path):
    """``Store.get(1)`` on a closed store raised InvalidKeyError, ``del s[""]`` KeyTooLargeError:
    the error of the key, where every other call after close() raises DatabaseClosedError."""
    s: Store[Any] = Store(str(tmp_path / "s"))
    s["a"] = 1
    s.close()
    wrong = {}
    for name, call in _store_calls(s).items():
        try:
            call()
        except DatabaseClosedError:
            continue
        except Exception as exc:
            wrong[name] = type(exc).__name__
        else:
            wrong[name] = "no error"
    assert wrong == {}


def test_every_bytes_store_call_after_close_raises_the_closed_error_first(tmp_path):
    s: Store[bytes] = Store(str(tmp_path / "s"), key_type=bytes)
    s.close()
    for call in (lambda: s["a"], lambda: s.__setitem__("a", 1), lambda: s.pop(b"", 1), lambda: s.get(2)):
        with pytest.raises(DatabaseClosedError):
            call()


def test_dbm_after_close_orders_its_errors_as_dbm_gnu(tmp_path):
    """As dbm.gnu (and as docs/store.md says), a key or value of a wrong type is reported before
    the close; but a write of an empty key raised KeySizeError where dbm.gnu says it is closed."""
    db = kdbm.open(str(tmp_path / "d"), "c")
    db.close()
    for call in (lambda: db.__setitem__(b"", b"v"), lambda: db.__setitem__(b"x" * 70_000, b"v")):
        with pytest.raises(kdbm.ClosedError):
            call()
    for call in (lambda: db[1], lambda: db.__setitem__(1, b"v"), lambda: db.__setitem__(b"k", 2)):
        with pytest.raises(TypeError):
            call()


def test_every_shelf_call_after_close_raises_the_closed_error_first(tmp_path):
    sh = kshelve.open(str(tmp_path / "sh"))
    sh.close()
    calls: list[Callable[[], object]] = [
        lambda: sh[1],
        lambda: sh.get(1),
        lambda: sh.__setitem__(1, 2),
        lambda: sh.__setitem__("a", lambda: 0),  # unpicklable
        lambda: sh.__delitem__(1),
        lambda: sh.pop(1, None),
        lambda: sh.setdefault(1),
        lambda: sh.update({1: 2}),
        lambda: sh.update(5),
        lambda: sh["\ud800"],
    ]
    for call in calls:
        with pytest.raises(ValueError, match="closed shelf"):
            call()
