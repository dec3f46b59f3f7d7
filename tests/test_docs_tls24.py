"""docs/redis.md's TLS how-to run as written: its openssl commands (under /bin/sh, which may not be bash)
make a CA and certificates that strict verification accepts (Python 3.13's default,
``ssl.VERIFY_X509_STRICT``, set here on any Python), and its ``kvb serve`` and ``redis-cli`` lines
serve and answer with them, as do docs/http.md's ``kvb http`` mutual-TLS options. Only the port and
the store directory are replaced.
"""

from __future__ import annotations

import argparse
import re
import shlex
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import child_env, connect_when_listening, free_port, require_tool, start_own_server

ROOT = Path(__file__).resolve().parent.parent


def _section(doc: str, heading: str) -> str:
    text = (ROOT / "docs" / doc).read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = re.search(r"^#{2,3} ", text[start:], re.M)
    return text[start : start + end.start() if end else len(text)]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _lines(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


TLS = _section("redis.md", "### TLS")
SETUP = _lines(_blocks(TLS, "sh")[0])
OPENSSL = [line for line in SETUP if line.startswith(("openssl ", "printf "))]
(SERVE,) = [line for line in SETUP if line.startswith("kvb serve ")]
(REDIS_CLI,) = [line for line in _lines(_blocks(TLS, "sh")[1]) if line.startswith("redis-cli ")]


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    require_tool("openssl")
    where = tmp_path_factory.mktemp("certs")
    script = "\n".join(OPENSSL) + "\n"
    done = subprocess.run(["/bin/sh", "-ec", script], cwd=where, capture_output=True, text=True, timeout=60)
    failed = f"the openssl commands of docs/redis.md failed under /bin/sh:\n{done.stderr[-1000:]}"
    assert done.returncode == 0, failed
    return where


def _strict_context(certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    return context


def _command(line: str, port: int, store: Path) -> list[str]:
    """A documented ``kvb ...`` line with the port and directory replaced, run as ``python -m kv_backend``."""
    replaced = {"6380": str(port), "DIR": str(store), "/srv/kv": str(store)}
    args = [replaced.get(a, a) for a in shlex.split(line)]
    assert args[0] == "kvb"
    return [sys.executable, "-m", "kv_backend", *args[1:]]


def test_the_documented_certificates_pass_strict_verification(certs):
    done = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", "ca.pem", "server.pem", "client.pem"],
        cwd=certs,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split("\n")[:2] == ["server.pem: OK", "client.pem: OK"]


def test_the_documented_kvb_serve_and_redis_cli_lines(certs, tmp_path):

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        out, err = subprocess.DEVNULL, subprocess.PIPE
        argv = _command(SERVE, port, tmp_path / "kv")
        return subprocess.Popen(argv, cwd=certs, env=child_env(), stdout=out, stderr=err, text=True), [port]

    server, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    try:
        raw = connect_when_listening(port)
        with _strict_context(certs).wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"PING\r\n")
            assert tls.recv(64) == b"+PONG\r\n"
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            _strict_context(certs).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"PING\r\n")
            assert tls.recv(64) == b"+PONG\r\n"
        require_tool("redis-cli")
        cli = [a.replace("6380", str(port)) for a in shlex.split(REDIS_CLI)]
        done = subprocess.run(cli, cwd=certs, capture_output=True, text=True, timeout=30)
        assert (done.returncode, done.stdout) == (0, "PONG\n"), done.stderr
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err


def test_kvb_http_serves_the_documented_certificates_to_a_strict_client(certs, tmp_path):
    mutual = _blocks(_section("http.md", "### TLS (HTTPS)"), "console")[1]
    (line,) = [line.removeprefix("$ ") for line in _lines(mutual) if "kvb http" in line]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        argv = [*_command(line, port, tmp_path / "kv"), "--port", str(port)]
        argv[argv.index("0.0.0.0")] = "127.0.0.1"  # (loopback only, here)
        argv[argv.index("clients-ca.pem")] = "ca.pem"
        out, err = subprocess.DEVNULL, subprocess.PIPE
        return subprocess.Popen(argv, cwd=certs, env=child_env(), stdout=out, stderr=err, text=True), [port]

    server, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    try:
        connect_when_listening(port).close()
        deadline = time.monotonic() + 20
        while True:
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                    _strict_context(certs).wrap_socket(raw, server_hostname="localhost") as tls,
                ):
                    tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    reply = b""
                    while chunk := tls.recv(4096):
                        reply += chunk
                break
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        assert reply.startswith(b"HTTP/1.1 200 "), reply
        assert reply.endswith(b'{"status":"ok"}'), reply
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err


@pytest.mark.parametrize(
    ("command", "doc", "table_starts"),
    [("serve", "redis.md", "| option | default | meaning |"), ("http", "http.md", "| Option / variable |")],
)
def test_every_option_of_the_help_is_in_the_options_table(command, doc, table_starts):
    from kv_backend.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    options = {o for a in sub.choices[command]._actions for o in a.option_strings} - {"-h", "--help"}
    assert "--dir" in options
    text = (ROOT / "docs" / doc).read_text()
    start = text.index(table_starts)
    table = text[start : text.index("\n\n", start)]
    documented = set(re.findall(r"`(--[a-z][a-z0-9-]+)", table))
    assert options - documented == set(), f"docs/{doc}'s options table leaves these out"
