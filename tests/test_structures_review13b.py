"""The in-process Structures API: arguments of the wrong type raise the project's errors."""

from __future__ import annotations

import pytest

from kv_backend.errors import InvalidArgumentError, KVError, NotAnIntegerError
from kv_backend.structures import Structures


@pytest.fixture
def s(tmp_path):
    with Structures(str(tmp_path / "db")) as st:
        yield st


def test_zincrby_of_a_member_of_the_wrong_type_is_an_invalid_argument(s):
    """zincrby built a dict of the member: a list or dict member raised ``unhashable type``."""
    for member in ([1], {}, None):
        with pytest.raises(InvalidArgumentError):
            s.zincrby("z", 1, member)
    assert s.zincrby("z", 2, "m") == 2.0 and s.zincrby("z", 1.5, "m") == 3.5


def test_weights_that_are_not_a_sequence_are_an_invalid_argument(s):
    """``weights=2`` raised ``'int' object is not iterable`` from zunion, zinter and their stores."""
    s.zadd("a", {"m": 1})
    calls = [
        lambda w: s.zunion(["a"], weights=w),
        lambda w: s.zinter(["a"], weights=w),
        lambda w: s.zunionstore("d", ["a"], weights=w),
        lambda w: s.zinterstore("d", ["a"], weights=w),
    ]
    for call in calls:
        for weights in (2, 1.5, True, object()):
            with pytest.raises(InvalidArgumentError, match="weights"):
                call(weights)
    assert s.zunion(["a"], weights=[3], withscores=True) == [(b"m", 3.0)]


def test_xinfo_stream_count_of_the_wrong_type_is_refused_with_a_kv_error(s):
    """``count={}`` raised TypeError comparing it with 0; it is read as the other counts are."""
    s.xadd("x", {"f": "v"}, id="1-1")
    for count in ({}, 1.5, "x"):
        with pytest.raises(NotAnIntegerError):
            s.xinfo_stream("x", full=True, count=count)
    assert len(s.xinfo_stream("x", full=True, count="1")["entries"]) == 1
    assert issubclass(NotAnIntegerError, KVError)
