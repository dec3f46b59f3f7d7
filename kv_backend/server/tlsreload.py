"""CONFIG SET of ``kvb serve``'s TLS settings at run time, as redis-server 7.0 takes them.

A CONFIG SET that names a certificate, key, passphrase, CA, ``tls-auth-clients``, protocols,
ciphers or ``tls-prefer-server-ciphers`` builds a new SSL context with :func:`~kv_backend.server.tls.
configure` (the checks made at start), also when the files' paths are those in force (a certificate
replaced in place is read again); ``tls-port`` opens, moves or closes the TLS listener. All is built
and bound by :func:`prepare` before anything changes, so that a value that cannot be put in force
fails the whole CONFIG SET with Redis's reply (why is logged) and leaves the settings in force;
:func:`commit` then puts it in force: the connections made after it get the new context, those
made before keep theirs. While no TLS port is open, the values are kept unchecked (as Redis keeps
them), and checked when one opens.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
from typing import TYPE_CHECKING, Any

from kv_backend.errors import ConfigurationError
from kv_backend.server.ports import Refused, bind, move, release
from kv_backend.server.tls import TLSSettings, configure

if TYPE_CHECKING:
    from kv_backend.server.resp import Server

#: The parameters CONFIG SET changes at run time, and the field of TLSSettings each sets.
FIELDS = {
    b"tls-port": "port",
    b"tls-cert-file": "cert_file",
    b"tls-key-file": "key_file",
    b"tls-key-file-pass": "key_file_pass",
    b"tls-ca-cert-file": "ca_cert_file",
    b"tls-ca-cert-dir": "ca_cert_dir",
    b"tls-auth-clients": "auth_clients",
    b"tls-protocols": "protocols",
    b"tls-ciphers": "ciphers",
    b"tls-prefer-server-ciphers": "prefer_server_ciphers",
}
#: Redis's reason for a CONFIG SET whose TLS settings cannot be put in force.
CONFIG_FAILED = "Unable to update TLS configuration. Check server logs."
#: The TLS settings of a server started without ``--tls-port``, as CONFIG GET shows them (Redis's
#: defaults: no files, client certificates asked for).
NO_TLS = TLSSettings(port=0, cert_file="", key_file="", auth_clients="yes")


@dataclasses.dataclass
class Change:
    """TLS settings built and bound, not yet in force (:func:`commit`)."""

    settings: TLSSettings
    context: ssl.SSLContext | None
    #: The new TLS port's listening sockets (None: the listener stays as it is).
    socks: list[socket.socket] | None
    names: list[bytes]

    def abandon(self) -> None:
        """Give the change up: its port's sockets closed."""
        release(self.socks)


def _field(name: bytes, value: Any) -> Any:
    """A checked CONFIG SET value as TLSSettings holds it (an empty file or list: none given)."""
    if name == b"tls-port":
        return value
    if name == b"tls-prefer-server-ciphers":
        return value == b"yes"
    text = os.fsdecode(value.split(b"\0", 1)[0])  # (Redis passes OpenSSL a C string)
    if name == b"tls-auth-clients":
        return text
    return text or (None if name not in (b"tls-cert-file", b"tls-key-file") else "")


def prepare(server: Server, given: list[tuple[bytes, Any]]) -> Change | None:
    """The TLS change CONFIG SET's checked values ``given`` (in order) make, its context built and its
    port bound (None if they name no TLS parameter); :class:`~kv_backend.server.ports.Refused` if it
    cannot be made."""
    ours = [(name, value) for name, value in given if name in FIELDS]
    if not ours:
        return None
    current = server.tls or NO_TLS
    # (tls-auth-clients stays what CONFIG GET shows, whatever CA is given or taken away)
    current = dataclasses.replace(current, auth_clients=current.client_auth)
    new = dataclasses.replace(current, **{FIELDS[name]: _field(name, value) for name, value in ours})
    opening = new.port not in (0, current.port)
    changed = any(name != b"tls-port" for name, _ in ours)
    context = None if changed else server.tls_context  # (a TLS port open has its context)
    if new.port and context is None:
        # (Redis names the first parameter whose change needed the new context)
        blamed = next((name for name, _ in ours if name != b"tls-port" or opening), b"tls-port")
        try:
            context = configure(new, log=server.log)
        except (ConfigurationError, ssl.SSLError, OSError) as exc:
            server.log(f"CONFIG SET {blamed.decode()} refused: {exc}; the TLS settings in force stay")
            raise Refused(blamed, CONFIG_FAILED) from None
    socks = bind(server, b"tls-port", new.port) if opening else None
    context = context if new.port else None
    if new == current and context is server.tls_context:
        return None  # (as they are: nothing read again, nothing to say)
    return Change(new, context, socks, [name for name, _ in ours])


def commit(server: Server, change: Change) -> None:
    """Put ``change`` in force: the TLS connections made from now on get its context, and its port
    (the old one's listener closed, the connections made through it kept)."""
    old_port = (server.tls or NO_TLS).port
    server.tls, server.tls_context = change.settings, change.context
    port = change.settings.port
    if port != old_port:
        move(server, "tls", change.socks)
    names = ", ".join(name.decode() for name in change.names)
    if port:
        server.log(f"CONFIG SET {names}: the TLS connections made from now on (port {port}) use them")
    else:
        server.log(f"CONFIG SET {names}: no TLS port is open (they are checked when one opens)")
