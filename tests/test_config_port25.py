"""CONFIG SET port at run time, as redis-server 7.0 takes it: the plaintext listener moves to the new
port (on the addresses bound at start), the connections made through the old one stay, ``0`` closes
it; a port that cannot be listened on fails the whole CONFIG SET with Redis's reply, nothing changed.
Checked against redis-server's replies where it is installed.

The ports moved to are ones the system gave as free, which a parallel test may be given too and listen
on first: a CONFIG SET refused for it moves to others (helpers.move_to_free_ports), and a port the
server left is checked to be no longer the server's (helpers.listens_on), whatever listens there now."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port, listens_on, move_to_free_ports
from resp_helpers import Raw, RunningServer, start_redis_server, stop_process
from tls_helpers import Certs

LISTEN_FAILED = b"Unable to listen on this port. Check server logs."


def failed(name: str, reason: bytes) -> bytes:
    return b"-ERR CONFIG SET failed (possibly related to argument '%s') - %s\r\n" % (name.encode(), reason)


def bulk(text: str) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(text), text.encode())


def config_get(conn: Raw, name: str) -> bytes:
    """CONFIG GET's one value for ``name`` (its bulk string's bytes)."""
    reply = conn.call("CONFIG", "GET", name)
    assert reply.startswith(b"*2\r\n" + bulk(name)), reply
    return reply[len(b"*2\r\n" + bulk(name)) :]


def tcp_port(conn: Raw) -> int:
    info = conn.call("INFO", "server").decode()
    return int(info.split("tcp_port:", 1)[1].split("\r\n", 1)[0])


def taken(reply: bytes) -> bool:
    """Whether a CONFIG SET failed for a port that could not be listened on (another process's)."""
    return LISTEN_FAILED in reply


def serves(port: int, pid: int) -> bool:
    """Whether a new connection to ``port`` is served by the process ``pid``."""
    conn = Raw(port, 2)
    try:
        return b"process_id:%d\r\n" % pid in conn.call("INFO", "server")
    finally:
        conn.close()


def taken_port() -> Iterator[int]:
    """A port another socket listens on (on 127.0.0.1), for as long as the generator is not closed."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def kvb(tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(str(tmp_path / "store")).start()
    yield server
    assert server.stop() == 0


def test_the_port_moves_old_connections_stay_new_ones_on_the_new_port(kvb: RunningServer) -> None:
    assert kvb.proc is not None
    first = kvb.port
    old = Raw(first, 2)
    (moved,), reply = move_to_free_ports(lambda port: old.call("CONFIG", "SET", "port", str(port)), taken)
    assert reply == b"+OK\r\n"
    assert listens_on(kvb.proc.pid, first) is False
    assert serves(moved, kvb.proc.pid)
    assert old.call("SET", "k", "v") == b"+OK\r\n"  # (made through the old port: stays)
    new = Raw(moved, 2)
    assert new.call("GET", "k") == bulk("v")
    assert config_get(new, "port") == bulk(str(moved))
    assert tcp_port(old) == moved
    assert old.call("CONFIG", "SET", "port", str(moved)) == b"+OK\r\n"  # (its own port: nothing to do)
    assert serves(moved, kvb.proc.pid)
    old.close()
    new.close()


def test_a_port_in_use_fails_the_config_set_and_nothing_changes(kvb: RunningServer) -> None:
    assert kvb.proc is not None
    conn = Raw(kvb.port, 2)
    busy = taken_port()
    port = next(busy)
    assert conn.call("CONFIG", "SET", "loglevel", "debug", "port", str(port)) == failed("port", LISTEN_FAILED)
    busy.close()
    assert config_get(conn, "port") == bulk(str(kvb.port))
    assert config_get(conn, "loglevel") == bulk("notice")
    assert tcp_port(conn) == kvb.port
    assert serves(kvb.port, kvb.proc.pid)
    conn.close()


def test_a_bad_other_value_leaves_the_port_unmoved(kvb: RunningServer) -> None:
    assert kvb.proc is not None
    conn = Raw(kvb.port, 2)
    moved = free_port()
    reply = conn.call("CONFIG", "SET", "port", str(moved), "maxclients", "0")
    assert reply == failed("maxclients", b"argument must be between 1 and 4294967295 inclusive")
    assert listens_on(kvb.proc.pid, moved) is False
    assert serves(kvb.port, kvb.proc.pid)
    conn.close()


def test_port_0_closes_the_listener_and_a_connection_made_before_opens_another(kvb: RunningServer) -> None:
    assert kvb.proc is not None
    conn = Raw(kvb.port, 2)
    assert conn.call("CONFIG", "SET", "port", "0") == b"+OK\r\n"
    # (as redis-server: listening nowhere, but for this connection)
    assert listens_on(kvb.proc.pid, kvb.port) is False
    assert config_get(conn, "port") == bulk("0")
    assert tcp_port(conn) == 0
    assert conn.call("CONFIG", "SET", "port", "0") == b"+OK\r\n"
    (again,), reply = move_to_free_ports(lambda port: conn.call("CONFIG", "SET", "port", str(port)), taken)
    assert reply == b"+OK\r\n"
    assert serves(again, kvb.proc.pid)
    kvb.port = again
    conn.close()


def test_port_and_tls_port_in_one_config_set_all_or_none(kvb: RunningServer, certs: Certs) -> None:
    """Whichever of the two cannot be listened on, neither moves; the one named first is blamed."""
    assert kvb.proc is not None
    conn = Raw(kvb.port, 2)
    tls = ["tls-cert-file", certs.cert, "tls-key-file", certs.key, "tls-auth-clients", "no"]
    busy = taken_port()
    port = str(next(busy))
    # (a free port another process took too would be blamed first: another one then)
    (plain,), reply = move_to_free_ports(
        lambda plain: conn.call("CONFIG", "SET", "port", str(plain), *tls, "tls-port", port),
        lambda reply: reply == failed("port", LISTEN_FAILED),
    )
    assert reply == failed("tls-port", LISTEN_FAILED)
    assert listens_on(kvb.proc.pid, plain) is False and serves(kvb.port, kvb.proc.pid)
    secure = free_port()
    reply = conn.call("CONFIG", "SET", "port", port, *tls, "tls-port", str(secure))
    assert reply == failed("port", LISTEN_FAILED)
    assert listens_on(kvb.proc.pid, secure) is False
    reply = conn.call("CONFIG", "SET", "tls-port", port, *tls, "port", port)
    assert reply == failed("tls-port", LISTEN_FAILED)  # (both fail: the first given is named)
    busy.close()
    assert config_get(conn, "tls-port") == bulk("0")
    assert config_get(conn, "port") == bulk(str(kvb.port))
    (plain, secure), reply = move_to_free_ports(
        lambda plain, secure: conn.call("CONFIG", "SET", "port", str(plain), *tls, "tls-port", str(secure)),
        taken,
        count=2,
    )
    assert reply == b"+OK\r\n"
    assert listens_on(kvb.proc.pid, kvb.port) is False and serves(plain, kvb.proc.pid)
    assert listens_on(kvb.proc.pid, secure) is True
    kvb.port = plain
    # swapping the two: each new port is the other's old one, still listened on (as redis-server)
    reply = conn.call("CONFIG", "SET", "port", str(secure), "tls-port", str(plain))
    assert reply == failed("port", LISTEN_FAILED)
    assert serves(plain, kvb.proc.pid) and config_get(conn, "tls-port") == bulk(str(secure))
    conn.close()


def _script(port: int, pid: int) -> list[bytes]:
    """The replies of a run of CONFIG SET port on the server at ``port`` (the process ``pid``), ports
    written by name (and whether the server listens on each, where it matters)."""
    conn = Raw(port, 2)
    names = {port: "own"}
    out: list[bytes] = []

    def call(*args: str) -> None:
        reply = conn.call(*args)
        for number, name in names.items():
            reply = reply.replace(bulk(str(number)), bulk(name))
        out.append(reply)

    def move(name: str, word: str = "port") -> int:
        """CONFIG SET ``word`` to a free port, called ``name`` (another where another process took it)."""
        (number,), reply = move_to_free_ports(
            lambda number: conn.call("CONFIG", "SET", word, str(number)), taken
        )
        names[number] = name
        out.append(reply)
        return number

    def off(number: int) -> int:
        return 1 if listens_on(pid, number) is False else 0

    busy = taken_port()
    used = next(busy)
    names[used] = "busy"
    other, last = free_port(), free_port()
    names.update({other: "other", last: "last"})
    call("CONFIG", "SET", "port", str(port))
    moved = move("moved")
    out.append(b"own refused: %d, moved refused: %d" % (off(port), off(moved)))
    call("PING")
    call("CONFIG", "GET", "port")
    out.append(b"tcp_port: " + names[tcp_port(conn)].encode())
    call("CONFIG", "SET", "loglevel", "debug", "port", str(used))
    call("CONFIG", "GET", "loglevel")
    call("CONFIG", "SET", "port", str(other), "maxclients", "0")
    out.append(b"other refused: %d" % off(other))
    for bad in ("-1", "65536", "x", "+5", " 5", "05"):
        call("CONFIG", "SET", "port", bad)
    call("CONFIG", "SET", "port", str(other), "port", str(last))
    call("CONFIG", "SET", "port", "0")
    out.append(b"moved refused: %d, tcp_port: %d" % (off(moved), tcp_port(conn)))
    call("CONFIG", "GET", "port")
    call("CONFIG", "SET", "port", "0")
    last = move("last", "PORT")
    out.append(b"last refused: %d" % off(last))
    busy.close()
    conn.close()
    return out


def test_config_set_port_replies_as_redis_server(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server")
    proc, port = start_redis_server(str(tmp_path))
    try:
        theirs = _script(port, proc.pid)
    finally:
        stop_process(proc)
    kvb = RunningServer(str(tmp_path / "store")).start()
    try:
        assert kvb.proc is not None
        ours = _script(kvb.port, kvb.proc.pid)
    finally:
        assert kvb.stop() == 0
    assert ours == theirs
