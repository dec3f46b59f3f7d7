"""The test helpers that start a server on a port the system gave as free: a parallel test (another
pytest worker, another checkout's run) may be given that port too and listen there first. Each helper
must end up on a server of its own, never talk to that other one, and never hang waiting for it."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import child_env, listens_on, stop_process

#: A stranger: an HTTP server (Python's own) on the port given, answering every GET.
STRANGER_HTTP = (
    "import http.server, sys\n"
    "http.server.test(http.server.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind='127.0.0.1')\n"
)


def first_then(taken: int, real: Callable[[], int]) -> Callable[[], int]:
    """A free_port that hands out ``taken`` first (as the system may, to two tests), then real ones."""
    given = [taken]

    def port() -> int:
        return given.pop() if given else real()

    return port


def in_time(fn: Callable[[], Any], timeout: float = 60) -> Any:
    """``fn()``'s result, run in a thread; an AssertionError if it has not returned in ``timeout`` s."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(timeout)
    assert out, f"{fn} did not return in {timeout} s"
    return out[0]


@pytest.fixture
def stranger_http(tmp_path) -> Iterator[int]:
    """The port of an HTTP server of another process (listening before the test goes on)."""
    from helpers import free_port, wait_for

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", STRANGER_HTTP, str(port)],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: listens_on(proc.pid, port) or proc.poll() is not None, 30, "the stranger listening")
        assert proc.poll() is None, "the stranger could not listen"
        yield port
    finally:
        stop_process(proc)


def test_moto_s3_server_whose_port_another_took_is_its_own(stranger_http, monkeypatch):
    pytest.importorskip("moto")
    pytest.importorskip("flask")
    import urllib.request

    import helpers
    import s3_helpers

    monkeypatch.setattr(s3_helpers, "free_port", first_then(stranger_http, helpers.free_port), raising=False)

    def start() -> tuple[str, bytes]:
        with s3_helpers.moto_server() as url, urllib.request.urlopen(url + "/", timeout=10) as answer:
            return url, answer.read()  # (S3's ListBuckets)

    url, body = in_time(start)
    port = int(url.rsplit(":", 1)[1])
    assert port != stranger_http
    assert b"ListAllMyBucketsResult" in body, body
