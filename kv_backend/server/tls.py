"""TLS for ``kvb serve``: the ``tls-*`` options of redis-server 6 and later, with Python's ssl module.

``--tls-port`` opens a listener that speaks TLS (``--port 0`` with it: only that one, as in Redis).
Its connections are handshaken by the event loop (asyncio's or uvloop's ``ssl=``) before the client
is made, within :data:`HANDSHAKE_TIMEOUT` seconds: a client that connects and says nothing, or
speaks plaintext, is dropped then and counted (INFO's ``kvb_tls_handshake_failures``), never served.
The context is built at start (:func:`configure`), so that a certificate that cannot be read, a key
that does not match it or a wrong passphrase stops ``kvb serve`` before it listens, with an error
that says which option to fix; CONFIG SET builds a new one, checked the same way, for the
connections made after it (see :mod:`kv_backend.server.tlsreload`).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from kv_backend.errors import ConfigurationError
from kv_backend.regular import NotRegularFileError, read_regular
from kv_backend.server import log_line
from kv_backend.server.tlscadir import load_ca_dir
from kv_backend.tlsload import holds_certificates, load_ca, load_cert_chain

#: Seconds a TLS client has to complete its handshake before its connection is closed.
HANDSHAKE_TIMEOUT = 10.0
#: The protocols ``--tls-protocols`` may name, and the versions they are.
PROTOCOLS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
#: ``--tls-auth-clients``'s values and what they ask of a client's certificate.
AUTH_CLIENTS = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}


@dataclass(frozen=True)
class TLSSettings:
    """What the ``--tls-*`` options of ``kvb serve`` say (None: not given)."""

    port: int
    cert_file: str
    key_file: str
    key_file_pass: str | None = None
    ca_cert_file: str | None = None
    ca_cert_dir: str | None = None
    #: "yes", "optional" or "no"; None: "yes" when a CA is given, else "no".
    auth_clients: str | None = None
    #: A space-separated list of :data:`PROTOCOLS` (None: TLSv1.2 and TLSv1.3, as Redis).
    protocols: str | None = None
    #: An OpenSSL cipher list for TLSv1.2 (TLSv1.3's suites are OpenSSL's defaults).
    ciphers: str | None = None
    prefer_server_ciphers: bool = False
    handshake_timeout: float = HANDSHAKE_TIMEOUT

    @property
    def client_auth(self) -> str:
        """``tls-auth-clients`` as it applies: the value given, else yes with a CA and no without."""
        if self.auth_clients is not None:
            return self.auth_clients
        return "yes" if self.ca_cert_file or self.ca_cert_dir else "no"

    def config(self) -> dict[bytes, bytes]:
        """CONFIG GET's ``tls-*`` parameters, as redis-server 7 names them."""
        return config_entries(self)


def config_entries(settings: TLSSettings | None) -> dict[bytes, bytes]:
    """CONFIG GET's ``tls-*`` parameters (those of a server without TLS if ``settings`` is None): the
    options given, "" for a file not given, and Redis's defaults for what kvb does not set (the key's
    passphrase, as ``requirepass``, is never shown)."""
    s = settings

    def text(value: str | None) -> bytes:
        return os.fsencode(value or "")

    return {
        b"tls-port": str(s.port if s else 0).encode(),
        b"tls-cert-file": text(s.cert_file if s else None),
        b"tls-key-file": text(s.key_file if s else None),
        b"tls-key-file-pass": b"",
        b"tls-client-cert-file": b"",
        b"tls-client-key-file": b"",
        b"tls-client-key-file-pass": b"",
        b"tls-dh-params-file": b"",
        b"tls-ca-cert-file": text(s.ca_cert_file if s else None),
        b"tls-ca-cert-dir": text(s.ca_cert_dir if s else None),
        b"tls-auth-clients": (s.client_auth if s else "yes").encode(),
        b"tls-replication": b"no",
        b"tls-cluster": b"no",
        b"tls-protocols": text(s.protocols if s else None),
        b"tls-ciphers": text(s.ciphers if s else None),
        b"tls-ciphersuites": b"",
        b"tls-prefer-server-ciphers": b"yes" if s and s.prefer_server_ciphers else b"no",
        b"tls-session-caching": b"yes",
        b"tls-session-cache-size": b"20480",
        b"tls-session-cache-timeout": b"300",
    }


def protocol_versions(text: str) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """The lowest and highest version ``--tls-protocols`` allows; ConfigurationError if it names
    one kvb serve does not speak, or none."""
    names = text.split()
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown or not names:
        what = f"{unknown[0]!r} is not a protocol kvb serve speaks" if unknown else "it names no protocol"
        raise ConfigurationError(
            f"--tls-protocols {text!r}: {what}; give TLSv1.2, TLSv1.3 or both "
            "('TLSv1.2 TLSv1.3', the default)"
        )
    versions = sorted(PROTOCOLS[name] for name in names)
    return versions[0], versions[-1]


def _read(option: str, path: str) -> bytes:
    """The content of ``path``, a regular file (not a FIFO, whose opening would wait for a writer,
    nor a device: opened without waiting, then looked at, see :mod:`kv_backend.regular`); a
    ConfigurationError naming ``option`` for anything else or a file that cannot be read. What is
    read is what is loaded: OpenSSL never opens the path again (see :mod:`kv_backend.tlsload`)."""
    try:
        return read_regular(path)
    except NotRegularFileError:
        raise ConfigurationError(
            f"cannot read {option} {path}: not a regular file; give a PEM file"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {option} {path}: {exc.strerror or exc}; give a readable path"
        ) from None


def _listable(option: str, path: str) -> None:
    """A ConfigurationError naming ``option`` unless ``path`` is a directory that can be listed."""
    try:
        os.listdir(path)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {option} {path}: {exc.strerror or exc}; give a readable path"
        ) from None


def _encrypted(key: bytes) -> bool:
    """Whether the key file ``key`` holds an encrypted key (looked for where its header is)."""
    return b"ENCRYPTED" in key[: 1 << 16]


_log = log_line  # (the default log: kvb serve's line on stderr, in one write)


def _load_ca_dir(context: ssl.SSLContext, settings: TLSSettings, log: Callable[[str], None]) -> None:
    """Load ``--tls-ca-cert-dir``'s certificates now (see :mod:`kv_backend.server.tlscadir`); a
    ConfigurationError if it holds none and no ``--tls-ca-cert-file`` is given."""
    path = settings.ca_cert_dir or ""
    try:
        loaded = load_ca_dir(context, "--tls-ca-cert-dir", path, log)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read --tls-ca-cert-dir {path}: {exc.strerror or exc}; give a readable path"
        ) from None
    if not loaded and not settings.ca_cert_file:
        raise ConfigurationError(
            f"--tls-ca-cert-dir {path} holds no PEM certificate under a name OpenSSL looks CAs up by "
            "(HHHHHHHH.0, the subject's hash); run openssl rehash on it (c_rehash), or give the CA "
            "certificates in one file with --tls-ca-cert-file"
        )


def configure(
    settings: TLSSettings,
    log: Callable[[str], None] | None = None,
    reading: Callable[[str], None] | None = None,
) -> ssl.SSLContext:
    """The server's SSL context for ``settings``; a ConfigurationError that names the option to fix
    for a file that cannot be read or holds no certificate or key, a key that does not match the
    certificate, a wrong or missing passphrase, a CA that holds no certificate, or a bad protocol
    or cipher list, or client certificates asked for without a CA to check them. The CA directory's
    certificates are read now, never during a handshake; ``log`` (default: stderr) says which of its
    files are skipped. ``reading`` is told each file before it is read (``--tls-cert-file PATH``),
    so that a read that never returns (a dead network mount) can be named by whoever waits for it."""
    note = reading or _nothing
    if settings.client_auth in ("yes", "optional") and not (settings.ca_cert_file or settings.ca_cert_dir):
        raise ConfigurationError(
            f"--tls-auth-clients {settings.client_auth} checks client certificates against a CA: give "
            "--tls-ca-cert-file or --tls-ca-cert-dir, or --tls-auth-clients no"
        )
    files: dict[str, bytes] = {}
    for option, path in (
        ("--tls-cert-file", settings.cert_file),
        ("--tls-key-file", settings.key_file),
        ("--tls-ca-cert-file", settings.ca_cert_file),
    ):
        if path:
            note(f"{option} {path}")
            files[option] = _read(option, path)
    if settings.ca_cert_dir:
        note(f"--tls-ca-cert-dir {settings.ca_cert_dir}")
        _listable("--tls-ca-cert-dir", settings.ca_cert_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = protocol_versions(
        settings.protocols or "TLSv1.2 TLSv1.3"
    )
    if not holds_certificates(files["--tls-cert-file"]):
        raise ConfigurationError(
            f"--tls-cert-file {settings.cert_file} holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
            "give the server's certificate"
        )
    key = files["--tls-key-file"]
    try:
        # (a passphrase, even empty, so that OpenSSL never asks for one on the terminal)
        load_cert_chain(context, files["--tls-cert-file"], key, settings.key_file_pass or "")
    except ssl.SSLError as exc:
        raise ConfigurationError(_key_error(settings, key, exc)) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot load --tls-cert-file {settings.cert_file} and --tls-key-file {settings.key_file}: "
            f"{exc.strerror or exc}"
        ) from None
    if settings.ca_cert_file:
        try:
            load_ca(context, files["--tls-ca-cert-file"])
        except ssl.SSLError:
            raise ConfigurationError(
                f"--tls-ca-cert-file {settings.ca_cert_file} holds no PEM certificate; give the certificate "
                "of the CA that signs the clients' certificates"
            ) from None
    if settings.ca_cert_dir:
        note(f"--tls-ca-cert-dir {settings.ca_cert_dir}")
        _load_ca_dir(context, settings, log or _log)
    context.verify_mode = AUTH_CLIENTS[settings.client_auth]
    if settings.ciphers:
        try:
            context.set_ciphers(settings.ciphers)
        except ssl.SSLError:
            raise ConfigurationError(
                f"--tls-ciphers {settings.ciphers!r}: OpenSSL knows no cipher of that list; give an OpenSSL "
                "cipher list (openssl ciphers -v 'LIST' shows what it selects)"
            ) from None
    if settings.prefer_server_ciphers:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def _nothing(what: str) -> None:
    """``configure``'s ``reading`` where nobody asks."""


def _key_error(settings: TLSSettings, data: bytes, exc: ssl.SSLError) -> str:
    key = settings.key_file
    if exc.reason == "KEY_VALUES_MISMATCH":
        return (
            f"the key in --tls-key-file {key} does not match the certificate in --tls-cert-file "
            f"{settings.cert_file}; give the key the certificate was made for"
        )
    if _encrypted(data):
        if settings.key_file_pass:
            return f"cannot decrypt --tls-key-file {key}: wrong passphrase; check --tls-key-file-pass(-file)"
        return (
            f"--tls-key-file {key} is encrypted; give its passphrase with --tls-key-file-pass-file "
            "(or --tls-key-file-pass)"
        )
    return (
        f"--tls-key-file {key} holds no PEM private key (-----BEGIN PRIVATE KEY-----) that OpenSSL can read "
        f"({exc.reason or exc}); give the certificate's private key"
    )
