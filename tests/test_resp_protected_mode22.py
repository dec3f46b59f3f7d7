"""Protected mode in kvb serve, as redis-server's default ``protected-mode yes``.

``kvb serve --host 0.0.0.0`` without a password served every client that could reach it, silently,
where redis-server 7 (``--bind 0.0.0.0`` without a password) answers clients of other machines
``-DENIED ...`` and closes their connection. kvb serve now does the same, says so on stderr at start,
and takes ``--protected-mode no`` and ``CONFIG GET``/``SET protected-mode`` as Redis does; with a
password, clients of other machines are served (after AUTH).
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from helpers import child_env, free_port, start_own_server
from resp_helpers import Raw, stop_process


def _own_address() -> str:
    """An address of this machine other than a loopback one (skip the test where there is none)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.123", 9))  # (no packet is sent: this only picks the outgoing address)
        address = probe.getsockname()[0]
    except OSError:
        address = "127.0.0.1"
    finally:
        probe.close()
    if address.startswith("127.") or address == "0.0.0.0":
        pytest.skip("this machine has no address other than a loopback one")
    return address


def _start(path: str, *options: str) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "kv_backend", "serve", "--dir", path, "--host", "0.0.0.0", "--port"]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        out, err = subprocess.DEVNULL, subprocess.PIPE
        args = [*cmd, str(port), *options]
        return subprocess.Popen(args, env=child_env(), stdout=out, stderr=err, text=True), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    return proc, port


def _first_reply(address: str, port: int, request: bytes) -> bytes:
    with socket.create_connection((address, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def _stop(proc: subprocess.Popen) -> str:
    stop_process(proc)
    err = proc.stderr.read()
    proc.stderr.close()
    return err


def test_without_a_password_only_local_clients_are_served(tmp_path):
    address = _own_address()
    proc, port = _start(str(tmp_path / "store"))
    try:
        denied = _first_reply(address, port, b"SET remote 1\r\n")
        assert (
            denied.startswith(b"-DENIED kvb serve is running in protected mode")
            and b"--protected-mode no" in denied
        )
        local = Raw(port, 2)
        assert local.call("EXISTS", "remote") == b":0\r\n"  # (the denied command did not run)
        assert (
            local.call("CONFIG", "GET", "protected-mode") == b"*2\r\n$14\r\nprotected-mode\r\n$3\r\nyes\r\n"
        )
        reply = local.call("CONFIG", "SET", "protected-mode", "maybe")
        assert reply == (
            b"-ERR CONFIG SET failed (possibly related to argument 'protected-mode') - argument must be "
            b"'yes' or 'no'\r\n"
        )
        assert local.call("CONFIG", "SET", "protected-mode", "no") == b"+OK\r\n"
        assert _first_reply(address, port, b"SET remote 1\r\n") == b"+OK\r\n"
        assert local.call("CONFIG", "SET", "protected-mode", "YES") == b"+OK\r\n"
        assert _first_reply(address, port, b"PING\r\n").startswith(b"-DENIED ")
        local.close()
    finally:
        err = _stop(proc)
    assert "protected mode: without a password, clients connecting to 0.0.0.0 from other machines" in err, err


def test_protected_mode_off_or_a_password_serves_other_machines(tmp_path):
    address = _own_address()
    proc, port = _start(str(tmp_path / "open"), "--protected-mode", "no")
    try:
        assert _first_reply(address, port, b"PING\r\n") == b"+PONG\r\n"
    finally:
        err = _stop(proc)
    assert "protected mode" not in err, err
    proc, port = _start(str(tmp_path / "password"), "--requirepass", "s3cret")
    try:
        assert _first_reply(address, port, b"PING\r\n").startswith(b"-NOAUTH ")
        assert _first_reply(address, port, b"AUTH s3cret\r\n") == b"+OK\r\n"
    finally:
        err = _stop(proc)
    assert "protected mode" not in err, err
