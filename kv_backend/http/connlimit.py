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
too_many_connections`` (``Retry-After: 1``, ``Connection: close``) and closed at once. Over TLS, a
connection counts from its accept on, its handshake included (which :func:`limited` then does, not
the loop), and one past the limit is closed unanswered. The TCP
connections it keeps get keepalive probes after :data:`KEEPALIVE` seconds of silence, so those of
clients whose host died are closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
from typing import Any

from kv_backend.http import tls
from kv_backend.server.clientlimit import fit_at_start
from kv_backend.server.listen import keep_alive
from kv_backend.server.tlsclose import EndingTLS, drive

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


def raw_error(status: str, error: str, message: str, headers: str = "") -> bytes:
    """A whole HTTP/1.1 answer ``status`` ("503 Service Unavailable") with the interface's JSON error body
    (``error``, ``message``), ``headers`` (each ending in CRLF) and ``Connection: close``, written
    straight to a connection the app never sees (refused, timed out)."""
    body = json.dumps({"error": error, "message": message}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{headers}connection: close\r\n\r\n"
    )
    return head.encode() + body


def _refusal(limit: int) -> bytes:
    return raw_error(
        "503 Service Unavailable",
        "too_many_connections",
        f"this server keeps at most {limit} connections open at once, and has as many: "
        "retry later, or close idle connections (a smaller client pool)",
        "retry-after: 1\r\n",
    )


def limited(
    protocol: type[asyncio.Protocol], limit: int, ssl_context: ssl.SSLContext | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol ``protocol`` (h11's), answering a connection made while ``limit``
    are open ``503 too_many_connections`` and closing it at once.

    With ``ssl_context``, the protocol serves TLS itself (the server listens without TLS): a
    connection counts from the moment it is accepted, its handshake (at most
    :data:`kv_backend.http.tls.HANDSHAKE_TIMEOUT` seconds) included, so that connections which never
    complete one cannot take the descriptors kept for the store; one past the limit is closed at
    once, unanswered (an answer would need its handshake first). ``protocol`` sees the connection
    once the handshake is done (its transport a :class:`~kv_backend.server.tlsclose.EndingTLS`).
    The class's ``handshakes`` holds the connections in their handshake (their ``transport``, the
    one accepted, is what a shutdown closes).
    """
    refusal = _refusal(limit)
    warned = [0.0, 0]  # (when the last warning was logged, connections refused since)
    handshakes: set[asyncio.Protocol] = set()

    class Limited(protocol):  # type: ignore[misc,valid-type]
        refused = False
        # Until its handshake is done, a TLS connection's protocol is not ``protocol`` yet: what
        # arrives meanwhile (the data that came with the end of the handshake) is kept for it.
        early: list[tuple[str, Any]] | None = None

        def connection_made(self, transport: Any) -> None:
            if len(self.connections) + len(handshakes) >= limit:
                self.refused = True
                if ssl_context is None:
                    transport.write(refusal)
                transport.close()
                warned[1] += 1
                now = time.monotonic()
                if now - warned[0] >= WARN_EVERY:
                    refused = "1 connection" if warned[1] == 1 else f"{warned[1]} connections"
                    log.warning("%s refused: %s are open, the most kept at once", refused, limit)
                    warned[:] = [now, 0]
                return
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                keep_alive(sock, KEEPALIVE)
            if ssl_context is None:
                super().connection_made(transport)
                return
            self.transport = transport  # (until the handshake is done: the TCP one)
            self.early = []
            handshakes.add(self)
            # start_tls runs here, at once, up to its wait for the handshake: asyncio's and uvloop's
            # loops start reading when connection_made returns, and the client's first bytes must
            # go to the TLS layer, not to this protocol.
            drive(
                asyncio.get_running_loop().start_tls(
                    transport,
                    self,
                    ssl_context,
                    server_side=True,
                    ssl_handshake_timeout=tls.HANDSHAKE_TIMEOUT,
                ),
                self._handshake_done,
            )

        def _handshake_done(self, tls_transport: Any, exc: BaseException | None) -> None:
            handshakes.discard(self)
            early, self.early = self.early or [], None
            if exc is not None or tls_transport is None or self.transport.is_closing():
                # Not TLS, a failed or unfinished handshake (the transport is closed), or a
                # connection closed in its handshake (at a shutdown: uvloop's start_tls then returns
                # a transport all the same) or as it ended: nothing for ``protocol``.
                self.refused = True
                if exc is not None:
                    log.debug("TLS handshake failed: %r", exc)
                return
            super().connection_made(EndingTLS(tls_transport, self.transport))
            for method, arguments in early:
                getattr(super(), method)(*arguments)
                if method == "connection_lost":
                    return

        def _deferred(self, method: str, *argument: Any) -> bool:
            """Whether the call is for a connection ``protocol`` does not see (yet), keeping it for later."""
            if self.refused:
                return True
            if self.early is not None:
                self.early.append((method, argument))
                return True
            return False

        def connection_lost(self, exc: Exception | None) -> None:
            if not self._deferred("connection_lost", exc):
                super().connection_lost(exc)

        def eof_received(self) -> Any:
            if not self._deferred("eof_received"):
                return super().eof_received()
            return None

        def data_received(self, data: bytes) -> None:
            if not self._deferred("data_received", data):
                super().data_received(data)

        def pause_writing(self) -> None:
            if not self._deferred("pause_writing"):
                super().pause_writing()

        def resume_writing(self) -> None:
            if not self._deferred("resume_writing"):
                super().resume_writing()

    Limited.handshakes = handshakes
    return Limited
