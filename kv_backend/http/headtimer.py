"""The time a client has to send a request's head (``kvb http --header-timeout``).

uvicorn bounds the time between requests (``--keep-alive``), not the time a request's head takes to
arrive: a client that connects and sends nothing, or part of a request line or headers and then
nothing (or a byte now and then), held its connection, and its place among the connections kept
(:mod:`kv_backend.http.connlimit`), for ever. As nginx's ``client_header_timeout``, the head must
arrive whole within the timeout, counted from the connection's start (over TLS, once the handshake is
done) or from the first byte of a keep-alive connection's next request: a connection that sent
nothing by then is closed, one that sent part of a head is answered ``408 request_timeout`` and closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kv_backend.http.connlimit import raw_error

__all__ = ["DEFAULT_HEADER_TIMEOUT", "head_timed"]

#: Seconds a request's head may take to arrive by default: ample for any client, which sends its head
#: at once (a proxy too), and a third of nginx's 60 s, so that connections that send nothing give
#: their place back sooner (Apache's mod_reqtimeout starts at 20 s too).
DEFAULT_HEADER_TIMEOUT = 20.0


def _answer(timeout: float) -> bytes:
    return raw_error(
        "408 Request Timeout",
        "request_timeout",
        f"the request's head (its request line and headers) did not arrive whole within {timeout:g} s; "
        "send it at once",
    )


def head_timed(protocol: type[asyncio.Protocol], timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol ``protocol``, closing a connection whose request head does not arrive
    whole within ``timeout`` seconds (answered ``408 request_timeout`` where part of it came)."""
    import h11

    answer = _answer(timeout)

    class HeadTimed(protocol):  # type: ignore[misc,valid-type]
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.head_timer = asyncio.get_running_loop().call_later(timeout, self._head_due)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # a head arrived (or the connection failed)
                self._stop_head_timer()
            elif self.head_timer is None and not self.transport.is_closing():
                # part of a head: on a keep-alive connection, the next request's (timed from here)
                self.head_timer = asyncio.get_running_loop().call_later(timeout, self._head_due)

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _stop_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _head_due(self) -> None:
            self.head_timer = None
            if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
                return
            if self.conn.trailing_data[0]:  # part of a head came
                self.transport.write(answer)
            self.transport.close()

    return HeadTimed
