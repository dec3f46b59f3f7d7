"""A chord callback that failed unsent, followed by a chain whose last task is a part of another chord.

``chord([chain(chord([a, fail], cb), t), e], outer_cb)``: the nested chord fails, and its callback
``cb`` is failed without being sent. Before Celery 5.7 nothing failed the tasks chained after it
(``_fail_chain`` came with 5.7): ``t``, the enclosing chord's part, was never run nor counted, and
the enclosing chord never completed (``get()`` waited until its timeout, ``redis://`` too, and the
chord's keys stayed until they expired). The backend now gives Celery's ``mark_as_failure`` the
callback's chain there, which fails those tasks and counts the part with its failure, in one
transaction; Celery 5.7 and later do it themselves
(test_celery_chord_chain10.py::test_chained_part_of_a_failed_callback_is_counted_with_its_failure).
Before 5.7 Celery also sends such a chord with the callback ``chain(cb, t)``, which has no task id:
failing it raised ``ValueError: task_id must not be empty`` out of the part completing the nested
chord. Such a callback is now failed as ``cb`` followed by ``t``.
"""

from __future__ import annotations

import time
import uuid

import pytest
from celery import chain, chord, states
from celery.app.task import Context
from celery.exceptions import ChordError
from celery_helpers import finish_part, make_app, make_chord
from test_celery_chord_recovery9 import _left

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]


def test_a_callback_chain_is_failed_and_its_part_counted(store_path, monkeypatch):
    # The nested chord as Celery before 5.7 sends it: its callback is chain(cb, t), t being the
    # first part of the enclosing chord.
    backend = make_app(f"kvb://{store_path}").backend
    app = backend.app

    @app.task(name="chain19.step", shared=False)
    def step(x):  # pragma: no cover - never run, only signed
        return x

    gid, ids, outer, sent = make_chord(backend, monkeypatch, parts=2)
    cb, t = step.s(), step.s()
    cb.set(task_id=str(uuid.uuid4()))
    t.set(task_id=ids[0], group_id=gid, chord=outer)
    callback = chain(cb, t)
    inner, part = str(uuid.uuid4()), str(uuid.uuid4())
    backend.apply_chord((inner, [app.AsyncResult(part)]), callback)
    backend.set_chord_size(inner, 1)
    request = Context(id=part, group=inner, chord=dict(callback))
    backend.mark_as_failure(part, ValueError("inner broke"), request=request)
    for task_id in (cb.id, t.id):
        meta = backend.get_task_meta(task_id, cache=False)
        assert meta["status"] == states.FAILURE, task_id
        assert isinstance(meta["result"], ChordError) and "inner broke" in str(meta["result"])
    finish_part(backend, gid, ids[1], outer)  # the enclosing chord's last part: it completes, failed
    assert sent == []
    result = backend.get_task_meta(outer.id, cache=False)
    assert result["status"] == states.FAILURE and isinstance(result["result"], ChordError)
    assert _left(backend, gid) == [] and _left(backend, inner) == []


def test_the_enclosing_chord_fails_with_workers(celery_env):
    m = celery_env.app_module
    nested = chain(chord([m.add.s(1, 1), m.fail.s("inner broke")], m.tsum.s()), m.add.si(5, 5))
    result = chord([nested, m.add.s(2, 2)], m.tsum.s()).apply_async()
    with pytest.raises((ChordError, ValueError)):
        result.get(timeout=20)
    deadline = time.monotonic() + 20
    while result.state == states.PENDING:  # get() may raise the nested failure, from the parents
        assert time.monotonic() < deadline, "the enclosing chord's callback was never failed"
        time.sleep(0.05)
    assert result.state == states.FAILURE
    assert isinstance(result.result, ChordError)
    chained = result.parent.results[0]  # t: failed with the nested chord's callback
    assert chained.state == states.FAILURE
