"""systemd's readiness protocol (``Type=notify`` units): tell the service manager when a server is
ready, as redis-server does under ``supervised systemd``.

A unit of ``Type=notify`` waits for ``READY=1`` on the datagram socket named by ``$NOTIFY_SOCKET``
before it counts the service as started (and starts the units ordered after it); without it, the
start times out and systemd kills the service. The servers send ``READY=1`` once their store is open
(they listen before), ``STATUS=...`` while it opens, and ``STOPPING=1`` when they stop. Without
``$NOTIFY_SOCKET`` (not under systemd, or another unit type) nothing is sent.
"""

from __future__ import annotations

import os
import socket


def supervised() -> bool:
    """Whether a service manager waits for these messages (INFO's ``process_supervised``)."""
    return bool(os.environ.get("NOTIFY_SOCKET"))


def notify(*fields: str) -> None:
    """Send ``fields`` (``READY=1``, ``STATUS=...``) to the service manager, if any; a manager that
    cannot be reached is not the server's failure (the message is dropped, as sd_notify does)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):  # an abstract socket address
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(fields).encode(), path)
    except OSError:
        pass
