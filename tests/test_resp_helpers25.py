"""The tests' kvb serve helper never lets a test talk to another test's server.

A port free_port gave may be given to a parallel worker's server too; where that one listens first,
this one cannot, and a test that only waited for the port to accept talked to the other server (a
SET it was answered +OK for landed in the other test's store).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from helpers import free_port
from resp_helpers import Raw, RunningServer


@contextlib.contextmanager
def _second_given_the_port_of_a_first(tmp_path, zygote=None) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two servers: a first one started, then a second given the first's port (as if free_port had given
    both the same port) and started, which must have moved to another. Both are stopped at the end."""
    first = RunningServer(str(tmp_path / "first")).start()
    try:
        second = RunningServer(str(tmp_path / "second"), zygote=zygote)
        second.port = first.port
        second.start()
        try:
            assert second.port != first.port
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def _replies(port: int, *commands: tuple[str, ...]) -> list[bytes]:
    """The replies to ``commands``, sent one after another on one connection to ``port``."""
    conn = Raw(port, 2)
    try:
        return [conn.call(*command) for command in commands]
    finally:
        conn.close()


def test_a_server_whose_port_another_server_took_starts_on_another(tmp_path):
    with _second_given_the_port_of_a_first(tmp_path) as (first, second):
        stored, info = _replies(second.port, ("SET", "mine", "1"), ("INFO", "server"))
        assert stored == b"+OK\r\n"
        assert b"process_id:%d\r\n" % second.proc.pid in info
        assert _replies(first.port, ("EXISTS", "mine")) == [b":0\r\n"]  # (the first server never saw it)


def test_a_redis_server_whose_port_another_server_took_starts_on_another(tmp_path, monkeypatch):
    import resp_helpers

    first = RunningServer(str(tmp_path / "first")).start()
    try:
        ports = iter([first.port])
        monkeypatch.setattr(resp_helpers, "free_port", lambda: next(ports, None) or free_port())
        proc, port = resp_helpers.start_redis_server(str(tmp_path))
        try:
            assert port != first.port
            assert resp_helpers.is_listener(port, proc.pid)
        finally:
            resp_helpers.stop_process(proc)
    finally:
        first.stop()


def test_a_forked_server_whose_port_another_server_took_starts_on_another_and_restarts_there(tmp_path):
    from resp_helpers import serve_zygote

    with serve_zygote() as zygote, _second_given_the_port_of_a_first(tmp_path, zygote) as (_, second):
        assert _replies(second.port, ("SET", "mine", "1")) == [b"+OK\r\n"]
        assert second.stop() == 0
        port = second.port
        second.start()  # (a restart: on the same port)
        assert second.port == port
        value, info = _replies(second.port, ("GET", "mine"), ("INFO", "server"))
        assert value == b"$1\r\n1\r\n"
        assert b"process_id:%d\r\n" % second.proc.pid in info
