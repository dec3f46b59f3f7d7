"""A RESP3 client's messages caused by its own pipelined commands arrive in turn, as from Redis.

kvb sent a pipeline's replies together once the pipeline had run, but wrote a message for the
same client (a keyspace event of its own write, its own PUBLISH to a channel it listens to) at
once: the messages of a pipelined ``PSUBSCRIBE``, ``SET``, ``DEL`` arrived before the reply to
``PSUBSCRIBE`` (even before ``HELLO 3``'s), where Redis sends each after the replies of the
commands before the one that caused it.
"""

from __future__ import annotations

from resp_helpers import Raw

PUSH_CASES = [
    (
        ("PSUBSCRIBE", "__key*__:*"),
        ("SET", "z", "1"),
        ("INCR", "z"),
        ("GET", "z"),
        ("RENAME", "z", "w"),
        ("DEL", "w"),
    ),
    (
        ("SUBSCRIBE", "ch"),
        ("PUBLISH", "ch", "one"),
        ("SET", "y", "1"),
        ("PUBLISH", "ch", "two"),
        ("UNSUBSCRIBE", "ch"),
        ("PUBLISH", "ch", "three"),
    ),
]


def _command(*words: str) -> bytes:
    data = [w.encode() for w in words]
    return b"*%d\r\n" % len(data) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in data)


def _pipeline(port: int, commands: tuple[tuple[str, ...], ...]) -> bytes:
    """On a new RESP3 connection, send ``commands`` and ECHO end in one write; return what came back."""
    conn = Raw(port, 3)
    try:
        conn.sock.sendall(b"".join(_command(*c) for c in commands) + _command("ECHO", "end"))
        got = b""
        while not got.endswith(b"$3\r\nend\r\n"):
            chunk = conn.sock.recv(65536)
            assert chunk, got
            got += chunk
        return got
    finally:
        conn.close()


def test_messages_of_a_pipelines_own_commands_come_in_turn(ports):
    conns = [Raw(port, 2) for port in ports]
    try:
        for conn in conns:
            assert conn.call("FLUSHALL") == b"+OK\r\n"
            assert conn.call("CONFIG", "SET", "notify-keyspace-events", "KEA") == b"+OK\r\n"
        for commands in PUSH_CASES:
            theirs, ours = (_pipeline(port, commands) for port in ports)
            assert ours == theirs, commands
        # the first reply is PSUBSCRIBE's; SET's events come after it and before SET's +OK
        first = _pipeline(ports[1], PUSH_CASES[0][:2])
        assert first.startswith(b">3\r\n$10\r\npsubscribe\r\n")
        assert first.index(b"__keyevent@0__:set") < first.index(b"+OK\r\n")
    finally:
        for conn in conns:
            conn.call("CONFIG", "SET", "notify-keyspace-events", "")
            conn.close()
