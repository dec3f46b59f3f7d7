"""``on_message`` of a group's wait sees each state its tasks store, as with ``redis://``.

``GroupResult.get(on_message=...)``, ``join_native(on_message=...)`` and ``backend.get_many(...,
on_message=...)`` are how a client follows the progress of a group (``STARTED``, ``update_state()``
progress states, ``RETRY``). ``redis://`` calls ``on_message`` with every state message of the
group's tasks; ``kvb://`` called it only with the finished ones, so a progress display never moved
until the tasks were done.
"""

from __future__ import annotations

import threading
import time

import celery_helpers
import pytest
from celery.result import GroupResult

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]

TIMEOUT = 20
IDS = ["g21-a", "g21-b"]


@pytest.fixture
def app(store_path):
    return celery_helpers.make_app(f"kvb://{store_path}", "kvb-group-msg21")


def _run_group(app, wait):
    """Store STARTED, two PROGRESS states and SUCCESS for each task, one state per delivered
    message, while ``wait(on_message)`` waits; return what it returned and the states it saw."""
    backend = app.backend
    seen: list = []
    delivered = threading.Semaphore(0)

    def on_message(meta):
        seen.append((meta["task_id"], meta["status"], meta["result"]))
        delivered.release()

    def run_tasks():
        for task_id in IDS:
            backend.store_result(task_id, {"pid": 1}, "STARTED")
            assert delivered.acquire(timeout=TIMEOUT)
            for i in range(2):
                backend.store_result(task_id, {"done": i}, "PROGRESS")
                assert delivered.acquire(timeout=TIMEOUT)
        for n, task_id in enumerate(IDS):
            backend.mark_as_done(task_id, n * 10)
            assert delivered.acquire(timeout=TIMEOUT)

    worker = threading.Thread(target=run_tasks)
    worker.start()
    try:
        value = wait(on_message)
    finally:
        worker.join()
    return value, seen


EXPECTED = [
    *(
        (task_id, status, result)
        for task_id in IDS
        for status, result in (("STARTED", {"pid": 1}), ("PROGRESS", {"done": 0}), ("PROGRESS", {"done": 1}))
    ),
    ("g21-a", "SUCCESS", 0),
    ("g21-b", "SUCCESS", 10),
]


@pytest.mark.parametrize("how", ["get", "join_native"])
def test_group_wait_calls_on_message_with_each_state(app, how):
    group = GroupResult("g21", [app.AsyncResult(t) for t in IDS], app=app)
    value, seen = _run_group(app, lambda cb: getattr(group, how)(timeout=TIMEOUT, on_message=cb))
    assert value == [0, 10]
    assert seen == EXPECTED


def test_get_many_calls_on_message_with_each_state(app):
    value, seen = _run_group(app, lambda cb: dict(app.backend.get_many(IDS, timeout=TIMEOUT, on_message=cb)))
    assert {task_id: meta["result"] for task_id, meta in value.items()} == {"g21-a": 0, "g21-b": 10}
    assert seen == EXPECTED


def test_a_state_seen_once_is_not_delivered_again(app):
    # Writes of other keys wake the wait: a task's state is delivered once, not at every wake-up.
    backend = app.backend
    backend.store_result("g21-a", {"pid": 1}, "STARTED")
    backend.mark_as_done("g21-b", 1)

    def other_writes_then_done():
        for i in range(5):
            time.sleep(0.02)
            backend.set(f"unrelated-{i}", b"x")
        backend.mark_as_done("g21-a", 2)

    seen: list = []
    writer = threading.Thread(target=other_writes_then_done)
    writer.start()
    try:
        done = dict(backend.get_many(["g21-a", "g21-b"], timeout=TIMEOUT, on_message=seen.append))
    finally:
        writer.join()
    assert sorted(done) == ["g21-a", "g21-b"]
    # The first read sees both (in either order), the wake-ups nothing new, the last the SUCCESS.
    assert sorted((m["task_id"], m["status"]) for m in seen[:2]) == [
        ("g21-a", "STARTED"),
        ("g21-b", "SUCCESS"),
    ]
    assert [(m["task_id"], m["status"]) for m in seen[2:]] == [("g21-a", "SUCCESS")]
