"""A blocked client whose connection the server has seen close takes no element (#6, #7).

A Celery worker's main process waits in BRPOP on its queues; SIGKILLed, its connection ends (the
kernel sends the FIN). kvb serve closes a connection on its end of input at once but leaves the
client's waits until the event loop's ``connection_lost`` runs, in a later callback. An LPUSH read
in the same turn of the loop, behind another client's command, popped the element for that
client and wrote it into the closed connection: the message was lost, with nothing left in the
list or in kombu's unacked hash. Served waiters whose connection is closing are now passed over
(what is pushed stays in the list for the next consumer), in either order of the two reads.

redis-server (7.0) frees such a client only after the turn (``freeClientAsync``): an LPUSH read in
the same turn, before or after the end of input, is popped for it and lost there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import pytest

from kv_backend.server import resp

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
with contextlib.suppress(ImportError):
    import uvloop

    LOOPS["uvloop"] = uvloop.new_event_loop


def _cmd(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)


async def _read_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from the test's end of a connection (the loop runs meanwhile), or fail after 10 s."""
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, size - len(data)), 10)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


async def _scenario(path: str, push_first: bool) -> bytes:
    """Block a client in BRPOP; in one turn of the loop, another client's PING, the blocked client's
    end of input and (before or after it) an LPUSH with an LLEN; return LPUSH's and LLEN's replies."""
    loop = asyncio.get_running_loop()
    server = resp.Server(path)
    conns: list[socket.socket] = []
    try:

        async def connect() -> socket.socket:
            ours, theirs = socket.socketpair()
            ours.setblocking(False)
            conns.extend((ours, theirs))
            await loop.connect_accepted_socket(lambda: resp.Connection(server, "unix"), theirs)
            return ours

        gone, other, pusher = await connect(), await connect(), await connect()
        gone.sendall(_cmd(b"BRPOP", b"q", b"0"))
        deadline = loop.time() + 10
        while len(server.waiters) != 1:
            assert loop.time() < deadline, "the client did not block in 10 s"
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)  # (the loop's poll has seen each connection idle)
        # One step, no await: the loop's next poll finds the three connections readable at once.
        other.sendall(_cmd(b"PING"))
        if push_first:
            pusher.sendall(_cmd(b"LPUSH", b"q", b"x") + _cmd(b"LLEN", b"q"))
            gone.close()  # (what a SIGKILL does to its connection)
        else:
            gone.close()
            pusher.sendall(_cmd(b"LPUSH", b"q", b"x") + _cmd(b"LLEN", b"q"))
        assert await _read_exactly(other, 7) == b"+PONG\r\n"
        return await _read_exactly(pusher, 8)
    finally:
        for sock in conns:
            sock.close()
        server.close()


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("push_first", [False, True], ids=["end-then-push", "push-then-end"])
def test_an_element_pushed_as_its_blocked_client_dies_stays_in_the_list(tmp_path, loop_name, push_first):
    loop = LOOPS[loop_name]()
    try:
        replies = loop.run_until_complete(_scenario(str(tmp_path / "db"), push_first))
    finally:
        loop.close()
    assert replies == b":1\r\n:1\r\n", "the element went to the client that had gone"
