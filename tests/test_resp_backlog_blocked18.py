"""A client closed for its pub/sub backlog takes no element it was blocked for.

A RESP3 client may subscribe and block (BLPOP) at once. When it read nothing and its messages
went over the 32 MiB pub/sub backlog, the server dropped its connection but left it blocked
until the event loop saw it closed: an LPUSH in the same read as the PUBLISH that dropped it
popped the element for it and lost it (LPUSH answered 1, the list stayed empty).
"""

from __future__ import annotations

from resp_helpers import Raw, RunningServer, wait_blocked

MIB = b"x" * (1024 * 1024)
LIMIT = 32 * 1024 * 1024  # the server's pub/sub backlog limit


def _omem(conn: Raw, client_id: bytes) -> int:
    """CLIENT LIST's omem of a client: the bytes waiting in the server's buffer for it."""
    line = conn.call("CLIENT", "LIST", "ID", client_id)
    return int(line.split(b" omem=")[1].split(b" ")[0])


def test_a_subscriber_dropped_for_its_backlog_takes_no_element(tmp_path):
    server = RunningServer(str(tmp_path / "db")).start()
    try:
        publisher, slow = Raw(server.port, 2), Raw(server.port, 3)
        try:
            slow_id = slow.call("CLIENT", "ID")[1:-2]
            slow.sock.sendall(
                b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n"
            )
            wait_blocked(publisher)
            # Fill its backlog just over the limit (the kernel's buffers take their part first),
            # so that the next message drops it.
            while _omem(publisher, slow_id) <= LIMIT:
                assert publisher.call(b"PUBLISH", b"ch", MIB) == b":1\r\n"
            replies = publisher.pipeline(
                [(b"PUBLISH", b"ch", b"m"), (b"LPUSH", b"q", b"x"), (b"LRANGE", b"q", b"0", b"-1")]
            )
            assert replies[1:] == [b":1\r\n", b"*1\r\n$1\r\nx\r\n"]
            assert b"id=%b " % slow_id not in publisher.call("CLIENT", "LIST")  # it was dropped
        finally:
            publisher.close()
            slow.close()
    finally:
        server.stop()
