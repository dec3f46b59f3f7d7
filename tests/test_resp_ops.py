"""Operational commands of ``kvb serve`` (MONITOR, SLOWLOG, MEMORY, LATENCY) against a real
redis-server: the lines a MONITOR client receives (format, escaping, redaction, which commands are
shown and in what order), replies and error texts compared byte for byte."""

from __future__ import annotations

import re
import socket
import time

import pytest
from helpers import require_tool
from resp_helpers import RunningServer, start_redis_server, stop_process
from test_resp_geo import Raw


@pytest.fixture(scope="module")
def ports(tmp_path_factory):
    """(redis-server port, kvb serve port)."""
    require_tool("redis-server")
    ours = RunningServer(str(tmp_path_factory.mktemp("kvb") / "store")).start()
    proc, port = start_redis_server(str(tmp_path_factory.mktemp("redis")))
    yield port, ours.port
    stop_process(proc)
    assert ours.stop() == 0


def _wire(*args: str | bytes) -> bytes:
    words = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)


def _read_until_quiet(sock: socket.socket, settle: float = 0.15) -> bytes:
    """What the server sent until it stayed quiet for ``settle`` seconds."""
    sock.settimeout(settle)
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return out
        if not data:
            return out
        out += data


_STAMP = re.compile(rb"^\+(\d+)\.(\d{6}) \[0 (127\.0\.0\.1:\d+|lua)\] ", re.M)


def _monitored(port: int, commands: list[tuple[str | bytes, ...]]) -> tuple[bytes, list[str]]:
    """Run ``commands`` one by one on a client while another MONITORs: the normalised monitor
    stream (times and client ports replaced), checking every time is now and every address
    is the client's or ``lua``."""
    monitor = socket.create_connection(("127.0.0.1", port), timeout=5)
    monitor.sendall(_wire("MONITOR"))
    assert _read_until_quiet(monitor, 0.05) == b"+OK\r\n"
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    here = f"127.0.0.1:{client.getsockname()[1]}"
    replies = []
    start = time.time()
    for cmd in commands:
        client.sendall(_wire(*cmd))
        replies.append(_read_until_quiet(client, 0.02).decode("latin-1"))
    stream = _read_until_quiet(monitor)
    for sec, usec, where in _STAMP.findall(stream):
        assert start - 1 <= int(sec) + int(usec) / 1e6 <= time.time() + 1
        assert where.decode() in (here, "lua")
    client.close()
    monitor.close()
    return _STAMP.sub(lambda m: b"+T [" + (b"lua" if m[3] == b"lua" else b"C") + b"] ", stream), replies


MONITORED = [
    ("SET", "k", b'a b"c\\\x01\n\r\t\x07\x08\xff \xc3\xa9'),
    ("AUTH", "x"),
    ("AUTH", "u", "p"),
    ("AUTH", "a", "b", "c"),
    ("HELLO", "3", "auth", "default", "pw", "SETNAME", "a b"),
    ("HELLO", "2", "SETNAME", "x", "AUTH", "u", "p"),
    ("HELLO", "4", "AUTH", "default", "pw"),
    ("HELLO", "3", "AUTH", "u"),
    ("HELLO", "3", "foo", "AUTH", "u", "p"),
    ("HELLO", "2"),
    ("GET", "a", "b"),  # arity error: not run, not shown
    ("NOSUCH", "a"),
    ("MULTI",),
    ("SET", "a", "1"),
    ("INCR", "a"),
    ("EXEC",),
    ("MULTI",),
    ("SET", "a"),
    ("EXEC",),
    ("EXEC",),
    ("EVAL", "redis.call('set','b','2'); return redis.pcall('get','b')", "0"),
    ("EVAL", "return redis.call('lpush','b','1')", "0"),
    ("EVAL", "return redis.pcall('set','a')", "0"),
    ("EVAL", "return redis.call('nosuch')", "0"),
    ("CONFIG", "SET", "notify-keyspace-events", ""),
    ("CONFIG", "GET", "x"),
    ("CLIENT", "SETNAME", "x"),
    ("CLIENT", "LIST"),
    ("CLIENT", "GETNAME"),
    ("COMMAND", "COUNT"),
    ("PING",),
    ("RESET",),
    ("set", "x" * 200, "y"),
    ("QUIT",),
]


def test_monitor_shows_what_redis_shows(ports):
    """Every command run is shown as Redis shows it: the time with microseconds, the client's address
    (``lua`` for a script's commands), each argument quoted and escaped as Redis escapes it, AUTH and
    HELLO's AUTH passwords ``(redacted)`` where Redis's parsing reached them, queued commands when
    EXEC runs them (before EXEC), a script before its commands, admin commands (CONFIG, CLIENT LIST)
    and commands refused before running (unknown, wrong arity) not at all; kvb had no MONITOR."""
    real, ours = (_monitored(p, MONITORED)[0] for p in ports)
    assert ours == real
    assert b'"SET" "k" "a b\\"c\\\\\\x01\\n\\r\\t\\a\\b\\xff \\xc3\\xa9"' in ours
    assert b'"AUTH" "(redacted)" "(redacted)"\r\n' in ours


def test_monitor_client_state(ports):
    """A monitor sees its own commands after their replies, may not touch keys (it is a replica to
    Redis), ignores a second MONITOR without a reply, stops with RESET and is refused inside EXEC and
    in RESP2 subscribe mode; MONITOR is not allowed in scripts."""
    sessions = [
        b"MONITOR\r\nMONITOR\r\nPING\r\nGET a\r\nSET a 1\r\nCLIENT NO-EVICT on\r\nRESET\r\nGET a\r\n",
        b"MULTI\r\nMONITOR\r\nEXEC\r\n",
        b"SUBSCRIBE a\r\nMONITOR\r\n",
        b"HELLO 3\r\nSUBSCRIBE a\r\nMONITOR\r\nPING\r\n",
        b"MONITOR\r\nQUIT\r\n",
    ]
    for session in sessions:
        got = []
        for port in ports:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(session)
            out = _read_until_quiet(sock)
            sock.close()
            out = re.sub(rb"\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\]", b"+T", out)
            got.append(re.sub(rb":\d+\r\n\$4\r\nmode", b":ID\r\n$4\r\nmode", out))
        real, ours = got
        if session.startswith(b"HELLO"):  # the HELLO map differs (server, version, id)
            real, ours = real[real.index(b">3") :], ours[ours.index(b">3") :]
        assert ours == real, session
    conns = [Raw(p, 2) for p in ports]
    try:
        real, ours = (c.call("EVAL", "return redis.call('monitor')", "0") for c in conns)
        assert ours.split(b" script:")[0].rstrip() == real.split(b" script:")[0].rstrip()
    finally:
        for c in conns:
            c.close()
