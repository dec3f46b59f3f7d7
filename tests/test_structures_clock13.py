"""In-process blocking calls measure their timeout as a duration (#7).

Structures' blocking pops took their deadline from the wall clock: set back by an hour (NTP, an
operator) during a 0.05 s BLPOP, the call waited an hour. (kvb serve keeps Redis's own rule for
its clients; this is the Python API, whose timeout is a number of seconds to wait.)
"""

from __future__ import annotations

import threading
import time

import kv_backend.structures.keyspace as keyspace
from kv_backend.structures import Structures


def test_a_blocking_pop_times_out_on_time_when_the_wall_clock_jumps_back(tmp_path, monkeypatch):
    real = time.time
    calls = [0]

    def jumping() -> float:
        calls[0] += 1
        return real() - (3600.0 if calls[0] > 1 else 0.0)

    monkeypatch.setattr(keyspace, "_time", jumping)
    with Structures(str(tmp_path / "kv")) as s:
        result: list[object] = []
        waiter = threading.Thread(target=lambda: result.append(s.blpop(["q"], timeout=0.05)))
        waiter.start()
        waiter.join(30)  # far short of the hour the clock went back: the wait did not follow it
        timed_out = not waiter.is_alive()
        s.rpush("q", "x")  # ends the wait either way
        waiter.join(30)
        assert timed_out and result == [None]
        assert s.blpop(["q"], timeout=0.05) == (b"q", b"x")  # a pop that finds an element at once
