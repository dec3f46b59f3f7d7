"""Loopback services the benchmarks start: free ports, a throw-away redis-server, and kvb serve."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ServiceError(RuntimeError):
    """A service could not be started; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """Wait until something accepts connections on ``port`` (raise if ``proc`` exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"the process for port {port} exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"nothing listens on port {port} after {timeout} s")


def start_redis_server(
    workdir: str, timeout: float = 20, *, appendfsync: str | None = None
) -> tuple[subprocess.Popen, int]:
    """Start a redis-server without persistence on a free loopback port; return it and the port.
    With ``appendfsync`` (always, everysec, no), its append-only file is on and fsynced so."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise ServiceError("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    aof = ["--appendonly", "no"]
    if appendfsync is not None:
        aof = ["--appendonly", "yes", "--appendfsync", appendfsync]
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", *aof, "--dir", workdir]
    proc = subprocess.Popen(
        [exe, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, timeout)
    except ServiceError as exc:
        stop(proc)
        raise ServiceError(f"redis-server did not start: {exc}") from None
    return proc, port


def start_kvb_serve(
    path: str, without: tuple[str, ...] = (), options: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, int]:
    """Start ``kvb serve`` of this checkout on the store ``path`` on a free loopback port.

    ``without`` names optional packages (``"uvloop"``, ``"hiredis"``) the server must run as if
    they were not installed: to measure what the ``server`` extra's speed-ups are worth.
    ``options``: more ``kvb serve`` options (``--appendfsync always``...).
    """
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    start = ["-m", "kv_backend"]
    if without:
        hide = "".join(f"sys.modules[{name!r}] = None; " for name in without)
        start = ["-c", f"import sys; {hide}from kv_backend.cli import main; sys.exit(main(sys.argv[1:]))"]
    proc = subprocess.Popen(
        [sys.executable, *start, "serve", "--dir", path, "--port", str(port), *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc)
    return proc, port


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of ``proc`` (started with ``start_new_session=True``: the process and the
    children it forked) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a service with SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
