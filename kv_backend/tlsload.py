"""Loading the TLS files of ``kvb serve`` and ``kvb http`` into an SSL context from the bytes read once.

Both servers read their certificate, key and CA files as regular files, without waiting (see
:mod:`kv_backend.regular`). Were OpenSSL then given the paths, it would open them again itself: a
FIFO put in place in between would hold the load for ever (at start, or at a reload, in the thread
that builds the new context). So what OpenSSL loads is the bytes that were read and checked:

* CA certificates as ``cadata`` (:func:`certificates`);
* the certificate chain and the key, which :meth:`ssl.SSLContext.load_cert_chain` takes only by
  path, through a path to those bytes (:func:`load_cert_chain`): on Linux an anonymous memory file
  (``memfd_create``), loaded as ``/proc/self/fd/N``; elsewhere a file in a private directory
  (``mkdtemp``: mode 0700), removed as soon as the load returns, as also where the system refuses
  the memory file.

Errors name the path the caller read (OpenSSL's errors do not name the file it loaded).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator

from kv_backend.errors import ConfigurationError

__all__ = ["PEM_CERTIFICATE", "TrustedCertificateError", "certificates", "load_cert_chain"]

#: A PEM certificate block, as OpenSSL's CA loading looks for them (other blocks and text are skipped):
#: ``CERTIFICATE``, or the older label ``X509 CERTIFICATE``, which ``cadata`` takes too.
PEM_CERTIFICATE = re.compile(rb"-----BEGIN (X509 |)CERTIFICATE-----.+?-----END \1CERTIFICATE-----", re.DOTALL)

#: A certificate with OpenSSL's trust settings, which OpenSSL reads from a file it opens, not ``cadata``.
_TRUSTED_CERTIFICATE = b"-----BEGIN TRUSTED CERTIFICATE-----"


class TrustedCertificateError(ConfigurationError):
    """A CA file holds a ``TRUSTED CERTIFICATE`` block: a certificate with OpenSSL's trust settings
    (``openssl x509 -trustout``). OpenSSL reads those from a file it opens itself, but not from the
    bytes handed to it (``cadata``), and to drop the trust settings silently could trust the CA for
    more than they allow; the message (which the caller prefixes with the file) says what to give."""

    def __init__(self) -> None:
        super().__init__(
            "holds a certificate with OpenSSL trust settings (-----BEGIN TRUSTED CERTIFICATE-----), which "
            "the server cannot load from the bytes it read; give the CA's certificate without them "
            "(-----BEGIN CERTIFICATE-----: openssl x509 -in FILE -out CA.pem writes it, its trust "
            "settings left out)"
        )


Password = str | bytes | Callable[[], str | bytes] | None


def certificates(data: bytes) -> str | None:
    """The PEM certificates of ``data`` as ``load_verify_locations(cadata=...)`` takes them (ASCII
    text; whatever else the file holds, comments in any encoding too, is left out, as OpenSSL skips
    it when it reads the file itself), or None if it holds none. The one reading of CA files of
    ``kvb serve`` (``--tls-ca-cert-file``, ``--tls-ca-cert-dir``) and ``kvb http`` (``--ssl-ca-certs``),
    so that both take the same files. :class:`TrustedCertificateError` if it holds a certificate with
    trust settings, which ``cadata`` cannot take."""
    if _TRUSTED_CERTIFICATE in data:
        raise TrustedCertificateError
    blocks = [m.group(0) for m in PEM_CERTIFICATE.finditer(data)]
    if not blocks:
        return None
    try:
        return b"\n".join(blocks).decode("ascii")
    except UnicodeDecodeError:  # (a block OpenSSL could not read either)
        return None


def load_cert_chain(context: ssl.SSLContext, cert: bytes, key: bytes | None, password: Password) -> None:
    """``context.load_cert_chain`` of the certificate chain ``cert`` and the key ``key`` (None: the
    key is in ``cert``), given as the bytes read, not as paths OpenSSL would open again.
    ssl.SSLError as that method raises it (a key that does not match, a wrong password...)."""
    with contextlib.ExitStack() as paths:
        cert_path = paths.enter_context(_as_path(cert))
        key_path = None if key is None else paths.enter_context(_as_path(key))
        try:
            context.load_cert_chain(cert_path, key_path, password)
        except ssl.SSLError:
            raise
        except OSError as exc:  # (not the path of the bytes, which the caller's message would not name)
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
