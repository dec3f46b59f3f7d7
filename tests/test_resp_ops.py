"""Operational commands of ``kvb serve`` (MONITOR, SLOWLOG, MEMORY, LATENCY) against a real
redis-server: the lines a MONITOR client receives (format, escaping, redaction, which commands are
shown and in what order), replies and error texts compared byte for byte."""

from __future__ import annotations

import re
import socket
import time

from resp_helpers import Raw


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


def _session(port: int, *steps: tuple[int, bytes]) -> list[bytes]:
    """Send each step's inline commands on its connection (0 or 1); the replies, with client
    addresses and each slowlog entry's id, time and duration masked."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    out = []
    for which, data in steps:
        conns[which].sendall(data)
        got = _read_until_quiet(conns[which], 0.1)
        got = re.sub(rb"127\.0\.0\.1:\d+", b"ADDR", got)
        got = re.sub(rb"\*6\r\n:\d+\r\n:\d+\r\n:\d+\r\n", b"*6\r\nENTRY\r\n", got)
        out.append(got)
    for c in conns:
        c.close()
    return out


def test_slowlog_as_redis(ports):
    """SLOWLOG GET/LEN/RESET/HELP and the slowlog-log-slower-than / slowlog-max-len parameters answer
    as redis-server's: entries newest first with the client's address and name, a script's commands
    logged (as ``?:0``) before the script, the commands EXEC ran but not EXEC, passwords redacted,
    more than 32 arguments and strings over 128 bytes cut with Redis's markers, max-len keeping the
    newest; the count and CONFIG SET errors in Redis's words. kvb had no SLOWLOG."""
    many = b"RPUSH " + b" ".join(b"%d" % i for i in range(40)) + b"\r\n"
    steps = [
        (0, b"CONFIG SET slowlog-log-slower-than 0\r\nCLIENT SETNAME nm\r\nSLOWLOG RESET\r\nSET a b\r\n"),
        (0, b"GET a b\r\nLPUSH a 1\r\nNOSUCH\r\n"),
        (1, b"EVAL \"redis.call('set','q','1') return 1\" 0\r\nMULTI\r\nSET a 1\r\nEXEC\r\nAUTH x\r\n"),
        (1, many + b"SET " + b"x" * 130 + b" v\r\n"),
        (0, b"SLOWLOG GET 1\r\nSLOWLOG GET -1\r\nSLOWLOG GET x\r\nSLOWLOG GET 0\r\nSLOWLOG GET -2\r\n"),
        (0, b"SLOWLOG LEN\r\nSLOWLOG LEN x\r\nSLOWLOG GET 1 2\r\nSLOWLOG HELP\r\nSLOWLOG foo\r\n"),
        (0, b"SLOWLOG\r\nSLOWLOG RESET x\r\nCONFIG SET slowlog-max-len 2\r\nSET c d\r\nSLOWLOG LEN\r\n"),
        (0, b"SLOWLOG GET\r\nCONFIG GET slowlog-max-len\r\nCONFIG GET slowlog-log-slower-than\r\n"),
        (0, b"CONFIG SET slowlog-log-slower-than -2\r\nCONFIG SET slowlog-max-len -1\r\n"),
        (0, b"CONFIG SET slowlog-max-len x\r\nCONFIG SET slowlog-log-slower-than 010\r\n"),
        (0, b"CONFIG SET slowlog-log-slower-than -1\r\nSLOWLOG RESET\r\nSET a b\r\nSLOWLOG LEN\r\n"),
        (0, b"CONFIG SET slowlog-log-slower-than 0\r\nHELLO 3\r\nSLOWLOG GET 2\r\n"),
        (0, b"CONFIG SET slowlog-log-slower-than 10000 slowlog-max-len 128\r\nSLOWLOG RESET\r\n"),
    ]
    real, ours = (_session(p, *steps) for p in ports)
    real[-2], ours[-2] = (
        re.sub(
            rb"%.*?modules\r\n\*0\r\n(\$11\r\nkvb_version\r\n\$\d+\r\n[^\r]*\r\n)?", b"HELLO", x, flags=re.S
        )
        for x in (real[-2], ours[-2])
    )
    assert ours == real
    assert b"... (10 more arguments)" in ours[4] and b"... (2 more bytes)" in ours[4]


def test_slowlog_default_threshold(ports):
    """By default (as Redis: 10 ms, 128 entries) a fast command is not logged and a slow one is,
    with its duration in microseconds. (On a busy machine a fast command, such as one of the
    script's own TIME calls, may take the server over 10 ms, and is then rightly logged: what is
    checked is that every entry took 10 ms or more, and that the newest is the script.)"""
    conn = Raw(ports[1], 2)
    entry = re.compile(rb"\*6\r\n:\d+\r\n:\d+\r\n:(\d+)\r\n\*\d+\r\n\$\d+\r\n([A-Z]+)\r\n")

    def slowlog() -> list[tuple[int, bytes]]:
        """(microseconds, command name) of each entry, newest first."""
        log = conn.call("SLOWLOG", "GET")
        entries = [(int(micros), name) for micros, name in entry.findall(log)]
        assert log.startswith(b"*%d\r\n" % len(entries)), log
        return entries

    try:
        assert conn.call("CONFIG", "GET", "slowlog-*") == (
            b"*4\r\n$23\r\nslowlog-log-slower-than\r\n$5\r\n10000\r\n$15\r\nslowlog-max-len\r\n$3\r\n128\r\n"
        )
        conn.call("SLOWLOG", "RESET")
        conn.call("SET", "a", "b")
        assert all(micros >= 10000 for micros, _ in slowlog())
        conn.call("SLOWLOG", "RESET")
        script = (
            "local t = redis.call('TIME') repeat local n = redis.call('TIME') "
            "until (n[1] - t[1]) * 1000000 + n[2] - t[2] > 12000"
        )
        conn.call("EVAL", script, "0")
        (micros, name), *inside = slowlog()
        assert name == b"EVAL" and 12000 <= micros < 5_000_000
        assert all(micros >= 10000 and name == b"TIME" for micros, name in inside), inside
    finally:
        conn.close()
