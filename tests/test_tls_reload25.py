"""CONFIG SET of kvb serve's TLS settings at run time, as redis-server 7.0 takes them: a new certificate,
key, CA, protocol or cipher list is loaded and checked as at start, serves the TLS connections made
after it while those made before keep theirs, and a bad one fails the whole CONFIG SET with Redis's
reply, the old settings staying in force; CONFIG SET tls-port opens, moves or closes the TLS listener.
Checked against redis-server's replies, started with the same certificates, where it is installed."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import child_env, free_port, listens_on, move_to_free_ports, start_own_server, stop_process
from tls_helpers import Certs, der, served_cert

redis = pytest.importorskip("redis")
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

_NO_RETRY = Retry(NoBackoff(), 0)

#: Redis 7.0's reasons for a CONFIG SET whose TLS settings cannot be put in force.
CONFIG_FAILED = "Unable to update TLS configuration. Check server logs."
LISTEN_FAILED = "Unable to listen on this port. Check server logs."


def failed(name: str, reason: str = CONFIG_FAILED) -> str:
    return f"CONFIG SET failed (possibly related to argument '{name}') - {reason}"


def tls_client(port: int, ca: str, client_cert: str | None = None) -> redis.Redis:
    """A client of one TLS connection to ``port`` (trusting ``ca`` only, presenting ``client_cert`` if
    given), which redis-py never makes again (no retry), once it answered PING."""
    extra = {"ssl_certfile": client_cert} if client_cert is not None else {}
    client = redis.Redis(
        port=port, ssl=True, ssl_ca_certs=ca, single_connection_client=True, retry=_NO_RETRY, **extra
    )
    client.ping()
    return client


def peer_cert(client: redis.Redis) -> bytes:
    """The certificate ``client``'s connection was served, in DER."""
    return client.connection._sock.getpeercert(binary_form=True)


class Serve:
    """``kvb serve`` in a child process, on a plaintext port (``plain``) and, given ``tls``'s options,
    a TLS port; its stderr goes to a file (``log()``)."""

    def __init__(self, tmp: Path, *tls: str, tls_port: int | None = None) -> None:
        def launch() -> tuple[subprocess.Popen, list[int]]:
            self.port = free_port()
            self.tls_port = tls_port if tls_port is not None else (free_port() if tls else 0)
            self.stderr = tmp / f"serve-{self.port}.err"
            cmd = [sys.executable, "-m", "kv_backend", "serve", "--dir", str(tmp / f"store-{self.port}")]
            cmd += ["--port", str(self.port)]
            if tls:
                cmd += ["--tls-port", str(self.tls_port), *tls]
            with open(self.stderr, "wb") as err:
                self.proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=err)
            self.plain = redis.Redis(port=self.port, socket_timeout=10, decode_responses=True)
            return self.proc, [self.port, self.tls_port]

        def ready(*_: object) -> None:
            assert self.answers(30), self.log()

        # (on ports of its own: where another process listens on one first, it starts on others)
        start_own_server(launch, ready)

    def answers(self, timeout: float) -> bool:
        """Wait until the server answers PING on its plaintext port: True, or False if it exited first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.plain.ping()
                return True
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    return False
                assert time.monotonic() < deadline, f"the server did not answer in {timeout} s"
                time.sleep(0.05)

    def config_set(self, *words: str) -> str:
        """CONFIG SET's reply: "OK", or the error's text."""
        try:
            return str(self.plain.execute_command("CONFIG", "SET", *words))
        except redis.ResponseError as exc:
            return str(exc)

    def log(self) -> str:
        return self.stderr.read_text()

    def stop(self) -> None:
        self.plain.close()
        stop_process(self.proc)


@pytest.fixture
def serve(tmp_path):
    started: list[Serve] = []

    def start(*tls: str, **kwargs) -> Serve:
        started.append(Serve(tmp_path, *tls, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def _with(certs: Certs, *more: str) -> tuple[str, ...]:
    return ("--tls-cert-file", certs.cert, "--tls-key-file", certs.key, *more)


def test_a_rotated_certificate_serves_new_connections_and_old_ones_keep_theirs(serve, certs, other):
    server = serve(*_with(certs))
    old = tls_client(server.tls_port, certs.ca)
    old.set("k", "before")
    assert served_cert(server.tls_port) == der(certs.cert)

    assert server.config_set("tls-cert-file", other.cert, "tls-key-file", other.key) == "OK"

    assert served_cert(server.tls_port) == der(other.cert)
    new = tls_client(server.tls_port, other.ca)  # (trusting the new CA only)
    assert new.get("k") == b"before"
    old.set("k", "after")
    assert old.get("k") == b"after" and new.get("k") == b"after"
    assert peer_cert(old) == der(certs.cert) and peer_cert(new) == der(other.cert)
    got = server.plain.config_get("tls-*")
    assert (got["tls-cert-file"], got["tls-key-file"]) == (other.cert, other.key)


def test_the_same_path_given_again_reloads_the_files_replaced_in_place(serve, certs, other, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    cert, key = str(live / "server.pem"), str(live / "server.key")
    shutil.copy(certs.cert, cert)
    shutil.copy(certs.key, key)
    server = serve("--tls-cert-file", cert, "--tls-key-file", key)
    shutil.copy(other.cert, cert)
    shutil.copy(other.key, key)
    assert served_cert(server.tls_port) == der(certs.cert)  # (nothing is read again unasked)
    assert server.config_set("tls-cert-file", cert, "tls-key-file", key) == "OK"
    assert served_cert(server.tls_port) == der(other.cert)


def _bad_values(certs: Certs, other: Certs) -> list[tuple[tuple[str, ...], str, str]]:
    """(CONFIG SET's words, the parameter Redis's error names, what kvb serve logs) for TLS settings
    that cannot be put in force."""
    encrypted = certs.encrypted_key(b"secret")
    return [
        (("tls-cert-file", str(Path(certs.dir) / "absent.pem")), "tls-cert-file", "No such file"),
        (("tls-cert-file", certs.key), "tls-cert-file", "holds no PEM certificate"),
        (("tls-key-file", certs.other_key), "tls-key-file", "does not match the certificate"),
        (("tls-cert-file", other.cert), "tls-cert-file", "does not match the certificate"),
        (("tls-key-file", encrypted), "tls-key-file", "is encrypted; give its passphrase"),
        (("tls-key-file", encrypted, "tls-key-file-pass", "wrong"), "tls-key-file", "wrong passphrase"),
        (("tls-ca-cert-file", certs.key), "tls-ca-cert-file", "holds no PEM certificate"),
        (("tls-auth-clients", "yes"), "tls-auth-clients", "checks client certificates against a CA"),
        (("tls-protocols", "TLSv1.1"), "tls-protocols", "is not a protocol kvb serve speaks"),
        (("tls-ciphers", "NO-SUCH-CIPHER"), "tls-ciphers", "OpenSSL knows no cipher of that list"),
    ]


def test_a_bad_value_fails_the_config_set_and_the_old_settings_stay(serve, certs, other):
    server = serve(*_with(certs))
    before = server.plain.config_get("*")
    old = tls_client(server.tls_port, certs.ca)
    for words, name, logged in _bad_values(certs, other):
        assert server.config_set(*words) == failed(name), words
        assert server.plain.config_get("*") == before, words
        assert served_cert(server.tls_port) == der(certs.cert), words
        assert logged in server.log(), words
    assert old.ping() and tls_client(server.tls_port, certs.ca).ping()


def test_an_encrypted_key_with_its_passphrase_is_served_and_the_passphrase_never_shown(serve, certs, other):
    server = serve(*_with(certs))
    encrypted = other.encrypted_key(b"s3cret")
    words = ("tls-cert-file", other.cert, "tls-key-file", encrypted, "tls-key-file-pass", "s3cret")
    assert server.config_set(*words) == "OK"
    assert served_cert(server.tls_port) == der(other.cert)
    assert server.plain.config_get("tls-key-file-pass") == {"tls-key-file-pass": ""}


def test_all_or_none_with_the_other_parameters_of_the_same_config_set(serve, certs, other):
    server = serve(*_with(certs))
    absent = str(Path(certs.dir) / "absent.pem")
    assert server.config_set("maxclients", "50", "tls-cert-file", absent) == failed("tls-cert-file")
    assert server.plain.config_get("maxclients") == {"maxclients": "10000"}
    words = ("tls-cert-file", other.cert, "tls-key-file", other.key, "maxclients", "many")
    assert server.config_set(*words).endswith("argument couldn't be parsed into an integer")
    assert server.plain.config_get("tls-cert-file") == {"tls-cert-file": certs.cert}
    assert served_cert(server.tls_port) == der(certs.cert)
    assert server.config_set("maxclients", "50", *words[:4]) == "OK"
    assert server.plain.config_get("maxclients") == {"maxclients": "50"}
    assert served_cert(server.tls_port) == der(other.cert)


def test_client_certificates_asked_for_from_now_on(serve, certs):
    server = serve(*_with(certs))
    old = tls_client(server.tls_port, certs.ca)  # (no client certificate)
    assert server.config_set("tls-ca-cert-file", certs.ca, "tls-auth-clients", "yes") == "OK"
    with pytest.raises(redis.ConnectionError):
        tls_client(server.tls_port, certs.ca)
    with pytest.raises(redis.ConnectionError):
        tls_client(server.tls_port, certs.ca, client_cert=certs.stranger)
    assert tls_client(server.tls_port, certs.ca, client_cert=certs.client).ping()
    assert old.ping()
    got = server.plain.config_get("tls-auth-clients", "tls-ca-cert-file")
    assert got == {"tls-auth-clients": "yes", "tls-ca-cert-file": certs.ca}
    # (no CA: client certificates could not be checked any more)
    assert server.config_set("tls-ca-cert-file", "") == failed("tls-ca-cert-file")


def _taken(reply: str) -> bool:
    """Whether a CONFIG SET failed for a port that could not be listened on: a free port a parallel
    test's server may have taken first (helpers.move_to_free_ports then tries another)."""
    return reply.endswith(LISTEN_FAILED)


def test_tls_port_moves_closes_and_opens_the_tls_listener(serve, certs):
    server = serve(*_with(certs))
    first = server.tls_port
    old = tls_client(first, certs.ca)
    (moved,), reply = move_to_free_ports(lambda port: server.config_set("tls-port", str(port)), _taken)
    assert reply == "OK"
    # (the server's listener is gone, whatever listens on the port now: a parallel test's may)
    assert listens_on(server.proc.pid, first) is False and served_cert(moved) == der(certs.cert)
    assert old.ping()
    assert server.plain.config_get("tls-port") == {"tls-port": str(moved)}
    assert server.config_set("tls-port", str(moved)) == "OK"  # (its own port: nothing to do)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        assert server.config_set("maxclients", "60", "tls-port", busy) == failed("tls-port", LISTEN_FAILED)
    assert served_cert(moved) == der(certs.cert)
    got = server.plain.config_get("tls-port", "maxclients")
    assert got == {"tls-port": str(moved), "maxclients": "10000"}
    assert server.config_set("tls-port", "0") == "OK"
    assert listens_on(server.proc.pid, moved) is False and old.ping()
    (again,), reply = move_to_free_ports(lambda port: server.config_set("tls-port", str(port)), _taken)
    assert reply == "OK"
    assert tls_client(again, certs.ca).ping()


def test_a_server_started_without_tls_opens_a_tls_port(serve, certs):
    server = serve()
    port = free_port()
    assert server.config_set("tls-port", str(port)) == failed("tls-port")  # (no certificate yet)
    files = ("tls-cert-file", certs.cert, "tls-key-file", certs.key)
    # as Redis: tls-auth-clients is yes by default, which needs a CA
    assert server.config_set(*files, "tls-port", str(port)) == failed("tls-cert-file")
    assert server.plain.config_get("tls-port", "tls-cert-file") == {"tls-port": "0", "tls-cert-file": ""}
    assert server.config_set(*files) == "OK"  # (no TLS port: kept, checked when one opens)
    (port,), reply = move_to_free_ports(
        lambda port: server.config_set("tls-auth-clients", "no", "tls-port", str(port)), _taken
    )
    assert reply == "OK"
    assert tls_client(port, certs.ca).ping()
    assert server.plain.config_get("tls-port") == {"tls-port": str(port)}


def _redis_server(tmp: Path, certs: Certs) -> Serve:
    """redis-server with a plaintext port and a TLS one, with ``certs``' certificate and no CA."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server")
    server = Serve.__new__(Serve)

    def launch() -> tuple[subprocess.Popen, list[int]]:
        server.port, server.tls_port = free_port(), free_port()
        server.stderr = tmp / "redis.err"
        cmd = ["redis-server", "--port", str(server.port), "--tls-port", str(server.tls_port), "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(tmp), *_with(certs, "--tls-auth-clients", "no")]
        with open(server.stderr, "wb") as err:
            server.proc = subprocess.Popen(cmd, stdout=err, stderr=err)
        server.plain = redis.Redis(port=server.port, socket_timeout=10, decode_responses=True)
        return server.proc, [server.port, server.tls_port]

    def ready(*_: object) -> None:
        if not server.answers(10):
            pytest.skip("redis-server did not start with TLS (built without it?)")

    start_own_server(launch, ready)  # (on ports of its own, as Serve)
    return server


def test_config_set_replies_as_redis_server(serve, certs, other, tmp_path):
    real = _redis_server(tmp_path, certs)
    ours = serve(*_with(certs))
    encrypted = other.encrypted_key(b"pw")
    absent = str(Path(certs.dir) / "absent.pem")
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = str(taken.getsockname()[1])
            steps = [
                ("tls-cert-file", other.cert, "tls-key-file", other.key),
                ("TLS-CERT-FILE", absent),
                ("tls-key-file", certs.key),
                ("tls-cert-file", other.cert, "tls-key-file", encrypted),
                ("tls-key-file", encrypted, "tls-key-file-pass", "nope"),
                ("maxclients", "70", "tls-cert-file", absent),
                ("tls-cert-file", absent, "maxclients", "x"),
                ("tls-cert-file", absent, "tls-cert-file", other.cert),
                ("tls-auth-clients", "maybe"),
                ("tls-prefer-server-ciphers", "sometimes"),
                ("tls-port", "65536"),
                ("tls-port", busy),
                ("tls-key-file", encrypted, "tls-key-file-pass", "pw"),
                ("tls-ca-cert-file", other.ca, "tls-auth-clients", "optional"),
                ("tls-prefer-server-ciphers", "yes", "tls-ciphers", "HIGH"),
            ]
            for words in steps:
                assert ours.config_set(*words) == real.config_set(*words), words
        for name in ("maxclients", "tls-cert-file", "tls-key-file", "tls-auth-clients", "tls-ca-cert-file"):
            assert ours.plain.config_get(name) == real.plain.config_get(name), name
        assert served_cert(ours.tls_port) == served_cert(real.tls_port) == der(other.cert)
    finally:
        real.stop()


def test_a_file_that_is_no_regular_file_is_refused_without_waiting_for_it(serve, certs, tmp_path):
    server = serve(*_with(certs))
    fifo = str(tmp_path / "fifo.pem")
    os.mkfifo(fifo)  # (opening it would wait for a writer, and the server with it)
    for name in ("tls-cert-file", "tls-key-file", "tls-ca-cert-file"):
        assert server.config_set(name, fifo) == failed(name)
        assert server.config_set(name, "/dev/zero") == failed(name)
    assert "not a regular file" in server.log()
    assert served_cert(server.tls_port) == der(certs.cert)


def test_slowlog_shows_no_passphrase(serve, certs):
    server = serve(*_with(certs))
    encrypted = certs.encrypted_key(b"hush")
    assert server.config_set("slowlog-log-slower-than", "0") == "OK"
    assert server.config_set("tls-key-file", encrypted, "TLS-KEY-FILE-PASS", "hush") == "OK"
    assert server.config_set("requirepass", "pw") != "OK"  # (kvb takes no password at run time)
    logged = [entry["command"].decode() for entry in server.plain.slowlog_get(10)]
    assert f"CONFIG SET tls-key-file {encrypted} TLS-KEY-FILE-PASS (redacted)" in logged
    assert "CONFIG SET requirepass (redacted)" in logged  # (as Redis)
    assert not any("hush" in line for line in logged)


def test_a_fifo_given_at_start_is_a_usage_error(tmp_path, certs, capsys):
    from kv_backend import cli

    fifo = str(tmp_path / "fifo.pem")
    os.mkfifo(fifo)
    store = str(tmp_path / "store")
    argv = ["serve", "--dir", store, "--port", "0", "--tls-port", str(free_port())]
    with pytest.raises(SystemExit) as stopped:
        cli.main([*argv, "--tls-cert-file", fifo, "--tls-key-file", certs.key])
    assert stopped.value.code == 2
    assert f"cannot read --tls-cert-file {fifo}: not a regular file" in capsys.readouterr().err
    assert not os.path.exists(store)


def test_rotating_while_clients_connect_fails_no_handshake(serve, certs, other):
    server = serve(*_with(certs))
    trust_both = ssl.create_default_context(cafile=certs.ca)
    trust_both.load_verify_locations(cafile=other.ca)
    seen: list[bytes] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def connect_again_and_again() -> None:
        while not stop.is_set():
            try:
                with (
                    socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as raw,
                    trust_both.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
                ):
                    tls.sendall(b"PING\r\n")
                    assert tls.recv(7) == b"+PONG\r\n"
                    seen.append(tls.getpeercert(binary_form=True) or b"")
            except BaseException as exc:  # (reported below)
                errors.append(exc)
                return

    threads = [threading.Thread(target=connect_again_and_again) for _ in range(3)]
    for thread in threads:
        thread.start()
    for turn in range(20):
        use = other if turn % 2 == 0 else certs
        assert server.config_set("tls-cert-file", use.cert, "tls-key-file", use.key) == "OK"
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[0]
    assert {der(certs.cert), der(other.cert)} <= set(seen)
