"""How ``kvb serve`` and ``kvb http`` end a TLS connection they close: all that was written is sent,
then the close_notify, and the TCP connection is ended then, whether the client answers with its own
close_notify or not (see :class:`EndingTLS`). Both serve TLS through the event loop's ``start_tls``
on a connection accepted without it (:func:`drive` starts it at once), which gives the TCP transport
under the TLS one. The engine never imports this module.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: Seconds between the first two looks, after the server closed a TLS connection, at whether all it
#: was given is sent (then twice as long each time, up to :data:`END_EVERY_MOST`): see
#: :class:`EndingTLS`.
END_FIRST = 0.005
END_EVERY_MOST = 0.2


def drive(coroutine: Any, done: Any) -> None:
    """Run ``coroutine`` (one that awaits asyncio futures only) now, up to its first wait, then on as
    each future it waits for is done, as a task would but without a task's first step a loop
    iteration later; ``done(result, None)`` or ``done(None, exception)`` at its end."""
    try:
        future = coroutine.send(None)
    except StopIteration as end:
        done(end.value, None)
    except Exception as exc:  # (an exception of the coroutine's is its result)
        done(None, exc)
    else:
        future.add_done_callback(lambda _: drive(coroutine, done))


class EndingTLS:
    """A TLS connection's transport as the server's protocol sees it: the TLS transport, whose
    :meth:`close` waits until all that was written is with the kernel, then begins the TLS close
    (close_notify) and ends the TCP connection under it once that is sent too.

    asyncio's and uvloop's TLS layers keep the connection open after a close until the client
    answers with its own close_notify, or for their shutdown timeout, and then close it whether all
    was sent or not: a client that never answered (one closed by a timeout, QUIT, CLIENT KILL, a
    limit, or an idle connection closed at a shutdown) kept its descriptor that long, outside the
    count of connections kept, and a reply still being sent then was cut short. As over plain TCP,
    a connection the server closes sends all it was given, and is over then. Between the close and
    then, it says it is closing, and reads and writes nothing more."""

    def __init__(self, tls_transport: Any, tcp_transport: Any) -> None:
        self._tls = tls_transport
        self._tcp = tcp_transport
        self._closing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tls, name)

    def is_closing(self) -> bool:
        return self._closing or bool(self._tls.is_closing())

    def write(self, data: Any) -> None:
        if not self._closing:
            self._tls.write(data)

    def writelines(self, chunks: Any) -> None:
        if not self._closing:
            self._tls.writelines(chunks)

    def resume_reading(self) -> None:
        if not self._closing:
            self._tls.resume_reading()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._tls.is_closing():  # (lost, or closed by the TLS layer: nothing more to send)
            self._tls.close()
            return
        self._tls.pause_reading()
        self._end_when_sent(0.0)

    def _end_when_sent(self, waited: float) -> None:
        if self._tcp.is_closing():  # (ended: the client's close_notify came, or the connection broke)
            return
        loop = asyncio.get_running_loop()
        if self._tls.get_write_buffer_size() or self._tcp.get_write_buffer_size():
            wait = min(max(2 * waited, END_FIRST), END_EVERY_MOST)
            loop.call_later(wait, self._end_when_sent, wait)
        elif not self._tls.is_closing():
            self._tls.close()  # (its close_notify, looked at once the loop has run)
            loop.call_soon(self._end_when_sent, 0.0)
        else:
            self._tcp.abort()  # (the socket closed: what the kernel holds is still sent, then FIN)
