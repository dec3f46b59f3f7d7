"""A client waiting long for a result sleeps, as one waiting on ``redis://`` does.

``get()`` on ``kvb://`` watches the store's change counter. It looked at it every 0.2-2 ms for the
whole wait: an idle ``get()`` woke about 450 times a second and took 1.5-2.5 % of a CPU, for as long
as the task ran (a web process with 40 threads waiting: a whole CPU). Now the first 0.1 s of a wait
is watched as closely as before, then the pause between two looks grows with the time waited (2 %
of it) up to 50 ms: a result is still seen within milliseconds of a short task, and within 50 ms of
a long one. These tests check the pauses a wait asks for (the arguments of its sleeps), not the
wall-clock times, which a loaded machine stretches (timing goals live in benchmarks/).
"""

from __future__ import annotations

import threading
import time
import uuid

import celery_helpers
import pytest
from celery.exceptions import TimeoutError as CeleryTimeoutError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


@pytest.fixture
def app(store_path):
    app = celery_helpers.make_app(f"kvb://{store_path}", "kvb-idle21")
    app.backend.mark_as_done("warm", 0)  # the store is open before the waits are timed
    return app


@pytest.fixture
def sleeps(monkeypatch):
    """``(time since the fixture began, seconds asked)`` of each sleep this thread started."""
    started, ident, real = time.monotonic(), threading.get_ident(), time.sleep
    times: list[tuple[float, float]] = []

    def counting_sleep(seconds):
        if threading.get_ident() == ident:
            times.append((time.monotonic() - started, seconds))
        real(seconds)

    monkeypatch.setattr(time, "sleep", counting_sleep)
    return times


@pytest.mark.parametrize("how", ["get", "get_many"])
def test_an_idle_wait_looks_at_the_store_a_few_times_a_second(app, sleeps, how):
    wait = {
        "get": lambda: app.AsyncResult("never").get(timeout=3),
        "get_many": lambda: list(app.backend.get_many(["never", "nor-this"], timeout=3)),
    }[how]
    with pytest.raises(CeleryTimeoutError):
        wait()
    last_second = [t for t, _ in sleeps if t >= 2.0]
    # 50 ms pauses: about 20 (every 2 ms: about 450); none longer than 50 ms.
    assert len(last_second) <= 40, len(last_second)
    assert max(seconds for _, seconds in sleeps) <= 0.05 + 1e-9


def _result_after(app, after: float):
    """What a get() returns for a result stored ``after`` seconds into it."""
    task_id = f"late-{uuid.uuid4()}"

    def finish():
        time.sleep(after)
        app.backend.mark_as_done(task_id, after)

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        return app.AsyncResult(task_id).get(timeout=30)
    finally:
        writer.join()


def test_the_first_tenth_of_a_second_is_watched_every_2_ms_at_most(app, sleeps):
    # Within the first 0.1 s the store is checked every 0.2-2 ms (Celery's own polling: 500 ms), so a
    # short task's result is seen within milliseconds.
    with pytest.raises(CeleryTimeoutError):
        app.AsyncResult("never").get(timeout=0.6)
    early = [seconds for t, seconds in sleeps if t < 0.09]
    assert early and max(early) <= 0.002 + 1e-9, early
    later = [seconds for t, seconds in sleeps if t >= 0.15]
    assert any(seconds > 0.002 for seconds in later), later  # (then the pauses grow)


def test_results_stored_during_a_wait_are_returned(app):
    assert _result_after(app, 0.03) == 0.03
    assert _result_after(app, 0.6) == 0.6


def test_writes_of_other_results_do_not_bring_the_short_pauses_back(app, sleeps):
    # Each write to the store ends a pause; the wait for a result still missing then goes on with the
    # pauses its length calls for (DB.wait_for_change's since=), not 0.2-2 ms anew after every write
    # of another task's result, which a busy store makes many times a second.
    written = threading.Event()
    stop = threading.Event()

    def others():
        n = 0
        while not stop.wait(0.1):
            app.backend.mark_as_done(f"other-{n}", n)
            n += 1
            written.set()

    writer = threading.Thread(target=others)
    writer.start()
    try:
        with pytest.raises(CeleryTimeoutError):
            app.backend.wait_for("never", timeout=2.5)
    finally:
        stop.set()
        writer.join()
    assert written.is_set()
    late = [seconds for t, seconds in sleeps if t >= 1.0]
    # (a few short ones: where a pause is cut to what is left of the wait)
    assert len([seconds for seconds in late if seconds < 0.002]) <= 3, late
