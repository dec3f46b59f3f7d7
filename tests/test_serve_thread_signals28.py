"""kvb serve run on an event loop outside the main thread, whose ``add_signal_handler`` raises ValueError
there (uvloop before 0.18 does; asyncio raises RuntimeError): the server starts and serves all the same,
its signals left to the program that runs it (found by the oldest supported dependency set)."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

from helpers import wait_for

from kv_backend.server import resp

LIMIT = 30.0


class _ValueErrorLoop(asyncio.SelectorEventLoop):
    """An event loop that refuses signal handlers with ValueError, as old uvloop does off the main thread."""

    def add_signal_handler(self, sig: int, callback: Any, *args: Any) -> None:
        raise ValueError("add_signal_handler() can only be called from the main thread")


def test_a_loop_refusing_signal_handlers_with_valueerror_off_the_main_thread_serves(tmp_path: Path) -> None:
    server = resp.Server(str(tmp_path / "store"))
    server.log = lambda line: None  # type: ignore[method-assign]
    failed: list[BaseException] = []

    def run() -> None:
        try:
            resp._run_on_new_loop(resp._run(server, "127.0.0.1", 0, None), _ValueErrorLoop)
        except BaseException as exc:  # (the test's own report of it)
            failed.append(exc)
        finally:
            server.close()

    thread = threading.Thread(target=run, name="kvb-serve-off-main", daemon=True)
    thread.start()
    wait_for(lambda: failed or (server.port and not server.loading), LIMIT, "the server to listen")
    assert not failed, failed
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
        sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        sock.recv(1)
    thread.join(LIMIT)
    assert not thread.is_alive(), "the server did not stop"
    assert not failed, failed
