"""A chord header task that ignores its result (``ignore_result=True``, ``task_ignore_result``).

Such a part stores no result, and the chord's join read the parts' results only where they are
stored: it waited ``result_chord_join_timeout`` for it and failed the chord with a ChordError
(``TimeoutError``) although every part had succeeded, or, for a part that failed, with that
TimeoutError rather than the part's own error. ``redis://`` keeps each part's result with its
chord, and its callback gets it (Celery's documentation asks chord tasks not to ignore their
results). The part's result is now kept in its "counted" marker, written with its count, which
goes with the chord's end: the callback gets every value, and the part's own result stays
unstored (``PENDING``), as ``ignore_result`` asks.
"""

from __future__ import annotations

import pytest
from celery import chord, states
from celery.app import task as celery_task_module
from celery.app.task import Context
from celery.exceptions import ChordError
from celery_helpers import finish_part, make_app, make_chord
from test_celery_chord_recovery9 import _left

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def _request(gid, task_id, body):
    return Context(id=task_id, group=gid, chord=dict(body), ignore_result=True)


def _backend(store_path):
    # A short join: a wait for a result that is not there ends soon.
    return make_app(f"kvb://{store_path}", result_chord_join_timeout=0.5).backend


@pytest.mark.parametrize("ignored", ["first", "last", "all"])
def test_the_callback_gets_the_results_of_parts_that_ignore_them(store_path, monkeypatch, ignored):
    backend = _backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3)
    chosen = {"first": ids[:1], "last": ids[-1:], "all": ids}[ignored]
    for i, task_id in enumerate(ids):
        if task_id in chosen:
            backend.mark_as_done(task_id, {"n": i}, request=_request(gid, task_id, body))
        else:
            finish_part(backend, gid, task_id, body, value={"n": i})
    assert sent == [([{"n": 0}, {"n": 1}, {"n": 2}],)]
    for task_id in chosen:  # still not stored
        assert backend.get(backend.get_key_for_task(task_id)) is None
        assert backend.app.AsyncResult(task_id).state == states.PENDING
    assert _left(backend, gid) == []


def test_a_failed_part_that_ignores_its_result_fails_the_chord_with_its_own_error(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    error = ValueError("part failed")
    backend.mark_as_failure(ids[0], error, request=_request(gid, ids[0], body), store_result=False)
    finish_part(backend, gid, ids[1], body)
    assert sent == []
    callback = backend.app.AsyncResult(body.id)
    assert callback.state == states.FAILURE and isinstance(callback.result, ChordError)
    assert "part failed" in str(callback.result) and "TimeoutError" not in str(callback.result)
    assert _left(backend, gid) == []


def test_a_part_delivered_again_keeps_what_it_kept(store_path, monkeypatch):
    # Counted once: its second run finds its marker, and the value kept the first time stays.
    backend = _backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    backend.mark_as_done(ids[0], 7, request=_request(gid, ids[0], body))
    backend.mark_as_done(ids[0], 8, request=_request(gid, ids[0], body))
    finish_part(backend, gid, ids[1], body, value=1)
    assert sent == [([7, 1],)]


def test_parts_that_ignore_their_results_with_workers(celery_env):
    m = celery_env.app_module
    header = [m.add.s(1, 1).set(ignore_result=True), m.add.s(2, 2), m.add.s(3, 3).set(ignore_result=True)]
    result = chord(header, m.tsum.s()).apply_async()
    assert result.get(timeout=30) == 12
    ignored = result.parent.results[0]
    # Its own result is still not stored. Celery releases without get_actual_ignore_result (5.3 to
    # 5.5) store the STARTED state of such a call (task_track_started), going by the task's setting.
    started = not hasattr(celery_task_module, "get_actual_ignore_result")
    assert ignored.state == (states.STARTED if started else states.PENDING)
