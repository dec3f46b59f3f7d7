"""Differences from redis-server 7.0 found by a hunt with redis-py and redis-cli side by side, each
checked against a real redis-server where it runs (the ``ports`` fixture) and in-process."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time

import pytest
from helpers import child_env, wait_for
from resp_helpers import Raw, RunningServer, wait_blocked

from kv_backend import longdouble
from kv_backend.errors import KVError
from kv_backend.server import unixsock
from kv_backend.structures import CommandError, Structures

# A number beyond a double's range (2e308), which a long double holds (INCRBYFLOAT 1e308 on 1e308
# stores one close to it).
_BEYOND_DOUBLE = b"2" + b"0" * 308


@pytest.mark.parametrize("increment", ["inf", "-inf", "+inf", "Infinity"])
def test_incrbyfloat_of_an_infinity_on_a_value_beyond_a_double_is_redis_error(ports, increment):
    """INCRBYFLOAT of an infinity on a stored number a double cannot hold (a long double can, up to
    ~1.19e4932) answered a Python message (`ERR integer division result too large for a float`)."""
    replies = []
    for port in ports:
        conn = Raw(port, 2)
        try:
            assert conn.call("SET", "f", _BEYOND_DOUBLE) == b"+OK\r\n"
            assert conn.call("INCRBYFLOAT", "f", "0").startswith(b"$309\r\n")  # readable: a long double
            replies.append((conn.call("INCRBYFLOAT", "f", increment), conn.call("GET", "f")))
        finally:
            conn.close()
    assert replies[1] == replies[0]
    assert replies[1][0] == b"-ERR increment would produce NaN or Infinity\r\n"


def test_long_double_arithmetic_with_an_infinity_and_a_number_beyond_a_double():
    huge = longdouble.parse(b"1e4000")
    assert longdouble.add(huge, math.inf) == math.inf
    assert longdouble.add(-math.inf, huge) == -math.inf
    assert longdouble.add(-huge, math.inf) == math.inf
    assert longdouble.multiply(huge, -math.inf) == -math.inf
    assert longdouble.multiply(-huge, -math.inf) == math.inf
    with pytest.raises(ValueError):
        longdouble.multiply(longdouble.parse(b"0"), math.inf)


def test_structures_incrbyfloat_of_an_infinity_on_a_huge_value(tmp_path):
    st = Structures(str(tmp_path / "db"))
    try:
        st.set(b"f", _BEYOND_DOUBLE)
        with pytest.raises(CommandError, match=r"^ERR increment would produce NaN or Infinity$"):
            st.incrbyfloat(b"f", math.inf)
        with pytest.raises(CommandError, match=r"^ERR increment would produce NaN or Infinity$"):
            st.incrbyfloat(b"f", b"-inf")
        assert st.get(b"f") == _BEYOND_DOUBLE
    finally:
        st.close()


@pytest.mark.parametrize(
    "call",
    [
        ("BITPOS", "missing", "1", "a", "b", "c", "d"),
        ("BITPOS", "missing", "0", "0", "1", "BIT", "x"),
        ("BITPOS", "missing", "2", "0", "1", "BIT", "x"),
        ("BITPOS", "s", "1", "0", "1", "BIT", "x"),
        ("BITPOS", "s", "x", "0", "1", "BIT", "x"),
        ("BITPOS", "l", "1", "0", "1", "BIT", "x"),
        ("BITPOS", "l", "3", "0", "1", "BIT", "x"),
    ],
)
def test_bitpos_with_too_many_arguments_answers_as_redis(ports, call):
    """BITPOS of a missing key answers -1 (0 for a 0 bit) however many arguments follow, since
    Redis looks the key up before it counts them; kvb answered ERR syntax error."""
    replies = []
    for port in ports:
        conn = Raw(port, 2)
        try:
            conn.call("FLUSHALL")
            conn.call("SET", "s", "\xff")
            conn.call("RPUSH", "l", "a")
            replies.append(conn.call(*call))
        finally:
            conn.close()
    assert replies[1] == replies[0]


def _command(*args: str) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)


def _pipeline_beside_a_waiter(port: int, blocking: tuple[str, ...], pipeline: list[tuple[str, ...]]):
    """Run ``pipeline`` (sent in one write) while another client waits in ``blocking``: the
    pipeline's replies, the waiter's reply and the lists ``a`` and ``b`` after."""
    conn, waiter = Raw(port, 2), Raw(port, 2)
    try:
        conn.call("FLUSHALL")
        waiter.sock.sendall(_command(*blocking))
        wait_blocked(conn)
        conn.sock.sendall(b"".join(_command(*c) for c in pipeline))
        replies = [conn._read() for _ in pipeline]
        lists = [conn.call("LRANGE", key, "0", "-1") for key in ("a", "b")]
        return replies, waiter._read(), lists
    finally:
        conn.close()
        waiter.close()


@pytest.mark.parametrize(
    ("blocking", "pipeline"),
    [
        (("BLPOP", "a", "5"), [("RPUSH", "a", "x"), ("LPOP", "a")]),
        (("BLPOP", "a", "5"), [("RPUSH", "a", "x", "y"), ("LPOP", "a"), ("LLEN", "a")]),
        (("BLMOVE", "a", "b", "LEFT", "RIGHT", "5"), [("RPUSH", "a", "x"), ("LPOP", "a"), ("LPOP", "b")]),
        (("BZPOPMIN", "a", "5"), [("ZADD", "a", "1", "m"), ("ZPOPMIN", "a")]),
        (
            ("BLPOP", "a", "5"),  # a transaction is one command: its own pop takes first
            [("MULTI",), ("RPUSH", "a", "x"), ("LPOP", "a"), ("EXEC",), ("RPUSH", "a", "y")],
        ),
    ],
)
def test_a_waiter_is_served_right_after_the_command_that_fed_it(ports, blocking, pipeline):
    """A client blocked on a key gets what a command adds to it before the next command runs, as
    in Redis: kvb served waiters only after the whole pipeline (of every client read in the same
    turn), so a pipelined RPUSH then LPOP took the element from under the waiting BLPOP."""
    real, ours = (_pipeline_beside_a_waiter(port, blocking, pipeline) for port in ports)
    assert ours == real


def _listener(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    return sock


def _ping_unix(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"PING\r\n")
        return sock.recv(100)


def test_a_unix_socket_a_server_listens_on_is_not_taken(tmp_path):
    path = str(tmp_path / "s.sock")
    live = _listener(path)
    try:
        with pytest.raises(KVError, match="another server is listening on it; choose another --unixsocket"):
            unixsock.claim(path)
        assert os.path.exists(path)
    finally:
        live.close()
    unixsock.claim(path)  # nobody listens any more: a stale socket file, removed
    assert not os.path.exists(path)
    (tmp_path / "plain").write_bytes(b"x")
    unixsock.claim(str(tmp_path / "plain"))  # not a socket: left for the bind to refuse
    assert (tmp_path / "plain").read_bytes() == b"x"


def test_a_server_removes_its_unix_socket_only_while_the_path_is_still_its_own(tmp_path):
    path = str(tmp_path / "s.sock")
    first = _listener(path)
    bound = unixsock.identity(path)
    first.close()
    os.unlink(path)
    time.sleep(0.05)  # a later file (which may get the same inode) has a later change time
    second = _listener(path)  # another server bound the path since
    try:
        unixsock.release(path, bound)
        assert os.path.exists(path)
        unixsock.release(path, unixsock.identity(path))
        assert not os.path.exists(path)
    finally:
        second.close()


def test_a_second_serve_on_the_same_unix_socket_leaves_the_first_one_reachable(tmp_path):
    """A second kvb serve given the --unixsocket of a running one (several may serve one store)
    removed the first one's socket and bound its own; when it stopped it removed the path, so the
    first server, still running, could no longer be reached there. It now refuses to start (exit 2),
    and a server that stops removes the path only while it is still its own socket."""
    path = str(tmp_path / "kvb.sock")
    store = str(tmp_path / "store")
    first = RunningServer(store, unixsocket=path).start()
    try:
        wait_for(lambda: os.path.exists(path), 20, "the unix socket")
        cmd = [sys.executable, "-m", "kv_backend", "serve", "--dir", store, "--port", "0"]
        try:
            second = subprocess.run(
                [*cmd, "--unixsocket", path], env=child_env(), capture_output=True, text=True, timeout=30
            )
        except subprocess.TimeoutExpired:
            pytest.fail("a second server started on the unix socket of a running one")
        assert second.returncode == 2, second.stderr
        assert f"cannot listen on the unix socket {path}: another server is listening on it" in second.stderr
        assert _ping_unix(path) == b"+PONG\r\n"
        os.unlink(path)  # as if another server had taken the path over
        other = _listener(path)
        try:
            assert first.stop() == 0
            assert os.path.exists(path)  # the other one's socket stays
        finally:
            other.close()
    finally:
        first.stop()


@pytest.mark.parametrize("section", ["server", "clients", "stats", "persistence", "replication", "cluster"])
def test_info_of_a_section_without_key_counts_does_not_count_the_keys(tmp_path, monkeypatch, section):
    """INFO server (clients' version check, monitoring probes) counted every key of the store for
    the keyspace line it did not show: 60 ms for 200,000 keys, with every client waiting."""
    from kv_backend.server import resp

    server = resp.Server(str(tmp_path / "store"))
    try:
        conn = resp.Connection(server)
        conn.execute([b"SET", b"k", b"v", b"EX", b"100"])

        def walked(*args):
            raise AssertionError("INFO walked the key names")

        for name in ("dbsize", "expiring"):
            monkeypatch.setattr(server.st, name, walked)
        reply = conn.execute([b"INFO", section.encode()])
        assert f"# {section.capitalize()}\r\n".encode() in bytes(reply)
        assert b"# Keyspace" not in bytes(reply)
        monkeypatch.undo()
        assert b"db0:keys=1,expires=1," in bytes(conn.execute([b"INFO", b"keyspace"]))
        assert b"db0:keys=1,expires=1," in bytes(conn.execute([b"INFO"]))
    finally:
        server.db.close()


def test_zrange_by_rank_walks_from_the_nearer_end(tmp_path, monkeypatch):
    """ZRANGE k -1 -1 (the highest member; also ZRANGE k -10 -1 and ZREVRANGE's last ranks) walked
    the whole sorted set from its lowest score: 66 ms for 100,000 members where ZREVRANGE k 0 0
    took 0.1 ms. It now walks from the nearer end, with the same answers."""
    st = Structures(str(tmp_path / "db"))
    try:
        members = {b"m%03d" % i: float(i // 3) for i in range(300)}  # equal scores: ties by member
        st.zadd(b"z", members)
        ordered = sorted(members, key=lambda m: (members[m], m))
        bounds = [-400, -301, -300, -299, -150, -2, -1, 0, 1, 2, 149, 150, 298, 299, 300, 400]
        for start in bounds:
            for end in bounds:
                for desc in (False, True):
                    model = list(reversed(ordered)) if desc else ordered
                    n = len(model)
                    lo = max(n + start, 0) if start < 0 else start
                    hi = min(n + end if end < 0 else end, n - 1) + 1
                    expected = [(m, members[m]) for m in model[lo:hi]] if lo < hi else []
                    got = st.zrange(b"z", start, end, desc=desc, withscores=True)
                    assert got == expected, (start, end, desc)
        read = []
        real = Structures._zscan_order

        def counted(self, name, reverse=False):
            for item in real(self, name, reverse):
                read.append(item)
                yield item

        monkeypatch.setattr(Structures, "_zscan_order", counted)
        for start, end, desc, expected in [
            (-1, -1, False, [ordered[-1]]),
            (-2, -1, True, [ordered[1], ordered[0]]),
            (290, 298, False, ordered[290:299]),
            (0, 2, False, ordered[:3]),
        ]:
            read.clear()
            assert st.zrange(b"z", start, end, desc=desc) == expected
            assert len(read) <= 10, (start, end, desc)
    finally:
        st.close()


def test_zrank_walks_from_both_ends(tmp_path, monkeypatch):
    """ZRANK of a member near the top (ZREVRANK near the bottom) walked the whole sorted set from
    the other end; it now walks from both ends at once, with the same answers."""
    st = Structures(str(tmp_path / "db"))
    try:
        members = {b"m%03d" % i: float(i // 4) for i in range(101)}  # ties ranked by member
        st.zadd(b"z", members)
        ordered = sorted(members, key=lambda m: (members[m], m))
        for rank, member in enumerate(ordered):
            assert st.zrank(b"z", member) == rank
            assert st.zrevrank(b"z", member, withscore=True) == [100 - rank, members[member]]
        assert st.zrank(b"z", b"nope") is None
        read = []
        real = st.db.keys

        def counted(*args, **kwargs):
            for key in real(*args, **kwargs):
                read.append(key)
                yield key

        monkeypatch.setattr(st.db, "keys", counted)
        near_ends = [(ordered[-1], False, 100), (ordered[0], True, 100), (ordered[98], False, 98)]
        for member, desc, rank in near_ends:
            read.clear()
            assert st.zrank(b"z", member, desc=desc) == rank
            assert len(read) <= 6
    finally:
        st.close()
