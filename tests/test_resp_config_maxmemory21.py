"""CONFIG GET maxmemory* answered 2 of redis-server 7.0's 5 parameters (maxmemory and
maxmemory-policy): a monitoring tool or client reading maxmemory-samples,
maxmemory-eviction-tenacity or maxmemory-clients got nothing, and CONFIG SET of them was
`Unknown option`. kvb now shows all five with honest values (it evicts nothing) and takes CONFIG SET
of each as redis-server does, or refuses a value it cannot honour; io-threads is shown (1) and
immutable, as in Redis. Checked side by side with a real redis-server (the ``ports`` fixture)."""

from __future__ import annotations

import pytest
import redis

_DEFAULTS = {"maxmemory-samples": "5", "maxmemory-eviction-tenacity": "10", "maxmemory-clients": "0"}


@pytest.fixture
def clients(ports):
    conns = [redis.Redis(port=p, decode_responses=True) for p in ports]
    yield conns
    for conn in conns:
        conn.config_set("maxmemory-samples", 5)
        conn.config_set("maxmemory-eviction-tenacity", 10)
        conn.config_set("maxmemory-clients", 0)
        conn.close()


def _reply(conn: redis.Redis, *args: str) -> object:
    try:
        return conn.execute_command(*args)
    except redis.ResponseError as exc:
        return f"error: {exc}"


def test_config_get_lists_the_five_maxmemory_parameters(clients):
    got = [conn.config_get("maxmemory*") for conn in clients]
    assert got[1] == got[0]
    assert got[1] == {"maxmemory": "0", "maxmemory-policy": "noeviction", **_DEFAULTS}
    assert [conn.config_get("io-threads") for conn in clients] == [{"io-threads": "1"}] * 2


_SETTINGS = [
    ("maxmemory-samples", ["1", "64", "2147483647", "2147483648", "0", "-1", "x", "05", "+5", "10"]),
    ("maxmemory-eviction-tenacity", ["0", "100", "101", "-1", "x", "05", "3"]),
    ("maxmemory-clients", ["0", "0%", "00", "-1%", "%", "5%x", "101%", " 5", "-1", "1kb x"]),
    ("io-threads", ["1", "4"]),
]


@pytest.mark.parametrize(("name", "values"), _SETTINGS, ids=[n for n, _ in _SETTINGS])
def test_config_set_takes_and_refuses_what_redis_does(clients, name, values):
    for value in values:
        replies = [(_reply(conn, "CONFIG", "SET", name, value), conn.config_get(name)) for conn in clients]
        assert replies[1] == replies[0], value


def test_a_client_memory_limit_is_refused_as_kvb_cannot_honour_it(clients):
    kvb = clients[1]
    for value in ("1kb", "100%", "10gb"):
        with pytest.raises(redis.ResponseError, match=r"'maxmemory-clients'\) - kvb serve cannot change it"):
            kvb.config_set("maxmemory-clients", value)
    assert kvb.config_get("maxmemory-clients") == {"maxmemory-clients": "0"}


def test_config_set_of_the_eviction_settings_is_all_or_nothing(clients):
    for conn in clients:
        with pytest.raises(redis.ResponseError, match="maxmemory-eviction-tenacity"):
            conn.execute_command(
                "CONFIG", "SET", "maxmemory-samples", "7", "maxmemory-eviction-tenacity", "101"
            )
        assert conn.config_get("maxmemory-samples") == {"maxmemory-samples": "5"}
