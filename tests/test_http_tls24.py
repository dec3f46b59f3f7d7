"""``kvb http`` serves HTTPS itself: --ssl-certfile, --ssl-keyfile, --ssl-keyfile-password-file,
--ssl-ca-certs and --ssl-cert-reqs (uvicorn's option names; the password from a file).

Files that cannot serve TLS as asked are a usage error before anything listens, in the project's
words (not a uvicorn traceback, nor OpenSSL asking for a password on the terminal); a client that
connects and never completes its handshake is dropped after the handshake timeout; plain HTTP sent
to the TLS port fails without stopping the server.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator

import pytest
from helpers import free_port, read_until_closed, spawn_python, start_own_server, tcp_ends, wait_for
from resp_helpers import stop_process
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)
from test_resp_tcp_keepalive22 import server_end_timer
from tls_helpers import Certs, wait_for_https

pytest.importorskip("uvicorn", reason="uvicorn is not installed (it comes with the server extra)")
trustme = pytest.importorskip("trustme", reason="trustme is not installed (it comes with the dev extra)")
httpx = pytest.importorskip("httpx", reason="httpx is not installed (it comes with the dev extra)")


#: The handshake timeout of the servers started here (kv_backend.http.tls.HANDSHAKE_TIMEOUT is 10 s).
HANDSHAKE = 0.5

_SERVER = f"""
import sys
from kv_backend.http import tls
tls.HANDSHAKE_TIMEOUT = {HANDSHAKE}
from kv_backend.cli import main
sys.exit(main(["http", *sys.argv[1:]]))
"""


@contextlib.contextmanager
def _https(
    store: str, *options: str, client: ssl.SSLContext, open_files: int | None = None
) -> Iterator[tuple[int, subprocess.Popen]]:
    """kvb http with TLS ``options`` (and that limit of open files), once it answers ``client`` over HTTPS."""

    def limit() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        args = ("--dir", store, "--port", str(port), *options)
        out = subprocess.DEVNULL
        return spawn_python(_SERVER, *args, stdout=out, stderr=out, preexec_fn=limit), [port]

    # (on a port of its own: where another process listens there first, it starts on another)
    proc, (port,) = start_own_server(launch, lambda proc, ports: wait_for_https(proc, ports[0], client))
    try:
        yield port, proc
    finally:
        stop_process(proc)


# Usage errors, in this process: the TLS context is loaded before the store is opened.


def _bad(certs: Certs, tmp_path) -> dict[str, tuple[list[str], str]]:
    password = tmp_path / "password"
    password.write_text("secret\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    encrypted = certs.encrypted_key(b"secret")
    return {
        "a certificate without a key": (
            ["--ssl-certfile", certs.cert],
            "a certificate without a key: ",
        ),
        "a key without a certificate": (
            ["--ssl-keyfile", certs.key],
            "--ssl-keyfile without --ssl-certfile: give the server's certificate",
        ),
        "an unreadable certificate": (
            ["--ssl-certfile", str(tmp_path / "absent.pem"), "--ssl-keyfile", certs.key],
            "absent.pem (--ssl-certfile): No such file or directory",
        ),
        "an unreadable key": (
            ["--ssl-certfile", certs.cert, "--ssl-keyfile", str(tmp_path)],
            "(--ssl-keyfile): Is a directory",
        ),
        "no certificate in the file": (
            ["--ssl-certfile", str(junk), "--ssl-keyfile", certs.key],
            "holds no certificate in PEM form",
        ),
        "a key that is not the certificate's": (
            ["--ssl-certfile", certs.cert, "--ssl-keyfile", certs.other_key],
            "is not the key of the certificate in",
        ),
        "an encrypted key without a password": (
            ["--ssl-certfile", certs.cert, "--ssl-keyfile", encrypted],
            "is encrypted: give a file holding its password with --ssl-keyfile-password-file",
        ),
        "a wrong password": (
            [
                "--ssl-certfile",
                certs.cert,
                "--ssl-keyfile",
                encrypted,
                "--ssl-keyfile-password-file",
                str(wrong),
            ],
            "with the password of --ssl-keyfile-password-file: wrong password",
        ),
        "a password for a key not encrypted": (
            [
                "--ssl-certfile",
                certs.cert,
                "--ssl-keyfile",
                certs.key,
                "--ssl-keyfile-password-file",
                str(password),
            ],
            "is not encrypted: leave --ssl-keyfile-password-file out",
        ),
        "client certificates without CAs": (
            ["--ssl-certfile", certs.both, "--ssl-cert-reqs", "required"],
            "--ssl-cert-reqs required needs --ssl-ca-certs",
        ),
        "CAs that verify nothing": (
            ["--ssl-certfile", certs.both, "--ssl-ca-certs", certs.ca_file],
            "add --ssl-cert-reqs required (or optional), or leave --ssl-ca-certs out",
        ),
        "no CA in the CA file": (
            ["--ssl-certfile", certs.both, "--ssl-ca-certs", str(junk), "--ssl-cert-reqs", "optional"],
            "(--ssl-ca-certs) holds no CA certificate in PEM form",
        ),
    }


_CASES = [
    "a certificate without a key",
    "a key without a certificate",
    "an unreadable certificate",
    "an unreadable key",
    "no certificate in the file",
    "a key that is not the certificate's",
    "an encrypted key without a password",
    "a wrong password",
    "a password for a key not encrypted",
    "client certificates without CAs",
    "CAs that verify nothing",
    "no CA in the CA file",
]


@pytest.mark.parametrize("case", _CASES)
def test_tls_options_that_cannot_serve_are_a_usage_error_before_anything_starts(
    case, certs, tmp_path, capsys
):
    options, says = _bad(certs, tmp_path)[case]
    store = str(tmp_path / "store")
    code, out, err = run(capsys, "http", "--dir", store, "--port", "27499", *options)
    assert (code, out) == (2, "")
    assert err.startswith("usage: kvb http "), err
    assert "kvb http: error: " in err and says in err, err
    assert "Traceback" not in err
    assert not os.path.exists(store)  # refused before the store is opened (or anything listens)


def test_an_empty_password_file_is_refused(certs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    code, _, err = run(
        capsys, "http", "--dir", str(tmp_path / "s"), "--ssl-keyfile-password-file", str(empty)
    )
    assert code == 2 and "is empty; write the secret in it" in err


# A real server.


def test_https_with_the_key_in_its_own_file(certs, tmp_path):
    client = certs.client_context()
    with _https(
        str(tmp_path / "store"), "--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key, client=client
    ) as (
        port,
        _,
    ):
        with httpx.Client(verify=client, timeout=10) as c:
            assert c.put(f"https://127.0.0.1:{port}/v1/keys/k", content=b"v").status_code == 201
            got = c.get(f"https://localhost:{port}/v1/keys/k")
            assert (got.status_code, got.content) == (200, b"v")
        # a client that does not trust the CA refuses the server
        untrusting = httpx.Client(verify=ssl.create_default_context(), timeout=10)
        with untrusting as c, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            c.get(f"https://127.0.0.1:{port}/healthz")


def test_plain_http_and_silent_clients_are_dropped_and_the_server_keeps_serving(certs, tmp_path):
    client = certs.client_context()
    with _https(str(tmp_path / "store"), "--ssl-certfile", certs.both, client=client) as (port, proc):
        # plain HTTP to the TLS port: the handshake fails and the connection is closed
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not read_until_closed(plain).startswith(b"HTTP/1.1 200")
        # a client that connects and never sends its ClientHello is closed after the handshake timeout
        silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        started = time.monotonic()
        try:
            for sock in silent:
                assert read_until_closed(sock) == b""  # (held for ever: the socket's 10 s timeout fails)
        finally:
            for sock in silent:
                sock.close()
        assert HANDSHAKE * 0.8 <= time.monotonic() - started < 5
        # one that stops in the middle of its handshake too
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        half = client.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with pytest.raises(ssl.SSLWantReadError):
            half.do_handshake()
        raw.sendall(outgoing.read())  # the ClientHello, and no more
        received = read_until_closed(raw)  # the server's hello, then the close at the timeout
        raw.close()
        assert received
        assert proc.poll() is None
        with httpx.Client(verify=client, timeout=10) as c:
            assert c.get(f"https://127.0.0.1:{port}/healthz").status_code == 200


def test_client_certificates_required(certs, tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    options = [
        "--ssl-certfile",
        certs.cert,
        "--ssl-keyfile",
        certs.encrypted_key(b"s3cret"),
        "--ssl-keyfile-password-file",
        str(password),
        "--ssl-ca-certs",
        certs.ca_file,
        "--ssl-cert-reqs",
        "required",
    ]
    with _https(str(tmp_path / "store"), *options, client=certs.client_context(certs.client)) as (port, proc):
        url = f"https://127.0.0.1:{port}/healthz"
        with httpx.Client(verify=certs.client_context(certs.client), timeout=10) as c:
            assert c.get(url).status_code == 200
        for refused in (certs.client_context(), certs.client_context(certs.stranger)):
            with httpx.Client(verify=refused, timeout=10) as c, pytest.raises(httpx.TransportError):
                c.get(url)
        assert proc.poll() is None


def test_client_certificates_optional(certs, tmp_path):
    options = ["--ssl-certfile", certs.both, "--ssl-ca-certs", certs.ca_file, "--ssl-cert-reqs", "optional"]
    with _https(str(tmp_path / "store"), *options, client=certs.client_context()) as (port, _):
        url = f"https://127.0.0.1:{port}/healthz"
        for shown in (None, certs.client):  # none shown, or one the CA signed
            with httpx.Client(verify=certs.client_context(shown), timeout=10) as c:
                assert c.get(url).status_code == 200
        stranger = httpx.Client(verify=certs.client_context(certs.stranger), timeout=10)
        with stranger as c, pytest.raises(httpx.TransportError):  # one shown is verified
            c.get(url)


def _server_ends(port: int) -> int:
    """How many connections to ``port`` the server still has (its ends of TCP connections, not listening)."""
    return tcp_ends(port, set(range(1, 12)) - {10})  # (every state but LISTEN)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")
def test_tls_connections_count_against_the_limit_and_get_keepalive_probes(certs, tmp_path):
    """With the limit of open files at 60, kvb http keeps 28 connections (tests/test_http_connections22.py):
    the 29th is closed before its handshake; the ones kept get TCP keepalive probes, as plain ones."""
    client = certs.client_context()
    with _https(str(tmp_path / "store"), "--ssl-certfile", certs.both, client=client, open_files=60) as (
        port,
        _,
    ):
        wait_for(lambda: _server_ends(port) == 0, 10, "the first client's connection closed")
        kept: list[ssl.SSLSocket] = []
        try:
            for _ in range(28):
                sock = client.wrap_socket(
                    socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
                )
                kept.append(sock)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
            found = server_end_timer(port, kept[0])
            assert found is not None and found[0] == 2 and 250 < found[1] <= 300, found
            # (closed at once: a 503 would need a handshake, tests/test_http_tls_limit24.py)
            refused = socket.create_connection(("127.0.0.1", port), timeout=10)
            with refused, pytest.raises((ssl.SSLError, ConnectionError)):
                client.wrap_socket(refused, server_hostname="127.0.0.1")
        finally:
            for sock in kept:
                sock.close()
        wait_for(lambda: _server_ends(port) == 0, 10, "the connections closed")
        with httpx.Client(verify=client, timeout=10) as c:
            assert c.get(f"https://127.0.0.1:{port}/healthz").status_code == 200


@pytest.mark.parametrize(
    ("context", "says"),
    [
        ("server.pem", "ssl_context must be an ssl.SSLContext"),
        (ssl.create_default_context(), "ssl_context is a client context (PROTOCOL_TLS_CLIENT)"),
    ],
    ids=["a file name", "a client context"],
)
def test_serve_refuses_a_context_that_cannot_serve_before_it_starts(context, says, tmp_path):
    """serve(ssl_context=...) from Python: a file name, or a client's context (with which every
    handshake would fail), is the project's error before the store is opened or anything listens."""
    from kv_backend.errors import ConfigurationError, InvalidArgumentError
    from kv_backend.http import serve

    store = tmp_path / "store"
    with pytest.raises(ConfigurationError, match=re.escape(says)) as info:
        serve(str(store), port=27499, ssl_context=context)
    assert isinstance(info.value, InvalidArgumentError) == isinstance(context, str)
    assert "kv_backend.http.tls.server_context" in str(info.value)
    assert not store.exists()
