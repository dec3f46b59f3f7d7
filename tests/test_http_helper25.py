"""The tests' kvb http helper never lets a test talk to another test's server.

A port free_port gave may be given to a parallel worker's server too; where that one listens first,
this one cannot, and a helper that only waited for /healthz talked to the other server.
"""

from __future__ import annotations

import os

import pytest
import test_http
from helpers import free_port, listens_on
from test_http import Server

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")


def test_a_server_whose_port_another_server_took_starts_on_another(tmp_path, monkeypatch):
    first = Server(str(tmp_path / "first"), str(tmp_path / "first.log"))
    try:
        assert listens_on(first.proc.pid, first.port) is True
        ports = iter([first.port])
        monkeypatch.setattr(test_http, "free_port", lambda: next(ports, None) or free_port())
        second = Server(str(tmp_path / "second"), str(tmp_path / "second.log"))
        try:
            assert second.port != first.port
            assert listens_on(second.proc.pid, second.port) is True
            with second.client() as c:
                assert c.put("/v1/keys/mine", content=b"1").status_code == 201
            with first.client() as c:
                assert c.get("/v1/keys/mine").status_code == 404  # (the first server never saw it)
        finally:
            second.stop()
    finally:
        first.stop()
