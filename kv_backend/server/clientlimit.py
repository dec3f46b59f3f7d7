"""``maxclients``: how many clients ``kvb serve`` serves at once, as redis-server limits them.

Every connection holds a file descriptor, and so does the store (its lock, its state page, the data
file being written, each new data file while it is opened). A server that accepted connections until
the process had no descriptor left would leave the store none: a write that starts a new data file
failed with "Too many open files", and clients past the limit waited unanswered in the listen backlog.
As redis-server, the server therefore keeps :data:`RESERVED_FDS` descriptors for itself: at start it
raises its soft limit of open files (up to the hard one) to ``maxclients`` plus those, or, where the
limit stays lower, serves that many fewer clients and says so on stderr. A connection past
``maxclients`` is answered Redis's ``-ERR max number of clients reached`` (redis-py raises it as a
``ConnectionError``) and closed, and counted in INFO's ``rejected_connections``. ``CONFIG SET
maxclients`` takes a new number as Redis does: when the limit of open files cannot be raised to fit
it, the error says how many the system allows.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from kv_backend.errors import KVError

if TYPE_CHECKING:
    from kv_backend.server.resp import Server

#: Redis's default maxclients.
DEFAULT_MAXCLIENTS = 10000
#: The descriptors kept for the server's own use (the store's files, listeners, the event loop), as
#: many as redis-server keeps.
RESERVED_FDS = 32
#: What a connection past maxclients is sent before it is closed (Redis's words).
REFUSAL = b"-ERR max number of clients reached\r\n"


def fit(clients: int) -> tuple[int, int | None]:
    """Raise this process's soft limit of open files, up to its hard limit, to serve ``clients`` at
    once; return how many it can serve (``clients`` or fewer, 0 or less where the limit leaves no room
    at all) and the soft limit (None: no limit, or none that can be read)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return clients, None
    unlimited = resource.RLIM_INFINITY
    if soft == unlimited:
        return clients, None
    need = clients + RESERVED_FDS
    if soft < need:
        target = need if hard == unlimited else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):  # (macOS refuses a soft limit above OPEN_MAX: keep the one there is)
            pass
    return min(clients, soft - RESERVED_FDS), soft


def fit_at_start(wanted: int, program: str, each: str, fewer: str) -> tuple[int, str | None]:
    """At a server's start: :func:`fit` ``wanted`` connections (``each``: "client", "connection") in
    the limit of open files; return how many to keep and, where fewer, the warning to give, ending
    in ``fewer`` (what is done then, given the number); a limit that leaves no descriptor for one
    is a KVError naming ``program``."""
    allowed, limit = fit(wanted)
    need = wanted + RESERVED_FDS
    if allowed < 1:
        raise KVError(
            f"the limit of open files (ulimit -n) is {limit}: {program} keeps {RESERVED_FDS} descriptors "
            f"for its store and needs one per {each}; raise the limit (to {need} for {wanted} {each}s: "
            "ulimit -n, systemd LimitNOFILE=)"
        )
    if allowed >= wanted:
        return allowed, None
    return allowed, (
        f"the limit of open files (ulimit -n) is {limit}, below the {need} that {wanted} {each}s need (one "
        f"descriptor each, and {RESERVED_FDS} for the store): {fewer.format(allowed)}; raise the limit "
        "(ulimit -n, systemd LimitNOFILE=) to keep more"
    )


def start_limit(server: Server) -> None:
    """At start: fit Redis's default maxclients in the limit of open files, or serve fewer clients
    (said on stderr); a limit that leaves no descriptor for any client stops kvb serve."""
    server.maxclients, warning = fit_at_start(DEFAULT_MAXCLIENTS, "kvb serve", "client", "maxclients is {}")
    if warning is not None:
        server.log(warning)


def send_and_close(sock: socket.socket, reply: bytes) -> None:
    """Send ``reply`` on a connection just accepted and close it (best effort: the client may be gone
    already)."""
    try:
        sock.setblocking(False)
        sock.send(reply)
    except OSError:
        pass
    sock.close()


def refuse(server: Server, sock: socket.socket) -> None:
    """Answer a connection past maxclients Redis's error and close it."""
    send_and_close(sock, REFUSAL)
    server.rejected_connections += 1
