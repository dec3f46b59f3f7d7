"""``kvb http`` parses requests with h11 whatever else is installed."""

from __future__ import annotations

import pytest

uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (it comes with the server extra)")


def test_serve_pins_the_h11_parser(tmp_path, monkeypatch):
    """uvicorn's default ("auto") takes httptools wherever it is installed (``uvicorn[standard]``
    brings it), and with it a request with both Content-Length and Transfer-Encoding got a 400
    instead of the answer and closed connection docs/http.md gives, and the 256 KiB limit on a
    request head (an h11 option) did not apply; ``serve`` asks for h11 by name."""
    from kv_backend.http import server as http_server

    seen = []

    class RecordingServer:
        def __init__(self, config):
            seen.append(config)
            self.started = True

        def run(self):
            return None

    monkeypatch.setattr(uvicorn, "Server", RecordingServer)
    http_server.serve(tmp_path / "store", port=0)
    (config,) = seen
    assert config.http == "h11"
    assert config.h11_max_incomplete_event_size == http_server.MAX_REQUEST_HEAD
