"""Review of CONFIG SET tls-port: the new TLS listener is bound without a name lookup on the event loop.

kvb serve's --host may be a name (a DNS one); CONFIG SET runs on the event loop, where a lookup of it
would hold every other client up for as long as the resolver takes (seconds where it is slow or
unreachable), and could give other addresses than those the server listens on since its start.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from helpers import child_env, free_port, listens_on, start_own_server
from tls_helpers import Certs

redis = pytest.importorskip("redis")

#: kvb serve whose name lookups made on its event loop's thread (the main one) take SLOW seconds: a slow
#: resolver, as seen from the loop (the loop's own getaddrinfo runs in a worker thread, as at start).
SLOW = 3.0
_SERVE_WITH_A_SLOW_RESOLVER = (
    "import socket, sys, threading, time\n"
    "real = socket.getaddrinfo\n"
    "def slow(*args, **kwargs):\n"
    "    if threading.current_thread() is threading.main_thread():\n"
    f"        time.sleep({SLOW})\n"
    "    return real(*args, **kwargs)\n"
    "socket.getaddrinfo = slow\n"
    "from kv_backend.cli import main\n"
    "sys.exit(main(['serve', *sys.argv[1:]]))\n"
)


#: The text of CONFIG SET tls-port's error where the port cannot be listened on (another process's).
PORT_TAKEN = "Unable to listen on this port"


def move_tls_port(config_set: Callable[[str], str], pid: int) -> int:
    """Move the TLS port with ``config_set`` (CONFIG SET tls-port's reply, "OK" or the error's text) to
    a free port, another where a parallel test took it first (a free port is free to all); the port,
    checked to be process ``pid``'s listener."""
    for _ in range(5):
        port = free_port()
        reply = config_set(str(port))
        if PORT_TAKEN not in reply:
            assert reply == "OK", reply
            assert listens_on(pid, port) is not False
            return port
    raise AssertionError("five free ports in a row were others' by the time CONFIG SET tls-port bound them")


def test_config_set_tls_port_makes_no_name_lookup_on_the_event_loop(tmp_path):
    (tmp_path / "certs").mkdir()
    certs = Certs(tmp_path / "certs")
    tls = ["--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-auth-clients", "no"]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        ports = [free_port(), free_port()]
        cmd = [sys.executable, "-c", _SERVE_WITH_A_SLOW_RESOLVER, "--dir", str(tmp_path / "store")]
        cmd += ["--host", "localhost", "--port", str(ports[0]), "--tls-port", str(ports[1]), *tls]
        out, err = subprocess.DEVNULL, subprocess.PIPE
        return subprocess.Popen(cmd, env=child_env(), stdout=out, stderr=err), ports

    proc, (port, _) = start_own_server(launch)  # (on ports of its own: see start_own_server)
    try:
        plain = redis.Redis(port=port, socket_timeout=20)
        other = redis.Redis(port=port, socket_timeout=20)
        deadline = time.monotonic() + 30
        while True:
            try:
                plain.ping()
                other.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        moved = free_port()
        replies: list[str] = []
        setter = threading.Thread(target=lambda: replies.append(config_set(plain, str(moved))))
        setter.start()
        time.sleep(0.2)
        t = time.monotonic()
        assert other.ping()
        waited = time.monotonic() - t
        setter.join(30)
        if len(replies) == 1 and PORT_TAKEN in replies[0]:  # (a parallel test took the port first)
            moved = move_tls_port(lambda port: config_set(plain, port), proc.pid)
        else:
            assert replies == ["OK"]
            assert listens_on(proc.pid, moved) is not False
        assert plain.config_get("tls-port") == {"tls-port": str(moved)}
        assert waited < SLOW / 2, f"another client waited {waited:.1f} s for CONFIG SET's name lookup"
        secure = redis.Redis(port=moved, ssl=True, ssl_ca_certs=certs.ca, socket_timeout=20)
        assert secure.ping()
        secure.close()
        plain.close()
        other.close()
    finally:
        proc.terminate()
        proc.wait(20)


def config_set(conn: redis.Redis, port: str) -> str:
    """CONFIG SET tls-port's reply: "OK", or the error's text."""
    try:
        return "OK" if conn.config_set("tls-port", port) else "not OK"
    except redis.ResponseError as exc:
        return str(exc)


def test_handshakes_under_way_on_the_old_port_complete_after_tls_port_moves_or_closes(tmp_path):
    """Connections accepted on the TLS port but not yet handshaken when CONFIG SET tls-port moves the
    listener (or closes it, or rotates the certificate) keep the context they were accepted with."""
    from test_tls_reload25 import Serve
    from tls_helpers import der

    certs_dir = tmp_path / "certs"
    certs_dir.mkdir()
    certs = Certs(certs_dir)
    server = Serve(
        tmp_path, "--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-auth-clients", "no"
    )
    try:
        import socket
        import ssl

        context = ssl.create_default_context(cafile=certs.ca)
        pending = [socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) for _ in range(3)]
        time.sleep(0.2)  # (accepted: their handshakes wait for the client's hello)
        move_tls_port(lambda port: server.config_set("tls-port", port), server.proc.pid)
        assert server.config_set("tls-port", "0") == "OK"
        for raw in pending:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.getpeercert(binary_form=True) == der(certs.cert)
                tls.sendall(b"PING\r\n")
                assert tls.recv(7) == b"+PONG\r\n"
    finally:
        server.stop()
