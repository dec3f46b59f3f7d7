"""CONFIG SET ``port`` (and, through :mod:`kv_backend.server.tlsreload`, ``tls-port``) at run time, as
redis-server 7.0 takes them: the new port is bound by :func:`bind` on the addresses the server bound
at start (``listen.addresses``: never looked up again on the event loop) before anything changes, so
that a port that cannot be listened on fails the whole CONFIG SET with Redis's reply; :func:`move`
then closes the old listener (the connections made through it stay) and listens on the new one.
Port ``0`` closes the listener, also the last one (as in Redis: the server then listens nowhere, but
the connections made stay, and may open a port again)."""

from __future__ import annotations

import dataclasses
import socket
from typing import TYPE_CHECKING, Any

from kv_backend.server.listen import listen_tcp_again

if TYPE_CHECKING:
    from kv_backend.server.resp import Server

#: Redis's reason for a CONFIG SET whose port cannot be listened on.
LISTEN_FAILED = "Unable to listen on this port. Check server logs."


class Refused(Exception):
    """A CONFIG SET cannot be put in force: ``name`` is the parameter Redis's error names, ``reason``
    its reason."""

    def __init__(self, name: bytes, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


def bind(server: Server, name: bytes, port: int) -> list[socket.socket]:
    """Listening sockets at ``port`` (not 0) on the addresses the server bound at start; :class:`Refused`
    for parameter ``name`` (the reason logged) if it cannot listen there."""
    if server.listeners is None:  # (a server that is not listening: nothing to listen with)
        raise Refused(name, LISTEN_FAILED)
    try:
        return listen_tcp_again(server.listen_addresses, port)
    except OSError as exc:
        server.log(f"CONFIG SET {name.decode()} {port} refused: cannot listen on it ({exc.strerror or exc})")
        raise Refused(name, LISTEN_FAILED) from None


def move(server: Server, kind: str, socks: list[socket.socket] | None) -> None:
    """Close the listener of ``kind`` (the connections made through it stay) and listen on ``socks``
    (None: on nothing)."""
    if server.listeners is None:
        return
    server.listeners.remove(kind)
    if socks:
        server.listeners.add(socks, kind)


def release(socks: list[socket.socket] | None) -> None:
    """Close ``socks``, bound for a change that is given up (another parameter of its CONFIG SET failed)."""
    for sock in socks or ():
        sock.close()


@dataclasses.dataclass
class Change:
    """A new plaintext port, bound, not yet in force (:func:`commit`)."""

    port: int
    #: Its listening sockets (None for port 0: no plaintext listener).
    socks: list[socket.socket] | None

    def abandon(self) -> None:
        """Give the change up: its sockets closed."""
        release(self.socks)


def prepare(server: Server, given: list[tuple[bytes, Any]]) -> Change | None:
    """The plaintext port CONFIG SET's checked values ``given`` move to, bound (None if they do not
    name ``port``, or name the port in force); :class:`Refused` if it cannot be listened on."""
    port = dict(given).get(b"port")
    if port is None or port == server.port:
        return None
    return Change(port, bind(server, b"port", port) if port else None)


def commit(server: Server, change: Change) -> None:
    """Put ``change`` in force: the old listener closed, the new one listened on (CONFIG GET port and
    INFO's tcp_port show it)."""
    move(server, "tcp", change.socks)
    server.port = change.port
    if change.port:
        server.log(f"CONFIG SET port: listening on port {change.port} (the connections made stay)")
    else:
        server.log("CONFIG SET port 0: no plaintext port is open (the connections made stay)")
