"""What docs/store.md says of a Store subclass that overrides ``__getitem__``/``__setitem__`` (#4).

As with ``dict``, the other methods read and write the store itself; a ``serializer`` object is the
way to change how every method stores and reads values.
"""

from __future__ import annotations

import pathlib

import kv_backend

DOC = pathlib.Path(__file__).parent.parent / "docs" / "store.md"


class Counting(kv_backend.Store):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def __getitem__(self, key):
        self.calls += 1
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        self.calls += 1
        super().__setitem__(key, value)


def test_documented_methods_go_around_the_overrides(store_path):
    with Counting(store_path) as s:
        s["a"] = 1
        s.calls = 0
        uses = [
            lambda: s.get("a"),
            lambda: s.get_many(["a"]),
            lambda: list(s.items()),
            lambda: list(s.values()),
            lambda: s == {"a": 1},
            lambda: s.setdefault("b", 2),
            lambda: s.pop("b"),
            lambda: s.set("c", 3),
            lambda: s.add("d", 4),
            lambda: s.set_many({"e": 5}),
            lambda: s.update({"f": 6}),
            lambda: s.__ior__({"g": 7}),
            lambda: s.modify("a", lambda v: v + 1),
            lambda: s.incr("a"),
            lambda: s.popitem(),
        ]
        for use in uses:
            use()
        assert s.calls == 0
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    section = text.split("**Subclasses**")[1].split("### Beyond")[0]
    for name in ("get()", "get_many()", "items()", "values()", "setdefault()", "update()", "popitem()"):
        assert f"`{name}`" in section


class Doubling:
    """A serializer that stores every int doubled: each method goes through it."""

    def dumps(self, value):
        return str(value * 2).encode()

    def loads(self, data):
        return int(data) // 2


def test_a_serializer_reaches_every_method(store_path):
    with kv_backend.Store(store_path, serializer=Doubling()) as s:
        s["a"] = 1
        s.update({"b": 2})
        s.set("c", 3)
        s.setdefault("d", 4)
        s.incr("a")
        assert s.db.get(b"a") == b"4" and s.db.get(b"b") == b"4" and s.db.get(b"d") == b"8"
        assert s["a"] == 2 and s.get("b") == 2 and dict(s.items()) == {"a": 2, "b": 2, "c": 3, "d": 4}
        assert s.pop("c") == 3 and s.popitem() == ("a", 2)
