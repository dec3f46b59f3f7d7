"""kvb serve run with a gate: a child server whose chosen calls say first on which thread they run, on one
pipe ("T": a worker thread, "L": the event loop's, the main one), and, made off the event loop, wait for a
byte on another pipe, the gate, that the test opens: a slow fsync or a slow read of files, as slow as the
test wants, deterministically. test_bgsave26 gates DB.sync, test_tls_reload_loop26 the TLS context builds;
each module has its own child script and its own way to start it, and both share the rest here."""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Iterator
from typing import Any

from helpers import child_env, stop_process, wait_for
from resp_helpers import Raw


class GatedServer:
    """The pipes of the gate, the server's process once started, and the clients made to it."""

    port: int

    def __init__(self) -> None:
        self.gate_r, self.gate_w = os.pipe()
        self.said_r, self.said_w = os.pipe()
        self.proc: subprocess.Popen | None = None
        self.clients: list[Raw] = []

    def gate_env(self) -> dict[str, str]:
        """The child server's environment: the project importable, and the pipes' descriptors named."""
        env = child_env()
        env["KVB_TEST_GATE"], env["KVB_TEST_SAID"] = str(self.gate_r), str(self.said_w)
        return env

    def client(self) -> Raw:
        raw = Raw(self.port, 2)
        self.clients.append(raw)
        wait_for(lambda: raw.call("PING") == b"+PONG\r\n", 30, "the store open")
        return raw

    def said(self, timeout: float = 30) -> bytes:
        """Where the next gated call runs ("T" or "L"), once one starts; b"" if none within ``timeout``."""
        ready, _, _ = select.select([self.said_r], [], [], timeout)
        return os.read(self.said_r, 1) if ready else b""

    def open_gate(self, how: bytes = b"x") -> None:
        os.write(self.gate_w, how)

    def stop(self) -> None:
        for raw in self.clients:
            raw.close()
        if self.proc is not None:
            os.write(self.gate_w, b"x" * 16)  # (no call left waiting at the gate)
            stop_process(self.proc)
        for fd in (self.gate_r, self.gate_w, self.said_r, self.said_w):
            os.close(fd)


def serving(gated: Any, *args: Any) -> Iterator[Any]:
    """A fixture's body: ``gated`` started (with ``args``), then stopped, whether or not it started."""
    try:
        gated.start(*args)
        yield gated
    finally:
        gated.stop()
