"""kv_backend.structures.Structures used directly from Python with arguments of every type a
Python program may pass: failures are the project's errors, and what is stored is what the
argument stands for."""

from __future__ import annotations

import pytest

from kv_backend.errors import InvalidArgumentError, KVError, UnencodableTextError
from kv_backend.structures import Structures


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.set("\udc80", "v"),
        lambda s: s.set("k", "\udc80"),
        lambda s: s.get("\udc80"),
        lambda s: s.hset("h", {"\udc80": "v"}),
        lambda s: s.rpush("l", "ok", "\udc80"),
        lambda s: s.zadd("z", {"\udc80": 1}),
        lambda s: s.sadd("s", "\udc80"),
    ],
)
def test_a_str_with_lone_surrogates_raises_a_project_error_and_writes_nothing(s, call):
    """UTF-8 cannot encode a lone surrogate: the str raised Python's bare UnicodeEncodeError, outside
    kv_backend.errors (Store raises KeyEncodingError, dbm UnencodableKeyError). It raises
    UnencodableTextError: still the UnicodeEncodeError redis-py raises, and a KVError."""
    with pytest.raises(UnencodableTextError) as info:
        call(s)
    assert isinstance(info.value, UnicodeEncodeError) and isinstance(info.value, KVError)
    assert "surrogates" in str(info.value)
    assert s.dbsize() == 0


def test_an_int_too_long_to_write_as_text_raises_a_project_error(s):
    """Python refuses to turn an int of more than 4300 digits into text: that ValueError escaped
    as it was. It is an InvalidArgumentError (also a ValueError) that says what to do."""
    with pytest.raises(InvalidArgumentError, match="digits") as info:
        s.set("k", 10**5000)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidArgumentError):
        s.rpush(10**5000, "v")
    assert s.dbsize() == 0
