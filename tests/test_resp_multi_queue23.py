"""Commands queued in MULTI and the client query buffer limit, against redis-server 7.0 (#7).

redis-server 7.0 does not count a transaction's queue against client-query-buffer-limit (the queue is
no longer input): a client may queue more than the limit and EXEC runs it all, in kvb serve as in
Redis. Redis shows the queue in CLIENT LIST (multi=, multi-mem=, within tot-mem) and bounds it only
by maxmemory-clients and maxmemory, both off by default and fixed at 0 in kvb serve; kvb serve's
CLIENT LIST said multi-mem=0 whatever was queued, so the client holding it could not be found to be
ended with CLIENT KILL. It now counts the bytes of the queued commands' arguments.
"""

from __future__ import annotations

import pytest
import redis

VALUE = b"x" * 10_000
QUEUED = 150  # 1.5 MB of arguments, past a 1 MB query buffer limit


@pytest.fixture
def port(port: int) -> int:
    """conftest.py's ``port`` (each server in turn, its database empty), its query buffer limit 1 MB."""
    with redis.Redis(port=port) as r:
        r.config_set("client-query-buffer-limit", "1mb")
    yield port
    with redis.Redis(port=port) as r:
        r.config_set("client-query-buffer-limit", "1gb")


def _client(port: int) -> tuple[redis.Connection, int]:
    conn = redis.Connection(port=port, socket_timeout=20)
    conn.connect()
    conn.send_command("CLIENT", "ID")
    return conn, conn.read_response()


def _call(conn: redis.Connection, *args):
    conn.send_command(*args)
    return conn.read_response()


def _listed(r: redis.Redis, client_id: int) -> dict:
    (line,) = [c for c in r.client_list() if int(c["id"]) == client_id]
    return line


def test_a_queue_past_the_query_buffer_limit_runs_and_client_list_shows_it(port):
    r = redis.Redis(port=port)
    conn, client_id = _client(port)
    assert _call(conn, "MULTI") == b"OK"
    for i in range(QUEUED):
        assert _call(conn, "SET", f"k{i}", VALUE) == b"QUEUED"
    line = _listed(r, client_id)
    queued_bytes = QUEUED * len(VALUE)
    assert line["multi"] == str(QUEUED)
    assert int(line["multi-mem"]) >= queued_bytes  # (Redis adds its own overhead per command)
    assert int(line["tot-mem"]) >= int(line["multi-mem"])
    assert _call(conn, "EXEC") == [b"OK"] * QUEUED
    assert r.dbsize() == QUEUED and r.get("k0") == VALUE
    line = _listed(r, client_id)
    assert (line["multi"], line["multi-mem"]) == ("-1", "0")
    conn.disconnect()
    r.close()


def test_client_kill_ends_a_queue_and_nothing_of_it_runs(port):
    r = redis.Redis(port=port)
    conn, client_id = _client(port)
    assert _call(conn, "MULTI") == b"OK"
    assert _call(conn, "SET", "queued", VALUE) == b"QUEUED"
    assert int(_listed(r, client_id)["multi-mem"]) >= len(VALUE)
    assert r.client_kill_filter(_id=client_id) == 1
    with pytest.raises(redis.ConnectionError):
        _call(conn, "EXEC")
    assert r.exists("queued") == 0
    conn.disconnect()
    r.close()
