"""``DB.wait_for_change(token, timeout, since=...)``: a caller that waits again after a change it did
not want (another key written, a result not yet the final one) passes when its own wait began, and
the pauses between two looks at the change counter grow from then, not from 0.2 ms again after every
such change. The pauses are checked (the arguments of the sleeps), not wall-clock times."""

from __future__ import annotations

import time

import pytest
from helpers import spawn_python

from kv_backend import DB
from kv_backend.errors import InvalidArgumentError


def _pauses(monkeypatch, db: DB, writer: DB, **kwargs) -> list[float]:
    """The pauses of a wait that a write ends after its fourth pause."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 4:
            writer.put(b"k", b"v")

    monkeypatch.setattr(time, "sleep", sleep)
    assert db.wait_for_change(db.change_token(), timeout=600, **kwargs) is True
    monkeypatch.undo()
    return slept


def test_pauses_grow_from_the_callers_start(store_path, monkeypatch):
    with DB(store_path) as waiter, DB(store_path) as writer:
        fresh = _pauses(monkeypatch, waiter, writer)
        assert [round(s * 1e4) for s in fresh] == [2, 4, 8, 16]  # 0.2 ms doubling
        ten_seconds_in = _pauses(monkeypatch, waiter, writer, since=time.monotonic() - 10)
        assert ten_seconds_in == [0.05] * 4  # 2 % of 10 s, at most 50 ms
        one_second_in = _pauses(monkeypatch, waiter, writer, since=time.monotonic() - 1)
        assert all(0.02 <= s < 0.021 for s in one_second_in), one_second_in  # 2 % of 1 s and a little
        later = _pauses(monkeypatch, waiter, writer, since=time.monotonic() + 100)  # counts as now
        assert [round(s * 1e4) for s in later] == [2, 4, 8, 16]


def test_a_write_by_another_process_ends_a_wait_with_since(store_path):
    with DB(store_path) as db:
        token = db.change_token()
        child = spawn_python(
            """
            import sys
            from kv_backend import DB
            with DB(sys.argv[1]) as db:
                db.put(b"from", b"child")
            """,
            store_path,
        )
        try:
            assert db.wait_for_change(token, timeout=60, since=time.monotonic() - 5) is True
            assert db.get(b"from") == b"child"
        finally:
            assert child.wait(60) == 0
        assert db.wait_for_change(db.change_token(), timeout=0.01, since=time.monotonic() - 5) is False


@pytest.mark.parametrize("since", ["now", float("nan"), True, [1.0]])
def test_since_must_be_a_monotonic_time(db, since):
    with pytest.raises(InvalidArgumentError, match=r"since must be a time\.monotonic\(\) value"):
        db.wait_for_change(db.change_token(), 0, since=since)
