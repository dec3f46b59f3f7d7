"""COMMAND DOCS answered only a summary (empty for most commands: GET, SET, HSET...) and a group, so
``redis-cli``'s ``help`` and hints showed nothing of a command's arguments (``SET ""`` and an empty
summary), and IDEs and client generators that read the docs found no arguments, since or
complexity. Every command and subcommand now has a summary, the Redis version that brought it, its
group, its complexity in kvb, its deprecation and its arguments, checked here against redis-server
7.0 side by side (the ``ports`` fixture) and against each command's arity."""

from __future__ import annotations

import re
import subprocess

import pytest
import redis
from helpers import require_tool
from resp_helpers import Raw

from kv_backend.server.commands import metadata
from kv_backend.server.commands.docs import SyntaxLineError, parse_syntax, read_table

# Where kvb's arguments differ from redis-server 7.0's, and why.
_KNOWN = {
    "client|kill": "each filter of the new form is required in its alternative (at least one is needed)",
    "command|getkeys": "Redis 7.0 lists no arguments; kvb's say what its arity asks for",
    "command|getkeysandflags": "the same",
    "config|get": "a repeated parameter rather than a repeated block of one",
    "psubscribe": "a repeated pattern rather than a repeated block of one",
    "geohash": "members are optional, as GEOHASH's arity (-2) says",
    "geopos": "the same as GEOHASH",
    "pfmerge": "source keys are optional, as PFMERGE's arity (-2) says",
    "xtrim": "the trimming words are not wrapped in a block",
    "zincrby": "the increment is a double (Redis 7.0 says integer; both take 1.5)",
    "zinter": "weights are doubles (Redis 7.0 says integer; both take 0.5)",
    "zinterstore": "the same as ZINTER",
    "zunion": "the same as ZINTER",
    "zunionstore": "the same as ZINTER",
    "zrank": "Redis 7.2's WITHSCORE, which kvb has",
    "zrevrank": "the same as ZRANK",
}
# Argument names of kvb's own where Redis 7.0's differ (a name is only a hint, shown by redis-cli).
_RENAMED = {"groupname": "group", "consumername": "consumer", "entries_read": "entries-read"}
_RENAMED.update({"entries_added": "entries-added", "max_deleted_entry_id": "max-deleted-id", "id": "lastid"})


def _all(docs: dict) -> dict:
    out = {}
    for name, entry in docs.items():
        out[name] = entry
        out.update(_all(entry.get("subcommands", {})))
    return out


def _shape(args: list | None) -> list:
    """The arguments without what only names them (block and oneof names)."""
    out = []
    for arg in args or []:
        item = {k: arg.get(k) for k in ("type", "token", "key_spec_index")}
        item["flags"] = sorted(arg.get("flags", []))
        if arg["type"] not in ("block", "oneof", "pure-token"):
            item["name"] = _RENAMED.get(arg["name"], arg["name"])
        item["arguments"] = _shape(arg.get("arguments"))
        out.append(item)
    return out


@pytest.fixture(scope="module")
def both(ports):
    """COMMAND DOCS of every command, from redis-server and from kvb serve (RESP3, as text)."""
    return [
        _all(redis.Redis(port=p, protocol=3, decode_responses=True).execute_command("COMMAND DOCS"))
        for p in ports
    ]


def test_every_command_has_full_docs(both):
    _, ours = both
    assert len(ours) == len(metadata.names())
    for name, entry in ours.items():
        assert entry["summary"] and entry["complexity"], name
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["since"]), name
        assert entry["group"], name


def test_since_group_deprecation_and_arguments_are_redis_s(both):
    theirs, ours = both
    for name, entry in ours.items():
        if name not in theirs:  # (Redis 7.2's CLIENT NO-TOUCH and SETINFO)
            assert entry["since"] == "7.2.0", name
            continue
        want = theirs[name]
        assert (entry["since"], entry["group"]) == (want["since"], want["group"]), name
        assert entry.get("deprecated_since") == want.get("deprecated_since"), name
        assert entry.get("doc_flags", []) == want.get("doc_flags", []), name
        if name not in _KNOWN:
            assert _shape(entry.get("arguments")) == _shape(want.get("arguments")), name


def test_the_arguments_agree_with_the_arity():
    table = read_table()
    for info in metadata.described():
        for one in (info, *info.subcommands):
            if one.subcommands:  # a container: its subcommands have the arguments
                continue
            docs = table[one.name]
            words = docs.min_words() + (2 if "|" in one.name else 1)
            assert words == abs(one.arity), one.name
            if one.arity > 0:  # a fixed number of words: nothing optional nor repeated
                assert all(not (a.optional or a.multiple) for a in docs.arguments), one.name


@pytest.mark.parametrize(
    "command",
    [
        "get",
        "set",
        "zadd",
        "xadd",
        "sort",
        "geosearch",
        "xinfo stream",
        "bitfield",
        "bitfield_ro",
        "hello",
        "getset",
        "config get",
        "client list",
        "object encoding",
        "xread",
        "lpos",
        "restore",
    ],
)
def test_redis_cli_help_shows_the_arguments_redis_server_shows(ports, command):
    require_tool("redis-cli")
    shown = []
    for port in ports:
        out = subprocess.run(
            ["redis-cli", "-p", str(port), "help", *command.split()],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in out.splitlines() if line.strip()]
        shown.append(lines)
    theirs, ours = shown
    assert ours[0] == theirs[0] and '""' not in ours[0]  # the call's syntax
    assert [line.split(":")[0] for line in ours] == [line.split(":")[0] for line in theirs]
    assert ours[2:] == theirs[2:]  # since, group
    assert ours[1].startswith("summary: ") and len(ours[1]) > len("summary: ") + 10


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_reads_the_docs(ports, protocol):
    client = redis.Redis(port=ports[1], protocol=protocol)
    reply = client.execute_command("COMMAND DOCS", "set", "getset")
    if protocol == 2:  # name, docs, name, docs; each docs a flat list of keys and values
        reply = {
            reply[i]: dict(zip(reply[i + 1][::2], reply[i + 1][1::2], strict=True))
            for i in range(0, len(reply), 2)
        }
    docs = reply[b"set"]
    assert docs[b"since"] == b"1.0.0" and docs[b"group"] == b"string" and docs[b"complexity"] == b"O(1)"
    first = docs[b"arguments"][0]
    first = first if protocol == 3 else dict(zip(first[::2], first[1::2], strict=True))
    assert first == {b"name": b"key", b"type": b"key", b"key_spec_index": 0}
    assert reply[b"getset"][b"deprecated_since"] == b"6.2.0"
    assert list(reply[b"getset"][b"doc_flags"]) == [b"deprecated"]


def test_syntax_lines():
    (key, cond, get, expiry) = parse_syntax("key [NX|XX] [GET pattern:pattern@1*] [EX s:integer|KEEPTTL]")
    assert key.reply() == {b"name": b"key", b"type": b"key"}
    assert [c.reply()[b"token"] for c in cond.children] == [b"NX", b"XX"] and cond.optional
    assert get.reply()[b"key_spec_index"] == 1 and list(get.reply()[b"flags"]) == [
        "optional",
        "multiple",
        "multiple_token",
    ]
    assert expiry.kind == "oneof" and expiry.children[0].reply()[b"token"] == b"EX"
    (full,) = parse_syntax("[FULL ([COUNT count:integer])]")
    assert (full.kind, full.token, full.children[0].token) == ("block", "FULL", "COUNT")
    (star,) = parse_syntax('("*"|id)')
    assert [c.name for c in star.children] == ["auto-id", "id"]
    for bad in ("key [NX", "key NX|", "(a|)", "key ]", "[]", "key @x"):
        with pytest.raises(SyntaxLineError):
            parse_syntax(bad)
    with pytest.raises(SyntaxLineError, match="lack a summary"):
        read_table("get 1.0.0\n= key\n~ O(1)\n")


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_command_named_twice_is_answered_twice(ports, protocol):
    """kvb answered a command named twice once (a dict), where Redis answers it each time."""
    heads = []
    for port in ports:
        conn = Raw(port, protocol)
        try:
            reply = conn.call("COMMAND", "DOCS", "get", "nosuch", "GET")
        finally:
            conn.close()
        heads.append(reply.split(b"\r\n", 1)[0])
        assert reply.count(b"$3\r\nget\r\n") == 2
    assert heads[1] == heads[0] == (b"*4" if protocol == 2 else b"%2")
