"""A CONFIG SET of kvb serve's TLS files whose read never returns (a certificate on a dead network mount)
is bounded: after tlsreload.BUILD_TIMEOUT seconds it is answered Redis's CONFIG_FAILED error, the log
names the file being read, the settings in force stay, and a CONFIG SET queued behind it is served. What
the stuck build makes if it ever returns is dropped, and a server stopping meanwhile does not wait for it.

The server runs in this process (its event loop in a thread), with tlsreload.configure wrapped so that a
build whose certificate is one given file waits for an Event the test sets: deterministic, no real mount.
Before the bound, such a CONFIG SET's client waited for ever and every later TLS CONFIG SET behind it."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import move_to_free_ports, wait_for
from resp_helpers import Raw

from kv_backend.server import resp, tlsreload

pytest.importorskip("trustme", reason="trustme is not installed (it comes with the dev extra)")
from test_tls_reload_loop26 import pair, send
from tls_helpers import Certs, der, served_cert

#: The bound, in the test: short, but long enough for a good build (milliseconds) on a loaded machine.
BOUND = 1.0
#: Seconds any wait of the test may take before it fails (never a hang).
LIMIT = 30.0
FAILED = (
    b"-ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS "
    b"configuration. Check server logs.\r\n"
)


@dataclass
class Here:
    """An in-process kvb serve, its log lines, and the gate of the stuck file's builds."""

    server: resp.Server
    thread: threading.Thread
    logs: list[str]
    stuck: str
    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    returned: threading.Event = field(default_factory=threading.Event)
    dropped: list[Any] = field(default_factory=list)

    def raw(self) -> Raw:
        return Raw(self.server.port, 2)


@pytest.fixture
def here(tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> Iterator[Here]:
    stuck = str(tmp_path / "on-a-dead-mount.pem")
    shutil.copy(certs.cert, stuck)
    server = resp.Server(str(tmp_path / "store"), loading=True)
    logs: list[str] = []
    monkeypatch.setattr(server, "log", logs.append)

    def run() -> None:
        try:
            resp._run_on_new_loop(resp._run(server, "127.0.0.1", 0, None), None)
        finally:
            server.close()

    thread = threading.Thread(target=run, name="kvb-serve-here", daemon=True)
    state = Here(server, thread, logs, stuck)
    real = tlsreload.configure

    def configure(settings: Any, log: Any = None, reading: Any = None) -> ssl.SSLContext:
        if settings.cert_file == stuck:
            if reading is not None:
                reading(f"--tls-cert-file {stuck}")
            state.entered.set()
            state.release.wait(LIMIT)
            context = real(settings, log=log, reading=reading)
            state.returned.set()
            return context
        return real(settings, log=log, reading=reading)

    def drop(built: tlsreload.Built) -> None:
        state.dropped.append(built)

    monkeypatch.setattr(tlsreload, "configure", configure)
    monkeypatch.setattr(tlsreload, "_drop", drop)
    monkeypatch.setattr(tlsreload, "BUILD_TIMEOUT", BOUND)
    thread.start()
    try:
        wait_for(lambda: server.port and not server.loading, LIMIT, "the in-process server to listen")
        yield state
    finally:
        state.release.set()
        if thread.is_alive():
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                    sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
                    sock.recv(1)
            except OSError:
                pass
        thread.join(LIMIT)
        assert not thread.is_alive(), "the in-process server did not stop"


def open_tls(here: Here, certs: Certs) -> int:
    """Open a TLS port with ``certs``' certificate (a good build); its number."""
    raw = here.raw()
    try:

        def config_set(port: int) -> bytes:
            files = ["tls-cert-file", certs.cert, "tls-key-file", certs.key]
            return raw.call("CONFIG", "SET", "tls-port", str(port), *files, "tls-auth-clients", "no")

        (port,), reply = move_to_free_ports(config_set, lambda reply: b"Unable to listen" in reply)
        assert reply == b"+OK\r\n", reply
        return port
    finally:
        raw.close()


def test_a_build_that_never_returns_fails_its_config_set_after_the_bound(here, certs):
    port = open_tls(here, certs)
    raw, other_client = here.raw(), here.raw()
    try:
        raw.sock.settimeout(LIMIT)
        send(raw, ("CONFIG", "SET", "tls-cert-file", here.stuck))
        assert here.entered.wait(LIMIT)
        assert other_client.call("PING") == b"+PONG\r\n"  # (the others are served meanwhile)
        assert raw._read() == FAILED  # (before the bound: it waited for ever)
        said = "\n".join(here.logs)
        assert f"reading --tls-cert-file {here.stuck} did not return within 1 s" in said, said
        assert "CONFIG SET tls-cert-file refused" in said, said
        assert raw.call("CONFIG", "GET", "tls-cert-file") == pair("tls-cert-file", certs.cert)
        assert served_cert(port) == der(certs.cert)
        # the stuck build returns at last: what it made is dropped, never put in force
        here.release.set()
        assert here.returned.wait(LIMIT)
        wait_for(lambda: here.dropped, LIMIT, "the late build to be dropped")
        assert here.dropped[0].settings.cert_file == here.stuck
        assert raw.call("CONFIG", "GET", "tls-cert-file") == pair("tls-cert-file", certs.cert)
        assert served_cert(port) == der(certs.cert)
        assert raw.call("PING") == b"+PONG\r\n"
    finally:
        raw.close()
        other_client.close()


def test_a_config_set_queued_behind_the_stuck_one_is_served_after_the_bound(here, certs, other):
    port = open_tls(here, certs)
    first, second = here.raw(), here.raw()
    try:
        first.sock.settimeout(LIMIT)
        send(first, ("CONFIG", "SET", "tls-cert-file", here.stuck))
        assert here.entered.wait(LIMIT)
        reply = second.call("CONFIG", "SET", "tls-cert-file", other.cert, "tls-key-file", other.key)
        assert reply == b"+OK\r\n"  # (it waited behind the stuck one, then was built and put in force)
        assert first._read() == FAILED
        assert served_cert(port) == der(other.cert)
        assert second.call("CONFIG", "GET", "tls-key-file") == pair("tls-key-file", other.key)
    finally:
        first.close()
        second.close()


def test_a_server_stopping_while_a_build_is_stuck_does_not_wait_for_it(here, certs):
    open_tls(here, certs)
    raw = here.raw()
    try:
        send(raw, ("CONFIG", "SET", "tls-cert-file", here.stuck))
        assert here.entered.wait(LIMIT)
        with socket.create_connection(("127.0.0.1", here.server.port), timeout=5) as sock:
            sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
            sock.recv(1)
        here.thread.join(LIMIT)
        assert not here.thread.is_alive() and not here.returned.is_set()  # (the build is still stuck)
    finally:
        raw.close()
