"""A blocking pop (``blpop()``, ``bzpopmin()``, ``xread(block=...)`` without a server) whose wait other
keys' writes keep ending: its pauses between two looks at the store grow from the start of the pop
(``DB.wait_for_change``'s ``since=``), not from 0.2 ms again after each such write, which made a pop
blocked on a busy store look some 400 times a second for as long as it waited."""

from __future__ import annotations

import pytest
from test_wait_for_change_backoff22 import Clock

from kv_backend.structures import Structures


def test_writes_of_other_keys_do_not_bring_the_short_pauses_back(tmp_path, monkeypatch):
    with Structures(str(tmp_path / "kv")) as s, Structures(str(tmp_path / "kv")) as other:
        clock = Clock(monkeypatch)
        for i in range(1, 40):  # another key written every 0.1 s for 4 s
            clock.then(i / 10, lambda i=i: other.set("busy", str(i)))
        clock.then(4.0, lambda: other.rpush("l", "x"))
        assert s.blpop("l", timeout=0) == (b"l", b"x")
        assert 4.0 <= clock.now - clock.start <= 4.05  # seen at the next look: at most 50 ms late
        late = [pause for waited, pause in clock.slept if waited >= 1.0]
        assert late, clock.slept
        # One second into the pop, every pause is 2 % of the time waited (cut short only by the end
        # of a wait): no 0.2-2 ms pause after each write of "busy".
        assert min(late) >= 0.0199, sorted(late)[:5]
        assert len(clock.slept) < 400  # about 250; restarting at 0.2 ms after each write: about 2,100


def test_a_timeout_still_ends_the_pop_on_time(tmp_path, monkeypatch):
    with Structures(str(tmp_path / "kv")) as s, Structures(str(tmp_path / "kv")) as other:
        clock = Clock(monkeypatch)
        for i in range(1, 20):
            clock.then(i / 10, lambda i=i: other.set("busy", str(i)))
        assert s.blpop("l", timeout=2.5) is None
        assert clock.now - clock.start == pytest.approx(2.5)
