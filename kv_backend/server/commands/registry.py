"""The command table of ``kvb serve`` and the argument helpers its commands share."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kv_backend import longdouble
from kv_backend.errors import NotAnIntegerError
from kv_backend.server import bgsave
from kv_backend.server.blocking import Block
from kv_backend.server.protocol import NULL_ARRAY
from kv_backend.structures import CommandError, parse_float, parse_int
from kv_backend.structures.errors import printed, quoted
from kv_backend.structures.parsing import keyword

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


Handler = Callable[["Connection", list[bytes]], Any]

#: An option keyword as Redis compares it (upper case, up to a NUL); the command modules import it
#: from here.
upper = keyword


class Command:
    """A registered command: its handler, arity and flags (and, for a container, its subcommands)."""

    __slots__ = ("arity", "container", "counted", "counted_args", "flags", "handler", "name", "subcommands")

    def __init__(self, name: str, handler: Handler, arity: int, flags: frozenset[str]) -> None:
        self.name = name
        self.handler = handler
        self.arity = arity
        self.flags = flags
        self.subcommands: dict[bytes, int] | None = None
        #: Redis names it with its subcommand ("client|info") in CLIENT LIST and errors.
        self.container = name in CONTAINERS
        #: How INFO's rdb_changes_since_last_save counts it (bgsave.counted_as), for a write's fast path.
        self.counted = bgsave.counted_as(name.encode(), flags)
        #: For one counted per argument: the first counted and the step (bgsave.PER_ARGUMENT).
        self.counted_args = bgsave.PER_ARGUMENT.get(name.encode(), (0, 1))

    def subcommand_error(self, args: list[bytes]) -> str | None:
        """Redis's error for an unknown subcommand or a wrong argument count (checked before MULTI queues)."""
        if self.subcommands is None or len(args) < 2:  # a bare COMMAND has no subcommand to check
            return None
        sub = args[1].upper()
        arity = self.subcommands.get(sub)
        if arity is None:
            return str(unknown_subcommand(args))
        if (arity > 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
            return f"ERR wrong number of arguments for '{self.name}|{sub.decode().lower()}' command"
        return None


COMMANDS: dict[bytes, Command] = {}

#: Redis's container commands: the first argument names a subcommand.
CONTAINERS = frozenset(
    {"acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module"}
    | {"object", "pubsub", "script", "slowlog", "xgroup", "xinfo"}
)


def command(
    name: str, arity: int, *flags: str, subcommands: dict[bytes, int] | None = None
) -> Callable[[Handler], Handler]:
    """Register a handler under ``name`` (``subcommands``: name -> arity, for a container command)."""

    def deco(fn: Handler) -> Handler:
        cmd = Command(name.lower(), fn, arity, frozenset(flags))
        if cmd.container and subcommands is None:  # else a wrong count would reach the handler unchecked
            raise TypeError(f"container command {name} must list its subcommands and their arities")
        cmd.subcommands = subcommands
        COMMANDS[name.lower().encode()] = cmd
        return fn

    return deco


def help_reply(name: str, entries: list[tuple[str, str]]) -> list[str]:
    """A container command's HELP, laid out as Redis's: a usage line, then each subcommand's
    syntax and, indented, what it does (HELP itself is added last)."""
    lines = [f"{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"]
    for syntax, what in [*entries, ("HELP", "Print this help.")]:
        lines.append(syntax)
        lines.extend("    " + line for line in what.split("\n"))
    return lines


def help_only(args: list[bytes], lines: list[str]) -> list[str]:
    """Reply ``lines`` to ``<container> HELP``, which takes no arguments (Redis's arity error otherwise)."""
    if len(args) != 2:
        raise CommandError(
            f"ERR wrong number of arguments for '{args[0].decode('utf-8', 'replace').lower()}|help' command"
        )
    return lines


def unknown_subcommand(args: list[bytes]) -> CommandError:
    """Redis's error for a subcommand a container command (CONFIG, XGROUP...) does not have."""
    return CommandError(
        f"ERR unknown subcommand '{printed(args[1])}'. Try {args[0].decode('utf-8', 'replace').upper()} HELP."
    )


def subcommand_syntax_error(args: list[bytes]) -> CommandError:
    """Redis's error for a subcommand given the wrong arguments (or one that does not exist)."""
    return CommandError(
        "ERR unknown subcommand or wrong number of arguments for "
        f"'{printed(args[1])}'. Try {args[0].decode('utf-8', 'replace').upper()} HELP."
    )


def syntax() -> CommandError:
    return CommandError("ERR syntax error")


def arg_int(raw: bytes) -> int:
    return parse_int(raw)


def arg_positive(raw: bytes) -> int:
    """A count that must be a non-negative integer (Redis's one message for both mistakes)."""
    try:
        n = parse_int(raw)
    except NotAnIntegerError:
        n = -1
    if n < 0:
        raise CommandError("ERR value is out of range, must be positive")
    return n


def non_negative(raw: bytes, message: str) -> int:
    """An integer option that may not be negative (Redis's ``message`` for both mistakes)."""
    try:
        n = parse_int(raw)
    except NotAnIntegerError:
        n = -1
    if n < 0:
        raise CommandError(message)
    return n


def limit_option(args: list[bytes], start: int) -> int:
    """The options of SINTERCARD/ZINTERCARD from ``args[start]`` on: ``LIMIT n`` (0: no limit)."""
    limit = 0
    i = start
    while i < len(args):
        if upper(args[i]) == b"LIMIT" and i + 1 < len(args):
            limit = non_negative(args[i + 1], "ERR LIMIT can't be negative")
            i += 2
        else:
            raise syntax()
    return limit


def count_above_zero(raw: bytes, what: str) -> int:
    """A numkeys or COUNT argument: an integer of at least 1, with Redis's one message for every mistake."""
    try:
        n = parse_int(raw)
    except NotAnIntegerError:
        n = 0
    if n < 1:
        raise CommandError(f"ERR {what} should be greater than 0")
    return n


def mpop_args(args: list[bytes], first: int, ends: tuple[bytes, bytes]) -> tuple[list[bytes], bytes, int]:
    """``numkeys key... END [COUNT n]`` from ``args[first]`` on (LMPOP, BLMPOP: ``ends`` LEFT, RIGHT;
    ZMPOP, BZMPOP: MIN, MAX): the keys, the end word (upper case) and the count (default 1).

    Errors come in Redis's order: numkeys, the end word, the options.
    """
    numkeys = count_above_zero(args[first], "numkeys")
    where_at = first + 1 + numkeys
    if where_at >= len(args) or upper(args[where_at]) not in ends:
        raise syntax()
    count = None
    i = where_at + 1
    while i < len(args):
        if count is None and upper(args[i]) == b"COUNT" and i + 1 < len(args):
            count = count_above_zero(args[i + 1], "count")
            i += 2
        else:
            raise syntax()
    return args[first + 1 : where_at], upper(args[where_at]), 1 if count is None else count


def random_count(raw: bytes) -> int:
    """The count of SRANDMEMBER, HRANDFIELD and ZRANDMEMBER: Redis refuses -2**63, whose magnitude
    does not fit in 64 bits."""
    count = parse_int(raw)
    if count == -(2**63):
        raise CommandError(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
        )
    return count


def random_count_with(args: list[bytes], option: bytes) -> tuple[int, bool]:
    """HRANDFIELD's and ZRANDMEMBER's ``key count [WITHVALUES|WITHSCORES]`` (``option``), checked in
    Redis's order (the count, then the option, then the key): the count and whether ``option`` is given.
    """
    count = random_count(args[2])
    if len(args) > 4 or (len(args) == 4 and upper(args[3]) != option):
        raise syntax()
    with_option = len(args) == 4
    if with_option and abs(count) > LLONG_MAX // 2:  # Redis's limit: the reply has twice as many items
        raise CommandError("ERR value is out of range")
    return count, with_option


def arg_pairs(args: list[bytes], start: int, name: str) -> list[tuple[bytes, bytes]]:
    rest = args[start:]
    if not rest or len(rest) % 2:
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    return list(zip(rest[::2], rest[1::2], strict=True))


def scan_options(
    args: list[bytes], start: int, allow_type: bool = False
) -> tuple[bytes | None, int, str | None]:
    match, count, typ = None, 10, None
    i = start
    while i < len(args):
        opt = upper(args[i])
        if i + 1 >= len(args):
            raise syntax()
        if opt == b"MATCH":
            match = args[i + 1]
        elif opt == b"COUNT":
            count = arg_int(args[i + 1])
            if count < 1:
                raise syntax()
        elif opt == b"TYPE" and allow_type:
            typ = args[i + 1].decode("utf-8", "replace")
        else:
            raise syntax()
        i += 2
    return match, count, typ


#: The largest signed 64-bit integer, Redis's limit for counts and times in milliseconds.
LLONG_MAX = (1 << 63) - 1


def now_ms() -> int:
    """The current Unix time in whole milliseconds, the clock Redis adds relative expire times to."""
    return int(time.time() * 1000)


def block_timeout(raw: bytes) -> float:
    """A blocking command's timeout in seconds (0: for ever), checked as Redis checks it.

    Redis rounds the milliseconds up (``ceill`` of the long double ``strtold`` read times 1000),
    and only then is a timeout negative: one above -1 ms (``-0.0001``, ``-1e-20``, ``-0.001``, whose
    long double is just above it) is 0, which blocks for ever. kvb refused those as negative.
    """
    seconds = parse_float(raw, "ERR timeout is not a float or out of range", overflow=True)
    if seconds * 1000 > LLONG_MAX - time.time() * 1000:  # as Redis 7.2: the deadline must fit in ms
        raise CommandError("ERR timeout is out of range")
    if seconds < 0:
        if seconds > -0.002 and math.ceil(longdouble.multiply(longdouble.parse(raw), 1000)) == 0:
            return 0.0
        raise CommandError("ERR timeout is negative")
    return seconds


def try_or_block(
    conn: Connection,
    keys: list[bytes],
    timeout: float,
    attempt: Callable[[], Any],
    empty: Any,
    pushes: list[bytes] | None = None,
    retry: Callable[[], Any] | None = None,
) -> Any:
    """Run ``attempt`` now; when it finds nothing, wait for ``keys`` (then ``retry``, by default
    ``attempt``, is what is tried again).

    Where a client may not block (inside EXEC, in a script) the answer is ``empty`` at once;
    a wait that times out answers a null array, as Redis answers every blocked list command.
    """
    reply = attempt()
    if reply is not None:
        return reply
    if not conn.can_block:  # inside EXEC or a script: answer at once, as Redis does
        return empty
    return Block(keys, timeout, retry or attempt, pushes)


def try_or_block_pop(
    conn: Connection, keys: list[bytes], timeout: float, pop: Callable[[list[bytes]], Any]
) -> Any:
    """:func:`try_or_block` for a pop from the first of several lists or sorted sets (BLPOP, BZMPOP...).

    ``pop(keys)`` answers the pop from the first of ``keys`` that has something, or None. The
    first try answers WRONGTYPE for a key of another type; a client that waits is then served
    only by keys of its type, as in Redis (see :meth:`Structures._retry_pop`).
    """
    st = conn.st

    def retry() -> Any:
        return st._retry_pop(keys, pop)

    return try_or_block(conn, keys, timeout, lambda: pop(keys), NULL_ARRAY, retry=retry)


def int_or_error(raw: bytes, message: str) -> int:
    """``raw`` as an integer; a CommandError with Redis's ``message`` for this argument if it is not one."""
    try:
        return parse_int(raw)
    except NotAnIntegerError:
        raise CommandError(message) from None


def block_ms(conn: Connection, command_name: bytes, raw: bytes) -> float:
    """The BLOCK argument of XREAD/XREADGROUP (milliseconds, 0: for ever), in seconds.

    A script may not give it at all (Redis refuses it before reading the timeout, naming the
    command as the script wrote it: ``xread``), where the other blocking commands answer at once:
    the script must read without BLOCK.
    """
    if conn.kind == "script":
        name = quoted(command_name)
        raise CommandError(f"ERR {name} command is not allowed with BLOCK option from scripts")
    ms = int_or_error(raw, "ERR timeout is not an integer or out of range")
    if ms < 0:
        raise CommandError("ERR timeout is negative")
    return ms / 1000
