"""Network servers over a kv_backend store: :mod:`kv_backend.server.resp` speaks the Redis protocol."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from kv_backend.errors import KVError

if TYPE_CHECKING:
    from kv_backend.db import DB


def close_synced(db: DB, warn: Callable[[str], object]) -> None:
    """Close the store a server opened, fsyncing it first, as redis-server fsyncs its append-only
    file when it stops (whatever appendfsync says): what the server acknowledged then survives a
    power loss after a clean stop, whatever the store's sync policy. An fsync that fails is reported
    (``warn``) and the store closed all the same."""
    try:
        db.sync()
    except KVError as exc:
        warn(f"cannot fsync the store {db.path}: {exc}")
    db.close()


def log_line(message: str) -> None:
    """Write ``kvb serve: message`` to stderr as one line, in one write: a server's threads (TLS files read
    off the event loop, the store's open) log beside its loop, and print's two writes (the text, then the
    newline) let their lines run into each other."""
    err = sys.stderr
    if err is not None:  # (none at all under pythonw, as print then writes nothing)
        err.write(f"kvb serve: {message}\n")
        err.flush()


def listen_error(host: str, port: int, exc: OSError, option: str = "--port") -> KVError:
    """The error for a TCP address a server (``kvb serve``, ``kvb http``) cannot listen on, naming the
    option to change: ``--host`` when it names no address of this machine, else ``option`` (the port:
    in use, or reserved to root)."""
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        fix = "give --host an address of this machine (127.0.0.1, 0.0.0.0, ::1, ::)"
    else:
        fix = f"choose another {option}"
    return KVError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; {fix}")


def worker_count(value: object, *, text: bool = True) -> int:
    """The number of worker processes in ``value``: a whole number >= 1, an int (not a bool) or, with
    ``text``, a string holding one. The one rule of ``kvb http --workers`` and ``$KVB_HTTP_WORKERS``
    (text) and of ``serve(workers=)`` (an int); raises ValueError saying it, which each names as its
    own error (argparse's usage error, ConfigurationError)."""
    count = 0
    if isinstance(value, str) and text:
        try:
            count = int(value)
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        count = value
    if count < 1:
        raise ValueError(f"must be a whole number of processes >= 1, not {value!r}")
    return count
