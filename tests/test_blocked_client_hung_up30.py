"""A blocked client whose connection close has arrived, but not been read yet, takes no element (#7).

A Celery worker's main process SIGKILLed in BRPOP: its FIN (or RST) reaches the server's socket while
the event loop is held by another client's command (here a script). When the command pushed behind it
in the same pipeline ran, the waiter's transport was not closing yet (the loop had not read its end of
input), so the element was popped for it and written into the dead connection: lost (redis-server
loses it too). Before handing an element over, kvb serve now asks the kernel whether the waiter's
peer has hung up (POLLRDHUP): such a waiter is dropped, as if its end of input had been read, and the
element goes to the next waiter or stays in the list. The script is held deterministically: it loops
until SCRIPT KILL, sent once another client is answered BUSY and the blocked client has closed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from helpers import child_env, free_port, start_own_server, wait_for
from resp_helpers import stop_process

from kv_backend.server import blocking

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc")

LOOPS = ["asyncio", "uvloop"]
#: Runs until SCRIPT KILL (it writes nothing, so it may be killed).
FOREVER = b"while true do end"


def _cmd(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


@contextlib.contextmanager
def _server(tmp_path, loop: str, kind: str, certs) -> Iterator[Callable[..., socket.socket]]:
    """``kvb serve`` on ``loop``, and a function connecting to it over ``kind`` (tcp, unix or tls; with
    ``plain``, over TCP without TLS: a script that runs long answers TLS clients only once it ends)."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    env = child_env()
    env["KVB_EVENT_LOOP"] = loop
    unix = str(tmp_path / "kvb.sock")
    base = [sys.executable, "-m", "kv_backend", "serve", "--dir", str(tmp_path / "db"), "--unixsocket", unix]
    if kind == "tls":
        base += ["--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-auth-clients", "no"]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        ports = [free_port(), free_port() if kind == "tls" else 0]
        cmd = [*base, "--port", str(ports[0])] + (["--tls-port", str(ports[1])] if kind == "tls" else [])
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), ports

    proc, ports = start_own_server(launch)

    def connect(plain: bool = False) -> socket.socket:
        if kind == "unix" and not plain:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(10)
            sock.connect(unix)
        else:
            sock = socket.create_connection(("127.0.0.1", ports[0 if plain else -1]), timeout=10)
        if kind == "tls" and not plain:
            sock = certs.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(_cmd(b"PING"))
        assert _read(sock, 7) == b"+PONG\r\n"
        return sock

    try:
        yield connect
    finally:
        stop_process(proc)


def _blocked(admin: socket.socket) -> int:
    admin.sendall(_cmd(b"INFO", b"clients"))
    size = int(_line(admin)[1:])
    info = _read(admin, size + 2)
    return int(info.split(b"blocked_clients:")[1].split(b"\r\n")[0])


def _hang_up_during_script(
    connect: Callable[..., socket.socket],
    hang_up: Callable[[socket.socket], None],
    then: Callable[[socket.socket], None] | None = None,
) -> None:
    """Two clients blocked in BRPOP q (the first to hang up), then a pipeline EVAL (looping) + LPUSH q a b +
    LLEN q; while the script runs the first client hangs up, then the script is killed. The second
    waiter must get ``a``, ``b`` stay in the list, and what the first client sent behind its BRPOP not run;
    ``then(first client)`` checks what it got."""
    admin, gone, live, pusher = connect(plain=True), connect(), connect(), connect()
    try:
        admin.sendall(_cmd(b"CONFIG", b"SET", b"busy-reply-threshold", b"10"))
        assert _read(admin, 5) == b"+OK\r\n"
        gone.sendall(_cmd(b"BRPOP", b"q", b"0"))
        wait_for(lambda: _blocked(admin) == 1, 10, "the first client blocked")
        gone.sendall(_cmd(b"SET", b"held", b"1"))  # (held behind its BRPOP: never run, as in Redis)
        live.sendall(_cmd(b"BRPOP", b"q", b"0"))
        wait_for(lambda: _blocked(admin) == 2, 10, "the second client blocked")
        pusher.sendall(_cmd(b"EVAL", FOREVER, b"0") + _cmd(b"LPUSH", b"q", b"a", b"b") + _cmd(b"LLEN", b"q"))

        def busy() -> bool:
            admin.sendall(_cmd(b"PING"))
            return _line(admin).startswith(b"-BUSY")

        wait_for(busy, 10, "the script running long")
        hang_up(gone)  # its end of input reaches the server's socket; the loop, held, does not read it
        admin.sendall(_cmd(b"SCRIPT", b"KILL"))
        assert _line(admin) == b"+OK\r\n"
        assert _line(pusher).startswith(b"-ERR Script killed")
        assert _line(pusher) == b":2\r\n"
        assert _line(pusher) == b":1\r\n", "an element went to the client that had hung up"
        assert _read(live, 18) == b"*2\r\n$1\r\nq\r\n$1\r\na\r\n"
        admin.sendall(_cmd(b"LRANGE", b"q", b"0", b"-1"))
        assert _read(admin, 11) == b"*1\r\n$1\r\nb\r\n"
        admin.sendall(_cmd(b"EXISTS", b"held"))
        assert _line(admin) == b":0\r\n", "a command the client sent behind its BRPOP ran"
        if then is not None:
            then(gone)
    finally:
        for sock in (admin, gone, live, pusher):
            sock.close()


def _close(sock: socket.socket) -> None:
    """Close as a killed process's connection closes: the descriptor, no TLS close_notify."""
    if isinstance(sock, ssl.SSLSocket):
        fd = sock.detach()
        os.close(fd)
    else:
        sock.close()


@pytest.mark.parametrize("kind", ["tcp", "unix", "tls"])
@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_that_hangs_up_while_blocked_and_the_loop_is_held_takes_nothing(
    tmp_path, loop, kind, request
):
    certs = request.getfixturevalue("certs") if kind == "tls" else None
    with _server(tmp_path, loop, kind, certs) as connect:
        _hang_up_during_script(connect, _close)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_blocked_client_reset_while_the_loop_is_held_takes_nothing(tmp_path, loop):
    def reset(sock: socket.socket) -> None:  # (linger 0: an RST, not a FIN)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    with _server(tmp_path, loop, "tcp", None) as connect:
        _hang_up_during_script(connect, reset)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_blocked_client_that_shuts_down_its_sending_side_is_dropped_either_way(tmp_path, loop):
    """A client that half-closes (SHUT_WR) while blocked, still reading, gets no element and its
    connection closed, whether the loop reads its end of input first or the server finds it hung up
    when serving: Redis frees a client at its end of input too."""

    def nothing_then_closed(sock: socket.socket) -> None:
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:  # (closed with what it sent behind its BRPOP unread: a reset)
            pass

    with _server(tmp_path, loop, "tcp", None) as connect:
        # the end of input read by the loop first: the connection is closed, with no reply
        waiter, admin = connect(), connect()
        try:
            waiter.sendall(_cmd(b"BRPOP", b"q", b"0"))
            wait_for(lambda: _blocked(admin) == 1, 10, "the client blocked")
            waiter.shutdown(socket.SHUT_WR)
            nothing_then_closed(waiter)
            wait_for(lambda: _blocked(admin) == 0, 10, "the half-closed client dropped")
            admin.sendall(_cmd(b"LPUSH", b"q", b"x") + _cmd(b"DEL", b"q"))
            assert _read(admin, 8) == b":1\r\n:1\r\n"
        finally:
            waiter.close()
            admin.close()
        # found hung up when serving, its end of input not read yet: the same
        _hang_up_during_script(connect, lambda sock: sock.shutdown(socket.SHUT_WR), nothing_then_closed)


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Both ends of a TCP connection over the loopback (the server's end first)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        return listener.accept()[0], client


@pytest.mark.parametrize("how", ["poll", "peek"])
def test_the_check_tells_a_peer_that_hung_up_from_a_live_one(how):
    """The check, with POLLRDHUP (Linux) and with the MSG_PEEK read used where there is none."""
    if how == "poll" and not blocking._RDHUP:
        pytest.skip("no POLLRDHUP here")
    check = blocking._poll_hung_up if how == "poll" else blocking._peek_hung_up
    for pair in (socket.socketpair, _tcp_pair):
        a, b = pair()
        try:
            a.setblocking(False)
            assert not check(a.fileno())
            b.sendall(b"x")
            assert not check(a.fileno())  # (data to read is no hang-up)
            b.shutdown(socket.SHUT_WR)
            # behind unread data, only POLLRDHUP sees the end (the loop reads both, then drops it)
            assert check(a.fileno()) is (how == "poll")
            assert a.recv(1) == b"x"
            assert check(a.fileno())  # a half-close (SHUT_WR)
            assert a.fileno() >= 0  # (the peek's socket object let go of the descriptor, not closed it)
        finally:
            a.close()
            b.close()
        a, b = pair()
        try:
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            b.close()
            assert check(a.fileno())  # closed (a reset, for TCP)
        finally:
            a.close()
