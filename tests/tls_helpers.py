"""What the TLS tests of kvb serve and kvb http share: a CA and certificates made with trustme, the
certificate a TLS port serves, and a wait until a kvb http child answers over HTTPS."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

trustme = pytest.importorskip("trustme", reason="trustme is not installed (it comes with the dev extra)")
httpx = pytest.importorskip("httpx", reason="httpx is not installed (it comes with the dev extra)")

#: The source of a child running ``kvb http`` with the arguments after its first, which names the event loop
#: it runs on: "uvloop" (which uvicorn takes where it is installed) or "asyncio" (for spawn_python).
HTTP_ON_LOOP = (
    "import sys\n"
    "if sys.argv.pop(1) == 'asyncio':\n"
    "    sys.modules['uvloop'] = None  # (uvicorn then runs asyncio's loop)\n"
    "from kv_backend.cli import main\n"
    "sys.exit(main(['http', *sys.argv[1:]]))\n"
)


class Certs:
    """A CA (``ca``, also ``ca_file``), the server's certificate for 127.0.0.1 and localhost (``cert``,
    ``key``, and ``both`` in one file), a key of another certificate (``other_key``), a client's
    certificate of that CA (``client``: key and chain in one file; ``client_cert`` and ``client_key``
    apart) and one of another CA (``stranger``, ``stranger_cert``, ``stranger_key``), as PEM files in
    ``base``."""

    def __init__(self, base: str | os.PathLike[str]) -> None:
        self.dir = self.base = Path(base)
        ca = self._ca = trustme.CA()
        self.ca = self.ca_file = self._write("ca.pem", ca.cert_pem.bytes())
        server = ca.issue_cert("127.0.0.1", "localhost")
        self.cert = self._write("server.pem", b"".join(blob.bytes() for blob in server.cert_chain_pems))
        self.key = self._write("server.key", server.private_key_pem.bytes())
        self.both = self._write("both.pem", server.private_key_and_cert_chain_pem.bytes())
        self.other_key = self._write("other.key", ca.issue_cert("other.example").private_key_pem.bytes())
        self.client, self.client_cert, self.client_key = self._client(ca, "client")
        self.stranger, self.stranger_cert, self.stranger_key = self._client(trustme.CA(), "stranger")

    def _client(self, ca: Any, name: str) -> tuple[str, str, str]:
        """A client certificate of ``ca``: (key and chain in one file, the chain, the key)."""
        issued = ca.issue_cert(f"{name}@example.com")
        chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
        return (
            self._write(f"{name}-both.pem", issued.private_key_and_cert_chain_pem.bytes()),
            self._write(f"{name}.pem", chain),
            self._write(f"{name}.key", issued.private_key_pem.bytes()),
        )

    def _write(self, name: str, data: bytes) -> str:
        path = str(self.dir / name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def encrypted_key(self, password: bytes) -> str:
        """The server's key, encrypted with ``password`` (PKCS#8)."""
        from cryptography.hazmat.primitives import serialization

        with open(self.key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        return self._write("encrypted.key", data)

    def client_context(self, cert: str | None = None) -> ssl.SSLContext:
        """A client context trusting the CA, presenting ``cert`` (key and chain in one file) if given."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if cert is not None:
            context.load_cert_chain(cert)
        return context


def wait_for_https(proc: subprocess.Popen, port: int, client: ssl.SSLContext, timeout: float = 30) -> None:
    """Wait until the kvb http child ``proc`` answers ``/healthz`` on ``port`` over HTTPS, as ``client``
    connects; an AssertionError if it stops first."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"kvb http stopped (status {proc.returncode})"
        try:
            with httpx.Client(verify=client, timeout=5) as c:
                if c.get(f"https://127.0.0.1:{port}/healthz").status_code == 200:
                    return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def der(pem_file: str) -> bytes:
    """The first certificate of ``pem_file``, in DER."""
    text = Path(pem_file).read_text()
    end = "-----END CERTIFICATE-----"
    first = text[text.index("-----BEGIN CERTIFICATE-----") : text.index(end) + len(end)]
    return ssl.PEM_cert_to_DER_cert(first)


def served_cert(port: int, client_cert: str | None = None) -> bytes:
    """The certificate a new TLS connection to ``port`` of this host is served (whoever signed it), in
    DER; the connection presents ``client_cert`` (key and chain in one file) where given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(client_cert)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        cert = tls.getpeercert(binary_form=True)
        assert cert is not None
        return cert
