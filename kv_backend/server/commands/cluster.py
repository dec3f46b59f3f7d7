"""The cluster commands of ``kvb serve``: it is one server, never a cluster node, so each answers as
redis-server without cluster support does (after the usual arity and subcommand checks), which
cluster-aware clients read as "not a cluster" rather than as a server that lacks the command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_backend.server.commands.registry import command
from kv_backend.structures import CommandError

if TYPE_CHECKING:
    from kv_backend.server.resp import Connection

#: redis-server's reply to a cluster command when cluster support is off.
DISABLED = "ERR This instance has cluster support disabled"

#: CLUSTER's subcommands and their arities, as in Redis 7.0 (its HELP too answers DISABLED).
_SUBCOMMANDS = {
    b"ADDSLOTS": -3,
    b"ADDSLOTSRANGE": -4,
    b"BUMPEPOCH": 2,
    b"COUNT-FAILURE-REPORTS": 3,
    b"COUNTKEYSINSLOT": 3,
    b"DELSLOTS": -3,
    b"DELSLOTSRANGE": -4,
    b"FAILOVER": -2,
    b"FLUSHSLOTS": 2,
    b"FORGET": 3,
    b"GETKEYSINSLOT": 4,
    b"HELP": 2,
    b"INFO": 2,
    b"KEYSLOT": 3,
    b"LINKS": 2,
    b"MEET": -4,
    b"MYID": 2,
    b"NODES": 2,
    b"REPLICAS": 3,
    b"REPLICATE": 3,
    b"RESET": -2,
    b"SAVECONFIG": 2,
    b"SET-CONFIG-EPOCH": 3,
    b"SETSLOT": -4,
    b"SHARDS": 2,
    b"SLAVES": 3,
    b"SLOTS": 2,
}


def _disabled(conn: Connection, args: list[bytes]) -> Any:
    raise CommandError(DISABLED)


for _name in ("READONLY", "READWRITE", "ASKING"):
    command(_name, 1)(_disabled)
command("CLUSTER", -2, subcommands=_SUBCOMMANDS)(_disabled)
