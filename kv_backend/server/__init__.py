"""Network servers over a kv_backend store: :mod:`kv_backend.server.resp` speaks the Redis protocol."""

from __future__ import annotations

import errno
import socket

from kv_backend.errors import KVError


def listen_error(host: str, port: int, exc: OSError) -> KVError:
    """The error for a TCP address a server (``kvb serve``, ``kvb http``) cannot listen on, naming the
    option to change: ``--host`` when it names no address of this machine, else ``--port`` (in use,
    or reserved to root)."""
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        fix = "give --host an address of this machine (127.0.0.1, 0.0.0.0, ::1, ::)"
    else:
        fix = "choose another --port"
    return KVError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; {fix}")
