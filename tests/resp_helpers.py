"""Start and stop ``kvb serve`` (and a real redis-server) for the RESP tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from helpers import child_env, free_port, require_tool, start_own_server, stop_process, wait_for
from zygote import KVB_COMMAND, ForkedChild, Zygote


def serve_zygote() -> Zygote:
    """A zygote that has imported ``kvb serve``: a test that starts the server many times forks each
    from it (``RunningServer(..., zygote=...)``) instead of starting a fresh interpreter."""
    return Zygote(KVB_COMMAND, preload=("kv_backend.cli", "kv_backend.server.resp"))


class RunningServer:
    """A ``kvb serve`` subprocess on 127.0.0.1 (and optionally a unix socket), or a child forked
    from ``zygote`` (see :func:`serve_zygote`)."""

    def __init__(
        self,
        path: str,
        requirepass: str | None = None,
        unixsocket: str | None = None,
        zygote: Zygote | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.path = path
        #: More ``kvb serve`` options (``--appendfsync always``...).
        self.options = list(options)
        self.port = free_port()
        self.requirepass = requirepass
        self.unixsocket = unixsocket
        self.zygote = zygote
        self.proc: subprocess.Popen | ForkedChild | None = None

    def start(self) -> RunningServer:
        """Start the server and wait until its store is open. The port :func:`free_port` gave may be
        given to another test's server too (a parallel worker's: the system hands a free port to
        whoever asks): where that one listens on it first, this one cannot, and this test would talk
        to that server. So the first start waits until this server's process listens on the port
        (helpers.start_own_server), and starts again on another port where it could not; a restart
        keeps its port, and fails where the server answering there is not this one (INFO's process_id)."""
        if self.proc is not None:  # (a restart: on its port, whoever took it since)
            self._launch()
            wait_for_port(self.port, self.proc)
            assert self._listener_is_ours(), f"port {self.port} is another server's, after this one's restart"
        else:
            given = [self.port]

            def launch() -> tuple[subprocess.Popen | ForkedChild, list[int]]:
                self.port = given.pop() if given else free_port()
                self._launch()
                assert self.proc is not None
                return self.proc, [self.port]

            def exited(proc: subprocess.Popen | ForkedChild, _: object) -> None:
                if proc.poll() is not None:  # (on its own: not on a port another took)
                    err = proc.stderr.read() if proc.stderr else ""
                    err = err.decode() if isinstance(err, bytes) else err
                    raise AssertionError(f"server exited with {proc.returncode}: {err}")

            start_own_server(launch, exited)
        self._wait_loaded()
        return self

    def _launch(self) -> None:
        cmd = [sys.executable, "-m", "kv_backend", "serve", "--dir", self.path, "--port", str(self.port)]
        if self.requirepass:
            cmd += ["--requirepass", self.requirepass]
        if self.unixsocket:
            cmd += ["--unixsocket", self.unixsocket]
        cmd += self.options
        if self.zygote is not None:
            self.proc = self.zygote.start(*cmd[3:])
        else:
            self.proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _wait_loaded(self, timeout: float = 60.0) -> None:
        """Wait until the store is open: the port opens first, and until then most commands are
        answered -LOADING (a store a SIGKILL left with a long log to replay takes a while)."""
        conn = Raw(self.port, 5)
        try:
            if self.requirepass:
                conn.call("AUTH", self.requirepass)  # (answered while loading, as in Redis)
            deadline = time.monotonic() + timeout
            while (reply := conn.call("PING")).startswith(b"-LOADING"):
                assert time.monotonic() < deadline, f"the server was still loading after {timeout} s"
                time.sleep(0.02)
            assert reply == b"+PONG\r\n", reply
        finally:
            conn.close()

    def _listener_is_ours(self) -> bool:
        """Whether what listens on the port is this server: another process may bind it (a free port
        to it too, or one a restart left free), and the test would talk to that."""
        assert self.proc is not None
        return is_listener(self.port, self.proc.pid, self.requirepass)

    def url(self) -> str:
        auth = f":{self.requirepass}@" if self.requirepass else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL the server (no clean shutdown)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM the server and return its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None
        finally:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_for_port(
    port: int, proc: subprocess.Popen | ForkedChild | None = None, timeout: float = 20.0
) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            err = err.decode() if isinstance(err, bytes) else err
            raise AssertionError(f"server exited with {proc.returncode}: {err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)  # (a refused connection costs microseconds; the server is up within 10 ms)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def wait_blocked(conn: Any, n: int = 1, timeout: float = 10.0) -> None:
    """Wait until the server that ``conn`` (a redis-py client, or :class:`Raw`) talks to has ``n``
    blocked clients (INFO's blocked_clients)."""
    wait_for(lambda: blocked_clients(conn) == n, timeout, f"{n} blocked clients")


def blocked_clients(conn: Any) -> int:
    """INFO's blocked_clients, through a redis-py client (with or without its reply parsing) or Raw."""
    return info_number(conn, "clients", "blocked_clients")


def info_number(conn: Any, section: str, field: str) -> int:
    """The number ``field`` of INFO ``section``, through a redis-py client (with or without its reply
    parsing) or Raw."""
    info = conn.call("INFO", section) if isinstance(conn, Raw) else conn.execute_command("INFO", section)
    if isinstance(info, dict):
        return int(info[field])
    text = info.decode() if isinstance(info, bytes) else str(info)
    found = re.search(rf"{field}:(\d+)", text)
    assert found, text
    return int(found.group(1))


def start_redis_server(tmpdir: str, hz: int = 100) -> tuple[subprocess.Popen, int]:
    """Start a throw-away real redis-server (no persistence) and return it with its port.

    ``--hz 100``: redis-server times out blocked clients (BLPOP k 0.01, XREAD BLOCK 10) in its
    cron, which runs ``hz`` times a second; at the default 10 a 10 ms timeout took up to 100 ms,
    most of the differential tests' time (kvb serve answers after 10 ms). At 100 it still takes
    about 18 ms; ``hz=500`` (Redis's highest) makes that 12 ms, for tests that time out many."""
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--hz", str(hz), "--dir", tmpdir]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        argv, out = ["redis-server", "--port", str(port), *options], subprocess.DEVNULL
        return subprocess.Popen(argv, stdout=out, stderr=out), [port]

    # (listening on a port of its own: where a parallel test's server took the one free_port gave
    # first, redis-server cannot listen there, and exits: it starts again on another)
    proc, (port,) = start_own_server(launch)
    return proc, port


def is_listener(port: int, pid: int, password: str | None = None) -> bool:
    """Whether the Redis-protocol server on ``port`` is the process ``pid`` (INFO's process_id)."""
    conn = Raw(port, 2)
    try:
        if password:
            conn.call("AUTH", password)
        return b"process_id:%d\r\n" % pid in conn.call("INFO", "server")
    finally:
        conn.close()


class RespServers(NamedTuple):
    """A redis-server and a ``kvb serve`` to compare (conftest.py's ``resp_servers``)."""

    redis: int  #: redis-server's port
    kvb: int  #: kvb serve's port
    kvb_path: str  #: kvb serve's store


@contextmanager
def redis_and_kvb(tmp_path_factory, hz: int = 100) -> Iterator[tuple[int, RunningServer]]:
    """A throw-away redis-server (see ``start_redis_server`` for ``hz``) and a ``kvb serve`` on a new
    directory, for differential tests: yields (redis-server's port, the kvb server); afterwards stops
    both, kvb serve by SIGTERM, from which it must exit cleanly."""
    require_tool("redis-server")
    ours = RunningServer(str(tmp_path_factory.mktemp("kvb") / "store")).start()
    proc, port = start_redis_server(str(tmp_path_factory.mktemp("redis")), hz)
    yield port, ours
    stop_process(proc)
    assert ours.stop() == 0, "kvb serve did not exit cleanly on SIGTERM"


def tree_kill(proc: subprocess.Popen) -> None:
    """Kill a process and the process group it leads (Celery workers fork children)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    stop_process(proc)


class Raw:
    """A bare RESP connection whose replies are returned as the exact bytes the server sent."""

    def __init__(self, port: int, protocol: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        if protocol == 3:
            assert self.call("HELLO", "3").startswith(b"%")

    def call(self, *args: str | bytes) -> bytes:
        return self.pipeline([args])[0]

    def pipeline(self, commands: Sequence[Sequence[str | bytes]]) -> list[bytes]:
        """Send ``commands`` in one write, then read one reply each (their exact bytes)."""
        out = []
        for args in commands:
            words = [a.encode() if isinstance(a, str) else a for a in args]
            out.append(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words))
        self.sock.sendall(b"".join(out))
        return [self._read() for _ in commands]

    def _read(self) -> bytes:
        line = self.file.readline()
        kind, n = line[:1], line[1:-2]
        if kind in (b"$", b"!", b"="):
            size = int(n)
            return line + (self.file.read(size + 2) if size >= 0 else b"")
        if kind in (b"*", b"~", b">", b"%", b"|"):
            count = int(n) * (2 if kind in (b"%", b"|") else 1)
            out = line + b"".join(self._read() for _ in range(max(count, 0)))
            return out + self._read() if kind == b"|" else out
        return line

    def close(self) -> None:
        self.file.close()
        self.sock.close()
