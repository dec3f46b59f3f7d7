"""An inline command line holding a NUL byte, against a real redis-server 7.0 (docs/redis.md, protocol
limits): kvb reads the line to its end and answers it; Redis looks for the end of the line with C's
``strchr``, which stops at the NUL, so it answers nothing and waits for more input."""

from __future__ import annotations

import socket

import pytest


def _reply(port: int, data: bytes, wait: float) -> bytes:
    """What the server sent back within ``wait`` seconds of ``data``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.settimeout(wait)
        out = b""
        try:
            while not out.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                out += chunk
        except TimeoutError:
            pass
        return out


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (b"\x00PING\r\n", b"-ERR unknown command '', with args beginning with: \r\n"),
        (b"PI\x00NG\r\n", b"-ERR unknown command 'PI', with args beginning with: \r\n"),
        (b"ECHO a\x00b\r\n", b"$3\r\na\x00b\r\n"),
    ],
)
def test_an_inline_line_with_a_nul_is_answered(ports, line, answer):
    real, ours = ports
    assert _reply(ours, line, 5.0) == answer
    assert _reply(real, line, 0.2) == b""  # still waiting for the end of the line
