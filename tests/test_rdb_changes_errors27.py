"""INFO's rdb_changes_since_last_save is counted on every write command's path (resp.Connection.execute):
the store's change token and, for FLUSHALL, FLUSHDB and LTRIM, a size, read before and after the command.
Those reads ran outside the command's error handling: a write on a closed store raised its
DatabaseClosedError out of execute instead of being answered it (as reads are, and as writes were
before the count), and an error in the count after the command (a size that cannot be read, a reply
the count does not expect) lost the reply of a command that had run. Counting now never changes what a
command does or answers: where it fails, the command is answered as without it, and the log says so."""

from __future__ import annotations

import pytest

from kv_backend.errors import StorageError
from kv_backend.server import bgsave, resp


@pytest.fixture
def server(resp_server_here):
    return resp_server_here


@pytest.mark.parametrize(
    "args",
    [[b"SET", b"a", b"1"], [b"FLUSHALL"], [b"LTRIM", b"l", b"0", b"0"], [b"MSET", b"a", b"1", b"b", b"2"]],
)
def test_a_write_on_a_closed_store_is_answered_its_error(server, args):
    conn = resp.Connection(server)
    assert conn.execute([b"RPUSH", b"l", b"x", b"y"]) == 2
    server.db.close()
    reply = conn.execute(args)  # (raised DatabaseClosedError)
    assert type(reply) is resp.ErrorReply and "is closed" in str(reply), reply


def _fails_after_the_command(monkeypatch, what: str) -> list[str]:
    """Make the count's ``what`` raise once the command has run; the lines the server logs."""
    logged: list[str] = []
    monkeypatch.setattr(resp.Server, "log", lambda self, message: logged.append(message))
    if what == "changes_made":

        def changes_made(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise ValueError("a reply the count does not expect")

        monkeypatch.setattr(bgsave, "changes_made", changes_made)
    else:  # the size read after FLUSHALL (an I/O error catching up with the store, say)
        real, calls = bgsave.size, []

        def size(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(1)
            if len(calls) > 1:
                raise StorageError(5, "cannot read the store: Input/output error")
            return real(*args, **kwargs)

        monkeypatch.setattr(bgsave, "size", size)
    return logged


@pytest.mark.parametrize("what", ["changes_made", "size"])
def test_a_count_that_fails_after_the_command_leaves_its_reply(server, monkeypatch, what):
    conn = resp.Connection(server)
    assert conn.execute([b"SET", b"a", b"1"]) == resp.OK
    before = server.bgsaves.changes
    logged = _fails_after_the_command(monkeypatch, what)
    assert conn.execute([b"FLUSHALL"]) == resp.OK  # (raised: the keys were gone, the reply lost)
    assert conn.execute([b"DBSIZE"]) == 0
    assert server.bgsaves.changes == before  # (not counted: it could not be)
    assert len(logged) == 1 and "rdb_changes_since_last_save" in logged[0], logged
