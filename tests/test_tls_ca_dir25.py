"""kvb serve's ``--tls-ca-cert-dir`` (and CONFIG SET tls-ca-cert-dir): the directory's certificates
are read when the TLS settings are built, never during a handshake, so that nothing in the directory
(a FIFO, a slow file) holds the event loop up and a file that appears or changes there is taken only
when the directory is given again; which certificates are trusted is what OpenSSL's lookup by
hashed name (``openssl rehash``) finds there."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tls_helpers import Certs

from kv_backend.errors import ConfigurationError
from kv_backend.http.tls import server_context
from kv_backend.server.tls import TLSSettings, configure

redis = pytest.importorskip("redis")
from test_tls_reload25 import Serve  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture
def serve(tmp_path):
    started: list[Serve] = []

    def start(*tls: str) -> Serve:
        started.append(Serve(tmp_path, *tls))
        return started[-1]

    yield start
    for server in started:
        server.proc.kill()  # (an old server may be stuck in a FIFO's open(): SIGTERM would wait)
        server.proc.wait(10)
        server.plain.close()


def subject_hash(pem_file: str) -> str:
    """The name OpenSSL looks a CA up by in a CA directory (without its ``.N``)."""
    out = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", pem_file], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def ca_der(certs: Certs) -> bytes:
    with open(certs.ca, encoding="ascii") as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def tls_options(certs: Certs, ca_dir: Path) -> tuple[str, ...]:
    return ("--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-ca-cert-dir", str(ca_dir))


def handshake(port: int, certs: Certs, client: str, timeout: float = 10) -> bool:
    """Whether a TLS connection presenting ``client`` (key and chain in one file) is served PING."""
    context = certs.client_context(client)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"PING\r\n")
            return tls.recv(64) == b"+PONG\r\n"
    except (ssl.SSLError, OSError):
        return False


def test_a_fifo_in_the_ca_dir_does_not_hold_the_server_up(serve, certs, tmp_path):
    ca_dir = tmp_path / "cadir"
    ca_dir.mkdir()
    name = subject_hash(certs.ca)
    os.mkfifo(ca_dir / f"{name}.0")  # where OpenSSL looks for the client certificate's issuer first
    shutil.copy(certs.ca, ca_dir / f"{name}.1")
    server = serve(*tls_options(certs, ca_dir))
    served: list[bool] = []
    shaker = threading.Thread(target=lambda: served.append(handshake(server.tls_port, certs, certs.client)))
    shaker.start()
    time.sleep(0.5)  # (the handshake under way)
    other = redis.Redis(port=server.port, socket_timeout=1)
    try:
        began = time.monotonic()
        assert other.ping()
        assert time.monotonic() - began < 1
    finally:
        other.close()
        try:  # (unblock a server stuck in the FIFO's open(), so that the handshake ends)
            os.close(os.open(ca_dir / f"{name}.0", os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        shaker.join(15)
    assert served == [True]  # the CA in <hash>.1 is trusted
    assert f"{name}.0" in server.log() and "not a regular file" in server.log()


def test_a_file_added_to_the_ca_dir_is_trusted_once_the_dir_is_given_again(serve, certs, other, tmp_path):
    ca_dir = tmp_path / "cadir"
    ca_dir.mkdir()
    shutil.copy(certs.ca, ca_dir / f"{subject_hash(certs.ca)}.0")
    server = serve(*tls_options(certs, ca_dir))
    assert handshake(server.tls_port, certs, certs.client)
    assert not handshake(server.tls_port, certs, other.client)
    shutil.copy(other.ca, ca_dir / f"{subject_hash(other.ca)}.0")
    os.remove(ca_dir / f"{subject_hash(certs.ca)}.0")
    # not looked at during handshakes: as it was read
    assert not handshake(server.tls_port, certs, other.client)
    assert handshake(server.tls_port, certs, certs.client)
    assert server.config_set("tls-ca-cert-dir", str(ca_dir)) == "OK"  # the same path: read again
    assert handshake(server.tls_port, certs, other.client)
    assert not handshake(server.tls_port, certs, certs.client)


def test_which_files_of_the_ca_dir_are_read(certs, other, tmp_path):
    ca_dir = tmp_path / "cadir"
    ca_dir.mkdir()
    name = subject_hash(certs.ca)
    os.symlink(certs.ca, ca_dir / f"{name}.0")  # as openssl rehash makes them
    os.mkfifo(ca_dir / f"{name}.1")
    (ca_dir / f"{name}.2").write_text("not a certificate\n")
    (ca_dir / f"{name}.3").mkdir()
    os.mkfifo(ca_dir / f"{name}.r0")  # a CRL's name: CRLs are not checked, as by redis-server
    os.mkfifo(ca_dir / "README")  # not a hashed name: OpenSSL never opens it
    shutil.copy(other.ca, ca_dir / "other.pem")  # nor this one, which is not trusted
    logged: list[str] = []
    settings = TLSSettings(port=1, cert_file=certs.cert, key_file=certs.key, ca_cert_dir=str(ca_dir))
    context = configure(settings, log=logged.append)
    trusted = context.get_ca_certs(binary_form=True)
    assert trusted == [ca_der(certs)]
    text = "\n".join(logged)
    assert f"{name}.1: not a regular file" in text
    assert f"{name}.2: holds no PEM certificate" in text
    assert f"{name}.3: not a regular file" in text
    assert f"{name}.r0" not in text and "README" not in text and "other.pem" not in text


def test_a_ca_dir_without_a_certificate_under_a_hashed_name_is_refused(certs, tmp_path):
    ca_dir = tmp_path / "cadir"
    ca_dir.mkdir()
    shutil.copy(certs.ca, ca_dir / "ca.pem")
    settings = TLSSettings(port=1, cert_file=certs.cert, key_file=certs.key, ca_cert_dir=str(ca_dir))
    with pytest.raises(ConfigurationError, match="openssl rehash"):
        configure(settings, log=lambda message: None)
    # with a CA file beside it, the directory may be empty
    empty = tmp_path / "empty"
    empty.mkdir()
    both = TLSSettings(
        port=1, cert_file=certs.cert, key_file=certs.key, ca_cert_file=certs.ca, ca_cert_dir=str(empty)
    )
    assert configure(both, log=lambda message: None).get_ca_certs(binary_form=True) == [ca_der(certs)]


def test_a_ca_dir_given_again_that_lost_its_certificates_is_refused_and_the_old_one_stays(
    serve, certs, tmp_path
):
    ca_dir = tmp_path / "cadir"
    ca_dir.mkdir()
    hashed = ca_dir / f"{subject_hash(certs.ca)}.0"
    shutil.copy(certs.ca, hashed)
    server = serve(*tls_options(certs, ca_dir))
    os.remove(hashed)
    assert "Unable to update TLS configuration" in server.config_set("tls-ca-cert-dir", str(ca_dir))
    assert "openssl rehash" in server.log()
    assert handshake(server.tls_port, certs, certs.client)


def test_kvb_http_takes_a_ca_file_only(certs, tmp_path):
    with pytest.raises(ConfigurationError, match="--ssl-ca-certs"):
        server_context(certs.cert, certs.key, ca_certs=str(tmp_path), cert_reqs="required")
