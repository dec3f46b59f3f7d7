"""More tests of the kvb:// Celery result backend: chords whose parts are delivered again late."""

from __future__ import annotations

import os
import random
import time
import uuid

import celery_helpers
import pytest
from celery import Celery, chain, chord, group
from celery.app.amqp import AMQP
from celery.result import ResultSet
from celery_helpers import CountingList, finish_part, make_chord
from helpers import fork_child
from kombu import Producer
from kombu.exceptions import OperationalError
from kv_backend_celery.backend import KVBackend

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(120)]


def make_app(url: str, **conf) -> Celery:
    return celery_helpers.make_app(url, "kvb-more9", **conf)


def _chord_keys(backend: KVBackend, gid: str) -> list[bytes]:
    """Every key the chord ``gid`` has in the store: counter, claim, part markers and saved group."""
    db = backend.db
    return [
        *db.keys(prefix=backend.get_key_for_chord(gid)),
        *db.keys(prefix=backend.get_key_for_group(gid)),
    ]


# ----------------------------------------------------- late redelivered parts


def test_part_delivered_again_after_the_chord_fired_leaves_nothing_behind(store_path, monkeypatch):
    # acks_late and a lost worker: a part is delivered again after the chord has fired and
    # been cleaned up. It used to start a new counter (1) and write its marker, both left
    # in the store until result_chord_expires / result_expires ended.
    backend = make_app(f"kvb://{store_path}", result_expires=100, result_chord_expires=6000).backend
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids:
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]
    assert _chord_keys(backend, gid) == []
    for i in reversed(ids):
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]
    assert _chord_keys(backend, gid) == []
    # The copies don't stretch the header results' lifetime back to the chord's (Celery 5.7+).
    assert backend.db.ttl(backend.get_key_for_task(ids[0])) <= 100


def test_chord_fires_once_and_leaves_nothing_when_processes_finish_and_redeliver_parts_at_once(
    store_path, monkeypatch
):
    # Four processes finish the parts of one chord at once and each delivers every part
    # again, in its own order, while the chord fires: one callback, and nothing left.
    backend = make_app(f"kvb://{store_path}").backend
    parts, procs = 24, 4
    sent_key = b"test-callbacks-sent"
    sent = CountingList(backend, sent_key)
    gid, ids, body, _ = make_chord(backend, monkeypatch, parts=parts, sent=sent)

    def child(n: int) -> None:
        rng = random.Random(n)
        for i in ids[n::procs]:
            finish_part(backend, gid, i, body)
        again = list(ids)
        rng.shuffle(again)
        for i in again:
            finish_part(backend, gid, i, body)

    pids = [fork_child(lambda n=n: child(n)) for n in range(procs)]
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert backend.db.get(sent_key) == b"1"
    assert _chord_keys(backend, gid) == []


# ------------------------------------- the callback sent, its sender lost


def _chord_backend(store_path: str, **conf) -> KVBackend:
    # A short join timeout makes the claim on a completed chord lapse quickly.
    backend = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.05, **conf).backend
    backend.chord_claim_min = 0.0
    return backend


def _completed_by_a_lost_process(backend: KVBackend, monkeypatch):
    """A chord whose last part was counted by a process that then died (its claim has lapsed)."""
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    backend.mark_as_done(ids[-1], 1)
    assert backend._count_part(backend.get_key_for_chord(gid), gid, ids[-1], 60, b"lost") == 0
    return gid, ids, body, sent


@pytest.mark.parametrize("state", ["SUCCESS", "FAILURE"])
def test_finished_callback_is_not_sent_again_by_a_redelivered_part(store_path, monkeypatch, state):
    # The process that completed the chord sent the callback (or stored the ChordError of
    # a failed header), then was killed before clearing the chord's keys. The part delivered
    # again after the claim lapsed used to send the callback a second time; the callback's
    # finished state (its result, the ChordError) proves it was sent, so the chord is now
    # only cleared.
    backend = _chord_backend(store_path)
    gid, ids, body, sent = _completed_by_a_lost_process(backend, monkeypatch)
    if state == "FAILURE":
        backend.mark_as_failure(body.id, RuntimeError("the chord's error"))
    else:
        backend.mark_as_done(body.id, 3)
    time.sleep(backend._chord_claim_ttl() + 0.05)  # the lost process's claim lapses
    finish_part(backend, gid, ids[0], body)
    assert sent == []
    assert backend.get_task_meta(body.id)["status"] == state
    assert _chord_keys(backend, gid) == []
    for i in ids:  # later copies neither send it nor leave anything
        finish_part(backend, gid, i, body)
    assert sent == []
    assert _chord_keys(backend, gid) == []


@pytest.mark.parametrize("state", [None, "STARTED", "PROGRESS"])
def test_unfinished_callback_is_sent_by_a_redelivered_part(store_path, monkeypatch, state):
    # No finished state: the lost process may have died before sending the callback, so it
    # is sent (never lost). An unfinished state proves nothing: a callback that replaces a
    # task (Task.replace() with a group) has that task's id, and finds its STARTED there.
    backend = _chord_backend(store_path)
    gid, ids, body, sent = _completed_by_a_lost_process(backend, monkeypatch)
    if state:
        backend.store_result(body.id, None, state)
    time.sleep(backend._chord_claim_ttl() + 0.05)
    finish_part(backend, gid, ids[0], body)
    assert sent == [([1, 1, 1],)]
    assert _chord_keys(backend, gid) == []


@pytest.mark.parametrize("state", ["STARTED", "SUCCESS"])
def test_completed_chord_sends_its_callback_whatever_state_its_id_has(store_path, monkeypatch, state):
    # Only a part that took a chord over looks at the callback's state: the part that
    # completes it sends the callback even if its id already has a state.
    backend = make_app(f"kvb://{store_path}").backend
    gid, ids, body, sent = make_chord(backend, monkeypatch)
    backend.store_result(body.id, None, state)
    for i in ids:
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, 1],)]
    assert _chord_keys(backend, gid) == []


def test_chord_with_a_header_task_replaced_by_a_group_fires_with_workers(celery_env):
    # Task.replace() with a group makes a chord whose callback takes the replaced task's
    # id, where task_track_started left STARTED: that callback must still be sent.
    m = celery_env.app_module
    r = chord([m.replace_with_group.s(3), m.add.s(1, 1)])(m.echo.s())
    assert r.get(timeout=30) == {"args": [[[0, 1, 2], 2]], "kwargs": {}}


# ---------------------------------------------- nested groups in the header


def test_chord_with_a_group_nested_in_its_header_leaves_nothing_behind(store_path, monkeypatch):
    # chord([a, b, chain(x, group(c, d))], body): the nested group's tasks are parts of the
    # chord (counted under its id), and Celery's canvas also announces the nested group's
    # own size. Their markers and that counter were left for result_chord_expires, and the
    # nested parts' results kept the chord's lifetime.
    backend = make_app(f"kvb://{store_path}", result_expires=100, result_chord_expires=6000).backend
    from celery.canvas import Signature

    app = backend.app

    @app.task(name="more9.echo", shared=False)
    def echo(values):  # pragma: no cover - never run, only signed
        return values

    sent: list = []
    monkeypatch.setattr(Signature, "delay", lambda self, *args, **kw: sent.append(args))
    gid, inner = str(uuid.uuid4()), str(uuid.uuid4())
    top, nested = [f"{gid}-a", f"{gid}-b"], [f"{inner}-c", f"{inner}-d"]
    body = echo.s()
    body.freeze()
    inner_group = app.GroupResult(inner, [app.AsyncResult(i) for i in nested])
    header = [app.AsyncResult(i) for i in top] + [inner_group]
    backend.apply_chord((gid, header), body)
    backend.set_chord_size(gid, 4)
    for i in top:
        finish_part(backend, gid, i, body)
    backend.set_chord_size(inner, 2)  # the nested group, applied by the chain's first task
    for i in nested:
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, [1, 1]],)]
    assert _chord_keys(backend, gid) == []
    assert _chord_keys(backend, inner) == []
    for i in nested:  # the chord is over: its parts' results have their normal lifetime
        assert backend.db.ttl(backend.get_key_for_task(i)) <= 100
    for i in top + nested:  # late copies leave nothing either
        finish_part(backend, gid, i, body)
    assert sent == [([1, 1, [1, 1]],)]
    assert _chord_keys(backend, gid) == [] and _chord_keys(backend, inner) == []


def test_chord_with_a_group_nested_in_its_header_leaves_nothing_with_workers(celery_env):
    m = celery_env.app_module
    backend = celery_env.app.backend
    header = [m.add.s(1, 1), chain(m.add.s(2, 2), group(m.add.si(3, 3), m.add.si(4, 4)))]
    r = chord(header)(m.echo.s())
    assert r.get(timeout=30) == {"args": [[2, [6, 8]]], "kwargs": {}}
    gid = r.parent.id
    nested = [x.id for x in r.parent.results if isinstance(x, ResultSet)]
    assert nested
    deadline = time.monotonic() + 10  # the callback can run before the chord's keys are cleared
    while left := [k for g in [gid, *nested] for k in _chord_keys(backend, g)]:
        assert time.monotonic() < deadline, left
        time.sleep(0.02)


# ------------------------------------------------- publishing the callback


@pytest.mark.skipif(
    not hasattr(AMQP, "_retry_publish"),
    reason="before Celery 5.7 no backend retries a refused callback publish",
)
# Sending a task finalizes the app, which then takes in the shared tasks other tests declared.
@pytest.mark.filterwarnings("ignore:Task name .* is already registered")
def test_a_refused_callback_publish_is_retried_as_with_celerys_own_backends(store_path, monkeypatch):
    # The broker refuses the chord callback's first publish (a connection blip). Celery 5.7's
    # own backends retry it, reconnecting; here it failed the whole chord with a ChordError.
    policy = {"max_retries": 3, "interval_start": 0, "interval_step": 0, "interval_max": 0}
    app = make_app(f"kvb://{store_path}", task_publish_retry_policy=policy)
    backend = app.backend

    @app.task(name="more9.sent_tsum", shared=False)
    def tsum(values):  # pragma: no cover - never run, only sent
        return sum(values)

    published: list = []
    publish = Producer.publish

    def refuse_once(self, body, **kwargs):
        published.append(kwargs.get("headers", {}).get("task"))
        if len(published) == 1:
            raise OperationalError("connection refused (once)")
        return publish(self, body, **kwargs)

    monkeypatch.setattr(Producer, "publish", refuse_once)
    gid = str(uuid.uuid4())
    ids = [f"{gid}-{i}" for i in range(2)]
    body = tsum.s()
    body.freeze()
    backend.apply_chord((gid, [app.AsyncResult(i) for i in ids]), body)
    backend.set_chord_size(gid, len(ids))
    for i in ids:
        finish_part(backend, gid, i, body)
    assert published == ["more9.sent_tsum", "more9.sent_tsum"]
    assert backend.get_task_meta(body.id)["status"] == "PENDING"  # sent, waiting for a worker
    assert _chord_keys(backend, gid) == []
