"""A chord in another chord's header whose own header fails fails the enclosing chord too, once.

The callback of a chord nested in a chord's header is a part of the enclosing chord: run, it
is counted with its result. When a part of the nested chord failed, Celery stored the nested
callback's ChordError without counting it for the enclosing chord (``redis://`` does the same),
so the enclosing chord never completed: its callback stayed ``PENDING`` for ever (``get()``
raised only through its check of the parents, and never with ``propagate=False``), its error
callbacks never ran, and its keys stayed until ``result_chord_expires``. That failure is now
stored and counted in one transaction, and the enclosing chord fails with a ChordError naming
the nested callback.
"""

from __future__ import annotations

import time

import pytest
from celery import chord, states
from celery.app.task import Context
from celery.exceptions import ChordError
from celery_helpers import finish_part, make_app, make_chord
from test_celery_chord_recovery9 import _left

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]

TIMEOUT = 30


def test_failed_nested_chord_fails_the_enclosing_chord_once(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}").backend
    inner_gid, inner_ids, inner_body, sent = make_chord(backend, monkeypatch, parts=2, announce=False)
    outer_gid, outer_ids, outer_body, _ = make_chord(backend, monkeypatch, parts=2, sent=sent)
    # The nested chord's callback is the enclosing chord's first part.
    inner_body.options.update(task_id=outer_ids[0], group_id=outer_gid, chord=dict(outer_body))
    backend.set_chord_size(inner_gid, 2)
    finish_part(backend, outer_gid, outer_ids[1], outer_body, value=10)
    finish_part(backend, inner_gid, inner_ids[0], inner_body)
    failing = Context(id=inner_ids[1], group=inner_gid, chord=dict(inner_body))
    backend.mark_as_failure(inner_ids[1], ValueError("inner broke"), request=failing)
    inner = backend.get_task_meta(outer_ids[0], cache=False)
    assert inner["status"] == states.FAILURE and "inner broke" in str(inner["result"])
    outer = backend.get_task_meta(outer_body.id, cache=False)
    assert outer["status"] == states.FAILURE
    assert isinstance(outer["result"], ChordError)
    assert f"Dependency {outer_ids[0]} raised ChordError" in str(outer["result"])
    assert sent == []
    assert _left(backend, inner_gid) == [] and _left(backend, outer_gid) == []
    try:  # the nested chord failed again (by a process that took it over): not counted again
        raise ChordError("again")
    except ChordError as exc:  # (chord_error_from_stack records the traceback being handled)
        backend.chord_error_from_stack(inner_body, exc)
    assert backend.get_task_meta(outer_body.id, cache=False)["status"] == states.FAILURE
    assert _left(backend, outer_gid) == []


def test_a_chord_whose_callback_is_no_part_fails_as_before(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}").backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=2)
    finish_part(backend, gid, ids[0], body)
    backend.mark_as_failure(
        ids[1], ValueError("broke"), request=Context(id=ids[1], group=gid, chord=dict(body))
    )
    assert backend.get_task_meta(body.id, cache=False)["status"] == states.FAILURE
    assert sent == []
    assert _left(backend, gid) == []


def test_failed_nested_chord_fails_the_enclosing_chord_with_workers(celery_env):
    m = celery_env.app_module
    inner = chord([m.add.s(1, 1), m.fail.s("inner broke")], m.tsum.s())
    result = chord([inner, m.add.s(5, 5)], m.tsum.s()).apply_async()
    with pytest.raises(ChordError):
        result.get(timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while result.state == states.PENDING:  # get() raised the nested chord's error, from the parents
        assert time.monotonic() < deadline, "the enclosing chord's callback was never failed"
        time.sleep(0.05)
    assert result.state == states.FAILURE
    assert isinstance(result.result, ChordError) and "raised ChordError" in str(result.result)
