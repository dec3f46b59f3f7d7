"""Publish/subscribe commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import (
    command,
    help_only,
    help_reply,
    subcommand_syntax_error,
    unknown_subcommand,
    upper,
)
from kv_backend.server.protocol import Push, Replies
from kv_backend.structures import CommandError, glob_match

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("PUBLISH", 3)
def cmd_publish(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.publish(args[1], args[2])


def _sub_replies(conn: Connection, kind: bytes, names: list[bytes], add: bool, pattern: bool) -> Any:
    """The confirmations of (P)(UN)SUBSCRIBE, each with the client's count of channels and patterns."""
    subs = conn.patterns if pattern else conn.channels
    registry = conn.server.patterns if pattern else conn.server.channels
    return _change(conn, kind, names, add, subs, registry, conn.subscription_count)


def _change(
    conn: Connection,
    kind: bytes,
    names: list[bytes],
    add: bool,
    subs: dict[bytes, None],
    registry: dict[bytes, set[Connection]],
    count: Callable[[], int],
) -> Any:
    """Add ``names`` to (or remove them from; none named: all) the client's ``subs`` and the
    server's ``registry``, confirming each with a ``kind`` push carrying ``count()``."""
    out = Replies()
    if not add and not names:
        # all of them: patterns in the order subscribed, as Redis 7.0 (a list there); channels and
        # shard channels in byte order (Redis: the order of its hash table)
        names = list(subs) if subs is conn.patterns else sorted(subs)
        if not names:
            return Push([kind, None, count()])
    for name in names:
        if add:
            subs[name] = None  # (one subscribed already keeps its place)
            registry.setdefault(name, set()).add(conn)
        else:
            subs.pop(name, None)
            members = registry.get(name)
            if members is not None:
                members.discard(conn)
                if not members:
                    del registry[name]
        out.append(Push([kind, name, count()]))
    return out


def _shard_replies(conn: Connection, kind: bytes, names: list[bytes], add: bool) -> Any:
    """The confirmations of SSUBSCRIBE/SUNSUBSCRIBE, each with the client's count of shard channels."""
    subs = conn.shard_channels
    return _change(conn, kind, names, add, subs, conn.server.shard_channels, subs.__len__)


@command("SUBSCRIBE", -2, "pubsub")
def cmd_subscribe(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR Command not allowed inside a transaction")
    return _sub_replies(conn, b"subscribe", args[1:], True, False)


@command("PSUBSCRIBE", -2, "pubsub")
def cmd_psubscribe(conn: Connection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR Command not allowed inside a transaction")
    return _sub_replies(conn, b"psubscribe", args[1:], True, True)


@command("UNSUBSCRIBE", -1, "pubsub")
def cmd_unsubscribe(conn: Connection, args: list[bytes]) -> Any:
    return _sub_replies(conn, b"unsubscribe", args[1:], False, False)


@command("PUNSUBSCRIBE", -1, "pubsub")
def cmd_punsubscribe(conn: Connection, args: list[bytes]) -> Any:
    return _sub_replies(conn, b"punsubscribe", args[1:], False, True)


@command("SPUBLISH", 3)
def cmd_spublish(conn: Connection, args: list[bytes]) -> Any:
    """Post a message to a shard channel (with one server, the only shard)."""
    return conn.server.spublish(args[1], args[2])


@command("SSUBSCRIBE", -2, "pubsub")
def cmd_ssubscribe(conn: Connection, args: list[bytes]) -> Any:
    """Listen for messages published to the given shard channels."""
    if not conn.can_block:  # inside EXEC: as Redis, which has no MULTI exception here as SUBSCRIBE's
        raise CommandError("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client")
    return _shard_replies(conn, b"ssubscribe", args[1:], True)


@command("SUNSUBSCRIBE", -1, "pubsub")
def cmd_sunsubscribe(conn: Connection, args: list[bytes]) -> Any:
    """Stop listening for messages posted to the given shard channels (none given: all)."""
    return _shard_replies(conn, b"sunsubscribe", args[1:], False)


_PUBSUB_HELP = help_reply(
    "PUBSUB",
    [
        (
            "CHANNELS [<pattern>]",
            "Channels with at least one subscriber, matching a glob pattern (default *).",
        ),
        ("NUMPAT", "How many pattern subscriptions exist."),
        ("NUMSUB [<channel> ...]", "Each channel and its number of subscribers."),
        (
            "SHARDCHANNELS [<pattern>]",
            "Shard channels with at least one subscriber, matching a glob pattern (default *).",
        ),
        ("SHARDNUMSUB [<shardchannel> ...]", "Each shard channel and its number of subscribers."),
    ],
)


@command(
    "PUBSUB",
    -2,
    subcommands={
        b"CHANNELS": -2,
        b"HELP": 2,
        b"NUMPAT": 2,
        b"NUMSUB": -2,
        b"SHARDCHANNELS": -2,
        b"SHARDNUMSUB": -2,
    },
)
def cmd_pubsub(conn: Connection, args: list[bytes]) -> Any:
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _PUBSUB_HELP)
    server = conn.server
    registry = server.shard_channels if sub.startswith(b"SHARD") else server.channels
    if sub in (b"CHANNELS", b"SHARDCHANNELS"):
        if len(args) > 3:
            raise subcommand_syntax_error(args)
        if len(args) == 2:  # every channel; a pattern, even "*", does not match the empty name
            return sorted(registry)
        return sorted(c for c in registry if glob_match(args[2], c, star_matches_all=False))
    if sub in (b"NUMSUB", b"SHARDNUMSUB"):
        out: list[Any] = []
        for ch in args[2:]:
            out += [ch, len(registry.get(ch, ()))]
        return out
    if sub == b"NUMPAT" and len(args) == 2:
        return len(server.patterns)
    raise unknown_subcommand(args)
