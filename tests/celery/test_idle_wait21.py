"""A client waiting long for a result sleeps, as one waiting on ``redis://`` does.

``get()`` on ``kvb://`` watches the store's change counter. It looked at it every 0.2-2 ms for the
whole wait: an idle ``get()`` woke about 450 times a second and took 1.5-2.5 % of a CPU, for as long
as the task ran (a web process with 40 threads waiting: a whole CPU). Now the first 0.1 s of a wait
is watched as closely as before, then the pause between two looks grows with the time waited (2 %
of it) up to 50 ms: a result is still seen within milliseconds of a short task, and within 50 ms of
a long one.
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
    """The times (since the fixture began) at which this thread started a sleep."""
    started, ident, real = time.monotonic(), threading.get_ident(), time.sleep
    times: list[float] = []

    def counting_sleep(seconds):
        if threading.get_ident() == ident:
            times.append(time.monotonic() - started)
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
    last_second = [t for t in sleeps if t >= 2.0]
    # 50 ms pauses: about 20 (every 2 ms: about 450).
    assert 5 <= len(last_second) <= 40, len(last_second)


def _latency(app, after: float) -> float:
    """Seconds between a result stored ``after`` seconds into a get() and that get() returning."""
    stored: list[float] = []
    task_id = f"late-{uuid.uuid4()}"

    def finish():
        time.sleep(after)
        stored.append(time.monotonic())
        app.backend.mark_as_done(task_id, after)

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        assert app.AsyncResult(task_id).get(timeout=30) == after
        return time.monotonic() - stored[0]
    finally:
        writer.join()


def test_a_short_task_is_still_seen_at_once(app):
    # Within the first 0.1 s the store is checked every 0.2-2 ms (Celery's own polling: 500 ms).
    lat = [_latency(app, 0.03) for _ in range(3)]
    assert min(lat) < 0.02, lat


def test_a_long_task_is_seen_within_50_ms(app):
    assert _latency(app, 1.5) < 0.05 + 0.1  # the longest pause, and room for a busy machine


def test_a_zero_share_checks_every_2_ms_all_along(app, monkeypatch):
    # wait_poll_share = 0 gives the former behaviour (the engine's checks every 0.2-2 ms) back, no error.
    monkeypatch.setattr(type(app.backend), "wait_poll_share", 0)
    assert _latency(app, 0.3) < 0.1
