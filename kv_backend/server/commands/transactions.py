"""Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import command
from kv_backend.server.protocol import NULL_ARRAY, OK, ErrorReply
from kv_backend.structures import CommandError
from kv_backend.structures.layout import T_HASH

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("MULTI", 1, "tx")
def cmd_multi(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    conn.multi = []
    conn.multi_error = False
    return OK


@command("DISCARD", 1, "tx")
def cmd_discard(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    conn.multi = None
    conn.unwatch()
    return OK


@command("EXEC", 1, "tx")
def cmd_exec(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is None:
        raise CommandError("ERR EXEC without MULTI")
    queued, conn.multi = conn.multi, None
    watched, marks, dirty = dict(conn.watched), dict(conn.watch_marks), conn.watch_dirty
    conn.unwatch()
    if conn.multi_error:
        return ErrorReply("EXECABORT Transaction discarded because of previous errors.")
    st = conn.st
    if dirty:
        return NULL_ARRAY
    with st.db.transaction():  # all of it or none, also across a crash
        for key, token in watched.items():
            now = st.watch_token(key)
            if now != token:
                return NULL_ARRAY
            # what the token cannot show: the key created and removed again meanwhile, or one
            # field of the hash overwritten (by another process: this server's own writes
            # already marked the watchers)
            if now is None:
                if st.created_since(key, marks[key]):
                    return NULL_ARRAY
            elif now[0][0][0] == T_HASH and st.hash_fields_written_since(key, marks[key]):
                return NULL_ARRAY
        can_block, conn.can_block = conn.can_block, False  # blocking commands answer at once in EXEC
        try:
            return [conn.execute(cmd_args) for cmd_args in queued]
        finally:
            conn.can_block = can_block


@command("WATCH", -2, "tx")
def cmd_watch(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    for key in args[1:]:
        conn.watch(key)
    return OK


@command("UNWATCH", 1, "tx")
def cmd_unwatch(conn: Connection, args: list[bytes]) -> Any:
    conn.unwatch()
    return OK
