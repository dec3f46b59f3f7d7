"""``kvb http --workers N``: N worker processes on one listening socket, each with all of kvb http's
protections and its own store, supervised by the parent (real processes throughout)."""

from __future__ import annotations

import http.client
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import child_env, free_port, run_kvb, tcp_inode
from tls_helpers import Certs

from kv_backend import DB


class Server:
    """``kvb http --workers N`` in a child process, stderr in a file."""

    def __init__(
        self,
        tmp_path: Path,
        workers: int = 2,
        env: dict[str, str] | None = None,
        options: tuple[str, ...] = (),
        open_files: int | None = None,
        python: tuple[str, ...] = ("-m", "kv_backend"),  # (what runs kvb's command line)
    ) -> None:
        self.path = tmp_path / "store"
        self.port = free_port()
        self.workers = workers
        self.err_path = tmp_path / "stderr.txt"
        self.err = self.err_path.open("w")
        cmd = [sys.executable, *python, "http", "--dir", str(self.path), "--port", str(self.port)]
        cmd += ["--workers", str(workers), "--no-access-log", *options]

        def limit() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        self.proc = subprocess.Popen(
            cmd,
            env={**child_env(), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.err,
            preexec_fn=limit,
            start_new_session=True,  # (a process group of its own, as a terminal's job)
        )

    def children(self) -> set[int]:
        """The worker processes the parent has now (Linux's list of its children)."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except FileNotFoundError:
            return set()
        return {int(pid) for pid in text.split()}

    def wait_serving(self, connect: Callable[[int], list[Any]] | None = None) -> set[int]:
        """Wait until every worker answers with its store open; return their pids."""
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, self.stderr()
            pids = self.children()
            if (
                len(pids) == self.workers
                and self.stderr().count("Application startup complete") >= self.workers
            ):
                conns = (connect or _connections)(self.port)
                served = {self.served_by(c) for c in conns}
                for conn in conns:
                    conn.close()
                if len(served) == self.workers:
                    return pids
            time.sleep(0.05)

    def served_by(self, conn: http.client.HTTPConnection | socket.socket) -> int | None:
        """The worker holding ``conn``'s server end: the socket's inode, found in its descriptors."""
        sock = conn.sock if isinstance(conn, http.client.HTTPConnection) else conn
        assert sock is not None
        client_port = sock.getsockname()[1]
        inode = _server_inode(self.port, client_port)
        for pid in self.children():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except FileNotFoundError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue
        return None

    def stderr(self) -> str:
        if not self.err.closed:
            self.err.flush()
        return self.err_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self.err.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            for pid in self.children():
                _kill(pid)
            self.proc.kill()
            self.proc.wait(10)
        self.err.close()


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # (ESRCH: it went between the open and the read)
        return False
    return "\nState:\tZ" not in status


def _server_inode(server_port: int, client_port: int) -> str:
    """The inode of the server end of the local TCP connection from ``client_port``."""
    inode = tcp_inode(server_port, client_port)
    assert inode is not None, f"no server end for the connection from port {client_port}"
    return inode


def _connections(port: int, count: int = 8, path: bytes = b"/healthz") -> list[http.client.HTTPConnection]:
    """``count`` keep-alive connections, each having had one GET of ``path`` answered (so accepted)."""
    conns = []
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path.decode())
        conn.getresponse().read()
        conns.append(conn)
        time.sleep(0.005)  # (each accept a race among the idle workers)
    return conns


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    yield srv
    srv.close()


def _put(conn: http.client.HTTPConnection, key: str, value: bytes) -> int:
    conn.request("PUT", f"/v1/keys/{key}", body=value)
    response = conn.getresponse()
    response.read()
    return response.status


def _get(conn: http.client.HTTPConnection, key: str) -> tuple[int, bytes]:
    conn.request("GET", f"/v1/keys/{key}")
    response = conn.getresponse()
    return response.status, response.read()


def test_requests_are_spread_over_the_workers_and_each_sees_every_write(server):
    workers = server.wait_serving()
    conns = _connections(server.port, 24)
    by_worker = {conn: server.served_by(conn) for conn in conns}
    assert set(by_worker.values()) == workers  # (both took connections, and only they did)
    for i, conn in enumerate(conns):
        assert _put(conn, f"k{i}", b"v%d" % i) == 201
    for conn, pid in by_worker.items():  # each worker reads what every other wrote
        for i in range(len(conns)):
            assert _get(conn, f"k{i}") == (200, b"v%d" % i), pid
    for conn in conns:
        conn.close()
    assert server.stop() == 0


def test_a_killed_worker_is_replaced_and_no_acknowledged_write_is_lost(server):
    workers = server.wait_serving()
    acked: dict[str, bytes] = {}
    stop = threading.Event()

    def write(n: int) -> None:
        i = 0
        while not stop.is_set():
            key, value = f"w{n}-{i}", b"%d" % i
            try:  # a new connection each time: the replacement gets its share
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                if _put(conn, key, value) == 201:
                    acked[key] = value
                conn.close()
            except (OSError, http.client.HTTPException):
                pass  # (the killed worker's connections: not acknowledged)
            i += 1

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while not (len(server.children()) == 2 and victim not in server.children()):
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.05)
        replaced = server.wait_serving()
        assert victim not in replaced and len(replaced - workers) == 1
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(acked) > 20
    assert f"worker process [{victim}] was killed (SIGKILL): starting another" in server.stderr()
    conns = _connections(server.port)
    for key, value in list(acked.items())[::5]:
        for conn in conns[:2]:
            assert _get(conn, key) == (200, value)
    for conn in conns:
        conn.close()
    assert server.stop() == 0
    with DB(server.path) as db:
        for key, value in acked.items():
            assert db.get(key.encode()) == value, key


def test_a_worker_stopped_alone_is_replaced(server):
    workers = server.wait_serving()
    victim = min(workers)
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while victim in server.children() or len(server.children()) < 2:
        assert server.proc.poll() is None and time.monotonic() < deadline, server.stderr()
        time.sleep(0.05)
    assert len(server.wait_serving() - workers) == 1
    assert f"worker process [{victim}] stopped (status 0): starting another at once" in server.stderr()
    assert server.stop() == 0


def test_sigterm_lets_requests_finish_stops_every_worker_and_exits_0(server):
    workers = server.wait_serving()
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(b"PUT /v1/keys/late HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8\r\n\r\nhalf")
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(b"done")  # the request finishes within the grace period
        assert sock.recv(4096).startswith(b"HTTP/1.1 201 ")
    assert server.stop() == 0
    assert not any(_alive(pid) for pid in workers)  # no orphan
    assert server.stderr().count("Finished server process") == 2
    with DB(server.path) as db:
        assert db.get(b"late") == b"halfdone"


def test_ctrl_c_on_the_terminal_stops_all_without_a_restart(server):
    workers = server.wait_serving()
    os.killpg(server.proc.pid, signal.SIGINT)  # (the parent and every worker at once)
    assert server.stop() == 0
    assert not any(_alive(pid) for pid in workers)
    assert "starting another" not in server.stderr()


def test_workers_stop_when_the_parent_is_killed(server):
    workers = server.wait_serving()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert _put(conn, "before", b"kill") == 201
    conn.close()
    server.proc.kill()
    server.proc.wait(10)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers):  # (each stops as at SIGTERM: no orphan left serving)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert server.stderr().count("Finished server process") == 2
    with DB(server.path) as db:
        assert db.get(b"before") == b"kill"


def test_sighup_to_every_process_is_one_reload_by_the_parent(server):
    workers = server.wait_serving()
    server.proc.send_signal(signal.SIGHUP)
    for pid in workers:  # (as a closed terminal sends it to the whole process group)
        os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while server.children() & workers or len(server.children()) != 2:  # the workers ignore it
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.05)
    assert server.stderr().count("reloaded: worker processes") == 1
    assert "SIGHUP ignored" not in server.stderr()
    assert server.stop() == 0


def test_a_store_that_cannot_be_opened_stops_every_worker_with_status_2(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "notes.txt").write_text("not a store")
    srv = Server(tmp_path, workers=3)
    try:
        assert srv.proc.wait(30) == 2
    finally:
        srv.close()
    lines = srv.stderr().splitlines()
    assert lines[-1].startswith("kvb: ") and str(store) in lines[-1]
    assert srv.stderr().count("Started worker process") == 3  # not restarted
    assert "Traceback" not in srv.stderr()


def test_ready_is_sent_once_every_worker_serves(tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(path)
        manager.settimeout(30)
        srv = Server(tmp_path, workers=2, env={"NOTIFY_SOCKET": path})
        try:
            ready = manager.recv(4096).decode()
            assert ready.startswith("READY=1\n") and "with 2 workers" in ready
            assert srv.stderr().count("Application startup complete") == 2
            assert srv.stop() == 0
            manager.settimeout(1)
            assert manager.recv(4096) == b"STOPPING=1"  # the parent's, the workers send nothing
            with pytest.raises(TimeoutError):
                manager.recv(4096)
        finally:
            srv.close()


def test_a_second_sigint_ends_the_grace_period_at_once(server):
    server.wait_serving()
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(b"PUT /v1/keys/stalled HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8\r\n\r\nhalf")
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert server.proc.poll() is None  # (waiting for the stalled request: up to 10 s)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(8) == 0
        assert time.monotonic() - started < 5
        assert b"store_closed" in sock.recv(4096)  # nothing of it was stored
    assert not server.children()


def test_each_worker_serves_tls_itself(tmp_path):
    certs = Certs(tmp_path)
    client = certs.client_context()
    srv = Server(tmp_path, options=("--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key))

    def connect(port: int) -> list[socket.socket]:
        socks = []
        for _ in range(8):
            sock = client.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost"
            )
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
            socks.append(sock)
            time.sleep(0.005)
        return socks

    try:
        assert len(srv.wait_serving(connect)) == 2  # (each answered HTTPS)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as plain:
            plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert b"HTTP/1.1" not in plain.recv(4096)  # (a failed handshake: closed unanswered)
        assert srv.stop() == 0
    finally:
        srv.close()


def test_the_connection_limit_is_each_workers_own(tmp_path):
    # 48 open files: 16 connections per worker (32 descriptors are kept for the store and the server).
    srv = Server(tmp_path, open_files=48)
    try:
        srv.wait_serving()
        assert srv.stderr().count("at most 16 connections are kept open") == 2
        kept, refused = [], 0
        for _ in range(80):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                kept.append(conn)
            else:
                assert response.status == 503 and response.getheader("Retry-After") == "1"
                refused += 1
                conn.close()
        assert 16 < len(kept) <= 32 and refused == 80 - len(kept)
        for conn in kept:
            conn.close()
        assert srv.stop() == 0
    finally:
        srv.close()


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_workers_values_are_usage_errors(tmp_path, value):
    proc = run_kvb(
        "http", "--dir", str(tmp_path), "--port", str(free_port()), f"--workers={value}", timeout=60
    )
    assert proc.returncode == 2
    assert re.search(r"argument --workers: must be a whole number of processes >= 1", proc.stderr)


def test_a_bad_kvb_http_workers_variable_is_one_line_and_status_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kv_backend", "http", "--dir", str(tmp_path), "--port", str(free_port())],
        env={**child_env(), "KVB_HTTP_WORKERS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "kvb: KVB_HTTP_WORKERS must be a whole number of processes >= 1, not '0'"


def test_serve_refuses_a_bad_number_of_workers_before_it_starts(tmp_path):
    from kv_backend.errors import ConfigurationError
    from kv_backend.http import serve

    for bad in (0, -1, True, "2"):
        with pytest.raises(ConfigurationError, match="workers must be a whole number of processes >= 1"):
            serve(tmp_path / "store", port=0, workers=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "store").exists()


def test_a_port_in_use_is_one_line_and_status_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_kvb(
            "http", "--dir", str(tmp_path / "s"), "--port", str(port), "--workers", "2", timeout=60
        )
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith(f"kvb: cannot listen on 127.0.0.1:{port}: ")
    assert "Started worker process" not in proc.stderr
