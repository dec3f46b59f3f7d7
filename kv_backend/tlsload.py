"""Loading the TLS files of ``kvb serve`` and ``kvb http`` into an SSL context from the bytes read once.

Both servers read their certificate, key and CA files as regular files, without waiting (see
:mod:`kv_backend.regular`). Were OpenSSL then given the paths, it would open them again itself: a
FIFO put in place in between would hold the load for ever (at start, or at a reload, in the thread
that builds the new context). So what OpenSSL loads is the bytes that were read and checked:

* the CA files (:func:`load_ca`), the certificate chain and the key (:func:`load_cert_chain`),
  through a path to those bytes, which OpenSSL reads as it reads a file: on Linux an anonymous memory file
  (``memfd_create``), loaded as ``/proc/self/fd/N``; elsewhere a file in a private directory
  (``mkdtemp``: mode 0700), removed as soon as the load returns, as also where the system refuses
  the memory file.

Errors name the path the caller read (OpenSSL's errors do not name the file it loaded).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator

__all__ = ["NO_CERTIFICATE", "holds_certificates", "load_ca", "load_cert_chain"]

#: The reason of the ssl.SSLError of :func:`load_ca` for bytes that hold no certificate (OpenSSL's words).
NO_CERTIFICATE = "NO_CERTIFICATE_OR_CRL_FOUND"

Password = str | bytes | Callable[[], str | bytes] | None


def load_ca(context: ssl.SSLContext, data: bytes) -> None:
    """Trust the CA certificates of ``data``, the bytes of a CA file, as OpenSSL reads a CA file it is
    given by path (``load_verify_locations(cafile=...)``), for it reads those bytes so: PEM blocks of
    every kind OpenSSL takes (``CERTIFICATE``, ``X509 CERTIFICATE``, ``TRUSTED CERTIFICATE`` with its
    trust settings, CRLs), any other text skipped, in any encoding. The one loading of the CA files of
    ``kvb serve`` (``--tls-ca-cert-file``, ``--tls-ca-cert-dir``) and ``kvb http`` (``--ssl-ca-certs``),
    which therefore take the same files. ssl.SSLError where OpenSSL refuses them: a damaged block, or
    none at all (its ``reason`` then :data:`NO_CERTIFICATE`)."""
    with _as_path(data) as path, _without_path():
        context.load_verify_locations(cafile=path)


def holds_certificates(data: bytes) -> bool:
    """Whether OpenSSL finds a certificate in ``data`` and reads all its PEM blocks (see :func:`load_ca`)."""
    try:
        load_ca(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), data)
    except ssl.SSLError:
        return False
    return True


def load_cert_chain(context: ssl.SSLContext, cert: bytes, key: bytes | None, password: Password) -> None:
    """``context.load_cert_chain`` of the certificate chain ``cert`` and the key ``key`` (None: the
    key is in ``cert``), given as the bytes read, not as paths OpenSSL would open again.
    ssl.SSLError as that method raises it (a key that does not match, a wrong password...)."""
    with contextlib.ExitStack() as paths:
        cert_path = paths.enter_context(_as_path(cert))
        key_path = None if key is None else paths.enter_context(_as_path(key))
        with _without_path():
            context.load_cert_chain(cert_path, key_path, password)


@contextlib.contextmanager
def _without_path() -> Iterator[None]:
    """An OSError of OpenSSL's load raised again without the path of the bytes it loaded, which the
    caller's message, naming the user's file, would not name (ssl.SSLError as it is)."""
    try:
        yield
    except ssl.SSLError:
        raise
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror) from None


@contextlib.contextmanager
def _as_path(data: bytes) -> Iterator[str]:
    """A path that reads ``data`` for the time of the block."""
    memfd = getattr(os, "memfd_create", None)
    fd = -1
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (refused by a sandbox's seccomp filter, out of descriptors...)
            fd = memfd("kvb-tls", os.MFD_CLOEXEC)
    if fd >= 0:
        try:
            _write_all(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    where = tempfile.mkdtemp(prefix="kvb-tls-")  # (mode 0700: only this user may open what is in it)
    try:
        path = os.path.join(where, "pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        yield path
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
