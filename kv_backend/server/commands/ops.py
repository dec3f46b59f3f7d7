"""Operational commands that monitoring and debugging tools call: MONITOR, SLOWLOG, MEMORY, LATENCY."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import command
from kv_backend.server.protocol import OK, Replies
from kv_backend.structures import CommandError

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("MONITOR", 1)
def cmd_monitor(conn: Connection, args: list[bytes]) -> Any:
    """Listen for all requests received by the server in real time."""
    if not conn.can_block:  # inside EXEC: a client there expects one reply per command
        raise CommandError("ERR MONITOR isn't allowed for DENY BLOCKING client")
    monitors = conn.server.monitors
    if conn in monitors:
        return Replies()  # as Redis: a second MONITOR is ignored, without a reply
    monitors.add(conn)
    return OK
