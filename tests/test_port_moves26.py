"""The tests that move a running kvb serve to another port (CONFIG SET port) on a port the system gave
as free: a parallel test may be given that port too and listen there first (the CONFIG SET then fails),
or take the port the server just left (a connection to it is then no longer refused). Neither may fail
them: they move again to another free port, and check that the server's own process no longer listens
on the old port, whatever else may listen there now."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
import test_config_port25 as config_port
from resp_helpers import Raw, RunningServer


def first_then(taken: int, real: Callable[[], int]) -> Callable[[], int]:
    """A free_port that hands out ``taken`` first (as the system may, to two tests), then real ones."""
    given = [taken]

    def port() -> int:
        return given.pop() if given else real()

    return port


@pytest.fixture
def kvb(tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(str(tmp_path / "store")).start()
    yield server
    assert server.stop() == 0


@pytest.fixture
def stranger() -> Iterator[socket.socket]:
    """A listening socket of this process's (not the server's), on a port of its own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def test_a_move_to_a_port_another_took_first_moves_to_another(
    kvb: RunningServer, stranger: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = first_then(stranger.getsockname()[1], helpers.free_port)
    monkeypatch.setattr(helpers, "free_port", handed)
    monkeypatch.setattr(config_port, "free_port", handed)  # (the name the test module imported)
    config_port.test_the_port_moves_old_connections_stay_new_ones_on_the_new_port(kvb)


def test_another_listening_on_the_port_left_is_no_failure(
    kvb: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[socket.socket] = []

    class TakesTheOldPort(Raw):
        """A connection that, once a CONFIG SET moved the server, listens on the port it left (as a
        parallel test's server may, given that port as free)."""

        def call(self, *args: str) -> bytes:
            old = kvb.port
            reply = super().call(*args)
            if args[:3] == ("CONFIG", "SET", "port") and reply == b"+OK\r\n" and not taken:
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as servers do)
                sock.bind(("127.0.0.1", old))
                sock.listen()
                taken.append(sock)
            return reply

    monkeypatch.setattr(config_port, "Raw", TakesTheOldPort)
    try:
        config_port.test_the_port_moves_old_connections_stay_new_ones_on_the_new_port(kvb)
    finally:
        for sock in taken:
            sock.close()
    assert taken, "the old port was not taken"


@pytest.fixture
def serve_then_take(
    tmp_path: Path, stranger: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """test_tls_reload25's ``serve`` fixture, whose free ports hand out the stranger's port first once the
    server started: the port a CONFIG SET tls-port moves to is then taken."""
    tls_reload = pytest.importorskip("test_tls_reload25")
    started: list[Any] = []

    def start(*tls: str) -> Any:
        started.append(tls_reload.Serve(tmp_path, *tls))
        handed = first_then(stranger.getsockname()[1], helpers.free_port)
        monkeypatch.setattr(helpers, "free_port", handed)
        monkeypatch.setattr(tls_reload, "free_port", handed)  # (the name the test module imported)
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_a_tls_port_move_to_a_port_another_took_first_moves_to_another(
    serve_then_take: Any, certs: Any
) -> None:
    import test_tls_reload25

    test_tls_reload25.test_tls_port_moves_closes_and_opens_the_tls_listener(serve_then_take, certs)
