"""Review of the stuck-chord recovery: where its thread runs, what it stores and sends, and its list.

Each test proves a defect found in the recovery that landed with #6.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import celery_helpers
import pytest
from celery import Celery
from celery.app.log import TaskFormatter
from celery.app.task import Context
from helpers import exit_code, fork_child
from kv_backend_celery.backend import KVBackend

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(60),
    # Sending a task finalizes the app, which then takes in the shared tasks other tests declared.
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]


def make_app(url: str, **conf) -> Celery:
    return celery_helpers.make_app(url, "kvb-review9", **conf)


def _in_child(body) -> None:
    """Run ``body`` in a forked child (a daemon thread must not outlive the test); assert it passed."""
    assert exit_code(fork_child(body)) == 0


def _recovery_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kvb-chord-recovery"]


# ------------------------------------------------------------- where it runs


def test_pool_child_that_loads_the_backend_after_its_start_runs_the_recovery(store_path):
    # `celery -q worker` prints no banner, so nothing loads this module before the pool
    # forks: no child had a worker_process_init handler, and a chord stuck while no
    # worker ran was only finished once some child ran a chord part (maybe never).
    # A child now starts the recovery when it builds its backend (its first task).
    def body():
        from celery.concurrency import prefork

        app = make_app(f"kvb://{store_path}")
        prefork._process_hostname = "w@h"  # what Celery's process initializer sets in a pool child
        assert _recovery_threads() == []
        app.backend  # noqa: B018 - the first task of the child builds it
        assert len(_recovery_threads()) == 1
        threading.Thread(target=lambda: app.backend).start()  # other threads' backends: no more
        time.sleep(0.05)
        assert len(_recovery_threads()) == 1
        # Not in processes outside a pool child (clients, web processes, the worker's main process).
        prefork._process_hostname = None
        other = make_app(f"kvb://{store_path}")
        other.backend  # noqa: B018
        assert len(_recovery_threads()) == 1

    _in_child(body)


# ------------------------------------------------------ what the recovery sends


def _capture_sends(app: Celery) -> list[dict]:
    """Record what each task message sent by ``app`` carries from its sender (not published)."""
    sent: list[dict] = []

    def send_task_message(producer, name, message, **options):
        headers = message.headers
        sent.append(
            {
                "id": headers["id"],
                "root_id": headers.get("root_id"),
                "parent_id": headers.get("parent_id"),
                "priority": options.get("priority"),
            }
        )

    app.amqp.send_task_message = send_task_message
    return sent


def _chord_in_worker_task(app: Celery, backend: KVBackend, registered: bool = True, parts: int = 2):
    """A chord whose parts finish inside a (simulated) worker task, as they do in a pool process."""
    from celery._state import _task_stack

    @app.task(name=f"review9.part.{uuid.uuid4()}", shared=False)
    def part():  # pragma: no cover - never run, only its request is used
        return 1

    @app.task(name=f"review9.tsum.{uuid.uuid4()}", shared=False)
    def tsum(values):  # pragma: no cover - never run, only signed
        return sum(values)

    gid = str(uuid.uuid4())
    ids = [f"{gid}-{i}" for i in range(parts)]
    body = (tsum.s() if registered else app.signature(f"elsewhere.{uuid.uuid4()}")).set(queue="callbacks")
    body.freeze()
    backend.apply_chord((gid, [app.AsyncResult(i) for i in ids]), body)
    backend.set_chord_size(gid, parts)

    def finish(task_id: str, count=None) -> None:
        """Run part ``task_id`` as a worker does (the task on the stack); ``count`` replaces the counting."""
        part.push_request(
            id=task_id, root_id="the-root", group=gid, delivery_info={"priority": 7}, called_directly=False
        )
        _task_stack.push(part)
        try:
            request = Context(id=task_id, group=gid, chord=dict(body), root_id="the-root")
            if count is None:
                backend.mark_as_done(task_id, 1, request=request)
            else:
                backend.mark_as_done(task_id, 1)
                count(request)
        finally:
            _task_stack.pop()
            part.pop_request()

    finish.task_name = part.name  # type: ignore[attr-defined]
    return gid, ids, body, finish


@pytest.mark.parametrize("registered", [True, False])
def test_recovered_callback_keeps_the_parent_root_and_priority_the_original_send_gives_it(
    store_path, registered
):
    # Sent from the part that completes the chord, the callback's message names that part
    # as its parent and root and (task_inherit_parent_priority, a callback task this app
    # does not know) takes its priority. The recovery sends it from a thread that runs no
    # task: it lost them.
    app = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.05, task_inherit_parent_priority=True)
    backend = app.backend
    backend.chord_claim_min = 0.0
    sent = _capture_sends(app)

    gid, ids, body, finish = _chord_in_worker_task(app, backend, registered)
    for i in ids:
        finish(i)
    priority = None if registered else 7  # a known task's own (None) priority is not replaced
    assert sent == [{"id": body.id, "root_id": "the-root", "parent_id": ids[-1], "priority": priority}]
    original = sent.pop()

    gid, ids, body, finish = _chord_in_worker_task(app, backend, registered)
    finish(ids[0])
    key = backend.get_key_for_chord(gid)
    # The last part's process counts it and dies before sending the callback.
    finish(ids[1], count=lambda request: backend._count_part(key, gid, ids[1], 60, b"lost", request.chord))
    time.sleep(backend._chord_claim_ttl() + 0.05)
    recovered = []

    logged: list[str] = []
    capture = app.amqp.send_task_message

    def send_task_message(*args, **kwargs):
        # Celery's task log format, used meanwhile (a before_task_publish handler logging), works.
        logged.append(TaskFormatter("%(task_name)s[%(task_id)s]").format(logging.makeLogRecord({})))
        return capture(*args, **kwargs)

    def look() -> None:
        app.amqp.send_task_message = send_task_message
        recovered.append(backend.recover_chords())

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    assert recovered == [1]
    assert sent == [{**original, "id": body.id, "parent_id": ids[-1]}]
    assert logged == [f"{finish.task_name}[{ids[-1]}]"]


# ------------------------------------------------------------ the firing list


def _stuck_chord(backend: KVBackend, sent: list):
    """A chord whose last part's process died before sending the callback; callbacks sent go to ``sent``."""
    app = backend.app
    gid, ids, body, finish = _chord_in_worker_task(app, backend)
    finish(ids[0])
    key = backend.get_key_for_chord(gid)
    finish(ids[1], count=lambda request: backend._count_part(key, gid, ids[1], 60, b"lost", request.chord))
    return gid, body


@pytest.mark.parametrize("garbage", [b"\xff not json", b'{"a": 1}', b"[1, 2"])
def test_unreadable_firing_list_is_rebuilt_and_its_chords_still_fire(store_path, caplog, garbage):
    # An unreadable list was read as empty at every look, in every worker process: the
    # chords it held were never recovered, and each look logged an error that said the list
    # was started afresh while it stayed as it was. It is now rebuilt, once, from the
    # stored callbacks.
    app = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.05)
    backend = app.backend
    backend.chord_claim_min = 0.0
    sent = _capture_sends(app)
    gids = [_stuck_chord(backend, sent)[0] for _ in range(2)]
    assert sorted(backend._firing(backend.db)) == sorted(gids)
    backend.db.put(backend._firing_key(), garbage)
    time.sleep(backend._chord_claim_ttl() + 0.05)
    with caplog.at_level("ERROR", logger="kv_backend_celery.backend"):
        assert backend.recover_chords() == 2
        assert backend.recover_chords() == 0
    assert len(sent) == 2
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1
    assert backend.db.get(backend._firing_key()) is None


@pytest.mark.parametrize(
    ("keyprefix", "expected"), [(None, b"kvb-chords-firing"), ("proj1", b"proj1_kvb-chords-firing")]
)
def test_firing_list_has_the_documented_key(store_path, keyprefix, expected):
    # The key was b"b''kvb-chords-firing" (b"b'proj1_'kvb-chords-firing" with a global key
    # prefix): Celery keeps its key prefixes as bytes, and the f-string took their repr.
    app = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.05)
    if keyprefix:
        app.conf.result_backend_transport_options = {"global_keyprefix": keyprefix}
    backend = app.backend
    _stuck_chord(backend, _capture_sends(app))
    assert [k for k in backend.db if k.endswith(b"kvb-chords-firing")] == [expected]


def test_recovered_callback_has_the_arguments_the_original_send_gives_it(store_path):
    # With pickled task messages and json results, the callback was stored with the result
    # serializer: json turned its tuples into lists and its int keys into strings, so the
    # recovery sent other arguments than the part that completed the chord would have.
    # It is now stored with the serializer of the task messages that carried it.
    app = make_app(
        f"kvb://{store_path}",
        result_chord_join_timeout=0.05,
        task_serializer="pickle",
        accept_content=["pickle", "json"],
        result_serializer="json",
    )
    backend = app.backend
    backend.chord_claim_min = 0.0
    bodies: list = []
    app.amqp.send_task_message = lambda producer, name, message, **options: bodies.append(message.body)
    gid, ids, body, finish = _chord_in_worker_task(app, backend, registered=False)
    body.args, body.kwargs = ((1, 2),), {"by_id": {1: "one"}}
    for i in ids:
        finish(i)
    assert len(bodies) == 1
    gid, ids, body2, finish = _chord_in_worker_task(app, backend, registered=False)
    body2.args, body2.kwargs = body.args, body.kwargs
    finish(ids[0])
    key = backend.get_key_for_chord(gid)
    finish(ids[1], count=lambda request: backend._count_part(key, gid, ids[1], 60, b"lost", dict(body2)))
    time.sleep(backend._chord_claim_ttl() + 0.05)
    assert backend.recover_chords() == 1
    assert len(bodies) == 2
    assert bodies[1][:2] == bodies[0][:2] == (([1, 1], (1, 2)), {"by_id": {1: "one"}})


def test_callback_stored_by_the_first_release_is_still_recovered(store_path):
    # The first release stored the bare callback with the result serializer.
    app = make_app(f"kvb://{store_path}", result_chord_join_timeout=0.05)
    backend = app.backend
    backend.chord_claim_min = 0.0
    sent = _capture_sends(app)
    gid, body = _stuck_chord(backend, sent)
    backend.db.put(backend._callback_key(gid), backend.encode(dict(body)).encode())
    time.sleep(backend._chord_claim_ttl() + 0.05)
    assert backend.recover_chords() == 1
    assert [s["id"] for s in sent] == [body.id]
