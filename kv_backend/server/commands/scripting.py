"""Lua scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT; FCALL, FCALL_RO, FUNCTION."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import (
    command,
    help_only,
    help_reply,
    subcommand_syntax_error,
    unknown_subcommand,
    upper,
)
from kv_backend.server.protocol import OK
from kv_backend.structures import CommandError
from kv_backend.structures.errors import quoted

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("EVAL", -3, "write")
def cmd_eval(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.scripts.eval(conn, args, by_sha=False)


@command("EVALSHA", -3, "write")
def cmd_evalsha(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.scripts.eval(conn, args, by_sha=True)


@command("EVAL_RO", -3)
def cmd_eval_ro(conn: Connection, args: list[bytes]) -> Any:
    """Run a script that may not call commands that write (Redis's read-only EVAL)."""
    return conn.server.scripts.eval(conn, args, by_sha=False, read_only=True)


@command("EVALSHA_RO", -3)
def cmd_evalsha_ro(conn: Connection, args: list[bytes]) -> Any:
    """Run a cached script that may not call commands that write (Redis's read-only EVALSHA)."""
    return conn.server.scripts.eval(conn, args, by_sha=True, read_only=True)


_SCRIPT_HELP = help_reply(
    "SCRIPT",
    [
        ("EXISTS <sha1> [<sha1> ...]", "1 or 0 for each SHA1: is that script cached?"),
        ("FLUSH [ASYNC|SYNC]", "Forget every cached script."),
        ("KILL", "Kill the running script, if it has not written (only while it runs long: BUSY)."),
        ("LOAD <script>", "Compile and cache a script; reply its SHA1 (for EVALSHA)."),
    ],
)


@command("SCRIPT", -2, subcommands={b"EXISTS": -3, b"FLUSH": -2, b"HELP": 2, b"KILL": 2, b"LOAD": 3})
def cmd_script(conn: Connection, args: list[bytes]) -> Any:
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _SCRIPT_HELP)
    scripts = conn.server.scripts
    if sub == b"LOAD" and len(args) == 3:
        return scripts.load(args[2], share=True).encode()
    if sub == b"EXISTS" and len(args) >= 3:
        return [int(scripts.exists(a)) for a in args[2:]]
    if sub == b"FLUSH":
        if len(args) > 3 or (len(args) == 3 and upper(args[2]) not in (b"ASYNC", b"SYNC")):
            raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        scripts.flush()
        return OK
    if sub == b"KILL":
        return scripts.kill(is_eval=True)
    raise unknown_subcommand(args)


@command("FCALL", -3, "write")
def cmd_fcall(conn: Connection, args: list[bytes]) -> Any:
    """Call a function of a loaded library: ``FCALL name numkeys key... arg...``."""
    return conn.server.functions.call(conn, args, read_only=False)


@command("FCALL_RO", -3)
def cmd_fcall_ro(conn: Connection, args: list[bytes]) -> Any:
    """Call a function flagged ``no-writes`` (others are refused, as Redis's FCALL_RO)."""
    return conn.server.functions.call(conn, args, read_only=True)


_FUNCTION_HELP = help_reply(
    "FUNCTION",
    [
        ("LOAD [REPLACE] <FUNCTION CODE>", "Create a library from its code (first line: #!lua name=<lib>)."),
        ("DELETE <LIBRARY NAME>", "Delete a library and its functions."),
        (
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "The libraries (those whose name matches PATTERN), their functions and, with WITHCODE, code.",
        ),
        ("STATS", "The function running long (or nil) and the number of libraries and functions."),
        ("KILL", "Kill the running function, if it has not written (only while it runs long: BUSY)."),
        ("FLUSH [ASYNC|SYNC]", "Delete every library."),
        ("DUMP", "Every library's code as a payload for FUNCTION RESTORE (Redis's format)."),
        (
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "Load the libraries of a FUNCTION DUMP payload: APPEND (default) refuses names already\n"
            "loaded, REPLACE replaces libraries of the same names, FLUSH deletes every library first.",
        ),
    ],
)


@command(
    "FUNCTION",
    -2,
    subcommands={
        b"LOAD": -3,
        b"DELETE": 3,
        b"LIST": -2,
        b"STATS": 2,
        b"KILL": 2,
        b"FLUSH": -2,
        b"DUMP": 2,
        b"RESTORE": -3,
        b"HELP": 2,
    },
)
def cmd_function(conn: Connection, args: list[bytes]) -> Any:
    sub = upper(args[1])
    functions = conn.server.functions
    if sub == b"HELP":
        return help_only(args, _FUNCTION_HELP)
    if sub == b"LOAD":
        replace = False
        for word in args[2:-1]:
            if upper(word) != b"REPLACE":
                raise CommandError(f"ERR Unknown option given: {quoted(word)}")
            replace = True
        return functions.load(args[-1], replace)
    if sub == b"DELETE":
        functions.delete(args[2])
        return OK
    if sub == b"LIST":
        pattern, with_code, i = None, False, 2
        while i < len(args):
            word = upper(args[i])
            if word == b"WITHCODE" and not with_code:
                with_code = True
            elif word == b"LIBRARYNAME" and pattern is None:
                if i + 1 >= len(args):
                    raise CommandError("ERR library name argument was not given")
                i += 1
                pattern = args[i]
            else:
                raise CommandError(f"ERR Unknown argument {quoted(args[i])}")
            i += 1
        return functions.list(pattern, with_code)
    if sub == b"STATS":
        return functions.stats()
    if sub == b"KILL":
        return conn.server.scripts.kill(is_eval=False)
    if sub == b"FLUSH":
        if len(args) > 3:
            raise subcommand_syntax_error(args)
        if len(args) == 3 and upper(args[2]) not in (b"ASYNC", b"SYNC"):
            raise CommandError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
        functions.flush()
        return OK
    if sub == b"DUMP":
        return functions.dump()
    if sub == b"RESTORE":
        if len(args) > 4:
            raise subcommand_syntax_error(args)
        policy = upper(args[3]) if len(args) == 4 else b"APPEND"
        if policy not in (b"FLUSH", b"APPEND", b"REPLACE"):
            raise CommandError(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
            )
        functions.restore(args[2], policy)
        return OK
    raise unknown_subcommand(args)
