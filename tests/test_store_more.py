"""More of Store's views: reversed() of bounded views, and of items and values views."""

from __future__ import annotations

import pytest

from kv_backend import Store


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({k: k.upper() for k in ["a", "b", "c", "d", "e", "pa", "pb", "pc", "q"]})
        yield s


BOUNDS = [
    {},
    {"reverse": True},
    {"start": "c"},
    {"start": "c", "reverse": True},
    {"prefix": "p"},
    {"prefix": "p", "start": "pb"},
    {"prefix": "p", "start": "pb", "reverse": True},
    {"prefix": "p", "start": "z", "reverse": True},
    {"prefix": "p", "start": "a"},
    {"prefix": "p", "start": "z"},
]


@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize("view", ["keys", "items", "values"])
def test_reversed_view_is_the_same_items_in_the_opposite_order(store, bounds, view):
    """As for dict views, reversed(view) == list(view)[::-1], also with prefix/start/reverse."""
    v = getattr(store, view)(**bounds)
    assert list(reversed(v)) == list(v)[::-1]


def test_reversed_walks_from_the_far_end_and_stops_at_start(store):
    keys = store.keys(start="c")
    assert list(keys) == ["c", "d", "e", "pa", "pb", "pc", "q"]
    assert list(reversed(keys)) == ["q", "pc", "pb", "pa", "e", "d", "c"]
    assert list(reversed(store.items(start="pc", reverse=True)))[:2] == [("a", "A"), ("b", "B")]
    assert list(reversed(store.values(prefix="p"))) == ["PC", "PB", "PA"]
