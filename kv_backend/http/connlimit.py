"""How many connections ``kvb http`` keeps open at once, so that they never take the descriptors the
store needs.

Every connection holds a file descriptor, and so do the store (its lock, its state page, each new
data file while it is opened) and the server (a module imported the first time a request needs it).
uvicorn accepts connections until the process has no descriptor left: with ``ulimit -n`` 1024, a
thousand idle keep-alive connections (a client pool, a proxy's upstream connections) made every
request fail with ``500`` ("Too many open files"), writes and reads alike. As ``kvb serve`` does
(:mod:`kv_backend.server.clientlimit`), ``kvb http`` raises its soft limit of open files to fit
:data:`MAX_CONNECTIONS` connections plus the descriptors it keeps for itself, or keeps that many
fewer connections (said on stderr); a connection past the limit is answered ``503
too_many_connections`` (``Retry-After: 1``, ``Connection: close``) and closed at once. The TCP
connections it keeps get keepalive probes after :data:`KEEPALIVE` seconds of silence, so those of
clients whose host died are closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

from kv_backend.server.clientlimit import fit_at_start
from kv_backend.server.listen import keep_alive

log = logging.getLogger("kv_backend.http")

#: The most connections kvb http keeps open at once where the limit of open files allows (as many
#: clients as redis-server serves).
MAX_CONNECTIONS = 10000
#: Seconds between two warnings about refused connections.
WARN_EVERY = 10.0
#: Seconds of silence before a connection is probed (TCP keepalive, as kvb serve's and redis-server's
#: default tcp-keepalive): a client whose host died before it sent its request would otherwise keep its
#: connection, and its place among the MAX_CONNECTIONS, for good.
KEEPALIVE = 300


def start_limit() -> int:
    """At start: the most connections to keep open, the limit of open files raised to fit
    :data:`MAX_CONNECTIONS` as far as the hard limit allows (fewer, said on stderr, where it stays
    lower; a limit that leaves no descriptor for a connection stops kvb http)."""
    fewer = "at most {} connections are kept open, more are answered 503"
    allowed, warning = fit_at_start(MAX_CONNECTIONS, "kvb http", "connection", fewer)
    if warning is not None:
        log.warning("%s", warning)
    return allowed


def _refusal(limit: int) -> bytes:
    body = json.dumps(
        {
            "error": "too_many_connections",
            "message": f"this server keeps at most {limit} connections open at once, and has as many: "
            "retry later, or close idle connections (a smaller client pool)",
        },
        separators=(",", ":"),
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def limited(protocol: type[asyncio.Protocol], limit: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol ``protocol`` (h11's), answering a connection made while ``limit``
    are open ``503 too_many_connections`` and closing it at once."""
    refusal = _refusal(limit)
    warned = [0.0, 0]  # (when the last warning was logged, connections refused since)

    class Limited(protocol):  # type: ignore[misc,valid-type]
        refused = False

        def connection_made(self, transport: Any) -> None:
            if len(self.connections) < limit:
                sock = transport.get_extra_info("socket")
                if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                    keep_alive(sock, KEEPALIVE)
                super().connection_made(transport)
                return
            self.refused = True
            transport.write(refusal)
            transport.close()
            warned[1] += 1
            now = time.monotonic()
            if now - warned[0] >= WARN_EVERY:
                log.warning("%s connections refused: %s are open, the most kept at once", warned[1], limit)
                warned[:] = [now, 0]

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.refused:
                super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self.refused:
                super().data_received(data)

        def pause_writing(self) -> None:
            if not self.refused:
                super().pause_writing()

        def resume_writing(self) -> None:
            if not self.refused:
                super().resume_writing()

    return Limited
