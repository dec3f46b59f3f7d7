"""The unix socket of ``kvb serve``: taken over only from a server that is gone, and removed at exit
only while the path is still this server's socket.

Several servers may run on one store, so a second one given the same ``--unixsocket`` (a copied
unit file, a restart that starts the new server before the old one has stopped) must neither take
the path from a live server, which then serves on a socket nobody can reach, nor, when it stops,
remove the socket another server has bound there since.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from kv_backend.errors import KVError

#: How long a server that listens on the path has to accept the probe's connection.
PROBE_TIMEOUT = 2.0


def claim(path: str) -> None:
    """Make way for listening on ``path``: remove a socket file no server listens on (left by a server
    that was killed) or a dangling symbolic link; raise KVError if a server listens on it. Any other
    file is left for the bind to refuse."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return
    if not stat.S_ISSOCK(mode):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):  # nobody listens: a stale socket file
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:  # it answers slowly, or not to us: not ours to take
        raise _in_use(path, exc.strerror or str(exc)) from exc
    finally:
        probe.close()
    raise _in_use(path, "another server is listening on it")


def identity(path: str) -> tuple[int, int, int] | None:
    """What tells the file at ``path`` from another one made there later (None if there is none): its
    device, inode and change time (a file made after ours was removed may get its inode number)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


def release(path: str, bound: tuple[int, int, int] | None) -> None:
    """Remove ``path`` at exit if it is still the socket this server bound (``bound``, its identity)."""
    if bound is not None and identity(path) == bound:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _in_use(path: str, why: str) -> KVError:
    return KVError(
        f"cannot listen on the unix socket {path}: {why}; choose another --unixsocket (each kvb serve "
        "on a store needs its own), or stop the server that uses it"
    )
