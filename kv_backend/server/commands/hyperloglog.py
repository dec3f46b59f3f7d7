"""HyperLogLog commands: PFADD, PFCOUNT, PFMERGE (values in Redis's own HLL format)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import command
from kv_backend.server.protocol import OK

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("PFADD", -2, "write")
def cmd_pfadd(conn: Connection, args: list[bytes]) -> Any:
    return conn.st.pfadd(args[1], *args[2:])


@command("PFCOUNT", -2)
def cmd_pfcount(conn: Connection, args: list[bytes]) -> Any:
    # Read-only for Redis too, though counting one key refreshes the count cached in its value.
    return conn.st.pfcount(*args[1:])


@command("PFMERGE", -2, "write")
def cmd_pfmerge(conn: Connection, args: list[bytes]) -> Any:
    conn.st.pfmerge(args[1], *args[2:])
    return OK
