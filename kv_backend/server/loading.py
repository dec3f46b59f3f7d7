"""Opening a store while a server already listens (``kvb serve``, ``kvb http``).

Opening a store replays the log of every data file without a hint file: seconds, or minutes, for a
large store. Both servers listen first and open the store in a background thread meanwhile, so that
clients and health checks get an answer that says so (Redis's ``LOADING`` error, HTTP's ``503``)
rather than a refused connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from kv_backend.threads import start_daemon_thread

T = TypeVar("T")

#: Seconds requests wait for the store to open before they are answered "still loading": a store
#: that opens faster (most do, in milliseconds) is never seen loading by a client that connected
#: as soon as the port opened.
LOADING_GRACE = 0.5


def open_in_background(
    opener: Callable[[], T], discard: Callable[[T], Any], name: str = "kvb-open-store"
) -> asyncio.Future[T]:
    """Run ``opener()`` in a daemon thread (named ``name``); the returned future (of the running loop)
    gets its result or exception.

    A daemon thread, so that a server told to stop while the store opens exits at once, as
    redis-server stops loading on SIGTERM (the engine is safe to stop at any point). If the future
    was cancelled, or the loop closed, by the time ``opener`` returns, ``discard`` gets the result
    (to close the store nobody will use).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            if error is None:
                discard(result)  # type: ignore[arg-type]
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = opener()
        except BaseException as exc:  # handed to the server, which reports it and exits
            error = exc
        try:
            loop.call_soon_threadsafe(deliver, result, error)
        except RuntimeError:  # the loop is closed: the server stopped meanwhile
            if error is None:
                discard(result)  # type: ignore[arg-type]

    start_daemon_thread(run, name)
    return future
