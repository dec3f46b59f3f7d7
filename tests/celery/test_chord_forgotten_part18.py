"""A chord part whose result is forgotten (``AsyncResult.forget()``) before its chord ends.

The chord's join read the parts' results where ``forget()`` deletes them: it waited
``result_chord_join_timeout`` for the forgotten one, then failed the chord with a ChordError
(``TimeoutError``) although every part had succeeded; ``redis://`` keeps each part's result with
its chord, and its callback gets it. The forgotten result now moves into the part's "counted"
marker, which goes with the chord's end: the callback gets every value, the forgotten result
reads as forgotten (``PENDING``), and the chord leaves nothing behind.
"""

from __future__ import annotations

import pytest
from celery import states
from celery.app.task import Context
from celery.exceptions import ChordError
from celery_helpers import finish_part, make_app, make_chord
from test_celery_chord_recovery9 import _left

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _apps(store_path):
    """The worker's backend (a short join, so that a wait for the forgotten result ends soon) and
    a client's app, which forgets."""
    url = f"kvb://{store_path}"
    return make_app(url, result_chord_join_timeout=0.5).backend, make_app(url)


@pytest.mark.parametrize("when", ["running", "before the join", "during the join"])
def test_the_callback_gets_a_result_forgotten_before_the_chord_ended(store_path, monkeypatch, when):
    backend, client = _apps(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3)
    last = when != "running"
    forgotten = ids[-1] if last else ids[0]
    if last:  # the part that completes the chord, forgotten between its count and the join's reads
        step = "_restore_chord_group" if when == "before the join" else "_recall_forgotten"
        original = getattr(backend, step)

        def then_forget(*args):
            done = original(*args)
            client.AsyncResult(forgotten).forget()
            return done

        monkeypatch.setattr(backend, step, then_forget)
    for i, task_id in enumerate(ids):
        finish_part(backend, gid, task_id, body, value=i + 1)
        if task_id == forgotten and not last:
            client.AsyncResult(task_id).forget()
            assert client.AsyncResult(task_id).state == states.PENDING
    assert sent == [([1, 2, 3],)]
    assert client.AsyncResult(forgotten).state == states.PENDING  # still forgotten
    assert _left(backend, gid) == []  # the forgotten result went with the chord


def test_a_forgotten_failed_part_fails_the_chord_with_its_own_error(store_path, monkeypatch):
    backend, client = _apps(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    request = Context(id=ids[0], group=gid, chord=dict(body))
    backend.mark_as_failure(ids[0], ValueError("part failed"), request=request)
    client.AsyncResult(ids[0]).forget()
    finish_part(backend, gid, ids[1], body)
    assert sent == []
    callback = client.AsyncResult(body.id)
    assert callback.state == states.FAILURE
    assert isinstance(callback.result, ChordError)
    assert "part failed" in str(callback.result) and "TimeoutError" not in str(callback.result)
    assert _left(backend, gid) == []


def test_forgetting_after_the_chord_ended_or_outside_chords_deletes(store_path, monkeypatch):
    backend, client = _apps(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    for task_id in ids:
        finish_part(backend, gid, task_id, body)
    assert sent == [([1, 1],)]
    backend.store_result("alone", 5, states.SUCCESS)
    for task_id in [*ids, "alone"]:
        client.AsyncResult(task_id).forget()
    assert _left(backend, gid) == []
    assert set(backend.db.keys()) == set()  # nothing kept anywhere


def test_forgetting_a_result_this_client_cannot_read_deletes_it(store_path):
    # Looking whether it is a chord's part must not make forget() fail where it deleted before.
    url = f"kvb://{store_path}"
    make_app(url, result_serializer="pickle", result_accept_content=["pickle"]).backend.store_result(
        "t1", {1, 2}, states.SUCCESS
    )
    client = make_app(url, result_accept_content=["json"])
    client.AsyncResult("t1").forget()
    assert set(client.backend.db.keys()) == set()
