"""CLIENT KILL takes the client out of the server at once, as Redis frees it.

kvb closed the killed client's connection but left it blocked, subscribed and listed until the
event loop saw the connection closed: ``CLIENT KILL ID <a BLPOP client>`` then ``LPUSH q x`` in
one pipeline handed ``x`` to the closing client, so the acknowledged element was lost (LLEN 0,
Redis 1); a PUBLISH right after counted the killed subscriber, CLIENT LIST still listed it and a
second CLIENT KILL of its address answered OK instead of 'No such client'.
"""

from __future__ import annotations

from resp_helpers import Raw, wait_blocked


def _client_id(conn: Raw) -> str:
    return conn.call("CLIENT", "ID")[1:-2].decode()


def _closed(conn: Raw) -> bool:
    conn.sock.settimeout(5)
    try:
        return conn.sock.recv(100) == b""
    except (TimeoutError, ConnectionResetError):
        return False


def test_a_killed_blocked_client_takes_nothing_pushed_after_the_kill(ports):
    results = []
    for port in ports:
        admin, waiter = Raw(port, 2), Raw(port, 2)
        try:
            assert admin.call("FLUSHALL") == b"+OK\r\n"
            wid = _client_id(waiter)
            waiter.sock.sendall(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
            wait_blocked(admin)
            results.append(
                admin.pipeline(
                    [("CLIENT", "KILL", "ID", wid), ("LPUSH", "q", "x"), ("LRANGE", "q", "0", "-1")]
                )
            )
            assert _closed(waiter)
        finally:
            admin.close()
            waiter.close()
    assert results[1] == results[0] == [b":1\r\n", b":1\r\n", b"*1\r\n$1\r\nx\r\n"]


def test_a_killed_subscriber_is_gone_for_the_commands_after_the_kill(ports):
    results = []
    for port in ports:
        admin, subscriber = Raw(port, 2), Raw(port, 2)
        try:
            sid = _client_id(subscriber)
            host, port_ = subscriber.sock.getsockname()[:2]
            addr = f"{host}:{port_}"
            assert subscriber.call("SUBSCRIBE", "ch").startswith(b"*3\r\n$9\r\nsubscribe")
            results.append(
                admin.pipeline(
                    [
                        ("CLIENT", "KILL", addr),
                        ("PUBLISH", "ch", "m"),
                        ("CLIENT", "LIST", "ID", sid),
                        ("CLIENT", "KILL", addr),
                        ("CLIENT", "KILL", "ID", sid),
                    ]
                )
            )
            assert _closed(subscriber)
        finally:
            admin.close()
            subscriber.close()
    assert (
        results[1]
        == results[0]
        == [b"+OK\r\n", b":0\r\n", b"$0\r\n\r\n", b"-ERR No such client\r\n", b":0\r\n"]
    )
