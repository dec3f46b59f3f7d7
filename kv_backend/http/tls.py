"""TLS for ``kvb http``: the server's :class:`ssl.SSLContext`, loaded once before the server listens.

The options are uvicorn's (``--ssl-certfile``, ``--ssl-keyfile``, ``--ssl-ca-certs``,
``--ssl-cert-reqs``), except the key's password, which ``kvb http`` reads from a file
(``--ssl-keyfile-password-file``): one on the command line is visible to every user in ``ps``.
Everything that would stop uvicorn with a traceback, or go unnoticed until a client connects (a key
that does not match the certificate, a wrong password, an encrypted key without one, where OpenSSL
would ask for it on the terminal), is a :class:`~kv_backend.errors.ConfigurationError` here, saying
what to do.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kv_backend.errors import ConfigurationError
from kv_backend.regular import NotRegularFileError, read_regular
from kv_backend.tlsload import load_ca, load_cert_chain

__all__ = ["CERT_REQS", "HANDSHAKE_TIMEOUT", "reading_now", "server_context"]

#: The values of ``--ssl-cert-reqs``: whether a client must show a certificate that a CA of
#: ``--ssl-ca-certs`` signed (uvicorn takes them as the numbers 0, 1 and 2).
CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

#: Seconds a connection has to complete its TLS handshake before it is closed. A client that
#: connects and sends nothing (or not TLS) holds a file descriptor, and a place among the connections
#: kept (:mod:`kv_backend.http.connlimit`), until then (asyncio's default is 60 s): see docs/http.md, "TLS".
HANDSHAKE_TIMEOUT = 10.0


#: What each thread is reading now in server_context, by thread id (see reading_now).
_reading: dict[int, str] = {}


@contextmanager
def _reads(what: str) -> Iterator[None]:
    """Say (to reading_now) that this thread reads ``what`` for the time of the block."""
    ident = threading.get_ident()
    _reading[ident] = what
    try:
        yield
    finally:
        _reading.pop(ident, None)


def reading_now(thread_id: int | None) -> str | None:
    """The file(s) the thread ``thread_id`` is reading now in :func:`server_context`
    (``/etc/kv/cert.pem (--ssl-certfile)``), None where it reads none: what a reload of ``kvb http
    --workers`` whose read does not return (a file on a mount that no longer answers) waits for."""
    return None if thread_id is None else _reading.get(thread_id)


def _read(path: str | os.PathLike[str], option: str) -> bytes:
    """The content of the PEM file ``path``: a regular file, never a FIFO or a device, whose read could
    wait for ever (a FIFO waits for a writer: at a SIGHUP reload of ``kvb http --workers``, the main
    process would wait there, heeding no SIGTERM), as ``kvb serve`` refuses them (see
    :mod:`kv_backend.regular`)."""
    try:
        with _reads(f"{os.fsdecode(path)} ({option})"):
            return read_regular(path, directories=True)  # (a directory: the read's own "Is a directory")
    except NotRegularFileError:
        raise ConfigurationError(
            f"cannot read {os.fsdecode(path)} ({option}): not a regular file; give a PEM file"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {os.fsdecode(path)} ({option}): {exc.strerror or exc}; "
            "give a file this user may read"
        ) from None


def server_context(
    certfile: str | os.PathLike[str] | None,
    keyfile: str | os.PathLike[str] | None = None,
    keyfile_password: str | None = None,
    ca_certs: str | os.PathLike[str] | None = None,
    cert_reqs: str = "none",
) -> ssl.SSLContext | None:
    """The server's TLS context from these files (PEM), or None without ``certfile`` and the rest.

    ``certfile`` holds the server's certificate (then any intermediate ones); ``keyfile`` its private
    key (without it, ``certfile`` must hold the key too); ``keyfile_password`` decrypts an encrypted
    key; ``ca_certs`` holds the CAs whose client certificates are accepted, and ``cert_reqs``
    (``"none"``, ``"optional"``, ``"required"``) says whether a client must show one.
    Raises :class:`~kv_backend.errors.ConfigurationError` for what cannot serve TLS as asked.
    """
    if cert_reqs not in CERT_REQS:
        raise ConfigurationError(f"--ssl-cert-reqs must be one of {', '.join(CERT_REQS)}, not {cert_reqs!r}")
    if certfile is None:
        given = [
            option
            for option, value in (
                ("--ssl-keyfile", keyfile),
                ("--ssl-keyfile-password-file", keyfile_password),
                ("--ssl-ca-certs", ca_certs),
                ("--ssl-cert-reqs", None if cert_reqs == "none" else cert_reqs),
            )
            if value is not None
        ]
        if given:
            raise ConfigurationError(
                f"{', '.join(given)} without --ssl-certfile: give the server's certificate with "
                "--ssl-certfile (and its key with --ssl-keyfile) to serve HTTPS, or leave "
                f"{'them' if len(given) > 1 else 'it'} out to serve plain HTTP"
            )
        return None
    if ca_certs is not None and cert_reqs == "none":
        raise ConfigurationError(
            "--ssl-ca-certs is only used to verify client certificates, and --ssl-cert-reqs is none: "
            "add --ssl-cert-reqs required (or optional), or leave --ssl-ca-certs out"
        )
    if ca_certs is None and cert_reqs != "none":
        raise ConfigurationError(
            f"--ssl-cert-reqs {cert_reqs} needs --ssl-ca-certs: give the file of the CA certificates "
            "that sign the clients' certificates"
        )
    cert_path = os.fsdecode(certfile)
    cert_data = _read(certfile, "--ssl-certfile")
    if b"-----BEGIN CERTIFICATE-----" not in cert_data:
        raise ConfigurationError(
            f"{cert_path} (--ssl-certfile) holds no certificate in PEM form (-----BEGIN CERTIFICATE-----); "
            "give the server's certificate file"
        )
    if keyfile is None:
        key_path, key_option = cert_path, "--ssl-certfile"
        if b"PRIVATE KEY-----" not in cert_data:
            raise ConfigurationError(
                f"a certificate without a key: {cert_path} (--ssl-certfile) holds no private key; give "
                "the certificate's key with --ssl-keyfile"
            )
        key_data = None
    else:
        key_path, key_option = os.fsdecode(keyfile), "--ssl-keyfile"
        key_data = _read(keyfile, key_option)
        if b"PRIVATE KEY-----" not in key_data:
            raise ConfigurationError(
                f"{key_path} (--ssl-keyfile) holds no private key in PEM form (-----BEGIN ... PRIVATE "
                "KEY-----); give the key of the certificate in --ssl-certfile"
            )
    asked: list[bool] = []

    def password() -> str:
        # Always a function: given none, OpenSSL would ask for an encrypted key's password on the
        # terminal (a service would hang there).
        asked.append(True)
        if keyfile_password is None:
            raise ConfigurationError(
                f"the private key in {key_path} ({key_option}) is encrypted: give a file holding its "
                "password with --ssl-keyfile-password-file"
            )
        return keyfile_password

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # (the bytes read above, not the paths: a FIFO put there since would hold OpenSSL's open)
        load_cert_chain(context, cert_data, key_data, password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigurationError(
                f"the private key in {key_path} ({key_option}) is not the key of the certificate in "
                f"{cert_path} (--ssl-certfile); give the two files that belong together"
            ) from None
        if asked:
            raise ConfigurationError(
                f"cannot decrypt the private key in {key_path} ({key_option}) with the password of "
                "--ssl-keyfile-password-file: wrong password; give the file holding the key's password"
            ) from None
        raise ConfigurationError(
            f"cannot load the certificate in {cert_path} and the key in {key_path}: {exc.reason or exc}; "
            "give a certificate and its private key in PEM form"
        ) from None
    if keyfile_password is not None and not asked:
        raise ConfigurationError(
            f"the private key in {key_path} ({key_option}) is not encrypted: leave "
            "--ssl-keyfile-password-file out"
        )
    context.verify_mode = CERT_REQS[cert_reqs]
    if ca_certs is not None:
        ca_path = os.fsdecode(ca_certs)
        data = _read(ca_certs, "--ssl-ca-certs")
        try:
            load_ca(context, data)  # (as kvb serve loads its CA files: other text, in any encoding, skipped)
        except ssl.SSLError:
            raise ConfigurationError(
                f"{ca_path} (--ssl-ca-certs) holds no CA certificate in PEM form "
                "(-----BEGIN CERTIFICATE-----); give the CA certificates that sign the clients' certificates"
            ) from None
    return context
