"""INFO's rdb_changes_since_last_save is counted on every write command's path, so the command table says
once, per command, how each is counted (Command.counted, bgsave.counted_as) and resp.Connection.execute
counts the common writes (SET, INCR, LPUSH, HSET, MSET...) inline, without bgsave.count: the table must
agree with bgsave's lists, the inline count with bgsave.changes_made, and the inline path must keep the
count's guarantee that it never loses a command's reply."""

from __future__ import annotations

import pytest

from kv_backend.server import bgsave, resp
from kv_backend.server.commands.registry import COMMANDS


@pytest.fixture
def server(resp_server_here):
    return resp_server_here


def test_the_command_table_says_how_each_command_is_counted():
    for name, cmd in COMMANDS.items():
        if name == b"pfcount":  # (a read that stores the count of one key: counted where it does)
            expected = bgsave.COUNTED_APART
        elif "write" not in cmd.flags or name in bgsave.RUNNERS:
            expected = bgsave.NOT_COUNTED
        elif name in bgsave.PER_ARGUMENT:
            expected = bgsave.ONE_PER_ARGUMENT
        elif name in bgsave._COUNTED_APART:  # (MSETNX, DEL, SADD, FLUSHALL, LTRIM, pops with a count...)
            expected = bgsave.COUNTED_APART
        else:
            expected = bgsave.ONE_PER_CHANGE
        assert cmd.counted == expected, (name, cmd.counted)
    assert COMMANDS[b"set"].counted == COMMANDS[b"incr"].counted == bgsave.ONE_PER_CHANGE
    assert COMMANDS[b"get"].counted == COMMANDS[b"exec"].counted == bgsave.NOT_COUNTED
    assert COMMANDS[b"hset"].counted_args == (2, 2) and COMMANDS[b"lpush"].counted_args == (2, 1)


@pytest.mark.parametrize(
    ("args", "counted"),
    [
        ([b"LPUSH", b"l", b"a", b"b", b"c"], 3),
        ([b"RPUSH", b"l", b"a"], 1),
        ([b"HSET", b"h", b"f1", b"v1", b"f2", b"v2"], 2),
        ([b"HMSET", b"h", b"f1", b"v1"], 1),
        ([b"MSET", b"a", b"1", b"b", b"2", b"c", b"3"], 3),
        ([b"SET", b"a", b"1"], 1),
        ([b"INCR", b"n"], 1),
    ],
)
def test_a_write_counted_inline_counts_as_changes_made_says(server, args, counted):
    conn = resp.Connection(server)
    assert conn.execute([b"SET", b"a", b"0"]) == resp.OK
    before = server.bgsaves.changes
    reply = conn.execute(args)
    assert type(reply) is not resp.ErrorReply, reply
    name = args[0].lower()
    assert COMMANDS[name].counted in (bgsave.ONE_PER_CHANGE, bgsave.ONE_PER_ARGUMENT)
    assert server.bgsaves.changes - before == bgsave.changes_made(name, args, reply, True, 0) == counted
    assert conn.execute([b"SET", b"a", b"1", b"NX"]) is None  # (changed nothing: not counted)
    assert server.bgsaves.changes - before == counted


@pytest.mark.parametrize("args", [[b"SET", b"a", b"1"], [b"LPUSH", b"l", b"a", b"b"]])
def test_a_count_inline_that_fails_leaves_the_reply(server, monkeypatch, args):
    conn = resp.Connection(server)
    logged: list[str] = []
    monkeypatch.setattr(resp.Server, "log", lambda self, message: logged.append(message))

    def cannot_count(self, value):  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot count")

    unwritable = property(lambda self: 0, cannot_count)
    monkeypatch.setattr(bgsave.BackgroundSaves, "changes", unwritable, raising=False)
    reply = conn.execute(args)  # (the count after the command raises: the reply is kept)
    assert reply in (resp.OK, 2), reply
    assert conn.execute([b"EXISTS", args[1]]) == 1
    assert len(logged) == 1 and "not counted in INFO's rdb_changes_since_last_save" in logged[0], logged
