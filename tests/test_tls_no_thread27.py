"""kvb serve: a CONFIG SET of TLS files whose reading thread cannot be started (Python's "can't start
new thread": a limit on the process's tasks) read the files on the event loop with no bound, every
client waiting for it. It now fails as a CONFIG SET whose files cannot be read (Redis's CONFIG_FAILED
reason), with a log line saying no thread could be started, the settings in force kept; nothing is read
on the loop. (tests/test_serve_review26.py holds it against a real server.)"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from kv_backend.server import tlsreload
from kv_backend.server.ports import Refused
from kv_backend.server.tls import TLSSettings


@dataclasses.dataclass
class _Server:
    """What tlsreload.Changes and prepare use of a server: TLS port 6380 open, its context in force."""

    tls: TLSSettings = dataclasses.field(
        default_factory=lambda: TLSSettings(
            port=6380, cert_file="old.pem", key_file="old.key", auth_clients="no"
        )
    )
    tls_context: Any = dataclasses.field(default_factory=object)
    halting: bool = False
    stops: bool = False
    lines: list[str] = dataclasses.field(default_factory=list)

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_no_thread_fails_the_config_set_with_config_failed_and_reads_nothing(monkeypatch):
    def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("can't start new thread")

    def read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the TLS files read on the event loop")

    monkeypatch.setattr(tlsreload, "open_in_background", no_thread)
    monkeypatch.setattr(tlsreload, "configure", read)
    server = _Server()
    given = [(b"tls-cert-file", b"new.pem"), (b"tls-key-file", b"new.key")]
    finished: list[tlsreload.Built | None] = []

    async def submit() -> None:
        changes = tlsreload.Changes(server)  # type: ignore[arg-type]
        changes.submit(given, finished.append)
        for _ in range(100):
            if finished:
                break
            await asyncio.sleep(0)
        assert not changes.busy()  # (the next CONFIG SET is not left waiting)

    asyncio.run(asyncio.wait_for(submit(), 5))
    [built] = finished
    assert built is not None and built.error is not None
    with pytest.raises(Refused) as refused:
        tlsreload.prepare(server, given, built)  # type: ignore[arg-type]
    assert (refused.value.name, refused.value.reason) == (b"tls-cert-file", tlsreload.CONFIG_FAILED)
    assert server.tls.cert_file == "old.pem"
    [line] = server.lines
    assert line.startswith(
        "CONFIG SET tls-cert-file refused: no thread could be started to read the TLS files "
        "(can't start new thread: "
    ), line
    assert line.endswith("the TLS settings in force stay"), line
