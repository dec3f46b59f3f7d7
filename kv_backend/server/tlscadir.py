"""The CA certificates of ``kvb serve --tls-ca-cert-dir``, read once, when the TLS context is built.

Handed to OpenSSL as a directory (``capath``), they would be read during client-certificate
handshakes, on the event loop: a FIFO or a slow file there would hold every client up, and a file
added or changed would be taken at whatever handshake looked for it. Here the files OpenSSL's lookup
would open, those named as ``openssl rehash`` (``c_rehash``) names certificates (``HHHHHHHH.N``,
the subject's hash), are read when :func:`~kv_backend.server.tls.configure` runs (at start, and at
each CONFIG SET of a TLS setting), and every certificate they hold is trusted; nothing in the
directory is read after. Files of other names are not read (OpenSSL never opens them), CRLs
(``HHHHHHHH.rN``) neither (the server checks no CRL, as redis-server); a hashed name that is not a
regular file (a FIFO, a device, a directory), cannot be read or holds no PEM certificate is skipped,
and the log says which and why.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable

from kv_backend.regular import NotRegularFileError, read_regular
from kv_backend.tlsload import NO_CERTIFICATE, load_ca

#: The names ``openssl rehash`` gives certificates: the subject's hash, a dot, a sequence number.
HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def load_ca_dir(context: ssl.SSLContext, option: str, path: str, log: Callable[[str], None]) -> int:
    """Load the certificates of the hashed-name files of directory ``path`` into ``context``'s trust
    store, logging each file skipped and why; the number of files whose certificates were loaded.
    OSError if the directory cannot be listed."""
    loaded = 0
    for name in sorted(os.listdir(path)):
        if not HASHED_NAME.fullmatch(name):
            continue
        try:
            load_ca(context, read_regular(os.path.join(path, name)))  # (as the servers' CA files)
        except ssl.SSLError as exc:  # (OSErrors: first)
            said = (
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                if exc.reason == NO_CERTIFICATE
                else f"holds a certificate OpenSSL cannot read ({exc.reason})"
            )
            log(f"{option} {path}: {name}: {said}, skipped")
        except NotRegularFileError as exc:
            log(f"{option} {path}: {name}: {exc.strerror} (a FIFO, a device or a directory), skipped")
        except OSError as exc:
            log(f"{option} {path}: {name}: cannot be read ({exc.strerror or exc}), skipped")
        else:
            loaded += 1
    return loaded
