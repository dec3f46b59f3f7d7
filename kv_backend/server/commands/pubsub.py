"""Publish/subscribe commands."""

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
from kv_backend.server.protocol import Push, Replies
from kv_backend.structures import CommandError, glob_match

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection


@command("PUBLISH", 3)
def cmd_publish(conn: Connection, args: list[bytes]) -> Any:
    return conn.server.publish(args[1], args[2])


def _sub_replies(conn: Connection, kind: bytes, names: list[bytes], add: bool, pattern: bool) -> Any:
    subs = conn.patterns if pattern else conn.channels
    registry = conn.server.patterns if pattern else conn.server.channels
    out = Replies()
    if not add and not names:
        names = sorted(subs)
        if not names:
            return Push([kind, None, conn.subscription_count()])
    for name in names:
        if add:
            subs.add(name)
            registry.setdefault(name, set()).add(conn)
        else:
            subs.discard(name)
            members = registry.get(name)
            if members is not None:
                members.discard(conn)
                if not members:
                    del registry[name]
        out.append(Push([kind, name, conn.subscription_count()]))
    return out


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


_PUBSUB_HELP = help_reply(
    "PUBSUB",
    [
        (
            "CHANNELS [<pattern>]",
            "Channels with at least one subscriber, matching a glob pattern (default *).",
        ),
        ("NUMPAT", "How many pattern subscriptions exist."),
        ("NUMSUB [<channel> ...]", "Each channel and its number of subscribers."),
    ],
)


@command("PUBSUB", -2, subcommands={b"CHANNELS": -2, b"HELP": 2, b"NUMPAT": 2, b"NUMSUB": -2})
def cmd_pubsub(conn: Connection, args: list[bytes]) -> Any:
    sub = upper(args[1])
    if sub == b"HELP":
        return help_only(args, _PUBSUB_HELP)
    server = conn.server
    if sub == b"CHANNELS":
        if len(args) > 3:
            raise subcommand_syntax_error(args)
        pattern = args[2] if len(args) > 2 else b"*"
        return sorted(c for c in server.channels if glob_match(pattern, c))
    if sub == b"NUMSUB":
        out: list[Any] = []
        for ch in args[2:]:
            out += [ch, len(server.channels.get(ch, ()))]
        return out
    if sub == b"NUMPAT" and len(args) == 2:
        return len(server.patterns)
    raise unknown_subcommand(args)
