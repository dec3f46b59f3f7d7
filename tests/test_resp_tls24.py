"""TLS in kvb serve, with redis-server's ``tls-*`` options: ``--tls-port`` (``--port 0`` with it serves
TLS only), the certificate and key (a passphrase too), a CA and ``--tls-auth-clients yes|no|optional``,
``--tls-protocols``; a handshake timeout, so that a silent client or one speaking plaintext is dropped
and counted, never served; CONFIG GET tls-* as redis-server answers it. Certificates come from trustme;
servers run on ports the system gives as free (helpers.free_port), started through
helpers.start_own_server: on others where a parallel test's server listens on one first.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from helpers import child_env, free_port, start_own_server, stop_process
from tls_helpers import Certs

from kv_backend import cli
from kv_backend.errors import ConfigurationError
from kv_backend.server.tls import TLSSettings, configure

redis = pytest.importorskip("redis")
trustme = pytest.importorskip("trustme")
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

#: redis-py retries a command whose connection failed (with backoff): a refusal must show at once.
_NO_RETRY = Retry(NoBackoff(), 0)


def _two_ports() -> tuple[int, int]:
    """Two different free ports (the system may hand out the same one twice)."""
    first = free_port()
    while (second := free_port()) == first:
        pass
    return first, second


class TLSServer:
    """``kvb serve`` in a child process with a TLS port (and a plaintext one unless ``port`` is 0)."""

    def __init__(self, store: str, certs: Certs, *options: str, port: int = 0, loop: str = "") -> None:
        self.certs = certs
        env = child_env()
        if loop:
            env["KVB_EVENT_LOOP"] = loop
        files = ["--tls-cert-file", certs.cert, "--tls-key-file", certs.key]

        def launch() -> tuple[subprocess.Popen, list[int]]:
            self.tls_port, plain = _two_ports()
            self.port = plain if port else 0
            cmd = [sys.executable, "-m", "kv_backend", "serve", "--dir", store, "--port", str(self.port)]
            cmd += ["--tls-port", str(self.tls_port), *files]
            self.proc = subprocess.Popen(
                [*cmd, *options], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            return self.proc, [self.tls_port, self.port]

        # (on ports of its own: where another process listens on one first, it starts on others)
        start_own_server(launch, lambda *_: self.client(cert=True, retry=True).close())

    def client(self, cert: bool = True, retry: bool = False, **kwargs) -> redis.Redis:
        """A redis-py client over TLS (with the client certificate unless ``cert`` is False), once
        the server answers PING (``retry``: keep trying while it starts)."""
        c = self.certs
        extra = {"ssl_certfile": c.client_cert, "ssl_keyfile": c.client_key} if cert else {}
        extra.update(kwargs)
        deadline = time.monotonic() + 20
        while True:
            client = redis.Redis(
                port=self.tls_port, ssl=True, ssl_ca_certs=c.ca, socket_timeout=10, retry=_NO_RETRY, **extra
            )
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                client.close()
                if not retry or time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> str:
        if self.proc.stderr.closed:
            return ""
        stop_process(self.proc)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        return err


@pytest.fixture
def start(tmp_path, certs):
    servers: list[TLSServer] = []

    def starter(*options: str, port: int = 0, loop: str = "", store: str = "") -> TLSServer:
        server = TLSServer(store or str(tmp_path / "store"), certs, *options, port=port, loop=loop)
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.stop()


def _stats(client) -> dict:
    return client.info("stats")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_commands_work_over_tls_only(start, certs, loop):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    server = start("--tls-ca-cert-file", certs.ca, loop=loop)
    r = server.client()
    assert r.set("greeting", "hello") is True
    assert r.get("greeting") == b"hello"
    with r.pipeline() as p:
        assert p.incr("hits").rpush("queue", "a", "b").lrange("queue", 0, -1).execute() == [
            1,
            2,
            [b"a", b"b"],
        ]
    r3 = server.client(protocol=3)
    assert r3.hgetall("nothing") == {} and r3.get("greeting") == b"hello"
    clients = r.client_list()
    assert len(clients) == 2 and {c["cmd"] for c in clients} >= {"client|list"}
    # TLS only (--port 0), as redis-server: no plaintext port, which INFO and CONFIG GET say
    assert r.config_get("port") == {"port": "0"}
    assert r.info("server")["tcp_port"] == 0
    assert r.config_get("tls-port") == {"tls-port": str(server.tls_port)}
    assert r.config_get("tls-auth-clients") == {"tls-auth-clients": "yes"}
    started = time.monotonic()
    err = server.stop()  # (its idle clients, which never answer the TLS close, are not waited for)
    assert time.monotonic() - started < 3
    assert f"127.0.0.1:{server.tls_port} (TLS)" in err and "stopped" in err


def test_plaintext_to_the_tls_port_fails_and_the_server_keeps_serving(start, certs):
    server = start("--tls-ca-cert-file", certs.ca, "--tls-handshake-timeout", "5", port=1)
    r = server.client()
    before = _stats(r)["kvb_tls_handshake_failures"]
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as sock:
        sock.sendall(b"SET plain 1\r\nPING\r\n")
        got = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    assert b"+PONG" not in got and b"+OK" not in got
    # not served: counted as a failed handshake, and the command never ran
    assert _stats(r)["kvb_tls_handshake_failures"] == before + 1
    assert r.get("plain") is None
    assert r.ping() is True
    # the plaintext port is served as before, and TLS to it fails in turn
    plain = redis.Redis(port=server.port, socket_timeout=10)
    assert plain.set("plain", "2") is True
    assert r.get("plain") == b"2"
    plain.close()
    mixed = redis.Redis(port=server.port, ssl=True, ssl_ca_certs=certs.ca, socket_timeout=10, retry=_NO_RETRY)
    with pytest.raises(redis.ConnectionError):
        mixed.ping()
    assert r.ping() is True


def test_a_client_certificate_is_required_by_default_with_a_ca(start, certs):
    server = start("--tls-ca-cert-file", certs.ca)
    with pytest.raises(redis.ConnectionError):
        server.client(cert=False)
    with pytest.raises(redis.ConnectionError):  # one of a CA the server does not trust
        server.client(ssl_certfile=certs.stranger_cert, ssl_keyfile=certs.stranger_key, cert=False)
    r = server.client()
    assert r.set("k", "v") is True
    assert _stats(r)["kvb_tls_handshake_failures"] >= 2
    assert len(r.client_list()) == 1  # the refused ones were never clients


def test_optional_client_certificates(start, certs):
    server = start("--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "optional")
    assert server.client(cert=False).set("anonymous", "1") is True
    assert server.client().get("anonymous") == b"1"
    with pytest.raises(redis.ConnectionError):  # given, it must be one the CA signed
        server.client(ssl_certfile=certs.stranger_cert, ssl_keyfile=certs.stranger_key, cert=False)
    assert server.client().config_get("tls-auth-clients") == {"tls-auth-clients": "optional"}


def test_no_ca_no_client_certificates(start, certs):
    server = start()  # (tls-auth-clients defaults to no without a CA)
    r = server.client(cert=False)
    assert r.ping() is True
    assert r.config_get("tls-auth-clients") == {"tls-auth-clients": "no"}
    assert r.config_get("tls-ca-cert-file") == {"tls-ca-cert-file": ""}
    with pytest.raises(redis.ResponseError, match="kvb serve cannot change it"):
        r.config_set("tls-session-cache-size", "100")  # (Python's ssl module cannot set it)
    assert r.config_set("loglevel", "debug") is True
    assert r.config_get("loglevel") == {"loglevel": "debug"}


def test_a_silent_connection_is_dropped_after_the_handshake_timeout(start, certs):
    server = start("--tls-handshake-timeout", "0.5", "--loglevel", "debug")
    r = server.client(cert=False)
    before = _stats(r)["kvb_tls_handshake_failures"]
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server, having sent nothing
        waited = time.monotonic() - started
    assert 0.3 < waited < 5
    assert _stats(r)["kvb_tls_handshake_failures"] == before + 1
    assert r.ping() is True
    err = server.stop()
    assert "TLS handshake with 127.0.0.1:" in err and "failed" in err


def test_tls_clients_wait_for_a_script_that_runs_long(start, certs):
    """While a script runs long, the plaintext port is answered BUSY (the server reads its clients
    itself meanwhile); TLS clients, whose bytes only the event loop can decrypt, are served once the
    script ends: neither the command of one connected before nor the handshake of a new one is lost."""
    pytest.importorskip("lupa")
    server = start(port=1)
    r = server.client(cert=False)
    waiting = server.client(cert=False)
    r.config_set("busy-reply-threshold", "100")
    script = "local t = redis.call('TIME'); local s = t[1] + t[2] / 1e6; while true do " + (
        "local n = redis.call('TIME'); if n[1] + n[2] / 1e6 - s > 1 then return 1 end end"
    )

    def run_script() -> threading.Thread:
        thread = threading.Thread(target=lambda: r.eval(script, 0))
        thread.start()
        return thread

    runner = run_script()
    plain = redis.Redis(port=server.port, socket_timeout=10, retry=_NO_RETRY)
    try:
        deadline = time.monotonic() + 10
        while True:  # until the plaintext port says the script runs long
            ran = not runner.is_alive()
            try:
                plain.ping()
            except redis.exceptions.BusyLoadingError:
                raise
            except redis.ResponseError as exc:
                assert str(exc).startswith("Redis is busy") or "BUSY" in str(exc), exc
                break
            assert time.monotonic() < deadline, "the script never ran long"
            if ran:  # (it ended unseen: on a loaded machine its second can pass in one time slice)
                runner.join()
                runner = run_script()
            time.sleep(0.01)
        assert waiting.set("during", "1") is True  # (sent while it runs: answered after it)
        assert server.client(cert=False).ping() is True  # a handshake started while it runs
    finally:
        runner.join(10)
        plain.close()
    assert r.get("during") == b"1"


def test_maxclients_counts_tls_clients(start, certs):
    server = start()
    r = server.client(cert=False)
    r.config_set("maxclients", "1")
    before = _stats(r)["rejected_connections"]
    with pytest.raises(redis.ConnectionError):
        server.client(cert=False)
    assert _stats(r)["rejected_connections"] == before + 1
    r.config_set("maxclients", "10")
    assert server.client(cert=False).ping() is True


def test_protected_mode_denies_other_machines_over_tls(start, certs):
    from test_resp_protected_mode22 import _own_address

    address = _own_address()
    server = start("--host", "0.0.0.0")
    context = ssl.create_default_context(cafile=certs.ca)
    context.check_hostname = False  # (the certificate names 127.0.0.1, reached here by another address)
    raw = socket.create_connection((address, server.tls_port), timeout=10)
    with context.wrap_socket(raw) as sock:
        sock.sendall(b"PING\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    assert got.startswith(b"-DENIED kvb serve is running in protected mode")
    assert server.client(cert=False).ping() is True  # (from this machine: served)


def _serve_main(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", *argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bad_option_combinations_are_usage_errors(tmp_path, certs, capsys):
    store = str(tmp_path / "store")
    base = ["--dir", store, "--tls-port", "27399"]
    cases = [
        ([*base, "--tls-cert-file", certs.cert], "give --tls-key-file"),
        (["--dir", store, "--tls-cert-file", certs.cert], "is for a TLS port: give --tls-port"),
        (
            [*base, "--tls-cert-file", str(tmp_path / "nope.pem"), "--tls-key-file", certs.key],
            "cannot read --tls-cert-file",
        ),
        ([*base, "--tls-cert-file", certs.key, "--tls-key-file", certs.key], "holds no PEM certificate"),
        ([*base, "--tls-cert-file", certs.cert, "--tls-key-file", certs.cert], "holds no PEM private key"),
        (
            [*base, "--tls-cert-file", certs.cert, "--tls-key-file", certs.other_key],
            "does not match the certificate",
        ),
        (
            [*base, "--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-auth-clients", "yes"],
            "give --tls-ca-cert-file or --tls-ca-cert-dir",
        ),
        (
            [*base, "--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-protocols", "TLSv1"],
            "give TLSv1.2, TLSv1.3 or both",
        ),
        (
            [*base, "--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--port", "27399"],
            "give them different ports",
        ),
        (
            [*base, "--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-ciphers", "NOSUCH"],
            "OpenSSL knows no cipher",
        ),
        (["--dir", store, "--tls-port", "0"], "leave it out for no TLS"),
    ]
    for argv, said in cases:
        err = _serve_main(argv, capsys)
        assert said in err, (argv, err)
        assert "usage:" in err
    assert not os.path.exists(store)  # refused before the store was opened


def test_an_encrypted_key_needs_its_passphrase(tmp_path, certs, capsys):
    from cryptography.hazmat.primitives import serialization

    with open(certs.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    passfile = tmp_path / "pass"
    passfile.write_text("open sesame\n")
    argv = ["--dir", str(tmp_path / "s"), "--tls-port", "27399", "--tls-cert-file", certs.cert]
    argv += ["--tls-key-file", str(locked)]
    assert "is encrypted; give its passphrase" in _serve_main(argv, capsys)
    assert "wrong passphrase" in _serve_main([*argv, "--tls-key-file-pass", "nope"], capsys)
    settings = TLSSettings(
        port=27399, cert_file=certs.cert, key_file=str(locked), key_file_pass="open sesame"
    )
    assert isinstance(configure(settings), ssl.SSLContext)
    args = cli.build_parser().parse_args(["serve", *argv, "--tls-key-file-pass-file", str(passfile)])
    assert cli._tls_settings(args).key_file_pass == "open sesame"
    with pytest.raises(ConfigurationError, match="wrong passphrase"):
        configure(TLSSettings(port=27399, cert_file=certs.cert, key_file=str(locked), key_file_pass="x"))


@pytest.mark.parametrize("appendfsync", ["no", "always"])
def test_acknowledged_writes_survive_sigkill(tmp_path, start, certs, appendfsync):
    store = str(tmp_path / "store")
    server = start("--appendfsync", appendfsync, store=store)
    if appendfsync == "always":  # (replies held for the fsync, then the close after them: over TLS too)
        context = ssl.create_default_context(cafile=certs.ca)
        raw = socket.create_connection(("127.0.0.1", server.tls_port), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"SET quit 1\r\nGET quit\r\nQUIT\r\n")
            got = b""
            while chunk := tls.recv(4096):
                got += chunk
            assert got == b"+OK\r\n$1\r\n1\r\n+OK\r\n"
    acked: dict[str, list[int]] = {}
    stop = threading.Event()

    def writer(name: str) -> None:
        done = acked.setdefault(name, [])
        n = 0
        try:
            r = server.client(cert=False)
            while not stop.is_set() and n < 5000:
                n += 1
                r.set(f"{name}:{n}", n)
                done.append(n)
        except redis.ConnectionError:
            pass

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while sum(len(v) for v in acked.values()) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert sum(len(v) for v in acked.values()) >= 200
    again = start(store=store)
    r = again.client(cert=False)
    for name, numbers in acked.items():
        if numbers:
            keys = [f"{name}:{n}" for n in numbers]
            assert r.mget(keys) == [str(n).encode() for n in numbers]


def _redis_with_tls(certs: Certs, port: int, tmp) -> subprocess.Popen:
    cmd = ["redis-server", "--port", "0", "--tls-port", str(port), "--save", "", "--appendonly", "no"]
    cmd += ["--dir", str(tmp), "--tls-cert-file", certs.cert, "--tls-key-file", certs.key]
    cmd += ["--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "optional", "--tls-protocols", "TLSv1.3"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_config_get_tls_answers_as_redis_server(tmp_path, start, certs):
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server")

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        return _redis_with_tls(certs, port, tmp_path), [port]

    def ready(proc: subprocess.Popen, _: object) -> None:
        if proc.poll() is not None:  # (it exited on its own: not on a port another took)
            pytest.skip("this redis-server has no TLS")

    proc, (port,) = start_own_server(launch, ready)  # (on a port of its own: see start_own_server)
    try:
        real = redis.Redis(port=port, ssl=True, ssl_ca_certs=certs.ca, socket_timeout=10, retry=_NO_RETRY)
        deadline = time.monotonic() + 10
        while True:
            try:
                real.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.skip("this redis-server has no TLS")
                assert time.monotonic() < deadline
                time.sleep(0.05)
        expected = real.config_get("tls-*")
        real.close()
    finally:
        proc.terminate()
        proc.wait(10)
    server = start(
        "--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "optional", "--tls-protocols", "TLSv1.3"
    )
    got = server.client().config_get("tls-*")
    expected["tls-port"] = str(server.tls_port)
    assert got == expected


def test_a_tls_port_in_use_names_the_option(tmp_path, certs, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # (a port of its own, which no other test can take)
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "--dir", str(tmp_path / "s"), "--port", "0", "--tls-port", str(port)]
        assert cli.main([*argv, "--tls-cert-file", certs.cert, "--tls-key-file", certs.key]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "choose another --tls-port" in err


def test_tls_clients_are_answered_loading_while_the_store_opens(tmp_path, certs, monkeypatch):
    from helpers import spawn_python
    from test_serve_loading18 import GATED_SERVE, _fill

    store, gate = str(tmp_path / "store"), str(tmp_path / "gate")
    _fill(store)
    monkeypatch.setenv("GATE", gate)
    options = ["--port", "0", "--tls-cert-file", certs.cert, "--tls-key-file", certs.key]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        argv = ["serve", "--dir", store, *options, "--tls-port", str(port)]
        return spawn_python(GATED_SERVE, *argv, stderr=subprocess.DEVNULL), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    try:
        client = redis.Redis(port=port, ssl=True, ssl_ca_certs=certs.ca, socket_timeout=10, retry=_NO_RETRY)
        deadline = time.monotonic() + 20
        while True:  # (until it listens: a handshake, then LOADING for a command that needs the store)
            try:
                client.get("kept")
            except redis.exceptions.BusyLoadingError:
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        assert client.info("persistence")["loading"] == 1
        with open(gate, "w") as f:
            f.write("open")
        while True:
            try:
                assert client.get("kept") == b"written before the restart"
                break
            except redis.exceptions.BusyLoadingError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)
