"""kv_backend.server.serve (kvb serve) run in a program's main thread puts the program's SIGTERM, SIGINT
and SIGHUP handlers back when it returns, as after a start that fails: it left its own SIGTERM handler,
so a process the program forks later (a multiprocessing pool's child) ignored the SIGTERM that ends it."""

from __future__ import annotations

import signal
import socket
import threading

import pytest

from kv_backend.errors import KVError
from kv_backend.server.resp import serve

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _own(signum: int, frame: object) -> None:  # (the program's own handler)
    pass


@pytest.fixture
def handlers():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set in the main thread only")
    before = {s: signal.getsignal(s) for s in SIGNALS}
    try:
        yield before
    finally:
        for s, h in before.items():
            signal.signal(s, h)


@pytest.mark.parametrize("own", [False, True])
def test_a_start_that_fails_leaves_the_handlers_as_they_were(tmp_path, handlers, own):
    if own:
        for s in SIGNALS:
            signal.signal(s, _own)
    expected = {s: signal.getsignal(s) for s in SIGNALS}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(KVError, match="cannot listen"):
            serve(str(tmp_path / "s"), port=busy.getsockname()[1])
    assert {s: signal.getsignal(s) for s in SIGNALS} == expected


def test_a_server_stopped_by_sigterm_leaves_the_handlers_as_they_were(tmp_path, handlers):
    for s in SIGNALS:
        signal.signal(s, _own)
    timer = threading.Timer(1.0, signal.raise_signal, (signal.SIGTERM,))
    timer.start()
    try:
        assert serve(str(tmp_path / "s"), port=0) == 0
    finally:
        timer.cancel()
    assert {s: signal.getsignal(s) for s in SIGNALS} == dict.fromkeys(SIGNALS, _own)
