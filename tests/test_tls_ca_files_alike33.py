"""kvb serve and kvb http accept the same CA files, read once and loaded by one function
(kv_backend.tlsload.load_ca), as OpenSSL reads a CA file: the PEM certificate blocks, other text skipped
in any encoding. kvb http refused a CA file holding a comment that is not ASCII (an accented name), which
kvb serve took; --tls-ca-cert-dir had a pattern of its own. A "TRUSTED CERTIFICATE" block (a certificate
with OpenSSL's trust settings) and the old "X509 CERTIFICATE" label load in both servers, as they did
when OpenSSL was given the file's path."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess

import pytest
from test_tls_ca_dir25 import subject_hash

from kv_backend.errors import ConfigurationError
from kv_backend.http.tls import server_context
from kv_backend.server.tls import TLSSettings, configure

COMMENT = "# Autorité de certification de Zoë Müller — 測試\n".encode()


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """A TLS handshake between the two contexts, in memory; ssl.SSLError where it fails."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    cli = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    done = [False, False]
    for _ in range(20):
        for i, (end, out, peer_in) in enumerate(((cli, c_out, s_in), (srv, s_out, c_in))):
            if not done[i]:
                try:
                    end.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done):
            cli.write(b"x")  # (TLS 1.3: the server checks the client's certificate after its handshake)
            s_in.write(c_out.read())
            assert srv.read(1) == b"x"
            return
    raise AssertionError("the handshake did not end")


def _servers(ca_file: str, certs) -> dict[str, ssl.SSLContext]:
    """The context of each server (kvb http, kvb serve) checking client certificates against ``ca_file``."""
    return {
        "kvb http": server_context(certs.cert, certs.key, ca_certs=ca_file, cert_reqs="required"),
        "kvb serve": configure(
            TLSSettings(port=1, cert_file=certs.cert, key_file=certs.key, ca_cert_file=ca_file)
        ),
    }


def _ca_with(certs, tmp_path, name: str, before: bytes, after: bytes = b"") -> str:
    with open(certs.ca, "rb") as f:
        path = tmp_path / name
        path.write_bytes(before + f.read() + after)
    return str(path)


def test_a_ca_file_with_a_utf8_comment_works_in_both_servers(certs, tmp_path):
    ca = _ca_with(certs, tmp_path, "ca-commented.pem", COMMENT, "\n# Fin de la chaîne\n".encode("latin-1"))
    for name, context in _servers(ca, certs).items():
        _handshake(context, certs.client_context(certs.client))
        with pytest.raises(ssl.SSLError):  # (a client of another CA: refused, the CA is what is trusted)
            _handshake(context, certs.client_context(certs.stranger))
        assert len(context.get_ca_certs()) == 1, name


def test_a_ca_dir_file_with_a_utf8_comment_is_loaded(certs, tmp_path):
    ca_dir = tmp_path / "cadir"
    ca_dir.mkdir()
    shutil.copy(_ca_with(certs, tmp_path, "c.pem", COMMENT), ca_dir / f"{subject_hash(certs.ca)}.0")
    logged: list[str] = []
    settings = TLSSettings(port=1, cert_file=certs.cert, key_file=certs.key, ca_cert_dir=str(ca_dir))
    context = configure(settings, log=logged.append)
    assert logged == [] and len(context.get_ca_certs()) == 1
    _handshake(context, certs.client_context(certs.client))


def test_a_ca_file_without_a_certificate_is_refused_with_the_existing_message(certs, tmp_path):
    ca = tmp_path / "none.pem"
    ca.write_bytes(COMMENT + b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    with pytest.raises(ConfigurationError, match=r"\(--ssl-ca-certs\) holds no CA certificate in PEM form"):
        server_context(certs.cert, certs.key, ca_certs=str(ca), cert_reqs="required")
    with pytest.raises(ConfigurationError, match=r"--tls-ca-cert-file .* holds no PEM certificate; give"):
        configure(TLSSettings(port=1, cert_file=certs.cert, key_file=certs.key, ca_cert_file=str(ca)))


def test_the_old_x509_certificate_label_loads_in_both_servers(certs, tmp_path):
    with open(certs.ca, "rb") as f:
        old = f.read().replace(b" CERTIFICATE-----", b" X509 CERTIFICATE-----")
    ca = tmp_path / "old.pem"
    ca.write_bytes(old)
    for context in _servers(str(ca), certs).values():
        _handshake(context, certs.client_context(certs.client))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_trusted_certificate_block_loads_in_both_servers_and_the_ca_directory(certs, tmp_path):
    trusted = tmp_path / "trusted.pem"
    subprocess.run(
        ["openssl", "x509", "-in", certs.ca, "-addtrust", "clientAuth", "-trustout", "-out", str(trusted)],
        check=True,
        capture_output=True,
    )
    assert trusted.read_bytes().startswith(b"-----BEGIN TRUSTED CERTIFICATE-----")
    for context in _servers(str(trusted), certs).values():
        _handshake(context, certs.client_context(certs.client))
    ca_dir = tmp_path / "cadir"
    ca_dir.mkdir()
    os.symlink(trusted, ca_dir / f"{subject_hash(certs.ca)}.0")
    logged: list[str] = []
    settings = TLSSettings(port=1, cert_file=certs.cert, key_file=certs.key, ca_cert_dir=str(ca_dir))
    context = configure(settings, log=logged.append)
    assert not [ln for ln in logged if "skipped" in ln]
    _handshake(context, certs.client_context(certs.client))
