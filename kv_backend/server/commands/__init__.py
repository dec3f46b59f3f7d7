"""The Redis commands served by ``kvb serve``: argument parsing and replies over :class:`Structures`.

Each command is a function ``(conn, args) -> reply`` registered with its
Redis arity (negative: at least that many words, command name included) and
flags: ``noauth`` runs before AUTH, ``pubsub`` runs in RESP2 subscribe mode,
``tx`` is a transaction command that MULTI does not queue, ``write`` changes data.
"""

from __future__ import annotations

from kv_backend.server.commands import (
    bits,
    cluster,
    connection,
    geo,
    groups,
    hashes,
    hyperloglog,
    keys,
    lists,
    ops,
    pubsub,
    scripting,
    sets,
    streams,
    strings,
    transactions,
    zsets,
)
from kv_backend.server.commands.registry import COMMANDS, Command, command

__all__ = ["COMMANDS", "Command", "command"]

# Importing the modules above registered their commands in COMMANDS.
del (
    bits,
    cluster,
    connection,
    geo,
    groups,
    hashes,
    hyperloglog,
    keys,
    lists,
    ops,
    pubsub,
    scripting,
    sets,
    streams,
    strings,
    transactions,
    zsets,
)
