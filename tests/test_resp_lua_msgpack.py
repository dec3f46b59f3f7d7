"""kvb serve's Lua scripts compared with redis-server 7.0: the conversion of Lua numbers to replies."""

from __future__ import annotations

import pytest
from resp_helpers import Raw, redis_and_kvb

pytest.importorskip("lupa")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with redis_and_kvb(tmp_path_factory) as (redis_port, ours):
        yield Raw(redis_port, 2), Raw(ours.port, 2)


def same(servers, *words) -> bytes:
    theirs, ours = (s.call(*words) for s in servers)
    assert ours == theirs, words
    return ours


NUMBER_REPLIES = [
    "return 0/0",
    "return 1/0",
    "return -1/0",
    "return 2^63",
    "return -2^63",
    "return 1e19",
    "return {0/0, 2^64, -2^64-4096, 2^63-1024, -2.5, 2.5}",
]


@pytest.mark.parametrize("script", NUMBER_REPLIES)
def test_number_replies_as_redis(servers, script):
    """A Lua number becomes an integer reply by C's (long long) cast: NaN, infinities and numbers
    out of the int64 range are INT64_MIN in Redis (kvb answered a bigger integer, or failed)."""
    same(servers, "EVAL", script, "0")
