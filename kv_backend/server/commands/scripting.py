"""Lua scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import command, help_only, help_reply, unknown_subcommand, upper
from kv_backend.server.protocol import OK
from kv_backend.structures import CommandError

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("EVAL", -3, "write")
def cmd_eval(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.scripts.eval(conn, args[1], args[2:], by_sha=False)


@command("EVALSHA", -3, "write")
def cmd_evalsha(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.scripts.eval(conn, args[1], args[2:], by_sha=True)


@command("EVAL_RO", -3)
def cmd_eval_ro(conn: Connection, args: list[bytes]) -> Any:
    """Run a script that may not call commands that write (Redis's read-only EVAL)."""
    return conn.server.scripts.eval(conn, args[1], args[2:], by_sha=False, read_only=True)


@command("EVALSHA_RO", -3)
def cmd_evalsha_ro(conn: Connection, args: list[bytes]) -> Any:
    """Run a cached script that may not call commands that write (Redis's read-only EVALSHA)."""
    return conn.server.scripts.eval(conn, args[1], args[2:], by_sha=True, read_only=True)


_SCRIPT_HELP = help_reply(
    "SCRIPT",
    [
        ("EXISTS <sha1> [<sha1> ...]", "1 or 0 for each SHA1: is that script cached?"),
        ("FLUSH [ASYNC|SYNC]", "Forget every cached script."),
        ("LOAD <script>", "Compile and cache a script; reply its SHA1 (for EVALSHA)."),
    ],
)


@command("SCRIPT", -2, subcommands={b"EXISTS": -3, b"FLUSH": -2, b"HELP": 2, b"LOAD": 3})
def cmd_script(conn: Connection, args: list[bytes]) -> Any:
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _SCRIPT_HELP)
    scripts = conn.server.scripts
    if sub == b"LOAD" and len(args) == 3:
        return scripts.load(args[2]).encode()
    if sub == b"EXISTS" and len(args) >= 3:
        return [int(scripts.exists(a)) for a in args[2:]]
    if sub == b"FLUSH":
        if len(args) > 3 or (len(args) == 3 and upper(args[2]) not in (b"ASYNC", b"SYNC")):
            raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        scripts.flush()
        return OK
    raise unknown_subcommand(args)
