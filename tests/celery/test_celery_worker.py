"""End-to-end tests of the kvb:// result backend with real prefork workers and a redis-server broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from celery import chord, group, states

from kv_backend import DB

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(120)]

TIMEOUT = 30


def _side(env) -> DB:
    return DB(env.side_path)


def test_success_round_trip(celery_env):
    m = celery_env.app_module
    results = [m.add.delay(i, 1) for i in range(20)]
    assert [r.get(timeout=TIMEOUT) for r in results] == [i + 1 for i in range(20)]
    assert all(r.state == states.SUCCESS for r in results)
    # The result lives under Celery's usual key, with result_expires as its TTL.
    db = celery_env.app.backend.db
    key = b"celery-task-meta-" + results[0].id.encode()
    assert key in db
    ttl = db.ttl(key)
    assert ttl is not None and 3000 < ttl <= 3600


def test_sequential_round_trips(celery_env):
    m = celery_env.app_module
    for i in range(30):
        assert m.add.delay(i, i).get(timeout=TIMEOUT) == 2 * i


def test_failure_keeps_traceback(celery_env):
    m = celery_env.app_module
    r = m.fail.delay("boom-42")
    with pytest.raises(ValueError, match="boom-42"):
        r.get(timeout=TIMEOUT)
    assert r.state == states.FAILURE
    assert isinstance(r.result, ValueError)
    assert "ValueError: boom-42" in r.traceback
    assert "in fail" in r.traceback
    # result_failure_expires (600 s in the test app) is the TTL of failed results.
    ttl = celery_env.app.backend.db.ttl(b"celery-task-meta-" + r.id.encode())
    assert ttl is not None and 0 < ttl <= 600


def test_retry_then_success(celery_env):
    m = celery_env.app_module
    counter = f"attempts-{uuid.uuid4()}"
    r = m.flaky.delay(2, counter)
    assert r.get(timeout=TIMEOUT) == {"retries": 2}
    assert int(_side(celery_env).get(counter.encode())) == 3
    assert r.retries == 2  # result_extended records the retry count


def test_retry_exhausted_fails(celery_env):
    m = celery_env.app_module
    counter = f"attempts-{uuid.uuid4()}"
    r = m.flaky.apply_async((10, counter), retry=True)
    with pytest.raises(RuntimeError, match="attempt 5 failed"):
        r.get(timeout=TIMEOUT)
    assert int(_side(celery_env).get(counter.encode())) == 6  # the first try and 5 retries


def test_started_state_is_visible_at_once(celery_env):
    m = celery_env.app_module
    flag = f"flag-{uuid.uuid4()}"
    r = m.wait_flag.delay(flag)
    db = celery_env.app.backend.db
    # The worker child writes STARTED; the client sees it as soon as it lands.
    token = db.change_token()
    for _ in range(3000):
        if r.state == states.STARTED:
            break
        db.wait_for_change(token, 0.05)
        token = db.change_token()
    assert r.state == states.STARTED
    assert r.worker.startswith("kvbtest")
    _side(celery_env).put(flag.encode(), b"released")
    assert r.get(timeout=TIMEOUT) == "released"


def test_group(celery_env):
    m = celery_env.app_module
    g = group(m.add.s(i, i) for i in range(50)).apply_async()
    g.save()
    assert g.get(timeout=TIMEOUT) == [2 * i for i in range(50)]
    restored = celery_env.app.GroupResult.restore(g.id)
    assert [r.id for r in restored.results] == [r.id for r in g.results]
    assert restored.get(timeout=TIMEOUT) == [2 * i for i in range(50)]
    g.delete()
    assert celery_env.app.GroupResult.restore(g.id) is None


def test_chord_small(celery_env):
    m = celery_env.app_module
    r = chord(m.add.s(i, 1) for i in range(10))(m.tsum.s())
    assert r.get(timeout=TIMEOUT) == sum(i + 1 for i in range(10))


def test_chord_failure_propagates_to_callback(celery_env):
    m = celery_env.app_module
    r = chord([m.add.s(1, 1), m.fail.s("part failed")])(m.tsum.s())
    with pytest.raises(Exception, match="part failed"):
        r.get(timeout=TIMEOUT)  # raised from the failed header part as soon as that is known
    # The worker that ran the failing part then marks the callback failed: wait for that too.
    r.get(timeout=TIMEOUT, propagate=False)
    assert r.state == states.FAILURE
    assert "part failed" in str(r.result)


def test_chord_of_1000_parts_fires_callback_exactly_once(celery_env):
    m = celery_env.app_module
    counter = f"callback-runs-{uuid.uuid4()}"
    r = chord(m.part.s(i) for i in range(1000))(m.collect.s(counter))
    out = r.get(timeout=90)
    assert out["sum"] == sum(range(1000))
    assert out["runs"] == 1
    assert len(out["pids"]) >= 2  # the parts ran in several pool processes
    # Round-trip one more task through every pool process so a late duplicate
    # callback would have run by now; the counter must still say one.
    assert group(m.add.s(0, 0) for _ in range(16)).apply_async().get(timeout=TIMEOUT) == [0] * 16
    assert int(_side(celery_env).get(counter.encode())) == 1
    # The chord counter is cleaned up, and no chord_unlock polling task ever ran.
    assert b"chord-unlock-" + r.parent.id.encode() not in celery_env.app.backend.db
    assert "chord_unlock" not in celery_env.worker_log()


def test_result_extended(celery_env):
    m = celery_env.app_module
    r = m.echo.apply_async((1, "two"), {"three": 3})
    assert r.get(timeout=TIMEOUT) == {"args": [1, "two"], "kwargs": {"three": 3}}
    assert r.name == "kvb_celery_app.echo"
    assert r.args == [1, "two"]
    assert r.kwargs == {"three": 3}
    assert r.worker.startswith("kvbtest")
    assert r.queue == "celery"
    assert r.retries == 0
    assert r.date_done is not None


def test_forget(celery_env):
    m = celery_env.app_module
    r = m.add.delay(2, 3)
    assert r.get(timeout=TIMEOUT) == 5
    r.forget()
    assert b"celery-task-meta-" + r.id.encode() not in celery_env.app.backend.db
    assert celery_env.app.AsyncResult(r.id).state == states.PENDING


def test_expiry_ttl_written_by_worker(celery_env):
    # Workers give every result the result_expires TTL, so no cleanup task is needed;
    # the key then vanishes on its own (tested with short TTLs in test_celery_backend.py).
    m = celery_env.app_module
    r = m.add.delay(5, 5)
    assert r.get(timeout=TIMEOUT) == 10
    db = celery_env.app.backend.db
    key = b"celery-task-meta-" + r.id.encode()
    db.expire(key, 0.2)
    # Until a deadline, not a number of wake-ups: the worker may still be storing other results
    # (an earlier test's chord parts), each of which ends a wait at once.
    deadline = time.monotonic() + 10
    while key in db and time.monotonic() < deadline:
        db.wait_for_change(db.change_token(), 0.05)
    assert key not in db
    assert celery_env.app.AsyncResult(r.id).state == states.PENDING


_SECOND_CLIENT = """
import json, sys
import kvb_celery_app as m
ids = json.loads(sys.argv[1])
out = [m.app.AsyncResult(i).get(timeout=60) for i in ids]
print(json.dumps(out))
"""


def test_results_read_from_second_client_process(celery_env):
    m = celery_env.app_module
    done = [m.add.delay(i, 100) for i in range(5)]
    for r in done:
        r.get(timeout=TIMEOUT)
    # A second process waits on a task that cannot finish yet, then is woken by the worker's write.
    flag = f"flag-{uuid.uuid4()}"
    blocked = m.wait_flag.delay(flag)
    ids = [r.id for r in done] + [blocked.id]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SECOND_CLIENT, json.dumps(ids)],
        env=celery_env.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _side(celery_env).put(flag.encode(), b"from-the-side")
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out) == [i + 100 for i in range(5)] + ["from-the-side"]
