"""Protected mode, as redis-server's ``protected-mode yes`` (its default).

A server without a password (``--requirepass``) serves only clients on its own machine: a TCP
connection from any address but a loopback one is answered ``-DENIED ...`` and closed, whatever
address the server listens on, so that ``--host 0.0.0.0`` without a password does not hand the store
to the network. ``--protected-mode no`` (or ``CONFIG SET protected-mode no``, sent from this machine)
turns it off, for a network that is trusted as a whole; a password makes it moot.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

from kv_backend.server import clientlimit

if TYPE_CHECKING:
    from kv_backend.server.resp import Server

#: What a client refused by protected mode is sent before its connection is closed.
DENIAL = (
    b"-DENIED kvb serve is running in protected mode: it has no password, so it serves only clients "
    b"on its own machine (its loopback interface or unix socket). To serve this client, give it a "
    b"password (--requirepass-file, or KVB_REQUIREPASS), or, on a network you trust, start it with "
    b"--protected-mode no or send CONFIG SET protected-mode no from its machine.\r\n"
)


def _loopback(peer: object) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def refuses(server: Server, sock: socket.socket, kind: str) -> bool:
    """Whether protected mode refuses the connection just accepted on ``sock``."""
    if not server.protected_mode or server.requirepass is not None or kind != "tcp":
        return False
    try:
        peer = sock.getpeername()
    except OSError:
        peer = None
    return not _loopback(peer)


def denied(server: Server, sock: socket.socket, kind: str) -> bool:
    """Whether protected mode refuses the connection just accepted on ``sock`` (told so and closed)."""
    if not refuses(server, sock, kind):
        return False
    clientlimit.send_and_close(sock, DENIAL)
    return True


def warn_at_start(server: Server, host: str) -> None:
    """Say on stderr, at start, that clients of other machines will be refused, where the server
    listens on an address they can reach."""
    if not server.protected_mode or server.requirepass is not None:
        return
    if host == "localhost" or _loopback((host,)):
        return
    server.log(
        f"protected mode: without a password, clients connecting to {host} from other machines are "
        "refused (DENIED); give a password (--requirepass-file, KVB_REQUIREPASS), or, on a network you "
        "trust, --protected-mode no"
    )
