"""maxclients in kvb serve, as redis-server has it.

The server accepted connections until the process ran out of file descriptors: clients past that
waited in the listen backlog without an answer, and the store had no descriptor left (a write that
starts a new data file failed with "Too many open files"), while CONFIG GET and INFO said maxclients
10000, which nothing enforced. Now, as redis-server, it raises its limit of open files to fit 10000
clients plus 32 descriptors of its own, or serves fewer clients (said on stderr); a connection past
maxclients is answered ``-ERR max number of clients reached`` and closed, and counted in INFO's
``rejected_connections``; ``CONFIG SET maxclients`` is honoured.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import sys

import pytest
import redis
from helpers import child_env, free_port, start_own_server, wait_for
from resp_helpers import Raw, RunningServer, info_number, stop_process, wait_for_port

REFUSAL = b"-ERR max number of clients reached\r\n"


def _start(path: str, soft: int, hard: int) -> tuple[subprocess.Popen, int]:
    """kvb serve with the limit of open files set to (soft, hard)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "kv_backend", "serve", "--dir", path, "--port", str(port)],
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=limit,
        )
        return proc, [port]

    # (on a port of its own: see start_own_server; a start that fails is the test's to check)
    proc, (port,) = start_own_server(launch, lambda *_: None)
    return proc, port


def _ping(port: int) -> tuple[socket.socket, bytes]:
    """A new connection and the first thing the server answers to its PING."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"PING\r\n")
    return sock, sock.recv(100)


def _open_files_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    return int(line.split()[3])


@pytest.fixture
def low_limit(tmp_path):
    """kvb serve run with a limit of 100 open files (soft and hard)."""
    proc, port = _start(str(tmp_path / "store"), 100, 100)
    try:
        wait_for_port(port, proc)
        yield proc, port
    finally:
        stop_process(proc)
        proc.stderr.close()


def test_a_low_limit_of_open_files_lowers_maxclients_and_refuses_past_it(low_limit, tmp_path):
    proc, port = low_limit
    control = redis.Redis(port=port)
    try:
        assert control.config_get("maxclients") == {"maxclients": "68"}  # 100 less the 32 kept, as Redis
        assert info_number(control, "clients", "maxclients") == 68
        served, refused = [], []
        try:
            for _ in range(100):
                sock, reply = _ping(port)
                (served if reply == b"+PONG\r\n" else refused).append(sock)
                if reply != b"+PONG\r\n":
                    assert reply == REFUSAL
                    with contextlib.suppress(ConnectionResetError):  # (its PING unread, as with Redis)
                        assert sock.recv(100) == b""  # and closed
            assert len(served) == 67 and len(refused) == 33  # (68 with the control connection)
            assert info_number(control, "stats", "rejected_connections") == 33
            with pytest.raises(redis.ConnectionError, match="max number of clients reached"):
                redis.Redis(port=port, retry=None).ping()
            # the store keeps descriptors of its own: another process's writes, in many new data
            # files, are read, and writes are taken
            code = (
                "import sys\nfrom kv_backend import DB\nfrom kv_backend.structures import Structures\n"
                "with DB(sys.argv[1], max_file_size=4096) as db:\n"
                "    s = Structures(db)\n"
                "    for i in range(200):\n"
                "        s.set(f'k{i}', b'x' * 200)\n"
            )
            subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], env=child_env(), check=True)
            assert control.get("k199") == b"x" * 200
            assert control.set("after", b"1") and control.dbsize() == 201
            control.config_resetstat()
            assert info_number(control, "stats", "rejected_connections") == 0
        finally:
            for sock in served + refused:
                sock.close()
        assert control.ping()  # the ones closed made room again
    finally:
        control.close()
    proc.terminate()
    assert proc.wait(10) == 0
    err = proc.stderr.read().decode()
    assert "the limit of open files (ulimit -n) is 100" in err and "maxclients is 68" in err, err


def test_the_soft_limit_is_raised_towards_the_hard_one(tmp_path):
    proc, port = _start(str(tmp_path / "store"), 100, 300)
    try:
        wait_for_port(port, proc)
        assert _open_files_limit(proc.pid) == 300
        conn = Raw(port, 2)
        assert conn.call("CONFIG", "GET", "maxclients") == b"*2\r\n$10\r\nmaxclients\r\n$3\r\n268\r\n"
        conn.close()
    finally:
        stop_process(proc)
        proc.stderr.close()


def test_a_limit_leaving_no_client_stops_kvb_serve(tmp_path):
    proc, _ = _start(str(tmp_path / "store"), 32, 32)
    try:
        assert proc.wait(30) == 2
        err = proc.stderr.read().decode()
    finally:
        stop_process(proc)
        proc.stderr.close()
    assert "the limit of open files (ulimit -n) is 32" in err and "raise the limit (to 10032" in err, err


def test_config_set_maxclients_is_honoured(tmp_path):
    server = RunningServer(str(tmp_path / "store")).start()
    try:
        control = Raw(server.port, 2)
        assert control.call("CONFIG", "SET", "maxclients", "3") == b"+OK\r\n"
        assert control.call("CONFIG", "GET", "maxclients") == b"*2\r\n$10\r\nmaxclients\r\n$1\r\n3\r\n"

        def clients() -> int:
            return info_number(control, "clients", "connected_clients")

        wait_for(lambda: clients() == 1, 10, "the start-up's connections closed")
        first, second = _ping(server.port), _ping(server.port)
        third = _ping(server.port)
        assert (first[1], second[1], third[1]) == (b"+PONG\r\n", b"+PONG\r\n", REFUSAL)
        first[0].close()
        wait_for(lambda: clients() == 2, 10, "the closed connection gone")
        fourth = _ping(server.port)
        assert fourth[1] == b"+PONG\r\n"
        for sock, _ in (second, third, fourth):
            sock.close()
        # more than the system allows: refused as Redis refuses it, naming what it allows
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY:
            reply = control.call("CONFIG", "SET", "maxclients", str(hard + 1))
            assert reply == (
                b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating "
                b"system is not able to handle the specified number of clients, try with %d\r\n" % (hard - 32)
            )
            assert control.call("CONFIG", "GET", "maxclients") == b"*2\r\n$10\r\nmaxclients\r\n$1\r\n3\r\n"
        assert control.call("CONFIG", "SET", "maxclients", "10000") == b"+OK\r\n"
        control.close()
    finally:
        assert server.stop() == 0
