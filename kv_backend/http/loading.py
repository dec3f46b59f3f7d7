"""``kvb http`` listening while its store opens: ``503 loading`` until the app can serve it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from kv_backend.db import DB
from kv_backend.http.app import CloseConnectionWhenUnsafe, error_response
from kv_backend.server import close_synced, systemd
from kv_backend.server.loading import LOADING_GRACE, open_in_background

log = logging.getLogger("kv_backend.http")


class OpenWhileListening:
    """ASGI app of ``kvb http``: opens the store in the background once the server starts (its
    lifespan), answers ``503 loading`` (``Retry-After: 1``) while it opens, then hands every request
    to the app ``build`` makes of it.

    Requests in the first :data:`LOADING_GRACE` seconds wait for the open instead. An open that
    fails keeps its error in :attr:`error` and calls ``failed`` (which stops the server).
    """

    def __init__(self, open_db: Callable[[], DB], build: Callable[[DB], ASGIApp], failed: Callable[[], Any]):
        self._open_db = open_db
        self._build = build
        self._failed = failed
        self.db: DB | None = None
        self.app: ASGIApp | None = None
        self.error: BaseException | None = None
        self._opening: asyncio.Future[DB] | None = None
        self._started = 0.0
        self._refuse = CloseConnectionWhenUnsafe(self._loading)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self.app
        if app is None and self._opening is not None:
            wait = self._started + LOADING_GRACE - time.monotonic()
            if wait > 0:
                await asyncio.wait({self._opening}, timeout=wait)
                app = self.app
        if app is None:
            await self._refuse(scope, receive, send)
        else:
            await app(scope, receive, send)

    async def _loading(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            503,
            "loading",
            "the server is opening the store (replaying its log); retry shortly",
            {"Retry-After": "1"},
        )
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._started = time.monotonic()
                self._opening = open_in_background(self._open_db, DB.close)
                self._opening.add_done_callback(self._opened)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                systemd.notify("STOPPING=1")
                if self._opening is not None and not self._opening.done():
                    self._opening.cancel()  # the store is closed once open (the thread cannot be stopped)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _opened(self, future: asyncio.Future[DB]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.db = future.result()
            try:
                self.app = self._build(self.db)
                systemd.notify("READY=1", f"STATUS=serving {self.db.path}")
                return
            except Exception as exc:  # (not left answering 503 for ever)
                error = exc
        self.error = error
        self._failed()

    def close(self) -> None:
        """Close the store, fsynced, if it was opened."""
        if self.db is not None:
            close_synced(self.db, log.warning)
