"""How many bytes of request bodies the HTTP interface holds at once (``--max-pending-bytes``).

A PUT's value, or a transaction, is read whole into memory before its write runs. The limit on
writes running at once bounds the writes, not the uploads: a dozen clients uploading values near
the value limit (64 MiB) at once took ``kvb http`` past 1.6 GB of resident memory, and more would take
every byte the machine has. :class:`PendingBodies` counts the bytes of the bodies held, from the first
byte read until the request is answered, and refuses those that would take it past its total (from
its Content-Length, before reading any of it, and as its bytes arrive).
Every count happens in the event loop's thread, so no lock is needed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

#: The default total: this many times the largest body a request may send (the value limit).
DEFAULT_BODIES = 4
#: Where a request's scope keeps the bytes it holds (released when the request ends).
_HELD = "kv_backend.held_body_bytes"


class PendingBodies:
    """The bytes of request bodies held at once, at most :attr:`total`."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0

    @property
    def room(self) -> int:
        """The bytes that may still be held."""
        return self.total - self.held

    def reserve(self, scope: Scope, size: int) -> None:
        """Count ``size`` more bytes held by the request of ``scope`` (that fit in :attr:`room`)."""
        self.held += size
        scope[_HELD][0] += size

    @staticmethod
    def held_by(scope: Scope) -> int:
        """The bytes the request of ``scope`` holds."""
        held: int = scope[_HELD][0]
        return held

    def release(self, scope: Scope) -> None:
        """The request of ``scope`` ended: its bytes are no longer held."""
        self.held -= scope[_HELD][0]
        scope[_HELD][0] = 0


class ReleaseBodies:
    """ASGI middleware: what a request's body held is released when the request ends, however it ends
    (answered, refused, the client gone, cancelled at shutdown)."""

    def __init__(self, app: ASGIApp, bodies: PendingBodies) -> None:
        self.app = app
        self.bodies = bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_HELD] = [0]  # (a cell: shared by any copy of the scope made further in)
        try:
            await self.app(scope, receive, send)
        finally:
            self.bodies.release(scope)
