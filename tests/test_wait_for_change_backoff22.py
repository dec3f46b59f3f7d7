"""DB.wait_for_change's pauses between two looks at the change counter.

It checked every 0.2 ms doubling to 2 ms, and every 2 ms for as long as it waited: an idle blocked
``blpop()`` (``bzpopmin()``, ``xread(block=...)``), which waits through it, woke some 400 times a
second and took 1.5 % of a CPU for nothing (8 s idle: 3,115 context switches and 0.126 s of CPU; now
about 280 and 0.016 s). The first 0.1 s of a wait keeps the fast checks (a write is seen within a
millisecond or two); later a wait checks every 2 % of the time waited so far, at most every 50 ms.
The pauses are those the wait asks of ``time.sleep`` on a clock that only the sleeps move.
"""

from __future__ import annotations

import time

import pytest

from kv_backend import DB
from kv_backend.structures import Structures


class Clock:
    """``time.monotonic`` and ``time.sleep`` of a clock that moves only when slept on; ``then(at,
    action)`` runs ``action`` at the first sleep that ends at or past ``at`` seconds."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        self.start = self.now
        self.slept: list[tuple[float, float]] = []  # (seconds waited before it, pause)
        self.actions: list[tuple[float, object]] = []
        monkeypatch.setattr(time, "monotonic", lambda: self.now)
        monkeypatch.setattr(time, "sleep", self.sleep)

    def then(self, at: float, action) -> None:
        self.actions.append((at, action))

    def sleep(self, seconds: float) -> None:
        self.slept.append((self.now - self.start, seconds))
        self.now += seconds
        for at, action in list(self.actions):
            if self.now - self.start >= at:
                self.actions.remove((at, action))
                action()


@pytest.fixture
def db(tmp_path):
    with DB(str(tmp_path / "a")) as db:
        yield db


def _check_schedule(slept: list[tuple[float, float]]) -> None:
    assert [round(p * 1e4) for _, p in slept[:5]] == [2, 4, 8, 16, 20]  # the first ones, as before
    for i, (waited, pause) in enumerate(slept):
        if waited < 0.1 - 1e-9:
            assert pause <= 0.002 + 1e-12, (waited, pause)  # a write is seen within 2 ms
        elif i < len(slept) - 1:
            assert pause == pytest.approx(min(0.05, waited * 0.02)), (waited, pause)
        else:  # the last one: cut short where a timeout ends it
            assert pause <= min(0.05, waited * 0.02) + 1e-12, (waited, pause)
    assert max(p for _, p in slept) <= 0.05


def test_an_idle_wait_checks_less_and_less_often(db, monkeypatch):
    clock = Clock(monkeypatch)
    assert db.wait_for_change(db.change_token(), timeout=10) is False
    _check_schedule(clock.slept)
    assert clock.now - clock.start == pytest.approx(10)  # the last pause ends at the timeout
    assert max(p for _, p in clock.slept) == pytest.approx(0.05)  # reached, and kept
    assert len(clock.slept) < 400  # every 2 ms all along: 5,000 looks


def test_a_write_late_in_a_wait_ends_it_at_the_next_look(db, tmp_path, monkeypatch):
    with DB(str(tmp_path / "a")) as writer:
        clock = Clock(monkeypatch)
        clock.then(5.0, lambda: writer.put(b"k", b"v"))
        assert db.wait_for_change(db.change_token()) is True  # (no timeout: for ever)
    _check_schedule(clock.slept)
    assert 5.0 <= clock.now - clock.start <= 5.05


def test_a_write_early_in_a_wait_is_seen_within_2_ms(db, tmp_path, monkeypatch):
    with DB(str(tmp_path / "a")) as writer:
        clock = Clock(monkeypatch)
        clock.then(0.05, lambda: writer.put(b"k", b"v"))
        assert db.wait_for_change(db.change_token(), timeout=60) is True
    assert 0.05 <= clock.now - clock.start <= 0.052


def test_an_idle_blocking_pop_waits_the_same_way(tmp_path, monkeypatch):
    with Structures(str(tmp_path / "kv")) as s, Structures(str(tmp_path / "kv")) as other:
        clock = Clock(monkeypatch)
        assert s.blpop("l", timeout=3) is None
        assert clock.now - clock.start == pytest.approx(3)
        _check_schedule(clock.slept)
        clock = Clock(monkeypatch)
        clock.then(2.0, lambda: other.rpush("l", "x"))
        assert s.blpop("l", timeout=0) == (b"l", b"x")
        assert 2.0 <= clock.now - clock.start <= 2.05
