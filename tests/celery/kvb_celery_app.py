"""Celery app used by the kvb:// result backend tests (the worker runs it with ``-A kvb_celery_app``).

The broker, the result backend and a side store (for flags and counters the
tests and tasks share) come from the environment, so the test process and
the worker subprocesses build the same app.
"""

from __future__ import annotations

import os
import time

from celery import Celery, group

from kv_backend import DB

BROKER = os.environ.get("KVB_TEST_BROKER", "memory://")
BACKEND = os.environ.get("KVB_TEST_BACKEND", "kvb:///tmp/kvb-celery-test-results")
SIDE = os.environ.get("KVB_TEST_SIDE", "/tmp/kvb-celery-test-side")

app = Celery("kvb_celery_app", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_track_started=True,
    result_extended=True,
    result_expires=3600,
    result_failure_expires=600,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=4,
    worker_hijack_root_logger=False,
)

_side: DB | None = None


def side() -> DB:
    """The side store, opened once per process."""
    global _side
    if _side is None:
        _side = DB(SIDE)
    return _side


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(bind=True, max_retries=5)
def flaky(self, failures: int, counter: str) -> dict:
    """Fail ``failures`` times (retrying at once), then succeed."""
    side().incr(counter.encode())
    if self.request.retries < failures:
        raise self.retry(exc=RuntimeError(f"attempt {self.request.retries} failed"), countdown=0)
    return {"retries": self.request.retries}


@app.task
def part(i: int) -> list:
    """A chord part: its number and the pid of the pool process that ran it."""
    return [i, os.getpid()]


@app.task
def collect(results: list, counter: str) -> dict:
    """Chord callback: counts its own runs in the side store."""
    runs = side().incr(counter.encode())
    return {"sum": sum(r[0] for r in results), "pids": sorted({r[1] for r in results}), "runs": runs}


@app.task
def tsum(values: list) -> int:
    return sum(values)


@app.task
def wait_flag(name: str, timeout: float = 30.0) -> str:
    """Stay STARTED until the test sets ``name`` in the side store."""
    db = side()
    deadline = time.monotonic() + timeout
    while True:
        token = db.change_token()
        value = db.get(name.encode())
        if value is not None:
            return value.decode()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"flag {name} never set")
        db.wait_for_change(token, min(left, 1.0))


@app.task
def echo(*args, **kwargs) -> dict:
    return {"args": list(args), "kwargs": kwargs}


@app.task(bind=True)
def replace_with_group(self, n: int):
    """Replace this task with a group of ``n`` additions (Celery makes it a chord of its own)."""
    return self.replace(group(add.s(i, 0) for i in range(n)))
