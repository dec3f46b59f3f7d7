"""``INFO clients`` counts ``clients_in_timeout_table`` as Redis 7 does (#7).

The field, the clients blocked with a timeout (a blocking command's timeout other than 0), was
missing from kvb serve's INFO. The same steps run against redis-server and kvb serve.
"""

from __future__ import annotations

import redis
from helpers import wait_for
from resp_helpers import info_number, wait_blocked


def _in_table(r: redis.Redis) -> int:
    return info_number(r, "clients", "clients_in_timeout_table")


def _block(port: int, *args: str) -> tuple[redis.Connection, int]:
    """A connection that sent ``args`` (a blocking command) and reads no reply yet, and its client id."""
    conn = redis.Connection(port=port, socket_timeout=10)
    conn.connect()
    conn.send_command("CLIENT", "ID")
    client_id = conn.read_response()
    conn.send_command(*args)
    return conn, client_id


def test_clients_in_timeout_table_counts_the_clients_blocked_with_a_timeout(port):
    r = redis.Redis(port=port)
    assert _in_table(r) == 0
    for_ever, _ = _block(port, "BLPOP", "k1", "0")
    timed, timed_id = _block(port, "BLPOP", "k2", "k3", "100")
    xread, _ = _block(port, "XREAD", "BLOCK", "100000", "STREAMS", "s", "$")
    moving, _ = _block(port, "BLMOVE", "k4", "d", "LEFT", "RIGHT", "0")
    wait_blocked(r, 4)
    assert _in_table(r) == 2  # the BLPOP with 100 s and the XREAD BLOCK; not those waiting for ever

    r.rpush("k1", "v")  # serves the BLPOP waiting for ever: the count stays
    assert for_ever.read_response() == [b"k1", b"v"]
    wait_blocked(r, 3)
    assert _in_table(r) == 2
    assert r.client_unblock(timed_id) == 1
    assert timed.read_response() is None
    assert _in_table(r) == 1
    xread.disconnect()  # a blocked client that goes away leaves the table
    wait_for(lambda: _in_table(r) == 0, 10, "the XREAD's disconnect seen")
    short, _ = _block(port, "BLPOP", "k5", "0.05")
    assert short.read_response() is None  # timed out: out of the table
    assert _in_table(r) == 0
    for conn in (for_ever, timed, moving, short):
        conn.disconnect()
    r.close()
