"""kv_backend.structures.Structures called the way redis-py's ``redis.Redis`` is: the argument forms
of redis-py's methods of the same name work in-process too (and mean the same), next to the
forms the in-process API always took."""

from __future__ import annotations

import pytest

from kv_backend.errors import InvalidArgumentError
from kv_backend.structures import CommandError, Structures


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


@pytest.mark.parametrize(
    ("call", "added", "expected"),
    [
        (lambda s: s.hset("h", "f", "v"), 1, {b"f": b"v"}),
        (lambda s: s.hset("h", key="f", value=1), 1, {b"f": b"1"}),
        (lambda s: s.hset("h", mapping={"a": 1, "b": "2"}), 2, {b"a": b"1", b"b": b"2"}),
        (lambda s: s.hset("h", items=["a", 1, "b", 2]), 2, {b"a": b"1", b"b": b"2"}),
        (
            lambda s: s.hset("h", "k", "v", mapping={"m": 1}, items=["i", 2]),
            3,
            {b"k": b"v", b"m": b"1", b"i": b"2"},
        ),
        # a field given twice keeps its last value, in redis-py's order: items, key, mapping
        (
            lambda s: s.hset("h", "f", "key", mapping={"f": "mapping"}, items=["f", "items"]),
            1,
            {b"f": b"mapping"},
        ),
        (lambda s: s.hset("h", "f", "key", items=["f", "items"]), 1, {b"f": b"key"}),
        # the in-process forms that were there before
        (lambda s: s.hset("h", {"a": 1}), 1, {b"a": b"1"}),
        (lambda s: s.hset("h", [("a", 1), ("b", 2)]), 2, {b"a": b"1", b"b": b"2"}),
        (lambda s: s.hset("h", {"a": 1}, c=3), 2, {b"a": b"1", b"c": b"3"}),
        (lambda s: s.hset("h", f=1), 1, {b"f": b"1"}),
    ],
)
def test_hset_takes_redis_pys_field_value_mapping_and_items_forms(s, call, added, expected):
    """hset("h", "f", "v") -- redis-py's commonest form -- raised TypeError (hset took only a
    mapping and keyword fields), and items= was unknown. Every redis-py form works, with its
    order for a field given twice; the mapping as second argument still does."""
    assert call(s) == added
    assert s.hgetall("h") == expected


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.hset("h", "f"), InvalidArgumentError),
        (lambda s: s.hset("h", value="v"), InvalidArgumentError),
        (lambda s: s.hset("h", items=["a", 1, "b"]), CommandError),
        (lambda s: s.hset("h", items="ab"), InvalidArgumentError),
        (lambda s: s.hset("h", items={"a": 1}), InvalidArgumentError),
        (lambda s: s.hset("h"), CommandError),
        (lambda s: s.hset("h", mapping={}), CommandError),
    ],
)
def test_hset_refuses_a_field_without_a_value(s, call, error):
    with pytest.raises(error):
        call(s)
    assert s.exists("h") == 0


def test_incr_and_decr_take_an_amount_and_the_float_increments_default_to_one(s):
    """redis-py's incr(name, amount=1) and decr(name, amount=1) raised TypeError with an amount;
    incrbyfloat(name) and hincrbyfloat(name, field) without one (redis-py adds 1.0)."""
    assert s.incr("n") == 1
    assert s.incr("n", 5) == 6
    assert s.incr("n", amount=-2) == 4
    assert s.decr("n") == 3
    assert s.decr("n", 2) == 1
    assert s.decr("n", amount="-10") == 11
    assert s.get("n") == b"11"
    assert s.incrbyfloat("f") == 1.0
    assert s.incrbyfloat_text("f") == b"2"
    assert s.hincrbyfloat("h", "x") == 1.0
    assert s.hincrbyfloat_text("h", "x") == b"2"
    assert s.hget("h", "x") == b"2"
