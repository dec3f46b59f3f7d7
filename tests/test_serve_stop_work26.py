"""kvb serve starts no background work once it is told to stop, and every log line is one write.

A BGSAVE scheduled by EXEC starts at the event loop's next turn; a SHUTDOWN pipelined right behind the
EXEC used to let it start its fsync thread beside the stop's own fsync (harmless, but the log said a
background save started while the server stopped).
"""

from __future__ import annotations

import io
import os
import select
import sys

from test_bgsave26 import Gated

from kv_backend.server import tls


def _all_said(gated: Gated) -> bytes:
    """Everything the gated server's DB.sync wrapper reported ("T": in a thread, "L": on the loop)."""
    out = b""
    while select.select([gated.said_r], [], [], 0.2)[0]:
        chunk = os.read(gated.said_r, 64)
        if not chunk:
            break
        out += chunk
    return out


def test_a_bgsave_scheduled_by_exec_does_not_start_once_shutdown_is_received(tmp_path):
    gated = Gated(tmp_path)
    try:
        gated.start()
        raw = gated.client()
        os.write(gated.gate_w, b"x" * 16)  # (the close's fsync goes through at once)
        raw.pipeline([("MULTI",), ("BGSAVE",), ("EXEC",), ("SHUTDOWN",)])
        assert gated.proc is not None
        assert gated.proc.wait(30) == 0
        said = _all_said(gated)
        assert b"T" not in said, said  # no fsync thread: only the stop's own fsync, on the loop
        log = gated.log.read_text()
        assert "background saving started" not in log, log
    finally:
        gated.stop()


def test_the_tls_default_log_writes_each_line_at_once(monkeypatch):
    """The TLS settings' default log (at start, with no server log given) wrote its text and its newline
    in two writes, as print does; it is kvb serve's one-write line now."""
    writes: list[str] = []

    class Err(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stderr", Err())
    tls._log("a CA directory file skipped")
    assert writes == ["kvb serve: a CA directory file skipped\n"]
